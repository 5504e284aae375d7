"""The client end of the signalling WebSocket, and SDP/ICE conversions for aiortc."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import websockets
from aiortc import RTCIceCandidate, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp
from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection

from protocol.signalling import (
    Answer,
    IceCandidate,
    Offer,
    SignalError,
    encode,
    parse_broker_message,
)

from .broker_errors import BrokerRefusal, refusal_from
from .keepalive import QuietPeerConnection
from .transport import websocket_tls

log = logging.getLogger(__name__)


PING_SECONDS = 45.0
"""A peer pings the broker after this long without a frame from it (:mod:`peer.keepalive`).

Longer than the broker's own ping interval (``DESKHAND_WS_PING_SECONDS``, 30 s), so a peer of a
broker that pings never pings back on a timer of its own; a broker gone silent is noticed
within ``PING_SECONDS + PING_TIMEOUT_SECONDS``."""
PING_TIMEOUT_SECONDS = 20.0
"""How long a peer waits for the answer to its ping before it takes the connection for dead."""

RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 10.0)
"""Seconds between attempts to reach the broker again after signalling dropped."""
RECONNECT_GIVE_UP_AFTER = 120.0
"""A peer that cannot reach the broker for this long considers the session over."""


class ReconnectSchedule:
    """When a peer whose signalling dropped tries the broker again, and when it gives up.

    Media and data channels go on peer to peer while signalling is down (a
    broker restart), so both peers keep trying for a while instead of ending.
    """

    def __init__(self, delays: tuple[float, ...] = RECONNECT_DELAYS, give_up_after: float = RECONNECT_GIVE_UP_AFTER) -> None:
        self._delays = delays
        self._give_up_after = give_up_after
        self._lost_since: float | None = None
        self._attempt = 0

    def connected(self) -> None:
        """Signalling is up again: the next loss starts a fresh schedule."""
        self._lost_since, self._attempt = None, 0

    def next_delay(self, now: float) -> float | None:
        """Seconds to wait before the next attempt, or None when it is time to give up."""
        if self._lost_since is None:
            self._lost_since = now
        if now - self._lost_since > self._give_up_after:
            return None
        delay = self._delays[min(self._attempt, len(self._delays) - 1)]
        self._attempt += 1
        return delay


class SignallingRefused(BrokerRefusal):
    """The broker refused the WebSocket; ``status`` and ``message`` say why."""


def websocket_url(broker_url: str, path: str) -> str:
    """``http(s)://host[:port][/prefix]`` plus ``path`` as a ``ws(s)://`` URL."""
    parts = urlsplit(broker_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"broker URL must start with http:// or https://, not {broker_url!r}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + path, "", ""))


class SignallingChannel:
    """One authenticated signalling connection to the broker."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    @classmethod
    async def open(cls, broker_url: str, path: str, token: str) -> SignallingChannel:
        """Connect and authenticate; raises :class:`SignallingRefused` with the broker's reason, or
        an :class:`OSError` when the broker cannot be reached (try again later)."""
        try:
            url = websocket_url(broker_url, path)
            connection = await websockets.connect(
                url,
                ssl=websocket_tls(url),
                additional_headers={"Authorization": f"Bearer {token}"},
                max_size=1024 * 1024,
                open_timeout=15,
                create_connection=QuietPeerConnection,
                ping_interval=PING_SECONDS,
                ping_timeout=PING_TIMEOUT_SECONDS,
            )
        except websockets.InvalidStatus as exc:
            response = exc.response
            raise refusal_from(SignallingRefused, response.status_code, response.body,
                               response.headers.get("Retry-After")) from None
        except (websockets.InvalidHandshake, websockets.ConnectionClosed, EOFError) as exc:
            # The broker died half-way through the handshake (no answer, a cut connection): as
            # unreachable as a refused connection, not a refusal, so callers reconnect.
            raise ConnectionError(f"the signalling handshake broke off: {exc}") from None
        return cls(connection)

    async def send(self, message: BaseModel) -> None:
        await self._connection.send(encode(message))

    async def messages(self) -> AsyncIterator[BaseModel]:
        """Validated messages from the broker until the connection closes.

        A frame that does not validate is logged and skipped: a newer broker may
        send messages this client does not know.
        """
        try:
            async for frame in self._connection:
                try:
                    yield parse_broker_message(frame)
                except SignalError as exc:
                    log.warning("ignoring a signalling message this client cannot read: %s", exc.message)
        except websockets.ConnectionClosedError as exc:
            log.info("signalling connection lost: %s", exc)

    async def close(self) -> None:
        await self._connection.close()

    def abort(self) -> None:
        """Drop the connection at once, without the closing handshake (a broken path would hold
        that up for its timeout): :func:`keep_signalling` sees it drop and connects again."""
        self._connection.transport.abort()

    @property
    def closed(self) -> bool:
        return self._connection.close_code is not None


ENDING_REFUSALS = frozenset({401, 403, 404, 410})
"""Statuses with which the broker says the session is over for this peer (no point reconnecting)."""


@dataclass(frozen=True)
class SignallingOver:
    """Why :func:`keep_signalling` stopped for good."""

    reason: str
    """For people: the broker's refusal, or that it could not be reached for too long."""
    refused: bool
    """The broker refused this peer (the session is over for it); False when it was out of reach."""


class SignallingPeer(Protocol):
    """What a peer gives :func:`keep_signalling`: how to connect, and what to do at each turn."""

    def over(self) -> bool:
        """The session is over for this peer: stop (checked before connecting and after every message)."""

    async def open(self) -> SignallingChannel:
        """Connect (raises :class:`SignallingRefused` or :class:`OSError` as :meth:`SignallingChannel.open`)."""

    async def connected(self, channel: SignallingChannel) -> None:
        """Signalling is up (again): say what the broker must hear from this peer first."""

    async def handle(self, message: BaseModel) -> None:
        """One message from the broker."""

    def dropped(self) -> bool:
        """Signalling is down (it dropped, or could not be opened); True to stop instead of trying again."""


async def keep_signalling(
    peer: SignallingPeer, channel: SignallingChannel | None = None, schedule: ReconnectSchedule | None = None,
) -> SignallingOver | None:
    """Both peers' signalling: connect (unless ``channel`` is already open), hand every message to
    ``peer.handle``, and reconnect on the :class:`ReconnectSchedule` when the connection drops.

    Media and data channels go on peer to peer meanwhile. A message whose handling fails is
    logged and the next one handled: one bad turn does not end the session. Returns None when
    the peer says it is over, else why signalling is over.
    """
    schedule = schedule or ReconnectSchedule()
    while not peer.over():
        if channel is None:
            try:
                channel = await peer.open()
            except SignallingRefused as refused:
                if refused.status in ENDING_REFUSALS:
                    return SignallingOver(refused.message, refused=True)
                log.warning("broker refused signalling: %s", refused)
            except OSError as exc:
                log.warning("cannot reach the broker: %s", exc)
        if channel is not None:
            schedule.connected()
            await peer.connected(channel)
            async for message in channel.messages():
                try:
                    await peer.handle(message)
                except Exception:
                    log.exception("handling a %s from the broker failed", type(message).__name__)
                if peer.over():
                    return None
            channel = None
        if peer.over() or peer.dropped():
            return None
        delay = schedule.next_delay(time.monotonic())
        if delay is None:
            return SignallingOver("lost the connection to the broker", refused=False)
        log.info("signalling lost; reconnecting in %.1f s", delay)
        await asyncio.sleep(delay)
    return None


def description_from(message: Offer | Answer) -> RTCSessionDescription:
    return RTCSessionDescription(sdp=message.sdp, type=message.type)


async def apply_remote_description(pc: RTCPeerConnection, message: Offer | Answer) -> str | None:
    """Apply the other side's offer or answer; what was wrong with it (logged), or None.

    aiortc's SDP parser asserts, raises ``ValueError``, ``KeyError``... on a malformed
    description; whatever it raises ends this attempt (the caller closes ``pc``), never
    the session.
    """
    if "\nm=" not in "\n" + message.sdp.replace("\r\n", "\n"):
        # aiortc takes a description without media as valid, and the attempt would then wait for nothing.
        log.warning("refused the other side's %s: it has no media section", message.type)
        return f"its {message.type} is malformed: it has no media section"
    try:
        await pc.setRemoteDescription(description_from(message))
    except Exception as exc:  # noqa: BLE001 - any parser failure: refuse this description, keep the session
        problem = f"its {message.type} is malformed" + (f": {exc}" if str(exc) else "")
        log.warning("refused the other side's %s (%s): %s", message.type, type(exc).__name__, problem)
        return problem[:300]
    return None


async def apply_remote_candidate(pc: RTCPeerConnection, message: IceCandidate) -> None:
    """Hand a trickled candidate, or end-of-candidates (so ICE can tell failure), to ``pc``;
    one it cannot use is logged and dropped."""
    try:
        await pc.addIceCandidate(candidate_from(message))
    except Exception as exc:  # noqa: BLE001 - the broker checks the grammar; whatever still fails is one candidate
        log.warning("ignoring an ICE candidate from the other side: %s: %s", type(exc).__name__, exc)


def candidate_from(message: IceCandidate) -> RTCIceCandidate | None:
    """An aiortc candidate from a trickled one; None for end-of-candidates."""
    text = (message.candidate or "").strip()
    if not text:
        return None
    if text.startswith("candidate:"):
        text = text[len("candidate:") :]
    candidate = candidate_from_sdp(text)
    candidate.sdpMid = message.sdp_mid
    candidate.sdpMLineIndex = message.sdp_mline_index
    return candidate
