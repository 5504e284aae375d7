"""When the host tells the technician the link limits the picture (peer.link_report)."""

from __future__ import annotations

import pytest

from peer.link_report import REPEAT_SECONDS, SETTLE_SECONDS, LinkReporter
from peer.stream_budget import LINK_EVIDENCE_SECONDS, StreamBudget
from protocol.channel import LinkState


def test_nothing_is_said_while_the_link_is_not_the_limit() -> None:
    reporter = LinkReporter()
    assert [reporter.observe(limited=False, bitrate=5e6, fps=30, now=t) for t in range(10)] == [None] * 10


def test_the_link_becoming_the_limit_is_said_at_once() -> None:
    reporter = LinkReporter()
    assert reporter.observe(limited=True, bitrate=1_234_000, fps=12, now=0.0) == LinkState(limited=True, kbps=1234, fps=12)


def test_while_limited_it_is_repeated_only_when_the_figures_moved_and_not_too_often() -> None:
    reporter = LinkReporter()
    reporter.observe(limited=True, bitrate=1e6, fps=12, now=0.0)
    assert reporter.observe(limited=True, bitrate=0.5e6, fps=6, now=REPEAT_SECONDS / 2) is None  # too soon
    assert reporter.observe(limited=True, bitrate=1.05e6, fps=12.5, now=REPEAT_SECONDS) is None  # barely moved
    assert reporter.observe(limited=True, bitrate=0.5e6, fps=6, now=REPEAT_SECONDS + 0.1) == LinkState(
        limited=True, kbps=500, fps=6)


def test_the_end_is_said_once_the_link_stayed_free_a_while() -> None:
    reporter = LinkReporter()
    reporter.observe(limited=True, bitrate=1e6, fps=12, now=0.0)
    assert reporter.observe(limited=False, bitrate=3e6, fps=30, now=1.0) is None
    assert reporter.observe(limited=True, bitrate=1e6, fps=12, now=2.0) is None  # back: already said, the wobble is not
    assert reporter.observe(limited=False, bitrate=3e6, fps=30, now=3.0) is None
    assert reporter.observe(limited=False, bitrate=3e6, fps=30, now=3.0 + SETTLE_SECONDS) == LinkState(
        limited=False, kbps=3000, fps=30)
    assert reporter.observe(limited=False, bitrate=3e6, fps=30, now=10.0 + SETTLE_SECONDS) is None


def test_a_new_connection_hears_a_limit_again_but_not_that_there_is_none() -> None:
    reporter = LinkReporter()
    reporter.observe(limited=True, bitrate=1e6, fps=12, now=0.0)
    reporter.forget_sent()
    assert reporter.observe(limited=True, bitrate=1e6, fps=12, now=0.5) == LinkState(limited=True, kbps=1000, fps=12)
    reporter.forget_sent()
    assert [reporter.observe(limited=False, bitrate=3e6, fps=30, now=t) for t in (1.0, 1.0 + SETTLE_SECONDS)] == [
        None, None]  # its console starts from "not limited"


def test_figures_are_kept_within_what_the_message_takes() -> None:
    reporter = LinkReporter()
    state = reporter.observe(limited=True, bitrate=1e12, fps=1000, now=0.0)
    assert state == LinkState(limited=True, kbps=10_000_000, fps=240)
    with pytest.raises(ValueError, match="negative"):
        reporter.observe(limited=True, bitrate=-1, fps=1, now=1.0)


# --- what the host judges from: its stream budget ------------------------------------------------


def test_a_budget_counts_the_link_as_the_limit_only_on_congestion_and_for_a_while_after() -> None:
    budget = StreamBudget()
    for step in range(40):  # a busy stream pressing on its starting target: probing, not a slow link
        budget.sent(20_000, keyframe=False, now=step / 10)
    assert not budget.link_limited(4.0)
    budget.frames_dropped(4.0)  # the pacer had to drop frames: the link said no
    assert budget.link_limited(4.0)
    assert budget.link_limited(4.0 + LINK_EVIDENCE_SECONDS / 2)
    budget.link_bitrate(5_000_000, 4.0 + LINK_EVIDENCE_SECONDS)  # an estimate well above what is sent
    assert not budget.link_limited(4.1 + LINK_EVIDENCE_SECONDS)


def test_a_budget_counts_the_frames_it_sent_in_the_last_second() -> None:
    budget = StreamBudget()
    for step in range(30):
        budget.sent(1000, keyframe=False, now=step / 20)  # 20 a second for 1.5 s
    assert budget.sent_fps(1.475) == 20
    assert budget.sent_fps(3.0) == 0
