"""Managing accounts, roles and teams: the rules both the admin API and ``deskhand-broker`` follow.

Every change is audited with who made it. The one invariant guarded here:
at least one enabled account always holds the built-in admin role, so the
broker can never be left without someone who can manage it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broker.accounts.logins import ADMIN_ROLE, revoke_tokens
from broker.accounts.password_policy import check_password
from broker.accounts.passwords import generate_password, hash_password
from broker.audit import events as audit
from broker.clock import utcnow
from broker.refusals import Conflict, Invalid, not_found
from broker.sessions.grants import team_policy
from broker.storage.models import Role, SupportSession, Team, Ticket, User, UserRole
from protocol.admin import (
    RoleCreate,
    RoleOut,
    RoleUpdate,
    TeamCreate,
    TeamOut,
    TeamUpdate,
    UserCreate,
    UserOut,
    UserUpdate,
)


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id, username=user.username, display_name=user.display_name,
        roles=[r.name for r in user.roles], teams=[t.name for t in user.teams],
        disabled=user.disabled_at is not None, totp_enabled=user.totp_enabled_at is not None,
        locked_until=user.locked_until, created_at=user.created_at,
    )


def role_out(db: Session, role: Role) -> RoleOut:
    members = db.scalar(select(func.count()).select_from(UserRole).where(UserRole.role_id == role.id)) or 0
    return RoleOut(id=role.id, name=role.name, description=role.description, builtin=role.builtin,
                   permissions=list(role.permissions), require_totp=role.require_totp, members=members)


def team_out(team: Team) -> TeamOut:
    return TeamOut(id=team.id, name=team.name, description=team.description, policy=team_policy(team),
                   members=sorted(u.username for u in team.members))


# --- lookups ------------------------------------------------------------------------------


def _one(db: Session, column: Any, name: str, what: str) -> Any:
    row = db.scalars(select(column.class_).where(column == name)).unique().one_or_none()
    if row is None:
        raise not_found(f"{what} {name!r}")
    return row


def _refuse_taken(db: Session, column: Any, name: str, error: str, what: str) -> None:
    if db.scalars(select(column.class_).where(column == name)).first() is not None:
        raise Conflict(error, f"{what} named {name!r} exists already")


def find_user(db: Session, username: str) -> User:
    user: User = _one(db, User.username, username, "account")
    return user


def find_role(db: Session, name: str) -> Role:
    role: Role = _one(db, Role.name, name, "role")
    return role


def find_team(db: Session, name: str) -> Team:
    team: Team = _one(db, Team.name, name, "team")
    return team


def _named(db: Session, column: Any, names: Iterable[str], what: str, listing: str) -> list[Any]:
    """The rows whose ``column`` (``Role.name``, ``User.username``...) holds each of ``names``,
    in that order and each once; 422 naming the first that does not exist."""
    wanted = list(dict.fromkeys(names))
    found = {getattr(row, column.key): row for row in db.scalars(select(column.class_).where(column.in_(wanted))).unique()}
    missing = [n for n in wanted if n not in found]
    if missing:
        raise Invalid("invalid_request", f"there is no {what} {missing[0]!r}; list them with GET {listing}")
    return [found[n] for n in wanted]


def user_named(db: Session, username: str) -> User:
    """The account a request body names; 422 if there is none (a body field is not a missing resource)."""
    user: User = _named(db, User.username, [username], "account", "/users")[0]
    return user


def team_named(db: Session, name: str) -> Team:
    """The team a request body names; 422 if there is none."""
    team: Team = _named(db, Team.name, [name], "team", "/teams")[0]
    return team


# --- the last admin -----------------------------------------------------------------------


def _enabled_admins(db: Session) -> set[int]:
    return set(db.scalars(
        select(User.id).join(UserRole, UserRole.user_id == User.id).join(Role, Role.id == UserRole.role_id)
        .where(Role.name == ADMIN_ROLE, User.disabled_at.is_(None))
    ))


def _keep_an_admin(db: Session, user: User, what: str) -> None:
    """Refuse ``what`` when ``user`` is the only enabled admin."""
    if _enabled_admins(db) == {user.id}:
        raise Conflict("last_admin", f"cannot {what}: {user.username} is the last enabled admin; "
                                     "give another account the admin role first")


def _password(password: str | None, username: str) -> tuple[str, str | None]:
    """(hash, generated password or None); a given password must pass the policy."""
    if password is None:
        generated = generate_password()
        return hash_password(generated), generated
    problem = check_password(password, username)
    if problem is not None:
        raise Invalid("weak_password", problem)
    return hash_password(password), None


# --- accounts -----------------------------------------------------------------------------


def create_user(db: Session, body: UserCreate, *, actor: str, source: str | None) -> tuple[User, str | None]:
    """A new account; returns it and its generated password (None when one was given)."""
    _refuse_taken(db, User.username, body.username, "username_taken", "an account")
    roles = _named(db, Role.name, body.roles, "role", "/roles")
    teams = _named(db, Team.name, body.teams, "team", "/teams")
    password_hash, generated = _password(body.password, body.username)
    user = User(username=body.username, display_name=body.display_name, password_hash=password_hash,
                must_change_password=True, created_at=utcnow(), roles=roles, teams=teams)
    db.add(user)
    db.flush()
    audit.record(db, "account.created", actor=actor, source=source, username=user.username,
                 roles=[r.name for r in roles], teams=[t.name for t in teams])
    return user, generated


def update_user(db: Session, user: User, body: UserUpdate, *, actor: str, source: str | None) -> User:
    changes: dict[str, object] = {}
    if body.display_name is not None and body.display_name != user.display_name:
        user.display_name = changes["display_name"] = body.display_name
    if body.roles is not None:
        roles = _named(db, Role.name, body.roles, "role", "/roles")
        if ADMIN_ROLE not in {r.name for r in roles} and user.is_admin:
            _keep_an_admin(db, user, "take the admin role away")
        user.roles = roles
        changes["roles"] = [r.name for r in roles]
    if body.teams is not None:
        user.teams = _named(db, Team.name, body.teams, "team", "/teams")
        changes["teams"] = [t.name for t in user.teams]
    if body.disabled is not None and body.disabled != (user.disabled_at is not None):
        if body.disabled:
            _keep_an_admin(db, user, "disable the account")
            user.disabled_at = utcnow()
            revoke_tokens(db, user)  # enabling the account again must not revive them
        else:
            user.disabled_at = None
            user.failed_logins, user.locked_until = 0, None
        changes["disabled"] = body.disabled
    if changes:
        audit.record_data(db, "account.changed", {"username": user.username, **changes}, actor=actor, source=source)
    return user


def delete_user(db: Session, user: User, *, actor: str, source: str | None) -> None:
    """Delete an account that never ran a session; others can only be disabled (their history stays)."""
    _keep_an_admin(db, user, "delete the account")
    if db.scalars(select(SupportSession.id).where(SupportSession.technician_id == user.id).limit(1)).first() or \
            db.scalars(select(Ticket.id).where(Ticket.created_by_id == user.id).limit(1)).first():
        raise Conflict(
            "account_has_history", f"{user.username} has tickets or sessions on record; disable the account instead",
        )
    audit.record(db, "account.deleted", actor=actor, source=source, username=user.username)
    db.delete(user)


def reset_password(db: Session, user: User, *, actor: str, source: str | None) -> str:
    """A new generated password, to be changed at the next sign-in; every token of the account stops."""
    password = generate_password()
    user.password_hash = hash_password(password)
    user.must_change_password = True
    user.failed_logins, user.locked_until = 0, None
    revoke_tokens(db, user)
    audit.record(db, "account.password_reset", actor=actor, source=source, username=user.username)
    return password


# --- roles --------------------------------------------------------------------------------


def create_role(db: Session, body: RoleCreate, *, actor: str, source: str | None) -> Role:
    _refuse_taken(db, Role.name, body.name, "name_taken", "a role")
    role = Role(name=body.name, description=body.description, builtin=False, permissions=body.permissions,
                require_totp=body.require_totp, created_at=utcnow())
    db.add(role)
    db.flush()
    audit.record(db, "role.created", actor=actor, source=source, role=role.name, permissions=role.permissions,
                 require_totp=role.require_totp)
    return role


def update_role(db: Session, role: Role, body: RoleUpdate, *, actor: str, source: str | None) -> Role:
    if body.permissions is not None and role.name == ADMIN_ROLE and set(body.permissions) != set(role.permissions):
        raise Conflict("builtin_role", "the admin role always holds every permission; make a role of your own")
    changes: dict[str, object] = {}
    if body.description is not None:
        role.description = changes["description"] = body.description
    if body.permissions is not None:
        role.permissions = changes["permissions"] = body.permissions
    if body.require_totp is not None:
        role.require_totp = changes["require_totp"] = body.require_totp
    if changes:
        audit.record_data(db, "role.changed", {"role": role.name, **changes}, actor=actor, source=source)
    return role


def delete_role(db: Session, role: Role, *, actor: str, source: str | None) -> None:
    if role.builtin:
        raise Conflict("builtin_role", f"{role.name} is built in and cannot be deleted")
    audit.record(db, "role.deleted", actor=actor, source=source, role=role.name)
    db.delete(role)


# --- teams --------------------------------------------------------------------------------


def create_team(db: Session, body: TeamCreate, *, actor: str, source: str | None) -> Team:
    _refuse_taken(db, Team.name, body.name, "name_taken", "a team")
    team = Team(name=body.name, description=body.description, policy=body.policy.model_dump(mode="json"),
                created_at=utcnow(), members=_named(db, User.username, body.members, "account", "/users"))
    db.add(team)
    db.flush()
    audit.record(db, "team.created", actor=actor, source=source, team=team.name, policy=team.policy,
                 members=sorted(u.username for u in team.members))
    return team


def update_team(db: Session, team: Team, body: TeamUpdate, *, actor: str, source: str | None) -> Team:
    changes: dict[str, object] = {}
    if body.description is not None:
        team.description = changes["description"] = body.description
    if body.policy is not None:
        team.policy = changes["policy"] = body.policy.model_dump(mode="json")
    if body.members is not None:
        team.members = _named(db, User.username, body.members, "account", "/users")
        changes["members"] = sorted(u.username for u in team.members)
    if changes:
        audit.record_data(db, "team.changed", {"team": team.name, **changes}, actor=actor, source=source)
    return team


def delete_team(db: Session, team: Team, *, actor: str, source: str | None) -> None:
    audit.record(db, "team.deleted", actor=actor, source=source, team=team.name)
    db.delete(team)
