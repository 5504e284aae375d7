"""The readable timeline: runs of frequent events, names for actors, counts that count each thing once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from broker.audit.timeline import RUN_GAP_SECONDS, Names, session_counts, timeline

START = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)
TECH, HOST = "user:tom", "host:5e55"


@dataclass(frozen=True)
class Event:
    seq: int
    at: str
    kind: str
    actor: str
    data: dict[str, Any] = field(default_factory=dict)


def trail(*rows: tuple[float, str, str] | tuple[float, str, str, dict[str, Any]]) -> list[Event]:
    """Events at these seconds after START, numbered in order."""
    return [Event(n, (START + timedelta(seconds=row[0])).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), row[1], row[2],
                  row[3] if len(row) > 3 else {}) for n, row in enumerate(rows, 1)]


def plain(actor: str) -> str:
    return actor


def test_segments_become_one_run_across_other_events_and_a_pause_starts_another() -> None:
    events = trail(
        (0, "consent.changed", HOST),
        *((1 + s, "recording.segment", HOST, {"index": s}) for s in range(5)),
        (2.5, "chat.sent", TECH, {"text": "hi"}),
        (5 + RUN_GAP_SECONDS + 1, "recording.segment", HOST, {"index": 5}),
    )
    shown = timeline(events, plain)
    assert [(e["kind"], e["count"]) for e in shown] == [
        ("consent.changed", 1), ("recording.segment", 5), ("chat.sent", 1), ("recording.segment", 1)]
    run = shown[1]
    assert (run["seq"], run["last_seq"], run["span_seconds"], run["data"]) == (2, 6, 4.0, {"index": 0})
    assert run["at"] == events[1].at and run["last_at"] == events[5].at
    assert shown[3]["seq"] == shown[3]["last_seq"] == 8 and shown[3]["span_seconds"] == 0.0


def test_input_counts_are_summed_per_actor_and_kind() -> None:
    events = trail(
        (1, "input.sent", TECH, {"count": 3, "seconds": 1.0}),
        (1.1, "input.applied", HOST, {"count": 3, "seconds": 1.0}),
        (2, "input.sent", TECH, {"count": 40, "seconds": 1.0}),
        (2.1, "input.applied", HOST, {"count": 38, "seconds": 1.0}),
        (2.2, "input.refused", HOST, {"count": 2, "seconds": 1.0}),
    )
    shown = timeline(events, plain)
    assert [(e["kind"], e["actor"], e["count"], e["total"]) for e in shown] == [
        ("input.sent", TECH, 2, 43), ("input.applied", HOST, 2, 41), ("input.refused", HOST, 1, 2)]


def test_single_events_keep_their_data_the_peers_time_and_a_name() -> None:
    events = trail((1, "chat.sent", TECH, {"text": "hi", "event_id": "abcdefgh-1", "reported_at": "2026-12-01T08:59:59+00:00"}),
                   (2, "recording.played", "user:audra"), (3, "recording.played", "user:audra"))
    shown = timeline(events, lambda actor: actor.upper())
    assert shown[0] == {
        "seq": 1, "last_seq": 1, "at": events[0].at, "last_at": events[0].at, "span_seconds": 0.0, "count": 1,
        "total": None, "kind": "chat.sent", "actor": TECH, "who": "USER:TOM",
        "reported_at": "2026-12-01T08:59:59+00:00", "data": events[0].data,
    }
    assert (shown[1]["kind"], shown[1]["count"], shown[1]["reported_at"]) == ("recording.played", 2, None)


def test_an_empty_trail_has_an_empty_timeline() -> None:
    assert timeline([], plain) == []


NAMES = Names(technician_actor=TECH, technician="Tom Tech", host_actor=HOST, requester="Ann Smith",
              host_login="root", accounts={"user:audra": "Audra Auditor"})


def test_people_are_named_as_they_are_known() -> None:
    assert NAMES.who(TECH) == "Tom Tech (technician)"
    assert NAMES.who(HOST) == "Ann Smith (host, login root)"
    assert NAMES.who("user:audra") == "Audra Auditor (audra)"
    assert NAMES.who("broker") == "the broker"
    assert NAMES.who("inbound:jira") == "inbound:jira"
    unknown = Names(technician_actor=TECH, technician="Tom", host_actor=HOST, requester="", host_login=None, accounts={})
    assert unknown.who(HOST) == "the user (host)"


def test_a_chat_message_counts_once_though_both_sides_report_it() -> None:
    events = trail(
        (1, "chat.sent", TECH, {"text": "Done?"}), (1.2, "chat.received", HOST, {"text": "Done?"}),
        (3, "chat.sent", HOST, {"text": "yes"}), (3.1, "chat.received", TECH, {"text": "yes"}),
        (4, "clipboard.sent", TECH), (4.1, "clipboard.received", HOST),
        (5, "monitor.selected", TECH, {"index": 2}), (5.1, "monitor.selected", HOST, {"index": 2}),
        (6, "input.sent", TECH, {"count": 5}), (6.1, "input.applied", HOST, {"count": 4}),
        (6.2, "input.refused", HOST, {"count": 1}), (7, "recording.segment", HOST), (8, "recording.segment", HOST),
    )
    assert session_counts(events) == {
        "chat_messages": 2, "clipboard_shares": 1, "inputs_sent": 5, "inputs_applied": 4, "inputs_refused": 1,
        "monitor_switches": 1, "recording_segments": 2,
    }
