"""What a peer reports: event ids, typed text for keystroke logging, the shape of each kind's data."""

from __future__ import annotations

import hashlib
import inspect
import re
import threading
from datetime import UTC, datetime
from typing import get_args

import pytest
from pydantic import ValidationError

from broker.audit import events as audit
from broker.audit.peer_events import BROKER_DATA_KEYS, stored_data
from peer.events import EventIds, clipboard_fields
from protocol.channel import Key, PointerMove, Text, typed_text
from protocol.recording import EVENT_DATA, EVENT_ID_PATTERN, HOST_EVENT_KINDS, TECHNICIAN_EVENT_KINDS, PeerEvent
from protocol.webhooks import EVENT_OF_AUDIT_KIND

NOW = datetime.now(UTC)


def test_ids_are_unique_in_order_and_fit_the_pattern() -> None:
    ids = EventIds()
    made = [ids.next() for _ in range(1000)]
    assert len(set(made)) == 1000
    assert all(re.fullmatch(EVENT_ID_PATTERN, i) for i in made)
    assert [int(i.rsplit("-", 1)[1]) for i in made] == list(range(1, 1001))
    assert len({i.rsplit("-", 1)[0] for i in made}) == 1


def test_two_reporters_never_share_ids() -> None:
    assert len({EventIds().next() for _ in range(200)}) == 200


def test_ids_taken_from_several_threads_are_all_different() -> None:
    ids = EventIds()
    taken: list[list[str]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=lambda out=out: out.extend(ids.next() for _ in range(2000))) for out in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({i for out in taken for i in out}) == 8000


def test_the_longest_id_still_fits() -> None:
    assert re.fullmatch(EVENT_ID_PATTERN, "f" * 16 + "-" + str(10**15))


def test_typed_text_is_text_and_characters_of_keys_going_down() -> None:
    assert typed_text(Text(seq=1, text="héllo")) == "héllo"
    assert typed_text(Key(seq=1, code="KeyA", key="a", down=True)) == "a"
    assert typed_text(Key(seq=1, code="KeyA", key="a", down=False)) is None
    assert typed_text(Key(seq=1, code="Enter", key="Enter", down=True)) is None
    assert typed_text(PointerMove(seq=1, x=0.5, y=0.5)) is None


def test_clipboard_text_is_kept_as_length_and_hash() -> None:
    assert clipboard_fields("✓ ok") == {"chars": 4, "sha256": hashlib.sha256("✓ ok".encode()).hexdigest()}
    PeerEvent(id="abcdefgh-1", kind="clipboard.sent", at=NOW, data=clipboard_fields("✓ ok"))


def test_every_kind_a_peer_reports_has_a_data_shape() -> None:
    assert set(EVENT_DATA) == HOST_EVENT_KINDS | TECHNICIAN_EVENT_KINDS


@pytest.mark.parametrize(("kind", "data"), [
    ("chat.sent", {}),
    ("chat.sent", {"text": "a" * 4001}),
    ("chat.sent", {"text": "hi", "reported_at": "2020-01-01T00:00:00Z"}),
    ("chat.sent", {"text": "hi", "event_id": "zzzzzzzz-1"}),
    ("input.sent", {"count": 0, "seconds": 1.0}),
    ("input.sent", {"count": True, "seconds": 1.0}),
    ("input.sent", {"count": 1, "seconds": float("inf")}),
    ("monitor.selected", {"index": "1"}),
    ("recording.caught_up", {"why": "x"}),
    ("media.interrupted", {}),
    ("media.interrupted", {"silent_seconds": -1.0}),
    ("media.interrupted", {"silent_seconds": float("nan")}),
    ("media.restored", {"silent_seconds": 4.0}),
    ("media.restored", {"silent_seconds": 4.0, "attempts": "2"}),
    ("media.restored", {"silent_seconds": 4.0, "attempts": -1}),
    ("media.lost", {"silent_seconds": 60.0, "attempts": 20}),
    ("session.ended", {}),
])
def test_data_that_does_not_fit_its_kind_is_refused(kind: str, data: dict) -> None:
    with pytest.raises(ValidationError):
        PeerEvent(id="abcdefgh-1", kind=kind, at=NOW, data=data)


def test_the_media_gap_is_reported_with_its_length_and_attempts() -> None:
    assert {"media.interrupted", "media.restored", "media.lost"} <= HOST_EVENT_KINDS
    assert "media.interrupted" not in TECHNICIAN_EVENT_KINDS  # the host's word, as the recording is the host's
    PeerEvent(id="abcdefgh-1", kind="media.interrupted", at=NOW, data={"silent_seconds": 3})
    restored = PeerEvent(id="abcdefgh-2", kind="media.restored", at=NOW, data={"silent_seconds": 12.5, "attempts": 4})
    assert restored.data == {"silent_seconds": 12.5, "attempts": 4}
    PeerEvent(id="abcdefgh-3", kind="media.lost", at=NOW, data={"seconds": 60.0, "attempts": 20})


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValidationError):
        PeerEvent(id="abcdefgh-1", kind="recording.caught_up", at=datetime(2026, 1, 1), data={})


def test_no_kind_names_what_the_broker_decides_or_adds() -> None:
    """A peer's data is a mapping of its own: none of its fields can be the broker's word.

    ``audit.record_data`` takes the data as one argument, so no key reaches the event's
    actor, source, session, ticket, kind or time; the keys the broker adds to the data
    (``BROKER_DATA_KEYS``) are in no schema, and the broker's values come last anyway.
    """
    decided = set(inspect.signature(audit.record_data).parameters) | {"at", "id"}
    for kind, shape in EVENT_DATA.items():
        assert not set(shape.model_fields) & (decided | set(BROKER_DATA_KEYS)), kind


def test_the_broker_adds_its_keys_after_the_peers_fields() -> None:
    event = PeerEvent(id="abcdefgh-1", kind="chat.sent", at=NOW, data={"text": "hi"})
    assert stored_data(event) == {"text": "hi", "event_id": "abcdefgh-1", "reported_at": NOW.isoformat()}


def test_every_kind_stores_flat_data_so_a_report_can_always_serialise_it() -> None:
    """No field of any kind is an object or a list: what is stored nests one level, whatever a peer sends."""
    scalars = (str, int, float, bool, type(None))
    for kind, shape in EVENT_DATA.items():
        for name, field in shape.model_fields.items():
            assert all(part in scalars for part in (get_args(field.annotation) or (field.annotation,))), (kind, name)


def test_no_reported_kind_is_a_webhook_event() -> None:
    """A peer's batch is stored in one INSERT that bypasses the outbox (``audit.record_reported``)."""
    assert not (HOST_EVENT_KINDS | TECHNICIAN_EVENT_KINDS) & set(EVENT_OF_AUDIT_KIND)
    with pytest.raises(ValueError, match=r"session\.ended"):
        audit.record_reported(
            None,  # type: ignore[arg-type]  # no database: the kind is refused first
            [("session.ended", {}, "x" * 8)], actor="a", session_id="s", ticket_id=1,
        )
