"""Teams (admins): groups of technicians whose session policy narrows what they may do."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from broker.accounts.access import PolicyManager
from broker.accounts.directory import create_team, delete_team, find_team, team_out, update_team
from broker.audit import events as audit
from broker.deps import DB, Name, Source
from broker.storage.models import Team
from protocol.admin import TeamCreate, TeamOut, TeamUpdate

router = APIRouter(prefix="/teams", tags=["admin"])


@router.get("", response_model=list[TeamOut], summary="Every team with its policy and members")
def index(db: DB, _admin: PolicyManager) -> list[TeamOut]:
    return [team_out(t) for t in db.scalars(select(Team).order_by(Team.name).options(selectinload(Team.members)))]


@router.post("", response_model=TeamOut, status_code=201, summary="Create a team")
def create(body: TeamCreate, db: DB, admin: PolicyManager, source: Source) -> TeamOut:
    return team_out(create_team(db, body, actor=audit.user_actor(admin), source=source))


@router.patch("/{name}", response_model=TeamOut,
              summary="Change a team's policy or members (live sessions follow within seconds)")
def change(name: Name, body: TeamUpdate, db: DB, admin: PolicyManager, source: Source) -> TeamOut:
    return team_out(update_team(db, find_team(db, name), body, actor=audit.user_actor(admin), source=source))


@router.delete("/{name}", status_code=204, summary="Delete a team")
def delete(name: Name, db: DB, admin: PolicyManager, source: Source) -> None:
    delete_team(db, find_team(db, name), actor=audit.user_actor(admin), source=source)
