"""broker.peers.PeerCache (verified peers for a few seconds) and host_client's ProgressMeter."""

from __future__ import annotations

import pytest

from broker.peers import PeerCache, SessionPeer
from host_client.file_transfers import UPDATE_INTERVAL, ProgressMeter
from protocol.signalling import PeerInfo, Role


def peer() -> SessionPeer:
    """A stand-in peer: PeerCache stores it and never looks inside."""
    return SessionPeer(info=PeerInfo(role=Role.host), session=None)  # type: ignore[arg-type]


# --- PeerCache --------------------------------------------------------------------------------


def test_a_peer_is_returned_within_its_ttl_and_not_after() -> None:
    cache = PeerCache(ttl=2.0)
    cached = peer()
    cache.put("s1", "tok", cached, now=100.0, generation=cache.generation)
    for now in (100.0, 101.0, 101.999, 102.0):
        assert cache.get("s1", "tok", now=now) is cached
    for now in (102.001, 103.0, 10_000.0):
        assert cache.get("s1", "tok", now=now) is None


def test_the_default_ttl_is_two_seconds() -> None:
    cache = PeerCache()
    cached = peer()
    cache.put("s1", "tok", cached, now=0.0, generation=cache.generation)
    assert cache.get("s1", "tok", now=2.0) is cached
    assert cache.get("s1", "tok", now=2.01) is None


def test_entries_are_keyed_by_session_and_token() -> None:
    cache = PeerCache()
    cached = peer()
    cache.put("s1", "tok", cached, now=0.0, generation=cache.generation)
    assert cache.get("s1", "other", now=0.0) is None
    assert cache.get("s2", "tok", now=0.0) is None
    assert cache.get("s1", "tok", now=0.0) is cached


def test_putting_again_refreshes_the_entry() -> None:
    cache = PeerCache(ttl=2.0)
    old, new = peer(), peer()
    cache.put("s1", "tok", old, now=0.0, generation=cache.generation)
    cache.put("s1", "tok", new, now=1.5, generation=cache.generation)
    assert cache.get("s1", "tok", now=3.0) is new


def test_an_entry_looked_up_before_a_forget_is_not_kept() -> None:
    """A lookup that began before access was withdrawn may have read the database from before it."""
    cache = PeerCache(ttl=10.0)
    began = cache.generation
    cache.forget()
    cache.put("s1", "tech", peer(), now=0.0, generation=began)
    assert cache.get("s1", "tech", now=1.0) is None
    fresh = peer()
    cache.put("s1", "tech", fresh, now=0.0, generation=cache.generation)
    assert cache.get("s1", "tech", now=1.0) is fresh


def test_forget_everything() -> None:
    cache = PeerCache(ttl=10.0)
    for session in ("s1", "s2", "s3"):
        cache.put(session, "tok", peer(), now=0.0, generation=cache.generation)
    cache.forget()
    assert all(cache.get(s, "tok", now=0.0) is None for s in ("s1", "s2", "s3"))


def test_a_crowded_cache_drops_expired_entries_and_keeps_live_ones() -> None:
    cache = PeerCache(ttl=2.0)
    for i in range(10_001):
        cache.put("old", f"t{i}", peer(), now=0.0, generation=cache.generation)
    live = peer()
    cache.put("live", "tok", live, now=9.0, generation=cache.generation)
    cache.put("new", "tok", peer(), now=10.0, generation=cache.generation)  # the cache is over its size: expired entries go
    assert cache.get("live", "tok", now=10.0) is live
    assert cache.get("new", "tok", now=10.0) is not None
    assert len(cache._entries) == 2


# --- ProgressMeter ----------------------------------------------------------------------------


def test_the_first_update_is_reported() -> None:
    assert ProgressMeter().update(0, now=0.0) == (True, 0.0)
    assert ProgressMeter().update(500, now=12345.6) == (True, 0.0)


def test_reports_come_at_most_once_per_interval() -> None:
    meter = ProgressMeter(interval=0.25)
    times = [0.0, 0.1, 0.2, 0.25, 0.3, 0.49, 0.5, 0.74, 1.0, 1.01]
    reported = [t for t in times if meter.update(int(t * 1000), now=t)[0]]
    assert reported == [0.0, 0.25, 0.5, 1.0]


def test_the_interval_counts_from_the_last_report_not_the_last_update() -> None:
    meter = ProgressMeter(interval=1.0)
    assert meter.update(0, now=0.0)[0]
    for t in (0.3, 0.6, 0.9):
        assert not meter.update(1, now=t)[0]
    assert meter.update(1, now=1.0)[0]


def test_frequent_updates_give_a_bounded_number_of_reports() -> None:
    meter = ProgressMeter()
    assert meter.interval == UPDATE_INTERVAL
    reports = sum(meter.update(i * 100, now=i / 1000)[0] for i in range(10_000))  # 1 kHz for 10 s
    assert 10 / UPDATE_INTERVAL <= reports <= 10 / UPDATE_INTERVAL + 1


def test_the_rate_of_a_steady_transfer() -> None:
    meter = ProgressMeter()
    rate = 0.0
    for i in range(41):
        _, rate = meter.update(i * 500, now=i * 0.25)  # 2000 bytes per second
    assert rate == pytest.approx(2000.0)


def test_the_rate_is_measured_over_the_window_only() -> None:
    meter = ProgressMeter(window=3.0)
    done = 0
    rates: dict[float, float] = {}
    for step in range(1, 41):  # every 0.5 s: 1000 B/s for 10 s, then 5000 B/s
        t = step * 0.5
        done += 500 if t <= 10 else 2500
        _, rates[t] = meter.update(done, now=t)
    # One second into the faster phase the window [8, 11] holds 2 s slow and 1 s fast.
    assert rates[11.0] == pytest.approx((2 * 1000 + 1 * 5000) / 3)
    # Three seconds in, the slow phase has left the window entirely.
    assert rates[13.0] == pytest.approx(5000.0)
    assert rates[20.0] == pytest.approx(5000.0)


def test_a_stall_longer_than_the_window_brings_the_rate_to_zero() -> None:
    meter = ProgressMeter(window=3.0)
    for step in range(21):
        meter.update(min(step, 10) * 1000, now=step * 0.5)  # progress stops at 5 s
    assert meter.update(10_000, now=10.5)[1] == 0.0


def test_two_updates_far_apart_still_give_a_rate() -> None:
    meter = ProgressMeter(window=3.0)
    meter.update(0, now=0.0)
    assert meter.update(1000, now=10.0)[1] == pytest.approx(100.0)


def test_updates_at_the_same_instant_do_not_divide_by_zero() -> None:
    meter = ProgressMeter()
    meter.update(0, now=5.0)
    assert meter.update(100, now=5.0) == (False, 0.0)
