"""``deskhand-console``: the technician's command line, for scripting and tests."""

from __future__ import annotations

import argparse
import asyncio
import enum
import getpass
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TextIO, TypeVar

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
)
from rich.text import Text

from peer.transfer_rate import TransferRate, seconds_text, size_text
from peer.transfers import ProgressHook, TransferError, file_sha256
from peer.transport import add_transport_options, trust_ca_file
from protocol.admin import NAME_PATTERN
from protocol.api import (
    CommentCreate,
    ExternalRef,
    LoginResponse,
    Priority,
    SessionOut,
    SingleLine,
    SlaOut,
    SlaTargetIn,
    SlaTargetsOut,
    SlaTimerOut,
    TicketCreate,
    TicketOut,
    TicketSummary,
    TicketUpdate,
)
from protocol.cli import configure_logging, number_in_range
from protocol.helpdesk import CommentKind, SlaFilter, TicketOrder, TicketStatus, Visibility
from protocol.terminal_text import multi_line, one_line
from protocol.totp import is_totp_code, normalize_recovery_code, normalize_second_factor, normalize_totp_code
from protocol.transport import TransportError, check_transport, checked_broker_url

from . import actions as actions_module
from .actions import Action, ActionError, parse_action
from .client import ConsoleError, TechConsole, _first_problem
from .credentials import (
    Credentials,
    default_credentials_path,
    forget_credentials,
    load_credentials,
    save_credentials,
)
from .remote_view import RemoteView, ViewError

DEFAULT_BROKER = "http://127.0.0.1:8000"
E = TypeVar("E", bound=enum.Enum)
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

err = Console(stderr=True, highlight=False)

Lines = str | Iterable[str]
"""What a command prints: one line, or lines. Never a string with line breaks in it: see :func:`say`."""


def say(lines: Lines, file: TextIO | None = None) -> None:
    """Print ``lines`` (a string is one line), each through :func:`protocol.terminal_text.one_line`.

    Every line with data in it goes through here, so that what peers and users
    wrote (chat, names, file names, reasons, subjects) can neither start a line of its
    own (a forged report line) nor reach the terminal as a control sequence.
    """
    shown = [lines] if isinstance(lines, str) else lines
    print("\n".join(one_line(line) for line in shown), file=file or sys.stdout)


def _print_json(data: object) -> None:
    """``data`` as JSON; every non-ASCII character escaped, so that it is safe on a terminal too."""
    print(json.dumps(data, indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deskhand-console",
        description="Work Deskhand tickets and sessions from the command line.",
    )
    parser.add_argument(
        "--broker",
        help=f"broker URL (default: DESKHAND_BROKER, else the one you signed in to, else {DEFAULT_BROKER})",
    )
    parser.add_argument(
        "--credentials", type=Path,
        default=Path(os.environ["DESKHAND_CONSOLE_CREDENTIALS"]) if os.environ.get("DESKHAND_CONSOLE_CREDENTIALS") else None,
        help="file where 'login' keeps the token (default: DESKHAND_CONSOLE_CREDENTIALS or "
        "~/.config/deskhand/console.json)",
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON for scripts")
    parser.add_argument("-v", "--verbose", action="store_true", help="log connection details to stderr")
    add_transport_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    login = commands.add_parser("login", help="sign in and remember the token")
    login.add_argument("--username", "-u", required=True, help="your account name")
    login.add_argument(
        "--password-stdin", action="store_true",
        help="read the password from the first line of standard input instead of prompting "
        "(and a TOTP code, if the broker asks for one, from the second)",
    )
    second = login.add_mutually_exclusive_group()
    second.add_argument("--totp", type=_totp_code, metavar="CODE",
                        help="the 6-digit code from your authenticator app (otherwise asked for when needed)")
    second.add_argument("--recovery-code", type=_recovery_code, metavar="CODE",
                        help="one of your one-time recovery codes, instead of a TOTP code")
    commands.add_parser("logout", help="revoke the token and forget it")
    commands.add_parser("whoami", help="show the signed-in account")
    passwd = commands.add_parser("passwd", help="change your password (the broker's policy says how long)")
    passwd.add_argument(
        "--stdin", action="store_true",
        help="read the current and the new password from the first two lines of standard input",
    )

    second_factor = commands.add_parser("totp", help="turn two-factor sign-in (an authenticator app) on or off")
    totp_cmds = second_factor.add_subparsers(dest="totp_command", metavar="ACTION", required=True)
    enroll = totp_cmds.add_parser(
        "enroll", help="show a new secret for your authenticator app, confirm it with a code, get recovery codes",
    )
    enroll.add_argument("--code", type=_totp_code, metavar="CODE",
                        help="confirm with this code instead of being asked (only useful with a known secret)")
    disable = totp_cmds.add_parser("disable", help="turn it off (needs your password and a code)")
    disable.add_argument("--code", type=_second_factor, metavar="CODE",
                         help="a current 6-digit code or a recovery code (otherwise asked for)")
    disable.add_argument("--password-stdin", action="store_true",
                         help="read the password (and then the code, if no --code) from standard input")

    ticket = commands.add_parser(
        "ticket", aliases=["tickets"], help="open, list, show, change, assign and comment on tickets",
        description="Statuses: " + ", ".join(s.value for s in TicketStatus) + "; each status allows only "
        "some moves ('ticket show' lists them). A public comment or a connected session is the first response.",
    )
    ticket_cmds = ticket.add_subparsers(dest="ticket_command", metavar="ACTION", required=True)
    create = ticket_cmds.add_parser("create", aliases=["new"], help="open a ticket")
    create.add_argument("--subject", required=True, help="one line saying what is wrong")
    create.add_argument("--requester-name", required=True, help="who asked for help")
    create.add_argument("--requester-email", required=True, help="their email address")
    create.add_argument(
        "--priority", choices=[p.value for p in Priority], default=Priority.normal.value,
        help="ticket priority (default normal)",
    )
    create.add_argument("--description", default="", help="longer description (optional)")
    create.add_argument("--category", type=_category, default="", help="a category such as Network (optional)")
    create.add_argument("--assignee", type=_username, metavar="USERNAME",
                        help="the technician who works it (someone other than you needs tickets.assign)")
    create.add_argument("--team", type=_team, metavar="TEAM", help="the team that works it (needs tickets.assign)")
    create.add_argument("--external", type=_external, metavar="SYSTEM:KEY",
                        help="the same ticket in another helpdesk, e.g. jira:HELP-42")
    _json_option(create)
    listing = ticket_cmds.add_parser("list", help="list tickets, newest first unless --order says otherwise")
    listing.add_argument("--status", type=_choices(TicketStatus, "status"), metavar="STATUS[,STATUS]",
                         help="only these statuses: " + ", ".join(s.value for s in TicketStatus))
    listing.add_argument("--priority", type=_choices(Priority, "priority"), metavar="PRIORITY[,PRIORITY]",
                         help="only these priorities: " + ", ".join(p.value for p in Priority))
    listing.add_argument("--assignee", type=_assignee_filter, metavar="me|none|USERNAME",
                         help="only yours (me), nobody's and no team's (none), or this technician's")
    listing.add_argument("--team", type=_team, metavar="TEAM", help="only this team's")
    listing.add_argument("--category", type=_category, help="only this category")
    listing.add_argument("--sla", type=_choice(SlaFilter, "SLA state"), metavar="breached|at_risk|on_track",
                         help="only tickets over a target, past the warning share of one, or neither")
    listing.add_argument("--search", type=_search_text, metavar="TEXT",
                         help="text in the subject, requester name or e-mail")
    listing.add_argument("--external", type=_external, metavar="SYSTEM:KEY", help="the ticket linked to this reference")
    listing.add_argument("--order", type=_choice(TicketOrder, "order"), metavar="due|newest|oldest|updated",
                         help="due: soonest SLA breach first; updated: last changed first (default newest)")
    listing.add_argument("--limit", type=number_in_range(int, 1, 500, "limit"), default=50, help="at most this many (1-500, default 50)")
    listing.add_argument("--offset", type=number_in_range(int, 0, 10_000_000, "offset"), default=0,
                         help="skip this many first (for paging)")
    _json_option(listing)
    show = ticket_cmds.add_parser("show", help="show a ticket with its SLA timers, sessions, comments and surveys")
    show.add_argument("ticket_id", type=_ticket_id, help="ticket number")
    _json_option(show)
    update = ticket_cmds.add_parser(
        "update", help="change a ticket's status, priority, assignment, category, reference or subject",
        description="Only what you give changes. A status must be one the ticket may move to "
        "('ticket show' lists them); the broker refuses others and names the allowed ones.",
    )
    update.add_argument("ticket_id", type=_ticket_id, help="ticket number")
    update.add_argument("--status", type=_choice(TicketStatus, "status"), metavar="STATUS",
                        help="move it: " + ", ".join(s.value for s in TicketStatus))
    update.add_argument("--priority", type=_choice(Priority, "priority"), metavar="PRIORITY",
                        help=", ".join(p.value for p in Priority) + " (the SLA timers keep the time spent)")
    person = update.add_mutually_exclusive_group()
    person.add_argument("--assign", type=_username, metavar="USERNAME",
                        help="give it to this technician (someone other than you needs tickets.assign)")
    person.add_argument("--unassign", action="store_true", help="take the technician off it")
    group = update.add_mutually_exclusive_group()
    group.add_argument("--team", type=_team, metavar="TEAM", help="give it to this team (needs tickets.assign)")
    group.add_argument("--no-team", action="store_true", help="take the team off it")
    update.add_argument("--category", type=_category, help="a category (an empty string clears it)")
    reference = update.add_mutually_exclusive_group()
    reference.add_argument("--external", type=_external, metavar="SYSTEM:KEY", help="link it to another helpdesk's ticket")
    reference.add_argument("--no-external", action="store_true", help="remove the link")
    update.add_argument("--subject", type=_subject, help="a new subject line")
    _json_option(update)
    comment = ticket_cmds.add_parser(
        "comment", help="add an internal note, or with --public a reply to the requester",
        description="A public reply is the ticket's first response (a new ticket becomes open).",
    )
    comment.add_argument("ticket_id", type=_ticket_id, help="ticket number")
    comment.add_argument("text", metavar="TEXT", help="the comment; - reads it from standard input")
    comment.add_argument("--public", action="store_true", help="a reply the requester sees (default: an internal note)")
    _json_option(comment)
    take = ticket_cmds.add_parser("take", help="assign a ticket to yourself")
    take.add_argument("ticket_id", type=_ticket_id, help="ticket number")
    _json_option(take)

    sla = commands.add_parser("sla", help="show or set the SLA targets per priority")
    sla_cmds = sla.add_subparsers(dest="sla_command", metavar="ACTION", required=True)
    _json_option(sla_cmds.add_parser("show", help="the targets, the business hours and the warning share"))
    sla_set = sla_cmds.add_parser(
        "set", help="set one priority's targets (needs policies.manage)",
        description="Tickets opened from now on get the new targets; open tickets keep theirs "
        "until their priority changes.",
    )
    sla_set.add_argument("priority", type=_choice(Priority, "priority"), metavar="PRIORITY",
                         help=", ".join(p.value for p in Priority))
    sla_set.add_argument("--first-response", type=_target_minutes, required=True, metavar="MIN",
                         help="minutes until the first response is due")
    sla_set.add_argument("--resolution", type=_target_minutes, required=True, metavar="MIN",
                         help="minutes until the resolution is due (not fewer than --first-response)")
    sla_set.add_argument("--business-hours", action="store_true",
                         help="count only the broker's business hours (default: every minute counts)")
    _json_option(sla_set)

    session = commands.add_parser("session", help="start, show and end support sessions")
    session_cmds = session.add_subparsers(dest="session_command", metavar="ACTION", required=True)
    start = session_cmds.add_parser("start", help="start a session on a ticket and print its one-time code")
    start.add_argument("--ticket", type=number_in_range(int, 1, 2**62, "ticket number"), required=True, help="ticket number")
    start.add_argument("--wait", action="store_true", help="after printing the code, wait until a host joins")
    start.add_argument("--timeout", type=_seconds, default=600.0, help="how long --wait waits (seconds, default 600)")
    sshow = session_cmds.add_parser("show", help="show a session's state")
    sshow.add_argument("session_id", type=_session_id, help="session id (printed by 'session start')")
    end = session_cmds.add_parser("end", help="end a session")
    end.add_argument("session_id", type=_session_id, help="session id (printed by 'session start')")
    end.add_argument("--reason", default="", help="a note saying why or what was done")

    waiting = commands.add_parser("requests", help="list the help requests waiting in the queue (asked without a code)")
    waiting.add_argument("--limit", type=number_in_range(int, 1, 500, "limit"), default=200,
                         help="at most this many (1-500, default 200)")
    pickup = commands.add_parser(
        "pickup", help="pick up a waiting help request: its session starts at once, no code",
        description="Starts the session with the user who asked (see 'requests'). Nothing is read "
        "aloud: the user's computer is waiting and joins at once, then asks the user what you may do. "
        "Work the session as after 'session start' (control, snapshot, send, fetch, session end).",
    )
    pickup.add_argument("request_id", type=_session_id, help="request id (see 'requests')")
    pickup.add_argument("--wait", action="store_true", help="then wait until the user has answered the consent prompt")
    pickup.add_argument("--timeout", type=_seconds, default=300.0, help="how long --wait waits (seconds, default 300)")

    control = commands.add_parser(
        "control",
        help="control a session's remote desktop from a script",
        description="Connect to a session, wait until the host has answered consent, run the "
        "actions in order, then print what came back (chat, clipboard, refusals).",
        epilog=actions_doc(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    control.add_argument("session_id", type=_session_id, help="session id")
    control.add_argument("actions", nargs="+", type=_action, metavar="ACTION", help="NAME:ARGUMENT, see below")
    control.add_argument("--timeout", type=_seconds, default=60.0,
                         help="how long to wait for the host's consent and channels (default 60)")
    control.add_argument("--listen", type=_seconds, default=1.0,
                         help="seconds to keep listening after the last action (default 1)")
    control.add_argument("--end", action="store_true", help="end the session afterwards")
    control.add_argument("--reason", default="", help="with --end: the note to end it with")

    send = commands.add_parser("send", help="send files to the host (lands in a folder of the session)")
    send.add_argument("session_id", type=_session_id, help="session id")
    send.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files to send, one after the other")
    send.add_argument("--timeout", type=_seconds, default=300.0,
                      help="how long to wait for the host to accept each file (default 300)")
    fetch = commands.add_parser("fetch", help="ask the host for a file; the user picks or approves it")
    fetch.add_argument("session_id", type=_session_id, help="session id")
    fetch.add_argument("path", nargs="?", default="", help="the file you would like (a suggestion the user sees)")
    fetch.add_argument("--to", type=Path, default=Path("."), dest="destination",
                       help="folder to save it in (default: the current folder); nothing is overwritten")
    fetch.add_argument("--note", default="", help="a line for the user explaining what you need")
    fetch.add_argument("--timeout", type=_seconds, default=600.0, help="how long to wait for the user (default 600)")
    listing_transfers = commands.add_parser("transfers", help="list a session's file transfers")
    listing_transfers.add_argument("session_id", type=_session_id, help="session id")
    cancel = commands.add_parser("cancel", help="cancel a file transfer")
    cancel.add_argument("session_id", type=_session_id, help="session id")
    cancel.add_argument("transfer_id", type=_session_id, help="transfer id (see 'transfers')")
    cancel.add_argument("--reason", default="", help="why, for the user and the audit trail")

    audit = commands.add_parser(
        "audit", help="auditors: find sessions, read reports, save recordings and export bundles",
        description="Every recording download (a playback: recording.played) and every export (audit.exported) "
        "is itself recorded in the broker's audit trail.",
    )
    audit_cmds = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    found = audit_cmds.add_parser("sessions", help="list sessions, newest first")
    found.add_argument("--technician", metavar="USERNAME", help="only this technician's sessions")
    found.add_argument("--ticket", type=_ticket_id, help="only sessions on this ticket")
    found.add_argument("--host", metavar="TEXT", help="only hosts whose machine or user name contains TEXT")
    found.add_argument("--since", type=_when, metavar="DATE", help="created at or after (YYYY-MM-DD or ISO 8601, UTC)")
    found.add_argument("--until", type=_when, metavar="DATE", help="created at or before (YYYY-MM-DD or ISO 8601, UTC)")
    found.add_argument("--limit", type=number_in_range(int, 1, 1000, "sessions"), default=100,
                       help="at most this many (1-1000, default 100)")
    rep = audit_cmds.add_parser("report", help="a session's participants, consent, chat, files, timeline and integrity")
    rep.add_argument("session_id", type=_session_id, help="session id")
    rec = audit_cmds.add_parser("recording", help="save a session's recording as one WebM file (audited as a playback)")
    rec.add_argument("session_id", type=_session_id, help="session id")
    rec.add_argument("--out", type=Path, required=True, help="file to write, e.g. session.webm")
    rec.add_argument("--play", action="store_true", help="then play it with ffplay (from ffmpeg)")
    exp = audit_cmds.add_parser("export", help="save a bundle that verifies offline (audited)")
    exp.add_argument("session_id", type=_session_id, help="session id")
    exp.add_argument("--out", type=Path, required=True, help="file to write, e.g. session.zip")
    audit_cmds.add_parser("verify", help="have the broker verify its whole trail and every stored segment")
    kept = audit_cmds.add_parser(
        "heads", help="save the broker's signed heads, to keep where the broker cannot write",
        description="Save the signed head of every audit chain. Kept outside the broker, the file lets "
        "'deskhand-broker audit verify --heads FILE' and 'verify-bundle --heads FILE' detect any later "
        "rewrite of what it covers, even by someone holding the broker's signing key.",
    )
    kept.add_argument("--out", type=Path, required=True, help="file to write, e.g. heads-2026-12-02.json")

    snap = commands.add_parser(
        "snapshot", help="connect to a session's video and save the remote screen as a PNG"
    )
    snap.add_argument("session_id", type=_session_id, help="session id (printed by 'session start')")
    snap.add_argument("--out", type=Path, required=True, help="PNG file to write")
    snap.add_argument("--timeout", type=_seconds, default=60.0, help="give up after this many seconds (default 60)")
    snap.add_argument(
        "--settle", type=_seconds, default=1.0,
        help="seconds of video to let pass before taking the picture, so the image is sharp (default 1)",
    )
    snap.add_argument("--end", action="store_true", help="end the session after saving the picture")
    snap.add_argument("--reason", default="", help="with --end: the note to end it with")
    return parser


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _session_id(text: str) -> str:
    value = text.strip().lower()
    if not _UUID.match(value):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a session id (a UUID such as 65b3bd95-6679-4604-be05-c826beae02b7)"
        )
    return value


def _code_type(normalize: Callable[[str], str]) -> Callable[[str], str]:
    """An argparse ``type=`` from one of :mod:`protocol.totp`'s normalizers (its sentence as the error)."""

    def parse(text: str) -> str:
        try:
            return normalize(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


_totp_code = _code_type(normalize_totp_code)
_recovery_code = _code_type(normalize_recovery_code)
_second_factor = _code_type(normalize_second_factor)

_seconds = number_in_range(float, 0, 86400, "seconds")
_ticket_id = number_in_range(int, 1, 2**62 - 1, "ticket id")


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: use YYYY-MM-DD or an ISO 8601 time such as 2026-11-30T14:00"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _choice(kind: type[E], what: str) -> Callable[[str], E]:
    """An argparse ``type=`` for one member of the enum ``kind``, naming the choices when refused."""

    def parse(text: str) -> E:
        try:
            return kind(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {_shown(text)}; choose from {', '.join(m.value for m in kind)}"
            ) from None

    parse.__name__ = what.replace(" ", "_")
    return parse


def _choices(kind: type[E], what: str) -> Callable[[str], list[E]]:
    """An argparse ``type=`` for comma-separated members of ``kind`` (``new,open``)."""
    one = _choice(kind, what)

    def parse(text: str) -> list[E]:
        items = [one(part) for part in text.split(",") if part.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"no {what} given; choose from {', '.join(m.value for m in kind)}")
        return items

    parse.__name__ = what.replace(" ", "_")
    return parse


def _validated(kind: object, what: str) -> Callable[[str], Any]:
    """An argparse ``type=`` checking the text as the API will (a :mod:`protocol.api` type)."""
    adapter: TypeAdapter[Any] = TypeAdapter(kind)

    def parse(text: str) -> Any:
        try:
            return adapter.validate_python(text)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(f"{what} {_shown(text)}: {_first_problem(exc)}") from None

    parse.__name__ = what.replace(" ", "_")
    return parse


def _shown(text: str) -> str:
    """``text`` quoted for an error message, cut short if long."""
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _field(model: type[BaseModel], name: str, what: str) -> Callable[[str], Any]:
    """An argparse ``type=`` checking the text as field ``name`` of the request ``model`` (all else left out)."""

    def parse(text: str) -> Any:
        try:
            return getattr(model.model_validate({name: text}), name)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(f"{what} {_shown(text)}: {_first_problem(exc)}") from None

    parse.__name__ = what.replace(" ", "_")
    return parse


_category = _field(TicketUpdate, "category", "category")
_subject = _field(TicketUpdate, "subject", "subject")
_search_text = _validated(Annotated[SingleLine, Field(min_length=1, max_length=200)], "search text")
_target_minutes = number_in_range(int, 1, 366 * 24 * 60, "minutes")
_NAME = re.compile(NAME_PATTERN)


def _named(what: str) -> Callable[[str], str]:
    """An argparse ``type=`` for an account or team name (the broker's rule: lower case, 2-64 characters)."""

    def parse(text: str) -> str:
        if not _NAME.match(text):
            raise argparse.ArgumentTypeError(
                f"{_shown(text)} is not a {what}: use 2-64 lower-case letters, digits, dots, dashes or underscores"
            )
        return text

    parse.__name__ = what
    return parse


_username = _named("username")
_team = _named("team name")


def _assignee_filter(text: str) -> str:
    """``me``, ``none`` or a username."""
    if text in ("me", "none"):
        return text
    try:
        return _username(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (or me, or none)") from None


def _external(text: str) -> ExternalRef:
    """``SYSTEM:KEY``, e.g. ``jira:HELP-42``: a ticket's reference in another helpdesk."""
    system, colon, key = text.partition(":")
    if not colon:
        raise argparse.ArgumentTypeError(
            f"{_shown(text)} is not SYSTEM:KEY: write the helpdesk's name, a colon and the ticket's key there, "
            "e.g. jira:HELP-42"
        )
    try:
        return ExternalRef(system=system.strip(), key=key.strip())
    except ValidationError as exc:
        error = exc.errors()[0]
        part = "system" if error["loc"] and error["loc"][0] == "system" else "key"
        problem = (
            "use lower-case letters, digits, - or _, starting with a letter (jira, zendesk-eu)"
            if error["type"] == "string_pattern_mismatch" else _first_problem(exc)
        )
        raise argparse.ArgumentTypeError(f"the {part} of {_shown(text)}: {problem}") from None


def _json_option(command: argparse.ArgumentParser) -> None:
    """``--json`` after the action too (``ticket list --json``), as the global ``--json`` before it."""
    command.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help="print the result as JSON for scripts")


def _action(text: str) -> Action:
    try:
        return parse_action(text)
    except ActionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def actions_doc() -> str:
    doc = actions_module.__doc__ or ""
    return "actions:" + doc.split("``NAME:ARGUMENT``:", 1)[1].replace("``", "")


class Context:
    """Resolved options shared by the commands.

    Raises :class:`TransportError` for a broker URL the transport policy refuses
    (checked here, before any command can connect) or an unusable ``--ca-file``.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.credentials_path: Path = args.credentials or default_credentials_path()
        saved = load_credentials(self.credentials_path)
        self.broker: str = checked_broker_url(
            args.broker or os.environ.get("DESKHAND_BROKER") or (saved.broker if saved else DEFAULT_BROKER),
            insecure=args.insecure,
        )
        trust_ca_file(args.ca_file)
        token = os.environ.get("DESKHAND_TOKEN")
        if token is None and saved is not None and saved.broker.rstrip("/") == self.broker:
            token = saved.token
        self.token = token

    def client(self) -> TechConsole:
        return TechConsole(self.broker, self.token)

    def emit(self, model: BaseModel | list[BaseModel], lines: Lines) -> None:
        """``model`` as JSON with ``--json``, else ``lines`` (see :func:`say`)."""
        if self.args.json:
            _print_json([m.model_dump(mode="json") for m in model] if isinstance(model, list)
                        else model.model_dump(mode="json"))
        else:
            say(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(logging.INFO if args.verbose else logging.WARNING)
    handler = _COMMANDS.get(args.command)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        ctx = Context(args)
    except TransportError as exc:
        say(f"deskhand-console: {exc}", sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(handler(ctx))
    except UsageError as exc:
        say(f"deskhand-console: {exc}", sys.stderr)
        return EXIT_USAGE
    except (ConsoleError, ViewError) as exc:
        say(f"deskhand-console: {exc}", sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED


async def _login(ctx: Context) -> int:
    args = ctx.args
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"Password for {args.username}: ")
    async with ctx.client() as tc:
        result = await _sign_in(tc, args.username, password, args.totp, args.recovery_code)
    save_credentials(
        ctx.credentials_path,
        Credentials(ctx.broker, result.access_token, result.user.username, result.expires_at.isoformat()),
    )
    ctx.emit(result.user, f"Signed in to {ctx.broker} as {result.user.username} until {result.expires_at:%Y-%m-%d %H:%M} UTC.")
    if result.password_change_required:
        print("Your password must be changed: run 'deskhand-console passwd'.", file=sys.stderr)
    if result.totp_enrollment_required:
        print("Your role requires two-factor sign-in: run 'deskhand-console totp enroll' before anything else.",
              file=sys.stderr)
    return EXIT_OK


async def _sign_in(
    tc: TechConsole, username: str, password: str, totp_code: str | None, recovery_code: str | None
) -> LoginResponse:
    """Sign in, asking for a TOTP code when the broker wants one and none was given."""
    try:
        return await tc.login(username, password, totp_code=totp_code, recovery_code=recovery_code)
    except ConsoleError as exc:
        if exc.error != "totp_required" or totp_code or recovery_code:
            raise
    code = _ask_code("Code from your authenticator app (or a recovery code): ", normalize_second_factor)
    if is_totp_code(code):
        return await tc.login(username, password, totp_code=code)
    return await tc.login(username, password, recovery_code=code)


def _ask_code(prompt: str, normalize: Callable[[str], str]) -> str:
    """A code typed on (or piped into) standard input, checked with ``normalize``."""
    print(prompt, end="", file=sys.stderr, flush=True)
    line = sys.stdin.readline()
    if not line:
        raise ConsoleError("no code given (standard input ended)")
    try:
        return normalize(line.strip())
    except ValueError as exc:
        raise ConsoleError(str(exc)) from None


async def _totp(ctx: Context) -> int:
    args = ctx.args
    async with ctx.client() as tc:
        if args.totp_command == "enroll":
            started = await tc.enroll_totp()
            ctx.emit(started, [f"Secret: {started.secret}", f"URI:    {started.provisioning_uri}",
                               "Add it to your authenticator app (type the secret, or make a QR code of the URI)."])
            code = args.code or _ask_code("Code now shown by the app: ", normalize_totp_code)
            recovery = await tc.confirm_totp(code)
            ctx.emit(recovery, ["Two-factor sign-in is on. Recovery codes, each good once; keep them safe, "
                                "they are not shown again:", *(f"  {c}" for c in recovery.recovery_codes)])
        else:
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\n")
            else:
                password = getpass.getpass("Password: ")
            code = args.code or _ask_code("Code from your authenticator app (or a recovery code): ",
                                          normalize_second_factor)
            await tc.disable_totp(password, code)
            print("Two-factor sign-in is off.")
    return EXIT_OK


async def _logout(ctx: Context) -> int:
    async with ctx.client() as tc:
        try:
            await tc.logout()
        finally:
            forget_credentials(ctx.credentials_path)
    print("Signed out.")
    return EXIT_OK


async def _whoami(ctx: Context) -> int:
    async with ctx.client() as tc:
        user = await tc.me()
    ctx.emit(user, f"{user.username} ({user.display_name}){' admin' if user.is_admin else ''} at {ctx.broker}")
    return EXIT_OK


async def _passwd(ctx: Context) -> int:
    if ctx.args.stdin:
        current = sys.stdin.readline().rstrip("\n")
        new = sys.stdin.readline().rstrip("\n")
    else:
        current = getpass.getpass("Current password: ")
        new = getpass.getpass("New password: ")
        if getpass.getpass("New password again: ") != new:
            print("deskhand-console: the two new passwords differ", file=sys.stderr)
            return EXIT_USAGE
    # The length and the other rules are the broker's (configurable there); its refusal names the rule.
    async with ctx.client() as tc:
        await tc.change_password(current, new)
    print("Password changed.")
    return EXIT_OK


async def _ticket(ctx: Context) -> int:
    args = ctx.args
    action = "create" if args.ticket_command == "new" else args.ticket_command
    body = _ticket_request(args, action)  # checked before anything is sent
    async with ctx.client() as tc:
        if action == "create":
            ticket = await tc.create_ticket(body)
            ctx.emit(ticket, f"Ticket {ticket.id} opened: {ticket.subject} ({_summary(ticket)})")
        elif action == "list":
            found = await tc.list_tickets(
                status=args.status, priority=args.priority, assignee=args.assignee, team=args.team,
                category=args.category, sla=args.sla, q=args.search,
                external_system=args.external.system if args.external else None,
                external_key=args.external.key if args.external else None,
                order=args.order, limit=args.limit, offset=args.offset,
            )
            ctx.emit(found, _ticket_table(found, datetime.now(UTC)))
        elif action == "show":
            ticket = await tc.get_ticket(args.ticket_id)
            ctx.emit(ticket, _describe_ticket(ticket))
        elif action == "update":
            ticket = await tc.update_ticket(args.ticket_id, body)
            ctx.emit(ticket, f"Ticket {ticket.id} updated: {_summary(ticket)}")
        elif action == "comment":
            added = await tc.add_comment(args.ticket_id, body.body, public=body.visibility is Visibility.public)
            what = "Public reply" if added.visibility is Visibility.public else "Internal note"
            ctx.emit(added, f"{what} {added.id} added to ticket {args.ticket_id}.")
        else:
            me = await tc.me()
            ticket = await tc.update_ticket(args.ticket_id, assignee=me.username)
            ctx.emit(ticket, f"Ticket {ticket.id} is yours: {_summary(ticket)}")
    return EXIT_OK


class UsageError(Exception):
    """A command-line value the broker would refuse, caught before any request (exit status 2)."""


R = TypeVar("R", bound=BaseModel)


def _request(model: type[R], flags: dict[str, str], **fields: Any) -> R:
    """``model(**fields)``, or :class:`UsageError` naming the option behind each refused field."""
    try:
        return model(**fields)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            flag = flags.get(name, "--" + name.replace("_", "-") if name else "")
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{flag}: {message}" if flag else message)
        raise UsageError("; ".join(problems)) from None


_UPDATE_OPTIONS = "--status, --priority, --assign/--unassign, --team/--no-team, --category, " \
    "--external/--no-external or --subject"


def _ticket_request(args: argparse.Namespace, action: str) -> Any:
    """The request body of a ticket action, validated; None for actions that send none."""
    if action == "create":
        return _request(
            TicketCreate, {},
            subject=args.subject, requester_name=args.requester_name, requester_email=args.requester_email,
            priority=Priority(args.priority), description=args.description, category=args.category,
            assignee=args.assignee, team=args.team, external=args.external,
        )
    if action == "update":
        fields: dict[str, Any] = {
            name: value for name, value in (
                ("status", args.status), ("priority", args.priority), ("assignee", args.assign),
                ("team", args.team), ("category", args.category), ("external", args.external),
                ("subject", args.subject),
            ) if value is not None
        }
        # Given as None, these clear the field; left out, they keep it.
        for name, cleared in (("assignee", args.unassign), ("team", args.no_team), ("external", args.no_external)):
            if cleared:
                fields[name] = None
        if not fields:
            raise UsageError(f"nothing to change: give {_UPDATE_OPTIONS}")
        return _request(TicketUpdate, {"assignee": "--assign"}, **fields)
    if action == "comment":
        # Piped text ends with a line end that is not part of the comment.
        text = sys.stdin.read().rstrip("\r\n") if args.text == "-" else args.text
        return _request(
            CommentCreate, {"body": "TEXT"},
            body=text, visibility=Visibility.public if args.public else Visibility.internal,
        )
    return None


def _summary(t: TicketSummary) -> str:
    """One line: status, priority, who works it, SLA."""
    sla = _sla_cell(t.sla, datetime.now(UTC))
    return f"{t.status.value}, {t.priority.value}, {_assigned(t) or 'nobody assigned'}, SLA {sla}"


def _assigned(t: TicketSummary) -> str:
    parts = ([t.assignee.username] if t.assignee else []) + ([f"team {t.team.name}"] if t.team else [])
    return ", ".join(parts)


def _ticket_table(tickets: list[TicketSummary], now: datetime) -> list[str]:
    if not tickets:
        return ["No tickets."]
    rows = [["ID", "STATUS", "PRIORITY", "SLA (UTC)", "ASSIGNED", "SESSIONS", "SUBJECT"]]
    rows.extend(
        [str(t.id), t.status.value, t.priority.value, _sla_cell(t.sla, now), _assigned(t) or "-",
         str(t.session_count), t.subject]
        for t in tickets
    )
    return _columns(rows, right={0, 5})


def _columns(rows: list[list[str]], right: Collection[int] = ()) -> list[str]:
    """Rows as aligned text lines (the last column unpadded); ``right``: columns aligned right.

    Cells are made printable first (:func:`one_line`), so that widths count what is shown."""
    rows = [[one_line(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell if i == len(row) - 1 else cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _sla_cell(sla: SlaOut | None, now: datetime) -> str:
    """What a ticket's SLA needs now, in a few words: breached, at risk 12 min left, due 14:05, paused, met."""
    if sla is None:
        return "-"
    if sla.breached:
        return "breached"
    timers = (sla.first_response, sla.resolution)
    dues = [t.due_at for t in timers if t.due_at is not None]
    if sla.at_risk and dues:
        return f"at risk {_span((min(dues) - now).total_seconds())} left"
    if dues:
        return f"due {_moment(min(dues), now)}"
    if any(t.state == "paused" for t in timers):
        return "paused"
    return "met"


def _span(seconds: float, *, up: bool = True) -> str:
    """A length of time to the minute (rounded up, or with ``up=False`` down): 12 min, 4 h 05 min, 3 d 2 h."""
    minutes = max(0, -(-int(seconds) // 60) if up else int(seconds) // 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _moment(at: datetime, now: datetime) -> str:
    """A UTC time, with the date only when it is not today."""
    at = at.astimezone(UTC)
    return f"{at:%H:%M}" if at.date() == now.astimezone(UTC).date() else f"{at:%Y-%m-%d %H:%M}"


def _describe_timer(name: str, t: SlaTimerOut, now: datetime) -> str:
    spent = f"{_span(t.spent_s, up=False)} of {_span(t.target_s)}"
    if t.state == "met":
        return f"{name} met" + (f" {_moment(t.met_at, now)} UTC" if t.met_at else "") + f" ({spent})"
    if t.state == "paused":
        return f"{name} paused ({spent} spent)"
    if t.state == "breached":
        return f"{name} BREACHED ({spent})"
    due = f", due {_moment(t.due_at, now)} UTC" if t.due_at else ""
    return f"{name} {t.state.replace('_', ' ')} ({spent} spent{due})"


async def _sla(ctx: Context) -> int:
    args = ctx.args
    target = None
    if args.sla_command == "set":
        if args.resolution < args.first_response:
            raise UsageError(f"--resolution ({args.resolution} min) must not be shorter than "
                             f"--first-response ({args.first_response} min)")
        target = _request(
            SlaTargetIn, {}, priority=args.priority, first_response_minutes=args.first_response,
            resolution_minutes=args.resolution, business_hours=args.business_hours,
        )
    async with ctx.client() as tc:
        targets = await (tc.set_sla_targets([target]) if target is not None else tc.sla_targets())
    ctx.emit(targets, _describe_targets(targets))
    return EXIT_OK


def _describe_targets(s: SlaTargetsOut) -> list[str]:
    rows = [["PRIORITY", "FIRST RESPONSE", "RESOLUTION", "COUNTS"]]
    rows.extend(
        [t.priority.value, _span(t.first_response_minutes * 60), _span(t.resolution_minutes * 60),
         "business hours" if t.business_hours else "every hour"]
        for t in s.targets
    )
    return [*_columns(rows), f"Business hours: {s.business_hours} ({s.business_timezone}); "
            f"a ticket is at risk after {s.warn_percent} % of a target."]


async def _session(ctx: Context) -> int:
    args = ctx.args
    async with ctx.client() as tc:
        if args.session_command == "start":
            started = await tc.start_session(args.ticket)
            ctx.emit(started, [
                f"Code: {started.code_display}  (valid until {started.session.code_expires_at:%H:%M:%S} UTC)",
                f"Session: {started.session.id}",
                f"The end user runs: deskhand-host join {started.code_display.replace(' ', '-')} --broker {ctx.broker}"
                + _host_transport_flags(ctx.broker),
            ])
            if args.wait:
                with err.status("Waiting for the host to join…"):
                    session = await tc.wait_for_host(started.session.id, args.timeout)
                say(f"Joined: {_describe_host(session)}", sys.stderr)
        elif args.session_command == "show":
            session = await tc.get_session(args.session_id)
            ctx.emit(session, _describe_session(session))
        else:
            session = await tc.end_session(args.session_id, args.reason)
            ctx.emit(session, f"Session {session.id} ended.")
    return EXIT_OK


async def _requests(ctx: Context) -> int:
    async with ctx.client() as tc:
        waiting = await tc.list_requests(limit=ctx.args.limit)
    lines = [
        f"{r.position or '-':>3}. {r.id}  ticket {r.ticket_id}  {r.priority.value:<7} "
        f"waiting {_ago(r.created_at)}  {r.requester_name} on {r.host.machine_name}: {r.subject}"
        for r in waiting
    ]
    ctx.emit(waiting, lines or "Nobody is waiting.")
    return EXIT_OK


async def _pickup(ctx: Context) -> int:
    args = ctx.args
    async with ctx.client() as tc:
        picked = await tc.pick_up(args.request_id)
        session = picked.session
        ctx.emit(picked, [
            f"Picked up: ticket {session.ticket_id}, {picked.request.subject}",
            f"Session: {session.id}",
            f"Host: {_describe_host(session)}; the user is asked what you may do.",
        ])
        if args.wait:
            with err.status("Waiting for the user's consent…"):
                consented = await tc.wait_for_consent(session.id, args.timeout)
            say(f"Consent: {', '.join(p.value for p in consented.consent or []) or 'nothing'}", sys.stderr)
    return EXIT_OK


def _ago(moment: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _host_transport_flags(broker: str) -> str:
    """``--insecure`` when the host, too, will need it to reach ``broker`` (we had it)."""
    try:
        check_transport(broker)
    except TransportError:
        return " --insecure"
    return ""


async def _snapshot(ctx: Context) -> int:
    args = ctx.args
    async with ctx.client() as tc:
        view = tc.view(args.session_id)
        try:
            with err.status("Waiting for the remote screen…"):
                await view.start()
                frame = await view.snapshot(args.out, timeout=args.timeout, settle=args.settle)
            if args.end:
                await tc.end_session(args.session_id, args.reason)
        finally:
            await view.close()
    summary = {"path": str(args.out), "width": frame.width, "height": frame.height, "frames_received": view.frames_received}
    _print_json_or(ctx, summary, f"Saved {frame.width}x{frame.height} screen to {args.out} "
                                 f"({view.frames_received} frames received).")
    return EXIT_OK


async def _control(ctx: Context) -> int:
    args = ctx.args
    async with ctx.client() as tc:
        view = tc.view(args.session_id)
        try:
            with err.status("Waiting for the host to consent…"):
                await view.start()
                await view.wait_for_control(args.timeout)
                await view.wait_until(lambda: view.consent is not None, args.timeout, "the host's consent")
            assert view.consent is not None
            say(f"Host allows: {', '.join(p.value for p in view.consent.permissions) or 'nothing'}", sys.stderr)
            for action in args.actions:
                await _run_action(view, action)
            await asyncio.sleep(args.listen)
            report = {
                "consent": [p.value for p in view.consent.permissions],
                "chat": [{"from": c.sender, "text": c.text} for c in view.chat],
                "clipboard": view.remote_clipboard,
                "refused": [r.model_dump(exclude={"type"}) for r in view.refusals],
            }
            if args.end:
                await tc.end_session(args.session_id, args.reason)
        finally:
            await view.close()
    _print_json_or(ctx, report, [
        *(f"user: {line.text}" for line in view.chat if line.sender == "user"),
        *([f"host clipboard: {view.remote_clipboard}"] if view.remote_clipboard is not None else []),
        *(f"refused {refused.what} {refused.seq or ''}: {refused.reason}".replace("  ", " ") for refused in view.refusals),
    ])
    return EXIT_FAILED if view.refusals else EXIT_OK


async def _run_action(view: RemoteView, action: Action) -> None:
    if action.name == "click":
        view.click(action.x, action.y, action.button)
    elif action.name == "move":
        view.move(action.x, action.y, reliable=True)
    elif action.name == "type":
        view.type_text(action.text)
    elif action.name == "key":
        view.press_key(action.text)
    elif action.name == "chat":
        view.send_chat(action.text)
    elif action.name == "clipboard":
        view.set_clipboard(action.text)
    elif action.name == "monitor":
        view.select_monitor(int(action.number))
    else:
        await asyncio.sleep(action.number)


class _RateColumn(ProgressColumn):
    """Rate and time left as :class:`~peer.transfer_rate.TransferRate` measures them.

    Not rich's own speed column: that needs two updates inside its window and shows "?"
    for a file that arrives in one chunk, and it counts from when the bar appeared (the
    wait for the other side to accept included)."""

    def render(self, task: Task) -> Text:
        rate = task.fields.get("rate", 0.0)
        if not rate:
            return Text("…", style="progress.data.speed")
        left = (task.total or 0) - task.completed
        return Text(f"{size_text(rate)}/s" + (f", {seconds_text(left / rate)} left" if left > 0 else ""),
                    style="progress.data.speed")


class _TransferBars:
    """The console's transfer progress bars on stderr, each with the rate of its transfer."""

    def __init__(self) -> None:
        self._bars = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(), _RateColumn(),
            console=err, transient=False,
        )

    def __enter__(self) -> _TransferBars:
        self._bars.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._bars.stop()

    def track(self, description: str) -> tuple[ProgressHook, TransferRate]:
        """A new bar: the progress hook to give its transfer, and the rate it measures (for the summary)."""
        task = self._bars.add_task(one_line(description), total=None, rate=0.0)
        rate = TransferRate()

        def update(done: int, total: int) -> None:
            self._bars.update(task, completed=done, total=total, rate=rate.update(done, total, time.monotonic()))

        return update, rate


def _how_fast(rate: TransferRate) -> str:
    """``: 3.15 MB in 1.2 s, 2.63 MB/s`` to end a summary line with, or nothing when not known."""
    summary = rate.summary()
    return f": {summary}" if summary else ""


async def _send(ctx: Context) -> int:
    args = ctx.args
    results = []
    lines = []
    async with ctx.client() as tc:
        with _TransferBars() as bars:
            for path in args.files:
                progress, rate = bars.track(f"⬆ {path.name}")
                sent = await tc.send_file(args.session_id, path, accept_timeout=args.timeout, progress=progress)
                results.append(sent)
                lines.append(f"Sent {sent.name} ({sent.size} bytes, SHA-256 {sent.sha256}){_how_fast(rate)}; "
                             f"the host saved it as {sent.saved_as}.")
    ctx.emit(results, lines)
    return EXIT_OK


async def _fetch(ctx: Context) -> int:
    args = ctx.args
    async with ctx.client() as tc:
        with _TransferBars() as bars:
            progress, rate = bars.track(f"⬇ {args.path or 'file'}")
            saved = await tc.fetch_file(
                args.session_id, args.path, args.destination, note=args.note, answer_timeout=args.timeout,
                progress=progress,
            )
    sha256 = await asyncio.to_thread(file_sha256, saved)
    _print_json_or(ctx, {"path": str(saved), "size": saved.stat().st_size, "sha256": sha256},
                   f"Saved {saved} ({saved.stat().st_size} bytes, SHA-256 {sha256}){_how_fast(rate)}.")
    return EXIT_OK


async def _transfers(ctx: Context) -> int:
    async with ctx.client() as tc, tc.transfers(ctx.args.session_id) as files:
        transfers = await files.all()
    lines = [
        f"{t.id}  {t.state.value:<9} {'⬆' if t.direction.value == 'to_host' else '⬇'} {t.name} ({t.size} bytes)"
        + (f": {t.reason}" if t.reason else "")
        for t in transfers
    ]
    ctx.emit(transfers, lines or "No transfers.")
    return EXIT_OK


async def _cancel(ctx: Context) -> int:
    async with ctx.client() as tc, tc.transfers(ctx.args.session_id) as files:
        try:
            cancelled = await files.cancel(ctx.args.transfer_id, ctx.args.reason)
        except TransferError as error:
            raise ConsoleError(error.message) from None
    ctx.emit(cancelled, f"Transfer {cancelled.id} ({cancelled.name}) cancelled.")
    return EXIT_OK


async def _audit(ctx: Context) -> int:
    args = ctx.args
    async with ctx.client() as tc:
        if args.audit_command == "sessions":
            found = await tc.audit_sessions(
                technician=args.technician, ticket=args.ticket, host=args.host,
                since=args.since, until=args.until, limit=args.limit,
            )
            lines = [
                f"{s.id}  {s.created_at:%Y-%m-%d %H:%M} UTC  ticket {s.ticket_id:<5} {s.state.value:<9} "
                f"{s.technician.username:<14} {_describe_host(s)}"
                for s in found
            ]
            ctx.emit(found, lines or "No sessions match.")
        elif args.audit_command == "report":
            report = await tc.audit_report(args.session_id)
            _print_json_or(ctx, report, _describe_report(report))
        elif args.audit_command == "verify":
            verdict = await tc.audit_verify()
            _print_json_or(ctx, verdict, _describe_verdict(verdict))
            return EXIT_OK if verdict["ok"] else EXIT_FAILED
        else:
            save = {"recording": tc.save_recording, "export": tc.save_export,
                    "heads": lambda _session, out, progress: tc.save_heads(out, progress)}[args.audit_command]
            with _TransferBars() as bars:
                progress, _rate = bars.track(f"⬇ {args.out.name}")
                saved = await save(getattr(args, "session_id", None), args.out, progress)
            sha256 = await asyncio.to_thread(file_sha256, saved)
            hint = {"export": f"; check it offline with: deskhand-broker audit verify-bundle {saved}",
                    "heads": f"; keep it where the broker cannot write, and check the trail against it later with: "
                             f"deskhand-broker audit verify --heads {saved}"}.get(args.audit_command, "")
            _print_json_or(ctx, {"path": str(saved), "size": saved.stat().st_size, "sha256": sha256},
                           f"Saved {saved} ({saved.stat().st_size} bytes, SHA-256 {sha256}){hint}.")
            if args.audit_command == "recording" and args.play:
                return _play(saved)
    return EXIT_OK


def _play(path: Path) -> int:
    player = shutil.which("ffplay")
    if player is None:
        print("deskhand-console: --play needs ffplay: install ffmpeg (apt install ffmpeg), or open the file "
              "in a browser", file=sys.stderr)
        return EXIT_FAILED
    return subprocess.run([player, "-autoexit", "-loglevel", "error", str(path)], check=False).returncode


def _print_json_or(ctx: Context, data: object, lines: Lines) -> None:
    """``data`` as JSON with ``--json``, else ``lines`` (see :func:`say`)."""
    if ctx.args.json:
        _print_json(data)
    else:
        say(lines)


def _describe_report(r: dict) -> list[str]:
    s, integrity, recording, counts = r["session"], r["integrity"], r["recording"], r["counts"]
    tech, host = r["participants"][0], r["participants"][1]
    lines = [
        f"Session {s['id']} on ticket {r['ticket']['id']} ({r['ticket']['subject']}): {s['state']}",
        f"  technician: {tech['who']}, account {tech['username']}",
        f"  host:       {host['who']} on {host['machine_name']} ({host['os']})",
        f"  recording:  {recording['segments']} segments, {recording['duration_ms'] / 1000:.1f} s, {recording['bytes']} bytes",
        "  integrity:  " + ("verified" if integrity["ok"] else "FAILED: " + "; ".join(integrity["problems"]))
        + f" ({integrity['events']} events, {integrity['segments']} segments, {integrity['checkpoints']} signed heads)",
        f"  counts:     chat messages {counts['chat_messages']}, clipboard shares {counts['clipboard_shares']}, "
        f"inputs sent {counts['inputs_sent']} (applied {counts['inputs_applied']}, refused {counts['inputs_refused']}), "
        f"monitor switches {counts['monitor_switches']}, files {counts['files']}",
        "  consent:",
        *(f"    {c['at']}  {', '.join(c['permissions'] or []) or 'nothing'}" for c in r["consent"]),
        "  chat:",
        *(f"    {c['at']}  {c['who']}: {c['text']}" for c in r["chat"]),
        "  files:",
        *(f"    {f['direction']} {f['name']} ({f['size']} bytes) {f['state']} SHA-256 {f['sha256'] or '-'}" for f in r["files"]),
        "  timeline (in the order the broker received it; [a peer's own clock]):",
        *(f"    {_describe_entry(e)}" for e in r["timeline"]),
    ]
    return lines


def _describe_entry(e: dict) -> str:
    """One timeline line: time, kind, who, what; a run of events with its count and span."""
    what = ""
    if e["count"] > 1:
        amount = f", {e['total']} in all" if e["total"] is not None else ""
        what = f"x{e['count']}{amount} until {e['last_at']} ({e['span_seconds']:g} s)"
    elif e["kind"] in ("chat.sent", "chat.received", "input.text"):
        what = f"\u201c{e['data'].get('text', '')}\u201d"
    elif e["total"] is not None:
        what = f"{e['total']}"
    clock = f"[{e['reported_at']}]" if e["reported_at"] else ""
    return "  ".join(part for part in (e["at"], e["kind"], e["who"], what, clock) if part)


def _describe_verdict(v: dict) -> list[str]:
    head = "Trail verified" if v["ok"] else "Trail FAILED verification"
    lines = [f"{head}: {v['chains']} chains, {v['events']} events, {v['checkpoints']} signed heads, {v['segments']} segments."]
    lines.extend(f"  {problem}" for problem in v["problems"])
    return lines


def _describe_host(session: SessionOut) -> str:
    if session.host is None:
        return "no host yet"
    h = session.host
    return f"{h.user_name} on {h.machine_name} ({h.os})"


def _describe_session(s: SessionOut) -> list[str]:
    lines = [
        f"Session {s.id} on ticket {s.ticket_id}: {s.state.value}",
        f"  technician: {s.technician.display_name} ({s.technician.username})",
        f"  host:       {_describe_host(s)}",
        f"  created:    {s.created_at:%Y-%m-%d %H:%M:%S} UTC",
    ]
    if s.connected_at:
        lines.append(f"  connected:  {s.connected_at:%Y-%m-%d %H:%M:%S} UTC")
    if s.ended_at:
        by = f" by {s.ended_by.value}" if s.ended_by else ""
        lines.append(f"  ended:      {s.ended_at:%Y-%m-%d %H:%M:%S} UTC{by}" + (f": {s.end_reason}" if s.end_reason else ""))
    return lines


_COMMENT_KINDS = {CommentKind.note: "internal note", CommentKind.reply: "public reply"}
"""A technician's comments by name; the broker's (session report, survey, inbound) as visibility and kind."""


def _describe_ticket(t: TicketOut) -> list[str]:
    now = datetime.now(UTC)
    moves = ", ".join(s.value for s in t.allowed_statuses) or "nothing"
    lines = [
        f"Ticket {t.id}: {t.subject}",
        f"  status {t.status.value} (may become {moves}), priority {t.priority.value}"
        + (f", category {t.category}" if t.category else ""),
        f"  opened {t.created_at:%Y-%m-%d %H:%M} UTC by "
        + (t.created_by.username if t.created_by else f"the requester ({t.created_via.value})")
        + (f", reopened {t.reopen_count} times" if t.reopen_count else ""),
        f"  requester: {t.requester_name}" + (f" <{t.requester_email}>" if t.requester_email else ""),
        f"  assigned:  {_assigned(t) or 'nobody'}",
    ]
    if t.external:
        lines.append(f"  external:  {t.external.system}:{t.external.key}")
    if t.sla:
        calendar = "business hours" if t.sla.business_hours else "every hour counts"
        lines.append(f"  SLA ({calendar}): {_describe_timer('first response', t.sla.first_response, now)}; "
                     f"{_describe_timer('resolution', t.sla.resolution, now)}")
    if t.description:
        lines.extend(_indented(t.description, "  "))
    lines.append(f"  sessions: {len(t.sessions)}")
    lines.extend("  " + line for s in t.sessions for line in _describe_session(s))
    lines.append(f"  comments: {len(t.comments)}")
    for c in t.comments:
        who = c.author_user.username if c.author_user else c.author
        kind = _COMMENT_KINDS.get(c.kind, f"{c.visibility.value} {c.kind.value.replace('_', ' ')}")
        lines.append(f"    {c.at:%Y-%m-%d %H:%M} UTC  {who}, {kind}:")
        lines.extend(_indented(c.body, "      "))
    for v in t.surveys:
        lines.append(f"  survey of session {v.session_id}: {v.rating}/5" + (f" \"{v.comment}\"" if v.comment else ""))
    return lines


def _indented(text: str, prefix: str) -> list[str]:
    """The lines of ``text`` (its own line breaks only: :func:`multi_line`), each after ``prefix``; blank ones empty.

    Tabs become spaces: a printed line shows a tab as an escape (:func:`say`)."""
    return [(prefix + line.expandtabs(4)).rstrip() for line in multi_line(text).split("\n")]


_COMMANDS: dict[str | None, Callable[[Context], Awaitable[int]]] = {
    "login": _login,
    "logout": _logout,
    "whoami": _whoami,
    "passwd": _passwd,
    "totp": _totp,
    "ticket": _ticket,
    "tickets": _ticket,
    "sla": _sla,
    "session": _session,
    "requests": _requests,
    "pickup": _pickup,
    "snapshot": _snapshot,
    "control": _control,
    "send": _send,
    "fetch": _fetch,
    "transfers": _transfers,
    "cancel": _cancel,
    "audit": _audit,
}


if __name__ == "__main__":
    sys.exit(main())
