"""``deskhand-host``: join a support session with the code your technician gave you, or ask for help without one."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from peer.background import cancel_and_wait
from peer.landing import DEFAULT_MAX_FILE_BYTES
from peer.transport import add_transport_options, trust_ca_file
from protocol.api import JoinResponse, Priority
from protocol.cli import configure_logging, number_in_range, report_waits_on_signal
from protocol.codes import CodeFormatError, JoinTarget, parse_join_target
from protocol.permissions import (
    PERMISSION_ORDER,
    Permission,
    PermissionListError,
    parse_permissions,
)
from protocol.requests import RATING_MAX, RATING_MIN, HelpRequestCreate, SurveyAnswer
from protocol.signalling import ConsentSource
from protocol.terminal_text import one_line
from protocol.transport import TransportError, checked_broker_url

from .capture import CaptureError, Screen
from .files import default_downloads_root
from .help_request import REQUEST_FIELDS, HelpRequestClient, describe_problems, help_request_body, submit_survey
from .join import JoinRefused, join_session
from .session import HostOptions, HostSession, HostSummary
from .state import SavedSession, latest_saved
from .ui import Clipboard, HostUI
from .ui_terminal import TerminalUI

DEFAULT_BROKER = "http://127.0.0.1:8000"

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deskhand-host",
        description="Share this computer's screen with a Deskhand technician. With no argument at all, "
        "joins as 'join' does and asks for the code (in a window when there is a display).",
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
        help="the 9-digit code your technician read to you; spaces or dashes are fine (123 456 789); "
        "or the link they sent (https://desk.example.com/join/#123456789), which names the broker too. "
        "Asked for when left out.",
    )
    join.add_argument(
        "--broker",
        help="address of your organisation's Deskhand broker (default: the link's, else DESKHAND_BROKER; "
        f"with neither, a link is asked for, and a code given alone goes to {DEFAULT_BROKER})",
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
    join.add_argument("--fps", type=number_in_range(float, 1, 60, "frame rate"), default=60.0,
                      help="highest frame rate to send, 1-60 (default 60; frames go out only when the screen changes)")
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
    resume.add_argument("--fps", type=number_in_range(float, 1, 60, "frame rate"), default=60.0, help="as for join")
    resume.add_argument("--trace-input", type=Path, metavar="FILE", help="as for join")
    _session_options(resume)
    request = commands.add_parser(
        "request",
        help="ask for help without a code: wait in the help desk's queue until a technician picks you up",
        description="Opens a ticket with your request and waits in the queue, showing your place; "
        "Ctrl-C withdraws the request. When a technician picks it up the session starts as after "
        "join: you are asked what the technician may do before anything but the connection happens.",
    )
    request.add_argument("--name", required=True, help="your name, as the help desk should see it")
    request.add_argument("--summary", required=True, help="what is wrong, in one line (the ticket's subject)")
    request.add_argument("--details", default="", help="more about the problem (optional)")
    request.add_argument("--email", default=None, help="where the help desk may reply (optional)")
    request.add_argument("--priority", choices=[p.value for p in Priority], default=Priority.normal.value,
                         help="how urgent it is (default normal)")
    request.add_argument(
        "--broker",
        help=f"address of your organisation's Deskhand broker (default: DESKHAND_BROKER or {DEFAULT_BROKER})",
    )
    request.add_argument("--ui", choices=("auto", "window", "terminal"), default="auto", help="as for join")
    request.add_argument("--consent", type=_permission_list, metavar="LIST", help="as for join")
    request.add_argument("--monitor", type=number_in_range(int, 1, 64, "monitor"), default=1, help="as for join")
    request.add_argument("--fps", type=number_in_range(float, 1, 60, "frame rate"), default=60.0, help="as for join")
    request.add_argument("--trace-input", type=Path, metavar="FILE", help="as for join")
    _session_options(request)
    for command in (join, resume, request):
        _survey_options(command)
    return parser


def _survey_options(parser: argparse.ArgumentParser) -> None:
    survey = parser.add_argument_group(
        "satisfaction survey",
        "When the session ends, one question is asked (in the window, or in a terminal); "
        "it is skipped when nobody can answer (no terminal) or with --no-survey.",
    )
    survey.add_argument("--no-survey", action="store_true", help="do not ask the survey question")
    survey.add_argument(
        "--survey-rating", type=number_in_range(int, RATING_MIN, RATING_MAX, "survey rating"), metavar="N",
        help=f"answer it in advance, for scripts: {RATING_MIN} (very unhappy) to {RATING_MAX} (very happy)",
    )
    survey.add_argument("--survey-comment", default="", metavar="TEXT", help="with --survey-rating: a comment")


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


def broker_of(target: JoinTarget | None, flag: str | None, environment: str | None) -> str:
    """The broker to join: ``--broker``, else the join link's, else ``DESKHAND_BROKER``, else
    :data:`DEFAULT_BROKER`. A link naming another broker than ``--broker`` is refused: one of
    the two is a mistake, and the code must not go to the wrong one."""
    linked = target.broker if target is not None else None
    if flag is not None and linked is not None and flag.rstrip("/") != linked.rstrip("/"):
        raise UsageError(f"the link names the broker {linked} but --broker names {flag}: give one of them")
    return flag or linked or environment or DEFAULT_BROKER


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """The command line; none at all (the downloaded file opened from a file manager, say) is a
    join that asks for the code: in the window when there is a display, else in the terminal."""
    return parser.parse_args(argv or ["join"])


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_arguments(parser, sys.argv[1:] if argv is None else argv)
    configure_logging(logging.INFO if args.verbose else logging.WARNING)
    if args.command not in ("join", "resume", "request"):
        parser.print_help()
        return EXIT_USAGE
    code = None
    try:
        if args.command in ("join", "request"):
            target = parse_join_target(args.code) if args.command == "join" and args.code is not None else None
            args.broker_named = args.broker is not None or "DESKHAND_BROKER" in os.environ
            args.broker = broker_of(target, args.broker, os.environ.get("DESKHAND_BROKER"))
            # Checked before anything connects: a refused URL must not have carried the code.
            args.broker = checked_broker_url(args.broker, insecure=args.insecure)
            code = target.code if target is not None else None
        trust_ca_file(args.ca_file)
        args.help_request = _help_request(args) if args.command == "request" else None
        args.survey = _preset_survey(args)
    except (CodeFormatError, TransportError, UsageError) as exc:
        _complain(str(exc))
        return EXIT_USAGE
    return asyncio.run(_join(args, code))


class UsageError(Exception):
    """A command-line value the broker would refuse; the message names the option."""


def _usage_error(exc: ValidationError, options: dict[str, str]) -> UsageError:
    return UsageError(describe_problems(exc, options))


def _help_request(args: argparse.Namespace) -> HelpRequestCreate:
    try:
        return help_request_body(
            name=args.name, summary=args.summary, details=args.details, email=args.email, priority=args.priority
        )
    except ValidationError as exc:
        raise _usage_error(exc, {f: f"--{f}" for f in REQUEST_FIELDS}) from None


def _preset_survey(args: argparse.Namespace) -> SurveyAnswer | None:
    """The survey answer given on the command line, if any."""
    if args.survey_rating is None:
        if args.survey_comment:
            raise UsageError("--survey-comment needs --survey-rating")
        return None
    if args.no_survey:
        raise UsageError("--no-survey and --survey-rating contradict each other")
    try:
        return SurveyAnswer(rating=args.survey_rating, comment=args.survey_comment)
    except ValidationError as exc:
        raise _usage_error(exc, {"rating": "--survey-rating", "comment": "--survey-comment"}) from None


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
            session.end_session()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    report_waits_on_signal(loop)
    with ExitStack() as stack:
        try:
            screen = Screen()  # fail before burning the code
            stack.callback(screen.close)
            ui, clipboard, source = _open_ui(args.ui, stack)
            downloads = args.downloads or default_downloads_root()
            if args.command == "resume":
                saved = latest_saved()
                if saved is None:
                    _complain("no session to resume on this computer; join with a code")
                    return EXIT_FAILED
                # The saved URL passed the check when it was joined, perhaps with --insecure:
                # a resume over plain http to another machine needs --insecure again.
                broker = checked_broker_url(saved.broker_url, insecure=args.insecure)
                joined = saved.joined
                downloads = args.downloads or Path(saved.downloads_root)
                verb = "Resumed"
            elif args.command == "request":
                broker = args.broker
                joined = await _wait_in_queue(broker, args.help_request, ui)
                saved = SavedSession(broker, joined, str(downloads))
                saved.save()
                verb = "Joined"
            else:
                broker = args.broker
                # A downloaded host given no broker asks for the join link, which names it.
                asked = JoinTarget(code) if code is not None else await ui.ask_code(link_needed=not args.broker_named)
                if asked is None:
                    _complain("no code given")
                    return EXIT_FAILED
                if isinstance(asked, HelpRequestCreate):  # no code: the user asked for help instead
                    joined = await _wait_in_queue(broker, asked, ui)
                else:
                    if asked.broker is not None:
                        broker = checked_broker_url(broker_of(asked, None, None), insecure=args.insecure)
                    joined = await join_session(broker, asked.code)
                saved = SavedSession(broker, joined, str(downloads))
                saved.save()
                verb = "Joined"
            options = HostOptions(
                fps=args.fps, monitor=args.monitor, preset_consent=args.consent,
                consent_source=source, trace_input=_trace_writer(args.trace_input, stack),
                downloads_root=downloads, max_file_bytes=args.max_file_size,
                after_end=_survey(broker, args, interactive=source is ConsentSource.window or sys.stdin.isatty()),
            )
            session = HostSession(
                broker, joined, ui=ui, clipboard=clipboard, options=options, screen=screen, saved=saved
            )
            print(
                f"{verb} session {joined.session_id} on ticket {joined.ticket_id} with "
                f"{one_line(joined.technician.display_name)}. Press Ctrl-C to end it.",
                flush=True,
            )
            summary = await session.run()
        except TransportError as exc:
            _complain(str(exc))
            return EXIT_USAGE
        except RequestWithdrawn as exc:
            _complain(str(exc))
            return EXIT_FAILED
        except (CaptureError, JoinRefused, NoWindow, ValueError) as exc:
            _complain(str(getattr(exc, 'message', exc)))
            return EXIT_FAILED
        except asyncio.CancelledError:
            _complain("stopped before the session started")
            return EXIT_FAILED
    print(one_line(summary.line()), flush=True)
    return EXIT_OK if summary.ended_by in ("technician", "user") else EXIT_FAILED


def _complain(message: str) -> None:
    """Say on stderr why the program stops; the message may carry the broker's words, so made printable."""
    print(f"deskhand-host: {one_line(message)}", file=sys.stderr)


class RequestWithdrawn(Exception):
    """The user stopped waiting (Ctrl-C); the message says what became of the request."""


async def _wait_in_queue(broker: str, body: HelpRequestCreate, ui: HostUI) -> JoinResponse:
    """Queue the request and wait, showing the place; Ctrl-C withdraws it."""
    async with HelpRequestClient(broker) as queue:
        created = await queue.create(body)
        print(f"Asked for help: ticket {created.ticket_id}. Press Ctrl-C to withdraw the request.", flush=True)
        waiting = asyncio.ensure_future(queue.wait_for_technician(ui.waiting_in_queue))
        leaving = asyncio.ensure_future(ui.withdrawn())
        try:
            await asyncio.wait({waiting, leaving}, return_when=asyncio.FIRST_COMPLETED)
            if waiting.done():
                return waiting.result()
            leaving.result()  # a window that failed is raised, not taken for the user withdrawing
        except asyncio.CancelledError:
            pass  # Ctrl-C: withdraw, below
        finally:
            await cancel_and_wait((waiting, leaving))
        try:
            await queue.cancel()
        except JoinRefused as refused:
            raise RequestWithdrawn(f"could not withdraw the request: {refused.message}") from None
        raise RequestWithdrawn("help request withdrawn")


def _survey(
    broker: str, args: argparse.Namespace, *, interactive: bool
) -> Callable[[HostSession, HostSummary], Awaitable[None]] | None:
    """What to do when the session has ended: answer the survey from the flags, ask it, or nothing."""
    preset: SurveyAnswer | None = args.survey
    if args.no_survey or (preset is None and not interactive):
        return None

    async def after_end(session: HostSession, summary: HostSummary) -> None:
        # Only for a session that happened: consent given, ended by one of the two people.
        if not session.consent_sent.is_set() or summary.ended_by not in ("technician", "user"):
            return
        answer = preset or await session.ui.ask_survey()
        if answer is None:
            return
        try:
            await submit_survey(broker, session.session_id, session.host_token, answer)
        except JoinRefused as refused:
            _complain(f"the survey answer was not recorded: {refused.message}")
            return
        print(f"Thank you: your rating {answer.rating}/{RATING_MAX} was recorded.", flush=True)

    return after_end


if __name__ == "__main__":
    sys.exit(main())
