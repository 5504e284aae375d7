"""A session report read as items, to compare with the script a test played: nothing missing, nothing twice.

    assert reported_items(report) == exchanged("technician", "chat", "Done?") + typed("abc")
    assert input_totals(report) == {("technician", "input.sent"): 5, ("host", "input.applied"): 5}

An item is ``(side, kind, what)``: ``side`` is ``technician``, ``host`` or the raw
actor; ``what`` is the gist of the event's data (a chat or typed text, a
clipboard's ``chars:sha256``, a monitor's index, a file's name). Items are the
events the peers reported, except the input counts (summed by
:func:`input_totals`), and the broker's file events.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from typing import Any

import httpx

from protocol.recording import EVENT_DATA
from tests.support.broker import BrokerProcess

COUNTED = frozenset({"input.sent", "input.applied", "input.refused"})
FILE_KINDS = ("transfer.", "file_request.")
MEDIA_KINDS = "media."
"""Left out of :func:`reported_items`: a stall of a loaded machine may interrupt the media for
3 s (``media.interrupted``, ``media.restored``), which no script plays; a test of recovery
reads those events from the report itself."""

# What both consoles' session tests say and copy (tests/e2e/ and tests/browser/test_session_events.py).
CHAT, REPLY = "Done?", "yes, it prints again"
TECH_CLIPBOARD, USER_CLIPBOARD = "\\\\fileserver\\drivers ✓", "error 0x8007 copied by the user"
SCRIPT_BROKER_ENV = {"DESKHAND_ICE_LOOPBACK": "true", "DESKHAND_KEYSTROKE_LOGGING": "true"}
"""Their broker: media on 127.0.0.1, and typed text in the trail."""


def clipboard_item(text: str) -> str:
    """The ``what`` of a clipboard event for ``text``."""
    return f"{len(text)}:{hashlib.sha256(text.encode()).hexdigest()}"


def exchanged(sender: str, kind: str, what: str) -> Counter[tuple[str, str, str]]:
    """One message (``kind`` ``chat`` or ``clipboard``): the sender's ``.sent``, the other side's ``.received``."""
    receiver = "host" if sender == "technician" else "technician"
    return Counter({(sender, f"{kind}.sent", what): 1, (receiver, f"{kind}.received", what): 1})


def conversation() -> Counter[tuple[str, str, str]]:
    """The script's chat and clipboard: :data:`CHAT` and :data:`TECH_CLIPBOARD` from the technician,
    :data:`REPLY` and :data:`USER_CLIPBOARD` from the user."""
    return (exchanged("technician", "chat", CHAT) + exchanged("host", "chat", REPLY)
            + exchanged("technician", "clipboard", clipboard_item(TECH_CLIPBOARD))
            + exchanged("host", "clipboard", clipboard_item(USER_CLIPBOARD)))


def typed(*texts: str) -> Counter[tuple[str, str, str]]:
    """Text the technician typed, logged by both sides (keystroke logging on)."""
    return Counter({(side, "input.text", text): 1 for text in texts for side in ("technician", "host")})


def file_sent(name: str) -> Counter[tuple[str, str, str]]:
    """A file the technician sent and the host accepted and received, as the broker records it."""
    return Counter({("technician", "transfer.offered", name): 1, ("host", "transfer.accepted", name): 1,
                    ("host", "transfer.completed", name): 1})


def _side(report: dict[str, Any], actor: str) -> str:
    technician = "user:" + report["participants"][0]["username"]
    host = "host:" + report["session"]["id"]
    return {technician: "technician", host: "host"}.get(actor, actor)


def _what(kind: str, data: dict[str, Any]) -> str:
    if "text" in data:
        return str(data["text"])
    if "sha256" in data and "chars" in data:
        return f"{data['chars']}:{data['sha256']}"
    if kind == "monitor.selected":
        return str(data["index"])
    return str(data.get("name", ""))


def reported_items(report: dict[str, Any]) -> Counter[tuple[str, str, str]]:
    """Every item in the report's complete event list, as often as it is there (but the media gaps)."""
    return Counter(
        (_side(report, e["actor"]), e["kind"], _what(e["kind"], e["data"]))
        for e in report["events"]
        if (e["kind"] in EVENT_DATA and e["kind"] not in COUNTED and not e["kind"].startswith(MEDIA_KINDS))
        or e["kind"].startswith(FILE_KINDS)
    )


def input_totals(report: dict[str, Any]) -> dict[tuple[str, str], int]:
    """The input counts the peers reported, summed per side and kind."""
    totals: Counter[tuple[str, str]] = Counter()
    for e in report["events"]:
        if e["kind"] in COUNTED:
            totals[(_side(report, e["actor"]), e["kind"])] += e["data"]["count"]
    return dict(totals)


def repeated_event_ids(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(actor, event id) pairs that are in the trail more than once (there should be none)."""
    ids = Counter((e["actor"], e["data"]["event_id"]) for e in report["events"] if "event_id" in e["data"])
    return [pair for pair, n in ids.items() if n > 1]


async def settled_report(broker: BrokerProcess, session_id: str, timeout: float = 30.0, quiet: float = 1.5) -> dict[str, Any]:
    """The session's report once its trail is all sealed and nothing new came for ``quiet`` seconds.

    The peers' last events (sent when they close) may reach the broker after the
    session ended, and the broker seals them within a second.
    """
    headers = {"Authorization": f"Bearer {broker.login()}"}
    deadline = time.monotonic() + timeout
    seen = -1
    async with httpx.AsyncClient(base_url=broker.api, headers=headers, timeout=30) as client:
        while True:
            response = await client.get(f"/audit/sessions/{session_id}/report")
            response.raise_for_status()
            report = response.json()
            settled = report["integrity"]["unsealed"] == 0 and len(report["events"]) == seen
            if settled or time.monotonic() > deadline:
                return report
            seen = len(report["events"]) if report["integrity"]["unsealed"] == 0 else -1
            await asyncio.sleep(quiet)
