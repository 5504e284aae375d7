"""host_client.recording_quality.RecordingQuality: segments are encoded smaller while the link is the limit."""

from __future__ import annotations

import pytest

from host_client.recording_quality import FULL_BITRATE, FULL_NEEDS, LIMITED_BITRATE, RecordingQuality, carries_full_recording


def test_a_link_never_congested_records_at_full_quality() -> None:
    quality = RecordingQuality()
    assert [quality.bitrate(t, congested=False) for t in (0.0, 1.0, 100.0)] == [FULL_BITRATE] * 3


def test_congestion_limits_the_next_segment_at_once() -> None:
    quality = RecordingQuality()
    assert quality.bitrate(5.0, congested=True) == LIMITED_BITRATE
    assert quality.limited(5.0, congested=True)


def test_the_limit_holds_until_the_link_is_calm_for_a_while() -> None:
    quality = RecordingQuality(calm_seconds=10.0)
    quality.bitrate(5.0, congested=True)
    assert quality.bitrate(14.9, congested=False) == LIMITED_BITRATE
    assert quality.bitrate(15.0, congested=False) == FULL_BITRATE


def test_renewed_congestion_restarts_the_calm_period() -> None:
    quality = RecordingQuality(calm_seconds=10.0)
    quality.bitrate(0.0, congested=True)
    quality.bitrate(8.0, congested=True)
    assert quality.bitrate(17.0, congested=False) == LIMITED_BITRATE
    assert quality.bitrate(18.0, congested=False) == FULL_BITRATE


def test_no_calm_period_follows_the_link_segment_by_segment() -> None:
    quality = RecordingQuality(calm_seconds=0.0)
    assert quality.bitrate(1.0, congested=True) == FULL_BITRATE  # zero seconds of limit: nothing changes
    assert quality.bitrate(2.0, congested=False) == FULL_BITRATE


def test_the_limited_rate_is_lower_than_full() -> None:
    assert 0 < LIMITED_BITRATE < FULL_BITRATE


def test_a_negative_calm_period_is_refused() -> None:
    with pytest.raises(ValueError):
        RecordingQuality(calm_seconds=-1.0)


def test_the_full_quality_needs_an_estimate_that_carries_it_and_a_live_stream_beside_it() -> None:
    assert not carries_full_recording(None)  # no estimate yet: the link is untried
    assert not carries_full_recording(FULL_NEEDS - 1)
    assert carries_full_recording(FULL_NEEDS)
    assert FULL_NEEDS > FULL_BITRATE
