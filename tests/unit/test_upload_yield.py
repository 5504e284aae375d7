"""host_client.upload_yield.UploadYield: recording uploads wait while the live stream is congested, within the lag bound."""

from __future__ import annotations

import pytest

from host_client.upload_yield import (
    CATCH_UP,
    DEADLINE_SHARE,
    DEFER_AHEAD,
    DEFER_LINK_SHARE,
    FIRST_PICTURE_SECONDS,
    MIN_PACE,
    POLL_SECONDS,
    RECENT_SECONDS,
    RELEASE_SHARE,
    RESERVE_PACE,
    RESERVE_SHARE,
    SOONEST_DEADLINE,
    STILL_MARGIN_SECONDS,
    STILL_SECONDS,
    TOP_SHARE,
    UploadYield,
    WaitingSegment,
    first_picture_due,
    next_watch_due,
)

SEGMENT = 100_000
BOUND = 5.0


def test_an_uncongested_link_never_holds_an_upload() -> None:
    rule = UploadYield()
    assert rule.wait(10.0, congested=False, lag_seconds=0.0, max_lag_seconds=BOUND, size=SEGMENT) == 0.0
    assert rule.waited_seconds == 0.0


def test_a_congested_live_stream_holds_whole_segments_a_poll_at_a_time() -> None:
    rule = UploadYield()
    assert rule.wait(10.0, congested=True, lag_seconds=0.5, max_lag_seconds=BOUND, size=SEGMENT) == POLL_SECONDS
    # Near the point where it must go (30 % of the bound: 1.5 s), only the room that is left.
    assert rule.wait(10.2, congested=True, lag_seconds=1.4, max_lag_seconds=BOUND, size=SEGMENT) == pytest.approx(0.1)
    assert rule.waited_seconds == pytest.approx(POLL_SECONDS + 0.1)


def test_uploads_go_once_the_lag_reaches_its_share_of_the_bound() -> None:
    rule = UploadYield(lag_share=0.5)
    assert rule.wait(0.0, congested=True, lag_seconds=2.5, max_lag_seconds=BOUND, size=SEGMENT) == 0.0
    assert rule.wait(0.0, congested=True, lag_seconds=9.0, max_lag_seconds=BOUND, size=SEGMENT) == 0.0
    # A larger bound gives the spool more room to absorb the congestion.
    assert rule.wait(0.0, congested=True, lag_seconds=2.5, max_lag_seconds=30.0, size=SEGMENT) == POLL_SECONDS


def test_uploads_keep_waiting_a_calm_while_after_the_congestion() -> None:
    rule = UploadYield(calm_seconds=2.0)
    rule.wait(100.0, congested=True, lag_seconds=0.0, max_lag_seconds=BOUND, size=SEGMENT)
    assert rule.wait(101.5, congested=False, lag_seconds=1.0, max_lag_seconds=BOUND, size=SEGMENT) == POLL_SECONDS
    assert rule.wait(102.0, congested=False, lag_seconds=1.0, max_lag_seconds=BOUND, size=SEGMENT) == 0.0


def test_the_first_picture_is_due_while_connecting_and_for_a_while_after() -> None:
    assert first_picture_due("new", None, 5.0) and first_picture_due("connecting", None, 5.0)
    assert first_picture_due("connected", 10.0, 10.0 + FIRST_PICTURE_SECONDS - 0.01)
    assert not first_picture_due("connected", 10.0, 10.0 + FIRST_PICTURE_SECONDS)
    # No live stream, one that failed or closed, or a connection whose moment is unknown: nothing is due.
    for state in (None, "failed", "closed", "disconnected"):
        assert not first_picture_due(state, 10.0, 10.5)
    assert not first_picture_due("connected", None, 10.5)


def test_a_starting_live_stream_holds_whole_segments_with_no_calm_after() -> None:
    rule = UploadYield(calm_seconds=2.0)
    assert rule.wait(100.0, congested=False, lag_seconds=0.2, max_lag_seconds=BOUND, size=SEGMENT,
                     starting=True) == POLL_SECONDS
    # Once the first picture is through, the upload goes at once: starting is no congestion.
    assert rule.wait(100.3, congested=False, lag_seconds=0.5, max_lag_seconds=BOUND, size=SEGMENT) == 0.0
    # Held only as far as the lag allows, and never a small upload.
    assert rule.wait(101.0, congested=False, lag_seconds=1.5, max_lag_seconds=BOUND, size=SEGMENT, starting=True) == 0.0
    assert rule.wait(101.0, congested=False, lag_seconds=0.0, max_lag_seconds=BOUND, size=300, starting=True) == 0.0
    assert rule.waited_seconds == pytest.approx(POLL_SECONDS)


def test_small_uploads_never_wait_but_congestion_is_still_noted() -> None:
    rule = UploadYield(small_bytes=4096)
    assert rule.wait(0.0, congested=True, lag_seconds=0.0, max_lag_seconds=BOUND, size=300) == 0.0
    # The congestion a small upload saw holds the next whole segment.
    assert rule.wait(1.0, congested=False, lag_seconds=0.0, max_lag_seconds=BOUND, size=SEGMENT) == POLL_SECONDS


def test_a_share_outside_0_to_1_is_refused() -> None:
    for share in (0.0, 1.5, -1.0):
        with pytest.raises(ValueError, match="lag_share"):
            UploadYield(lag_share=share)


def test_uploads_are_paced_to_a_share_of_the_live_stream_only_while_the_link_limits_it() -> None:
    rule = UploadYield(link_share=0.25, lag_share=0.3)
    assert rule.pace(live_limit=None, lag_seconds=0.0, max_lag_seconds=BOUND) is None
    assert rule.pace(live_limit=1_000_000.0, lag_seconds=0.0, max_lag_seconds=BOUND) == 31_250.0
    # Never below the floor, and a target that makes no sense gives the floor.
    assert rule.pace(live_limit=100_000.0, lag_seconds=0.0, max_lag_seconds=BOUND) == MIN_PACE
    assert rule.pace(live_limit=float("nan"), lag_seconds=0.0, max_lag_seconds=BOUND) == MIN_PACE
    # A recording falling behind gets more of it, up to TOP_SHARE of the target at the reserve share
    # (0.5 s of 5 s)...
    assert abs(RESERVE_SHARE * BOUND - 0.5) < 1e-9
    assert rule.pace(live_limit=1_000_000.0, lag_seconds=0.25, max_lag_seconds=BOUND) == pytest.approx(
        1_000_000 / 8 * (0.25 + TOP_SHARE) / 2)
    assert rule.pace(live_limit=1_000_000.0, lag_seconds=0.49, max_lag_seconds=BOUND) == pytest.approx(
        1_000_000 / 8 * TOP_SHARE, rel=0.01)
    # past it the live stream sets part of the link aside for it, and it goes at that part's pace (a little
    # over), also while the lag falls back below the share.
    reserved = rule.reserve(scroll_backlog(1.5, 2), max_lag_seconds=BOUND)
    assert reserved == pytest.approx(CATCH_UP * 520_000)
    assert rule.pace(live_limit=1_000_000.0, lag_seconds=0.4, max_lag_seconds=BOUND) == pytest.approx(
        RESERVE_PACE * reserved / 8)
    # Not paced at all on a link that does not limit the picture.
    assert rule.pace(live_limit=None, lag_seconds=0.4, max_lag_seconds=BOUND) is None


def test_the_link_share_is_a_share() -> None:
    with pytest.raises(ValueError, match="link_share"):
        UploadYield(link_share=0.0)


def scroll_backlog(oldest_lag: float, count: int, size: int = 65_000) -> list[WaitingSegment]:
    """``count`` one-second segments of ``size`` bytes, oldest first, the oldest ``oldest_lag`` behind."""
    return [WaitingSegment(size, max(0.0, oldest_lag - index), 1.0) for index in range(count)]


def test_past_the_lag_share_the_live_stream_leaves_the_recording_more_than_it_piles_up_at() -> None:
    rule = UploadYield(lag_share=0.3)
    # 0.4 s behind a 5 s bound: nothing is set aside before RESERVE_SHARE (0.5 s).
    assert abs(RESERVE_SHARE * BOUND - 0.5) < 1e-9
    assert rule.reserve(scroll_backlog(0.4, 1), max_lag_seconds=BOUND) == 0.0
    # 1.5 s behind while scrolling: the segments less than RECENT_SECONDS behind piled up at 65 kB a
    # recorded second, 520 kbit/s, and the recording gets CATCH_UP times that (more than its deadlines ask).
    assert RECENT_SECONDS == 2.0
    scrolling = scroll_backlog(1.5, 2)
    assert rule.reserve(scrolling, max_lag_seconds=BOUND) == pytest.approx(CATCH_UP * 520_000)
    assert CATCH_UP > 1
    # Nothing waiting (the lag read before the upload finished), or no lag: nothing set aside.
    assert rule.reserve([], max_lag_seconds=BOUND) == 0.0
    assert rule.reserve([WaitingSegment(50_000, 0.0, 1.0)], max_lag_seconds=0.0) == 0.0


def test_once_the_screen_settles_the_recording_gets_what_its_deadlines_ask_and_the_picture_the_rest() -> None:
    rule = UploadYield()
    # A scroll's backlog, 3 s behind; the screen still since half a second: its segments will be repeats,
    # whatever the scroll's last ones cost.
    backlog = scroll_backlog(3.0, 4)
    deadline = DEADLINE_SHARE * BOUND
    # Each waiting segment stored before it is 4.5 s behind: the first in 1.5 s, two in 2.5 s, and so on.
    in_time = max(65_000 * (count + 1) / (deadline - 3.0 + count) for count in range(4))
    assert rule.reserve(backlog, max_lag_seconds=BOUND, still_seconds=STILL_SECONDS) == pytest.approx(8 * in_time)
    # About a segment a second (the lag stays where it is), less than the scroll piles up at...
    assert 8 * in_time < CATCH_UP * 520_000
    # ...which it still gets while the screen has been still for less than STILL_SECONDS.
    assert rule.reserve(backlog, max_lag_seconds=BOUND, still_seconds=STILL_SECONDS / 2) == pytest.approx(
        CATCH_UP * 520_000)
    # A segment already past its deadline gets the whole link, not an infinite rate.
    late = rule.reserve(scroll_backlog(4.8, 1), max_lag_seconds=BOUND)
    assert late == pytest.approx(8 * 65_000 / SOONEST_DEADLINE)


def test_a_short_recording_is_not_taken_for_a_fast_pile_up() -> None:
    # Bytes that record under a second are measured over one: a burst is no rate of 8x its size.
    rule = UploadYield()
    burst = [WaitingSegment(1_000, 3.0, 1.0), WaitingSegment(60_000, 0.0, 0.4)]
    assert rule.reserve(burst, max_lag_seconds=BOUND) == pytest.approx(CATCH_UP * 480_000)


def test_a_reserve_is_due_from_its_share_of_the_bound_on_and_until_its_release_share() -> None:
    rule = UploadYield()
    assert abs(RESERVE_SHARE * BOUND - 0.5) < 1e-9 and abs(RELEASE_SHARE * BOUND - 0.25) < 1e-9
    assert not rule.reserve_due(lag_seconds=0.4, max_lag_seconds=BOUND)
    assert rule.reserve_due(lag_seconds=0.5, max_lag_seconds=BOUND) and rule.reserving
    # Once set aside, the part stays while the lag falls back (a stored segment takes it lower)...
    assert rule.reserve_due(lag_seconds=0.25, max_lag_seconds=BOUND)
    # ...until the backlog is gone.
    assert not rule.reserve_due(lag_seconds=0.2, max_lag_seconds=BOUND) and not rule.reserving
    assert not rule.reserve_due(lag_seconds=0.4, max_lag_seconds=BOUND)
    assert not rule.reserve_due(lag_seconds=0.0, max_lag_seconds=0.0)  # no lag: nothing to catch up


def test_uploads_never_wait_while_part_of_the_link_is_set_aside_unless_the_stream_is_starting() -> None:
    rule = UploadYield(lag_share=0.3)
    assert rule.wait(0.0, congested=True, lag_seconds=0.5, max_lag_seconds=BOUND, size=SEGMENT) > 0
    assert rule.reserve_due(lag_seconds=0.5, max_lag_seconds=BOUND)
    assert rule.wait(0.1, congested=True, lag_seconds=0.5, max_lag_seconds=BOUND, size=SEGMENT) == 0.0
    assert rule.wait(0.2, congested=False, lag_seconds=0.5, max_lag_seconds=BOUND, size=SEGMENT, starting=True) > 0


def test_a_sharpening_picture_holds_uploads_while_every_deadline_still_holds_after() -> None:
    # 1 Mbit/s; two 60 kB segments behind a scroll, the oldest 0.5 s behind. Started DEFER_AHEAD from now at
    # DEFER_LINK_SHARE of the link, both are stored well before 4.5 s behind: the picture may go first.
    rule = UploadYield()
    capacity = 1_000_000.0
    waiting = [WaitingSegment(60_000, 0.5, 1.0), WaitingSegment(60_000, 0.0, 1.0)]
    assert rule.defer_due(waiting, max_lag_seconds=BOUND, capacity=capacity) and rule.may_defer
    assert rule.wait(0.0, congested=False, lag_seconds=0.5, max_lag_seconds=BOUND, size=SEGMENT,
                     sharpening=True) == POLL_SECONDS
    assert rule.waited_seconds == POLL_SECONDS
    # Even with part of the link set aside, an upload waits, and one under way goes at its floor.
    assert rule.reserve_due(lag_seconds=0.5, max_lag_seconds=BOUND)
    assert rule.wait(0.1, congested=False, lag_seconds=0.5, max_lag_seconds=BOUND, size=SEGMENT,
                     sharpening=True) == POLL_SECONDS
    assert rule.pace(live_limit=capacity, lag_seconds=0.5, max_lag_seconds=BOUND, sharpening=True) == MIN_PACE
    # Not sharpening (the screen moves again, or the picture is sharp): as before.
    assert rule.wait(0.2, congested=False, lag_seconds=0.5, max_lag_seconds=BOUND, size=SEGMENT) == 0.0
    # Small uploads never wait.
    assert rule.wait(0.3, congested=False, lag_seconds=0.5, max_lag_seconds=BOUND, size=100, sharpening=True) == 0.0
    # Later: both must be stored before the newer is 4.5 s behind, 0.9 s after DEFER_AHEAD: 1.07 Mbit/s, more than
    # the share allows (the older alone would fit).
    late = [WaitingSegment(60_000, 2.8, 1.0), WaitingSegment(60_000, 2.6, 1.0)]
    assert pytest.approx(0.9) == DEADLINE_SHARE * BOUND - 2.6 - DEFER_AHEAD
    assert 8 * 60_000 / 0.7 < DEFER_LINK_SHARE * capacity < 8 * 120_000 / 0.9
    assert not rule.defer_due(late, max_lag_seconds=BOUND, capacity=capacity) and not rule.may_defer
    assert rule.wait(0.4, congested=False, lag_seconds=2.8, max_lag_seconds=BOUND, size=SEGMENT, sharpening=True) == 0.0
    # A segment already within DEFER_AHEAD of its deadline, or a link of unknown capacity: never.
    assert not rule.defer_due([WaitingSegment(1_000, 3.6, 1.0)], max_lag_seconds=BOUND, capacity=capacity)
    assert not rule.defer_due(waiting, max_lag_seconds=BOUND, capacity=float("nan"))
    # Nothing waiting: nothing to hold back, the answer is yes; released, no.
    assert rule.defer_due([], max_lag_seconds=BOUND, capacity=capacity)
    rule.release()
    assert not rule.may_defer


def test_the_host_looks_again_just_as_a_refined_picture_has_been_still_long_enough_to_sharpen() -> None:
    # A scroll's frames keep coming: the next look is due just after the screen would have been still long enough.
    assert next_watch_due(0.5, still_seconds=0.1, refining=True) == pytest.approx(
        STILL_SECONDS - 0.1 + STILL_MARGIN_SECONDS)
    assert next_watch_due(0.5, still_seconds=0.0, refining=True) == pytest.approx(
        min(0.5, STILL_SECONDS + STILL_MARGIN_SECONDS))
    # Still long enough already (it was looked at then), a sharp picture, or no last change: the regular interval.
    assert next_watch_due(0.5, still_seconds=STILL_SECONDS + 0.01, refining=True) == 0.5
    assert next_watch_due(0.5, still_seconds=0.1, refining=False) == 0.5
    assert next_watch_due(0.5, still_seconds=float("inf"), refining=True) == 0.5
    assert next_watch_due(0.5, still_seconds=float("nan"), refining=True) == 0.5
