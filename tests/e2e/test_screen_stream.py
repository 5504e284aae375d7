"""The screen pipeline between real peers: H.264 negotiated, changes arrive at once, a static screen is quiet,
a video packet lost for good costs a keyframe, not the picture, the first keyframe is capped and the
picture sharpens.

A broker, a ``deskhand-host`` process and the technician's RemoteView on
127.0.0.1, the screen an Xvfb painted by a Tk window. Timings here are loose
bounds that catch a broken pipeline (a frame interval lost, a queue building
up), not benchmarks: ``bench/screen_stream.py`` measures.
"""

from __future__ import annotations

import asyncio
import re
import time

import av
import pytest
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from bench.frame_probe import ColourProbe, LumaFrames
from bench.stream_figures import psnr
from bench.workload import WorkloadProcess
from host_client.capture import Screen
from host_client.colour_conversion import to_i420
from peer.aiortc_hooks import LOST_PACKET_PATIENCE, loss_recovery_of
from peer.loss_recovery import abandon_after
from tests.support.live_session import live_session
from tests.support.packet_loss import KeyframeLoss, record_keyframe_requests
from tests.support.screen_painter import PainterProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    return {"DESKHAND_ICE_LOOPBACK": "true"}


def negotiated_video_codec(sdp: str) -> str:
    """The codec of the first payload type on the answer's video line."""
    m_line = re.search(r"^m=video \d+ \S+ (\d+)", sdp, re.M)
    assert m_line, sdp
    rtpmap = re.search(rf"^a=rtpmap:{m_line.group(1)} ([^/\r\n]+)", sdp, re.M)
    assert rtpmap, sdp
    return rtpmap.group(1)


async def test_h264_carries_changes_quickly_and_a_static_screen_sends_almost_nothing(broker, xvfb) -> None:
    with PainterProcess(xvfb.env) as painter:
        painter.fill((0, 0, 0))
        probe = ColourProbe(painter.width // 2, painter.height // 2)
        async with live_session(broker, xvfb.env, "--consent", "view", on_frame=probe.on_frame) as live:
            frame: av.VideoFrame = await live.view.wait_for_frame(60)
            assert (frame.width, frame.height) == (1920, 1080)
            pc = live.view.peer_connection
            assert pc is not None and negotiated_video_codec(pc.localDescription.sdp) == "H264"

            latencies = []
            for colour in [(230, 25, 75), (0, 130, 200), (60, 180, 75), (255, 225, 25)] * 3:
                probe.expect(colour)
                painted = await asyncio.to_thread(painter.fill, colour)
                latencies.append(await probe.seen(timeout=5) - painted)
                await asyncio.sleep(0.2)
            latencies.sort()
            # Loose: the old pipeline's median was 143 ms; a lost frame interval or a queue shows here, in the
            # fastest quarter too. Alone the median is 23-33 ms; under the whole suite on two busy cores it was
            # 126 ms once (the fastest quarter 36-84 ms): the quarter is held to 0.1 s, the median to 0.2 s.
            assert latencies[len(latencies) // 4] < 0.1 and latencies[len(latencies) // 2] < 0.2, latencies

            await asyncio.sleep(2.0)  # refinement frames after the last change
            before = live.view.frames_received
            await asyncio.sleep(3.0)
            assert live.view.frames_received - before <= 1, "a static screen sends at most a keep-alive"


class PacketLoss:
    """Wraps the technician's RTP receiving: once armed, the next video packet is lost, and so is
    every retransmission of it (RTX comes on its own SSRC), as when a burst fills a socket buffer."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.armed = False
        self.lost: RtpPacket | None = None
        receive = RTCRtpReceiver._handle_rtp_packet

        async def lossy(receiver: RTCRtpReceiver, packet: RtpPacket, arrival_time_ms: int) -> None:
            if self.armed and self.lost is None:
                self.lost = packet
                return
            if self.lost is not None and packet.ssrc != self.lost.ssrc:
                return
            await receive(receiver, packet, arrival_time_ms)

        monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", lossy)


async def test_a_video_packet_lost_for_good_costs_a_keyframe_not_the_picture(broker, xvfb, monkeypatch) -> None:
    # aiortc asks for a lost packet once (NACK) and would then hold every newer frame until
    # 512 packets had come: minutes of a screen that changes now and then.
    loss = PacketLoss(monkeypatch)
    with PainterProcess(xvfb.env) as painter:
        painter.fill((0, 0, 0))
        probe = ColourProbe(painter.width // 2, painter.height // 2)
        async with live_session(broker, xvfb.env, "--consent", "view", on_frame=probe.on_frame) as live:
            await live.view.wait_for_frame(60)
            await asyncio.sleep(1.0)  # the first picture settled
            loss.armed = True
            await asyncio.to_thread(painter.fill, (230, 25, 75))  # the first packet of this change is lost
            await asyncio.sleep(LOST_PACKET_PATIENCE + 0.5)  # NACKed, retransmitted, lost again
            assert loss.lost is not None
            probe.expect((0, 130, 200))
            painted = await asyncio.to_thread(painter.fill, (0, 130, 200))
            # The change behind the hole: the receiver gives up on it, asks for a keyframe, shows it.
            assert await probe.seen(timeout=10) - painted < 5


async def test_a_keyframe_packet_lost_on_a_still_screen_is_asked_for_again_then_a_keyframe(
        broker, xvfb, monkeypatch) -> None:
    # Nothing arrives after the lost packet to show the gap again: the receiver's timer must act.
    loss = KeyframeLoss(monkeypatch)
    with PainterProcess(xvfb.env) as painter:
        # A keyframe of several packets (a plain screen's may be one in H.264 main).
        painter.text([f"{n:02d} the printer queue on spooler-{n % 3} holds job {1000 + 7 * n}" for n in range(40)])
        probe = ColourProbe(painter.width // 2, painter.height // 2)
        async with live_session(broker, xvfb.env, "--consent", "view", on_frame=probe.on_frame) as live:
            await live.view.wait_for_frame(60)
            pc = live.view.peer_connection
            assert pc is not None
            receiver = pc.getTransceivers()[0].receiver
            send_pli = receiver._send_rtcp_pli
            plis = record_keyframe_requests(receiver)
            await asyncio.sleep(3.0)  # the first picture and its refinement settled: a still screen
            # ...and no keyframe for 2 s: the first bitrate estimate (about 3 s in) can give the encoder a
            # new frame cap, hence a new encoder and a keyframe, which right after the loss would make the
            # request this test waits for unneeded.
            settle_until = time.monotonic() + 15
            while loss.keyframes_at and time.monotonic() - loss.keyframes_at[-1] < 2.0 < settle_until - time.monotonic():
                await asyncio.sleep(0.1)
            loss.armed = True
            keyframes_before = len(loss.keyframes_at)
            assert loss.media_ssrc is not None
            await send_pli(loss.media_ssrc)  # the keyframe whose second packet is lost
            for _ in range(100):
                if loss.lost_at is not None:
                    break
                await asyncio.sleep(0.05)
            assert loss.lost_at is not None, "no keyframe came"
            frames = live.view.frames_received
            await asyncio.sleep(3.0)
            recovery = loss_recovery_of(pc)
            assert recovery is not None
            asked = [t - loss.lost_at for t in plis if t > loss.lost_at]
            keyframes = [t - loss.lost_at for t in loss.keyframes_at[keyframes_before + 1:]]
            print(f"round trip {recovery.round_trip}, keyframe requests after the loss {asked}, "
                  f"keyframes after it {keyframes}, NACKs {recovery.nacks_sent}, abandoned {recovery.abandoned_count}")
            # RTX negotiated for H.264, and the host answered the NACKs with it (those retransmissions were lost).
            h264 = re.search(r"^m=video \d+ \S+ (\d+)", pc.localDescription.sdp, re.M)
            assert h264 and re.search(rf"^a=fmtp:\d+ apt={h264.group(1)}\r?$", pc.localDescription.sdp, re.M)
            assert loss.retransmissions_lost >= 1
            due = abandon_after(recovery.round_trip) + 0.5
            if keyframes and keyframes[0] < due and not asked:
                # The host sent a keyframe of its own before the request was due (its encoder took a new
                # frame cap: the burst it had just sent raised the estimate). The receiver skipped the
                # hole to it at once and rightly asked for nothing; the timer's request itself is checked
                # on two aiortc peers in tests/unit/test_aiortc_hooks.py.
                assert recovery.abandoned_count == 0
            else:
                assert asked and asked[0] < due, asked
                assert keyframes and keyframes[0] - asked[0] < 1.0, (asked, keyframes)  # the sender answered
            assert live.view.frames_received > frames, "the picture came back"
            probe.expect((0, 130, 200))
            painted = await asyncio.to_thread(painter.fill, (0, 130, 200))
            assert await probe.seen(timeout=10) - painted < 5


async def test_the_first_keyframe_is_capped_and_the_picture_sharpens_within_seconds(
    broker, xvfb, monkeypatch
) -> None:
    monkeypatch.setenv("DISPLAY", xvfb.display)
    workload = await asyncio.to_thread(WorkloadProcess, xvfb.env)  # 1080p of text: a 144 kB keyframe uncapped
    try:
        screen = Screen()
        source = to_i420(screen.grab_pixels(screen.monitors()[0])).to_ndarray(format="gray")
        screen.close()
        sharpness = LumaFrames()
        async with live_session(broker, xvfb.env, "--consent", "view", on_frame=sharpness.on_frame) as live:
            await live.view.wait_for_frame(60)
            await asyncio.sleep(11.0)
        first_at = sharpness.frames[0][0]
        quality = [(arrived - first_at, psnr(luma, source)) for arrived, luma in sharpness.frames]
        assert quality[0][1] < 35, f"the first keyframe fits 1 Mbit/s, so it is coarse: {quality[0][1]:.1f} dB"
        sharp_after = next((t for t, db in quality if db >= 40), None)
        # Generous: the refinement frames come at the encoder's pace, slower on a loaded machine.
        assert sharp_after is not None and sharp_after < 10.0, [(round(t, 2), round(db, 1)) for t, db in quality]
        assert quality[-1][1] >= 40
    finally:
        await asyncio.to_thread(workload.close)
