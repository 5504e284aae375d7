"""broker.audit.recordings.RecordingStore.joined: a player's many range requests join the segments once."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from broker.audit.recordings import JOINED_KEPT, RecordingStore


def test_the_same_segments_are_joined_once_and_a_new_segment_joins_again(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path, os.urandom(32))
    builds: list[str] = []

    def build(label: str) -> Callable[[], bytes]:
        def joined() -> bytes:
            builds.append(label)
            return label.encode()
        return joined

    first = ((0, "a" * 64), (1, "b" * 64))
    assert store.joined("s", first, build("two")) == b"two"
    assert store.joined("s", first, build("again")) == b"two"
    assert store.joined("s", (*first, (2, "c" * 64)), build("three")) == b"three"
    assert store.joined("other", first, build("other")) == b"other"
    assert builds == ["two", "three", "other"]


def test_only_the_last_few_recordings_stay_in_memory(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path, os.urandom(32))
    builds: list[int] = []
    for n in range(JOINED_KEPT + 1):
        store.joined(f"s{n}", ((0, "a" * 64),), lambda n=n: builds.append(n) or b"x")
    store.joined("s0", ((0, "a" * 64),), lambda: builds.append(-1) or b"x")
    assert builds == [*range(JOINED_KEPT + 1), -1]
