"""The auditors' command, ``audit``: find sessions, read reports, save recordings, exports and signed heads, verify the trail."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from peer.transfers import ProgressHook, file_sha256
from protocol.cli import number_in_range

from . import arguments as arg
from .command import Command, Subcommands
from .context import Context
from .exit_codes import EXIT_FAILED, EXIT_OK
from .session_text import describe_host
from .transfer_bars import TransferBars


def _add_audit(commands: Subcommands) -> argparse.ArgumentParser:
    audit = commands.add_parser(
        "audit", help="auditors: find sessions, read reports, save recordings and export bundles",
        description="Every recording download (a playback: recording.played) and every export (audit.exported) "
        "is itself recorded in the broker's audit trail.",
    )
    audit_cmds = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    found = audit_cmds.add_parser("sessions", help="list sessions, newest first")
    found.add_argument("--technician", metavar="USERNAME", help="only this technician's sessions")
    found.add_argument("--ticket", type=arg.ticket_id, help="only sessions on this ticket")
    found.add_argument("--host", metavar="TEXT", help="only hosts whose machine or user name contains TEXT")
    found.add_argument("--since", type=arg.when, metavar="DATE", help="created at or after (YYYY-MM-DD or ISO 8601, UTC)")
    found.add_argument("--until", type=arg.when, metavar="DATE", help="created at or before (YYYY-MM-DD or ISO 8601, UTC)")
    found.add_argument("--limit", type=number_in_range(int, 1, 1000, "sessions"), default=100,
                       help="at most this many (1-1000, default 100)")
    rep = audit_cmds.add_parser("report", help="a session's participants, consent, chat, files, timeline and integrity")
    rep.add_argument("session_id", type=arg.session_id, help="session id")
    rec = audit_cmds.add_parser("recording", help="save a session's recording as one WebM file (audited as a playback)")
    rec.add_argument("session_id", type=arg.session_id, help="session id")
    rec.add_argument("--out", type=Path, required=True, help="file to write, e.g. session.webm")
    rec.add_argument("--play", action="store_true", help="then play it with ffplay (from ffmpeg)")
    exp = audit_cmds.add_parser("export", help="save a bundle that verifies offline (audited)")
    exp.add_argument("session_id", type=arg.session_id, help="session id")
    exp.add_argument("--out", type=Path, required=True, help="file to write, e.g. session.zip")
    audit_cmds.add_parser("verify", help="have the broker verify its whole trail and every stored segment")
    kept = audit_cmds.add_parser(
        "heads", help="save the broker's signed heads, to keep where the broker cannot write",
        description="Save the signed head of every audit chain. Kept outside the broker, the file lets "
        "'deskhand-broker audit verify --heads FILE' and 'verify-bundle --heads FILE' detect any later "
        "rewrite of what it covers, even by someone holding the broker's signing key.",
    )
    kept.add_argument("--out", type=Path, required=True, help="file to write, e.g. heads-2026-12-02.json")
    return audit


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
                f"{s.technician.username:<14} {describe_host(s)}"
                for s in found
            ]
            ctx.emit(found, lines or "No sessions match.")
        elif args.audit_command == "report":
            report = await tc.audit_report(args.session_id)
            ctx.emit_data(report, _describe_report(report))
        elif args.audit_command == "verify":
            verdict = await tc.audit_verify()
            ctx.emit_data(verdict, _describe_verdict(verdict))
            return EXIT_OK if verdict["ok"] else EXIT_FAILED
        else:
            # Each saver takes the session id (None for heads, which has none), the file and the bar's hook.
            savers: dict[str, Callable[[Any, Path, ProgressHook], Awaitable[Path]]] = {
                "recording": tc.save_recording, "export": tc.save_export,
                "heads": lambda _session, out, progress: tc.save_heads(out, progress),
            }
            save = savers[args.audit_command]
            with TransferBars() as bars:
                progress, _rate = bars.track(f"⬇ {args.out.name}")
                saved = await save(getattr(args, "session_id", None), args.out, progress)
            sha256 = await asyncio.to_thread(file_sha256, saved)
            hint = {"export": f"; check it offline with: deskhand-broker audit verify-bundle {saved}",
                    "heads": f"; keep it where the broker cannot write, and check the trail against it later with: "
                             f"deskhand-broker audit verify --heads {saved}"}.get(args.audit_command, "")
            ctx.emit_data({"path": str(saved), "size": saved.stat().st_size, "sha256": sha256},
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


def _describe_report(r: dict[str, Any]) -> list[str]:
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


def _describe_entry(e: dict[str, Any]) -> str:
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


def _describe_verdict(v: dict[str, Any]) -> list[str]:
    head = "Trail verified" if v["ok"] else "Trail FAILED verification"
    lines = [f"{head}: {v['chains']} chains, {v['events']} events, {v['checkpoints']} signed heads, {v['segments']} segments."]
    lines.extend(f"  {problem}" for problem in v["problems"])
    return lines


AUDIT = Command(_add_audit, _audit)
