"""A session's trail as people read it: names for whoever acted, frequent events in runs, counts.

Pure functions over the session's events in chain order, which is the order the
broker received them (a peer's own time for its events is ``data.reported_at``).
:mod:`broker.audit.reports` loads the events and the people; nothing here touches the
database, so the grouping and the counting are tested on plain lists.

Runs: a recording segment arrives every second, and input is counted every
second while someone types or moves the mouse. One line each would bury the
chat and the consent changes, so consecutive events of such a kind by the same
actor become one entry with its first and last time, span and count, until a
pause longer than :data:`RUN_GAP_SECONDS`. Other events in between do not end a
run: the run stands at the place of its first event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from broker.audit.events import BROKER, HOST_ACTOR_PREFIX, USER_ACTOR_PREFIX

RUN_KINDS = frozenset({"recording.segment", "recording.played", "input.sent", "input.applied", "input.refused"})
"""Kinds that come many at a time and are shown in runs."""
COUNTED_KINDS = frozenset({"input.sent", "input.applied", "input.refused"})
"""Kinds whose events each count several occurrences (``data.count``)."""
RUN_GAP_SECONDS = 10.0
"""A longer pause between two events of a kind ends their run (a recording interrupted, typing resumed)."""


class TrailEvent(Protocol):
    """What the timeline reads of an event (a chained event, or a stored row for the counts)."""

    @property
    def kind(self) -> str: ...

    @property
    def actor(self) -> str: ...

    @property
    def data(self) -> Mapping[str, Any]: ...


class ChainedEvent(TrailEvent, Protocol):
    @property
    def seq(self) -> int: ...

    @property
    def at(self) -> str: ...


@dataclass(frozen=True)
class Names:
    """Who the actors of one session are, as people know them."""

    technician_actor: str
    technician: str
    """The technician's display name."""
    host_actor: str
    requester: str
    """The ticket's requester: the person at the host."""
    host_login: str | None
    """The account the host runs under (``root``), if the host joined."""
    accounts: Mapping[str, str]
    """Display names of the other accounts in the trail (an auditor who played it), by actor."""

    def who(self, actor: str) -> str:
        """``"Ann Smith (host, login root)"``, ``"Tom Tech (technician)"``, ``"Audra Auditor (audra)"``..."""
        if actor == self.technician_actor:
            return f"{self.technician} (technician)"
        if actor == self.host_actor:
            login = f", login {self.host_login}" if self.host_login else ""
            return f"{self.requester or 'the user'} (host{login})"
        if actor == BROKER:
            return "the broker"
        if actor in self.accounts:
            return f"{self.accounts[actor]} ({actor.removeprefix(USER_ACTOR_PREFIX)})"
        return actor


def _moment(at: str) -> datetime:
    return datetime.fromisoformat(at)


def timeline(events: Sequence[ChainedEvent], who: Callable[[str], str], *, gap: float = RUN_GAP_SECONDS) -> list[dict[str, Any]]:
    """The readable timeline: one entry per event, or per run of a :data:`RUN_KINDS` kind.

    Every entry has the same fields: ``seq``/``at`` of its first event and
    ``last_seq``/``last_at`` of its last (the same for a single event),
    ``span_seconds``, ``count`` (events), ``total`` (for :data:`COUNTED_KINDS`, the sum
    of their counts; else None), ``kind``, ``actor``, ``who``, ``reported_at`` (the
    peer's own time of the first event, None for the broker's) and ``data`` (the
    first event's).
    """
    entries: list[dict[str, Any]] = []
    open_runs: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        key = (event.kind, event.actor)
        run = open_runs.get(key) if event.kind in RUN_KINDS else None
        if run is not None and (_moment(event.at) - _moment(run["last_at"])).total_seconds() <= gap:
            run["last_seq"], run["last_at"], run["count"] = event.seq, event.at, run["count"] + 1
            run["span_seconds"] = round((_moment(event.at) - _moment(run["at"])).total_seconds(), 3)
            if run["total"] is not None:
                run["total"] += int(event.data.get("count", 0))
            continue
        entry = {
            "seq": event.seq, "last_seq": event.seq, "at": event.at, "last_at": event.at, "span_seconds": 0.0,
            "count": 1, "total": int(event.data.get("count", 0)) if event.kind in COUNTED_KINDS else None,
            "kind": event.kind, "actor": event.actor, "who": who(event.actor),
            "reported_at": event.data.get("reported_at"), "data": dict(event.data),
        }
        entries.append(entry)
        if event.kind in RUN_KINDS:
            open_runs[key] = entry
    return entries


_ONE_EACH = {"chat.sent": "chat_messages", "clipboard.sent": "clipboard_shares", "recording.segment": "recording_segments"}
_SUMMED = {"input.sent": "inputs_sent", "input.applied": "inputs_applied", "input.refused": "inputs_refused"}
COUNTED_IN_SESSIONS = frozenset({*_ONE_EACH, *_SUMMED, "monitor.selected"})
"""The kinds :func:`session_counts` reads (the others need not be loaded for it)."""


def session_counts(events: Iterable[TrailEvent]) -> dict[str, int]:
    """What happened in a session, each thing once.

    A chat message is its sender's ``chat.sent`` (the other side's ``chat.received``
    is its receipt, not another message); likewise clipboard text. Input is the
    technician's sent count and the host's applied and refused counts; a monitor
    switch is the host's ``monitor.selected`` (the switch made, not the request).
    """
    counts = dict.fromkeys(
        ("chat_messages", "clipboard_shares", "inputs_sent", "inputs_applied", "inputs_refused",
         "monitor_switches", "recording_segments"), 0,
    )
    for event in events:
        if event.kind in _ONE_EACH:
            counts[_ONE_EACH[event.kind]] += 1
        elif event.kind in _SUMMED:
            counts[_SUMMED[event.kind]] += int(event.data.get("count", 0))
        elif event.kind == "monitor.selected" and event.actor.startswith(HOST_ACTOR_PREFIX):
            counts["monitor_switches"] += 1
    return counts

