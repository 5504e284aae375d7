"""``deskhand-console``: the technician's command line, for scripting and tests."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from peer.transfers import TransferError, file_sha256
from protocol.api import LoginResponse, Priority, SessionOut, TicketCreate, TicketOut
from protocol.totp import is_totp_code, normalize_recovery_code, normalize_second_factor, normalize_totp_code
from protocol.cli import add_transport_options, configure_logging, number_in_range
from protocol.transport import TransportError, check_transport, checked_broker_url, trust_ca_file

from . import actions as actions_module
from .actions import Action, ActionError, parse_action
from .client import ConsoleError, TechConsole
from .credentials import (
    Credentials,
    default_credentials_path,
    forget_credentials,
    load_credentials,
    save_credentials,
)
from .remote_view import RemoteView, ViewError

DEFAULT_BROKER = "http://127.0.0.1:8000"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

err = Console(stderr=True, highlight=False)


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

    ticket = commands.add_parser("ticket", help="create, list and show tickets")
    ticket_cmds = ticket.add_subparsers(dest="ticket_command", metavar="ACTION", required=True)
    create = ticket_cmds.add_parser("create", help="open a ticket")
    create.add_argument("--subject", required=True, help="one line saying what is wrong")
    create.add_argument("--requester-name", required=True, help="who asked for help")
    create.add_argument("--requester-email", required=True, help="their email address")
    create.add_argument(
        "--priority", choices=[p.value for p in Priority], default=Priority.normal.value,
        help="ticket priority (default normal)",
    )
    create.add_argument("--description", default="", help="longer description (optional)")
    listing = ticket_cmds.add_parser("list", help="list tickets, newest first")
    listing.add_argument("--status", help="only tickets in this status (e.g. open)")
    listing.add_argument("--limit", type=number_in_range(int, 1, 500, "limit"), default=50, help="at most this many (1-500, default 50)")
    show = ticket_cmds.add_parser("show", help="show a ticket with its sessions")
    show.add_argument("ticket_id", type=number_in_range(int, 1, 2**62, "ticket number"), help="ticket number")

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
        description="Every recording download and every export is itself recorded in the broker's audit trail.",
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
    rec = audit_cmds.add_parser("recording", help="save a session's recording as one WebM file (audited)")
    rec.add_argument("session_id", type=_session_id, help="session id")
    rec.add_argument("--out", type=Path, required=True, help="file to write, e.g. session.webm")
    rec.add_argument("--play", action="store_true", help="then play it with ffplay (from ffmpeg)")
    exp = audit_cmds.add_parser("export", help="save a bundle that verifies offline (audited)")
    exp.add_argument("session_id", type=_session_id, help="session id")
    exp.add_argument("--out", type=Path, required=True, help="file to write, e.g. session.zip")
    audit_cmds.add_parser("verify", help="have the broker verify its whole trail and every stored segment")

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
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


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

    def emit(self, model: BaseModel | list[BaseModel], text: str) -> None:
        if self.args.json:
            if isinstance(model, list):
                print(json.dumps([m.model_dump(mode="json") for m in model], indent=2))
            else:
                print(model.model_dump_json(indent=2))
        else:
            print(text)


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
        print(f"deskhand-console: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(handler(ctx))
    except (ConsoleError, ViewError) as exc:
        print(f"deskhand-console: {exc}", file=sys.stderr)
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
            ctx.emit(started, f"Secret: {started.secret}\nURI:    {started.provisioning_uri}\n"
                              "Add it to your authenticator app (type the secret, or make a QR code of the URI).")
            code = args.code or _ask_code("Code now shown by the app: ", normalize_totp_code)
            recovery = await tc.confirm_totp(code)
            ctx.emit(recovery, "Two-factor sign-in is on. Recovery codes, each good once; keep them safe, "
                               "they are not shown again:\n" + "\n".join(f"  {c}" for c in recovery.recovery_codes))
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
    async with ctx.client() as tc:
        if args.ticket_command == "create":
            try:
                body = TicketCreate(
                    subject=args.subject, requester_name=args.requester_name,
                    requester_email=args.requester_email, priority=Priority(args.priority),
                    description=args.description,
                )
            except ValidationError as exc:
                for e in exc.errors():
                    field = "--" + str(e["loc"][0]).replace("_", "-") if e["loc"] else "input"
                    print(f"deskhand-console: {field}: {e['msg']}", file=sys.stderr)
                return EXIT_USAGE
            ticket = await tc.create_ticket(body)
            ctx.emit(ticket, f"Ticket {ticket.id} opened: {ticket.subject}")
        elif args.ticket_command == "list":
            tickets = await tc.list_tickets(status=args.status, limit=args.limit)
            lines = [
                f"{t.id:>6}  {t.status:<8} {t.priority.value:<7} {t.session_count:>2} sessions  {t.subject}"
                for t in tickets
            ]
            ctx.emit(tickets, "\n".join(lines) or "No tickets.")
        else:
            ticket = await tc.get_ticket(args.ticket_id)
            ctx.emit(ticket, _describe_ticket(ticket))
    return EXIT_OK


async def _session(ctx: Context) -> int:
    args = ctx.args
    async with ctx.client() as tc:
        if args.session_command == "start":
            started = await tc.start_session(args.ticket)
            ctx.emit(
                started,
                f"Code: {started.code_display}  (valid until {started.session.code_expires_at:%H:%M:%S} UTC)\n"
                f"Session: {started.session.id}\n"
                f"The end user runs: deskhand-host join {started.code_display.replace(' ', '-')} --broker {ctx.broker}"
                + _host_transport_flags(ctx.broker),
            )
            if args.wait:
                with err.status("Waiting for the host to join…"):
                    session = await tc.wait_for_host(started.session.id, args.timeout)
                print(f"Joined: {_describe_host(session)}", file=sys.stderr)
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
    ctx.emit(waiting, "\n".join(lines) or "Nobody is waiting.")
    return EXIT_OK


async def _pickup(ctx: Context) -> int:
    args = ctx.args
    async with ctx.client() as tc:
        picked = await tc.pick_up(args.request_id)
        session = picked.session
        ctx.emit(
            picked,
            f"Picked up: ticket {session.ticket_id}, {picked.request.subject}\n"
            f"Session: {session.id}\n"
            f"Host: {_describe_host(session)}; the user is asked what you may do.",
        )
        if args.wait:
            with err.status("Waiting for the user's consent…"):
                consented = await tc.wait_for_consent(session.id, args.timeout)
            print(f"Consent: {', '.join(p.value for p in consented.consent or []) or 'nothing'}", file=sys.stderr)
    return EXIT_OK


def _ago(moment: datetime) -> str:
    seconds = max(0, int((datetime.now(timezone.utc) - moment).total_seconds()))
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
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"Saved {frame.width}x{frame.height} screen to {args.out} ({view.frames_received} frames received).")
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
            print(f"Host allows: {', '.join(p.value for p in view.consent.permissions) or 'nothing'}", file=sys.stderr)
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
    if args.json:
        print(json.dumps(report))
    else:
        for line in view.chat:
            if line.sender == "user":
                print(f"user: {line.text}")
        if view.remote_clipboard is not None:
            print(f"host clipboard: {view.remote_clipboard}")
        for refused in view.refusals:
            print(f"refused {refused.what} {refused.seq or ''}: {refused.reason}".replace("  ", " "))
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


def _transfer_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=err, transient=False,
    )


async def _send(ctx: Context) -> int:
    args = ctx.args
    results = []
    async with ctx.client() as tc:
        with _transfer_bar() as bar:
            for path in args.files:
                task = bar.add_task(f"⬆ {path.name}", total=None)
                done = await tc.send_file(
                    args.session_id, path, accept_timeout=args.timeout,
                    progress=lambda n, total, t=task: bar.update(t, completed=n, total=total),
                )
                results.append(done)
    ctx.emit(results, "\n".join(f"Sent {t.name} ({t.size} bytes, SHA-256 {t.sha256}); the host saved it as {t.saved_as}." for t in results))
    return EXIT_OK


async def _fetch(ctx: Context) -> int:
    args = ctx.args
    async with ctx.client() as tc:
        with _transfer_bar() as bar:
            task = bar.add_task(f"⬇ {args.path or 'file'}", total=None)
            saved = await tc.fetch_file(
                args.session_id, args.path, args.destination, note=args.note, answer_timeout=args.timeout,
                progress=lambda n, total: bar.update(task, completed=n, total=total),
            )
    sha256 = await asyncio.to_thread(file_sha256, saved)
    if args.json:
        print(json.dumps({"path": str(saved), "size": saved.stat().st_size, "sha256": sha256}))
    else:
        print(f"Saved {saved} ({saved.stat().st_size} bytes, SHA-256 {sha256}).")
    return EXIT_OK


async def _transfers(ctx: Context) -> int:
    async with ctx.client() as tc, tc.transfers(ctx.args.session_id) as files:
        transfers = await files.all()
    lines = [
        f"{t.id}  {t.state.value:<9} {'⬆' if t.direction.value == 'to_host' else '⬇'} {t.name} ({t.size} bytes)"
        + (f": {t.reason}" if t.reason else "")
        for t in transfers
    ]
    ctx.emit(transfers, "\n".join(lines) or "No transfers.")
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
            ctx.emit(found, "\n".join(lines) or "No sessions match.")
        elif args.audit_command == "report":
            report = await tc.audit_report(args.session_id)
            _print_json_or(ctx, report, _describe_report(report))
        elif args.audit_command == "verify":
            verdict = await tc.audit_verify()
            _print_json_or(ctx, verdict, _describe_verdict(verdict))
            return EXIT_OK if verdict["ok"] else EXIT_FAILED
        else:
            save = tc.save_recording if args.audit_command == "recording" else tc.save_export
            with _transfer_bar() as bar:
                task = bar.add_task(f"⬇ {args.out.name}", total=None)
                saved = await save(args.session_id, args.out, lambda n, total: bar.update(task, completed=n, total=total))
            sha256 = await asyncio.to_thread(file_sha256, saved)
            hint = ("; check it offline with: deskhand-broker audit verify-bundle " + str(saved)) if args.audit_command == "export" else ""
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


def _print_json_or(ctx: Context, data: object, text: str) -> None:
    print(json.dumps(data, indent=2) if ctx.args.json else text)


def _describe_report(r: dict) -> str:
    s, integrity, recording = r["session"], r["integrity"], r["recording"]
    tech, host = r["participants"][0], r["participants"][1]
    lines = [
        f"Session {s['id']} on ticket {r['ticket']['id']} ({r['ticket']['subject']}): {s['state']}",
        f"  technician: {tech['display_name']} ({tech['username']})",
        f"  host:       {host['user_name']} on {host['machine_name']} ({host['os']})",
        f"  recording:  {recording['segments']} segments, {recording['duration_ms'] / 1000:.1f} s, {recording['bytes']} bytes",
        "  integrity:  " + ("verified" if integrity["ok"] else "FAILED: " + "; ".join(integrity["problems"]))
        + f" ({integrity['events']} events, {integrity['segments']} segments, {integrity['checkpoints']} signed heads)",
        "  consent:",
        *(f"    {c['at']}  {', '.join(c['permissions'] or []) or 'nothing'}" for c in r["consent"]),
        "  chat:",
        *(f"    {c['at']}  {c['from']}: {c['text']}" for c in r["chat"]),
        "  files:",
        *(f"    {f['direction']} {f['name']} ({f['size']} bytes) {f['state']} SHA-256 {f['sha256'] or '-'}" for f in r["files"]),
        "  timeline:",
        *(f"    {e['at']}  {e['kind']}  {e.get('actor') or ''}".rstrip() for e in r["timeline"]),
    ]
    return "\n".join(lines)


def _describe_verdict(v: dict) -> str:
    head = "Trail verified" if v["ok"] else "Trail FAILED verification"
    lines = [f"{head}: {v['chains']} chains, {v['events']} events, {v['checkpoints']} signed heads, {v['segments']} segments."]
    lines.extend(f"  {problem}" for problem in v["problems"])
    return "\n".join(lines)


def _describe_host(session: SessionOut) -> str:
    if session.host is None:
        return "no host yet"
    h = session.host
    return f"{h.user_name} on {h.machine_name} ({h.os})"


def _describe_session(s: SessionOut) -> str:
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
    return "\n".join(lines)


def _describe_ticket(t: TicketOut) -> str:
    lines = [
        f"Ticket {t.id}: {t.subject}",
        f"  status {t.status}, priority {t.priority.value}, opened {t.created_at:%Y-%m-%d %H:%M} UTC by "
        + (t.created_by.username if t.created_by else f"the requester ({t.created_via.value})"),
        f"  requester: {t.requester_name} <{t.requester_email}>",
    ]
    if t.description:
        lines.append(f"  {t.description}")
    lines.append(f"  sessions: {len(t.sessions)}")
    lines.extend("  " + _describe_session(s).replace("\n", "\n  ") for s in t.sessions)
    return "\n".join(lines)


_COMMANDS: dict[str | None, Callable[[Context], Awaitable[int]]] = {
    "login": _login,
    "logout": _logout,
    "whoami": _whoami,
    "passwd": _passwd,
    "totp": _totp,
    "ticket": _ticket,
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
