"""What a joined host decides, as a pure object: events in, actions out.

:class:`HostSessionState` holds the session's state machine: whether the user
consented, whether a technician is connected, whether the peer connection still
waits for its answer (so a reconnecting side is offered again), whether the
recording keeps up, whether the technician's side still answers on the control
channel (and the re-offers when it stops: :class:`~peer.liveness.Recovery`), and how
the session ends. Each method takes one event (a
signalling message, the user's answer, the media connection, the recording's
lag, the clock where it matters) and returns the :data:`Action` objects that
:class:`~host_client.session.HostSession` carries out with aiortc, the
WebSocket and the UI. Nothing here awaits, sends or touches a socket, so the
order of events can be tested on its own (``tests/unit/test_host_session_state.py``).

The grant and the consent themselves live in the :class:`~host_client.authority.Authority`
it is given (the same object the input gate and the transfers ask).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from peer.connect_watch import failure_text
from peer.liveness import USER_WORDS, GaveUp, Interrupted, Recovery, RecoveryAction, Reoffer, Restored, SendPing, SendPong
from protocol.channel import Ping, Pong
from protocol.grants import GrantRejected
from protocol.ice import IceConfig
from protocol.permissions import Permission, describe, ordered
from protocol.recording import SessionPolicy
from protocol.signalling import (
    Answer,
    ConsentSource,
    Error,
    FileRequestUpdate,
    GrantIssued,
    IceCandidate,
    IceFailed,
    IceRenewed,
    Offer,
    PeerJoined,
    PeerLeft,
    Role,
    SessionEnded,
    TransferUpdate,
    Welcome,
)

from .authority import Authority

log = logging.getLogger(__name__)

DEFAULT_PRESELECTED = frozenset({Permission.view, Permission.chat})
"""What the consent prompt ticks in advance: seeing and talking, never control."""

DECLINED = "the user declined the session"
"""Why the session ends when the user declines the consent prompt."""

CONNECTING = "the technician joined; setting up the connection…"
"""What the user reads between the technician joining and the media flowing ("connected")."""
OTHER_SIDE = "the technician"
HELLO = Ping(seq=0)
"""What the host sends as soon as a control channel opens: the technician's side that speaks
liveness starts it on hearing a ping (as the host does), so neither takes a side that does not
(an older console or host) for gone. Outside the count (the liveness's own start at 1), its pong
proves nothing."""
ANSWER_WAIT_SECONDS = 2.0
"""How long a re-offer may go unanswered before the host takes its signalling connection for broken
too: it shares the path that broke, and what it sent meanwhile may wait out TCP's retransmission
backoff (seconds), or never arrive when the address it was bound to is gone."""


# --- actions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartRecording:
    """Start the session's recording (once: the policy is known from ``welcome``)."""


@dataclass(frozen=True)
class ObtainConsent:
    """Ask the user what the technician may do (beside the signalling loop: the answer takes a while).

    With ``unattended_answer`` (``--consent``) nobody is asked: that is the answer, given
    on the command line. Either way the answer goes back to :meth:`HostSessionState.consent_answered`.
    """

    technician: str
    offered: list[Permission]
    preselected: frozenset[Permission]
    unattended_answer: frozenset[Permission] | None = None


@dataclass(frozen=True)
class SessionStarted:
    """The user consented: the UI shows the session."""

    technician: str
    ticket_id: int


@dataclass(frozen=True)
class SendConsent:
    """Tell the broker (and through it the technician) what the user allows."""

    permissions: list[Permission]
    source: ConsentSource


@dataclass(frozen=True)
class ShowPermissions:
    """The UI shows what is granted and what is consented."""

    granted: frozenset[Permission]
    consented: frozenset[Permission]


@dataclass(frozen=True)
class ReleaseInput:
    """Let go of every key and button the technician holds (control was just lost)."""


@dataclass(frozen=True)
class ResumeTransfers:
    """Let the file transfers go on (consent is known, or signalling is back)."""


@dataclass(frozen=True)
class HandOnToTransfers:
    """A transfer or file request changed; the transfers deal with it."""

    message: TransferUpdate | FileRequestUpdate


@dataclass(frozen=True)
class ShowTechnicianPresent:
    """The UI says whether the technician is connected."""

    present: bool


@dataclass(frozen=True)
class ClosePeer:
    """Close the peer connection, its screen track and data channels."""


@dataclass(frozen=True)
class PrepareOffer:
    """A technician waits for the user's consent: make the next peer connection with ``ice`` now (its
    offer made, its candidates gathered, a TURN relay allocated) and hold it; :class:`SendOffer` sends it
    once consent comes. Nothing of it leaves this machine before then but the relay allocation."""

    ice: IceConfig


@dataclass(frozen=True)
class SendOffer:
    """Build a fresh peer connection (screen track, data channels) with ``ice`` and offer it as ``attempt``."""

    ice: IceConfig
    attempt: int
    """Counts the offers of the session from 1: the answer names it, ``ice_failed`` too."""


@dataclass(frozen=True)
class ApplyAnswer:
    """The technician's answer to the outstanding offer.

    ``connect_deadline``: watch the attempt with the connect deadline
    (:class:`~peer.connect_watch.ConnectDeadline`). Not while reconnecting: the next
    re-offer replaces the attempt, or giving up ends the reconnecting.
    """

    sdp: str
    connect_deadline: bool = True


@dataclass(frozen=True)
class AddCandidate:
    """A trickled ICE candidate for the current peer connection."""

    candidate: IceCandidate


@dataclass(frozen=True)
class SendIceFailed:
    """Tell the technician's side (through the broker, which audits it) that this attempt failed."""

    message: IceFailed


@dataclass(frozen=True)
class SendLiveness:
    """A ping or pong for the technician's side: sent if the control channel is open, never held
    (one sent late would prove nothing)."""

    message: Ping | Pong


@dataclass(frozen=True)
class MarkMediaConnected:
    """The media connection is up (what ``HostSession.media_connected`` says)."""


@dataclass(frozen=True)
class TellUser:
    """A notice for the user."""

    text: str


@dataclass(frozen=True)
class TellTechnician:
    """A notice for the technician on the control channel (held until it opens)."""

    text: str


@dataclass(frozen=True)
class Report:
    """An event for the session's audit trail."""

    kind: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReopenSignalling:
    """Drop the signalling connection without waiting for it to close, and connect again."""


@dataclass(frozen=True)
class SendEnd:
    """Ask the broker to end the session; wait for its confirmation, at most a few seconds
    (then :meth:`HostSessionState.end_unconfirmed`)."""

    reason: str


@dataclass(frozen=True)
class CloseSignalling:
    """Close the signalling connection: the session is over."""


@dataclass(frozen=True)
class SkipAfterEnd:
    """Stop asking what is asked after the end (the survey): the user ended again."""


Action = (
    StartRecording | ObtainConsent | SessionStarted | SendConsent | ShowPermissions | ReleaseInput | ResumeTransfers
    | HandOnToTransfers | ShowTechnicianPresent | ClosePeer | PrepareOffer | SendOffer | ApplyAnswer | AddCandidate
    | MarkMediaConnected | TellUser | TellTechnician | Report | SendEnd | CloseSignalling | SkipAfterEnd
    | SendIceFailed | SendLiveness | ReopenSignalling
)
"""Everything :class:`HostSessionState` may ask its session to do."""


# --- the state machine ---------------------------------------------------------------------


class Offering(enum.Enum):
    """Where the peer connection stands."""

    none = "none"
    """No peer connection (no technician yet, or they left)."""
    awaiting_answer = "awaiting_answer"
    """Offered; no answer yet. The broker may have died while the offer was on its way, so a
    reconnecting technician is offered again."""
    answered = "answered"


class ControlChannel(enum.Enum):
    """Where the current peer connection's control channel stands, for the liveness."""

    closed = "closed"
    open = "open"
    """Open; the technician's side has not pinged on it yet."""
    watched = "watched"
    """The technician's side speaks liveness on it: silence counts."""


@dataclass(frozen=True)
class Ending:
    """Who ended the session (``technician``, ``user``, ``broker``) and why."""

    by: str
    reason: str


ENDED_BY = {"technician": "technician", "host": "user"}
"""The broker's ``ended_by`` in the words the host's summary uses."""


class HostSessionState:
    """One joined session's decisions; :class:`~host_client.session.HostSession` carries them out.

    ``authority`` is updated in place (grants, consent, control paused while the
    recording falls behind). ``preset_consent`` is ``--consent``: the answer to the
    consent prompt, given unattended. ``consent_source`` is how the UI asks, for the
    audit trail.
    """

    def __init__(
        self,
        authority: Authority,
        *,
        ice: IceConfig,
        preset_consent: frozenset[Permission] | None = None,
        consent_source: ConsentSource = ConsentSource.terminal,
    ) -> None:
        self.authority = authority
        self.ice = ice
        """How the next peer connection gathers candidates (from the join, then from each ``welcome``)."""
        self.policy = SessionPolicy()
        """How the deployment records sessions (from ``welcome``)."""
        self._preset_consent = preset_consent
        self._consent_source = consent_source
        self.technician_present = False
        self.offering = Offering.none
        self.recording = False
        self.signalling_up = False
        self.end_reason: str | None = None
        """Why the user ends the session, once they asked; the broker has yet to confirm."""
        self.ended: Ending | None = None
        self._asking_after_end = False
        self._media_shown = False
        self.recovery = Recovery(offerer=True)
        """Whether the technician's side still answers, and the re-offers when it stops (:mod:`peer.liveness`)."""
        self.offer_attempt = 0
        """The latest offer's ``attempt`` (0: none yet); an answer to an earlier one is dropped."""
        self._control: ControlChannel = ControlChannel.closed
        self._reoffered_at: float | None = None
        """When the outstanding re-offer was made; None once answered, or after signalling was reopened for it."""

    @property
    def over(self) -> bool:
        """The session has ended: stop signalling."""
        return self.ended is not None

    # --- signalling -------------------------------------------------------------------------

    def signalling_connected(self) -> list[Action]:
        """Signalling is up (again): what the broker must hear first."""
        self.signalling_up = True
        actions: list[Action] = []
        if self.end_reason is not None:
            actions.append(SendEnd(self.end_reason))
        if self.authority.consent_given:
            # A reconnect: the broker must hear the current consent again.
            actions += [SendConsent(ordered(self.authority.consent), self._consent_source), ResumeTransfers()]
        return actions

    def signalling_lost(self) -> list[Action]:
        """Signalling dropped (or could not be opened). A user who asked to end does not wait
        for a broker that cannot be reached: the session is over (see :attr:`over`)."""
        self.signalling_up = False
        if self.end_reason is not None and self.ended is None:
            self.ended = Ending("user", self.end_reason)
        return []

    def signalling_over(self, reason: str) -> list[Action]:
        """Signalling gave up for good (the broker refused this host, or was out of reach too long)."""
        self.signalling_up = False
        if self.ended is None:
            self.ended = Ending("broker", reason)
        return []

    def receive(self, message: BaseModel, now: datetime | None = None) -> list[Action]:
        """One message from the broker; ``now`` checks a grant (None: this computer's clock)."""
        if isinstance(message, Welcome):
            return self._welcomed(message)
        if isinstance(message, GrantIssued):
            return self._grant_arrived(message, now)
        if isinstance(message, PeerJoined):
            return self._technician_joined(reoffer=True) if message.peer.role is Role.technician else []
        if isinstance(message, PeerLeft):
            return self._technician_left() if message.role is Role.technician else []
        if isinstance(message, Answer):
            if self.offering is not Offering.awaiting_answer:
                return []
            if message.attempt is not None and message.attempt != self.offer_attempt:
                log.info("ignoring the answer to offer %d: offer %d replaced it", message.attempt, self.offer_attempt)
                return []
            self.offering = Offering.answered
            self._reoffered_at = None
            return [ApplyAnswer(message.sdp, connect_deadline=not self.recovery.reconnecting)]
        if isinstance(message, IceCandidate):
            return [AddCandidate(message)] if self.offering is not Offering.none else []
        if isinstance(message, IceFailed):
            return self._technician_side_failed(message)
        if isinstance(message, IceRenewed):
            self.ice = message.ice  # fresh TURN credentials, for the next peer connection
            return []
        if isinstance(message, SessionEnded):
            self.ended = Ending(ENDED_BY.get(message.ended_by, message.ended_by), message.reason)
            return []
        if isinstance(message, TransferUpdate | FileRequestUpdate):
            return [HandOnToTransfers(message)] if self.authority.consent_given else []
        if isinstance(message, Error):
            log.warning("the broker reported a problem: %s (%s)", message.message, message.code.value)
        elif isinstance(message, Offer):
            log.warning("ignoring an offer: the host is the offering side")
        return []

    def _welcomed(self, welcome: Welcome) -> list[Action]:
        self.ice = welcome.ice
        self.policy = welcome.policy
        actions: list[Action] = []
        if not self.recording:
            self.recording = True
            actions.append(StartRecording())
        if welcome.peer is not None and welcome.peer.role is Role.technician:
            actions += self._technician_joined(reoffer=False)
        return actions

    def _grant_arrived(self, message: GrantIssued, now: datetime | None) -> list[Action]:
        had_grant = self.authority.grant is not None
        before = self.authority.effective(now)
        try:
            grant = self.authority.accept_grant(message.grant, now)
        except GrantRejected as rejected:
            log.warning("refused a grant: %s", rejected.reason)
            return [TellUser(f"refused the broker's grant: {rejected.reason}"),
                    Report("grant.refused", {"reason": rejected.reason[:500]})]
        if not had_grant:
            offered = ordered(grant.permissions)
            if self._preset_consent is None:
                return [ObtainConsent(grant.technician_name, offered, DEFAULT_PRESELECTED)]
            chosen = self._preset_consent & frozenset(offered)
            return [TellUser(f"consent given on the command line: {describe(chosen)}"),
                    ObtainConsent(grant.technician_name, offered, DEFAULT_PRESELECTED, unattended_answer=chosen)]
        return self._permissions_changed(before, now)

    def _technician_joined(self, *, reoffer: bool) -> list[Action]:
        """A technician is connected: offer once consent is known.

        ``reoffer``: a (re)connecting technician has no media yet, even when the
        host still holds a peer connection for a stale one it replaced.
        """
        actions: list[Action] = []
        if not self.technician_present:
            actions.append(TellUser(CONNECTING))  # "connected" only once media flows (media_flowing)
        self.technician_present = True
        if self.authority.consent_given and (reoffer or self.offering is not Offering.answered):
            actions += self._offer()
        elif not self.authority.consent_given and self.offering is Offering.none:
            actions.append(PrepareOffer(self.ice))
        return actions

    def _technician_left(self) -> list[Action]:
        log.info("the technician left; waiting for them to come back")
        self.technician_present = False
        self.recovery.stop()  # their absence is no interruption: they are offered again when they return
        return [ShowTechnicianPresent(False), ReleaseInput(), *self._close_peer()]

    def _offer(self) -> list[Action]:
        closing = [] if self.offering is Offering.none else self._close_peer()
        self.offering = Offering.awaiting_answer
        self._media_shown = False
        self.offer_attempt += 1
        return [*closing, SendOffer(self.ice, self.offer_attempt)]

    def _close_peer(self) -> list[Action]:
        """Close the peer connection: no offer stands, its control channel is gone for the liveness too."""
        self.offering = Offering.none
        self._media_shown = False
        self._control = ControlChannel.closed
        self.recovery.closed()
        return [ClosePeer()]

    # --- media ------------------------------------------------------------------------------

    def media_connection_changed(self, state: str, now: float) -> list[Action]:
        """The current peer connection's ``connectionState`` changed (``now``: ``time.monotonic()``)."""
        if state != "connected":
            return []
        self.recovery.attempt_connected(now)  # a re-offer's connection is up: give its channel time to answer
        return [MarkMediaConnected()]

    def media_flowing(self) -> list[Action]:
        """The first data reached the technician's side (the control channel opened): now the
        user reads that the technician is connected, not at the broker's ``peer_joined``."""
        if self._media_shown or self.offering is Offering.none:
            return []
        self._media_shown = True
        return [ShowTechnicianPresent(True)]

    def answer_refused(self, problem: str) -> list[Action]:
        """The technician's answer could not be applied (malformed SDP): this attempt is over,
        the session goes on; the technician's next join is offered again."""
        return [*self._close_peer(), TellUser(f"the technician's side sent a connection setup this computer cannot use "
                                      f"({problem}); waiting for them to reconnect")]

    def connect_gave_up(self, failed: IceFailed) -> list[Action]:
        """No candidate pair worked in time (:class:`~peer.connect_watch.ConnectDeadline`): close,
        explain to the user, tell the technician's side. Not while reconnecting: the re-offers
        go on until the connection is back or :class:`~peer.liveness.GaveUp`."""
        if self.offering is Offering.none or self.recovery.reconnecting:
            return []
        return [*self._close_peer(), TellUser(failure_text(OTHER_SIDE, failed)), SendIceFailed(failed)]

    def _technician_side_failed(self, failed: IceFailed) -> list[Action]:
        """The technician's side gave up connecting (its ``ice_failed``, relayed by the broker);
        while reconnecting, the next re-offer replaces that attempt anyway."""
        if self.offering is Offering.none or self.recovery.reconnecting:
            return []
        return [*self._close_peer(), TellUser(failure_text(OTHER_SIDE, failed, theirs=True))]

    # --- liveness and recovery (peer.liveness) ----------------------------------------------

    def control_opened(self, now: float) -> list[Action]:
        """The current peer connection's control channel opened: the technician sees the
        screen (:meth:`media_flowing`). The liveness begins with the first ping or pong from
        the technician's side on it (:data:`HELLO` asks for one): a console that does not
        speak it (an older browser console) is never taken for gone."""
        if self.offering is Offering.none:
            return []
        self._control = ControlChannel.open
        return [*self.media_flowing(), SendLiveness(HELLO)]

    def liveness_received(self, message: Ping | Pong, now: float) -> list[Action]:
        """A ping or pong from the technician's side on the current control channel."""
        if self._control is ControlChannel.closed:
            return []
        actions: list[Action] = []
        if self._control is ControlChannel.open:
            self._control = ControlChannel.watched
            actions += self._recover(self.recovery.opened(now), now)
        if isinstance(message, Ping):
            return [*actions, *self._recover(self.recovery.ping_received(message.seq), now)]
        return [*actions, *self._recover(self.recovery.pong_received(message.seq, now), now)]

    def liveness_tick(self, now: float) -> list[Action]:
        """The time is ``now`` (call at least every :data:`~peer.liveness.PING_SECONDS`, or at
        ``recovery.due_at()``): pings, the interruption, re-offers and giving up, as due."""
        actions = self._recover(self.recovery.tick(now), now)
        if (self._reoffered_at is not None and now - self._reoffered_at >= ANSWER_WAIT_SECONDS
                and self.recovery.reconnecting and self.offering is Offering.awaiting_answer and self.signalling_up):
            # Once per re-offer: back on a fresh connection, the broker's welcome brings the offer again.
            self._reoffered_at = None
            log.info("no answer to the offer in %.0f s; reopening signalling", ANSWER_WAIT_SECONDS)
            actions.append(ReopenSignalling())
        return actions

    def _recover(self, actions: list[RecoveryAction], now: float) -> list[Action]:
        """What the session does for each of :class:`~peer.liveness.Recovery`'s actions."""
        out: list[Action] = []
        for action in actions:
            match action:
                case SendPing(seq=seq):
                    out.append(SendLiveness(Ping(seq=seq)))
                case SendPong(seq=seq):
                    out.append(SendLiveness(Pong(seq=seq)))
                case Interrupted(silent_seconds=silent):
                    # Keys held when the picture stopped must not stay pressed while nobody sees them.
                    log.warning("no answer from the technician's side for %.1f s; reconnecting", silent)
                    out += [ReleaseInput(), TellUser(USER_WORDS.reconnecting),
                            Report("media.interrupted", {"silent_seconds": silent})]
                case Reoffer(attempt=attempt):
                    if self.technician_present and self.authority.consent_given and self.signalling_up:
                        log.info("offering a new connection (reconnect attempt %d)", attempt)
                        out += self._offer()
                        self._reoffered_at = now
                case Restored(silent_seconds=silent, attempts=attempts):
                    log.info("the technician's side answers again after %.1f s (%d offers)", silent, attempts)
                    out += [TellUser(USER_WORDS.restored),
                            Report("media.restored", {"silent_seconds": silent, "attempts": attempts})]
                case GaveUp(seconds=seconds, attempts=attempts):
                    log.warning("gave up reconnecting after %.0f s (%d offers)", seconds, attempts)
                    closing = [] if self.offering is Offering.none else self._close_peer()
                    out += [*closing, TellUser(USER_WORDS.lost(seconds)),
                            Report("media.lost", {"seconds": seconds, "attempts": attempts})]
        return out

    # --- consent ----------------------------------------------------------------------------

    def consent_answered(
        self, chosen: frozenset[Permission] | None, source: ConsentSource, now: datetime | None = None
    ) -> list[Action]:
        """The user answered the consent prompt (None: declined, which ends the session);
        ``now`` tells a current grant (None: this computer's clock)."""
        if chosen is None:
            return self.end_requested(DECLINED)
        grant = self.authority.grant
        assert grant is not None, "consent is asked for once a grant arrived"
        actions: list[Action] = [SessionStarted(grant.technician_name, grant.ticket_id)]
        actions += self._apply_consent(chosen, source, now)
        actions.append(ResumeTransfers())
        if self.technician_present and self.offering is Offering.none:
            actions += self._offer()
        return actions

    def consent_changed(self, permissions: frozenset[Permission], now: datetime | None = None) -> list[Action]:
        """The user changed what the technician may do during the session."""
        return self._apply_consent(frozenset(permissions), self._consent_source, now)

    def _apply_consent(self, permissions: frozenset[Permission], source: ConsentSource,
                       now: datetime | None) -> list[Action]:
        before = self.authority.effective(now)
        self.authority.set_consent(permissions)
        actions = self._permissions_changed(before, now, always=True)
        actions.append(SendConsent(ordered(permissions), source))
        return actions

    def _permissions_changed(self, before: frozenset[Permission], now: datetime | None, *,
                             always: bool = False) -> list[Action]:
        """What follows a change of grant or consent: control lost lets go of held keys; the UI shows it."""
        after = self.authority.effective(now)
        if after == before and not always:
            return []
        actions: list[Action] = []
        if Permission.control in before and Permission.control not in after:
            actions.append(ReleaseInput())
        actions.append(ShowPermissions(self.authority.granted(now), self.authority.consent))
        return actions

    # --- recording --------------------------------------------------------------------------

    def recording_checked(self, lag_seconds: float, failure: str | None) -> list[Action]:
        """How far the recording is behind (and why it fails, if it does): no recording, no control.

        While the policy requires recording and it fails or lags more than the policy allows,
        control is paused (:attr:`Authority.control_paused`); it resumes once it catches up.
        """
        policy = self.policy
        behind = policy.recording_required and (failure is not None or lag_seconds > policy.recording_max_lag_seconds)
        if behind and self.authority.control_paused is None:
            why = failure or f"recording is {lag_seconds:.0f} s behind"
            paused = self.authority.control_paused = f"control is paused: {why}; it resumes when recording catches up"
            return [ReleaseInput(), TellUser(paused), TellTechnician(paused),
                    Report("recording.behind", {"lag_seconds": round(lag_seconds, 1),
                                                "error": failure[:500] if failure else None})]
        if not behind and self.authority.control_paused is not None:
            self.authority.control_paused = None
            resumed = "recording caught up; control is possible again"
            return [TellUser(resumed), TellTechnician(resumed), Report("recording.caught_up")]
        return []

    # --- ending -----------------------------------------------------------------------------

    def end_requested(self, reason: str) -> list[Action]:
        """The user ends the session: tell the broker, now or as soon as signalling is up.

        Once the session is over, ending again skips what is asked after the end (the survey).
        """
        if self.ended is not None and self._asking_after_end:
            return [SkipAfterEnd()]
        if self.end_reason is not None or self.ended is not None:
            return []
        self.end_reason = reason
        return [SendEnd(reason)] if self.signalling_up else []

    def end_unconfirmed(self, reason: str) -> list[Action]:
        """The broker did not confirm the end in time: the session is over anyway."""
        if self.ended is not None:
            return []
        self.ended = Ending("user", reason)
        return [CloseSignalling()]

    def after_end_started(self) -> None:
        """The session ended and the user is asked something (the survey)."""
        self._asking_after_end = True
