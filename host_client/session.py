"""A joined host: signalling with the broker and the screen stream to the technician.

The host is the WebRTC offerer. Each time a technician (re)connects, the host
builds a fresh peer connection with a new screen track and offers it; when the
technician leaves, the connection is closed and the host waits for the next one.
If the signalling socket drops, the host reconnects with backoff while media
keeps flowing peer to peer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import MediaStreamTrack, RTCPeerConnection

from protocol.api import JoinResponse
from protocol.ice import IceConfig
from protocol.signalling import (
    Answer,
    End,
    Error,
    IceCandidate,
    Offer,
    PeerJoined,
    PeerLeft,
    Role,
    SessionEnded,
    Welcome,
)
from rtc.ice import rtc_configuration
from rtc.signalling import SignallingChannel, SignallingRefused, candidate_from, description_from

from .capture import ScreenTrack

log = logging.getLogger(__name__)

RECONNECT_DELAYS = (0.5, 1, 2, 4, 8, 10)
RECONNECT_GIVE_UP_AFTER = 120.0


@dataclass(frozen=True)
class HostSummary:
    """How a session ended, for the one-line report at exit."""

    session_id: str
    ended_by: str
    reason: str
    duration: float
    frames_sent: int

    def line(self) -> str:
        minutes, seconds = divmod(int(self.duration), 60)
        hours, minutes = divmod(minutes, 60)
        why = f": {self.reason}" if self.reason else ""
        return (
            f"Session {self.session_id} ended by the {self.ended_by}{why} "
            f"after {hours}:{minutes:02d}:{seconds:02d}; {self.frames_sent} frames sent."
        )


class HostSession:
    """Runs one joined session until it ends."""

    def __init__(
        self,
        broker_url: str,
        joined: JoinResponse,
        *,
        track_factory: Callable[[], MediaStreamTrack] | None = None,
    ) -> None:
        self._broker_url = broker_url
        self._joined = joined
        self._track_factory = track_factory or ScreenTrack
        self._ice: IceConfig = joined.ice
        self._channel: SignallingChannel | None = None
        self._pc: RTCPeerConnection | None = None
        self._track: MediaStreamTrack | None = None
        self._frames_before = 0
        self._ended: tuple[str, str] | None = None
        self._end_reason: str | None = None
        self._started = time.monotonic()
        self.media_connected = asyncio.Event()

    @property
    def session_id(self) -> str:
        return self._joined.session_id

    async def run(self) -> HostSummary:
        """Serve the session until the technician, the user or the broker ends it."""
        try:
            await self._signalling_loop()
        finally:
            await self._close_peer()
            if self._channel is not None:
                await self._channel.close()
        ended_by, reason = self._ended or ("broker", "the broker could not be reached")
        return HostSummary(
            session_id=self.session_id,
            ended_by=ended_by,
            reason=reason,
            duration=time.monotonic() - self._started,
            frames_sent=self.frames_sent,
        )

    @property
    def frames_sent(self) -> int:
        current = getattr(self._track, "frames_sent", 0)
        return self._frames_before + current

    async def end(self, reason: str) -> None:
        """The user ends the session: tell the broker, which tells the technician.

        Safe to call at any moment, also before signalling is connected: the
        end is then sent as soon as it is.
        """
        if self._end_reason is not None or self._ended is not None:
            return
        self._end_reason = reason
        if self._channel is not None and not self._channel.closed:
            await self._send_end()

    async def _send_end(self) -> None:
        assert self._channel is not None and self._end_reason is not None
        try:
            await self._channel.send(End(reason=self._end_reason))
        except Exception:  # noqa: BLE001 - the broker is gone; we stop anyway
            pass
        self._ended = ("user", self._end_reason)
        await self._channel.close()

    async def _signalling_loop(self) -> None:
        lost_since: float | None = None
        attempt = 0
        while self._ended is None:
            try:
                self._channel = await SignallingChannel.open(
                    self._broker_url, self._joined.signalling_path, self._joined.host_token
                )
            except SignallingRefused as refused:
                if refused.status in (401, 403, 404, 410):
                    self._ended = ("broker", refused.message)
                    return
                log.warning("broker refused signalling: %s", refused)
            except OSError as exc:
                log.warning("cannot reach the broker: %s", exc)
            else:
                lost_since, attempt = None, 0
                if self._end_reason is not None:
                    await self._send_end()
                    return
                async for message in self._channel.messages():
                    await self._handle(message)
                    if self._ended is not None:
                        return
            if self._ended is not None:
                return
            if self._end_reason is not None:
                # The user wants out and the broker is unreachable: do not linger.
                self._ended = ("user", self._end_reason)
                return
            lost_since = lost_since or time.monotonic()
            if time.monotonic() - lost_since > RECONNECT_GIVE_UP_AFTER:
                self._ended = ("broker", "lost the connection to the broker")
                return
            delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
            attempt += 1
            log.info("signalling lost; reconnecting in %.1f s", delay)
            await asyncio.sleep(delay)

    async def _handle(self, message: object) -> None:
        if isinstance(message, Welcome):
            self._ice = message.ice
            if message.peer is not None and message.peer.role is Role.technician and self._pc is None:
                await self._offer()
        elif isinstance(message, PeerJoined):
            if message.peer.role is Role.technician:
                await self._offer()
        elif isinstance(message, PeerLeft):
            log.info("the technician left; waiting for them to come back")
            await self._close_peer()
        elif isinstance(message, Answer):
            if self._pc is not None and self._pc.signalingState == "have-local-offer":
                await self._pc.setRemoteDescription(description_from(message))
        elif isinstance(message, IceCandidate):
            candidate = candidate_from(message)
            if self._pc is not None and candidate is not None:
                await self._pc.addIceCandidate(candidate)
        elif isinstance(message, SessionEnded):
            self._ended = (
                {"technician": "technician", "host": "user"}.get(message.ended_by, message.ended_by),
                message.reason,
            )
        elif isinstance(message, Error):
            log.warning("the broker reported a problem: %s (%s)", message.message, message.code.value)
        elif isinstance(message, Offer):
            log.warning("ignoring an offer: the host is the offering side")

    async def _offer(self) -> None:
        await self._close_peer()
        assert self._channel is not None
        pc = RTCPeerConnection(rtc_configuration(self._ice))
        self._pc = pc
        self._track = self._track_factory()
        pc.addTransceiver(self._track, direction="sendonly")

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            log.info("media connection: %s", pc.connectionState)
            if pc.connectionState == "connected":
                self.media_connected.set()

        await pc.setLocalDescription(await pc.createOffer())
        await self._channel.send(Offer(sdp=pc.localDescription.sdp))

    async def _close_peer(self) -> None:
        if self._track is not None:
            self._frames_before += getattr(self._track, "frames_sent", 0)
            self._track.stop()
            self._track = None
        if self._pc is not None:
            pc, self._pc = self._pc, None
            await pc.close()
        self.media_connected.clear()
