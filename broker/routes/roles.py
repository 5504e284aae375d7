"""Roles (admins): named sets of permissions; built-in ones cannot be deleted."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from broker.accounts.access import RoleManager
from broker.accounts.directory import create_role, delete_role, find_role, role_out, update_role
from broker.audit import events as audit
from broker.deps import DB, Name, Source
from broker.storage.models import Role
from protocol.admin import RoleCreate, RoleOut, RoleUpdate

router = APIRouter(prefix="/roles", tags=["admin"])


@router.get("", response_model=list[RoleOut], summary="Every role with its permissions")
def index(db: DB, _admin: RoleManager) -> list[RoleOut]:
    return [role_out(db, r) for r in db.scalars(select(Role).order_by(Role.id))]


@router.post("", response_model=RoleOut, status_code=201, summary="Create a role")
def create(body: RoleCreate, db: DB, admin: RoleManager, source: Source) -> RoleOut:
    return role_out(db, create_role(db, body, actor=audit.user_actor(admin), source=source))


@router.patch("/{name}", response_model=RoleOut,
              summary="Change a role (live sessions of its members get a new grant within seconds)")
def change(name: Name, body: RoleUpdate, db: DB, admin: RoleManager, source: Source) -> RoleOut:
    return role_out(db, update_role(db, find_role(db, name), body, actor=audit.user_actor(admin), source=source))


@router.delete("/{name}", status_code=204, summary="Delete a role that is not built in")
def delete(name: Name, db: DB, admin: RoleManager, source: Source) -> None:
    delete_role(db, find_role(db, name), actor=audit.user_actor(admin), source=source)
