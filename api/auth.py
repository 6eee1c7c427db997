"""Users, roles, password hashing (Argon2 via pwdlib) and signed bearer tokens (PyJWT).

A token names the user and the user's ``token_version``; changing a password or
deactivating a user bumps the version, which revokes every token issued before. Each request
re-reads the user, so a role or centre change applies at once.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import jwt
from pwdlib import PasswordHash
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.orm import ServiceSecret, User
from api.timeutil import utcnow

ALGORITHM = "HS256"
ISSUER = "sharpeyes-api"
_hasher = PasswordHash.recommended()
# Verifying against this keeps a login for an unknown user as slow as for a known one.
_DUMMY_HASH = _hasher.hash("timing-equaliser-not-a-password")


class Role(StrEnum):
    OPERATOR = "operator"  # watches the feed, acknowledges, records feedback, dismisses
    DISPATCHER = "dispatcher"  # all an operator does, plus dispatching, resolving, closing
    INTEGRATOR = "integrator"  # cameras: add, edit zones, test connections, see health
    ADMIN = "admin"  # everything within its centre's subtree, including users


# What each role may do; checked by ``require``.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "cases.read": frozenset({Role.OPERATOR, Role.DISPATCHER, Role.ADMIN}),
    "cases.handle": frozenset({Role.OPERATOR, Role.DISPATCHER, Role.ADMIN}),
    "cases.dispatch": frozenset({Role.DISPATCHER, Role.ADMIN}),
    "cases.verify": frozenset({Role.DISPATCHER, Role.ADMIN}),
    "stats.read": frozenset({Role.OPERATOR, Role.DISPATCHER, Role.ADMIN}),
    "cameras.read": frozenset(Role),
    "cameras.write": frozenset({Role.INTEGRATOR, Role.ADMIN}),
    "organisation.read": frozenset(Role),
    "organisation.write": frozenset({Role.ADMIN}),
    "users.manage": frozenset({Role.ADMIN}),
    "deliveries.manage": frozenset({Role.ADMIN}),
}


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return _hasher.verify(password, password_hash)
    except Exception:  # a malformed stored hash is a failed login, not a 500
        return False


class AuthError(Exception):
    """Why a token or a login was refused (said to the client as a 401)."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


class TokenSigner:
    def __init__(self, key: str, ttl_s: int) -> None:
        self.key = key
        self.ttl_s = ttl_s

    def issue(self, user: User, now: datetime | None = None) -> IssuedToken:
        now = now or utcnow()
        expires = now + timedelta(seconds=self.ttl_s)
        claims = {
            "sub": str(user.id),
            "name": user.username,
            "role": user.role,
            "ver": user.token_version,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "iss": ISSUER,
        }
        return IssuedToken(jwt.encode(claims, self.key, algorithm=ALGORITHM), expires)

    def user_for(self, session: Session, token: str) -> User:
        """The active user a token belongs to; raises AuthError with the reason."""
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["sub", "exp", "ver"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired: log in again") from None
        except jwt.InvalidTokenError as error:
            raise AuthError(f"invalid token ({error}): log in again") from None
        try:
            user = session.get(User, int(claims["sub"]))
        except (TypeError, ValueError):
            user = None
        if user is None or not user.active:
            raise AuthError("the user of this token no longer exists or is deactivated")
        if claims.get("ver") != user.token_version:
            raise AuthError("the token was revoked (password or account changed): log in again")
        return user


class LoginThrottle:
    """Slows password guessing: after ``limit`` failures for one username within
    ``window_s``, that username is refused for the rest of the window (per API process)."""

    def __init__(self, limit: int = 5, window_s: float = 300.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, username: str, now: float | None = None) -> float:
        """Seconds until this username may try again (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = [t for t in self._failures.get(username, []) if now - t < self.window_s]
            self._failures[username] = recent
            if len(recent) < self.limit:
                return 0.0
            return max(0.0, self.window_s - (now - recent[0]))

    def failed(self, username: str) -> None:
        with self._lock:
            self._failures.setdefault(username, []).append(time.monotonic())
            if len(self._failures) > 10_000:  # bounded memory under a spray of names
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username, None)


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        verify_password(password, _DUMMY_HASH)
        return None
    if not verify_password(password, user.password_hash) or not user.active:
        return None
    return user


def signing_key(session: Session, configured: str | None) -> str:
    """The configured key, or one generated once and shared through the database."""
    if configured:
        return configured
    row = session.get(ServiceSecret, "token_signing_key")
    if row is not None:
        return row.value
    try:
        session.add(ServiceSecret(name="token_signing_key", value=secrets.token_urlsafe(48)))
        session.commit()
    except IntegrityError:  # another API process created it first
        session.rollback()
    row = session.get(ServiceSecret, "token_signing_key")
    assert row is not None
    return row.value


def create_user(
    session: Session,
    username: str,
    password: str,
    role: Role | str,
    centre_id: int | None,
    full_name: str | None = None,
) -> User:
    """Add a user (the caller commits); raises ValueError for a taken name or weak password."""
    if len(password) < 8:
        raise ValueError("the password must have at least 8 characters")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ValueError(f"user '{username}' already exists")
    user = User(
        username=username,
        password_hash=hash_password(password),
        role=Role(role).value,
        centre_id=centre_id,
        full_name=full_name,
    )
    session.add(user)
    session.flush()
    return user


def ensure_bootstrap_admin(session: Session, username: str, password: str) -> bool:
    """Create the first admin if there are no users at all; True if it was created."""
    if (session.scalar(select(func.count()).select_from(User)) or 0) > 0:
        return False
    create_user(session, username, password, Role.ADMIN, None, "Bootstrap administrator")
    session.commit()
    return True
