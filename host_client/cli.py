"""``deskhand-host``: join a support session with the code your technician gave you."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

from peer.landing import DEFAULT_MAX_FILE_BYTES
from protocol.cli import add_transport_options, configure_logging, number_in_range
from protocol.codes import CodeFormatError, normalize_code
from protocol.permissions import (
    PERMISSION_ORDER,
    Permission,
    PermissionListError,
    parse_permissions,
)
from protocol.signalling import ConsentSource
from protocol.transport import TransportError, checked_broker_url, trust_ca_file

from .capture import CaptureError, Screen
from .files import default_downloads_root
from .join import JoinRefused, join_session
from .session import HostOptions, HostSession
from .state import SavedSession, latest_saved
from .ui import Clipboard, HostUI
from .ui_terminal import TerminalUI

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
        description="Join the session your technician started. You are asked what the technician "
        "may do (one line per permission) before anything but the connection happens; you can "
        "narrow that or take control back at any time, and end the session. Prints a one-line "
        "summary at the end.",
    )
    join.add_argument(
        "code", nargs="?",
        help="the 9-digit code your technician read to you; spaces or dashes are fine (123 456 789). "
        "Asked for when left out.",
    )
    join.add_argument(
        "--broker",
        default=os.environ.get("DESKHAND_BROKER", DEFAULT_BROKER),
        help=f"address of your organisation's Deskhand broker (default: DESKHAND_BROKER or {DEFAULT_BROKER})",
    )
    join.add_argument(
        "--ui", choices=("auto", "window", "terminal"), default="auto",
        help="how to ask for consent and show the session: a small window, the terminal, or "
        "auto (the window when a display is available; default)",
    )
    join.add_argument(
        "--consent", type=_permission_list, metavar="LIST",
        help="answer the consent prompt in advance, for unattended test set-ups: a comma-separated "
        f"list from {', '.join(p.value for p in PERMISSION_ORDER)} (or 'none'). "
        "Its use is reported to the broker and audited.",
    )
    join.add_argument("--monitor", type=number_in_range(int, 1, 64, "monitor"), default=1,
                      help="which monitor to share first, 1 = primary (default 1)")
    join.add_argument("--fps", type=number_in_range(float, 1, 60, "frame rate"), default=30.0,
                      help="highest frame rate to send, 1-60 (default 30)")
    join.add_argument(
        "--trace-input", type=Path, metavar="FILE",
        help="for benchmarks: append 'seq monotonic_time' for every input applied",
    )
    _session_options(join)
    resume = commands.add_parser(
        "resume",
        help="reconnect to the session this computer joined last (after a crash or restart)",
        description="Reconnect to the last session joined from this computer, if it is still going: "
        "unfinished file transfers continue where they stopped. Takes the same options as join.",
    )
    resume.add_argument("--ui", choices=("auto", "window", "terminal"), default="auto", help="as for join")
    resume.add_argument("--consent", type=_permission_list, metavar="LIST", help="as for join")
    resume.add_argument("--monitor", type=number_in_range(int, 1, 64, "monitor"), default=1, help="as for join")
    resume.add_argument("--fps", type=number_in_range(float, 1, 60, "frame rate"), default=30.0, help="as for join")
    resume.add_argument("--trace-input", type=Path, metavar="FILE", help="as for join")
    _session_options(resume)
    return parser


def _session_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--downloads", type=Path, default=None,
        help="files the technician sends land in a per-session folder under here "
        "(default: DESKHAND_DOWNLOADS, else XDG_DOWNLOAD_DIR, else ~/Downloads)",
    )
    parser.add_argument(
        "--max-file-size", type=number_in_range(int, 0, 2**50, "maximum file size"), default=DEFAULT_MAX_FILE_BYTES,
        metavar="BYTES", help=f"refuse incoming files larger than this (default {DEFAULT_MAX_FILE_BYTES})",
    )
    add_transport_options(parser)


def _permission_list(text: str) -> frozenset[Permission]:
    if text.strip().lower() == "none":
        return frozenset()
    try:
        chosen = parse_permissions(text)
    except PermissionListError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(logging.INFO if args.verbose else logging.WARNING)
    if args.command not in ("join", "resume"):
        parser.print_help()
        return EXIT_USAGE
    code = None
    try:
        if args.command == "join":
            # Checked before anything connects: a refused URL must not have carried the code.
            args.broker = checked_broker_url(args.broker, insecure=args.insecure)
            if args.code is not None:
                code = normalize_code(args.code)
        trust_ca_file(args.ca_file)
    except (CodeFormatError, TransportError) as exc:
        print(f"deskhand-host: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_join(args, code))


class NoWindow(Exception):
    """``--ui window`` was asked for and no window can be shown; the message says why."""


def _open_ui(kind: str, stack: ExitStack) -> tuple[HostUI, Clipboard, ConsentSource]:
    """The UI the user asked for (or can have), and the clipboard that comes with a display."""
    from .clipboard import NoClipboard, TkClipboard
    from .tk_thread import TkThread, TkUnavailable

    if kind in ("auto", "window"):
        try:
            from .ui_window import WindowUI

            tk = TkThread.start(withdrawn=True)  # the window is a Toplevel of a hidden root
        except TkUnavailable as exc:
            if kind == "window":
                raise NoWindow(str(exc)) from None
            logging.getLogger(__name__).info("no window: %s", exc)
        else:
            stack.callback(tk.stop)
            return WindowUI(tk), TkClipboard(tk), ConsentSource.window
    try:
        tk = TkThread.start(withdrawn=True)
    except TkUnavailable:
        return TerminalUI(), NoClipboard(), ConsentSource.terminal
    stack.callback(tk.stop)
    return TerminalUI(), TkClipboard(tk), ConsentSource.terminal


def _trace_writer(path: Path | None, stack: ExitStack) -> Callable[[int, float], None] | None:
    if path is None:
        return None
    out: TextIO = stack.enter_context(path.open("a", encoding="utf-8", buffering=1))
    return lambda seq, at: out.write(f"{seq} {at:.6f}\n")


async def _join(args: argparse.Namespace, code: str | None) -> int:
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
    with ExitStack() as stack:
        try:
            screen = Screen()  # fail before burning the code
            stack.callback(screen.close)
            ui, clipboard, source = _open_ui(args.ui, stack)
            downloads = args.downloads or default_downloads_root()
            if args.command == "resume":
                saved = latest_saved()
                if saved is None:
                    print("deskhand-host: no session to resume on this computer; join with a code", file=sys.stderr)
                    return EXIT_FAILED
                # The saved URL passed the check when it was joined, perhaps with --insecure:
                # a resume over plain http to another machine needs --insecure again.
                broker = checked_broker_url(saved.broker_url, insecure=args.insecure)
                joined = saved.joined
                downloads = args.downloads or Path(saved.downloads_root)
                verb = "Resumed"
            else:
                if code is None:
                    code = await ui.ask_code()
                    if code is None:
                        print("deskhand-host: no code given", file=sys.stderr)
                        return EXIT_FAILED
                broker = args.broker
                joined = await join_session(broker, code)
                saved = SavedSession(broker, joined, str(downloads))
                saved.save()
                verb = "Joined"
            options = HostOptions(
                fps=args.fps, monitor=args.monitor, preset_consent=args.consent,
                consent_source=source, trace_input=_trace_writer(args.trace_input, stack),
                downloads_root=downloads, max_file_bytes=args.max_file_size,
            )
            session = HostSession(
                broker, joined, ui=ui, clipboard=clipboard, options=options, screen=screen, saved=saved
            )
            print(
                f"{verb} session {joined.session_id} on ticket {joined.ticket_id} with "
                f"{joined.technician.display_name}. Press Ctrl-C to end it.",
                flush=True,
            )
            summary = await session.run()
        except TransportError as exc:
            print(f"deskhand-host: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except (CaptureError, JoinRefused, NoWindow, ValueError) as exc:
            print(f"deskhand-host: {getattr(exc, 'message', exc)}", file=sys.stderr)
            return EXIT_FAILED
        except asyncio.CancelledError:
            print("deskhand-host: stopped before the session started", file=sys.stderr)
            return EXIT_FAILED
    print(summary.line(), flush=True)
    return EXIT_OK if summary.ended_by in ("technician", "user") else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
