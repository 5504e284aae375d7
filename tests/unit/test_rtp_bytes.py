"""RTP fields, keyframe starts and abs-send-time read from bytes (peer.rtp_bytes), checked against aiortc's own
packets and encoders."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters, RTCRtpSendParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, wrap_rtx

from peer.rtp_bytes import (
    ABS_SEND_TIME_URI,
    abs_send_time,
    rtp_header,
    rtx_original_sequence_number,
    starts_keyframe,
    with_abs_send_time,
)
from peer.screen_encoder import ScreenH264Encoder

ABS_SEND_TIME_ID = 3
MID_ID = 1


def extensions_map() -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(RTCRtpSendParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=MID_ID, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
        RTCRtpHeaderExtensionParameters(id=ABS_SEND_TIME_ID, uri=ABS_SEND_TIME_URI),
    ]))
    return extensions


def packet_bytes(*, seq: int = 1000, marker: bool = True, payload: bytes = b"\x65abc",
                 send_time: int | None = 0x123456, csrc: list[int] | None = None, padding: int = 0) -> bytes:
    packet = RtpPacket(payload_type=102, marker=int(marker), sequence_number=seq, timestamp=90_000, ssrc=0xCAFE)
    packet.payload = payload
    packet.csrc = csrc or []
    packet.padding_size = padding
    packet.extensions.mid = "0"
    packet.extensions.abs_send_time = send_time
    return packet.serialize(extensions_map())


def test_header_fields_match_aiortcs_parse() -> None:
    for data in (packet_bytes(), packet_bytes(marker=False, send_time=None, csrc=[1, 2], padding=3)):
        header = rtp_header(data)
        parsed = RtpPacket.parse(data, extensions_map())
        assert (header.payload_type, header.marker, header.sequence_number, header.timestamp, header.ssrc) == (
            parsed.payload_type, bool(parsed.marker), parsed.sequence_number, parsed.timestamp, parsed.ssrc)
        assert data[header.payload_offset:header.payload_end] == parsed.payload


# Named: aiortc pads with random bytes, and ids made of them would differ between xdist workers.
@pytest.mark.parametrize(
    "data", [b"", b"\x80" * 11, b"\x00" * 12, packet_bytes()[:14], packet_bytes(padding=3)[:-1] + b"\x00"],
    ids=["empty", "short", "version 0", "cut in its extension", "padding past the end"],
)
def test_broken_packets_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        rtp_header(data)


def test_rtx_carries_the_original_sequence_number() -> None:
    original = RtpPacket.parse(packet_bytes(seq=4242), extensions_map())
    rtx = wrap_rtx(original, payload_type=103, sequence_number=7, ssrc=0xBEEF).serialize(extensions_map())
    assert rtx_original_sequence_number(rtx, rtp_header(rtx)) == 4242
    empty = packet_bytes(payload=b"\x01")
    with pytest.raises(ValueError):
        rtx_original_sequence_number(empty, rtp_header(empty))


def test_abs_send_time_is_rewritten_in_place_and_nothing_else_changes() -> None:
    data = packet_bytes(send_time=0x123456)
    restamped = with_abs_send_time(data, ABS_SEND_TIME_ID, 0xABCDEF)
    parsed = RtpPacket.parse(restamped, extensions_map())
    assert parsed.extensions.abs_send_time == 0xABCDEF
    assert parsed.extensions.mid == "0" and parsed.payload == b"\x65abc" and len(restamped) == len(data)
    assert with_abs_send_time(data, 9, 1) == data  # another id: untouched
    bare = packet_bytes(send_time=None)
    assert with_abs_send_time(bare, ABS_SEND_TIME_ID, 1) == bare


def test_abs_send_time_is_six_point_eighteen_seconds_wrapping_at_64() -> None:
    assert abs_send_time(1.0) == 1 << 18
    assert abs_send_time(64.5) == abs_send_time(0.5)


def frames(count: int) -> list[av.VideoFrame]:
    rng = np.random.default_rng(1)
    result = []
    for index in range(count):
        pixels = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = index * 3000, fractions.Fraction(1, 90_000)
        result.append(frame)
    return result


def test_h264_keyframes_are_recognised_from_their_first_packet() -> None:
    encoder = ScreenH264Encoder()
    first, second = frames(2)
    keyframe, _ = encoder.encode(first, force_keyframe=True)
    delta, _ = encoder.encode(second, force_keyframe=False)
    assert starts_keyframe(keyframe[0], "H264")
    assert not any(starts_keyframe(payload, "h264") for payload in delta)


def test_h264_packet_kinds() -> None:
    assert starts_keyframe(b"\x67\x42", "h264")  # a lone SPS
    assert starts_keyframe(b"\x65\x88", "h264")  # a lone IDR slice
    assert starts_keyframe(b"\x7c\x85\x00", "h264")  # FU-A start of an IDR slice
    assert not starts_keyframe(b"\x7c\x05\x00", "h264")  # ... a middle fragment
    assert starts_keyframe(b"\x78\x00\x02\x09\x10\x00\x02\x67\x42", "h264")  # STAP-A: AUD then SPS
    assert not starts_keyframe(b"\x78\x00\x02\x09\x10\x00\x02\x41\x9a", "h264")  # STAP-A: AUD then a slice
    assert not starts_keyframe(b"\x78\x00\x09\x09", "h264")  # STAP-A truncated
    assert not starts_keyframe(b"", "h264") and not starts_keyframe(b"\x65", "opus")


def test_vp8_keyframes_are_recognised_from_their_first_packet() -> None:
    encoder = get_encoder(RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90_000, payloadType=96))
    first, second = frames(2)
    keyframe, _ = encoder.encode(first, force_keyframe=True)
    delta, _ = encoder.encode(second, force_keyframe=False)
    assert starts_keyframe(keyframe[0], "VP8")
    assert not any(starts_keyframe(payload, "vp8") for payload in keyframe[1:] + delta)
    assert not starts_keyframe(b"", "vp8") and not starts_keyframe(b"\x90", "vp8")
