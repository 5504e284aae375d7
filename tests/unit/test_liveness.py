"""Liveness on the control channel and the reconnect plan (``peer/liveness.py``), on a fake clock,
and the ``ping``/``pong`` messages with the host's allowance for them (``protocol/channel.py``).

Every transition is driven by plain numbers: channel opened and closed, pings and pongs
in, ticks of the clock; the actions out are compared whole.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from peer.liveness import (
    GIVE_UP_SECONDS,
    PING_SECONDS,
    RETRY_SECONDS,
    SILENCE_SECONDS,
    TECHNICIAN_WORDS,
    USER_WORDS,
    GaveUp,
    Interrupted,
    Liveness,
    Reconnect,
    Reconnected,
    Recovery,
    Reoffer,
    Restored,
    SendPing,
    SendPong,
)
from protocol.channel import (
    CONTROL_MESSAGE_BURST,
    CONTROL_MESSAGES_PER_SECOND,
    LIVENESS_MESSAGE_BURST,
    LIVENESS_MESSAGES_PER_SECOND,
    MAX_LIVENESS_FRAME_BYTES,
    Chat,
    Ping,
    Pong,
    is_liveness_frame,
    parse_liveness,
    parse_tech_control,
)
from protocol.frames import ErrorCode, MessageError
from protocol.rates import Flow, MessageRate
from protocol.signalling import Answer, Offer, parse_peer_message

LIVE_VIEW_JS = Path(__file__).resolve().parents[2] / "tech_console" / "web" / "js" / "live_view.js"


def run(liveness: Liveness, start: float, end: float, step: float = 0.25) -> list[tuple[float, object]]:
    """Tick from ``start`` to ``end``; every action with the time it came."""
    out = []
    now = start
    while now <= end + 1e-9:
        out += [(now, action) for action in liveness.tick(now)]
        now = round(now + step, 6)
    return out


# --- Liveness -----------------------------------------------------------------------------


def test_no_ping_and_no_interruption_before_the_channel_opens() -> None:
    liveness = Liveness()
    assert run(liveness, 0.0, 30.0) == []
    assert liveness.due_at() is None
    assert not liveness.watching and not liveness.interrupted
    # Nor does a pong before the channel opens count, or a ping get answered.
    assert liveness.ping_received(1) == [] and liveness.pong_received(1, 1.0) == []


def test_pings_at_once_then_every_second_while_open() -> None:
    liveness = Liveness()
    assert liveness.opened(10.0) == [SendPing(1)]
    pings = [a for t in (10.5, 11.0, 11.5, 12.0) for a in liveness.tick(t)]
    assert pings == [SendPing(2), SendPing(3)]
    assert liveness.due_at() == pytest.approx(12.0 + PING_SECONDS)


def test_pongs_in_time_keep_it_alive() -> None:
    liveness = Liveness()
    liveness.opened(0.0)
    now = 0.0
    for _ in range(30):
        now += 1.0
        for action in liveness.tick(now):
            assert isinstance(action, SendPing)
            assert liveness.pong_received(action.seq, now + 0.05) == []
    assert not liveness.interrupted


def test_three_seconds_without_a_pong_is_an_interruption_declared_once() -> None:
    liveness = Liveness()
    liveness.opened(0.0)
    liveness.pong_received(1, 0.1)
    actions = run(liveness, 0.25, 20.0)
    interruptions = [(t, a) for t, a in actions if isinstance(a, Interrupted)]
    assert interruptions == [(3.25, Interrupted(3.15))]
    assert liveness.interrupted
    # Pings go on while the channel is open: the path may come back by itself.
    assert sum(isinstance(a, SendPing) for _, a in actions) >= 19


def test_a_ping_is_answered_with_its_seq_but_proves_nothing_to_this_side() -> None:
    """The other side's pings come through while ours get no answer: the path is broken the
    other way, and this side must notice too (the host is the one that can offer again)."""
    liveness = Liveness()
    liveness.opened(0.0)
    actions = []
    for t in range(1, 10):
        assert liveness.ping_received(76 + t) == [SendPong(76 + t)]
        actions += liveness.tick(float(t))
    assert Interrupted(3.0) in actions


def test_an_answer_again_is_restored_with_the_whole_gap() -> None:
    liveness = Liveness()
    liveness.opened(0.0)
    liveness.pong_received(1, 1.0)
    assert liveness.tick(4.0) == [SendPing(2), Interrupted(3.0)]
    assert liveness.pong_received(2, 9.5) == [Restored(8.5)]
    assert not liveness.interrupted
    assert liveness.pong_received(2, 9.6) == []  # restored once
    # And the silence clock starts again from there.
    assert Interrupted(3.0) in liveness.tick(12.6)


def test_a_pong_for_a_ping_of_an_earlier_connection_does_not_count() -> None:
    liveness = Liveness()
    liveness.opened(0.0)                  # ping 1
    liveness.tick(1.0)                    # ping 2
    liveness.tick(3.0)                    # ping 3, and the interruption
    assert liveness.interrupted
    liveness.closed()
    assert liveness.opened(6.0) == [SendPing(4)]   # the new connection's first ping
    for old in (1, 2, 3):
        assert liveness.pong_received(old, 6.1) == []
    assert liveness.interrupted
    assert liveness.pong_received(4, 6.2) == [Restored(6.2)]


def test_a_pong_for_a_ping_never_sent_does_not_count() -> None:
    liveness = Liveness()
    liveness.opened(0.0)
    liveness.tick(3.5)
    assert liveness.interrupted
    for forged in (5, 10**9, 0):
        assert liveness.pong_received(forged, 4.0) == []
    assert liveness.interrupted


def test_seq_never_restarts_across_connections() -> None:
    liveness = Liveness()
    seqs = []
    for t in (0.0, 10.0, 20.0):
        seqs += [a.seq for a in liveness.opened(t) if isinstance(a, SendPing)]
        liveness.closed()
        liveness.stop()
    assert seqs == [1, 2, 3]


def test_a_closed_channel_sends_no_ping_and_its_silence_is_an_interruption() -> None:
    liveness = Liveness()
    liveness.opened(0.0)
    liveness.pong_received(1, 0.5)
    liveness.closed()
    actions = run(liveness, 1.0, 10.0)
    assert [a for _, a in actions] == [Interrupted(3.0)]
    # Nothing arriving on a closed channel is answered or counted.
    assert liveness.ping_received(9) == [] and liveness.pong_received(1, 10.0) == []


def test_a_new_connection_outside_an_interruption_gets_its_full_silence() -> None:
    liveness = Liveness()
    liveness.opened(0.0)
    liveness.pong_received(1, 0.0)
    liveness.closed()                      # the technician came back: a fresh connection
    liveness.opened(2.5)
    assert not any(isinstance(a, Interrupted) for _, a in run(liveness, 2.75, 5.25))
    assert Interrupted(3.0) in liveness.tick(5.5)


def test_a_new_connection_within_an_interruption_restores_nothing_until_answered() -> None:
    liveness = Liveness()
    liveness.opened(0.0)
    liveness.tick(3.0)
    liveness.closed()
    assert liveness.opened(5.0) == [SendPing(3)]
    assert not any(isinstance(a, Interrupted | Restored) for _, a in run(liveness, 5.25, 30.0))
    assert liveness.interrupted


def test_stop_watches_no_more_until_a_channel_opens() -> None:
    liveness = Liveness()
    liveness.opened(0.0)
    liveness.tick(3.0)
    assert liveness.interrupted
    liveness.stop()
    assert not liveness.interrupted and not liveness.watching
    assert run(liveness, 3.0, 30.0) == []
    assert liveness.pong_received(3, 31.0) == []   # no Restored for an interruption that was dropped


def test_due_at_names_the_next_ping_or_the_silence_limit() -> None:
    liveness = Liveness()
    liveness.opened(0.0)
    assert liveness.due_at() == PING_SECONDS
    liveness.closed()
    assert liveness.due_at() == SILENCE_SECONDS
    liveness.tick(SILENCE_SECONDS)
    assert liveness.due_at() is None       # interrupted, no channel: nothing until an event


# --- Reconnect ----------------------------------------------------------------------------


def plan(reconnect: Reconnect, start: float, end: float, step: float = 0.5) -> list[tuple[float, object]]:
    out = []
    now = start
    while now <= end + 1e-9:
        out += [(now, action) for action in reconnect.tick(now)]
        now = round(now + step, 6)
    return out


def test_the_host_offers_at_once_then_every_three_seconds_and_gives_up_after_a_minute() -> None:
    reconnect = Reconnect(offerer=True)
    assert reconnect.interrupted(100.0) == [Reoffer(1)]
    actions = plan(reconnect, 100.5, 200.0)
    offers = [(t, a) for t, a in actions if isinstance(a, Reoffer)]
    assert [t for t, _ in offers] == [100.0 + RETRY_SECONDS * n for n in range(1, 20)]
    assert [a.attempt for _, a in offers] == list(range(2, 21))
    assert [(t, a) for t, a in actions if isinstance(a, GaveUp)] == [(100.0 + GIVE_UP_SECONDS, GaveUp(60.0, 20))]
    assert not reconnect.reconnecting
    assert actions[-1] == (160.0, GaveUp(60.0, 20))  # nothing after giving up


def test_a_second_interruption_while_reconnecting_changes_nothing() -> None:
    reconnect = Reconnect(offerer=True)
    reconnect.interrupted(0.0)
    assert reconnect.interrupted(1.0) == []
    assert reconnect.tick(2.9) == [] and reconnect.tick(3.0) == [Reoffer(2)]


def test_restored_reports_the_time_and_attempts_and_resets_the_schedule() -> None:
    reconnect = Reconnect(offerer=True)
    reconnect.interrupted(0.0)
    plan(reconnect, 0.5, 7.0)
    assert reconnect.restored(7.5) == [Reconnected(7.5, 3)]
    assert not reconnect.reconnecting
    assert plan(reconnect, 8.0, 100.0) == []          # no offer, no giving up after it
    assert reconnect.restored(101.0) == []              # once
    # The next interruption starts from attempt 1 with a whole minute ahead.
    assert reconnect.interrupted(200.0) == [Reoffer(1)]
    assert not any(isinstance(a, GaveUp) for _, a in plan(reconnect, 200.5, 259.5))
    assert reconnect.tick(260.0) == [GaveUp(60.0, 20)]


def test_a_connected_attempt_is_not_cut_short_by_the_next_offer() -> None:
    reconnect = Reconnect(offerer=True)
    reconnect.interrupted(0.0)
    reconnect.attempt_connected(2.8)   # its channel should open and answer within moments
    assert reconnect.tick(3.0) == [] and reconnect.tick(5.7) == []
    assert reconnect.tick(5.8) == [Reoffer(2)]   # never answered: offer again after all


def test_the_technician_side_never_offers_but_gives_up_on_its_own() -> None:
    reconnect = Reconnect(offerer=False)
    assert reconnect.interrupted(0.0) == []
    assert plan(reconnect, 0.5, 120.0) == [(60.0, GaveUp(60.0, 0))]


def test_stop_drops_the_plan_without_an_outcome() -> None:
    reconnect = Reconnect(offerer=True)
    reconnect.interrupted(0.0)
    reconnect.stop()
    assert not reconnect.reconnecting and reconnect.due_at() is None
    assert plan(reconnect, 0.5, 120.0) == [] and reconnect.restored(121.0) == []


def test_due_at_is_the_next_offer_or_the_end() -> None:
    reconnect = Reconnect(offerer=True)
    assert reconnect.due_at() is None
    reconnect.interrupted(10.0)
    assert reconnect.due_at() == 10.0 + RETRY_SECONDS
    assert Reconnect(offerer=False).due_at() is None
    technician = Reconnect(offerer=False)
    technician.interrupted(10.0)
    assert technician.due_at() == 10.0 + GIVE_UP_SECONDS


# --- Recovery: both together -------------------------------------------------------------


def outage(recovery: Recovery, down: tuple[float, float], until: float = 120.0) -> list[tuple[float, object]]:
    """Drive ``recovery`` as a side would, the other side answering every ping while the link is up.

    Each re-offer's channel opens at once (the fake is fast); every action is kept with its time.
    """
    seen: list[tuple[float, object]] = []

    def carry_out(actions: list[object], t: float) -> None:
        for action in actions:
            seen.append((t, action))
            if isinstance(action, SendPing) and not down[0] <= t < down[1]:
                carry_out(list(recovery.pong_received(action.seq, t)), t)
            elif isinstance(action, Reoffer):
                recovery.closed()
                carry_out(list(recovery.opened(t)), t)

    carry_out(list(recovery.opened(0.0)), 0.0)
    t = 0.0
    while t < until:
        t = round(t + 0.25, 6)
        carry_out(list(recovery.tick(t)), t)
    return seen


def test_a_link_down_for_ten_seconds_is_reconnecting_then_restored_within_a_second_of_its_return() -> None:
    seen = outage(Recovery(offerer=True), down=(5.0, 15.0))
    outcomes = [(t, a) for t, a in seen if isinstance(a, Interrupted | Restored | GaveUp)]
    offers = [(t, a) for t, a in seen if isinstance(a, Reoffer)]
    assert outcomes[0] == (7.0, Interrupted(3.0))          # last pong at 4.0
    assert offers[0] == (7.0, Reoffer(1))                  # offered at once
    [(back_at, restored)] = outcomes[1:]
    assert isinstance(restored, Restored) and 15.0 <= back_at <= 15.0 + PING_SECONDS
    assert restored.attempts == len(offers) == 3 and restored.silent_seconds == pytest.approx(back_at - 4.0)
    assert all(t <= back_at for t, _ in offers)            # no offer once it is back


def test_a_link_that_never_returns_is_given_up_after_a_minute_and_watched_no_more() -> None:
    recovery = Recovery(offerer=True)
    seen = outage(recovery, down=(5.0, 10_000.0), until=300.0)
    outcomes = [(t, a) for t, a in seen if isinstance(a, Interrupted | Restored | GaveUp)]
    assert outcomes == [(7.0, Interrupted(3.0)), (67.0, GaveUp(60.0, 20))]
    assert not recovery.reconnecting and not recovery.liveness.watching
    assert not any(isinstance(a, SendPing) for t, a in seen if t > 67.0)  # its channel was replaced, then left


def test_the_technician_side_shows_reconnecting_and_gives_up_without_offering() -> None:
    recovery = Recovery(offerer=False)
    recovery.opened(0.0)
    recovery.pong_received(1, 0.5)
    actions = [a for t in range(1, 100) for a in recovery.tick(float(t))]
    assert Interrupted(3.5) in actions and GaveUp(60.0, 0) in actions
    assert not any(isinstance(a, Reoffer) for a in actions)


def test_restored_by_the_old_connection_counts_no_attempt_and_resets() -> None:
    recovery = Recovery(offerer=False)
    recovery.opened(0.0)
    recovery.tick(3.0)
    assert recovery.reconnecting
    assert recovery.pong_received(2, 4.0) == [Restored(4.0, 0)]   # the ping sent at 3.0
    assert not recovery.reconnecting
    assert not any(isinstance(a, Interrupted) for a in recovery.tick(6.9))  # the silence runs again from 4.0
    assert Interrupted(3.0) in recovery.tick(7.0)


def test_a_connected_attempt_holds_off_the_next_offer() -> None:
    recovery = Recovery(offerer=True)
    recovery.opened(0.0)
    assert Reoffer(1) in recovery.tick(3.0)
    recovery.closed()
    recovery.opened(3.1)
    assert recovery.attempt_connected(5.5) == []
    assert not any(isinstance(a, Reoffer) for a in recovery.tick(6.0))
    assert Reoffer(2) in recovery.tick(8.5)


def test_stop_ends_watching_and_reconnecting_without_an_outcome() -> None:
    recovery = Recovery(offerer=True)
    recovery.opened(0.0)
    recovery.tick(3.0)
    recovery.stop()
    assert not recovery.reconnecting and recovery.due_at() is None
    assert [a for t in range(4, 200) for a in recovery.tick(float(t))] == []


# --- the messages and the host's allowance for them ---------------------------------------


def test_pings_and_pongs_are_told_apart_before_they_are_parsed() -> None:
    assert is_liveness_frame('{"type": "ping", "seq": 1}') and is_liveness_frame(b'{"type":"pong","seq":9007199254740991}')
    assert parse_liveness('{"type": "ping", "seq": 1}') == Ping(seq=1)
    assert parse_liveness(b'{"type": "pong", "seq": 2}') == Pong(seq=2)
    for other in ('{"type": "chat", "text": "hi"}', "[1]", "not json", b"\xff\xfe", '"ping"', '{"seq": 1}', ""):
        assert not is_liveness_frame(other)


def test_a_small_bad_ping_is_a_liveness_frame_refused_with_its_reason() -> None:
    for bad, code in (('{"type": "ping", "seq": -1}', ErrorCode.invalid_message),
                      ('{"type": "ping"}', ErrorCode.invalid_message),
                      ('{"type": "pong", "seq": 1, "at": 5}', ErrorCode.invalid_message)):
        assert is_liveness_frame(bad)
        with pytest.raises(MessageError) as refused:
            parse_liveness(bad)
        assert refused.value.code is code


def test_a_padded_ping_is_no_liveness_frame_and_is_charged_to_control() -> None:
    padded = json.dumps({"type": "ping", "seq": 1}, indent=MAX_LIVENESS_FRAME_BYTES)
    assert len(padded) > MAX_LIVENESS_FRAME_BYTES and not is_liveness_frame(padded)
    with pytest.raises(MessageError) as refused:
        parse_tech_control(padded)  # where the control allowance sends it
    assert refused.value.code is ErrorCode.unknown_type
    with pytest.raises(MessageError) as too_large:
        parse_liveness(padded)
    assert too_large.value.code is ErrorCode.too_large


class ControlAllowances:
    """The host's charge for one ``control`` frame, as ``host_client/session.py`` is to make it:
    liveness frames to their own rate, everything else to the control rate."""

    def __init__(self) -> None:
        self.control = MessageRate.per_second(CONTROL_MESSAGES_PER_SECOND, CONTROL_MESSAGE_BURST)
        self.liveness = MessageRate.per_second(LIVENESS_MESSAGES_PER_SECOND, LIVENESS_MESSAGE_BURST)

    def admit(self, frame: str, now: float) -> bool:
        rate = self.liveness if is_liveness_frame(frame) else self.control
        return rate.admit(now) is Flow.accepted


def test_a_ping_and_a_pong_a_second_fit_beside_a_full_control_allowance() -> None:
    allowances = ControlAllowances()
    chat = Chat(text="hi").model_dump_json()
    for second in range(60):
        for i in range(CONTROL_MESSAGES_PER_SECOND):
            assert allowances.admit(chat, second + i / 10)
        assert allowances.admit(Ping(seq=second + 1).model_dump_json(), second + 0.55)
        assert allowances.admit(Pong(seq=second + 1).model_dump_json(), second + 0.56)


def test_a_chat_flood_does_not_starve_pings() -> None:
    allowances = ControlAllowances()
    chat = Chat(text="hi").model_dump_json()
    for second in range(10):
        for i in range(1000):
            allowances.admit(chat, second + i / 1000)
        assert allowances.admit(Ping(seq=second + 1).model_dump_json(), second + 0.999)


def test_a_ping_flood_costs_no_more_pongs_than_its_allowance_and_leaves_control_alone() -> None:
    allowances = ControlAllowances()
    ping = Ping(seq=1).model_dump_json()
    seconds = 10
    admitted = sum(allowances.admit(ping, i / 1000) for i in range(seconds * 1000))
    assert admitted <= LIVENESS_MESSAGE_BURST + LIVENESS_MESSAGES_PER_SECOND * seconds
    # Nothing of the control allowance was spent: a whole burst of chat still passes.
    chat = Chat(text="hi").model_dump_json()
    assert all(allowances.admit(chat, seconds) for _ in range(CONTROL_MESSAGE_BURST))
    # And a flood dressed as pings but padded past the liveness size spends control, not liveness.
    padded = json.dumps({"type": "ping", "seq": 1}, indent=MAX_LIVENESS_FRAME_BYTES)
    assert not allowances.admit(padded, seconds)


def test_an_answer_names_the_offer_it_answers_and_old_peers_name_none() -> None:
    offer = parse_peer_message('{"type": "offer", "sdp": "v=0", "attempt": 7}')
    answer = parse_peer_message(Answer(sdp="v=0", attempt=7).model_dump_json())
    assert isinstance(offer, Offer) and isinstance(answer, Answer) and offer.attempt == answer.attempt == 7
    assert parse_peer_message('{"type": "answer", "sdp": "v=0"}') == Answer(sdp="v=0", attempt=None)
    for bad in (0, -1, 100_001, 1.5, "seven"):
        with pytest.raises(MessageError):
            parse_peer_message(json.dumps({"type": "answer", "sdp": "v=0", "attempt": bad}))


# --- words --------------------------------------------------------------------------------


def test_the_words_each_side_shows() -> None:
    assert TECHNICIAN_WORDS.reconnecting == "Reconnecting to the user's computer…"
    assert TECHNICIAN_WORDS.restored.startswith("The connection is back")
    assert TECHNICIAN_WORDS.lost(60.0).startswith("The connection could not be restored: nothing came through for 60 s.")
    assert USER_WORDS.lost(60.2).startswith("The connection could not be restored: nothing came through for 60 s.")
    assert "network" in USER_WORDS.lost(60) and "network" in TECHNICIAN_WORDS.lost(60)


def test_the_browser_console_shows_the_same_words_as_the_python_console() -> None:
    source = LIVE_VIEW_JS.read_text()
    found = re.search(r"^export const RECOVERY_WORDS = \{(.*?)^\};", source, re.MULTILINE | re.DOTALL)
    assert found, "live_view.js no longer exports RECOVERY_WORDS"
    words = dict(re.findall(r'^\s*(\w+): "((?:[^"\\]|\\.)*)",?$', found.group(1), re.MULTILINE))
    assert words == {
        "reconnecting": TECHNICIAN_WORDS.reconnecting,
        "restored": TECHNICIAN_WORDS.restored,
        "notRestored": TECHNICIAN_WORDS.not_restored,
    }
