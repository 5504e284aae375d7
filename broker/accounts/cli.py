"""``deskhand-broker users|roles|teams``: account administration on the broker's own machine.

Works on the data directory directly (the broker may be running), with the
same rules and audit events as the admin API: for the first steps of a new
deployment, and for the day the last admin forgot their password. Live
sessions pick up permission changes within seconds either way, since the
broker compares each session's grant with the database every two seconds.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from broker.accounts import directory
from broker.refusals import Refusal
from broker.storage.models import Role, Team, User
from protocol.admin import RoleCreate, RoleUpdate, TeamCreate, TeamPolicy, TeamUpdate, UserCreate, UserUpdate
from protocol.permissions import ROLE_PERMISSION_NAMES
from protocol.terminal_text import multi_line, one_line

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def names(text: str) -> list[str]:
    """A comma-separated CLI value as a list of names (blanks dropped)."""
    return [n.strip() for n in text.split(",") if n.strip()]


def common_options(data_dir_help: str) -> argparse.ArgumentParser:
    """``--data-dir`` and ``--json``, shared by every administration command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, help=data_dir_help)
    common.add_argument("--json", action="store_true", help="print results as JSON")
    return common


def add_parsers(commands: Any, data_dir_help: str) -> None:
    """Add the ``users``, ``roles`` and ``teams`` commands to ``deskhand-broker``."""
    common = common_options(data_dir_help)

    users = commands.add_parser("users", help="list, create, change, disable and delete accounts")
    u = users.add_subparsers(dest="action", metavar="ACTION", required=True)
    u.add_parser("list", parents=[common], help="every account")
    show = u.add_parser("show", parents=[common], help="one account")
    show.add_argument("username")
    create = u.add_parser("create", parents=[common], help="create an account; prints a generated password once")
    create.add_argument("username")
    create.add_argument("--display-name", required=True, help="the name end users see in the consent prompt")
    create.add_argument("--roles", type=names, default=["technician"], help="comma-separated roles (default technician)")
    create.add_argument("--teams", type=names, default=[], help="comma-separated teams")
    create.add_argument("--password-stdin", action="store_true", help="read the password from stdin instead of generating one")
    change = u.add_parser("set", parents=[common], help="change display name, roles or teams")
    change.add_argument("username")
    change.add_argument("--display-name")
    change.add_argument("--roles", type=names, help="comma-separated roles (replaces the current ones)")
    change.add_argument("--teams", type=names, help="comma-separated teams (replaces the current ones)")
    for action, text in (("disable", "stop the account and its tokens at once"), ("enable", "let it sign in again"),
                         ("delete", "delete an account without tickets or sessions"),
                         ("reset-password", "generate a new password (printed once); its tokens stop")):
        u.add_parser(action, parents=[common], help=text).add_argument("username")

    roles = commands.add_parser("roles", help="list, create, change and delete roles")
    r = roles.add_subparsers(dest="action", metavar="ACTION", required=True)
    r.add_parser("list", parents=[common], help="every role with its permissions")
    for action in ("create", "set"):
        p = r.add_parser(action, parents=[common], help=f"{action} a role",
                         description="Permissions: " + ", ".join(ROLE_PERMISSION_NAMES))
        p.add_argument("name")
        p.add_argument("--permissions", type=names, default=None if action == "set" else [], help="comma-separated permissions")
        p.add_argument("--description", default=None if action == "set" else "")
        p.add_argument("--require-totp", choices=("yes", "no"), default=None if action == "set" else "no",
                       help="members must enrol in TOTP two-factor sign-in")
    r.add_parser("delete", parents=[common], help="delete a role that is not built in").add_argument("name")

    teams = commands.add_parser("teams", help="list, create, change and delete teams and their session policy")
    t = teams.add_subparsers(dest="action", metavar="ACTION", required=True)
    t.add_parser("list", parents=[common], help="every team")
    for action in ("create", "set"):
        p = t.add_parser(action, parents=[common], help=f"{action} a team")
        p.add_argument("name")
        p.add_argument("--description", default=None if action == "set" else "")
        p.add_argument("--members", type=names, default=None if action == "set" else [], help="comma-separated usernames")
        p.add_argument("--deny", type=names, default=None,
                       help="session permissions the members never get, e.g. files.send,files.receive")
        p.add_argument("--recording-required", choices=("yes", "no"), default=None,
                       help="pause control while recording lags, whatever the deployment says")
        p.add_argument("--control-needs-user", choices=("yes", "no"), default=None,
                       help="control only when the end user consented in person (not with deskhand-host --consent)")
    t.add_parser("delete", parents=[common], help="delete a team").add_argument("name")


def run(args: argparse.Namespace, db_session: Callable[[], Any], handlers: Mapping[str, Handler] | None = None) -> int:
    """Carry out one ``users|roles|teams`` command (or one of ``handlers``); ``db_session()`` opens a unit of work.

    Malformed input is exit 2 naming the field, a refusal by the rules exit 1 with its message.
    """
    actor = f"cli:{getpass.getuser()}"
    try:
        with db_session() as db:
            result = (handlers or _HANDLERS)[args.command](db, args, actor)
    except ValidationError as exc:
        for e in exc.errors():
            field = ".".join(str(p) for p in e["loc"]) or "input"
            given = f" (got {e['input']!r})" if isinstance(e.get("input"), (str, int, float)) else ""
            print(f"deskhand-broker: {field}: {one_line(e['msg'])}{given}", file=sys.stderr)
        return EXIT_USAGE
    except Refusal as exc:
        print(f"deskhand-broker: {one_line(exc.message)}", file=sys.stderr)
        return EXIT_FAILED
    if result is not None:
        data, text = result
        # The handlers' fields cannot hold line breaks (the API's models refuse them); anything else is escaped.
        print(json.dumps(data, indent=2, default=str) if args.json else multi_line(text))
    return EXIT_OK


Result = tuple[Any, str] | None
Handler = Callable[[Session, argparse.Namespace, str], Result]
"""A command: (database session, parsed arguments, actor) -> (JSON data, text) to print, or None."""


def as_json(model: BaseModel | Sequence[BaseModel]) -> Any:
    """A response model (or a list of them) as plain JSON data, for ``--json``."""
    return model.model_dump(mode="json") if isinstance(model, BaseModel) else [m.model_dump(mode="json") for m in model]


def _users(db: Session, args: argparse.Namespace, actor: str) -> Result:
    if args.action == "list":
        found = [directory.user_out(u) for u in db.scalars(select(User).order_by(User.username)).unique()]
        lines = [f"{u.username:<20} {', '.join(u.roles):<24} {'disabled' if u.disabled else ''}".rstrip() for u in found]
        return as_json(found), "\n".join(lines) or "No accounts."
    if args.action == "create":
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
        asked = UserCreate(username=args.username, display_name=args.display_name, password=password,
                           roles=args.roles, teams=args.teams)
        user, generated = directory.create_user(db, asked, actor=actor, source=None)
        text = f"Account {user.username} created."
        if generated:
            text += f"\nPassword (shown once, to be changed at first sign-in): {generated}"
        return {"user": as_json(directory.user_out(user)), "password": generated}, text
    user = directory.find_user(db, args.username)
    if args.action == "show":
        out = directory.user_out(user)
        return as_json(out), (f"{out.username} ({out.display_name}): roles {', '.join(out.roles) or 'none'}; "
                            f"teams {', '.join(out.teams) or 'none'}" + ("; disabled" if out.disabled else ""))
    if args.action in ("set", "disable", "enable"):
        body = (UserUpdate(display_name=args.display_name, roles=args.roles, teams=args.teams) if args.action == "set"
                else UserUpdate(disabled=args.action == "disable"))
        out = directory.user_out(directory.update_user(db, user, body, actor=actor, source=None))
        return as_json(out), f"Account {out.username} {'changed' if args.action == 'set' else args.action + 'd'}."
    if args.action == "delete":
        directory.delete_user(db, user, actor=actor, source=None)
        return {"deleted": args.username}, f"Account {args.username} deleted."
    password = directory.reset_password(db, user, actor=actor, source=None)
    return {"password": password}, f"New password for {user.username} (shown once, to be changed at sign-in): {password}"


def _yes(value: str | None) -> bool | None:
    return None if value is None else value == "yes"


def _roles(db: Session, args: argparse.Namespace, actor: str) -> Result:
    if args.action == "list":
        found = [directory.role_out(db, r) for r in db.scalars(select(Role).order_by(Role.id))]
        lines = [f"{r.name:<16} {r.members:>3} members  {', '.join(r.permissions)}" for r in found]
        return as_json(found), "\n".join(lines)
    if args.action == "create":
        asked = RoleCreate(name=args.name, description=args.description, permissions=args.permissions,
                           require_totp=_yes(args.require_totp) or False)
        out = directory.role_out(db, directory.create_role(db, asked, actor=actor, source=None))
        return as_json(out), f"Role {out.name} created: {', '.join(out.permissions) or 'no permissions'}."
    role = directory.find_role(db, args.name)
    if args.action == "set":
        body = RoleUpdate(description=args.description, permissions=args.permissions, require_totp=_yes(args.require_totp))
        out = directory.role_out(db, directory.update_role(db, role, body, actor=actor, source=None))
        return as_json(out), f"Role {out.name} changed: {', '.join(out.permissions) or 'no permissions'}."
    directory.delete_role(db, role, actor=actor, source=None)
    return {"deleted": args.name}, f"Role {args.name} deleted."


def _policy(args: argparse.Namespace, current: TeamPolicy) -> TeamPolicy | None:
    """``current`` with what the options change, or None when they change nothing."""
    if args.deny is None and args.recording_required is None and args.control_needs_user is None:
        return None
    return TeamPolicy(
        denied=current.denied if args.deny is None else args.deny,
        recording_required=current.recording_required if args.recording_required is None else args.recording_required == "yes",
        control_needs_user=current.control_needs_user if args.control_needs_user is None else args.control_needs_user == "yes",
    )


def _teams(db: Session, args: argparse.Namespace, actor: str) -> Result:
    if args.action == "list":
        teams = db.scalars(select(Team).order_by(Team.name).options(selectinload(Team.members)))
        found = [directory.team_out(t) for t in teams]
        lines = [f"{t.name:<16} deny {', '.join(p.value for p in t.policy.denied) or 'nothing'}; "
                 f"members {', '.join(t.members) or 'none'}" for t in found]
        return as_json(found), "\n".join(lines) or "No teams."
    if args.action == "create":
        policy = _policy(args, TeamPolicy()) or TeamPolicy()
        asked = TeamCreate(name=args.name, description=args.description, policy=policy, members=args.members)
        out = directory.team_out(directory.create_team(db, asked, actor=actor, source=None))
        return as_json(out), f"Team {out.name} created."
    team = directory.find_team(db, args.name)
    if args.action == "set":
        body = TeamUpdate(description=args.description, members=args.members,
                          policy=_policy(args, directory.team_out(team).policy))
        out = directory.team_out(directory.update_team(db, team, body, actor=actor, source=None))
        return as_json(out), f"Team {out.name} changed."
    directory.delete_team(db, team, actor=actor, source=None)
    return {"deleted": args.name}, f"Team {args.name} deleted."


_HANDLERS: dict[str, Handler] = {
    "users": _users, "roles": _roles, "teams": _teams,
}
