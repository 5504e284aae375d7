"""What a pacer needs to know about an RTP packet, read from its bytes (RFC 3550).

The pacer sits under aiortc's video sender, where packets are already
serialized: parsing them back into aiortc's ``RtpPacket`` for a few header
fields would cost a copy per packet. These helpers read the fields in place,
tell whether a packet starts a keyframe (H.264 or VP8), and rewrite the
abs-send-time header extension when the packet really leaves.

Pure functions on bytes; a packet too short for what it claims raises
``ValueError``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_HEADER_SIZE = 12
ONE_BYTE_EXTENSION_PROFILE = 0xBEDE
"""RFC 8285 one-byte header extensions (aiortc writes these for ids up to 14)."""
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
ABS_SEND_TIME_FRACTION_BITS = 18
"""abs-send-time is seconds in 6.18 fixed point, 24 bits (wraps every 64 s)."""

H264_IDR_SLICE = 5
H264_SPS = 7
"""With x264's ``repeat-headers`` every keyframe starts with its SPS (and PPS)."""
H264_STAP_A = 24
H264_FU_A = 28
H264_NAL_TYPE_MASK = 0x1F
H264_FU_START = 0x80


@dataclass(frozen=True)
class RtpHeader:
    """The fixed header's fields of one RTP packet, and where its payload starts."""

    payload_type: int
    marker: bool
    sequence_number: int
    timestamp: int
    ssrc: int
    payload_offset: int
    payload_end: int
    """Payload is ``data[payload_offset:payload_end]`` (padding excluded)."""


def rtp_header(data: bytes) -> RtpHeader:
    """The header of the RTP packet ``data`` (CSRCs, extensions and padding skipped)."""
    if len(data) < RTP_HEADER_SIZE or data[0] >> 6 != 2:
        raise ValueError("not an RTP version 2 packet")
    first, second, sequence_number, timestamp, ssrc = struct.unpack_from("!BBHLL", data)
    offset = RTP_HEADER_SIZE + 4 * (first & 0x0F)
    if first & 0x10:
        if len(data) < offset + 4:
            raise ValueError("RTP header extension is truncated")
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
    end = len(data)
    if first & 0x20:
        if data[-1] == 0:
            raise ValueError("RTP padding length is invalid")
        end -= data[-1]
    if offset > end:
        raise ValueError("RTP packet is shorter than its header says")
    return RtpHeader(
        payload_type=second & 0x7F, marker=bool(second & 0x80), sequence_number=sequence_number,
        timestamp=timestamp, ssrc=ssrc, payload_offset=offset, payload_end=end,
    )


def rtx_original_sequence_number(data: bytes, header: RtpHeader) -> int:
    """The sequence number of the packet an RTX packet (RFC 4588) carries again: its payload's first 2 bytes."""
    if header.payload_end - header.payload_offset < 2:
        raise ValueError("RTX packet without its original sequence number")
    (original,) = struct.unpack_from("!H", data, header.payload_offset)
    return int(original)


def starts_keyframe(payload: bytes, codec: str) -> bool:
    """Whether an RTP payload of ``codec`` ("h264" or "vp8", any case) starts a keyframe
    (asked of a frame's first packet).

    H.264: a NAL unit of an IDR slice or of an SPS (x264 sends SPS/PPS first, so
    the keyframe's first packet is usually a STAP-A holding them), alone, inside
    a STAP-A, or as the start fragment of an FU-A. VP8: the payload descriptor
    marks the start of partition 0 and the frame tag says key frame. Other
    codecs: never (the pacer then treats every frame as a delta frame).
    """
    name = codec.lower()
    if name == "h264":
        return _h264_starts_keyframe(payload)
    if name == "vp8":
        return _vp8_starts_keyframe(payload)
    return False


def _h264_starts_keyframe(payload: bytes) -> bool:
    if not payload:
        return False
    nal_type = payload[0] & H264_NAL_TYPE_MASK
    if nal_type == H264_FU_A:
        return len(payload) >= 2 and bool(payload[1] & H264_FU_START) and (
            payload[1] & H264_NAL_TYPE_MASK in (H264_IDR_SLICE, H264_SPS))
    if nal_type == H264_STAP_A:
        offset = 1
        while offset + 2 < len(payload):
            (size,) = struct.unpack_from("!H", payload, offset)
            if size and payload[offset + 2] & H264_NAL_TYPE_MASK in (H264_IDR_SLICE, H264_SPS):
                return True
            offset += 2 + size
        return False
    return nal_type in (H264_IDR_SLICE, H264_SPS)


def _vp8_starts_keyframe(payload: bytes) -> bool:
    # RFC 7741 payload descriptor: X R N S R PID(3), then optional I L T K byte and fields.
    if not payload:
        return False
    first = payload[0]
    if not first & 0x10 or first & 0x07:  # S: start of a partition; PID 0: the first one
        return False
    offset = 1
    if first & 0x80:
        if len(payload) < 2:
            return False
        extension = payload[1]
        offset = 2
        if extension & 0x80:  # I: picture id, 15 bits when its M bit is set
            offset += 2 if len(payload) > offset and payload[offset] & 0x80 else 1
        if extension & 0x40:  # L: TL0PICIDX
            offset += 1
        if extension & 0x30:  # T or K: one shared byte
            offset += 1
    # VP8 frame tag: bit 0 clear = key frame; the key frame start code follows the 3-byte tag.
    return len(payload) >= offset + 6 and not payload[offset] & 0x01 and (
        payload[offset + 3:offset + 6] == b"\x9d\x01\x2a")


def abs_send_time(seconds: float) -> int:
    """The 24-bit abs-send-time value for a send time in seconds (only differences matter to a receiver)."""
    return int(seconds * (1 << ABS_SEND_TIME_FRACTION_BITS)) & 0xFFFFFF


def with_abs_send_time(data: bytes, extension_id: int, value: int) -> bytes:
    """``data`` with its abs-send-time one-byte extension (``extension_id``) set to ``value``.

    The packet is returned unchanged when it carries no such extension (no
    extension at all, two-byte extensions, or another id).
    """
    if len(data) < RTP_HEADER_SIZE or not data[0] & 0x10:
        return data
    start = RTP_HEADER_SIZE + 4 * (data[0] & 0x0F)
    if len(data) < start + 4:
        return data
    profile, words = struct.unpack_from("!HH", data, start)
    if profile != ONE_BYTE_EXTENSION_PROFILE:
        return data
    position = start + 4
    end = min(len(data), position + 4 * words)
    while position < end:
        byte = data[position]
        if byte == 0:  # padding between elements
            position += 1
            continue
        element_id, length = byte >> 4, (byte & 0x0F) + 1
        if element_id == 15:  # reserved: stop reading (RFC 8285)
            return data
        if element_id == extension_id and length == 3 and position + 4 <= end:
            patched = bytearray(data)
            patched[position + 1:position + 4] = (value & 0xFFFFFF).to_bytes(3, "big")
            return bytes(patched)
        position += 1 + length
    return data
