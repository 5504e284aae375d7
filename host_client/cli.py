"""``deskhand-host``: join a support session with the code your technician gave you."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from protocol.cli import configure_logging, number_in_range
from protocol.codes import CodeFormatError, normalize_code

from .capture import CaptureError, ScreenTrack
from .join import JoinRefused, join_session
from .session import HostSession

DEFAULT_BROKER = "http://127.0.0.1:8000"

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deskhand-host",
        description="Share this computer's screen with a Deskhand technician.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log connection details to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    join = commands.add_parser(
        "join",
        help="join a session with a support code",
        description="Join the session your technician started, stream this screen until the "
        "technician ends the session or you press Ctrl-C, then print a one-line summary.",
    )
    join.add_argument(
        "code",
        help="the 9-digit code your technician read to you; spaces or dashes are fine (123 456 789)",
    )
    join.add_argument(
        "--broker",
        default=os.environ.get("DESKHAND_BROKER", DEFAULT_BROKER),
        help=f"address of your organisation's Deskhand broker (default: DESKHAND_BROKER or {DEFAULT_BROKER})",
    )
    join.add_argument("--monitor", type=number_in_range(int, 1, 64, "monitor"), default=1, help="which monitor to share, 1 = primary (default 1)")
    join.add_argument("--fps", type=number_in_range(float, 1, 60, "frame rate"), default=30.0, help="highest frame rate to send, 1-60 (default 30)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(logging.INFO if args.verbose else logging.WARNING)
    if args.command != "join":
        parser.print_help()
        return EXIT_USAGE
    try:
        code = normalize_code(args.code)
    except CodeFormatError as exc:
        print(f"deskhand-host: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_join(args.broker, code, args.monitor, args.fps))


async def _join(broker: str, code: str, monitor: int, fps: float) -> int:
    session: HostSession | None = None
    main_task = asyncio.current_task()
    assert main_task is not None

    def on_signal() -> None:
        # Before the session exists there is nothing to end: just stop.
        if session is None:
            main_task.cancel()
        else:
            asyncio.ensure_future(session.end("the user ended the session"))

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        try:
            ScreenTrack(monitor=monitor, fps=fps).stop()  # fail before burning the code
        except CaptureError as exc:
            print(f"deskhand-host: {exc}", file=sys.stderr)
            return EXIT_FAILED
        try:
            joined = await join_session(broker, code)
        except JoinRefused as refused:
            print(f"deskhand-host: {refused.message}", file=sys.stderr)
            return EXIT_FAILED
        session = HostSession(broker, joined, track_factory=lambda: ScreenTrack(monitor=monitor, fps=fps))
        print(
            f"Joined session {joined.session_id} on ticket {joined.ticket_id} with "
            f"{joined.technician.display_name}. Press Ctrl-C to end it.",
            flush=True,
        )
        summary = await session.run()
    except asyncio.CancelledError:
        print("deskhand-host: stopped before the session started", file=sys.stderr)
        return EXIT_FAILED
    print(summary.line(), flush=True)
    return EXIT_OK if summary.ended_by in ("technician", "user") else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
