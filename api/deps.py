"""Request-scoped dependencies: the database session and the authenticated principal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, WebSocket
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from api.auth import PERMISSIONS, AuthError, Role
from api.organisation import OrgTree
from api.orm import User


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


DbSession = Annotated[Session, Depends(get_session)]

MAX_ID = 2**31 - 1  # database integer keys: larger numbers are a 422, not a driver overflow
DbId = Annotated[int, Path(ge=1, le=MAX_ID, description="A database id")]
OptionalId = Annotated[int | None, Query(ge=1, le=MAX_ID)]

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


@dataclass
class Principal:
    """Who is asking, and which centres they may see (``None``: the whole organisation)."""

    user: User
    scope: set[int] | None

    @property
    def name(self) -> str:
        return self.user.username

    @property
    def role(self) -> Role:
        return Role(self.user.role)

    def can(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]

    def sees(self, *centre_ids: int | None) -> bool:
        """True if any of the centres is in scope (an object outside it is a 404)."""
        return self.scope is None or any(c in self.scope for c in centre_ids if c is not None)

    def require(self, permission: str) -> None:
        if not self.can(permission):
            allowed = ", ".join(sorted(r.value for r in PERMISSIONS[permission]))
            raise HTTPException(
                403, f"your role '{self.user.role}' may not do this ({permission}: {allowed})"
            )


def principal_for(session: Session, signer, token: str | None) -> Principal:  # type: ignore[no-untyped-def]
    if not token:
        raise AuthError("not authenticated: log in at POST /auth/token and send the token")
    user = signer.user_for(session, token)
    scope = None if user.centre_id is None else OrgTree.load(session).subtree(user.centre_id)
    return Principal(user, scope)


def current_principal(
    request: Request, session: DbSession, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    try:
        return principal_for(session, request.app.state.signer, token)
    except AuthError as error:
        raise HTTPException(401, str(error), headers={"WWW-Authenticate": "Bearer"}) from None


CurrentUser = Annotated[Principal, Depends(current_principal)]


def requires(permission: str) -> Callable[[Principal], Principal]:
    def check(principal: CurrentUser) -> Principal:
        principal.require(permission)
        return principal

    return check


def websocket_token(websocket: WebSocket) -> str | None:
    """A browser cannot set headers on a WebSocket: take ``?token=`` (or the header)."""
    token = websocket.query_params.get("token")
    if token:
        return token
    header = websocket.headers.get("authorization", "")
    return header[7:] if header.lower().startswith("bearer ") else None
