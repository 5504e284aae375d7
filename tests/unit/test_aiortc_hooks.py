"""The aiortc/aioice internals that peer.aiortc_hooks relies on still exist and behave.

Run these first when moving aiortc's pinned range: each hook names what it replaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import inspect
import itertools
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aioice.ice
import aioice.turn
import aiortc.codecs
import aiortc.rtcicetransport
import aiortc.rtcpeerconnection
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import aiortc.rtcsctptransport
import aiortc.sdp
import pytest
from aioice import stun
from aioice.candidate import candidate_priority
from aiortc import RTCBundlePolicy, RTCCertificate, RTCIceServer, RTCPeerConnection, VideoStreamTrack
from aiortc.codecs import get_capabilities
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters, RTCRtpSendParameters
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import (
    RTCP_RTPFB_NACK,
    HeaderExtensionsMap,
    RtcpByePacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtpPacket,
    is_rtcp,
)

from peer import aiortc_hooks
from peer.ice import rtc_configuration
from peer.pacer import DEFAULT_ROUND_TRIP, PACE_FACTOR, PaceBudget
from peer.rtp_bytes import ABS_SEND_TIME_URI
from peer.screen_encoder import ScreenH264Encoder, screen_codec_preferences
from peer.stream_budget import StreamBudget
from peer.turn_routes import parse_turn_url
from protocol.ice import IceConfig, IceServer
from protocol.route import Route
from tests.support.paced_video import FixedBudget, NoiseTrack, connected_pair
from tests.support.tls import CertificateFiles, self_signed_certificate

HOOK_SWITCHES = (
    aiortc_hooks.gather_loopback_only, aiortc_hooks.use_screen_encoder, aiortc_hooks.forward_keyframe_requests,
    aiortc_hooks.report_receiver_losses, aiortc_hooks.pace_video_senders, aiortc_hooks.complete_frames_on_marker,
    aiortc_hooks.recover_losses_on_a_timer, aiortc_hooks.use_every_turn_url, aiortc_hooks.prompt_triggered_checks,
    aiortc_hooks.pipeline_turn_permissions, aiortc_hooks.quick_sctp_retransmits, aiortc_hooks.offer_h264_main,
    aiortc_hooks.quick_dtls_resends, aiortc_hooks.quick_stun_retransmits, aiortc_hooks.copy_stun_messages,
)
"""Every hook's switch: each test starts and ends with all of them off."""


@pytest.fixture(autouse=True)
def _every_hook_off() -> Iterator[None]:
    """All hooks off before each test, and after it: another module in this worker (a console, a
    session's ICE set-up) may have left some on, and a hooked method's source is the hook's, not
    aiortc's (a run failed when aioice's send_data read as the pipelining hook)."""
    for switch in HOOK_SWITCHES:
        switch(False)
    yield
    for switch in HOOK_SWITCHES:
        switch(False)


def test_aioice_still_gathers_through_a_module_level_address_lister() -> None:
    assert callable(aioice.ice.get_host_addresses)
    assert list(inspect.signature(aioice.ice.get_host_addresses).parameters) == ["use_ipv4", "use_ipv6"]
    source = inspect.getsource(aioice.ice.Connection.gather_candidates)
    assert "get_host_addresses(" in source


def test_loopback_only_gathers_exactly_127_0_0_1() -> None:
    async def gather() -> list[str]:
        connection = aioice.ice.Connection(ice_controlling=True, components=1)
        try:
            await connection.gather_candidates()
            return [c.host for c in connection.local_candidates]
        finally:
            await connection.close()

    aiortc_hooks.gather_loopback_only(True)
    assert aiortc_hooks.loopback_only_active()
    assert asyncio.run(gather()) == ["127.0.0.1"]
    aiortc_hooks.gather_loopback_only(False)
    assert not aiortc_hooks.loopback_only_active()
    assert "127.0.0.1" not in asyncio.run(gather())


def test_rtc_configuration_passes_servers_and_applies_loopback() -> None:
    config = rtc_configuration(
        IceConfig(
            servers=[IceServer(urls=["turn:turn.example.org"], username="u", credential="p")],
            loopback_only=True,
        )
    )
    assert [s.urls for s in config.iceServers] == [["turn:turn.example.org"]]
    assert config.bundlePolicy == RTCBundlePolicy.MAX_BUNDLE  # one ICE agent: half the TURN allocations
    assert config.iceServers[0].username == "u"
    assert aiortc_hooks.loopback_only_active()


def test_empty_server_list_stays_empty_so_no_public_stun_is_contacted() -> None:
    assert rtc_configuration(IceConfig()).iceServers == []


# --- the screen encoder, keyframe forwarding and marker-bit jitter buffer ---------------------

H264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=99)
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)


def test_the_sender_still_builds_its_encoder_through_a_module_level_get_encoder() -> None:
    source = inspect.getsource(aiortc.rtcrtpsender.RTCRtpSender._next_encoded_frame)
    assert "get_encoder(codec)" in source
    assert "force_keyframe" in source
    assert list(inspect.signature(aiortc.rtcrtpsender.get_encoder).parameters) == ["codec"]
    rtcp = inspect.getsource(aiortc.rtcrtpsender.RTCRtpSender._handle_rtcp_packet)
    assert "self._send_keyframe()" in rtcp, "PLI/FIR must still go through _send_keyframe"
    assert ".target_bitrate = bitrate" in rtcp, "REMB must still reach the encoder's target_bitrate"


def test_aiortc_h264_encoder_still_has_the_pieces_the_screen_encoder_inherits() -> None:
    assert "self._encode_frame(frame, force_keyframe)" in inspect.getsource(H264Encoder.encode)
    assert callable(H264Encoder._split_bitstream) and callable(H264Encoder._packetize)


def test_screen_encoder_hook_picks_the_screen_encoder_for_h264_only() -> None:
    aiortc_hooks.use_screen_encoder(True)
    assert aiortc_hooks.screen_encoder_active()
    assert isinstance(aiortc.rtcrtpsender.get_encoder(H264), ScreenH264Encoder)
    vp8 = aiortc.rtcrtpsender.get_encoder(VP8)
    assert isinstance(vp8, Vp8Encoder) and not isinstance(vp8, H264Encoder)
    aiortc_hooks.use_screen_encoder(False)
    assert not aiortc_hooks.screen_encoder_active()
    assert type(aiortc.rtcrtpsender.get_encoder(H264)) is H264Encoder


def test_keyframe_requests_reach_the_track_and_still_set_aiortcs_flag() -> None:
    class Track:
        asked = 0

        def keyframe_requested(self) -> None:
            self.asked += 1

    class Sender:  # what _send_keyframe touches on a real RTCRtpSender
        track = Track()

    sender = Sender()
    aiortc_hooks.forward_keyframe_requests(True)
    assert aiortc_hooks.keyframe_requests_forwarded()
    aiortc.rtcrtpsender.RTCRtpSender._send_keyframe(sender)
    assert sender.track.asked == 1
    assert sender._RTCRtpSender__force_keyframe is True  # type: ignore[attr-defined]  # aiortc sets it on the stand-in
    aiortc_hooks.forward_keyframe_requests(False)
    aiortc.rtcrtpsender.RTCRtpSender._send_keyframe(sender)
    assert sender.track.asked == 1
    sender.track = None  # a track without the method (or none): only aiortc's flag
    aiortc_hooks.forward_keyframe_requests(True)
    aiortc.rtcrtpsender.RTCRtpSender._send_keyframe(sender)


# --- receiver reports of loss reach the screen encoder -----------------------------------------


def _report(ssrc: int, fraction_lost: int) -> RtcpRrPacket:
    return RtcpRrPacket(ssrc=4321, reports=[RtcpReceiverInfo(
        ssrc=ssrc, fraction_lost=fraction_lost, packets_lost=64, highest_sequence=1000, jitter=0, lsr=0, dlsr=0)])


@pytest.mark.parametrize("reported", [True, False])
def test_a_receiver_reports_loss_reaches_the_screen_encoder_and_aiortcs_stats(reported: bool) -> None:
    async def run() -> tuple[list[tuple[float, int | None]], Any]:
        aiortc_hooks.report_receiver_losses(reported)
        assert aiortc_hooks.receiver_losses_reported() is reported
        transport = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()])
        sender = RTCRtpSender(VideoStreamTrack(), transport)
        encoder = ScreenH264Encoder()
        heard: list[tuple[float, int | None]] = []

        def listen(fraction: float, packets_lost: int | None = None) -> None:
            heard.append((fraction, packets_lost))

        encoder.receiver_loss = listen  # type: ignore[method-assign]  # listen instead of queueing
        sender._RTCRtpSender__encoder = encoder  # type: ignore[attr-defined]  # aiortc sets it on the first frame
        await sender._handle_rtcp_packet(_report(sender._ssrc, 128))
        await sender._handle_rtcp_packet(_report(sender._ssrc + 1, 255))  # another stream's report
        sender._RTCRtpSender__encoder = Vp8Encoder()  # type: ignore[attr-defined]  # aiortc's encoders have no ear for it
        await sender._handle_rtcp_packet(_report(sender._ssrc, 255))
        return heard, await sender.getStats()

    heard, stats = asyncio.run(run())
    assert heard == ([(0.5, 64)] if reported else [])
    remote = [s for s in stats.values() if s.type == "remote-inbound-rtp"]
    assert remote and remote[0].fractionLost == 255, "aiortc still reads every report"


def test_the_packets_a_nack_names_reach_the_screen_encoder_and_are_still_retransmitted() -> None:
    async def run() -> tuple[list[list[int]], list[int]]:
        aiortc_hooks.report_receiver_losses(True)
        transport = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()])
        sender = RTCRtpSender(VideoStreamTrack(), transport)
        encoder = ScreenH264Encoder()
        heard: list[list[int]] = []
        encoder.packets_nacked = heard.append  # type: ignore[method-assign]  # listen instead of counting
        retransmitted: list[int] = []

        async def retransmit(seq: int) -> None:
            retransmitted.append(seq)

        sender._retransmit = retransmit  # type: ignore[method-assign]  # aiortc's answer to a NACK, watched
        sender._RTCRtpSender__encoder = encoder  # type: ignore[attr-defined]  # aiortc sets it on the first frame
        await sender._handle_rtcp_packet(RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=4321, media_ssrc=sender._ssrc, lost=[7, 9]))
        other = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=4321, media_ssrc=sender._ssrc + 1, lost=[8])
        await sender._handle_rtcp_packet(other)  # another stream's
        return heard, retransmitted

    heard, retransmitted = asyncio.run(run())
    assert heard == [[7, 9]]
    assert retransmitted == [7, 9, 8], "aiortc answers every NACK as before"


def test_aiortc_still_reads_receiver_reports_in_its_rtcp_handler() -> None:
    source = inspect.getsource(aiortc.rtcrtpsender.RTCRtpSender._handle_rtcp_packet)
    assert "isinstance(packet, (RtcpRrPacket, RtcpSrPacket))" in source and "fractionLost=report.fraction_lost" in source
    assert "self.__encoder" in inspect.getsource(aiortc.rtcrtpsender.RTCRtpSender._next_encoded_frame)


# --- video senders paced ----------------------------------------------------------------------


def test_the_sender_still_sends_every_packet_through_its_transports_send_rtp() -> None:
    sender = aiortc.rtcrtpsender.RTCRtpSender
    assert "await self.transport._send_rtp(packet_bytes)" in inspect.getsource(sender._run_rtp)
    assert "await self.transport._send_rtp(packet_bytes)" in inspect.getsource(sender._retransmit)
    assert "wrap_rtx(" in inspect.getsource(sender._retransmit) and "ssrc=self._rtx_ssrc" in inspect.getsource(sender._retransmit)
    assert "await self.transport._send_rtp(payload)" in inspect.getsource(sender._send_rtcp)
    assert "abs_send_time" in inspect.getsource(sender._run_rtp)
    # Its transport is set by a public method, and registration and stop go through it.
    assert "self.__transport = transport" in inspect.getsource(sender.setTransport)
    assert "self.__transport._register_rtp_sender(self, parameters)" in inspect.getsource(sender.send)
    assert "self.__transport._unregister_rtp_sender(self)" in inspect.getsource(sender.stop)
    assert list(inspect.signature(sender.send).parameters) == ["self", "parameters"]
    # The history is read as a module global at call time, by the sender and the receiver's NACK generator.
    assert "% RTP_HISTORY_SIZE" in inspect.getsource(sender._run_rtp)
    assert "% RTP_HISTORY_SIZE" in inspect.getsource(sender._retransmit)
    assert "RTP_HISTORY_SIZE" in inspect.getsource(aiortc.rtcrtpreceiver.NackGenerator.truncate)
    assert aiortc.rtcrtpsender.RTP_HISTORY_SIZE == 128 == aiortc.rtcrtpreceiver.RTP_HISTORY_SIZE  # type: ignore[attr-defined]
    # The round trip the pacer's retransmission window follows: aiortc's own, from receiver reports.
    rtcp = inspect.getsource(sender._handle_rtcp_packet)
    assert "self.__rtt = rtt" in rtcp and "self.__rtt = RTT_ALPHA * self.__rtt" in rtcp
    # Retransmissions are sent from the DTLS receive loop: they must never be awaited behind video.
    assert "await self._retransmit(seq)" in inspect.getsource(sender._handle_rtcp_packet)
    # Data channels do not pass through _send_rtp.
    assert "_send_rtp" not in inspect.getsource(RTCDtlsTransport._send_data)
    assert "is_rtcp(data)" in inspect.getsource(RTCDtlsTransport._send_rtp)


def test_the_pacing_hook_switches_the_send_and_the_history() -> None:
    aiortc_hooks.pace_video_senders(True)
    assert aiortc_hooks.video_senders_paced()
    assert aiortc.rtcrtpsender.RTP_HISTORY_SIZE == aiortc_hooks.PACED_RTP_HISTORY_SIZE  # type: ignore[attr-defined]
    assert aiortc.rtcrtpreceiver.RTP_HISTORY_SIZE == aiortc_hooks.PACED_RTP_HISTORY_SIZE  # type: ignore[attr-defined]
    aiortc_hooks.pace_video_senders(False)
    assert not aiortc_hooks.video_senders_paced()
    assert aiortc.rtcrtpsender.RTP_HISTORY_SIZE == 128 == aiortc.rtcrtpreceiver.RTP_HISTORY_SIZE  # type: ignore[attr-defined]


def test_a_paced_video_sender_delivers_at_its_budgets_pace_and_its_pacer_ends_with_it() -> None:
    async def run() -> tuple[float | None, float, int, aiortc_hooks.PacedLink]:
        aiortc_hooks.pace_video_senders(True)
        offerer, answerer, received = await connected_pair(NoiseTrack(bitrate=250_000))
        sender = offerer.getSenders()[0]
        try:
            for _ in range(100):
                if received:
                    break
                await asyncio.sleep(0.05)
            await asyncio.wait_for(received[0].recv(), 10)
            view = sender.transport  # set when the sender starts, once connected
            assert isinstance(view, aiortc_hooks.PacedTransport)
            real = view._real
            assert aiortc_hooks._paced_links[real] is view.link
            assert aiortc_hooks.pacer_stats(answerer.getSenders()[0]) is None  # no video sent that way
            started, sent_before = time.monotonic(), real._RTCDtlsTransport__tx_bytes
            frames = 0
            while time.monotonic() - started < 3.0:
                await asyncio.wait_for(received[0].recv(), 5)
                frames += 1
            sent_rate = (real._RTCDtlsTransport__tx_bytes - sent_before) * 8 / (time.monotonic() - started)
            stats = aiortc_hooks.pacer_stats(sender)
            assert stats is not None and stats.packets_sent > 0
            assert sender._RTCRtpSender__rtt is not None  # type: ignore[attr-defined]  # receiver reports came
            assert aiortc_hooks.MIN_RETRANSMIT_WINDOW <= view.link.pacer.round_trip < DEFAULT_ROUND_TRIP  # loopback's, measured
            assert any(s.type == "outbound-rtp" for s in (await sender.getStats()).values())  # stats through the view
            return stats.pace_bps, sent_rate, frames, view.link
        finally:
            await offerer.close()
            await answerer.close()

    pace, sent_rate, frames, link = asyncio.run(run())
    assert pace == PACE_FACTOR * 250_000
    assert sent_rate < pace * 1.2  # aiortc's VP8 aims at 500 kbit/s and more at first: held to the pace
    assert frames >= 3
    assert not aiortc_hooks._paced_links and link._task is not None and link._task.done()


class StuckTransport:
    """A DTLS transport whose RTP sends never complete (a stuck link); RTCP goes at once."""

    _stats_id = "transport-stuck"

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.unregistered: list[object] = []

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append(data)
        if not is_rtcp(data):
            await asyncio.Event().wait()

    def _unregister_rtp_sender(self, sender: object) -> None:
        self.unregistered.append(sender)


class StandInSender:
    """What the paced view reads of an RTCRtpSender."""

    _ssrc = 1111
    _rtx_ssrc = 2222
    kind = "video"

    def __init__(self) -> None:
        self.track = SimpleNamespace(budget=FixedBudget(1_000_000))
        self.keyframes = 0

    def _send_keyframe(self) -> None:
        self.keyframes += 1


ABS_SEND_TIME_ID = 3


def rtp(seq: int, *, ssrc: int = StandInSender._ssrc, payload: bytes = bytes(1200), marker: bool = False) -> bytes:
    extensions = HeaderExtensionsMap()
    extensions.configure(RTCRtpSendParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=ABS_SEND_TIME_ID, uri=ABS_SEND_TIME_URI)]))
    p = RtpPacket(payload_type=102, sequence_number=seq, timestamp=seq // 10, ssrc=ssrc, marker=int(marker))
    p.payload = payload
    p.extensions.abs_send_time = 0
    return p.serialize(extensions)


def test_rtcp_passes_retransmissions_never_wait_and_media_waits_only_while_backlogged() -> None:
    async def run() -> None:
        transport, sender = StuckTransport(), StandInSender()
        link = aiortc_hooks.PacedLink(transport)  # type: ignore[arg-type]  # the stand-in
        link.add(sender, ABS_SEND_TIME_ID)  # type: ignore[arg-type]
        view = aiortc_hooks.PacedTransport(transport, link, sender, "H264")  # type: ignore[arg-type]
        assert view._stats_id == "transport-stuck"  # the rest is the real transport's
        bye = bytes(RtcpByePacket(sources=[sender._ssrc]))
        await asyncio.wait_for(view._send_rtp(bye), 0.5)
        assert transport.sent == [bye]
        await asyncio.wait_for(view._send_rtp(rtp(0)), 0.5)  # the first packet: no backlog yet
        await asyncio.sleep(0.05)
        assert len(transport.sent) == 2  # ... and it left, stamped as it left
        stamped = RtpPacket.parse(transport.sent[1], HeaderExtensionsMap())
        assert stamped.sequence_number == 0
        assert transport.sent[1] != rtp(0)
        for seq in range(1, 100):  # the encoder sends on until its queue is backlogged, then waits
            waiting = asyncio.ensure_future(view._send_rtp(rtp(seq)))
            await asyncio.sleep(0.01)
            if not waiting.done():
                break
        assert 3 < seq < 20  # about BACKLOG_SECONDS of 1.5 Mbit/s
        await asyncio.sleep(0.2)
        assert not waiting.done()  # the link is stuck: the encoder waits on
        original = 0
        retransmission = rtp(7, ssrc=sender._rtx_ssrc, payload=original.to_bytes(2, "big") + bytes(1200))
        await asyncio.wait_for(view._send_rtp(retransmission), 0.1)  # queued, never awaited
        await asyncio.wait_for(view._send_rtp(rtp(0)), 0.1)  # an old number again: a resend without RTX
        assert link.pacer.stats(time.monotonic()).retransmissions_refused == 1  # the same packet twice
        view._unregister_rtp_sender(sender)  # type: ignore[arg-type]
        await asyncio.wait_for(waiting, 0.5)  # the sender stopped: nothing waits any more
        assert transport.unregistered == [sender]
        assert link.pacer.senders == []
        await asyncio.sleep(0)
        assert link._task is not None and link._task.done()

    asyncio.run(run())


def test_a_failed_link_ends_the_media_loop_like_the_real_transport() -> None:
    class ClosedTransport(StuckTransport):
        async def _send_rtp(self, data: bytes) -> None:
            raise ConnectionError("Cannot send encrypted RTP, not connected")

    async def run() -> None:
        transport, sender = ClosedTransport(), StandInSender()
        link = aiortc_hooks.PacedLink(transport)  # type: ignore[arg-type]
        link.add(sender, None)  # type: ignore[arg-type]
        view = aiortc_hooks.PacedTransport(transport, link, sender, "H264")  # type: ignore[arg-type]
        await view._send_rtp(rtp(0))
        await asyncio.sleep(0.05)
        with pytest.raises(ConnectionError):
            await view._send_rtp(rtp(1))
        await view._send_rtp(rtp(9, ssrc=sender._rtx_ssrc, payload=b"\x00\x00"))  # a retransmission: dropped quietly
        link.remove(sender)  # type: ignore[arg-type]

    asyncio.run(run())


def test_the_screen_budget_is_a_pace_budget() -> None:
    budget = StreamBudget()
    assert isinstance(budget, PaceBudget)
    assert budget.target_bitrate(0.0) == 1_000_000


def test_the_receiver_still_creates_its_video_jitter_buffer_through_the_module_name() -> None:
    source = inspect.getsource(aiortc.rtcrtpreceiver.RTCRtpReceiver.__init__)
    assert "JitterBuffer(capacity=" in source and "is_video=True" in source
    for name in ("_remove_frame", "remove", "capacity", "add"):
        assert hasattr(JitterBuffer, name)
    assert list(inspect.signature(JitterBuffer.__init__).parameters) == ["self", "capacity", "prefetch", "is_video"]
    buffer = JitterBuffer(capacity=16, is_video=True)
    assert {"_packets", "_origin", "_is_video"} <= set(vars(buffer))


def packet(seq: int, timestamp: int, data: bytes, *, marker: bool) -> RtpPacket:
    p = RtpPacket(payload_type=99, sequence_number=seq, timestamp=timestamp, marker=int(marker))
    p._data = data  # type: ignore[attr-defined]  # what the receiver stores after depayloading
    return p


def test_stock_buffer_holds_a_complete_frame_until_the_next_one_starts() -> None:
    buffer = JitterBuffer(capacity=16, is_video=True)
    assert buffer.add(packet(1, 1000, b"a", marker=False)) == (False, None)
    assert buffer.add(packet(2, 1000, b"b", marker=True))[1] is None  # the delay the hook removes


def test_marker_buffer_releases_a_frame_with_its_last_packet() -> None:
    aiortc_hooks.complete_frames_on_marker(True)
    assert aiortc_hooks.marker_frames_active()
    buffer = aiortc.rtcrtpreceiver.JitterBuffer(capacity=16, is_video=True)
    assert buffer.add(packet(1, 1000, b"a", marker=False))[1] is None
    frame = buffer.add(packet(2, 1000, b"b", marker=True))[1]
    assert frame is not None and frame.data == b"ab" and frame.timestamp == 1000
    # Out of order: the marker packet first, the frame only once the gap is filled.
    assert buffer.add(packet(4, 2000, b"d", marker=True))[1] is None
    frame = buffer.add(packet(3, 2000, b"c", marker=False))[1]
    assert frame is not None and frame.data == b"cd"


def test_marker_buffer_falls_back_to_aiortcs_rule_for_a_frame_that_lost_its_marker() -> None:
    aiortc_hooks.complete_frames_on_marker(True)
    buffer = aiortc.rtcrtpreceiver.JitterBuffer(capacity=16, is_video=True)
    buffer.add(packet(1, 1000, b"a", marker=False))
    frame = buffer.add(packet(2, 2000, b"b", marker=False))[1]  # next frame began: the first is whole
    assert frame is not None and frame.data == b"a"


def test_marker_buffer_leaves_audio_alone() -> None:
    aiortc_hooks.complete_frames_on_marker(True)
    buffer = aiortc.rtcrtpreceiver.JitterBuffer(capacity=16, prefetch=0)
    assert buffer.add(packet(1, 1000, b"a", marker=True))[1] is None  # audio's marker starts a talkspurt


def test_aiortc_still_offers_and_answers_from_its_module_level_codec_table() -> None:
    # The hook changes the list in place: the peer connection's module holds the same table.
    assert aiortc.rtcpeerconnection.CODECS is aiortc.codecs.CODECS
    assert "CODECS[kind]" in inspect.getsource(aiortc.codecs.get_capabilities)
    assert "CODECS[transceiver.kind]" in inspect.getsource(aiortc.rtcpeerconnection.RTCPeerConnection)
    assert "find_common_codecs(CODECS[media.kind]" in inspect.getsource(RTCPeerConnection.setRemoteDescription)
    assert callable(aiortc.sdp.parse_h264_profile_level_id)


def test_h264_main_is_offered_with_its_own_retransmission_and_taken_back() -> None:
    before = list(aiortc.codecs.CODECS["video"])
    aiortc_hooks.offer_h264_main(True)
    aiortc_hooks.offer_h264_main(True)  # once only
    assert aiortc_hooks.h264_main_offered()
    video = aiortc.codecs.CODECS["video"]
    [main] = [c for c in video if c.parameters.get("profile-level-id") == "4d001f"]
    assert main.mimeType == "video/H264" and main.parameters["packetization-mode"] == "1"
    assert [(f.type, f.parameter) for f in main.rtcpFeedback] == [("nack", None), ("nack", "pli"), ("goog-remb", None)]
    [rtx] = [c for c in video if c.mimeType == "video/rtx" and c.parameters.get("apt") == main.payloadType]
    payload_types = [c.payloadType for c in video]
    assert len(set(payload_types)) == len(payload_types) == len(before) + 2, "payload types stay unique"
    assert any(c.parameters.get("profile-level-id") == "4d001f" for c in get_capabilities("video").codecs)
    assert rtx.payloadType not in (c.payloadType for c in before)
    aiortc_hooks.offer_h264_main(False)
    assert not aiortc_hooks.h264_main_offered() and aiortc.codecs.CODECS["video"] == before


async def negotiated_screen_codec(*, answerer_takes_main: bool) -> RTCRtpCodecParameters:
    """The codec a screen sender settles on with a receiver that does, or does not, take H.264 main."""
    aiortc_hooks.offer_h264_main(True)
    sender_pc, receiver_pc = RTCPeerConnection(), RTCPeerConnection()
    try:
        transceiver = sender_pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        transceiver.setCodecPreferences(screen_codec_preferences())
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        aiortc_hooks.offer_h264_main(answerer_takes_main)
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        aiortc_hooks.offer_h264_main(True)
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)
        return transceiver._codecs[0]  # what the sender encodes with: the first agreed
    finally:
        await sender_pc.close()
        await receiver_pc.close()


async def test_a_screen_sender_encodes_h264_main_for_a_receiver_that_takes_it_and_baseline_otherwise() -> None:
    aiortc_hooks.use_screen_encoder(True)
    main = await negotiated_screen_codec(answerer_takes_main=True)
    assert main.mimeType == "video/H264" and main.parameters["profile-level-id"] == "4d001f"
    encoder = aiortc.rtcrtpsender.get_encoder(main)
    assert isinstance(encoder, ScreenH264Encoder) and encoder.profile == "Main"
    baseline = await negotiated_screen_codec(answerer_takes_main=False)
    assert baseline.mimeType == "video/H264" and baseline.parameters["profile-level-id"] == "42e01f"
    encoder = aiortc.rtcrtpsender.get_encoder(baseline)
    assert isinstance(encoder, ScreenH264Encoder) and encoder.profile == "Baseline"


def test_h264_constrained_baseline_is_offered() -> None:
    assert any(
        c.mimeType == "video/H264" and c.parameters.get("profile-level-id") == "42e01f"
        and c.parameters.get("packetization-mode") == "1"
        for c in get_capabilities("video").codecs
    )


# --- every TURN URL, failures explained ---------------------------------------------------------


def test_aiortc_still_builds_its_ice_agent_through_module_level_names() -> None:
    source = inspect.getsource(aiortc.rtcicetransport.RTCIceGatherer.__init__)
    assert "connection_kwargs(iceServers)" in source and "Connection(" in source and "**ice_kwargs" in source
    assert list(inspect.signature(aiortc.rtcicetransport.connection_kwargs).parameters) == ["servers"]
    assert aiortc.rtcicetransport.Connection is aioice.ice.Connection  # type: ignore[attr-defined]  # imported there
    assert list(inspect.signature(aioice.ice.Connection.get_component_candidates).parameters) == [
        "self", "component", "addresses", "timeout",
    ]
    assert list(inspect.signature(aioice.ice.relayed_candidate).parameters) == [
        "component", "hide_related_address", "protocol_factory", "turn_server", "turn_username", "turn_password",
        "turn_ssl", "turn_transport",
    ]
    gather = inspect.getsource(aioice.ice.Connection.gather_candidates)
    assert "self.get_component_candidates(" in gather
    connection = aioice.ice.Connection(ice_controlling=True)
    assert {"_protocols", "_nominated", "_transport_policy"} <= set(vars(connection))
    assert "create_turn_endpoint(" in inspect.getsource(aioice.ice.relayed_candidate)
    assert "ssl: bool | ssl.SSLContext | None" in inspect.getsource(aioice.turn.create_turn_endpoint)


def test_aiortc_private_state_the_route_readers_use() -> None:
    assert "self._connection = gatherer._connection" in inspect.getsource(aiortc.rtcicetransport.RTCIceTransport.__init__)
    assert list(inspect.signature(aioice.ice.StunProtocol.request).parameters) == [
        "self", "request", "addr", "integrity_key", "retransmissions",
    ]
    assert list(inspect.signature(aioice.ice.Connection.build_request).parameters) == ["self", "pair", "nominate"]
    assert "self._nominated[" in inspect.getsource(aioice.ice.Connection)


def test_the_hook_switches_and_hands_every_turn_url_to_the_agent() -> None:
    servers = [
        RTCIceServer(urls="stun:127.0.0.1:3478"),
        RTCIceServer(urls=["turns:127.0.0.1:443?transport=tcp", "turn:127.0.0.1:3478"], username="u", credential="p"),
        RTCIceServer(urls="turn:127.0.0.1:3478?transport=tcp", username="u2", credential="p2"),
    ]
    stock = aiortc.rtcicetransport.connection_kwargs(servers)
    assert stock["turn_server"] == ("127.0.0.1", 443)  # aiortc keeps the first TURN URL only

    aiortc_hooks.use_every_turn_url(True)
    assert aiortc_hooks.every_turn_url_active()
    kwargs = aiortc.rtcicetransport.connection_kwargs(servers)
    assert "turn_server" not in kwargs and kwargs["stun_server"] == ("127.0.0.1", 3478)
    assert [(r.leg, r.username) for r in kwargs["turn_routes"]] == [("udp", "u"), ("tcp", "u2"), ("tls", "u")]
    gatherer = aiortc.rtcicetransport.RTCIceGatherer(iceServers=servers)
    assert isinstance(gatherer._connection, aiortc_hooks.MultiTurnConnection)
    assert len(gatherer._connection.turn_routes) == 3

    aiortc_hooks.use_every_turn_url(False)
    assert not aiortc_hooks.every_turn_url_active()
    assert type(aiortc.rtcicetransport.RTCIceGatherer(iceServers=servers)._connection) is aioice.ice.Connection


class _FakeRelayProtocol:
    """What the agent keeps of a relay allocation: its candidate, and close()."""

    def __init__(self, candidate: aioice.Candidate) -> None:
        self.local_candidate = candidate

    async def close(self) -> None:
        return None


def _fake_relays(monkeypatch: pytest.MonkeyPatch, outcomes: dict[int, tuple[float, BaseException | None]]) -> None:
    """Replace aioice's allocation: the route on port P answers after outcomes[P][0] s, failing with [1]."""

    async def relayed_candidate(*, component: int, turn_server: tuple[str, int], **_: object):
        delay, error = outcomes[turn_server[1]]
        await asyncio.sleep(delay)
        if error is not None:
            raise error
        candidate = aioice.Candidate(
            foundation="x", component=component, transport="udp", priority=candidate_priority(component, "relay"),
            host="198.18.0.1", port=turn_server[1], type="relay",
        )
        return candidate, _FakeRelayProtocol(candidate)

    monkeypatch.setattr(aioice.ice, "relayed_candidate", relayed_candidate)


def _gather(routes: list[str]) -> tuple[list[aioice.Candidate], aiortc_hooks.MultiTurnConnection, float]:
    async def run() -> tuple[list[aioice.Candidate], aiortc_hooks.MultiTurnConnection, float]:
        connection = aiortc_hooks.MultiTurnConnection(
            ice_controlling=True, turn_routes=[parse_turn_url(u, "u", "p") for u in routes],
        )
        started = time.monotonic()
        await connection.gather_candidates()
        took = time.monotonic() - started
        candidates = connection.local_candidates  # close() forgets them
        await connection.close()
        return candidates, connection, took

    aiortc_hooks.gather_loopback_only(True)
    return asyncio.run(run())


def _failed(code: int) -> stun.TransactionFailed:
    response = stun.Message(stun.Method.ALLOCATE, stun.Class.ERROR)
    response.attributes["ERROR-CODE"] = (code, "x")
    return stun.TransactionFailed(response)


def test_all_routes_allocate_in_parallel_udp_preferred_failures_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_relays(monkeypatch, {1: (0.2, None), 2: (0.1, None), 3: (0.1, _failed(401)), 4: (0.1, _failed(486))})
    candidates, connection, took = _gather(
        ["turns:127.0.0.1:2", "turn:127.0.0.1:1", "turn:127.0.0.1:3?transport=tcp", "turn:127.0.0.1:4"]
    )
    relays = {c.port: c for c in candidates if c.type == "relay"}
    assert set(relays) == {1, 2}
    assert relays[1].priority > relays[2].priority  # the UDP relay over the TLS one, though TLS came first
    assert relays[1].foundation != relays[2].foundation
    assert [c.type for c in candidates].count("host") == 1
    reasons = {f.url: f.reason for f in connection.turn_failures}
    assert "credentials" in reasons["turn:127.0.0.1:3?transport=tcp"]
    assert "quota" in reasons["turn:127.0.0.1:4"]
    assert took < 1.0  # in parallel, not 4 in turn


def test_a_silent_relay_holds_gathering_half_a_second_after_the_first_relay(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_relays(monkeypatch, {1: (60.0, None), 2: (0.1, None)})
    candidates, connection, took = _gather(["turn:127.0.0.1:1", "turn:127.0.0.1:2?transport=tcp"])
    assert 0.5 <= took < 1.2
    assert [c.port for c in candidates if c.type == "relay"] == [2]
    assert [(f.url, f.reason) for f in connection.turn_failures] == [
        ("turn:127.0.0.1:1", "the relay is unreachable (no answer in time)")
    ]


def test_a_relay_within_the_grace_period_is_still_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_relays(monkeypatch, {1: (0.35, None), 2: (0.05, None)})  # UDP answers 0.3 s after TLS did
    candidates, connection, took = _gather(["turns:127.0.0.1:2", "turn:127.0.0.1:1"])
    assert sorted(c.port for c in candidates if c.type == "relay") == [1, 2]
    assert connection.turn_failures == [] and took < 0.55  # all settled: no waiting out the grace


def test_an_attempt_dropped_while_gathering_leaves_no_allocation_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection replaced mid-gathering (a re-offer) once left allocations running to fail unheard."""
    _fake_relays(monkeypatch, {1: (0.2, OSError(113, "no route to host")), 2: (0.2, None)})

    async def run() -> list[dict[str, Any]]:
        unhandled: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: unhandled.append(context))
        connection = aiortc_hooks.MultiTurnConnection(
            ice_controlling=True, turn_routes=[parse_turn_url(u, "u", "p") for u in ["turn:127.0.0.1:1", "turn:127.0.0.1:2"]],
        )
        gathering = asyncio.ensure_future(connection.gather_candidates())
        await asyncio.sleep(0.05)
        gathering.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gathering
        await asyncio.sleep(0.4)  # past when the allocations would have ended
        await connection.close()
        return unhandled

    aiortc_hooks.gather_loopback_only(True)
    assert asyncio.run(run()) == []


def test_nothing_answering_ends_gathering_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_relays(monkeypatch, {1: (60.0, None), 2: (60.0, None)})
    candidates, connection, took = _gather(["turn:127.0.0.1:1", "turn:127.0.0.1:2"])
    assert 2.9 <= took < 3.8  # aioice alone would wait 5 s for one URL
    assert [c.type for c in candidates] == ["host"]
    assert len(connection.turn_failures) == 2


class _RefusingTurnServer(asyncio.DatagramProtocol, asyncio.Protocol):
    """Answers every STUN request with ``code`` (401 with a realm and nonce, as coturn does for
    wrong credentials, every time), over UDP and over TCP/TLS."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.transport: Any = None  # a datagram or a stream transport (asyncio's UDP one subclasses neither ABC)
        self.requests = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def _answer(self, data: bytes) -> bytes:
        self.requests += 1
        request = stun.parse_message(data)
        response = stun.Message(request.message_method, stun.Class.ERROR, request.transaction_id)
        response.attributes["ERROR-CODE"] = (self.code, "refused")
        response.attributes["REALM"] = "deskhand.test"
        response.attributes["NONCE"] = b"0123456789abcdef"
        return bytes(response)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(self._answer(data), addr)

    def data_received(self, data: bytes) -> None:
        self.transport.write(self._answer(data))  # one request per segment is enough here


def _allocate_against(url_for: Callable[[int], str], code: int, *, tls: CertificateFiles | None = None) -> str:
    """Gather with one TURN route to a local refusing server; the reason its failure was given."""

    async def run() -> str:
        loop = asyncio.get_running_loop()
        if "transport=tcp" in url_for(0) or url_for(0).startswith("turns"):
            context = None
            if tls is not None:
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(tls.cert, tls.key)
            server = await loop.create_server(lambda: _RefusingTurnServer(code), "127.0.0.1", 0, ssl=context)
            port = server.sockets[0].getsockname()[1]
        else:
            transport, _ = await loop.create_datagram_endpoint(lambda: _RefusingTurnServer(code), local_addr=("127.0.0.1", 0))
            port = transport.get_extra_info("sockname")[1]
        connection = aiortc_hooks.MultiTurnConnection(ice_controlling=True, turn_routes=[parse_turn_url(url_for(port), "u", "p")])
        await connection.gather_candidates()
        await connection.close()
        (failure,) = connection.turn_failures
        return failure.reason

    aiortc_hooks.gather_loopback_only(True)
    return asyncio.run(run())


def test_wrong_or_expired_credentials_are_named_over_udp_and_tcp() -> None:
    assert _allocate_against(lambda p: f"turn:127.0.0.1:{p}", 401) == "the relay refused the credentials (wrong or expired)"
    assert "credentials" in _allocate_against(lambda p: f"turn:127.0.0.1:{p}?transport=tcp", 401)
    assert "quota" in _allocate_against(lambda p: f"turn:127.0.0.1:{p}", 486)


def test_an_unreachable_relay_is_named() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: refused

        async def run() -> list[str]:
            connection = aiortc_hooks.MultiTurnConnection(
                ice_controlling=True, turn_routes=[parse_turn_url(f"turn:127.0.0.1:{port}?transport=tcp")],
            )
            await connection.gather_candidates()
            await connection.close()
            return [f.reason for f in connection.turn_failures]

        aiortc_hooks.gather_loopback_only(True)
        (reason,) = asyncio.run(run())
    assert reason.startswith("the relay is unreachable")


def test_turns_checks_the_certificate_and_trusts_the_configured_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = self_signed_certificate(tmp_path)
    monkeypatch.delenv(aiortc_hooks.TURN_CA_FILE_ENV, raising=False)
    untrusted = _allocate_against(lambda p: f"turns:127.0.0.1:{p}", 401, tls=files)
    assert "certificate is not trusted" in untrusted
    monkeypatch.setenv(aiortc_hooks.TURN_CA_FILE_ENV, str(files.cert))
    trusted = _allocate_against(lambda p: f"turns:127.0.0.1:{p}", 401, tls=files)
    assert trusted == "the relay refused the credentials (wrong or expired)"  # TLS got through to TURN


def test_failure_reasons_in_plain_words() -> None:
    assert "unreachable" in aiortc_hooks.turn_failure_reason(TimeoutError())
    assert "unreachable" in aiortc_hooks.turn_failure_reason(stun.TransactionTimeout())
    assert "unreachable" in aiortc_hooks.turn_failure_reason(ConnectionRefusedError(111, "Connection refused"))
    assert "403" in aiortc_hooks.turn_failure_reason(_failed(403))
    assert "500" in aiortc_hooks.turn_failure_reason(_failed(500))


# --- the selected pair and its round trip, on a real loopback connection -----------------------


def test_selected_route_round_trip_and_candidate_types_of_a_connected_pair() -> None:
    async def run() -> tuple[object, object, float | None, tuple[list[str], list[str]], object]:
        config = rtc_configuration(IceConfig(loopback_only=True))
        offerer, answerer = RTCPeerConnection(config), RTCPeerConnection(config)
        try:
            assert aiortc_hooks.selected_route(offerer) is None
            offerer.addTransceiver("video", direction="recvonly")
            offerer.createDataChannel("control")
            await offerer.setLocalDescription(await offerer.createOffer())
            await answerer.setRemoteDescription(offerer.localDescription)
            await answerer.setLocalDescription(await answerer.createAnswer())
            await offerer.setRemoteDescription(answerer.localDescription)
            for _ in range(100):
                if offerer.connectionState == "connected" and answerer.connectionState == "connected":
                    break
                await asyncio.sleep(0.05)
            assert len(aiortc_hooks._ice_connections(offerer)) == 1  # video and data bundled on one agent
            return (aiortc_hooks.selected_route(offerer), aiortc_hooks.selected_route(answerer),
                    await aiortc_hooks.ice_round_trip(offerer), aiortc_hooks.candidate_types(offerer),
                    aiortc_hooks.turn_failures(offerer))
        finally:
            await offerer.close()
            await answerer.close()

    ours, theirs, round_trip, types, failures = asyncio.run(run())
    assert ours == Route("host", "host") == theirs
    assert round_trip is not None and 0 < round_trip < 0.5
    assert types == (["host"], ["host"])
    assert failures == []


# --- triggered checks sent at once ---------------------------------------------------------------


def test_aioice_still_leaves_an_in_progress_pair_to_its_retransmissions() -> None:
    incoming = inspect.getsource(aioice.ice.Connection.check_incoming)
    assert "Triggered check (RFC 8445 section 7.3.1.4)" in incoming
    assert "IN_PROGRESS" not in incoming  # the day aioice handles it, the hook can go
    assert list(inspect.signature(aioice.ice.Connection.check_incoming).parameters) == [
        "self", "message", "addr", "protocol",
    ]
    assert "self.check_incoming(" in inspect.getsource(aioice.ice.Connection.request_received)
    # A check: in progress before its request is built, built by build_request, a transaction of the pair's protocol.
    start = inspect.getsource(aioice.ice.Connection.check_start)
    assert start.index("CandidatePair.State.IN_PROGRESS") < start.index("self.build_request(pair")
    assert "pair.protocol.request(" in start and "except stun.TransactionError" in start
    assert "pair.task = asyncio.create_task(self.check_start(pair))" in inspect.getsource(
        aioice.ice.Connection.check_start_task)
    assert "pair.task = None" in inspect.getsource(aioice.ice.Connection.check_complete)
    assert "if self._check_list_done:" in inspect.getsource(aioice.ice.Connection._check_periodic)
    # A cancelled request forgets its transaction; an answer is handed over by its id alone.
    request = inspect.getsource(aioice.ice.StunProtocol.request)
    assert "self.transactions[request.transaction_id] = transaction" in request
    assert "finally:\n            del self.transactions[request.transaction_id]" in request
    received = inspect.getsource(aioice.ice.StunProtocol.datagram_received)
    assert "self.transactions[message.transaction_id]" in received and ".response_received(message, addr)" in received
    assert "if self.__timeout_handle:" in inspect.getsource(stun.Transaction.run)  # no retransmission after
    connection = aioice.ice.Connection(ice_controlling=True)
    assert {"_check_list", "_check_list_done"} <= set(vars(connection))
    assert {"task", "state", "protocol"} <= set(vars(aioice.ice.CandidatePair(None, None)))  # type: ignore[arg-type]


def test_the_ice_set_up_hooks_switch_and_rtc_configuration_turns_them_on() -> None:
    aiortc_hooks.prompt_triggered_checks(True)
    assert aiortc_hooks.triggered_checks_prompt()
    assert aiortc_hooks.MultiTurnConnection.check_incoming is aioice.ice.Connection.check_incoming
    aiortc_hooks.prompt_triggered_checks(False)
    assert not aiortc_hooks.triggered_checks_prompt()
    aiortc_hooks.pipeline_turn_permissions(True)
    assert aiortc_hooks.turn_permissions_pipelined()
    aiortc_hooks.pipeline_turn_permissions(False)
    assert not aiortc_hooks.turn_permissions_pipelined()
    try:
        rtc_configuration(IceConfig(loopback_only=True))
        assert aiortc_hooks.triggered_checks_prompt() and aiortc_hooks.turn_permissions_pipelined()
    finally:
        aiortc_hooks.pipeline_turn_permissions(False)


class _Wire:
    """What one agent's socket sends: requests counted, some dropped; answers dropped, delayed, or the first
    held back."""

    def __init__(self, protocol: aioice.ice.StunProtocol, drop: frozenset[int] = frozenset(),
                 hold_first_answer: float = 0.0, drop_answers: frozenset[int] = frozenset(),
                 answer_delay: float = 0.0) -> None:
        self.requests = 0
        self.first_request = asyncio.Event()
        self._send = protocol.send_stun
        self._drop = drop
        self._hold = hold_first_answer
        self._drop_answers = drop_answers
        self._answer_delay = answer_delay
        self._answers = 0
        protocol.send_stun = self.send  # type: ignore[method-assign]  # the test's own wire

    def send(self, message: stun.Message, addr: tuple[str, int]) -> None:
        if message.message_class == stun.Class.REQUEST:
            self.requests += 1
            self.first_request.set()
            if self.requests in self._drop:
                return
        elif message.message_class == stun.Class.RESPONSE:
            self._answers += 1
            if self._answers in self._drop_answers:
                return
            hold = self._hold if self._answers == 1 else self._answer_delay
            if hold:
                asyncio.get_running_loop().call_later(hold, self._send, message, addr)
                return
        self._send(message, addr)


@dataclass
class _Checked:
    """How two agents' checks went over :class:`_Wire`: seconds until each completed (from the controlled
    agent's first check) and the requests each sent in 0.7 s."""

    controlling_done: float
    controlled_done: float
    controlled_requests: int
    controlling_requests: int


async def _checks_over_a_lossy_wire(controlled_drops: frozenset[int], hold_first_answer: float = 0.0, *,
                                    controlling_drops_answers: frozenset[int] = frozenset(),
                                    answer_delay: float = 0.0) -> _Checked:
    """The controlled agent's check goes first; the controlling agent starts once it has left (as a relayed
    peer's check comes after its permission). ``hold_first_answer`` holds back the controlling agent's
    first answer; ``answer_delay`` delays every other answer of both (a path's round trip)."""
    controlling = aioice.ice.Connection(ice_controlling=True, components=1)
    controlled = aioice.ice.Connection(ice_controlling=False, components=1)
    try:
        await asyncio.gather(controlling.gather_candidates(), controlled.gather_candidates())
        for agent, peer in ((controlling, controlled), (controlled, controlling)):
            agent.remote_username, agent.remote_password = peer.local_username, peer.local_password
            for candidate in peer.local_candidates:
                await agent.add_remote_candidate(candidate)
            await agent.add_remote_candidate(None)
        controlled_wire = _Wire(controlled._protocols[0], drop=controlled_drops, hold_first_answer=answer_delay,
                                answer_delay=answer_delay)
        controlling_wire = _Wire(controlling._protocols[0], hold_first_answer=hold_first_answer or answer_delay,
                                 drop_answers=controlling_drops_answers, answer_delay=answer_delay)
        loop = asyncio.get_running_loop()
        controlled_connect = asyncio.ensure_future(controlled.connect())
        await controlled_wire.first_request.wait()
        start = loop.time()
        await asyncio.wait_for(controlling.connect(), 3)
        controlling_done = loop.time() - start
        await asyncio.wait_for(controlled_connect, 3)
        controlled_done = loop.time() - start
        await asyncio.sleep(max(0.0, start + 0.7 - loop.time()))
        return _Checked(controlling_done, controlled_done, controlled_wire.requests, controlling_wire.requests)
    finally:
        await controlling.close()
        await controlled.close()


@pytest.mark.parametrize("prompt", [True, False])
def test_a_lost_check_is_sent_afresh_when_the_peers_check_arrives(prompt: bool) -> None:
    aiortc_hooks.gather_loopback_only(True)
    aiortc_hooks.prompt_triggered_checks(prompt)
    checked = asyncio.run(_checks_over_a_lossy_wire(frozenset({1})))
    assert checked.controlling_done < 0.45  # its own check went through at once either way
    if prompt:
        assert checked.controlled_done < 0.45, checked
        assert checked.controlled_requests == 2  # the lost one, then one fresh check: the lost one is not sent again
    else:
        assert checked.controlled_done > 0.45, checked  # aioice's retransmission, 0.5 s after the first


def test_a_late_answer_to_the_replaced_check_completes_the_fresh_one() -> None:
    aiortc_hooks.gather_loopback_only(True)
    aiortc_hooks.prompt_triggered_checks(True)
    # The first check's answer takes 0.15 s; the fresh check it gave way to is lost.
    checked = asyncio.run(_checks_over_a_lossy_wire(frozenset({2}), hold_first_answer=0.15))
    assert checked.controlled_requests == 2
    assert 0.1 < checked.controlled_done < 0.45, checked  # the late answer, not the fresh check's retransmission
    assert checked.controlling_done < 0.45


def test_a_lost_fresh_check_is_still_retransmitted() -> None:
    aiortc_hooks.gather_loopback_only(True)
    aiortc_hooks.prompt_triggered_checks(True)
    checked = asyncio.run(_checks_over_a_lossy_wire(frozenset({1, 2})))
    assert 0.45 < checked.controlled_done < 1.0, checked  # aioice's timer, counted from the fresh check
    assert checked.controlled_requests == 3
    assert checked.controlling_done < 0.45


# --- STUN: a check, a TURN request and a check's answer go twice -----------------------------


def test_aioice_still_sends_a_transactions_request_and_a_checks_answer_where_the_copy_hook_looks() -> None:
    retry = inspect.getsource(stun.Transaction._Transaction__retry)  # type: ignore[attr-defined]  # name-mangled
    assert "self.__protocol.send_stun(self.__request, self.__addr)" in retry and "self.__tries += 1" in retry
    assert retry.index("if self.__future.done():") < retry.index("send_stun")
    made = inspect.getsource(stun.Transaction.__init__)
    assert "self.__tries_max = 1 + (" in made and "self.__future" in made and "self.__addr = addr" in made
    assert "protocol.send_stun(response, addr)" in inspect.getsource(aioice.ice.Connection.request_received)
    assert issubclass(aioice.turn.TurnClientTcpProtocol, aioice.turn.TurnStreamMixin)
    assert not issubclass(aioice.turn.TurnClientUdpProtocol, aioice.turn.TurnStreamMixin)


def test_the_copy_hook_switches_and_rtc_configuration_turns_it_on() -> None:
    aiortc_hooks.copy_stun_messages(True)
    assert aiortc_hooks.stun_messages_copied()
    aiortc_hooks.copy_stun_messages(False)
    assert not aiortc_hooks.stun_messages_copied()
    rtc_configuration(IceConfig(loopback_only=True))
    assert aiortc_hooks.stun_messages_copied()


class _Sends:
    """A transaction's sender (no socket): when each send of the request went."""

    def __init__(self) -> None:
        self.sent: list[float] = []

    def send_stun(self, message: stun.Message, addr: tuple[str, int]) -> None:
        self.sent.append(time.monotonic())


class _StreamSends(_Sends, aioice.turn.TurnStreamMixin):
    """As :class:`_Sends`, standing for TURN over TCP or TLS."""


def _transaction_sends(sender: _Sends, *, retransmissions: int | None = None, answer_after: float | None = None,
                       wait: float = 0.6) -> list[float]:
    """Seconds from the first send of one STUN request to each send, ``answer_after`` s after which it is answered
    (never: None), over ``wait`` s and 0.05 s more (a copy due after the end would show)."""

    async def run() -> None:
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        peer = ("127.0.0.1", 9)
        transaction = stun.Transaction(request, peer, sender, retransmissions=retransmissions)
        if answer_after is not None:
            answer = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.RESPONSE,
                                  transaction_id=request.transaction_id)
            asyncio.get_running_loop().call_later(answer_after, transaction.response_received, answer, peer)
        with contextlib.suppress(TimeoutError, stun.TransactionError):
            await asyncio.wait_for(transaction.run(), wait)
        await asyncio.sleep(0.05)

    asyncio.run(run())
    return [at - sender.sent[0] for at in sender.sent]


@pytest.mark.parametrize("copied", [True, False])
def test_an_unanswered_request_goes_twice_at_each_send(copied: bool) -> None:
    aiortc_hooks.quick_stun_retransmits(True)
    aiortc_hooks.copy_stun_messages(copied)
    sends = _transaction_sends(_Sends())
    first_retransmission = aiortc_hooks.QUICK_STUN_RTO
    if copied:
        assert len(sends) == 4, sends  # the request and its retransmission, each with its copy
        assert sends[1] < 0.1 and sends[2] == pytest.approx(first_retransmission, abs=0.05) and sends[3] - sends[2] < 0.1
    else:
        assert len(sends) == 2 and sends[1] == pytest.approx(first_retransmission, abs=0.05), sends


def test_a_request_answered_within_the_gap_goes_once_and_one_answered_after_it_twice() -> None:
    aiortc_hooks.copy_stun_messages(True)
    assert len(_transaction_sends(_Sends(), answer_after=aiortc_hooks.STUN_COPY_AFTER / 4)) == 1
    assert len(_transaction_sends(_Sends(), answer_after=0.1)) == 2


def test_a_consent_check_and_a_request_over_turns_tcp_are_not_copied() -> None:
    aiortc_hooks.copy_stun_messages(True)
    assert len(_transaction_sends(_Sends(), retransmissions=0, wait=0.2)) == 1
    assert len(_transaction_sends(_StreamSends(), wait=0.2)) == 1


def test_a_copy_due_after_the_agents_socket_closed_is_not_sent() -> None:
    aiortc_hooks.copy_stun_messages(True)
    errors: list[dict[str, Any]] = []

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: errors.append(context))
        agent = aioice.ice.Connection(ice_controlling=True, components=1)
        transport, protocol = await loop.create_datagram_endpoint(lambda: aioice.ice.StunProtocol(agent),
                                                                  local_addr=("127.0.0.1", 0))
        peer = ("127.0.0.1", 9)  # nobody answers
        answer = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.RESPONSE)
        protocol.send_stun(answer, peer)
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        asking = asyncio.ensure_future(protocol.request(request, peer))
        await asyncio.sleep(0)  # the request's first send
        transport.close()  # before either copy is due (a session ending, an attempt given up)
        await asyncio.sleep(aiortc_hooks.STUN_COPY_AFTER * 5)
        asking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asking

    asyncio.run(run())
    assert errors == []


@pytest.mark.parametrize("signed", [True, False], ids=["the peer", "a stranger"])
def test_only_a_request_signed_with_the_agents_password_is_answered_twice(signed: bool) -> None:
    # A stranger's request (no or a wrong password) gets one error answer: the agent sends it nothing twice.
    aiortc_hooks.gather_loopback_only(True)
    aiortc_hooks.copy_stun_messages(True)

    async def run() -> list[stun.Message]:
        agent = aioice.ice.Connection(ice_controlling=True, components=1)
        peer = aioice.ice.Connection(ice_controlling=False, components=1)
        answers: list[stun.Message] = []
        loop = asyncio.get_running_loop()
        asker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        asker.bind(("127.0.0.1", 0))
        asker.setblocking(False)
        try:
            await agent.gather_candidates()
            target = agent.local_candidates[0]
            request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
            request.attributes["USERNAME"] = f"{agent.local_username}:{peer.local_username}"
            request.attributes["PRIORITY"] = 1
            request.attributes["ICE-CONTROLLED"] = 1
            request.add_message_integrity((agent.local_password if signed else "not-the-password").encode("utf8"))
            request.add_fingerprint()
            await loop.sock_sendto(asker, bytes(request), (target.host, target.port))
            deadline = loop.time() + aiortc_hooks.STUN_COPY_AFTER * 10
            while (left := deadline - loop.time()) > 0:
                with contextlib.suppress(TimeoutError):
                    data = await asyncio.wait_for(loop.sock_recv(asker, 2048), left)
                    answers.append(stun.parse_message(data))
            return answers
        finally:
            asker.close()
            await agent.close()
            await peer.close()

    answers = asyncio.run(run())
    if signed:
        assert [a.message_class for a in answers] == [stun.Class.RESPONSE] * 2, answers
    else:
        assert [(a.message_class, a.error_code) for a in answers] == [(stun.Class.ERROR, 401)], answers


@pytest.mark.parametrize("copied", [True, False])
def test_a_lost_answer_to_a_check_is_made_good_by_its_copy(copied: bool) -> None:
    aiortc_hooks.gather_loopback_only(True)
    aiortc_hooks.copy_stun_messages(copied)
    # The controlling agent's answer to the controlled agent's first check is lost.
    checked = asyncio.run(_checks_over_a_lossy_wire(frozenset(), controlling_drops_answers=frozenset({1})))
    if copied:
        assert checked.controlled_done < 0.45, checked  # the answer's copy, not the request's retransmission
        assert checked.controlled_requests <= 2, checked  # the request and perhaps its copy, no retransmission
    else:
        assert checked.controlled_done > 0.45, checked


def test_a_copy_of_a_check_does_not_make_the_peer_check_afresh() -> None:
    aiortc_hooks.gather_loopback_only(True)
    aiortc_hooks.prompt_triggered_checks(True)
    aiortc_hooks.copy_stun_messages(True)
    # Answers take 50 ms (a path's round trip): each check's copy leaves, and reaches the peer while the check it
    # triggered there is in progress.
    checked = asyncio.run(_checks_over_a_lossy_wire(frozenset(), answer_delay=0.05))
    assert checked.controlling_requests == 2, checked  # its triggered check and that check's copy
    assert checked.controlled_done < 0.45 and checked.controlling_done < 0.45, checked


# --- a relay's first send to a peer not held for its channel ----------------------------------


def test_aioice_still_binds_a_channel_before_its_first_send_to_a_peer() -> None:
    assert list(inspect.signature(aioice.turn.TurnClientMixin.send_data).parameters) == ["self", "data", "addr"]
    send = inspect.getsource(aioice.turn.TurnClientMixin.send_data)
    # The peer is marked as binding, then the ChannelBind leaves before anything is awaited.
    binding = send.index("self.peer_connect_waiters[addr] = []")
    assert "await" not in send[send.index("channel = self.peer_to_channel.get(addr)"):binding]
    assert binding < send.index("await self.channel_bind(channel, addr)")
    assert "self.peer_to_channel[addr] = channel" in send and "self.peer_connect_waiters.pop(addr)" in send
    assert "await self.request_with_retry(request)" in inspect.getsource(aioice.turn.TurnClientMixin.channel_bind)
    assert "self.__retry()" in inspect.getsource(stun.Transaction.run)  # the request is sent as the transaction starts
    for client in (aioice.turn.TurnClientUdpProtocol, aioice.turn.TurnClientTcpProtocol):
        assert client.send_data is aioice.turn.TurnClientMixin.send_data
    assert "def send_stun(self, message: stun.Message, addr: tuple[str, int])" in inspect.getsource(
        aioice.turn.TurnClientMixin.send_stun)
    assert (stun.Method.SEND, stun.Class.INDICATION) == (0x6, 0x10)


def test_stun_is_told_from_dtls_rtp_and_channel_data() -> None:
    assert aiortc_hooks._is_stun(bytes(stun.Message(stun.Method.BINDING, stun.Class.REQUEST)))
    assert not aiortc_hooks._is_stun(bytes([22, 254, 253]) + bytes(30))  # a DTLS record
    assert not aiortc_hooks._is_stun(bytes([0x80, 96]) + bytes(30))  # RTP
    assert not aiortc_hooks._is_stun(b"\x40\x00\x00\x14" + bytes(20))  # ChannelData
    assert not aiortc_hooks._is_stun(bytes(8))


class _TurnSocket:
    """What a TURN client writes to its server."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: object = None) -> None:
        self.sent.append(data)

    def is_closing(self) -> bool:
        return False


@pytest.mark.parametrize("pipelined", [True, False])
def test_a_check_to_a_new_peer_leaves_right_behind_the_channel_bind(pipelined: bool) -> None:
    server, peer = ("198.51.100.1", 3478), ("198.51.100.2", 5000)
    check = bytes(stun.Message(stun.Method.BINDING, stun.Class.REQUEST))

    async def run() -> tuple[list[bytes], list[bytes]]:
        protocol = aioice.turn.TurnClientUdpProtocol(server, username=None, password=None, lifetime=600,
                                                     channel_refresh_time=500)
        wire = _TurnSocket()
        protocol.connection_made(wire)  # type: ignore[arg-type]  # the test's wire
        first = asyncio.ensure_future(protocol.send_data(check, peer))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(protocol.send_data(check, peer))  # while binding: waits, no second indication
        dtls = asyncio.ensure_future(protocol.send_data(bytes([22, 254, 253]) + bytes(30), ("198.51.100.3", 5000)))
        await asyncio.sleep(0.01)
        before_answer = list(wire.sent)
        bind = stun.parse_message(before_answer[0])
        protocol.datagram_received(
            bytes(stun.Message(stun.Method.CHANNEL_BIND, stun.Class.RESPONSE, transaction_id=bind.transaction_id)),
            server)
        await asyncio.gather(first, second)
        dtls.cancel()
        return before_answer, wire.sent[len(before_answer):]

    aiortc_hooks.pipeline_turn_permissions(pipelined)
    assert aiortc_hooks.turn_permissions_pipelined() is pipelined
    before_answer, after_answer = asyncio.run(run())
    messages = [stun.parse_message(data) for data in before_answer]
    kinds = [(m.message_method, m.message_class) for m in messages]
    bind, indication = (stun.Method.CHANNEL_BIND, stun.Class.REQUEST), (stun.Method.SEND, stun.Class.INDICATION)
    if pipelined:
        assert kinds == [bind, indication, bind]  # the third: the DTLS peer's bind, its data not sent ahead
        assert messages[1].attributes["XOR-PEER-ADDRESS"] == peer
        assert messages[1].attributes["DATA"] == check
    else:
        assert kinds == [bind, bind]
    assert [data[:2] for data in after_answer] == [b"\x40\x00", b"\x40\x00"]  # both over the channel once bound


# --- SCTP's retransmission timer ---------------------------------------------------------------


def test_sctp_still_reads_its_timeout_floor_and_start_as_module_globals() -> None:
    source = inspect.getsource(aiortc.rtcsctptransport.RTCSctpTransport._update_rto)
    assert "max(SCTP_RTO_MIN," in source
    assert "self._rto = SCTP_RTO_INITIAL" in inspect.getsource(aiortc.rtcsctptransport.RTCSctpTransport.__init__)
    # No backoff and no give-up on timer expiry: a lower floor only resends sooner.
    expired = inspect.getsource(aiortc.rtcsctptransport.RTCSctpTransport._t3_expired)
    assert "_rto" not in expired and "CLOSED" not in expired


@pytest.mark.parametrize("quick", [True, False])
def test_quick_sctp_retransmits_set_the_timer_of_a_real_association(quick: bool) -> None:
    async def run() -> tuple[float, float]:
        config = rtc_configuration(IceConfig(loopback_only=True))
        offerer, answerer = RTCPeerConnection(config), RTCPeerConnection(config)
        try:
            channel = offerer.createDataChannel("control")
            await offerer.setLocalDescription(await offerer.createOffer())
            await answerer.setRemoteDescription(offerer.localDescription)
            await answerer.setLocalDescription(await answerer.createAnswer())
            await offerer.setRemoteDescription(answerer.localDescription)
            assert offerer.sctp is not None
            start = offerer.sctp._rto  # before the first round trip
            for _ in range(100):
                if channel.readyState == "open":
                    break
                await asyncio.sleep(0.05)
            for _ in range(20):
                channel.send("x")  # acknowledged: round trips are measured
                await asyncio.sleep(0.02)
            return start, offerer.sctp._rto
        finally:
            await offerer.close()
            await answerer.close()

    aiortc_hooks.quick_sctp_retransmits(quick)
    try:
        assert aiortc_hooks.sctp_retransmits_quick() is quick
        start, settled = asyncio.run(run())
    finally:
        aiortc_hooks.quick_sctp_retransmits(False)
    assert start == (aiortc_hooks.QUICK_SCTP_RTO_INITIAL if quick else 3.0)
    assert settled == (aiortc_hooks.QUICK_SCTP_RTO_MIN if quick else 1.0)  # a loopback round trip is far below either


# --- a video packet lost for good -------------------------------------------------------------

KEYFRAME = b"\x00\x00\x00\x01\x67sps" + b"\x00\x00\x00\x01\x68pps" + b"\x00\x00\x00\x01\x65idr"
"""An H.264 keyframe as aiortc's depayloader writes it: SPS, PPS and an IDR slice, each after a start code."""
DELTA = b"\x00\x00\x00\x01\x41slice"
"""An H.264 frame that refers to earlier ones (a non-IDR slice)."""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def marker_buffer(clock: Clock) -> aiortc_hooks.MarkerJitterBuffer:
    return aiortc_hooks.MarkerJitterBuffer(capacity=512, is_video=True, clock=clock)


def test_a_keyframe_is_told_from_what_refers_to_earlier_frames() -> None:
    assert aiortc_hooks.is_keyframe(KEYFRAME)
    assert aiortc_hooks.is_keyframe(b"\x00\x00\x00\x01\x65idr")  # an IDR slice without parameter sets
    assert not aiortc_hooks.is_keyframe(DELTA)
    assert not aiortc_hooks.is_keyframe(b"\x00\x00\x00\x01\x67sps")  # parameter sets alone
    assert not aiortc_hooks.is_keyframe(b"\x65idr-rest" + KEYFRAME[4:])  # its first packet lost: no start code
    assert aiortc_hooks.is_keyframe(b"\x10\x02\x00\x9d\x01\x2a\x80\x07")  # VP8 key frame
    assert not aiortc_hooks.is_keyframe(b"\x11\x02\x00\x9d\x01\x2a\x80\x07")  # VP8 inter frame
    assert not aiortc_hooks.is_keyframe(b"")


def test_a_packet_lost_for_good_costs_a_keyframe_request_not_a_frozen_picture() -> None:
    clock = Clock()
    buffer = marker_buffer(clock)
    assert buffer.add(packet(1, 1000, KEYFRAME, marker=True))[1] is not None
    # Packet 2 (a whole frame) is lost, and so is aiortc's one retransmission of it.
    asked_when = []
    for seq in range(3, 9):  # a screen that barely changes: frames keep coming, each held up by the hole
        clock.now += 0.2
        asked, frame = buffer.add(packet(seq, 1000 * seq, DELTA, marker=True))
        assert frame is None  # held up, then (it refers to frame 2) dropped
        asked_when.append(asked)
    assert asked_when == [False] * 5 + [True]  # 1 s after the hole held up frame 3: a keyframe asked for
    assert buffer.holes_given_up == 1
    clock.now += 0.1
    assert buffer.add(packet(9, 9000, KEYFRAME[:9], marker=False)) == (False, None)
    asked, frame = buffer.add(packet(10, 9000, KEYFRAME[9:], marker=True))
    assert not asked and frame is not None and frame.data == KEYFRAME and frame.timestamp == 9000
    asked, frame = buffer.add(packet(11, 11000, DELTA, marker=True))  # the picture goes on
    assert not asked and frame is not None and frame.data == DELTA


def test_a_retransmission_in_time_fills_the_hole_without_a_keyframe() -> None:
    clock = Clock()
    buffer = marker_buffer(clock)
    buffer.add(packet(1, 1000, KEYFRAME, marker=True))
    clock.now += 0.1
    assert buffer.add(packet(3, 3000, DELTA, marker=True)) == (False, None)  # 2 is missing: aiortc NACKs it
    clock.now += 0.8
    asked, frame = buffer.add(packet(2, 2000, b"\x00\x00\x00\x01\x41two", marker=True))  # the retransmission
    assert not asked and frame is not None and frame.timestamp == 2000
    # aiortc takes one frame per packet; the one behind it is complete too, and handed over now.
    behind = buffer.next_complete_frame()
    assert behind is not None and behind.timestamp == 3000 and buffer.next_complete_frame() is None
    clock.now += 5  # the next keep-alive frame, long after the hole was filled
    asked, frame = buffer.add(packet(4, 4000, DELTA, marker=True))
    assert not asked and frame is not None and frame.timestamp == 4000, "no frame behind: the keep-alive is shown"
    assert buffer.holes_given_up == 0


def test_no_further_frame_is_handed_over_while_a_keyframe_is_wanted_or_one_is_incomplete() -> None:
    clock = Clock()
    buffer = marker_buffer(clock)
    buffer.add(packet(1, 1000, KEYFRAME, marker=True))
    assert buffer.next_complete_frame() is None, "nothing left"
    buffer.add(packet(3, 3000, DELTA, marker=False))  # 2 missing, 3 without its marker yet
    assert buffer.add(packet(2, 2000, DELTA, marker=True))[1] is not None
    assert buffer.next_complete_frame() is None, "frame 3 is still arriving"
    buffer.add(packet(6, 6000, DELTA, marker=True))  # 4 and 5 lost for good: the hole is given up
    clock.now += 5
    buffer.add(packet(7, 7000, DELTA, marker=True))
    assert buffer.holes_given_up == 1
    buffer.add(packet(8, 8000, DELTA, marker=True))
    assert buffer.next_complete_frame() is None, "frames after a hole refer to pictures the decoder never had"


def test_a_frame_still_arriving_slowly_is_not_a_hole() -> None:
    clock = Clock()
    buffer = marker_buffer(clock)
    for seq in range(1, 6):
        clock.now += 0.5  # a large keyframe over a slow link, in order
        assert buffer.add(packet(seq, 1000, KEYFRAME if seq == 1 else b"more", marker=False)) == (False, None)
    asked, frame = buffer.add(packet(6, 1000, b"last", marker=True))
    assert not asked and frame is not None and frame.data.startswith(KEYFRAME)
    assert buffer.holes_given_up == 0


def test_the_keyframe_is_asked_for_again_while_none_comes_but_not_for_every_packet() -> None:
    clock = Clock()
    buffer = marker_buffer(clock)
    buffer.add(packet(1, 1000, KEYFRAME, marker=True))
    asked_when = []
    for seq in range(3, 40):  # 2 lost; then a frame every 0.1 s, none a keyframe (the requests are lost)
        asked, frame = buffer.add(packet(seq, 1000 * seq, DELTA, marker=True))
        assert frame is None
        if asked:
            asked_when.append(clock.now)
        clock.now += 0.1
    assert len(asked_when) == 3  # at 1 s, 2 s and 3 s after the hole
    assert all(later - earlier >= aiortc_hooks.LOST_PACKET_PATIENCE - 1e-9
               for earlier, later in itertools.pairwise(asked_when))


def test_a_keyframe_behind_the_hole_is_passed_on_at_once_with_the_stale_frames_dropped() -> None:
    clock = Clock()
    buffer = marker_buffer(clock)
    buffer.add(packet(1, 1000, KEYFRAME, marker=True))
    buffer.add(packet(3, 3000, DELTA, marker=True))  # 2 lost
    assert buffer.add(packet(4, 4000, KEYFRAME[:9], marker=False)) == (False, None)  # a keyframe, still arriving
    # Its last packet: no need to wait for 2 (the patience), the decoder can start here.
    asked, frame = buffer.add(packet(5, 4000, KEYFRAME[9:], marker=True))
    assert not asked and frame is not None and frame.timestamp == 4000  # frame 3 (it needs 2) dropped, the keyframe on
    assert frame.data == KEYFRAME
    asked, frame = buffer.add(packet(6, 6000, DELTA, marker=True))
    assert frame is not None and frame.timestamp == 6000
    assert (buffer.holes_skipped_to_keyframe, buffer.holes_given_up) == (1, 0)
    assert buffer.add(packet(2, 2000, DELTA, marker=True)) == (False, None)  # too late: behind the origin, dropped


def test_numbering_that_starts_over_is_not_taken_for_a_hole() -> None:
    clock = Clock()
    buffer = marker_buffer(clock)
    for seq in (1000, 1001):
        buffer.add(packet(seq, seq, KEYFRAME, marker=True))
    asked, frame = buffer.add(packet(500, 5000, KEYFRAME[:9], marker=False))  # far behind: aiortc starts over
    assert asked and frame is None  # aiortc's own rule: starting over costs a keyframe
    for seq in range(501, 505):
        clock.now += 0.5  # the rest of that keyframe, slowly: nothing is missing
        assert buffer.add(packet(seq, 5000, b"more", marker=False))[1] is None
    asked, frame = buffer.add(packet(505, 5000, KEYFRAME[9:], marker=True))
    assert frame is not None and frame.data == KEYFRAME[:9] + b"more" * 4 + KEYFRAME[9:]
    assert buffer.holes_given_up == 0


# --- lost packets asked for again on a timer --------------------------------------------------


def test_the_receiver_still_builds_its_nack_generator_by_name_and_nacks_what_it_lists() -> None:
    init = inspect.getsource(aiortc.rtcrtpreceiver.RTCRtpReceiver.__init__)
    assert "self.__nack_generator = NackGenerator()" in init
    assert "self.__jitter_buffer = JitterBuffer(capacity=512, is_video=True)" in init
    handle = inspect.getsource(aiortc.rtcrtpreceiver.RTCRtpReceiver._handle_rtp_packet)
    # RTX unwrapped before the generator sees a packet; on True the receiver NACKs exactly ``missing``.
    assert handle.index("unwrap_rtx(") < handle.index("self.__nack_generator.add(packet)")
    assert "sorted(self.__nack_generator.missing)" in handle
    assert handle.index("self.__nack_generator.add(packet)") < handle.index("self.__jitter_buffer.add(packet)")
    assert "packet._data = depayload(codec, packet.payload)" in handle  # what depayloaded_starts_keyframe reads
    receive = inspect.getsource(aiortc.rtcrtpreceiver.RTCRtpReceiver.receive)
    assert "if not self.__started:" in receive and "self.__rtcp_task = asyncio.ensure_future(self._run_rtcp())" in receive
    stop = inspect.getsource(aiortc.rtcrtpreceiver.RTCRtpReceiver.stop)
    assert "self.__rtcp_task.cancel()" in stop  # the timer ends with it
    for name in ("_send_rtcp_nack", "_send_rtcp_pli"):
        assert list(inspect.signature(getattr(aiortc.rtcrtpreceiver.RTCRtpReceiver, name)).parameters)[:2] == [
            "self", "media_ssrc"]
    generator = aiortc.rtcrtpreceiver.NackGenerator()
    assert vars(generator) == {"max_seq": None, "missing": set()}


def test_the_hook_switches_the_generator_and_receive() -> None:
    original_receive = aiortc.rtcrtpreceiver.RTCRtpReceiver.receive
    aiortc_hooks.recover_losses_on_a_timer(True)
    assert aiortc_hooks.losses_recovered_on_a_timer()
    assert isinstance(aiortc.rtcrtpreceiver.NackGenerator(), aiortc_hooks.TimedNackGenerator)
    aiortc_hooks.recover_losses_on_a_timer(False)
    assert not aiortc_hooks.losses_recovered_on_a_timer()
    assert aiortc.rtcrtpreceiver.NackGenerator is not aiortc_hooks.TimedNackGenerator
    assert aiortc.rtcrtpreceiver.RTCRtpReceiver.receive is original_receive


def _depayloaded_packets(encoder: Any, codec: RTCRtpCodecParameters, frame: Any, keyframe: bool) -> list[bytes]:
    from aiortc.codecs import depayload

    payloads, _ = encoder.encode(frame, force_keyframe=keyframe)
    return [depayload(codec, p) for p in payloads]


@pytest.mark.parametrize("codec", [H264, VP8], ids=["h264-screen", "vp8"])
def test_a_keyframes_first_packet_is_told_apart_on_real_encoder_output(codec: RTCRtpCodecParameters) -> None:
    import av
    import numpy

    encoder = ScreenH264Encoder() if codec is H264 else Vp8Encoder()
    rng = numpy.random.default_rng(1)
    image = rng.integers(0, 255, (720, 1280, 3), dtype=numpy.uint8)  # noise: a keyframe of many packets
    frames = []
    for index in range(3):
        image[:40, :40] = index * 80  # a small change: a small delta frame
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = index * 3000, fractions.Fraction(1, 90_000)
        frames.append(frame)
    keyframe = _depayloaded_packets(encoder, codec, frames[0], True)
    assert len(keyframe) > 10
    # H.264: the STAP-A of SPS and PPS, and the FU-A that begins the IDR's first slice; none later.
    assert [i for i, p in enumerate(keyframe) if aiortc_hooks.depayloaded_starts_keyframe(p)] in ([0], [0, 1])
    delta = _depayloaded_packets(encoder, codec, frames[1], False)
    assert not any(aiortc_hooks.depayloaded_starts_keyframe(p) for p in delta)


def test_depayloaded_starts_keyframe_on_h264_packets() -> None:
    assert aiortc_hooks.depayloaded_starts_keyframe(b"\x00\x00\x00\x01\x67sps\x00\x00\x00\x01\x68pps")  # STAP-A of SPS, PPS
    assert aiortc_hooks.depayloaded_starts_keyframe(b"\x00\x00\x00\x01\x65\x88idr")  # FU-A start of the IDR's first slice
    assert not aiortc_hooks.depayloaded_starts_keyframe(b"\x00\x00\x00\x01\x65\x3aidr")  # a later slice of it
    assert not aiortc_hooks.depayloaded_starts_keyframe(b"idr-middle")
    assert not aiortc_hooks.depayloaded_starts_keyframe(DELTA)


def _linked(clock: Clock) -> tuple[aiortc_hooks.TimedNackGenerator, aiortc_hooks.MarkerJitterBuffer, Any]:
    from peer.loss_recovery import LossRecovery

    nacks = aiortc_hooks.TimedNackGenerator(clock=clock)
    buffer = marker_buffer(clock)
    nacks.recovery = buffer.recovery = LossRecovery(round_trip=0.1)
    return nacks, buffer, nacks.recovery


def _arrive(nacks: aiortc_hooks.TimedNackGenerator, buffer: aiortc_hooks.MarkerJitterBuffer,
            p: RtpPacket) -> tuple[bool, set[int], Any]:
    """What aiortc's receiver does with a packet: the generator, then the jitter buffer."""
    shown = nacks.add(p)
    missing = set(nacks.missing)
    asked, frame = buffer.add(p)
    assert not asked, "a linked buffer asks for keyframes through the recovery's timer"
    return shown, missing, frame


def test_unlinked_the_generator_is_aiortcs() -> None:
    nacks = aiortc_hooks.TimedNackGenerator()
    nacks.add(packet(1, 1, b"", marker=True))
    assert nacks.add(packet(4, 4, b"", marker=True)) and nacks.missing == {2, 3}
    assert not nacks.add(packet(2, 2, b"", marker=True)) and nacks.missing == {3}


def test_linked_a_new_gap_is_nacked_alone_and_an_abandoned_hole_is_skipped_with_a_keyframe_asked() -> None:
    from peer.loss_recovery import Nack, Pli

    clock = Clock()
    nacks, buffer, recovery = _linked(clock)
    ssrc_packet = packet(1, 1000, KEYFRAME, marker=True)
    ssrc_packet.ssrc = 1234
    assert _arrive(nacks, buffer, ssrc_packet)[2] is not None
    assert nacks.media_ssrc == 1234
    shown, missing, frame = _arrive(nacks, buffer, packet(3, 3000, DELTA, marker=True))
    assert shown and missing == {2} and frame is None
    actions = []
    for _ in range(30):  # the still screen: nothing arrives, the timer asks again, then gives up
        clock.now += 0.02
        actions += recovery.tick(clock.now)
    assert actions == [Nack((2,)), Nack((2,)), Pli()]
    shown, missing, frame = _arrive(nacks, buffer, packet(5, 5000, DELTA, marker=True))  # 4 lost too
    assert missing == {4}, "the abandoned 2 is not asked for again"
    assert frame is None and buffer.holes_given_up == 1  # 2 given up at once (no patience), 3 dropped
    # The requested keyframe: its first packet ends the requests, its last releases it past hole 4.
    _arrive(nacks, buffer, packet(6, 6000, KEYFRAME[:9], marker=False))
    assert not recovery.keyframe_wanted
    frame = _arrive(nacks, buffer, packet(7, 6000, KEYFRAME[9:], marker=True))[2]
    assert frame is not None and frame.data == KEYFRAME
    assert recovery.missing() == [], "4 is behind the buffer's origin now: forgotten"
    clock.now += 5
    assert recovery.tick(clock.now) == []


def test_linked_numbering_that_starts_over_asks_through_the_recovery() -> None:
    from peer.loss_recovery import Pli

    clock = Clock()
    nacks, buffer, recovery = _linked(clock)
    for seq in (1000, 1001):
        _arrive(nacks, buffer, packet(seq, seq, DELTA, marker=True))
    _arrive(nacks, buffer, packet(500, 5000, DELTA, marker=False))  # far behind: aiortc starts over
    assert recovery.keyframe_wanted and recovery.tick(clock.now) == [Pli()]


def test_the_receiver_still_hands_a_frame_to_its_decoder_the_way_the_hook_repeats() -> None:
    handle = inspect.getsource(aiortc.rtcrtpreceiver.RTCRtpReceiver._handle_rtp_packet)
    assert "pli_flag, encoded_frame = self.__jitter_buffer.add(packet)" in handle
    assert "if encoded_frame is not None and self.__decoder_thread:" in handle
    assert "encoded_frame.timestamp = self.__timestamp_mapper.map(" in handle
    assert "self.__decoder_queue.put((codec, encoded_frame))" in handle
    assert "codec = self.__codecs[apt]" in handle, "a retransmission's codec is its media's"
    assert list(inspect.signature(aiortc.rtcrtpreceiver.RTCRtpReceiver._handle_rtp_packet).parameters) == [
        "self", "packet", "arrival_time_ms"]


def test_the_marker_hook_switches_the_buffer_and_receive_independently_of_the_nack_hook() -> None:
    original_receive = aiortc.rtcrtpreceiver.RTCRtpReceiver.receive
    aiortc_hooks.complete_frames_on_marker(True)
    assert aiortc_hooks.marker_frames_active() and not aiortc_hooks.losses_recovered_on_a_timer()
    aiortc_hooks.recover_losses_on_a_timer(True)
    aiortc_hooks.complete_frames_on_marker(False)
    assert not aiortc_hooks.marker_frames_active() and aiortc_hooks.losses_recovered_on_a_timer()
    aiortc_hooks.recover_losses_on_a_timer(False)
    assert aiortc.rtcrtpreceiver.RTCRtpReceiver.receive is original_receive


@pytest.mark.parametrize("handler_hooked", [True, False])
def test_a_retransmission_completing_two_frames_shows_both_at_once(handler_hooked: bool) -> None:
    """Two aiortc peers on loopback; frame N's packet is lost, N+1 shows the gap, the retransmission
    completes both: the receiver's track gets both then, not N+1 with whatever packet comes next
    (on a still screen, the keep-alive 5 s later)."""
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    class SteppedTrack(VideoStreamTrack):
        def __init__(self) -> None:
            super().__init__()
            self.allowed = asyncio.Semaphore(0)

        async def recv(self) -> Any:
            await self.allowed.acquire()
            return await super().recv()

    async def run() -> tuple[int, int]:
        aiortc_hooks.complete_frames_on_marker(True)
        aiortc_hooks.recover_losses_on_a_timer(True)
        track = SteppedTrack()
        media: dict[str, Any] = {"pt": None, "drop": False, "dropped": None}
        original = RTCRtpReceiver._handle_rtp_packet

        async def lossy(receiver: RTCRtpReceiver, p: RtpPacket, arrival_time_ms: int) -> None:
            media["pt"] = media["pt"] or p.payload_type  # the first packets are media: RTX only answers NACKs
            if media["drop"] and p.payload_type == media["pt"]:
                media["drop"], media["dropped"] = False, p.sequence_number
                return
            await original(receiver, p, arrival_time_ms)

        RTCRtpReceiver._handle_rtp_packet = lossy  # type: ignore[method-assign]  # after the hooks: they wrap it
        offerer, answerer, received = await connected_pair(track)
        shown = 0

        async def watch() -> None:
            nonlocal shown
            while True:
                await received[0].recv()
                shown += 1

        watcher: asyncio.Task[None] | None = None
        try:
            for _ in range(5):
                track.allowed.release()
            for _ in range(100):
                if received and watcher is None:
                    watcher = asyncio.ensure_future(watch())
                if shown >= 5:
                    break
                await asyncio.sleep(0.05)
            assert shown == 5
            receiver = answerer.getTransceivers()[0].receiver
            assert "_handle_rtp_packet" in vars(receiver), "the hook is the receiver's own"
            if not handler_hooked:  # the marker buffer alone: one frame per packet
                del receiver._handle_rtp_packet
            media["drop"] = True
            track.allowed.release()  # frame 6: its packet lost, nothing after it yet
            await asyncio.sleep(0.3)
            before = shown
            track.allowed.release()  # frame 7 shows the gap: NACK, and the retransmission completes 6 and 7
            await asyncio.sleep(0.5)
            return before, shown
        finally:
            RTCRtpReceiver._handle_rtp_packet = original  # type: ignore[method-assign]
            if watcher is not None:
                watcher.cancel()
            await offerer.close()
            await answerer.close()

    before, after = asyncio.run(run())
    assert before == 5, "frame 6 was lost"
    assert after == (7 if handler_hooked else 6), "aiortc alone holds frame 7 until the next packet"


def test_a_connected_receiver_repairs_a_lost_packet_by_rtx_and_asks_for_a_keyframe_when_that_fails() -> None:
    """Two aiortc peers on loopback, video that stops (a still screen): a lost packet comes back
    by RTX; a packet lost with all its retransmissions costs a keyframe request on the timer."""
    from aiortc.mediastreams import VideoStreamTrack
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    class FewFrames(VideoStreamTrack):
        def __init__(self) -> None:
            super().__init__()
            self.frames = 0
            self.more = asyncio.Event()

        async def recv(self) -> Any:
            if self.frames >= 20:
                await self.more.wait()
                self.more.clear()
                self.frames = 0
            self.frames += 1
            return await super().recv()

    async def run() -> dict[str, Any]:
        aiortc_hooks.complete_frames_on_marker(True)
        aiortc_hooks.recover_losses_on_a_timer(True)
        config = rtc_configuration(IceConfig(loopback_only=True))
        sender_pc, receiver_pc = RTCPeerConnection(config), RTCPeerConnection(config)
        track = FewFrames()
        sender_pc.addTrack(track)
        drop: dict[str, Any] = {"next": False, "seq": None, "for_good": False, "dropped": 0}
        plis: list[float] = []
        original = RTCRtpReceiver._handle_rtp_packet

        async def lossy(receiver: RTCRtpReceiver, p: RtpPacket, arrival_time_ms: int) -> None:
            if drop["next"] and p.payload_type == 97 and drop["seq"] is None:
                drop["seq"], drop["next"] = p.sequence_number, False
                drop["dropped"] += 1
                return
            if drop["for_good"] and drop["seq"] is not None and p.payload_type != 97:  # every RTX
                drop["dropped"] += 1
                return
            await original(receiver, p, arrival_time_ms)

        try:
            RTCRtpReceiver._handle_rtp_packet = lossy  # type: ignore[method-assign]
            await sender_pc.setLocalDescription(await sender_pc.createOffer())
            await receiver_pc.setRemoteDescription(sender_pc.localDescription)
            for transceiver in receiver_pc.getTransceivers():  # VP8 (pt 97) and its RTX only
                transceiver.setCodecPreferences([c for c in RTCRtpReceiver.getCapabilities("video").codecs
                                                 if c.mimeType in ("video/VP8", "video/rtx")])
            await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
            await sender_pc.setRemoteDescription(receiver_pc.localDescription)
            answer = receiver_pc.localDescription.sdp
            receiver = receiver_pc.getTransceivers()[0].receiver
            original_pli = receiver._send_rtcp_pli

            async def counting_pli(media_ssrc: int) -> None:
                plis.append(time.monotonic())
                await original_pli(media_ssrc)

            receiver._send_rtcp_pli = counting_pli  # type: ignore[method-assign]
            for _ in range(200):
                if track.frames >= 20:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            recovery = aiortc_hooks.loss_recovery_of(receiver_pc)
            assert recovery is not None
            assert any(getattr(t.get_coro(), "__name__", "") == "_recover_losses" for t in asyncio.all_tasks())
            # 1: a packet lost once, its retransmission arrives.
            drop["next"] = True
            track.more.set()
            await asyncio.sleep(1.5)
            repaired, plis_after_repair = recovery.repaired, len(plis)
            # 2: a packet lost with every retransmission, on a screen that stops after it.
            drop.update(next=True, seq=None, for_good=True)
            track.more.set()
            for _ in range(100):
                if drop["seq"] is not None:
                    break
                await asyncio.sleep(0.01)
            lost_at = time.monotonic()
            await asyncio.sleep(2.0)
            return {"answer": answer, "repaired": repaired, "plis_after_repair": plis_after_repair,
                    "plis": [t - lost_at for t in plis], "round_trip": recovery.round_trip,
                    "abandoned": recovery.abandoned_count, "timer": receiver}
        finally:
            RTCRtpReceiver._handle_rtp_packet = original  # type: ignore[method-assign]
            await sender_pc.close()
            await receiver_pc.close()
            await asyncio.sleep(0.1)
            assert not any(getattr(t.get_coro(), "__name__", "") == "_recover_losses" for t in asyncio.all_tasks()), \
                "the timer ends with the receiver"

    result = asyncio.run(run())
    assert "rtx/90000" in result["answer"] and "a=rtcp-fb:97 nack" in result["answer"]
    assert result["repaired"] >= 1 and result["plis_after_repair"] == 0  # RTX repaired it, no keyframe needed
    assert result["abandoned"] >= 1
    assert result["round_trip"] is not None and result["round_trip"] < 0.5
    first_pli = result["plis"][0]
    # Three NACKs 50 ms apart (loopback), then the request at once: well under a second, with slack.
    assert 0.1 < first_pli < 0.6, result["plis"]


class LossyIceEnd:
    """One end of an in-memory pair standing in for two ICE transports: what it sends reaches the other end, but for
    the datagrams whose numbers (0 first) are in ``lost``."""

    def __init__(self, role: str, lost: set[int]) -> None:
        self.role = role
        self.peer: LossyIceEnd | None = None
        self.sent: list[tuple[float, int, bool]] = []
        """(when, bytes, lost) of each datagram sent."""
        self._lost = lost
        self._arrived: asyncio.Queue[bytes] = asyncio.Queue()

    async def _send(self, data: bytes) -> None:
        lost = len(self.sent) in self._lost
        self.sent.append((time.monotonic(), len(data), lost))
        if not lost:
            assert self.peer is not None
            self.peer._arrived.put_nowait(data)

    async def _recv(self) -> bytes:
        return await self._arrived.get()


def dtls_handshake(server_lost: set[int], client_lost: set[int]) -> tuple[float, LossyIceEnd, LossyIceEnd]:
    """A real DTLS handshake (aiortc's, OpenSSL's) over :class:`LossyIceEnd`: its seconds, and both ends."""
    async def run() -> tuple[float, LossyIceEnd, LossyIceEnd]:
        server_end, client_end = LossyIceEnd("controlling", server_lost), LossyIceEnd("controlled", client_lost)
        server_end.peer, client_end.peer = client_end, server_end
        server = RTCDtlsTransport(server_end, [RTCCertificate.generateCertificate()])  # type: ignore[arg-type]
        client = RTCDtlsTransport(client_end, [RTCCertificate.generateCertificate()])  # type: ignore[arg-type]
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(server.start(client.getLocalParameters()),
                                              client.start(server.getLocalParameters())), 10)
        took = time.monotonic() - started
        assert (server.state, client.state) == ("connected", "connected")
        await asyncio.sleep(0.6)  # what is sent again after the handshake is sent by now
        await server.stop()
        await client.stop()
        return took, server_end, client_end

    return asyncio.run(run())


def test_aiortc_still_writes_and_reads_its_dtls_handshake_where_the_resend_hook_looks() -> None:
    assert "bio_read" in inspect.getsource(RTCDtlsTransport._write_ssl)
    assert "DTLSv1_get_timeout" in inspect.getsource(RTCDtlsTransport._recv_next)
    assert "self.__rx_packets += 1" in inspect.getsource(RTCDtlsTransport._recv_next)
    took, server_end, client_end = dtls_handshake(set(), set())
    # Flights: the client's hello, the server's hello, the client's finish, the server's finish (DTLS 1.2).
    assert [size > 0 for _, size, _ in server_end.sent[:2]] == [True, True] and len(client_end.sent) >= 2
    assert took < 0.2


@pytest.mark.parametrize(("server_lost", "client_lost"), [
    (set(), {0}),  # the client's hello
    ({0}, set()),  # the server's first flight
    (set(), {1}),  # the client's last flight: the server's copy of its own, crossing it, is no answer
    ({1}, set()),  # the server's last flight, sent after its handshake was done
    (set(), {0, 1}),  # the client's hello and its first copy
], ids=["client hello", "server hello", "client finish", "server finish", "hello and its copy"])
def test_a_lost_dtls_flight_goes_again_within_a_quarter_second_not_openssls_second(
    server_lost: set[int], client_lost: set[int],
) -> None:
    aiortc_hooks.quick_dtls_resends(True)
    assert aiortc_hooks.dtls_resends_quick()
    took, _, _ = dtls_handshake(server_lost, client_lost)
    resends = 2 if client_lost == {0, 1} else 1
    assert aiortc_hooks.DTLS_RESEND_AFTER[resends - 1] <= took < aiortc_hooks.DTLS_RESEND_AFTER[resends - 1] + 0.2
    aiortc_hooks.quick_dtls_resends(False)
    assert not aiortc_hooks.dtls_resends_quick()
    took, _, _ = dtls_handshake(server_lost, client_lost)
    assert took >= 0.95, "OpenSSL's own timer: a second"


def test_a_handshake_with_nothing_lost_sends_only_the_servers_last_flight_again() -> None:
    # The flights the peer answered go no more; the server's last one goes on the schedule (its loss is silent).
    aiortc_hooks.quick_dtls_resends(True)
    _, server_end, client_end = dtls_handshake(set(), set())
    server_sizes = [size for _, size, _ in server_end.sent]
    finish = server_sizes[1]
    assert server_sizes.count(finish) == 1 + len(aiortc_hooks.DTLS_RESEND_AFTER)
    client_sizes = [size for _, size, _ in client_end.sent]
    assert client_sizes.count(client_sizes[0]) == 1 and client_sizes.count(client_sizes[1]) == 1


@pytest.mark.parametrize("quick", [True, False])
def test_quick_stun_retransmits_resend_a_real_transaction_sooner_and_give_up_as_late(quick: bool) -> None:
    sent: list[float] = []

    class Silent:
        """A peer that never answers: every send of the request is timed."""

        def send_stun(self, message: stun.Message, addr: tuple[str, int]) -> None:
            sent.append(time.monotonic())

    async def run() -> None:
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        transaction = stun.Transaction(request, ("127.0.0.1", 9), Silent())
        with pytest.raises(TimeoutError):  # not its own timeout: only the first three sends are waited for
            await asyncio.wait_for(transaction.run(), 1.9 if quick else 1.6)

    aiortc_hooks.quick_stun_retransmits(quick)
    try:
        assert aiortc_hooks.stun_retransmits_quick() is quick
        asyncio.run(run())
        retries = aioice.stun.RETRY_MAX
        rto = aioice.stun.RETRY_RTO
    finally:
        aiortc_hooks.quick_stun_retransmits(False)
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    first = aiortc_hooks.QUICK_STUN_RTO if quick else 0.5
    assert gaps == pytest.approx([first, 2 * first, 4 * first][:len(gaps)], abs=0.05) and len(gaps) >= 2
    # Given up after as long: the doubling sum over the sends and the last wait.
    assert rto * (2 ** (retries + 1) - 1) >= 0.5 * (2 ** 7 - 1)
