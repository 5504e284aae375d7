"""host_client.session_state.HostSessionState: sequences of events and the actions they lead to (no sockets)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.sessions.grants import sign_grant
from host_client.authority import Authority
from host_client.session_state import (
    CONNECTING,
    DECLINED,
    DEFAULT_PRESELECTED,
    HELLO,
    Action,
    AddCandidate,
    ApplyAnswer,
    ClosePeer,
    CloseSignalling,
    Ending,
    HandOnToTransfers,
    HostSessionState,
    MarkMediaConnected,
    ObtainConsent,
    Offering,
    PrepareOffer,
    ReleaseInput,
    ReopenSignalling,
    Report,
    ResumeTransfers,
    SendConsent,
    SendEnd,
    SendIceFailed,
    SendLiveness,
    SendOffer,
    SessionStarted,
    ShowPermissions,
    ShowTechnicianPresent,
    SkipAfterEnd,
    StartRecording,
    TellTechnician,
    TellUser,
)
from peer.liveness import USER_WORDS
from protocol.channel import Ping, Pong
from protocol.grants import Grant
from protocol.ice import IceConfig, IceServer
from protocol.permissions import Permission
from protocol.recording import SessionPolicy
from protocol.signalling import (
    Answer,
    ConsentSource,
    FileRequestUpdate,
    GrantIssued,
    IceCandidate,
    IceFailed,
    IceRenewed,
    PeerInfo,
    PeerJoined,
    PeerLeft,
    Role,
    SessionEnded,
    TurnFailure,
    Welcome,
)
from protocol.transfers import FileRequestOut, FileRequestState

KEY = Ed25519PrivateKey.generate()
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ALL = [Permission.view, Permission.control, Permission.clipboard, Permission.chat]
JOIN_ICE = IceConfig()
WELCOME_ICE = IceConfig(servers=[IceServer(urls=["stun:127.0.0.1:3478"])])
VIEW_AND_CONTROL = frozenset({Permission.view, Permission.control})


def grant(permissions: list[Permission] = ALL, *, key: Ed25519PrivateKey = KEY, minutes: int = 15) -> GrantIssued:
    return GrantIssued(grant=sign_grant(key, Grant(
        session_id="s", ticket_id=7, technician_id=1, technician_name="Alice", permissions=permissions,
        issued_at=int(NOW.timestamp()), expires_at=int((NOW + timedelta(minutes=minutes)).timestamp()),
    )))


def welcome(*, technician: bool = False, policy: SessionPolicy | None = None) -> Welcome:
    return Welcome(session_id="s", role=Role.host, ice=WELCOME_ICE, policy=policy or SessionPolicy(),
                   peer=PeerInfo(role=Role.technician) if technician else None)


def joined() -> PeerJoined:
    return PeerJoined(peer=PeerInfo(role=Role.technician))


def new_state(preset: frozenset[Permission] | None = None) -> HostSessionState:
    return HostSessionState(Authority(KEY.public_key(), "s"), ice=JOIN_ICE, preset_consent=preset,
                            consent_source=ConsentSource.window)


def consented(state: HostSessionState, chosen: frozenset[Permission] = VIEW_AND_CONTROL) -> list[Action]:
    """The grant arrives and the user answers the prompt with ``chosen``."""
    assert state.receive(grant(), NOW) == [ObtainConsent("Alice", ALL, DEFAULT_PRESELECTED)]
    return state.consent_answered(chosen, ConsentSource.window, NOW)


def offers(actions: list[Action]) -> list[Action]:
    return [a for a in actions if isinstance(a, SendOffer | ClosePeer)]


# --- consent and offers ----------------------------------------------------------------------


def test_the_usual_order_welcome_grant_consent_then_the_technician_gets_an_offer() -> None:
    state = new_state()
    assert state.signalling_connected() == []  # nothing to repeat on a first connection
    assert state.receive(welcome(), NOW) == [StartRecording()]
    actions = consented(state)
    assert actions == [
        SessionStarted("Alice", 7),
        ShowPermissions(frozenset(ALL), VIEW_AND_CONTROL),
        SendConsent([Permission.view, Permission.control], ConsentSource.window),
        ResumeTransfers(),
    ]  # no technician yet: no offer
    assert state.receive(joined(), NOW) == [TellUser(CONNECTING), SendOffer(WELCOME_ICE, 1)]
    assert state.offering is Offering.awaiting_answer


def test_a_technician_who_joins_before_consent_is_offered_only_once_the_user_consents() -> None:
    state = new_state()
    # The next peer connection is made meanwhile, while the user reads the prompt.
    assert state.receive(welcome(technician=True), NOW) == [StartRecording(), TellUser(CONNECTING),
                                                             PrepareOffer(WELCOME_ICE)]
    assert state.receive(joined(), NOW) == [PrepareOffer(WELCOME_ICE)]  # still present; no consent: no offer
    assert offers(consented(state)) == [SendOffer(WELCOME_ICE, 1)]


def test_a_grant_before_welcome_asks_for_consent_and_the_offer_uses_the_ice_of_welcome() -> None:
    state = new_state()
    assert state.receive(grant(), NOW) == [ObtainConsent("Alice", ALL, DEFAULT_PRESELECTED)]
    assert state.receive(welcome(technician=True), NOW) == [StartRecording(), TellUser(CONNECTING),
                                                             PrepareOffer(WELCOME_ICE)]
    assert offers(state.consent_answered(frozenset({Permission.view}), ConsentSource.window, NOW)) == [SendOffer(WELCOME_ICE, 1)]


def test_declining_the_prompt_ends_the_session_and_sends_no_consent() -> None:
    state = new_state()
    state.signalling_connected()
    state.receive(grant(), NOW)
    assert state.consent_answered(None, ConsentSource.window) == [SendEnd(DECLINED)]
    assert not state.authority.consent_given
    assert state.end_reason == DECLINED and not state.over


def test_preset_consent_is_the_answer_without_asking_and_is_reported_as_given_by_flag() -> None:
    state = new_state(preset=frozenset({Permission.view, Permission.chat, Permission.control}))
    actions = state.receive(grant([Permission.view, Permission.chat]), NOW)
    chosen = frozenset({Permission.view, Permission.chat})  # what the grant does not offer is dropped
    assert actions == [
        TellUser("consent given on the command line: view, chat"),
        ObtainConsent("Alice", [Permission.view, Permission.chat], DEFAULT_PRESELECTED, unattended_answer=chosen),
    ]


def test_a_refused_grant_asks_nothing_and_is_reported() -> None:
    state = new_state()
    actions = state.receive(grant(key=Ed25519PrivateKey.generate()), NOW)
    assert actions == [
        TellUser("refused the broker's grant: the grant's signature does not match the broker's key"),
        Report("grant.refused", {"reason": "the grant's signature does not match the broker's key"}),
    ]
    assert state.authority.grant is None
    assert state.receive(grant(), NOW) == [ObtainConsent("Alice", ALL, DEFAULT_PRESELECTED)]  # the genuine one asks


def test_a_narrower_grant_releases_held_input_and_a_same_one_changes_nothing() -> None:
    state = new_state()
    consented(state)
    assert state.receive(grant(), NOW) == []
    assert state.receive(grant([Permission.view, Permission.chat]), NOW) == [
        ReleaseInput(), ShowPermissions(frozenset({Permission.view, Permission.chat}), VIEW_AND_CONTROL),
    ]


def test_consent_changed_during_the_session_releases_input_when_control_goes() -> None:
    state = new_state()
    consented(state)
    assert state.consent_changed(frozenset({Permission.view}), NOW) == [
        ReleaseInput(), ShowPermissions(frozenset(ALL), frozenset({Permission.view})),
        SendConsent([Permission.view], ConsentSource.window),
    ]
    assert state.consent_changed(VIEW_AND_CONTROL, NOW) == [
        ShowPermissions(frozenset(ALL), VIEW_AND_CONTROL), SendConsent([Permission.view, Permission.control], ConsentSource.window),
    ]


# --- the technician comes and goes -----------------------------------------------------------


def test_a_technician_who_reconnects_is_offered_again_on_a_fresh_peer_connection() -> None:
    state = new_state()
    state.receive(welcome(technician=True), NOW)
    consented(state)
    assert state.receive(Answer(sdp="v=0 a"), NOW) == [ApplyAnswer("v=0 a")]
    assert state.receive(joined(), NOW) == [ClosePeer(), SendOffer(WELCOME_ICE, 2)]  # a replaced technician has no media


def test_the_technician_leaving_mid_offer_closes_the_peer_and_a_late_answer_is_ignored() -> None:
    state = new_state()
    state.receive(welcome(technician=True), NOW)
    consented(state)
    assert state.offering is Offering.awaiting_answer
    assert state.receive(PeerLeft(role=Role.technician), NOW) == [ShowTechnicianPresent(False), ReleaseInput(), ClosePeer()]
    assert state.receive(Answer(sdp="v=0 late"), NOW) == []
    assert state.receive(IceCandidate(candidate="candidate:1 1 udp 1 127.0.0.1 9 typ host"), NOW) == []
    assert state.receive(joined(), NOW) == [TellUser(CONNECTING), SendOffer(WELCOME_ICE, 2)]


def test_after_a_broker_restart_only_an_unanswered_offer_is_made_again() -> None:
    state = new_state()
    state.receive(welcome(technician=True), NOW)
    consented(state)
    # The broker died while the offer was on its way; the host reconnects and is welcomed again.
    state.signalling_lost()
    reconnected = state.signalling_connected()
    assert reconnected == [SendConsent([Permission.view, Permission.control], ConsentSource.window), ResumeTransfers()]
    assert state.receive(welcome(technician=True), NOW) == [ClosePeer(), SendOffer(WELCOME_ICE, 2)]  # recording runs already
    state.receive(Answer(sdp="v=0"), NOW)
    state.signalling_lost()
    state.signalling_connected()
    assert state.receive(welcome(technician=True), NOW) == []  # answered: media flows on peer to peer


def test_answers_and_candidates_need_a_peer_connection_and_other_roles_are_ignored() -> None:
    state = new_state()
    assert state.receive(Answer(sdp="v=0"), NOW) == []
    assert state.receive(PeerJoined(peer=PeerInfo(role=Role.host)), NOW) == []
    assert state.receive(PeerLeft(role=Role.host), NOW) == []
    state.receive(welcome(technician=True), NOW)
    consented(state)
    candidate = IceCandidate(candidate="candidate:1 1 udp 1 127.0.0.1 9 typ host")
    assert state.receive(candidate, NOW) == [AddCandidate(candidate)]
    assert state.receive(Answer(sdp="v=0"), NOW) == [ApplyAnswer("v=0")]
    assert state.receive(Answer(sdp="v=0 again"), NOW) == []  # one answer per offer


def test_transfers_are_handed_on_only_after_consent() -> None:
    state = new_state()
    update = FileRequestUpdate(request=FileRequestOut(
        id="r1", session_id="s", path="/tmp/report.pdf", note="", state=FileRequestState.pending, created_at=NOW,
    ))
    assert state.receive(update, NOW) == []  # the consent prompt comes first
    consented(state)
    assert state.receive(update, NOW) == [HandOnToTransfers(update)]


def test_media_connected_is_marked_only_when_connected() -> None:
    state = new_state()
    assert state.media_connection_changed("connecting", 1.0) == []
    assert state.media_connection_changed("connected", 2.0) == [MarkMediaConnected()]


def offered_state() -> HostSessionState:
    state = new_state()
    state.receive(welcome(technician=True), NOW)
    consented(state)
    assert state.offering is Offering.awaiting_answer
    return state


def test_the_user_reads_connected_only_once_media_flows_and_once_per_connection() -> None:
    state = new_state()
    assert state.media_flowing() == []  # no peer connection: nothing flows
    state = offered_state()
    state.receive(Answer(sdp="v=0"), NOW)
    assert state.media_flowing() == [ShowTechnicianPresent(True)]
    assert state.media_flowing() == []
    state.receive(PeerLeft(role=Role.technician), NOW)
    state.receive(joined(), NOW)
    assert state.media_flowing() == [ShowTechnicianPresent(True)]  # the new connection is shown again


def test_a_connection_that_never_comes_is_explained_and_reported_to_the_technician() -> None:
    state = offered_state()
    state.receive(Answer(sdp="v=0"), NOW)
    failed = IceFailed(attempt=1, seconds=15.0, local_types=["host"], remote_types=["host", "relay"],
                       turn_failures=[TurnFailure(url="turn:r", reason="the relay refused the credentials")])
    actions = state.connect_gave_up(failed)
    assert actions[0] == ClosePeer() and actions[2] == SendIceFailed(failed)
    assert isinstance(actions[1], TellUser)
    assert actions[1].text.startswith("Could not connect to the technician") and "firewall" in actions[1].text
    assert "turn:r: the relay refused the credentials" in actions[1].text
    assert state.offering is Offering.none
    assert state.connect_gave_up(failed) == []  # once per attempt
    assert state.receive(joined(), NOW) == [SendOffer(WELCOME_ICE, 2)]  # a technician reconnecting tries again


def test_the_technicians_failure_is_explained_too_and_ends_this_attempt() -> None:
    state = offered_state()
    theirs = IceFailed(attempt=1, seconds=15.0)
    actions = state.receive(theirs, NOW)
    assert actions[0] == ClosePeer() and isinstance(actions[1], TellUser)
    assert "technician's computer could not set up" in actions[1].text and "TURN settings" in actions[1].text
    assert state.receive(theirs, NOW) == []  # nothing left to close
    assert state.media_flowing() == []


def test_a_malformed_answer_ends_the_attempt_not_the_session() -> None:
    state = offered_state()
    state.receive(Answer(sdp="v=0 garbage"), NOW)
    actions = state.answer_refused("no m= line")
    assert actions[0] == ClosePeer() and isinstance(actions[1], TellUser) and "no m= line" in actions[1].text
    assert not state.over and state.offering is Offering.none
    assert state.receive(joined(), NOW) == [SendOffer(WELCOME_ICE, 2)]  # the technician reconnecting is offered again


def test_renewed_ice_is_used_by_the_next_peer_connection() -> None:
    state = offered_state()
    renewed = IceConfig(servers=[IceServer(urls=["turn:127.0.0.1:3478"], username="1:x", credential="c")])
    assert state.receive(IceRenewed(ice=renewed), NOW) == []
    assert state.receive(joined(), NOW) == [ClosePeer(), SendOffer(renewed, 2)]


# --- liveness and recovery ---------------------------------------------------------------------


INTERRUPTED = [ReleaseInput(), TellUser(USER_WORDS.reconnecting), Report("media.interrupted", {"silent_seconds": 3.0})]


def connected_state() -> HostSessionState:
    """Signalling up, offer 1 answered and connected, its control channel open at t=0 and
    the technician's first ping on it answered (ping 1 sent)."""
    state = offered_state()
    state.signalling_connected()
    assert state.receive(Answer(sdp="v=0", attempt=1), NOW) == [ApplyAnswer("v=0", connect_deadline=True)]
    state.media_connection_changed("connected", 0.0)
    assert state.control_opened(0.0) == [ShowTechnicianPresent(True), SendLiveness(HELLO)]
    assert state.liveness_received(Ping(seq=1), 0.0) == [SendLiveness(Ping(seq=1)), SendLiveness(Pong(seq=1))]
    return state


def interrupted_state() -> HostSessionState:
    """:func:`connected_state` whose technician's side stopped answering: at t=3 offer 2 went out."""
    state = connected_state()
    assert state.liveness_tick(1.0) == [SendLiveness(Ping(seq=2))]
    assert state.liveness_tick(2.0) == [SendLiveness(Ping(seq=3))]
    assert state.liveness_tick(3.0) == [SendLiveness(Ping(seq=4)), *INTERRUPTED, ClosePeer(), SendOffer(WELCOME_ICE, 2)]
    return state


def test_pings_go_out_every_second_and_the_technicians_pings_are_answered() -> None:
    state = connected_state()
    assert state.liveness_received(Ping(seq=7), 0.2) == [SendLiveness(Pong(seq=7))]
    assert state.liveness_received(Pong(seq=1), 0.3) == []
    assert state.liveness_tick(0.5) == []
    assert state.liveness_tick(1.0) == [SendLiveness(Ping(seq=2))]
    assert state.liveness_received(Pong(seq=2), 1.1) == []
    for now in (2.0, 3.0):
        assert state.liveness_tick(now) == [SendLiveness(Ping(seq=int(now) + 1))]  # answered in time: no interruption
    assert not state.recovery.reconnecting


def test_silence_is_an_interruption_the_user_is_told_it_is_reported_and_a_new_connection_offered() -> None:
    state = interrupted_state()
    assert state.recovery.reconnecting and state.offer_attempt == 2
    assert state.offering is Offering.awaiting_answer


def test_the_answer_to_a_replaced_offer_is_dropped_and_the_new_one_has_no_connect_deadline() -> None:
    state = interrupted_state()
    assert state.receive(Answer(sdp="v=0 old", attempt=1), NOW) == []
    assert state.offering is Offering.awaiting_answer
    assert state.receive(Answer(sdp="v=0 new", attempt=2), NOW) == [ApplyAnswer("v=0 new", connect_deadline=False)]


def test_an_answer_without_an_attempt_is_taken_as_before() -> None:
    state = interrupted_state()
    assert state.receive(Answer(sdp="v=0"), NOW) == [ApplyAnswer("v=0", connect_deadline=False)]


def test_the_connection_is_restored_when_the_new_channel_answers_not_before() -> None:
    state = interrupted_state()
    state.receive(Answer(sdp="v=0", attempt=2), NOW)
    assert state.media_connection_changed("connected", 4.0) == [MarkMediaConnected()]
    assert state.control_opened(4.2) == [ShowTechnicianPresent(True), SendLiveness(HELLO)]
    assert state.liveness_received(Ping(seq=9), 4.2) == [SendLiveness(Ping(seq=5)), SendLiveness(Pong(seq=9))]
    assert state.liveness_received(Pong(seq=3), 4.3) == []  # the old connection's ping proves nothing
    assert state.recovery.reconnecting
    assert state.liveness_received(Pong(seq=5), 4.4) == [
        TellUser(USER_WORDS.restored), Report("media.restored", {"silent_seconds": 4.4, "attempts": 1}),
    ]
    assert not state.recovery.reconnecting
    assert state.liveness_tick(5.2) == [SendLiveness(Ping(seq=6))]  # watching goes on as before


def test_offers_are_made_again_every_3_s_and_no_connect_deadline_or_failure_of_theirs_ends_them() -> None:
    state = interrupted_state()
    state.receive(Answer(sdp="v=0", attempt=2), NOW)
    failed = IceFailed(attempt=2, seconds=15.0)
    assert state.connect_gave_up(failed) == []
    assert state.receive(failed, NOW) == []
    assert state.liveness_tick(5.9) == []
    assert state.liveness_tick(6.0) == [ClosePeer(), SendOffer(WELCOME_ICE, 3)]
    assert state.liveness_tick(9.0) == [ClosePeer(), SendOffer(WELCOME_ICE, 4)]


def test_a_connection_that_comes_up_gets_its_full_3_s_before_it_is_replaced() -> None:
    state = interrupted_state()
    state.receive(Answer(sdp="v=0", attempt=2), NOW)
    state.media_connection_changed("connected", 5.5)
    assert state.liveness_tick(6.0) == []
    assert state.liveness_tick(8.5) == [ClosePeer(), SendOffer(WELCOME_ICE, 3)]


def test_re_offers_use_the_latest_ice_and_wait_while_signalling_is_down() -> None:
    state = interrupted_state()
    renewed = IceConfig(servers=[IceServer(urls=["turn:127.0.0.1:3478"], username="2:x", credential="c")])
    state.receive(IceRenewed(ice=renewed), NOW)
    state.signalling_lost()
    assert state.liveness_tick(6.0) == []  # the offer could not reach the technician
    state.signalling_connected()
    assert state.liveness_tick(9.0) == [ClosePeer(), SendOffer(renewed, 3)]


def test_a_re_offer_unanswered_for_2_s_reopens_signalling_once_and_the_welcome_offers_again() -> None:
    state = interrupted_state()
    assert state.liveness_tick(4.9) == []
    assert state.liveness_tick(5.0) == [ReopenSignalling()]  # it shares the broken path: what it sent may never arrive
    assert state.liveness_tick(5.5) == []
    state.signalling_lost()
    assert state.liveness_tick(6.0) == []  # no re-offer into a connection that is down
    state.signalling_connected()
    assert offers(state.receive(welcome(technician=True), NOW)) == [ClosePeer(), SendOffer(WELCOME_ICE, 3)]


def test_an_answered_re_offer_or_a_first_offer_never_reopens_signalling() -> None:
    state = interrupted_state()
    state.receive(Answer(sdp="v=0", attempt=2), NOW)
    assert state.liveness_tick(5.5) == []
    waiting = offered_state()  # the first offer may wait for its answer as long as it takes
    waiting.signalling_connected()
    assert [waiting.liveness_tick(float(now)) for now in range(1, 30)] == [[]] * 29


def test_after_60_s_reconnecting_gives_up_tells_the_user_and_stops_offering() -> None:
    state = interrupted_state()
    for now in range(6, 63, 3):
        state.liveness_tick(float(now))
    assert state.liveness_tick(63.0) == [
        ClosePeer(), TellUser(USER_WORDS.lost(60.0)), Report("media.lost", {"seconds": 60.0, "attempts": 20}),
    ]
    assert state.offering is Offering.none and not state.recovery.reconnecting
    assert [state.liveness_tick(float(now)) for now in range(64, 130, 3)] == [[]] * 22  # no pings, no offers
    assert offers(state.receive(joined(), NOW)) == [SendOffer(WELCOME_ICE, 22)]  # the technician coming back is offered


def test_a_technician_who_leaves_while_reconnecting_is_not_offered_to_until_they_return() -> None:
    state = interrupted_state()
    state.receive(PeerLeft(role=Role.technician), NOW)
    assert [state.liveness_tick(float(now)) for now in range(4, 70)] == [[]] * 66  # no offers, no giving up
    assert state.receive(joined(), NOW) == [TellUser(CONNECTING), SendOffer(WELCOME_ICE, 3)]


def test_a_technicians_side_that_never_speaks_liveness_is_never_taken_for_gone() -> None:
    state = offered_state()
    state.signalling_connected()
    state.receive(Answer(sdp="v=0"), NOW)  # an older browser console: no attempt, no pings
    assert state.control_opened(0.0) == [ShowTechnicianPresent(True), SendLiveness(HELLO)]
    assert [state.liveness_tick(now / 4) for now in range(1, 400)] == [[]] * 399


def test_pings_stop_with_the_peer_connection() -> None:
    state = connected_state()
    state.receive(PeerLeft(role=Role.technician), NOW)
    assert state.liveness_tick(1.0) == []
    assert state.liveness_received(Ping(seq=3), 1.1) == []  # no channel: nothing to answer on


# --- the recording ---------------------------------------------------------------------------


def test_control_pauses_while_the_recording_lags_or_fails_and_resumes_when_it_catches_up() -> None:
    state = new_state()
    state.receive(welcome(policy=SessionPolicy(recording_max_lag_seconds=5.0)), NOW)
    consented(state)
    assert state.recording_checked(2.0, None) == []
    paused = "control is paused: recording is 9 s behind; it resumes when recording catches up"
    assert state.recording_checked(9.0, None) == [
        ReleaseInput(), TellUser(paused), TellTechnician(paused),
        Report("recording.behind", {"lag_seconds": 9.0, "error": None}),
    ]
    assert state.authority.refusal(Permission.control, NOW) == paused
    assert state.recording_checked(12.0, "the encoder failed") == []  # paused already: said once
    resumed = "recording caught up; control is possible again"
    assert state.recording_checked(0.5, None) == [TellUser(resumed), TellTechnician(resumed), Report("recording.caught_up")]
    assert state.authority.allows(Permission.control, NOW)
    failing = state.recording_checked(0.0, "the encoder failed")
    assert TellUser("control is paused: the encoder failed; it resumes when recording catches up") in failing


def test_without_required_recording_control_never_pauses() -> None:
    state = new_state()
    state.receive(welcome(policy=SessionPolicy(recording_required=False)), NOW)
    assert state.recording_checked(600.0, "the encoder failed") == []
    assert state.authority.control_paused is None


# --- ending ----------------------------------------------------------------------------------


def test_ending_before_signalling_is_up_sends_the_end_once_it_is() -> None:
    state = new_state()
    assert state.end_requested("the user ended the session") == []
    assert state.signalling_connected() == [SendEnd("the user ended the session")]
    assert not state.over
    assert state.receive(SessionEnded(ended_by="host", reason="the user ended the session"), NOW) == []
    assert state.ended == Ending("user", "the user ended the session")


def test_ending_twice_sends_one_end_and_an_unconfirmed_end_closes_signalling() -> None:
    state = new_state()
    state.signalling_connected()
    assert state.end_requested("first") == [SendEnd("first")]
    assert state.end_requested("second") == []
    assert state.end_unconfirmed("first") == [CloseSignalling()]
    assert state.ended == Ending("user", "first")
    assert state.end_unconfirmed("first") == []  # a second timer finds it over


def test_a_confirmed_end_is_not_closed_by_the_timer() -> None:
    state = new_state()
    state.signalling_connected()
    state.end_requested("done")
    state.receive(SessionEnded(ended_by="technician", reason="fixed"), NOW)
    assert state.ended == Ending("technician", "fixed")
    assert state.end_unconfirmed("done") == []


def test_ending_again_while_the_survey_is_open_skips_it() -> None:
    state = new_state()
    state.receive(SessionEnded(ended_by="technician", reason="fixed"), NOW)
    assert state.end_requested("again") == []  # over, nothing asked yet
    state.after_end_started()
    assert state.end_requested("again") == [SkipAfterEnd()]
    assert state.end_requested("and again") == [SkipAfterEnd()]


def test_a_user_who_ends_while_the_broker_is_away_does_not_wait_for_it() -> None:
    state = new_state()
    state.signalling_connected()
    state.signalling_lost()
    assert not state.over  # the broker may come back
    state.end_requested("bye")
    state.signalling_lost()
    assert state.ended == Ending("user", "bye")


def test_signalling_given_up_ends_by_the_broker_unless_already_over() -> None:
    state = new_state()
    state.signalling_over("lost the connection to the broker")
    assert state.ended == Ending("broker", "lost the connection to the broker")
    other = new_state()
    other.receive(SessionEnded(ended_by="broker", reason="expired"), NOW)
    other.signalling_over("refused")
    assert other.ended == Ending("broker", "expired")
