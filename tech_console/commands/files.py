"""File-transfer commands: ``send``, ``fetch``, ``transfers`` and ``cancel``."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from peer.transfers import TransferError, file_sha256

from ..client import ConsoleError
from . import arguments as arg
from .command import Command, Subcommands
from .context import Context
from .exit_codes import EXIT_OK
from .transfer_bars import TransferBars, how_fast


def _add_send(commands: Subcommands) -> argparse.ArgumentParser:
    send = commands.add_parser("send", help="send files to the host (lands in a folder of the session)")
    send.add_argument("session_id", type=arg.session_id, help="session id")
    send.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files to send, one after the other")
    send.add_argument("--timeout", type=arg.seconds, default=300.0,
                      help="how long to wait for the host to accept each file (default 300)")
    return send


def _add_fetch(commands: Subcommands) -> argparse.ArgumentParser:
    fetch = commands.add_parser("fetch", help="ask the host for a file; the user picks or approves it")
    fetch.add_argument("session_id", type=arg.session_id, help="session id")
    fetch.add_argument("path", nargs="?", default="", help="the file you would like (a suggestion the user sees)")
    fetch.add_argument("--to", type=Path, default=Path("."), dest="destination",
                       help="folder to save it in (default: the current folder); nothing is overwritten")
    fetch.add_argument("--note", default="", help="a line for the user explaining what you need")
    fetch.add_argument("--timeout", type=arg.seconds, default=600.0, help="how long to wait for the user (default 600)")
    return fetch


def _add_transfers(commands: Subcommands) -> argparse.ArgumentParser:
    listing_transfers = commands.add_parser("transfers", help="list a session's file transfers")
    listing_transfers.add_argument("session_id", type=arg.session_id, help="session id")
    return listing_transfers


def _add_cancel(commands: Subcommands) -> argparse.ArgumentParser:
    cancel = commands.add_parser("cancel", help="cancel a file transfer")
    cancel.add_argument("session_id", type=arg.session_id, help="session id")
    cancel.add_argument("transfer_id", type=arg.session_id, help="transfer id (see 'transfers')")
    cancel.add_argument("--reason", default="", help="why, for the user and the audit trail")
    return cancel


async def _send(ctx: Context) -> int:
    args = ctx.args
    results = []
    lines = []
    async with ctx.client() as tc:
        with TransferBars() as bars:
            for path in args.files:
                progress, rate = bars.track(f"⬆ {path.name}")
                sent = await tc.send_file(args.session_id, path, accept_timeout=args.timeout, progress=progress)
                results.append(sent)
                lines.append(f"Sent {sent.name} ({sent.size} bytes, SHA-256 {sent.sha256}){how_fast(rate)}; "
                             f"the host saved it as {sent.saved_as}.")
    ctx.emit(results, lines)
    return EXIT_OK


async def _fetch(ctx: Context) -> int:
    args = ctx.args
    async with ctx.client() as tc:
        with TransferBars() as bars:
            progress, rate = bars.track(f"⬇ {args.path or 'file'}")
            saved = await tc.fetch_file(
                args.session_id, args.path, args.destination, note=args.note, answer_timeout=args.timeout,
                progress=progress,
            )
    sha256 = await asyncio.to_thread(file_sha256, saved)
    ctx.emit_data({"path": str(saved), "size": saved.stat().st_size, "sha256": sha256},
                  f"Saved {saved} ({saved.stat().st_size} bytes, SHA-256 {sha256}){how_fast(rate)}.")
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


SEND = Command(_add_send, _send)
FETCH = Command(_add_fetch, _fetch)
TRANSFERS = Command(_add_transfers, _transfers)
CANCEL = Command(_add_cancel, _cancel)
