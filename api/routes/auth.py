"""Logging in (OAuth2 password flow) and who am I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordRequestForm

from api.auth import authenticate
from api.deps import CurrentUser, DbSession
from api.routes.organisation import centre_out
from api.schemas import CentreOut, TokenOut, UserOut

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/token",
    response_model=TokenOut,
    responses={401: {"description": "Bad login"}, 429: {"description": "Too many failures"}},
)
def login(
    request: Request, session: DbSession, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> TokenOut:
    """Exchange a username and password (form fields) for a bearer token.

    Five wrong passwords for one username within five minutes lock it out for the rest
    of that window (429 with Retry-After)."""
    throttle = request.app.state.login_throttle
    wait = throttle.retry_after(form.username)
    if wait > 0:
        raise HTTPException(
            429,
            f"too many failed logins for '{form.username}': try again in {wait:.0f} s",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    user = authenticate(session, form.username, form.password)
    if user is None:
        throttle.failed(form.username)
        raise HTTPException(
            401, "wrong username or password", headers={"WWW-Authenticate": "Bearer"}
        )
    throttle.succeeded(form.username)
    issued = request.app.state.signer.issue(user)
    return TokenOut(
        access_token=issued.token, expires_at=issued.expires_at, user=UserOut.model_validate(user)
    )


class Me(UserOut):
    centre: CentreOut | None = None
    permissions: list[str]


@router.get("/me", response_model=Me)
def me(session: DbSession, principal: CurrentUser) -> Me:
    """The logged-in user, their centre and what they may do (drives the console)."""
    from api.auth import PERMISSIONS
    from api.organisation import OrgTree

    centre = None
    if principal.user.centre_id is not None:
        centre = centre_out(session, OrgTree.load(session), principal.user.centre_id)
    return Me(
        **UserOut.model_validate(principal.user).model_dump(),
        centre=centre,
        permissions=sorted(p for p in PERMISSIONS if principal.can(p)),
    )
