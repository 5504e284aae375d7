"""peer.transfer_rate: the running rate, the whole run's rate once every byte is through, and its summary."""

from __future__ import annotations

import pytest

from peer.transfer_rate import TransferRate, seconds_text, size_text

TOTAL = 10**9


def test_a_file_that_arrives_in_one_chunk_has_the_rate_of_that_chunk() -> None:
    """The case that showed "100% at 0.0 MB/s": a start report, then the one chunk, then the sender's last word."""
    rate = TransferRate()
    assert rate.update(0, 3_100_000, now=10.0) == 0.0  # the run's starting point: nothing measured yet
    assert rate.update(3_100_000, 3_100_000, now=10.5) == pytest.approx(6_200_000)
    assert rate.update(3_100_000, 3_100_000, now=14.0) == pytest.approx(6_200_000), "a later report is no slower"
    assert rate.seconds == pytest.approx(0.5)
    assert rate.summary() == "3.10 MB in 0.50 s, 6.20 MB/s"


def test_the_rate_of_a_steady_transfer() -> None:
    rate = TransferRate()
    shown = 0.0
    for i in range(41):
        shown = rate.update(i * 500, TOTAL, now=i * 0.25)  # 2000 bytes per second
    assert shown == pytest.approx(2000.0)


def test_the_running_rate_is_measured_over_the_window_only() -> None:
    rate = TransferRate(window=3.0)
    done = 0
    rates: dict[float, float] = {0.0: rate.update(0, TOTAL, now=0.0)}
    for step in range(1, 41):  # every 0.5 s: 1000 B/s for 10 s, then 5000 B/s
        t = step * 0.5
        done += 500 if t <= 10 else 2500
        rates[t] = rate.update(done, TOTAL, now=t)
    # One second into the faster phase the window [8, 11] holds 2 s slow and 1 s fast.
    assert rates[11.0] == pytest.approx((2 * 1000 + 1 * 5000) / 3)
    # Three seconds in, the slow phase has left the window entirely.
    assert rates[13.0] == pytest.approx(5000.0)
    assert rates[20.0] == pytest.approx(5000.0)


def test_at_the_end_the_rate_is_the_whole_runs_not_the_last_windows() -> None:
    rate = TransferRate(window=3.0)
    rate.update(0, 30_000, now=0.0)
    rate.update(10_000, 30_000, now=9.0)  # slow for 9 s
    assert rate.update(30_000, 30_000, now=10.0) == pytest.approx(3000.0)  # 30 kB over 10 s
    assert rate.summary() == "30.0 kB in 10.0 s, 3.00 kB/s"


def test_a_stall_longer_than_the_window_brings_the_running_rate_to_zero() -> None:
    rate = TransferRate(window=3.0)
    for step in range(21):
        rate.update(min(step, 10) * 1000, TOTAL, now=step * 0.5)  # progress stops at 5 s
    assert rate.update(10_000, TOTAL, now=10.5) == 0.0


def test_two_updates_far_apart_still_give_a_rate() -> None:
    rate = TransferRate(window=3.0)
    rate.update(0, TOTAL, now=0.0)
    assert rate.update(1000, TOTAL, now=10.0) == pytest.approx(100.0)


def test_updates_at_the_same_instant_do_not_divide_by_zero() -> None:
    rate = TransferRate()
    rate.update(0, 100, now=5.0)
    assert rate.update(50, 100, now=5.0) == 0.0
    assert rate.update(100, 100, now=5.0) == 0.0
    assert rate.summary() == ""


def test_a_resumed_run_counts_only_the_bytes_it_moved() -> None:
    rate = TransferRate()
    assert rate.update(8_000, 10_000, now=0.0) == 0.0  # 8 kB were there from an earlier run
    assert rate.update(10_000, 10_000, now=2.0) == pytest.approx(1000.0)
    assert rate.summary() == "2.00 kB in 2.0 s, 1.00 kB/s"


def test_chunks_handed_back_restart_the_running_rate_and_count_again_in_the_whole_run() -> None:
    rate = TransferRate(window=3.0)
    rate.update(0, 4000, now=0.0)
    rate.update(4000, 4000, now=1.0)  # all there, but one chunk failed its hash at the receiver
    assert rate.update(3000, 4000, now=1.5) == 0.0, "measured afresh from here"
    assert rate.update(3500, 4000, now=2.0) == pytest.approx(1000.0)
    assert rate.update(4000, 4000, now=2.5) == pytest.approx(5000 / 2.5)  # 4000 + 1000 again, over 2.5 s
    assert rate.seconds == pytest.approx(2.5)


def test_an_empty_file_or_one_already_complete_has_no_rate() -> None:
    rate = TransferRate()
    assert rate.update(0, 0, now=1.0) == 0.0
    assert rate.summary() == "" and rate.seconds == 0.0
    resumed = TransferRate()
    assert resumed.update(500, 500, now=1.0) == 0.0 and resumed.summary() == ""


def test_no_rate_before_anything_is_reported() -> None:
    rate = TransferRate()
    assert rate.average == 0.0 and rate.seconds is None and rate.summary() == ""


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 B"), (900, "900 B"), (1000, "1.00 kB"), (12_300_000, "12.3 MB"), (256e6, "256 MB"), (3.1e9, "3.10 GB")],
)
def test_sizes(count: float, text: str) -> None:
    assert size_text(count) == text


@pytest.mark.parametrize(("seconds", "text"), [(0.004, "0.00 s"), (0.42, "0.42 s"), (3.14, "3.1 s"), (125.4, "2 min 05 s")])
def test_durations(seconds: float, text: str) -> None:
    assert seconds_text(seconds) == text
