"""Two aiortc peers in this process and a video track with a budget: the rig of the pacer's tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, VideoStreamTrack

from peer.ice import rtc_configuration
from protocol.ice import IceConfig


@dataclass
class FixedBudget:
    """A :class:`~peer.pacer.PaceBudget` with a fixed target that records the drops it hears of."""

    bitrate: float = 1_000_000
    drops: list[float] = field(default_factory=list)

    def target_bitrate(self, now: float) -> float:
        return self.bitrate

    def frames_dropped(self, now: float) -> None:
        self.drops.append(now)


class NoiseTrack(VideoStreamTrack):
    """Random pictures, each as costly as a keyframe, with a ``budget`` as the screen track has."""

    def __init__(self, bitrate: float, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.budget = FixedBudget(bitrate)
        self._size = (height, width, 3)
        self._rng = np.random.default_rng(7)
        self.taken: list[float] = []
        """When the sender took each picture (``time.monotonic()``): as fast as the pacer lets it."""

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        self.taken.append(time.monotonic())
        pixels = self._rng.integers(0, 255, self._size, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


async def negotiated(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    """One offer/answer exchange between two peers (their media and channels already added)."""
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


async def connected_pair(track: MediaStreamTrack) -> tuple[RTCPeerConnection, RTCPeerConnection, list[MediaStreamTrack]]:
    """An offerer sending ``track`` to an answerer on 127.0.0.1, and the list the answerer's tracks land in."""
    config = rtc_configuration(IceConfig(loopback_only=True))
    offerer, answerer = RTCPeerConnection(config), RTCPeerConnection(config)
    received: list[MediaStreamTrack] = []
    answerer.on("track", received.append)
    offerer.addTrack(track)
    await negotiated(offerer, answerer)
    return offerer, answerer, received
