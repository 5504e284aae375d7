"""Remote-desktop commands: ``control`` (scripted input, chat, clipboard) and ``snapshot`` (the screen as a PNG)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from .. import actions as actions_module
from ..actions import Action
from ..remote_view import RemoteView
from . import arguments as arg
from .command import Command, Subcommands
from .context import Context
from .exit_codes import EXIT_FAILED, EXIT_OK
from .output import err, say


def _actions_doc() -> str:
    """The actions ``control`` understands, as :mod:`tech_console.actions` documents them (its help's epilog)."""
    doc = actions_module.__doc__ or ""
    return "actions:" + doc.split("``NAME:ARGUMENT``:", 1)[1].replace("``", "")


def _add_control(commands: Subcommands) -> argparse.ArgumentParser:
    control = commands.add_parser(
        "control",
        help="control a session's remote desktop from a script",
        description="Connect to a session, wait until the host has answered consent, run the "
        "actions in order, then print what came back (chat, clipboard, refusals).",
        epilog=_actions_doc(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    control.add_argument("session_id", type=arg.session_id, help="session id")
    control.add_argument("actions", nargs="+", type=arg.scripted_action, metavar="ACTION", help="NAME:ARGUMENT, see below")
    control.add_argument("--timeout", type=arg.seconds, default=60.0,
                         help="how long to wait for the host's consent and channels (default 60)")
    control.add_argument("--listen", type=arg.seconds, default=1.0,
                         help="seconds to keep listening after the last action (default 1)")
    control.add_argument("--end", action="store_true", help="end the session afterwards")
    control.add_argument("--reason", default="", help="with --end: the note to end it with")
    return control


def _add_snapshot(commands: Subcommands) -> argparse.ArgumentParser:
    snap = commands.add_parser(
        "snapshot", help="connect to a session's video and save the remote screen as a PNG"
    )
    snap.add_argument("session_id", type=arg.session_id, help="session id (printed by 'session start')")
    snap.add_argument("--out", type=Path, required=True, help="PNG file to write")
    snap.add_argument("--timeout", type=arg.seconds, default=60.0, help="give up after this many seconds (default 60)")
    snap.add_argument(
        "--settle", type=arg.seconds, default=1.0,
        help="seconds of video to let pass before taking the picture, so the image is sharp (default 1)",
    )
    snap.add_argument("--end", action="store_true", help="end the session after saving the picture")
    snap.add_argument("--reason", default="", help="with --end: the note to end it with")
    return snap


async def _snapshot(ctx: Context) -> int:
    args = ctx.args
    async with ctx.client() as tc:
        view = tc.view(args.session_id)
        try:
            with err.status("Waiting for the remote screen…"):
                await view.start()
                frame = await view.snapshot(args.out, timeout=args.timeout, settle=args.settle)
            say(await view.route_status(), sys.stderr)
            if (slow := view.link_status()) is not None:
                say(slow, sys.stderr)
            if args.end:
                await tc.end_session(args.session_id, args.reason)
        finally:
            await view.close()
    summary = {"path": str(args.out), "width": frame.width, "height": frame.height, "frames_received": view.frames_received}
    ctx.emit_data(summary, f"Saved {frame.width}x{frame.height} screen to {args.out} "
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
            say(await view.route_status(), sys.stderr)
            if (slow := view.link_status()) is not None:
                say(slow, sys.stderr)
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
    ctx.emit_data(report, [
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


CONTROL = Command(_add_control, _control)
SNAPSHOT = Command(_add_snapshot, _snapshot)
