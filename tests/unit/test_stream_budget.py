"""Frame pacing and scale against what the link carries (peer.stream_budget), on a made-up clock."""

from __future__ import annotations

import pytest

from peer.stream_budget import (
    CAPACITY_HALF_LIFE,
    CARRIED_SECONDS,
    ESTIMATE_STALE,
    ESTIMATOR_WINDOW,
    FIRST_KEYFRAME_WINDOW,
    GOT_THROUGH_SECONDS,
    HEADROOM,
    KEYFRAME_WINDOW,
    LOSS_CONGESTED,
    LOSS_FREE,
    MIN_BITRATE,
    NACK_CONGESTED_PACKETS,
    NACK_WINDOW,
    PROBE_CEILING,
    PROBE_QUIET,
    PROVEN_SECONDS,
    RATE_WINDOW,
    RECAP_HOLD,
    RECAP_RATIO,
    RECAP_UP_RATIO,
    REFINE_SHARE,
    REPORT_SPAN,
    SCALES,
    SETTLED_KEYFRAME_WINDOW,
    SETTLED_SECONDS,
    STALE_SHARE,
    START_BITRATE,
    UNTRIED_AFTER,
    UNTRIED_PROBE_AFTER,
    FrameCap,
    RecentMost,
    StreamBudget,
    recap_due,
)


def estimate(incoming: float, capacity: float) -> float:
    """What a REMB estimator (aiortc's AIMD) reports: at most 1.5x what arrives, 0.85x it on overuse."""
    if incoming > capacity:
        return 0.85 * incoming
    return 1.5 * incoming + 10_000


def run(
    budget: StreamBudget, *, seconds: float, fps: float, frame_bytes: int, link: float | None,
    start: float = 0.0, sent: list[float] | None = None, reports: bool = False,
) -> float:
    """Send frames at ``fps`` (capped by the budget) for ``seconds`` over a link of ``link`` bit/s.

    The receiver's estimate comes every 0.25 s, as :func:`estimate` of the rate
    that arrived; with ``reports``, a receiver report every second too, of the share
    the link could not carry (none without a link); returns the clock afterwards.
    """
    now = start
    next_report = start
    next_loss_report = start + 1.0
    while now < start + seconds:
        if link is not None and now >= next_report:
            budget.link_bitrate(estimate(min(budget.send_rate(now), link * 1.2), link), now)
            next_report = now + 0.25
        if reports and now >= next_loss_report:
            rate = budget.send_rate(now)
            budget.receiver_loss(0.0 if link is None or rate <= link else 1 - link / rate, now)
            next_loss_report = now + 1.0
        budget.sent(frame_bytes, keyframe=False, now=now)
        if sent is not None:
            sent.append(now)
        now += max(1.0 / fps, budget.interval())
    return now


def started(budget: StreamBudget, now: float = 0.0) -> StreamBudget:
    """``budget`` whose first picture went out :data:`UNTRIED_PROBE_AFTER` before ``now`` (a session under way)."""
    budget.sent(1_000, keyframe=True, now=now - UNTRIED_PROBE_AFTER)
    return budget


def scroll(budget: StreamBudget, *, frame_bytes: int, until: float, now: float = 0.0) -> float:
    """A moving screen: a frame of ``frame_bytes`` every 1/60 s from ``now`` to ``until``, no reports;
    returns the clock afterwards."""
    while now < until:
        budget.sent(frame_bytes, keyframe=False, now=now)
        now += 1 / 60
    return now


def test_an_uncongested_link_keeps_the_full_frame_rate_and_size() -> None:
    budget = StreamBudget(max_fps=30)
    # 20 kB frames at 30 fps = 4.8 Mbit/s; the estimate is above it.
    run(budget, seconds=5, fps=30, frame_bytes=20_000, link=6_000_000)
    assert budget.fps == 30 and budget.interval() == pytest.approx(1 / 30)
    assert budget.scale == 1.0


def test_an_estimate_below_the_send_rate_lowers_the_frame_rate_to_fit() -> None:
    budget = StreamBudget(max_fps=30, min_fps=5)
    sent: list[float] = []
    run(budget, seconds=20, fps=30, frame_bytes=20_000, link=2_000_000, sent=sent)  # 160 kbit a frame: 12.5 fps fit
    assert 8 <= budget.fps <= 15
    assert budget.scale == 1.0, "frame rate goes down before the picture shrinks"
    last_ten_seconds = [t for t in sent if t >= 10]
    assert len(last_ten_seconds) * 160_000 / 10 <= 2_000_000 * 1.05, "on average the stream fits the link"


def test_the_frame_rate_comes_back_once_the_congestion_is_over() -> None:
    budget = StreamBudget(max_fps=30, min_fps=5)
    now = run(budget, seconds=5, fps=30, frame_bytes=20_000, link=1_500_000)
    assert budget.fps < 15
    run(budget, seconds=5, fps=30, frame_bytes=20_000, link=50_000_000, start=now)
    assert budget.fps == 30


def test_scale_steps_down_only_at_the_lowest_frame_rate_and_holds() -> None:
    budget = StreamBudget(max_fps=30, min_fps=5, scale_hold=5)
    # 100 kB frames at 5 fps = 4 Mbit/s, the link carries 1 Mbit/s. The made-up estimate holds at
    # 0.85x what arrives without first falling, so the untried link believes it only after ESTIMATE_STALE.
    now = run(budget, seconds=ESTIMATE_STALE + 1, fps=30, frame_bytes=100_000, link=1_000_000)
    assert budget.fps == 5 and budget.scale == SCALES[1]
    first_change = now
    now = run(budget, seconds=2, fps=30, frame_bytes=100_000, link=1_000_000, start=now)
    assert budget.scale == SCALES[1], "held for scale_hold seconds: no keyframe storm"
    run(budget, seconds=6, fps=30, frame_bytes=100_000, link=1_000_000, start=now)
    assert budget.scale == SCALES[2] and first_change < now


def test_scale_goes_back_up_when_the_link_recovers() -> None:
    budget = StreamBudget(max_fps=30, min_fps=5, scale_hold=1)
    now = run(budget, seconds=4, fps=30, frame_bytes=100_000, link=500_000)
    assert budget.scale < 1.0
    run(budget, seconds=10, fps=30, frame_bytes=10_000, link=50_000_000, start=now)
    assert budget.scale == 1.0 and budget.fps == 30


def test_one_small_frame_after_a_capped_one_does_not_end_the_refinement() -> None:
    # Right after a large frame x264's buffer is drained and the next comes out small at a coarse quantiser:
    # the picture is not sharp yet. Two small frames in a row are.
    budget = StreamBudget()
    cap = budget.frame_cap(0.0)
    budget.sent(cap.frame_bytes, keyframe=False, now=0.0, cap=cap)
    assert budget.last_frame_capped and budget.refining
    budget.sent(100, keyframe=False, now=0.2, cap=cap)
    assert not budget.last_frame_capped and budget.refining
    budget.sent(100, keyframe=False, now=0.4, cap=cap)
    assert not budget.refining


def test_a_settled_screen_goes_back_to_full_size_at_once() -> None:
    # Scaled down while a scroll pressed on a narrow link; the screen then settles: its refinement fits any
    # target, and a picture held at half size never gets sharp.
    budget = StreamBudget(max_fps=30, min_fps=5, scale_hold=5)
    now = run(budget, seconds=ESTIMATE_STALE + 1, fps=30, frame_bytes=100_000, link=1_000_000)
    assert budget.scale < 1.0 and budget.congested
    budget.settled(SETTLED_SECONDS / 2, now)  # a frame between two of the scroll's: still moving
    assert budget.scale < 1.0
    budget.settled(SETTLED_SECONDS, now + SETTLED_SECONDS)
    assert budget.scale == 1.0
    # Held like any new scale: moving again at once does not shrink it the next moment.
    run(budget, seconds=2, fps=30, frame_bytes=100_000, link=1_000_000, start=now + SETTLED_SECONDS)
    assert budget.scale == 1.0


def test_keyframes_the_receiver_asked_for_are_not_taken_for_congestion() -> None:
    budget = StreamBudget(max_fps=30)
    budget.link_bitrate(2_000_000, 0.0)
    budget.link_bitrate(1_000_000, 0.1)
    budget.sent(400_000, keyframe=True, now=0.2)
    assert budget.fps == 30


def test_a_low_estimate_after_a_quiet_screen_is_no_congestion() -> None:
    budget = StreamBudget(max_fps=30)
    # Static screen: little arrives, the estimate sinks with it (1.5x the incoming rate).
    run(budget, seconds=5, fps=1, frame_bytes=2_000, link=100_000_000)
    # Then the user scrolls: 30 frames of 30 kB a second, far above the stale estimate.
    run(budget, seconds=2, fps=30, frame_bytes=30_000, link=100_000_000, start=5.0)
    assert budget.fps == 30 and budget.scale == 1.0


def test_an_estimate_that_falls_while_we_send_less_than_it_is_no_congestion() -> None:
    budget = StreamBudget(max_fps=30)
    budget.link_bitrate(10_000_000, 0.0)
    budget.link_bitrate(5_000_000, 0.5)
    budget.sent(10_000, keyframe=False, now=0.6)  # 80 kbit/s, far below
    assert budget.fps == 30


def test_no_estimate_yet_means_no_congestion() -> None:
    budget = StreamBudget(max_fps=20)
    run(budget, seconds=2, fps=20, frame_bytes=5_000, link=None)  # 0.8 Mbit/s: within the start
    assert budget.fps == 20 and not budget.congested


def test_on_an_untried_link_a_stream_above_its_target_raises_the_target_not_cuts_the_frame_rate() -> None:
    # Rule changed (loopback scrolling ran at a third of its frame rate while the target climbed from
    # 1 Mbit/s): nothing said the link is narrow, so the target follows the stream within a second.
    budget = started(StreamBudget(max_fps=60, min_fps=5))
    now = run(budget, seconds=2, fps=60, frame_bytes=8_000, link=None, reports=True)  # 3.8 Mbit/s offered
    assert budget.fps == 60 and budget.untried(now)
    assert 3_000_000 <= budget.target_bitrate(now) <= 6_000_000, "about what the stream sends, no runaway"


def test_a_probe_stops_at_a_multiple_of_what_the_link_has_shown_it_carries() -> None:
    # A scroll offering 10 Mbit/s on an untried link. Until a receiver report shows the link carries it,
    # the target stops at 3x the start (or the estimate); a report with next to no loss lifts the ceiling.
    budget = started(StreamBudget(max_fps=60, min_fps=5))
    now = scroll(budget, frame_bytes=20_800, until=1.0)
    assert budget.target_bitrate(now) == pytest.approx(PROBE_CEILING * START_BITRATE, rel=0.01)
    budget.link_bitrate(1_500_000, now)  # the estimator's first word (at most 1.5x what arrived)
    assert budget.probe_ceiling(now) == PROBE_CEILING * 1_500_000
    budget.receiver_loss(LOSS_FREE, now)  # the link carried the scroll's 10 Mbit/s
    assert budget.probe_ceiling(now) == pytest.approx(PROBE_CEILING * budget.send_rate(now))
    now = scroll(budget, frame_bytes=20_800, until=1.5, now=now)
    assert budget.target_bitrate(now) >= 9_500_000 and budget.fps == 60, "up to what the scroll sends"
    # What was shown counts for a minute.
    assert budget.probe_ceiling(now + PROVEN_SECONDS + 1) == PROBE_CEILING * 1_500_000


def test_once_the_link_pushed_back_a_stream_above_its_target_sends_fewer_frames() -> None:
    budget = StreamBudget(max_fps=60, min_fps=5)
    budget.frames_dropped(0.0)  # the pacer's queue overflowed: the link is narrow
    run(budget, seconds=2, fps=60, frame_bytes=8_000, link=None, start=0.1)  # 3.8 Mbit/s offered
    assert not budget.untried(2.1)
    assert budget.fps < 30 and budget.scale == 1.0, "frame rate first"


@pytest.mark.parametrize(("max_fps", "min_fps"), [(30, 0), (5, 10), (30, -1)])
def test_bad_limits_are_refused(max_fps: float, min_fps: float) -> None:
    with pytest.raises(ValueError, match="min_fps"):
        StreamBudget(max_fps=max_fps, min_fps=min_fps)


def test_bad_reports_are_refused() -> None:
    budget = StreamBudget()
    with pytest.raises(ValueError, match="positive"):
        budget.link_bitrate(0, 0.0)
    with pytest.raises(ValueError, match="negative"):
        budget.sent(-1, keyframe=False, now=0)


# --- the target bitrate: a start, then a capacity memory --------------------------------


def test_before_any_estimate_the_target_is_the_start_and_frames_fit_a_1_mbit_link() -> None:
    budget = StreamBudget(max_fps=30)
    assert START_BITRATE == 1_000_000 and budget.target_bitrate(0.0) == START_BITRATE
    cap = budget.frame_cap(0.0)
    assert budget.fps == 30
    assert cap == FrameCap(frame_bytes=8_333, burst_bytes=87_500), "refined at 15 fps, 8.3 kB each"
    assert cap.burst_bytes * 8 / 1_000_000 == FIRST_KEYFRAME_WINDOW, "the first frame: 0.7 s at 1 Mbit/s"
    budget.sent(50_000, keyframe=True, now=0.0, cap=cap)
    cap = budget.frame_cap(0.0)
    assert cap.burst_bytes * 8 / 1_000_000 == KEYFRAME_WINDOW, "any later frame leaves in 0.2 s at 1 Mbit/s"


def test_a_quiet_screens_low_estimate_does_not_lower_the_target() -> None:
    budget = StreamBudget()
    run(budget, seconds=10, fps=1, frame_bytes=2_000, link=100_000_000)  # estimates ~34 kbit/s
    assert budget.target_bitrate(10.0) == START_BITRATE


def test_the_target_follows_an_estimate_the_stream_pushed_up() -> None:
    budget = StreamBudget(max_fps=30)
    # A stream that fills its budget: the estimate says 1.5x what arrived, the target takes it.
    now = 0.0
    for _ in range(6):
        rate = budget.target_bitrate(now)
        budget.sent(int(rate / 8), keyframe=False, now=now)  # a second's worth
        now += 0.5
        budget.link_bitrate(estimate(budget.send_rate(now), 50_000_000), now)
    assert budget.target_bitrate(now) > 5 * START_BITRATE


def test_congestion_sets_the_target_to_the_estimate() -> None:
    budget = StreamBudget(max_fps=30)
    run(budget, seconds=8, fps=30, frame_bytes=20_000, link=2_000_000)  # 4.8 Mbit/s offered
    # Between the congested estimate (0.85x what arrives) and the probe above it (1.5x what arrives).
    assert 1_500_000 <= budget.target_bitrate(8.0) <= 3_000_000 and budget.fps < 20


def test_a_remembered_capacity_decays_slowly_towards_the_start() -> None:
    budget = StreamBudget()
    budget.link_bitrate(9_000_000, 0.0)  # the estimator's first report: still starting, so climbing
    assert budget.target_bitrate(0.0) == 9_000_000
    budget.link_bitrate(100_000, 1.5)  # a quiet screen's estimate: no capacity
    assert budget.target_bitrate(CAPACITY_HALF_LIFE) == pytest.approx(START_BITRATE + 4_000_000)
    assert budget.target_bitrate(20 * CAPACITY_HALF_LIFE) == pytest.approx(START_BITRATE, rel=1e-3)


def test_frames_dropped_cut_the_target_and_the_frame_rate_once_a_window() -> None:
    budget = StreamBudget(max_fps=30)
    run(budget, seconds=2, fps=30, frame_bytes=4_000, link=None)  # ~1 Mbit/s sent, no estimate yet
    budget.frames_dropped(2.0)
    target, fps = budget.target_bitrate(2.0), budget.fps
    assert target < START_BITRATE and fps < 30 and budget.congested
    budget.frames_dropped(2.1)
    assert (budget.target_bitrate(2.1), budget.fps) == (target, fps), "one cut per window"
    for n in range(40):
        budget.frames_dropped(3.0 + n)
    assert budget.target_bitrate(50.0) == MIN_BITRATE and budget.fps == budget.min_fps


def test_the_per_frame_allowance_is_the_target_shared_by_the_frame_rate() -> None:
    budget = StreamBudget(max_fps=12, min_fps=5)
    full = budget.frame_cap(0.0)
    run(budget, seconds=2, fps=30, frame_bytes=4_000, link=None)
    budget.frames_dropped(2.0)
    cut = budget.frame_cap(2.0)
    assert cut.burst_bytes < full.burst_bytes, "the target fell"
    assert cut.frame_bytes * budget.fps == pytest.approx(budget.target_bitrate(2.0) / 8, rel=0.01)


def test_a_frame_that_used_its_allowance_counts_as_capped() -> None:
    budget = StreamBudget()
    cap = FrameCap(frame_bytes=4_000, burst_bytes=25_000)
    budget.sent(20_000, keyframe=True, now=0.0, cap=cap)
    assert budget.last_frame_capped
    budget.sent(3_000, keyframe=False, now=0.1, cap=cap)
    assert budget.last_frame_capped
    budget.sent(300, keyframe=False, now=0.2, cap=cap)
    assert not budget.last_frame_capped, "a sharp settled screen re-encodes to next to nothing"
    budget.sent(20_000, keyframe=False, now=0.3)
    assert not budget.last_frame_capped, "no cap, nothing capped"


def test_a_new_cap_only_after_the_hold_and_a_large_enough_change() -> None:
    cap = FrameCap(frame_bytes=4_000, burst_bytes=25_000)
    assert recap_due(cap, FrameCap(12_000, 75_000), RECAP_HOLD / 2) is None
    assert recap_due(cap, FrameCap(12_000, 75_000), RECAP_HOLD) == "rise"
    assert recap_due(cap, FrameCap(5_000, 30_000), 60.0) is None, "a change of a quarter is not worth a keyframe"
    assert recap_due(cap, FrameCap(2_000, 12_500), RECAP_HOLD) == "fall"
    # Down at 1.5x (frames too large for the link), up only at 3x (a blurred keyframe and a second of
    # refinement buy frames that are only somewhat larger).
    assert recap_due(cap, FrameCap(int(4_000 / RECAP_RATIO), 16_000), RECAP_HOLD) == "fall"
    assert recap_due(cap, FrameCap(int(4_000 * RECAP_RATIO), 37_500), RECAP_HOLD) is None
    assert recap_due(cap, FrameCap(11_000, 68_000), RECAP_HOLD) is None
    assert recap_due(cap, FrameCap(int(4_000 * RECAP_UP_RATIO), 75_000), RECAP_HOLD) == "rise"
    # The first frame's burst (FIRST_KEYFRAME_WINDOW) is given back on the way like a fall.
    first = FrameCap(frame_bytes=8_333, burst_bytes=87_500)
    assert recap_due(first, FrameCap(8_333, 25_000), RECAP_HOLD) == "fall"
    assert recap_due(first, FrameCap(8_333, 25_000), RECAP_HOLD / 2) is None


def test_a_stream_pressing_on_its_target_probes_it_upwards_until_congestion() -> None:
    budget = StreamBudget(max_fps=30)
    # A busy screen, more than the target: the target grows 1.5x a second, up to what the stream wants.
    now = run(budget, seconds=4, fps=30, frame_bytes=8_000, link=None)
    probed = budget.target_bitrate(now)
    assert probed > 1.9 * START_BITRATE, "up to where the stream (1.9 Mbit/s) presses no longer"
    budget.frames_dropped(now)  # the link could not carry it
    cut = budget.target_bitrate(now)
    assert cut < probed
    # Still pressing on the cut target (below what was sent while the frames were dropped):
    now = run(budget, seconds=PROBE_QUIET - 0.5, fps=30, frame_bytes=9_000, link=None, start=now)
    assert budget.target_bitrate(now) <= cut, "no probe right after congestion"
    now = run(budget, seconds=2, fps=30, frame_bytes=9_000, link=None, start=now)
    assert budget.target_bitrate(now) > cut, "then it probes again"


def test_refinement_that_fits_the_target_does_not_probe() -> None:
    budget = StreamBudget(max_fps=30)
    cap = budget.frame_cap(0.0)
    now = 0.0
    while now < 5:  # capped frames, each its allowance, as the capture sends them: one a refinement interval
        budget.sent(cap.frame_bytes, keyframe=False, now=now, cap=cap)
        now += budget.refine_interval()
    assert budget.last_frame_capped and budget.target_bitrate(now) == START_BITRATE


def test_refinement_spends_a_share_of_the_target_and_waits_for_a_burst_to_drain() -> None:
    budget = StreamBudget(max_fps=30)
    assert budget.refine_interval() == pytest.approx(1 / 15), "before any frame: the most"
    cap = budget.frame_cap(0.0)
    budget.sent(22_000, keyframe=True, now=0.0, cap=cap)
    assert budget.refine_interval() == pytest.approx(22_000 * 8 / (0.8 * START_BITRATE)), "the keyframe drains"
    budget.sent(cap.frame_bytes, keyframe=False, now=0.22, cap=cap)
    assert budget.refine_interval() == pytest.approx(cap.frame_bytes * 8 / (0.8 * START_BITRATE))
    budget.frames_dropped(0.3)  # the target falls; the encoder keeps its cap (no new keyframe yet)
    assert cap.frame_bytes * 8 / budget.refine_interval() <= 0.8 * budget.target_bitrate(0.3) + 1


def test_the_frame_rate_comes_back_quickly_once_the_target_is_far_above_what_is_sent() -> None:
    budget = StreamBudget(max_fps=60, min_fps=5)
    budget.frames_dropped(0.0)  # a link that pushed back: the stream is held to its target
    now = run(budget, seconds=2, fps=60, frame_bytes=8_000, link=None, start=0.1)  # 3.8 against 0.9 Mbit/s
    assert budget.fps < 40
    budget.link_bitrate(50_000_000, now)  # the link carried more: the target follows at once
    run(budget, seconds=2.5, fps=60, frame_bytes=8_000, link=None, start=now)
    assert budget.fps == 60, "doubling a second, not 5 fps a second"


# --- an untried link: a stream that wants more gets it at once --------------------------


def test_a_scroll_after_typing_keeps_its_frame_rate_though_the_estimate_still_says_typing() -> None:
    budget = StreamBudget(max_fps=60, min_fps=5)
    # Typing: a small frame every 80 ms; the estimate sinks to 1.5x what arrives and holds there.
    now = run(budget, seconds=10, fps=12, frame_bytes=500, link=100_000_000, reports=True)
    typing_estimate = estimate(budget.send_rate(now), 100_000_000)
    # Scrolling: 14 kB frames at 60 fps (6.7 Mbit/s). aiortc's estimator reports what it measured over
    # the quiet second before, then holds it (its increase is 8 % a second): far below what is sent.
    now_scroll = now
    while now_scroll < now + 2:
        if round(now_scroll * 60) % 30 == 0:
            budget.link_bitrate(typing_estimate, now_scroll)
        if round(now_scroll * 60) % 60 == 30:
            budget.receiver_loss(0.0, now_scroll)  # the fast link carried it all
        budget.sent(14_000, keyframe=False, now=now_scroll)
        assert budget.fps == 60, "not cut while the target catches up"
        now_scroll += 1 / 60
    assert not budget.congested and budget.target_bitrate(now_scroll) >= 6_000_000


def test_an_estimate_that_falls_once_the_stream_rose_is_congestion_after_the_estimators_window() -> None:
    budget = StreamBudget(max_fps=60, min_fps=5)
    budget.link_bitrate(1_500_000, 0.0)
    budget.link_bitrate(1_500_000, 1.5)  # held: a window old, not climbing
    now = 1.5
    reports = []
    while now < 4.0:
        budget.sent(14_000, keyframe=False, now=now)  # 6.7 Mbit/s into a 1 Mbit/s link
        if round(now * 60) % 30 == 0:
            budget.link_bitrate(850_000, now)  # aiortc's decrease: 0.85x what arrived
            reports.append((now, budget.congested))
        now += 1 / 60
    believed = [at for at, congested in reports if congested]
    assert believed, "a narrow link pushes back"
    # The stream rose at 1.5 s; the estimates (every 0.5 s) see it from the next one on.
    assert 1.5 + ESTIMATOR_WINDOW <= believed[0] <= 1.5 + ESTIMATOR_WINDOW + 1.1, "after the estimator's window"
    assert budget.fps < 60 and budget.target_bitrate(now) < START_BITRATE and not budget.untried(now)


def test_a_link_counts_as_untried_again_a_while_after_its_last_congestion() -> None:
    budget = StreamBudget()
    assert budget.untried(0.0)
    budget.frames_dropped(5.0)
    assert not budget.untried(5.0 + UNTRIED_AFTER - 1)
    assert budget.untried(5.0 + UNTRIED_AFTER)


def test_capped_frames_faster_than_refinement_raise_the_target_of_an_untried_link() -> None:
    # A scroll the pacer holds near the target: 6 kB frames (capped) at 20 fps, 0.96 Mbit/s, never
    # over 1.1x the target, yet every frame wants more than its allowance.
    budget = started(StreamBudget(max_fps=30))
    cap = budget.frame_cap(0.0)
    now = 0.0
    while now < 2:
        budget.sent(6_000, keyframe=False, now=now, cap=cap)
        now += 1 / 20
    assert budget.target_bitrate(now) > 2 * START_BITRATE and budget.fps == 30


def test_an_untried_link_is_not_probed_while_the_first_picture_is_sharpened() -> None:
    # Typing right after the first picture: every frame capped (the picture is still being refined),
    # 30 a second. Probed, a 1 Mbit/s link's target went to 2.5 Mbit/s before the first estimate came.
    budget = StreamBudget(max_fps=30)
    cap = budget.frame_cap(0.0)
    now = 0.0
    while now < UNTRIED_PROBE_AFTER - 0.05:
        budget.sent(7_000, keyframe=now == 0.0, now=now, cap=cap)
        now += 1 / 30
    assert budget.target_bitrate(now) == START_BITRATE and budget.untried(now)
    # From then on a stream that presses on its target raises it, as on any untried link.
    while now < UNTRIED_PROBE_AFTER + 1:
        budget.sent(7_000, keyframe=False, now=now, cap=cap)
        now += 1 / 30
    assert budget.target_bitrate(now) > 2 * START_BITRATE



def test_a_reserve_for_the_recording_comes_off_the_target_not_off_the_links_capacity() -> None:
    budget = StreamBudget()
    budget.link_bitrate(2_000_000, 0.0)  # above the memory: it rises to the estimate
    assert budget.target_bitrate(0.0) == 2_000_000
    budget.reserve(800_000, 0.0)
    assert budget.target_bitrate(0.0) == 1_200_000
    assert budget.frame_cap(0.0).burst_bytes == int(1_200_000 / 8 * FIRST_KEYFRAME_WINDOW)  # nothing sent yet
    # Never below the floor, however much the recording needs.
    budget.reserve(5_000_000, 0.0)
    assert budget.target_bitrate(0.0) == MIN_BITRATE
    budget.reserve(0.0, 0.0)
    assert budget.target_bitrate(0.0) == 2_000_000


def test_a_paced_upload_takes_its_pace_off_the_target_and_the_refinement_not_off_the_memory() -> None:
    budget = StreamBudget()
    budget.sent(8_333, keyframe=False, now=0.0, cap=budget.frame_cap(0.0))
    interval = budget.refine_interval()
    budget.uploading(250_000.0, 0.0)  # a recording upload written at a quarter of the start
    assert budget.target_bitrate(0.0) == START_BITRATE - 250_000
    assert budget.target_bitrate(0.0, uploads=False) == START_BITRATE  # what the upload's pace is a share of
    assert budget.frame_cap(0.0).frame_bytes < int(START_BITRATE / 8 / 15)
    assert budget.refine_interval() == pytest.approx(interval * START_BITRATE / (START_BITRATE - 250_000))
    budget.uploading(5_000_000.0, 0.0)  # never below the floor
    assert budget.target_bitrate(0.0) == MIN_BITRATE
    budget.uploading(0.0, 0.0)  # the upload is through: the whole target again
    assert budget.target_bitrate(0.0) == START_BITRATE


def test_what_a_paced_upload_took_counts_as_carried_by_the_link() -> None:
    # A 1 Mbit/s link that pushed back once; a recording upload is paced at 400 kbit/s beside video sent at
    # 800 kbit/s, and the receiver says 550 kbit/s of video got through: the link carried 950 kbit/s. Taken
    # for the video's alone, the memory fell to 550 kbit/s and the target to its floor (550 less the
    # upload's 400), and the next estimate, of a video squeezed further, lower still.
    budget = StreamBudget()
    budget.frames_dropped(0.0)
    budget.uploading(400_000.0, 0.0)
    for step in range(61):
        budget.sent(3_333, keyframe=False, now=step / 30)
    budget.link_bitrate(600_000, 1.0)  # the first estimate: still climbing, no verdict
    budget.link_bitrate(550_000, 2.0)
    assert budget.congested
    assert budget.target_bitrate(2.0) == pytest.approx(550_000, rel=0.02)
    # Dropped frames beside the upload: what got through is the video sent (the most in any second of the
    # last REPORT_SPAN) and the upload's pace.
    for step in range(61, 151):
        budget.sent(2_000, keyframe=False, now=step / 30)  # 480 kbit/s
    budget.frames_dropped(5.0)
    most_sent = 31 * 2_000 * 8  # a one-second window holds 31 of these frames at its edges
    assert budget.target_bitrate(5.0) == pytest.approx(HEADROOM * (most_sent + 400_000) - 400_000, rel=0.01)
    # An upload that ended half a window ago still counts for half the window.
    budget.uploading(0.0, 5.5)
    for step in range(151, 181):
        budget.sent(2_000, keyframe=False, now=step / 30)
    budget.link_bitrate(300_000, 6.0)
    assert budget.congested and budget.target_bitrate(6.0) == pytest.approx(300_000 + 200_000, rel=0.02)


def sharing(memory: float, share: float) -> StreamBudget:
    """A budget whose memory is ``memory`` bit/s (an estimate said so at 0 s), with ``share`` set aside at 0 s."""
    budget = StreamBudget()
    budget.link_bitrate(memory, 0.0)
    budget.reserve(share, 0.0)
    return budget


def test_while_reserving_the_memory_holds_whatever_the_squeezed_video_is_told() -> None:
    # The link carries 1 Mbit/s and the memory knows it; with 800 kbit/s set aside the video gets ~200 kbit/s,
    # and its receiver's estimates (of the video alone, congested or far below) must not move the memory:
    # counted in, they would hand the share back to the video, or squeeze it again below the floor.
    budget = sharing(1_000_000, 800_000)
    now = run(budget, seconds=6.0, fps=30, frame_bytes=6_000, link=200_000, start=1.0)
    assert budget.target_bitrate(now) == 200_000
    # The share released, the picture has the link's memory back at once.
    budget.reserve(0.0, now)
    assert budget.target_bitrate(now) == 1_000_000


def squeezed_beside_stored_uploads(*, stored_late: bool = False) -> tuple[StreamBudget, float, float]:
    """A link that pushed back (a report of 20 % lost of 360 kbit/s: the memory at about 260 kbit/s), 110 kbit/s
    set aside for the recording from then on: 3 s of 150 kbit/s video with receiver reports of no loss each
    second, beside uploads paced at 560 kbit/s that the broker stored at 500 (``stored_late``: the last one
    stored longer than a report span before each report). Returns the budget, the clock and the memory."""
    budget = StreamBudget(max_fps=30)
    now = run(budget, seconds=2.0, fps=30, frame_bytes=1_500, link=None, start=1.0)
    budget.receiver_loss(0.2, now)
    memory = budget.link_capacity(now)
    assert memory == pytest.approx(HEADROOM * 0.8 * 360_000, rel=0.05)
    budget.reserve(memory - MIN_BITRATE, now)
    start = now
    for step in range(1, 91):
        now = start + step / 30
        budget.uploading(560_000.0, now)
        budget.sent(625, keyframe=False, now=now)  # 150 kbit/s
        if step % 30 == 0:
            budget.upload_stored(500_000.0, now - (REPORT_SPAN + 0.5 if stored_late else 0.3))
            budget.receiver_loss(0.0, now)
    return budget, now, memory


def test_what_stored_uploads_carried_beside_the_squeezed_video_is_the_link_once_the_share_is_released() -> None:
    # The estimate sees the video alone, squeezed by the share and delayed by the upload's queue; the broker's
    # answers show the link carried the uploads too. The settled picture gets what both got through, and the
    # uploads' deadlines are weighed against it (:meth:`link_capacity`).
    budget, now, _ = squeezed_beside_stored_uploads()
    assert budget.target_bitrate(now) == pytest.approx(MIN_BITRATE)
    carried = budget.send_rate(now) + 500_000  # the stored rate, under the pace the uploads were given
    assert budget.link_capacity(now) == pytest.approx(carried, rel=0.01)
    budget.uploading(0.0, now)
    budget.reserve(0.0, now)
    assert budget.target_bitrate(now) == pytest.approx(carried, rel=0.01)
    # The memory keeps it once the link was last seen carrying it CARRIED_SECONDS ago.
    assert budget.link_capacity(now + CARRIED_SECONDS + 0.1) == pytest.approx(carried, rel=0.01)


def test_an_upload_stored_long_before_a_report_or_a_cut_just_before_raises_nothing() -> None:
    budget, now, memory = squeezed_beside_stored_uploads(stored_late=True)
    assert budget.link_capacity(now) == pytest.approx(memory)
    budget.reserve(0.0, now)
    assert budget.target_bitrate(now, uploads=False) == pytest.approx(memory)
    # Loss just before the share is released: the memory is what the cut left, whatever was carried.
    budget, now, memory = squeezed_beside_stored_uploads()
    budget.receiver_loss(0.3, now + 0.1)
    cut = budget.link_capacity(now + 0.1)
    assert cut < memory
    budget.reserve(0.0, now + 0.2)
    assert budget.target_bitrate(now + 0.2, uploads=False) == pytest.approx(cut)


def beside_a_paced_upload() -> tuple[StreamBudget, float, float]:
    """A link that pushed back long ago (the memory at 900 kbit/s): a second of 700 kbit/s of video (over its target,
    the memory less the pace) beside an upload paced at 350 kbit/s. Returns the budget, the clock and the memory."""
    budget = StreamBudget(max_fps=30)
    budget.frames_dropped(0.0)
    memory = budget.link_capacity(5.0)
    now = 5.0
    for step in range(30):
        now = 5.0 + step / 30
        budget.uploading(350_000.0, now)
        budget.sent(2_900, keyframe=False, now=now)
    return budget, now, memory


def test_a_paced_upload_the_broker_stored_raises_the_memory_beside_the_video() -> None:
    # No share set aside: a paced upload takes its pace off the target, and the estimate speaks of the video
    # alone. A receiver report of no loss while the upload was stored at 300 kbit/s: the link carried both.
    budget, now, memory = beside_a_paced_upload()
    budget.upload_stored(300_000.0, now)
    budget.receiver_loss(0.0, now)
    assert budget.link_capacity(now) == pytest.approx(max(memory, budget.send_rate(now) + 300_000), rel=0.01)
    assert budget.link_capacity(now) > memory
    # Without the broker's answer the pace is no proof: the upload may be waiting in the sender's buffer.
    plain, now, _ = beside_a_paced_upload()
    plain.receiver_loss(0.0, now)
    assert plain.target_bitrate(now, uploads=False) == pytest.approx(memory, rel=0.01)


def test_an_upload_stored_faster_than_its_pace_counts_only_its_pace() -> None:
    # A broker that answers at once (a fast hop to it, a small body) says nothing of the bottleneck: what the uploads
    # were given bounds what counts as carried, and no report's arithmetic lifts the memory past it.
    budget, now, memory = beside_a_paced_upload()
    budget.upload_stored(80_000_000.0, now)
    budget.receiver_loss(0.0, now)
    assert memory < budget.link_capacity(now) <= budget.send_rate(now) + 350_000


def test_an_uploads_stored_rate_is_a_finite_non_negative_rate() -> None:
    budget = StreamBudget()
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="rate"):
            budget.upload_stored(bad, 0.0)


def test_a_reserve_is_a_finite_non_negative_rate() -> None:
    budget = StreamBudget()
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="reserve"):
            budget.reserve(bad, 0.0)


def test_a_reserve_comes_off_the_estimate_when_the_memory_is_still_probing_above_it() -> None:
    budget = StreamBudget()
    budget.link_bitrate(3_000_000, 0.0)  # the memory at 3 Mbit/s...
    budget.link_bitrate(1_100_000, 0.1)  # ... and the link, newly, says 1.1 (not yet congestion: the video sends little)
    assert budget.target_bitrate(0.1) == pytest.approx(3_000_000, rel=0.01)
    budget.reserve(700_000, 0.1)
    assert budget.target_bitrate(0.1) == 400_000
    # Later estimates are of the squeezed video alone: the share stays off what the link carried.
    budget.link_bitrate(500_000, 0.5)
    budget.reserve(600_000, 0.5)
    assert budget.target_bitrate(0.5) == 500_000


def test_on_a_link_that_pushed_back_a_share_comes_off_the_memory_not_off_an_estimate_far_below_it() -> None:
    # Loss cut the memory to what got through (a link that pushed back); the estimator, still in its slow
    # start, says 70 kbit/s. Taken for the link, the picture got its floor beside any share.
    budget = StreamBudget(max_fps=30)
    now = run(budget, seconds=2.0, fps=30, frame_bytes=3_000, link=None, start=1.0)  # 720 kbit/s
    budget.receiver_loss(0.2, now)
    memory = budget.target_bitrate(now)
    assert not budget.untried(now) and memory == pytest.approx(HEADROOM * 0.8 * 720_000, rel=0.05)
    budget.link_bitrate(70_000, now + 0.1)
    budget.reserve(200_000, now + 0.1)
    assert budget.link_capacity(now + 0.1) == pytest.approx(memory)
    assert budget.target_bitrate(now + 0.1) == pytest.approx(memory - 200_000)
    # Released and set aside again at once: the estimate, of the squeezed video, still does not count.
    budget.reserve(0.0, now + 0.5)
    budget.link_bitrate(60_000, now + 0.6)
    budget.reserve(300_000, now + 0.7)
    assert budget.target_bitrate(now + 0.7) == pytest.approx(memory - 300_000)


def test_going_over_a_target_squeezed_by_a_share_is_no_call_to_probe_once_it_is_released() -> None:
    # A link that pushed back long ago; 600 kbit/s of video over a target squeezed to 200 kbit/s by a share.
    budget = StreamBudget(max_fps=30)
    budget.frames_dropped(0.0)
    budget.link_bitrate(1_000_000, 1.0)
    budget.reserve(800_000, 10.0)
    now = scroll(budget, frame_bytes=1_250, until=12.0, now=10.0)  # 600 kbit/s
    memory = budget.link_capacity(now)
    # The share released (a settled picture sharpens first): refinement frames well under the memory.
    budget.reserve(0.0, now)
    for step in range(10):
        budget.sent(2_500, keyframe=False, now=now + 0.1 * (step + 1))
    assert budget.target_bitrate(now + 1.0) == pytest.approx(memory, rel=0.01)


def test_going_over_a_target_squeezed_by_a_paced_upload_is_no_call_to_probe() -> None:
    # A link that pushed back long ago; a settled picture sharpens at 600 kbit/s beside an upload paced at
    # 500 kbit/s of a 900 kbit/s memory: over its target (400), under the memory.
    budget = StreamBudget(max_fps=30)
    budget.frames_dropped(0.0)
    memory = budget.link_capacity(10.0)
    budget.uploading(500_000.0, 10.0)
    now = scroll(budget, frame_bytes=1_250, until=13.0, now=10.0)  # 600 kbit/s
    assert budget.link_capacity(now) == pytest.approx(memory, rel=0.01), "no probe"
    # The stream wanting more than the whole memory still probes.
    now = scroll(budget, frame_bytes=2_500, until=14.5, now=now)  # 1.2 Mbit/s
    assert budget.link_capacity(now) > 1.2 * memory


def test_a_loss_cut_bounds_what_a_share_is_taken_from() -> None:
    # 1 Mbit/s carried when the share was set aside, an upload going at its pace; then half the video's
    # packets are lost.
    budget = sharing(1_000_000, 400_000)
    budget.uploading(400_000.0, 0.0)
    assert budget.target_bitrate(0.0) == 600_000, "an upload inside the share is not left to twice"
    now = run(budget, seconds=2.0, fps=30, frame_bytes=2_500, link=None, start=0.0)  # 600 kbit/s
    budget.receiver_loss(0.5, now)
    assert budget.target_bitrate(now) == pytest.approx(HEADROOM * (0.5 * 600_000 + 400_000) - 400_000, rel=0.05)


def test_an_estimate_far_below_what_reports_showed_getting_through_speaks_of_the_past() -> None:
    # A link that pushed back once. A scroll sends 0.9 Mbit/s and the receiver's reports show it getting
    # through; aiortc's estimator, having seen queues grow as the scroll's first frames met typing's quiet
    # second, says 0.85x typing's 180 kbit/s and then climbs a few kbit/s a second.
    def scrolled(*, reported: bool) -> tuple[StreamBudget, float]:
        budget = StreamBudget(max_fps=30)
        budget.frames_dropped(0.0)
        budget.link_bitrate(900_000, 0.05)  # the estimator's word before (an estimate a window old)
        now = run(budget, seconds=2.0, fps=30, frame_bytes=3_750, link=None, start=0.1)  # 0.9 Mbit/s
        if reported:
            budget.receiver_loss(0.03, now)  # some random loss: no congestion
        return budget, now

    budget, now = scrolled(reported=True)
    target = budget.target_bitrate(now)
    budget.link_bitrate(153_000, now)
    assert not budget.congested and budget.target_bitrate(now) == target
    # Without the report, the estimate is believed (the link pushed back before).
    unreported, now = scrolled(reported=False)
    unreported.link_bitrate(153_000, now)
    assert unreported.congested and unreported.target_bitrate(now) == 153_000
    # An estimate at least STALE_SHARE of what got through is believed...
    near, now = scrolled(reported=True)
    near.link_bitrate(STALE_SHARE * 0.97 * near.send_rate(now) + 10_000, now)
    assert near.congested
    # ...and what got through counts for GOT_THROUGH_SECONDS.
    later = now + GOT_THROUGH_SECONDS
    budget.sent(3_750, keyframe=False, now=later)
    budget.link_bitrate(2_000, later)
    assert budget.congested


def test_one_packet_lost_of_a_few_is_no_congestion() -> None:
    # Typing sends seven or eight packets a second; at 2 % random loss a report now and then says one of
    # them was lost: 14 %. Two lost of them is a queue dropping a frame's packets.
    def typed() -> tuple[StreamBudget, float]:
        budget = StreamBudget(max_fps=30)
        budget.frames_dropped(-10.0)
        return budget, run(budget, seconds=2.0, fps=8, frame_bytes=1_000, link=None, start=0.0)

    budget, now = typed()
    target = budget.target_bitrate(now)
    budget.receiver_loss(1 / 7, now, lost_packets=1)
    assert not budget.congested and budget.target_bitrate(now) == target
    budget.receiver_loss(2 / 8, now, lost_packets=2)
    assert budget.congested and budget.target_bitrate(now) < target
    unknown, now = typed()
    unknown.receiver_loss(1 / 7, now)  # no count said: the share decides
    assert unknown.congested
    with pytest.raises(ValueError):
        unknown.receiver_loss(0.5, now, lost_packets=-1)


def test_a_console_claiming_everything_arrived_cannot_stop_the_hosts_own_drops_from_cutting() -> None:
    # Attack: a hostile console forges reports of no loss, so every low estimate reads as stale; the host's
    # pacer still drops frames the link cannot carry, and they cut the target as before.
    budget = StreamBudget(max_fps=30)
    now = run(budget, seconds=3.0, fps=30, frame_bytes=4_000, link=None)  # ~1 Mbit/s
    for n in range(20):
        budget.receiver_loss(0.0, now + n * 0.05, lost_packets=0)
        budget.link_bitrate(100_000, now + n * 0.05)
    now += 1.0
    before = budget.target_bitrate(now)
    budget.frames_dropped(now)
    assert budget.congested and budget.target_bitrate(now) <= HEADROOM * before


def test_a_frame_rate_cut_does_not_hold_off_a_loss_reports_cut() -> None:
    # A link that pushed back long ago; a scroll offers 1.9 Mbit/s against a 0.9 Mbit/s memory, so the frame
    # rate is cut once the stream has gone over its target for half a window; then 45 % of it is lost.
    budget = StreamBudget(max_fps=60)
    budget.frames_dropped(-5.0)
    now = run(budget, seconds=0.9, fps=60, frame_bytes=4_000, link=None, start=0.0)
    assert budget.fps < 60, "the frame rate was cut for going over the target"
    before = budget.target_bitrate(now)
    budget.receiver_loss(0.45, now)
    assert budget.target_bitrate(now) < 0.8 * before
    # A second report within the window does not cut again: it speaks of what the first did.
    cut = budget.target_bitrate(now)
    budget.receiver_loss(0.45, now + RATE_WINDOW / 2)
    assert budget.target_bitrate(now + RATE_WINDOW / 2) == pytest.approx(cut, rel=0.01)


def test_an_estimate_and_an_uploads_pace_do_not_raise_the_memory_right_after_loss() -> None:
    # Between two reports of heavy loss, an estimate of 0.71 Mbit/s of video beside an upload paced at
    # 0.35 Mbit/s says 1.06 Mbit/s was carried; the reports say the link lost half of what it was sent.
    budget = StreamBudget(max_fps=30)
    budget.frames_dropped(-10.0)
    now = run(budget, seconds=2.0, fps=30, frame_bytes=2_500, link=None, start=0.0)  # 600 kbit/s
    budget.uploading(350_000.0, now - 1.0)
    budget.receiver_loss(0.44, now)
    memory = budget.link_capacity(now)
    budget.link_bitrate(710_000, now + 0.5)
    assert budget.link_capacity(now + 0.5) == pytest.approx(memory, rel=0.01)
    # Once PROBE_QUIET has passed without loss, an estimate above the memory raises it again.
    later = now + PROBE_QUIET + 0.1
    budget.uploading(350_000.0, later - 1.0)
    budget.link_bitrate(710_000, later)
    assert budget.link_capacity(later) == pytest.approx(710_000 + 350_000, rel=0.02)


def test_the_most_recent_value_is_the_largest_noted_within_the_window() -> None:
    most = RecentMost(10.0)
    assert most.most(0.0) == 0.0
    most.note(5.0, 0.0)
    most.note(3.0, 4.0)
    assert most.most(9.0) == 5.0
    most.note(4.0, 6.0)  # drops the 3, which can never be the largest again
    assert most.most(10.0) == 4.0, "the 5 is 10 s old"
    assert most.most(16.0) == 0.0


def test_on_an_untried_link_a_share_comes_off_what_is_sent_when_the_estimate_lags_below_it() -> None:
    # The estimator climbs slowly: it says 500 kbit/s while 1 Mbit/s goes through without pushback.
    budget = StreamBudget(max_fps=30)
    budget.link_bitrate(3_000_000, 0.0)  # the memory at 3 Mbit/s
    now = run(budget, seconds=2.0, fps=30, frame_bytes=4_166, link=None, start=0.1)  # 1 Mbit/s
    budget.link_bitrate(500_000, now)
    assert budget.untried(now)
    budget.reserve(400_000, now)
    assert budget.link_capacity(now) == pytest.approx(budget.send_rate(now))
    assert budget.target_bitrate(now) == pytest.approx(budget.send_rate(now) - 400_000)


def test_estimates_just_after_a_share_is_released_still_speak_of_the_squeezed_video() -> None:
    budget = sharing(1_000_000, 850_000)
    budget.reserve(0.0, 5.0)
    # The estimator's window still holds the squeezed seconds: a low estimate now is no narrower link.
    now = run(budget, seconds=2.0, fps=30, frame_bytes=4_000, link=200_000, start=5.0)
    assert budget.target_bitrate(now) == pytest.approx(1_000_000, rel=0.05)


# --- receiver reports of loss ------------------------------------------------------------


def test_heavy_loss_stops_an_untried_links_probe_below_what_got_through() -> None:
    # A scroll on an untried link (14 kB frames at 60 fps, 6.7 Mbit/s): the target follows it up to the
    # probe's ceiling, 3x the start.
    budget = started(StreamBudget(max_fps=60, min_fps=5))
    now = scroll(budget, frame_bytes=14_000, until=2.0)
    sent = budget.send_rate(now)
    assert budget.target_bitrate(now) == pytest.approx(PROBE_CEILING * START_BITRATE, rel=0.01)
    assert budget.fps == 60, "probing, not cut"
    budget.receiver_loss(0.75, now)  # a 2.5 Mbit/s link lost three packets in four
    assert budget.congested and not budget.untried(now)
    assert budget.target_bitrate(now) <= 0.25 * sent and budget.fps < 60
    target, fps = budget.target_bitrate(now), budget.fps
    budget.receiver_loss(0.75, now + 0.5)  # the next report covers the same burst: one cut per window
    assert budget.target_bitrate(now + 0.5) == pytest.approx(target, rel=0.01) and budget.fps == fps


def test_random_loss_a_retransmission_repairs_is_no_congestion() -> None:
    budget = StreamBudget(max_fps=30)
    now = run(budget, seconds=3, fps=30, frame_bytes=4_000, link=None)
    target = budget.target_bitrate(now)
    for fraction in (0.0, 0.02, LOSS_CONGESTED):
        budget.receiver_loss(fraction, now)
    assert not budget.congested and budget.untried(now) and budget.target_bitrate(now) == target


def test_loss_is_weighed_against_what_was_sent_while_the_lost_packets_went_out() -> None:
    # Typing's first second sends 0.9 Mbit/s over a 1 Mbit/s link beside an upload, then slows to a few
    # small frames; the report of the burst's 19 % loss comes a second later. Against the rate sent by
    # then (about 0.1 Mbit/s), the memory fell to its floor.
    budget = StreamBudget(max_fps=30)
    now = run(budget, seconds=1.0, fps=30, frame_bytes=3_750, link=None, start=1.0)  # 0.9 Mbit/s
    for _ in range(4):  # 0.1 Mbit/s
        now += 0.25
        budget.sent(3_125, keyframe=False, now=now)
    assert budget.send_rate(now) < 150_000
    budget.receiver_loss(0.19, now)
    assert budget.congested
    assert budget.target_bitrate(now) == pytest.approx(HEADROOM * 0.81 * 900_000, rel=0.05)
    # A report long after the burst is weighed against what was sent since.
    quiet = StreamBudget(max_fps=30)
    now = run(quiet, seconds=1.0, fps=30, frame_bytes=3_750, link=None, start=1.0)
    for _ in range(int(4 * REPORT_SPAN) + 4):
        now += 0.25
        quiet.sent(3_125, keyframe=False, now=now)
    quiet.receiver_loss(0.19, now)
    assert quiet.target_bitrate(now) == MIN_BITRATE  # 0.9 x 0.81 x 0.1 Mbit/s: under the floor


def test_what_uploads_took_in_a_share_released_just_before_a_loss_report_counts_as_carried() -> None:
    # 300 kbit/s of video beside uploads at the 600 kbit/s set aside; the share is released and the uploads
    # wait (a settled picture sharpens first), and the report of that time's loss comes: the link carried
    # the uploads too.
    budget = sharing(1_000_000, 600_000)
    budget.uploading(600_000.0, 0.0)
    now = run(budget, seconds=2.0, fps=30, frame_bytes=1_250, link=None, start=0.0)  # 300 kbit/s
    budget.reserve(0.0, now)
    budget.uploading(0.0, now)
    budget.sent(1_250, keyframe=False, now=now + 0.1)
    budget.receiver_loss(0.12, now + 0.2)
    assert budget.target_bitrate(now + 0.2) == pytest.approx(HEADROOM * (0.88 * 300_000 + 600_000), rel=0.03)


def test_loss_while_the_recording_has_a_share_counts_what_its_uploads_took_as_carried() -> None:
    most_sent = 31 * 4_000 * 8  # the most sent in one second: 31 of these frames at its edges

    def shared(*, uploads: float) -> tuple[StreamBudget, float]:
        budget = StreamBudget(max_fps=30)
        now = run(budget, seconds=3, fps=30, frame_bytes=4_000, link=None)  # ~1 Mbit/s of video
        budget.reserve(400_000, now)
        budget.uploading(uploads, now - ESTIMATOR_WINDOW)
        budget.receiver_loss(0.5, now)
        budget.reserve(0.0, now)  # the share released: the target is the link's memory again
        budget.uploading(0.0, now)
        return budget, now

    budget, now = shared(uploads=440_000)  # at the share's pace (a little over it)
    assert budget.target_bitrate(now) == pytest.approx(HEADROOM * (0.5 * most_sent + 440_000), rel=0.01)
    # A share set aside the moment the link was overrun, before any upload went at its pace, carried nothing.
    idle, now = shared(uploads=0.0)
    assert idle.target_bitrate(now) == pytest.approx(HEADROOM * 0.5 * most_sent, rel=0.01)


@pytest.mark.parametrize("fraction", [-0.1, 1.01, float("nan")])
def test_a_lost_fraction_outside_0_to_1_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError):
        StreamBudget().receiver_loss(fraction, 0.0)


def test_a_console_reporting_every_packet_lost_as_often_as_it_likes_holds_the_stream_at_its_floor() -> None:
    # Attack: a hostile console's receiver reports are its own to forge (docs/security.md). They can
    # starve its own picture, never stop the stream or take the target below the floor.
    budget = StreamBudget(max_fps=30, min_fps=5)
    now = 0.0
    while now < 30:
        budget.receiver_loss(255 / 256, now)  # the most an RR's 8-bit fraction can say
        budget.sent(4_000, keyframe=False, now=now)
        now += 0.01
    assert budget.target_bitrate(now) == MIN_BITRATE and budget.fps == budget.min_fps
    assert budget.frame_cap(now).frame_bytes > 0 and budget.interval() == pytest.approx(1 / budget.min_fps)


def test_a_settled_screens_keyframe_may_take_its_window_of_the_target_in_one_frame() -> None:
    budget = StreamBudget()
    now = 0.0
    settled = budget.settled_frame_cap(now)
    target_bytes = budget.target_bitrate(now) / 8
    assert settled.burst_bytes == int(target_bytes * SETTLED_KEYFRAME_WINDOW)
    assert settled.burst_bytes > 5 * target_bytes * KEYFRAME_WINDOW, "the link's cap allows 0.2 s in one frame"
    # Under five frames' refill in the buffer, x264 lets one frame take all of it (else half).
    assert settled.burst_bytes / settled.frame_bytes < 5
    budget.upload_share = 600_000  # what a paced upload takes is not the picture's
    assert budget.settled_frame_cap(now).burst_bytes == int(400_000 / 8 * SETTLED_KEYFRAME_WINDOW)


# --- partial frames (typing on a picture being refined) -------------------------------------------------


def test_a_partial_frame_counts_against_the_link_but_says_nothing_of_the_pictures_quality() -> None:
    budget = StreamBudget(max_fps=30)
    cap = budget.frame_cap(0.0)
    budget.sent(cap.frame_bytes, keyframe=False, now=0.0, cap=cap)
    assert budget.refining and budget.whole_frame_at == 0.0
    for n in range(1, 4):  # small typed frames: had they been whole, two would have ended the refinement
        budget.sent(300, keyframe=False, now=n * 0.05, cap=cap, partial=True)
    assert budget.refining and budget.last_frame_capped and budget.whole_frame_at == 0.0
    assert budget.send_rate(0.15) == pytest.approx((cap.frame_bytes + 900) * 8 / RATE_WINDOW)
    with pytest.raises(ValueError, match="keyframe"):
        budget.sent(300, keyframe=True, now=0.2, partial=True)


def test_the_refinement_leaves_the_link_to_the_partial_frames_sent_since_the_last_whole_one() -> None:
    budget = StreamBudget(max_fps=30)
    cap = budget.frame_cap(0.0)
    budget.sent(8_000, keyframe=False, now=0.0, cap=cap)
    alone = budget.refine_interval()
    assert alone == pytest.approx(8_000 * 8 / (REFINE_SHARE * START_BITRATE))
    budget.sent(2_000, keyframe=False, now=0.03, cap=cap, partial=True)
    assert budget.refine_interval() == pytest.approx(10_000 * 8 / (REFINE_SHARE * START_BITRATE))
    budget.sent(8_000, keyframe=False, now=0.1, cap=cap)  # the next whole frame starts the count again
    assert budget.refine_interval() == pytest.approx(alone)


# --- NACKs: loss a round trip after it ------------------------------------------------------------------


def test_a_run_of_nacked_packets_stops_an_untried_links_probe_before_any_receiver_report() -> None:
    # The first picture's refinement showed a 1 Mbit/s link carrying 0.8 Mbit/s without loss; then a scroll
    # probes it towards 2.4 Mbit/s, and its NACKs come a round trip after the queue overflows.
    budget = started(StreamBudget(max_fps=60, min_fps=5))
    now = 0.0
    while now < 1.0:
        budget.sent(3_333, keyframe=False, now=now)  # 0.8 Mbit/s at 30 fps
        now += 1 / 30
    budget.receiver_loss(0.0, now)
    now = scroll(budget, frame_bytes=14_000, now=now, until=now + 0.6)
    sent = budget.send_rate(now)
    assert budget.untried(now) and budget.fps == 60 and budget.target_bitrate(now) > 2_000_000, "probing"
    budget.packets_nacked(NACK_CONGESTED_PACKETS - 1, now)
    assert budget.untried(now), "a few packets are no run"
    budget.packets_nacked(80, now + 0.05)  # a fifth of what went out in the last half second
    assert budget.congested and not budget.untried(now + 0.05)
    assert budget.target_bitrate(now + 0.05) <= HEADROOM * 0.8 * sent * 1.01, "below what got through"
    assert budget.fps < 60
    budget.packets_nacked(100, now + 0.6)  # NACKs of what went out before the cut: the link is no longer untried
    assert budget.target_bitrate(now + 0.6) == pytest.approx(budget.target_bitrate(now + 0.05)), "reports weigh it now"


def test_nacks_of_random_loss_are_no_congestion() -> None:
    # 2 % of a 20 Mbit/s stream's packets lost at random, NACKed as they go: a tenth is a queue, not this.
    budget = started(StreamBudget(max_fps=60, min_fps=5))
    now, step = 0.0, 1 / 60
    while now < 3.0:
        budget.sent(40_000, keyframe=False, now=now)  # 34 packets a frame, 2000 a second
        if round(now / step) % 3 == 0:
            budget.packets_nacked(2, now)  # 40 a second: 2 %
        now += step
    assert budget.untried(now) and not budget.congested
    # And on a typing stream of a few packets a second, one lost packet every NACK_WINDOW is no run either.
    quiet = started(StreamBudget(max_fps=30))
    for n in range(20):
        quiet.sent(600, keyframe=False, now=n * 0.125)
        if n % 4 == 0:
            quiet.packets_nacked(1, n * 0.125)
    assert quiet.untried(2.5) and not quiet.congested


def test_nacks_older_than_the_window_are_forgotten_and_counts_are_not_negative() -> None:
    budget = started(StreamBudget(max_fps=60, min_fps=5))
    now = scroll(budget, frame_bytes=1_200, until=2.0)  # one packet a frame
    for n in range(2 * NACK_CONGESTED_PACKETS):
        budget.packets_nacked(1, now + n * NACK_WINDOW)  # a packet every window (nothing sent meanwhile): no run
    assert budget.untried(now + 2 * NACK_CONGESTED_PACKETS * NACK_WINDOW) and not budget.congested
    with pytest.raises(ValueError):
        budget.packets_nacked(-1, now)
