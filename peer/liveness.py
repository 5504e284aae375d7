"""Is the other side still there? Liveness on the ``control`` channel, and the plan to reconnect.

aioice notices a broken path only when consent freshness fails (a check every ~5 s, six
failures in a row: 24 to 36 s after the path broke), and aiortc cannot restart ICE on a peer
connection (no ``restartIce``; a stopped ICE transport stays stopped): recovering means a
new peer connection and a new offer. So each side notices on its own, sooner:

- :class:`Liveness` pings the other side once a second on ``control``
  (:class:`~protocol.channel.Ping`), answers its pings (:class:`~protocol.channel.Pong`), and
  says the connection is *interrupted* after :data:`SILENCE_SECONDS` without an answer to
  its own pings, *restored* when an answer comes again. Only an answer counts: it has made
  the round trip, while the other side's pings or chat prove only the way here, and a path
  broken one way only must be noticed by both sides (only the host can offer again);
- :class:`Reconnect` is what follows an interruption. The host, the offerer, offers a new peer
  connection at once and every :data:`RETRY_SECONDS` (each with the latest ICE configuration,
  each replacing the last, so no attempt is left to back off into aioice's slow retransmissions)
  until the connection is restored or :data:`GIVE_UP_SECONDS` have passed. The technician's
  side runs the same plan without offering, so it gives up on its own even when the host
  cannot reach the broker to say so.

:class:`Recovery` runs the two together, as each side does. All are pure: the time is passed
in (monotonic seconds), events go in and actions come out, and the session carries them out
(as :mod:`host_client.session_state`). The words each side's person reads are here too
(:data:`USER_WORDS`, :data:`TECHNICIAN_WORDS`); the browser console keeps its copy in
``tech_console/web/js/live_view.js`` (``tests/unit/test_liveness.py`` holds them equal).
"""

from __future__ import annotations

from dataclasses import dataclass

PING_SECONDS = 1.0
"""How often each side pings the other while its control channel is open."""
SILENCE_SECONDS = 3.0
"""No answer to this side's pings for this long: the connection is interrupted (three missed pongs)."""
RETRY_SECONDS = 3.0
"""How often the host offers a new connection while reconnecting: an attempt's connectivity checks
retransmit at 0.5, 1.5 and 3.5 s, so a fresh attempt finds a path that came back sooner than an
old one left to back off to 8 and 16 s."""
GIVE_UP_SECONDS = 60.0
"""How long reconnecting goes on before the connection is declared lost."""


# --- liveness -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SendPing:
    """Send :class:`~protocol.channel.Ping` with this ``seq`` on the control channel."""

    seq: int


@dataclass(frozen=True)
class SendPong:
    """Answer the other side's ping: :class:`~protocol.channel.Pong` with its ``seq``."""

    seq: int


@dataclass(frozen=True)
class Interrupted:
    """No answer from the other side for ``silent_seconds``: show "reconnecting", start :class:`Reconnect`."""

    silent_seconds: float


@dataclass(frozen=True)
class Restored:
    """The other side answers again, ``silent_seconds`` after its last answer before the gap.

    ``attempts``: new connections offered meanwhile (:class:`Recovery` counts them; a
    :class:`Liveness` on its own knows of none).
    """

    silent_seconds: float
    attempts: int = 0


LivenessAction = SendPing | SendPong | Interrupted | Restored
"""Everything :class:`Liveness` may ask its side to do."""


class Liveness:
    """One side's view of whether the other side is there, across the session's peer connections.

    The session tells it when a connection's control channel opens (:meth:`opened`) and
    closes (:meth:`closed`), hands it every ping and pong that arrives on the *current*
    connection's control channel, and calls :meth:`tick` at least every :data:`PING_SECONDS`
    (or at :meth:`due_at`). Watching starts with the first channel that opens (the connect
    deadline covers the time before) and ends with :meth:`stop`.
    """

    def __init__(self, *, ping_seconds: float = PING_SECONDS, silence_seconds: float = SILENCE_SECONDS) -> None:
        self._ping_seconds = ping_seconds
        self._silence_seconds = silence_seconds
        self._next_seq = 1
        self._channel_first_seq: int | None = None
        """The first ``seq`` pinged on the open channel; None while no channel is open."""
        self._next_ping_at: float | None = None
        self._last_answer: float | None = None
        """When the other side last answered (or the channel opened); None while not watching."""
        self._gap_from: float | None = None
        """When the other side last answered before the interruption; None while not interrupted."""

    @property
    def interrupted(self) -> bool:
        """No answer from the other side for :data:`SILENCE_SECONDS`, and none since."""
        return self._gap_from is not None

    @property
    def watching(self) -> bool:
        """A channel opened since the start (or the last :meth:`stop`): silence counts."""
        return self._last_answer is not None

    def opened(self, now: float) -> list[LivenessAction]:
        """The control channel of a new peer connection is open: ping at once, then every second.

        Outside an interruption the new channel gets the full :data:`SILENCE_SECONDS` for an
        answer; within one, only an answer restores the connection.
        """
        self._channel_first_seq = self._next_seq
        if not self.interrupted:
            self._last_answer = now
        return [self._ping(now)]

    def closed(self) -> list[LivenessAction]:
        """The control channel is gone (its connection closed or was replaced): no pings until the next opens.

        The silence goes on counting: a connection that broke is an interruption.
        """
        self._channel_first_seq = None
        self._next_ping_at = None
        return []

    def stop(self) -> list[LivenessAction]:
        """The other side left, or the session is over: watch no more, until a channel opens again."""
        self._channel_first_seq = self._next_ping_at = self._last_answer = self._gap_from = None
        return []

    def tick(self, now: float) -> list[LivenessAction]:
        """The time is ``now``: ping when one is due, declare the interruption when the silence is long enough."""
        actions: list[LivenessAction] = []
        if self._next_ping_at is not None and now >= self._next_ping_at:
            actions.append(self._ping(now))
        if self._last_answer is not None and not self.interrupted and now - self._last_answer >= self._silence_seconds:
            self._gap_from = self._last_answer
            actions.append(Interrupted(round(now - self._last_answer, 3)))
        return actions

    def due_at(self) -> float | None:
        """When :meth:`tick` next has something to do (None: nothing until another event)."""
        due = [] if self._next_ping_at is None else [self._next_ping_at]
        if self._last_answer is not None and not self.interrupted:
            due.append(self._last_answer + self._silence_seconds)
        return min(due, default=None)

    def ping_received(self, seq: int) -> list[LivenessAction]:
        """The other side pinged on the open channel: answer (that proves nothing to this side)."""
        return [] if self._channel_first_seq is None else [SendPong(seq)]

    def pong_received(self, seq: int, now: float) -> list[LivenessAction]:
        """The other side answered a ping; one sent before the open channel did (an earlier
        connection's, or a ``seq`` never sent) proves nothing about this connection."""
        if self._channel_first_seq is None or self._last_answer is None:
            return []
        if not self._channel_first_seq <= seq < self._next_seq:
            return []
        self._last_answer = max(self._last_answer, now)
        if self._gap_from is None:
            return []
        gap, self._gap_from = now - self._gap_from, None
        return [Restored(round(gap, 3))]

    def _ping(self, now: float) -> SendPing:
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        self._next_ping_at = now + self._ping_seconds
        return SendPing(seq)


# --- reconnecting ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Reoffer:
    """The host: close the peer connection and offer a new one, with the latest ICE configuration.

    No connect deadline runs for it: the next re-offer replaces it, or :class:`GaveUp` ends
    the reconnecting. ``attempt`` counts from 1 within this interruption.
    """

    attempt: int


@dataclass(frozen=True)
class Reconnected:
    """The connection is back, ``seconds`` after the interruption was noticed, after ``attempts`` offers."""

    seconds: float
    attempts: int


@dataclass(frozen=True)
class GaveUp:
    """The connection could not be restored in ``seconds``, after ``attempts`` offers: stop, and say so."""

    seconds: float
    attempts: int


ReconnectAction = Reoffer | Reconnected | GaveUp
"""Everything :class:`Reconnect` may ask its side to do."""


class Reconnect:
    """What one side does from an interruption until the connection is back or given up.

    ``offerer``: this side makes the offers (the host). The other side (the technician)
    answers each offer as it comes and only keeps the time, to give up on its own.
    """

    def __init__(
        self, *, offerer: bool, retry_seconds: float = RETRY_SECONDS, give_up_seconds: float = GIVE_UP_SECONDS
    ) -> None:
        self._offerer = offerer
        self._retry_seconds = retry_seconds
        self._give_up_seconds = give_up_seconds
        self._started_at: float | None = None
        self._next_offer_at: float | None = None
        self.attempts = 0
        """Offers made in this interruption."""

    @property
    def reconnecting(self) -> bool:
        """Between an interruption and its outcome."""
        return self._started_at is not None

    def interrupted(self, now: float) -> list[ReconnectAction]:
        """:class:`Liveness` said the connection is interrupted: the host offers at once."""
        if self._started_at is not None:
            return []
        self._started_at, self.attempts = now, 0
        return self._reoffer(now) if self._offerer else []

    def tick(self, now: float) -> list[ReconnectAction]:
        """The time is ``now``: give up when the time is over, or offer again when an offer is due."""
        if self._started_at is None:
            return []
        if now - self._started_at >= self._give_up_seconds:
            gave_up = GaveUp(round(now - self._started_at, 3), self.attempts)
            self._reset()
            return [gave_up]
        if self._next_offer_at is not None and now >= self._next_offer_at:
            return self._reoffer(now)
        return []

    def due_at(self) -> float | None:
        """When :meth:`tick` next has something to do (None: not reconnecting)."""
        if self._started_at is None:
            return None
        give_up_at = self._started_at + self._give_up_seconds
        return give_up_at if self._next_offer_at is None else min(self._next_offer_at, give_up_at)

    def attempt_connected(self, now: float) -> list[ReconnectAction]:
        """The latest offer's connection is up, its control channel yet to answer: the next
        offer waits a full :data:`RETRY_SECONDS` from now rather than cut that short."""
        if self._started_at is not None and self._next_offer_at is not None:
            self._next_offer_at = now + self._retry_seconds
        return []

    def restored(self, now: float) -> list[ReconnectAction]:
        """:class:`Liveness` has an answer again: the reconnecting is over, the schedule starts afresh next time."""
        if self._started_at is None:
            return []
        back = Reconnected(round(now - self._started_at, 3), self.attempts)
        self._reset()
        return [back]

    def stop(self) -> list[ReconnectAction]:
        """The other side left, or the session is over: reconnecting is not this plan's business any more."""
        self._reset()
        return []

    def _reoffer(self, now: float) -> list[ReconnectAction]:
        self.attempts += 1
        self._next_offer_at = now + self._retry_seconds
        return [Reoffer(self.attempts)]

    def _reset(self) -> None:
        self._started_at = self._next_offer_at = None
        self.attempts = 0


# --- both together ---------------------------------------------------------------------------


RecoveryAction = SendPing | SendPong | Interrupted | Reoffer | Restored | GaveUp
"""Everything :class:`Recovery` may ask its side to do."""


class Recovery:
    """One side's :class:`Liveness` and :class:`Reconnect`, run together as each side needs them.

    An interruption starts the reconnecting (the host's first :class:`Reoffer` comes with
    the :class:`Interrupted`), hearing the other side ends it (:class:`Restored` with the
    number of offers made), and giving up (:class:`GaveUp`) stops the watching until a new
    connection's channel opens. Events and ticks as for :class:`Liveness`; the side shows
    its :class:`RecoveryWords` for :class:`Interrupted`, :class:`Restored` and :class:`GaveUp`.
    """

    def __init__(
        self,
        *,
        offerer: bool,
        ping_seconds: float = PING_SECONDS,
        silence_seconds: float = SILENCE_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
        give_up_seconds: float = GIVE_UP_SECONDS,
    ) -> None:
        self.liveness = Liveness(ping_seconds=ping_seconds, silence_seconds=silence_seconds)
        self.reconnect = Reconnect(offerer=offerer, retry_seconds=retry_seconds, give_up_seconds=give_up_seconds)

    @property
    def reconnecting(self) -> bool:
        """Between an interruption and its outcome: the side shows "reconnecting"; no connect deadline applies."""
        return self.reconnect.reconnecting

    def opened(self, now: float) -> list[RecoveryAction]:
        """The control channel of a new peer connection is open (see :meth:`Liveness.opened`)."""
        return list(self.liveness.opened(now))

    def closed(self) -> list[RecoveryAction]:
        """The control channel is gone (see :meth:`Liveness.closed`)."""
        return list(self.liveness.closed())

    def stop(self) -> list[RecoveryAction]:
        """The other side left, or the session is over: no watching, no reconnecting, no outcome."""
        self.liveness.stop()
        self.reconnect.stop()
        return []

    def ping_received(self, seq: int) -> list[RecoveryAction]:
        """A ping on the current connection's control channel: answer it."""
        return list(self.liveness.ping_received(seq))

    def pong_received(self, seq: int, now: float) -> list[RecoveryAction]:
        """A pong on the current connection's control channel."""
        return self._follow(self.liveness.pong_received(seq, now), now)

    def attempt_connected(self, now: float) -> list[RecoveryAction]:
        """The latest offer's connection is up (see :meth:`Reconnect.attempt_connected`)."""
        self.reconnect.attempt_connected(now)
        return []

    def tick(self, now: float) -> list[RecoveryAction]:
        """The time is ``now``: pings, the interruption, the next offer or giving up, as due."""
        actions = self._follow(self.liveness.tick(now), now)
        for action in self.reconnect.tick(now):
            if isinstance(action, GaveUp):
                self.liveness.stop()
            if isinstance(action, Reoffer | GaveUp):
                actions.append(action)
        return actions

    def due_at(self) -> float | None:
        """When :meth:`tick` next has something to do (None: nothing until another event)."""
        return min((t for t in (self.liveness.due_at(), self.reconnect.due_at()) if t is not None), default=None)

    def _follow(self, actions: list[LivenessAction], now: float) -> list[RecoveryAction]:
        out: list[RecoveryAction] = []
        for action in actions:
            if isinstance(action, Interrupted):
                out.append(action)
                out += [a for a in self.reconnect.interrupted(now) if isinstance(a, Reoffer)]
            elif isinstance(action, Restored):
                back = [a for a in self.reconnect.restored(now) if isinstance(a, Reconnected)]
                out.append(Restored(action.silent_seconds, back[0].attempts if back else 0))
            else:
                out.append(action)
        return out


# --- words ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecoveryWords:
    """What one side's person reads while the media connection is interrupted, back, or lost."""

    reconnecting: str
    restored: str
    not_restored: str
    """Follows "The connection could not be restored: " (see :meth:`lost`)."""

    def lost(self, seconds: float) -> str:
        """The sentence for :class:`GaveUp` after ``seconds``."""
        return f"The connection could not be restored: nothing came through for {seconds:.0f} s. {self.not_restored}"


USER_WORDS = RecoveryWords(
    reconnecting="Reconnecting to the technician…",
    restored="The connection is back.",
    not_restored="Check that this computer is still connected to the network (Wi-Fi or cable).",
)
"""What the end user reads (the host's window and terminal)."""

TECHNICIAN_WORDS = RecoveryWords(
    reconnecting="Reconnecting to the user's computer…",
    restored="The connection is back.",
    not_restored="The user's network may be down, or a firewall now blocks the connection: "
                 "ask the user to check their network connection.",
)
"""What the technician reads (the Python console; the browser console has the same words)."""
