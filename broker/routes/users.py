"""Accounts (admins): create, change, disable, delete, reset passwords."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from broker.accounts.access import UserManager
from broker.accounts.directory import create_user, delete_user, find_user, reset_password, update_user, user_out
from broker.audit import events as audit
from broker.deps import DB, Name, Source, State
from broker.storage.models import User
from protocol.admin import PasswordReset, UserCreate, UserCreated, UserOut, UserUpdate

router = APIRouter(prefix="/users", tags=["admin"])


@router.get("", response_model=list[UserOut], summary="Every account")
def index(db: DB, _admin: UserManager) -> list[UserOut]:
    return [user_out(u) for u in db.scalars(select(User).order_by(User.username)).unique()]


@router.post("", response_model=UserCreated, status_code=201, summary="Create an account")
def create(body: UserCreate, db: DB, admin: UserManager, source: Source) -> UserCreated:
    user, password = create_user(db, body, actor=audit.user_actor(admin), source=source)
    return UserCreated(user=user_out(user), password=password)


@router.get("/{username}", response_model=UserOut, summary="One account")
def show(username: Name, db: DB, _admin: UserManager) -> UserOut:
    return user_out(find_user(db, username))


@router.patch("/{username}", response_model=UserOut,
              summary="Change display name, roles, teams; disable or enable (takes effect in live sessions within seconds)")
def change(username: Name, body: UserUpdate, db: DB, admin: UserManager, source: Source, state: State) -> UserOut:
    user = update_user(db, find_user(db, username), body, actor=audit.user_actor(admin), source=source)
    state.access_withdrawn(db)  # a disabled account's chunk uploads stop with this answer
    return user_out(user)


@router.delete("/{username}", status_code=204, summary="Delete an account without history")
def delete(username: Name, db: DB, admin: UserManager, source: Source, state: State) -> None:
    delete_user(db, find_user(db, username), actor=audit.user_actor(admin), source=source)
    state.access_withdrawn(db)


@router.post("/{username}/password-reset", response_model=PasswordReset,
             summary="Generate a new password (shown once); the account's tokens stop working")
def password_reset(username: Name, db: DB, admin: UserManager, source: Source, state: State) -> PasswordReset:
    password = reset_password(db, find_user(db, username), actor=audit.user_actor(admin), source=source)
    state.access_withdrawn(db)
    return PasswordReset(password=password)
