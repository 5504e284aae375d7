"""A chosen video packet lost at the technician's aiortc receiver, with every retransmission of it.

Random loss comes from the link emulator (:mod:`tests.support.link_emulator`); this loses
exactly the packet a test needs lost, in the console's own process, by wrapping aiortc's
``RTCRtpReceiver._handle_rtp_packet`` (RTX arrives there still wrapped, on its own SSRC,
its first two payload bytes the original sequence number).
"""

from __future__ import annotations

import time

import pytest
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

H264_STAP_A = 24
H264_SPS = 7


def begins_h264_keyframe(packet: RtpPacket) -> bool:
    """The first packet of a keyframe of Deskhand's H.264 sender: a STAP-A whose first unit is the SPS."""
    payload = packet.payload
    return len(payload) > 3 and payload[0] & 0x1F == H264_STAP_A and payload[3] & 0x1F == H264_SPS


class KeyframeLoss:
    """Once :attr:`armed`, the second packet of the next keyframe of two packets or more is lost, and
    so is every retransmission of it; records when keyframes begin to arrive. (A plain screen's
    keyframe may be one packet in H.264 main: the packet after it is then the next frame's.)"""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.armed = False
        self.media_ssrc: int | None = None
        """The video's SSRC, once a keyframe came."""
        self.lost_seq: int | None = None
        self.lost_at: float | None = None
        """time.monotonic() when the packet was lost."""
        self.keyframes_at: list[float] = []
        """time.monotonic() of each keyframe's first packet."""
        self.retransmissions_lost = 0
        self._keyframe_packets = 0
        self._keyframe_timestamp: int | None = None
        receive = RTCRtpReceiver._handle_rtp_packet

        async def lossy(receiver: RTCRtpReceiver, packet: RtpPacket, arrival_time_ms: int) -> None:
            if self._drops(packet):
                return
            await receive(receiver, packet, arrival_time_ms)

        monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", lossy)

    def _drops(self, packet: RtpPacket) -> bool:
        if self.media_ssrc is not None and packet.ssrc != self.media_ssrc:
            is_lost_one = self.lost_seq is not None and packet.payload[:2] == self.lost_seq.to_bytes(2, "big")
            self.retransmissions_lost += is_lost_one
            return is_lost_one
        if begins_h264_keyframe(packet):
            self.keyframes_at.append(time.monotonic())
            self.media_ssrc = packet.ssrc
            self._keyframe_packets = 1 if self.armed else 0
            self._keyframe_timestamp = packet.timestamp
        elif self._keyframe_packets and packet.timestamp != self._keyframe_timestamp:
            self._keyframe_packets = 0  # the keyframe was one packet: the next one that is larger loses it
        elif self._keyframe_packets:
            self._keyframe_packets += 1
            if self._keyframe_packets == 2:
                self.armed = False
                self._keyframe_packets = 0
                self.lost_seq, self.lost_at = packet.sequence_number, time.monotonic()
                return True
        return False


def record_keyframe_requests(receiver: RTCRtpReceiver) -> list[float]:
    """From now on, the time.monotonic() of each PLI ``receiver`` sends (the list fills as they go)."""
    send_pli = receiver._send_rtcp_pli
    sent: list[float] = []

    async def recorded(media_ssrc: int) -> None:
        sent.append(time.monotonic())
        await send_pli(media_ssrc)

    receiver._send_rtcp_pli = recorded  # type: ignore[method-assign]
    return sent
