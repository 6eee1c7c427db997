"""User management by admins, within their own scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import Role, create_user, hash_password
from api.deps import DbId, DbSession, Principal, requires
from api.orm import Centre, User
from api.schemas import UserCreate, UserOut, UserUpdate

router = APIRouter(prefix="/users", tags=["users"])

Admin = Annotated[Principal, Depends(requires("users.manage"))]


def _check_centre(session: Session, principal: Principal, centre_id: int | None, role: str) -> None:
    if centre_id is None:
        if principal.scope is not None:
            raise HTTPException(422, "centre_id is required: you can only add users in your scope")
        if role != Role.ADMIN:
            raise HTTPException(422, f"a {role} needs a centre (centre_id): only admins are global")
        return
    if session.get(Centre, centre_id) is None or not principal.sees(centre_id):
        raise HTTPException(422, f"centre {centre_id} does not exist")


def visible_user(session: Session, principal: Principal, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or (principal.scope is not None and user.centre_id not in principal.scope):
        raise HTTPException(404, f"user {user_id} does not exist")
    return user


@router.get("", response_model=list[UserOut])
def list_users(session: DbSession, principal: Admin) -> list[UserOut]:
    query = select(User).order_by(User.username)
    if principal.scope is not None:
        query = query.where(User.centre_id.in_(list(principal.scope)))
    return [UserOut.model_validate(u) for u in session.scalars(query)]


@router.post("", response_model=UserOut, status_code=201, responses={409: {}, 422: {}})
def add_user(body: UserCreate, session: DbSession, principal: Admin) -> UserOut:
    _check_centre(session, principal, body.centre_id, body.role)
    try:
        user = create_user(
            session, body.username, body.password, body.role, body.centre_id, body.full_name
        )
    except ValueError as error:
        raise HTTPException(409, str(error)) from None
    session.commit()
    return UserOut.model_validate(user)


@router.get("/{user_id}", response_model=UserOut, responses={404: {}})
def get_user(user_id: DbId, session: DbSession, principal: Admin) -> UserOut:
    return UserOut.model_validate(visible_user(session, principal, user_id))


@router.patch("/{user_id}", response_model=UserOut, responses={404: {}, 422: {}})
def update_user(user_id: DbId, body: UserUpdate, session: DbSession, principal: Admin) -> UserOut:
    """Change a role, centre, name, password or deactivate; password/active changes and
    role/centre changes revoke the user's tokens."""
    user = visible_user(session, principal, user_id)
    changes = body.model_dump(exclude_unset=True)
    role = changes.get("role") or user.role
    centre_id = changes.get("centre_id", user.centre_id)
    if "role" in changes or "centre_id" in changes:
        _check_centre(session, principal, centre_id, role)
    if user.id == principal.user.id and changes.get("active") is False:
        raise HTTPException(422, "you cannot deactivate yourself")
    revoke = False
    if "password" in changes and changes["password"] is not None:
        user.password_hash = hash_password(changes["password"])
        revoke = True
    if "active" in changes and changes["active"] is not None:
        revoke = revoke or changes["active"] != user.active
        user.active = changes["active"]
    if role != user.role or centre_id != user.centre_id:
        revoke = True
    user.role, user.centre_id = role, centre_id
    if "full_name" in changes:
        user.full_name = changes["full_name"]
    if revoke:
        user.token_version += 1
    session.commit()
    return UserOut.model_validate(user)
