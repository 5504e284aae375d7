"""Session commands: ``session`` (start, show, end), ``requests`` (the help-request queue) and ``pickup``."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from protocol.cli import number_in_range
from protocol.transport import TransportError, check_transport

from . import arguments as arg
from .command import Command, Subcommands
from .context import Context
from .exit_codes import EXIT_OK
from .output import err, say
from .session_text import describe_host, describe_session


def _add_session(commands: Subcommands) -> argparse.ArgumentParser:
    session = commands.add_parser("session", help="start, show and end support sessions")
    session_cmds = session.add_subparsers(dest="session_command", metavar="ACTION", required=True)
    start = session_cmds.add_parser("start", help="start a session on a ticket and print its one-time code")
    start.add_argument("--ticket", type=number_in_range(int, 1, 2**62, "ticket number"), required=True, help="ticket number")
    start.add_argument("--wait", action="store_true", help="after printing the code, wait until a host joins")
    start.add_argument("--timeout", type=arg.seconds, default=600.0, help="how long --wait waits (seconds, default 600)")
    sshow = session_cmds.add_parser("show", help="show a session's state")
    sshow.add_argument("session_id", type=arg.session_id, help="session id (printed by 'session start')")
    end = session_cmds.add_parser("end", help="end a session")
    end.add_argument("session_id", type=arg.session_id, help="session id (printed by 'session start')")
    end.add_argument("--reason", default="", help="a note saying why or what was done")
    return session


def _add_requests(commands: Subcommands) -> argparse.ArgumentParser:
    waiting = commands.add_parser("requests", help="list the help requests waiting in the queue (asked without a code)")
    waiting.add_argument("--limit", type=number_in_range(int, 1, 500, "limit"), default=200,
                         help="at most this many (1-500, default 200)")
    return waiting


def _add_pickup(commands: Subcommands) -> argparse.ArgumentParser:
    pickup = commands.add_parser(
        "pickup", help="pick up a waiting help request: its session starts at once, no code",
        description="Starts the session with the user who asked (see 'requests'). Nothing is read "
        "aloud: the user's computer is waiting and joins at once, then asks the user what you may do. "
        "Work the session as after 'session start' (control, snapshot, send, fetch, session end).",
    )
    pickup.add_argument("request_id", type=arg.session_id, help="request id (see 'requests')")
    pickup.add_argument("--wait", action="store_true", help="then wait until the user has answered the consent prompt")
    pickup.add_argument("--timeout", type=arg.seconds, default=300.0, help="how long --wait waits (seconds, default 300)")
    return pickup


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
                say(f"Joined: {describe_host(session)}", sys.stderr)
        elif args.session_command == "show":
            session = await tc.get_session(args.session_id)
            ctx.emit(session, describe_session(session))
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
            f"Host: {describe_host(session)}; the user is asked what you may do.",
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


SESSION = Command(_add_session, _session)
REQUESTS = Command(_add_requests, _requests)
PICKUP = Command(_add_pickup, _pickup)
