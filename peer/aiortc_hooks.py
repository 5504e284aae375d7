"""The one place that reaches into aiortc/aioice internals.

Each hook swaps one module-level name or method for Deskhand's own and can be
switched back off; ``tests/unit/test_aiortc_hooks.py`` checks that every hooked
name still exists and behaves as assumed in the pinned aiortc/aioice range
(``pyproject.toml``: ``aiortc>=1.16,<1.17``).

* :func:`gather_loopback_only` -- aioice gathers host candidates from every
  interface except loopback and has no option to change that; tests and
  one-machine demos must keep all traffic on 127.0.0.1.
* :func:`use_screen_encoder` -- aiortc's sender builds its encoder with
  ``aiortc.rtcrtpsender.get_encoder(codec)``; for H.264 we hand it
  :class:`~peer.screen_encoder.ScreenH264Encoder` instead of aiortc's camera
  encoder.
* :func:`forward_keyframe_requests` -- aiortc turns a PLI/FIR into a flag read
  when the *next* frame is encoded; a capture track that sends frames only when
  the screen changes would sit on that flag until something moves. The hook also
  calls the track's ``keyframe_requested()`` so it sends a frame now.
* :func:`complete_frames_on_marker` -- aiortc's receiver jitter buffer hands a
  video frame to the decoder only when the first packet of the *next* frame
  arrives, a whole frame interval late (forever, on a screen that stopped
  changing). RTP marks a frame's last packet with the marker bit; the hook's
  buffer releases the frame as soon as it is complete.
"""

from __future__ import annotations

import aioice.ice
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
from aiortc.codecs import get_encoder
from aiortc.codecs.base import Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import RTCRtpSender

from .screen_encoder import ScreenH264Encoder

LOOPBACK_ADDRESS = "127.0.0.1"

# aiortc's own, read where they are defined: the hooked modules import them without re-exporting.
_original_get_host_addresses = aioice.ice.get_host_addresses
_original_get_encoder = get_encoder
_original_send_keyframe = RTCRtpSender._send_keyframe
_original_jitter_buffer = JitterBuffer


def _loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return [LOOPBACK_ADDRESS] if use_ipv4 else []


def gather_loopback_only(enabled: bool) -> None:
    """Make every ICE agent in this process gather only 127.0.0.1 (or undo that)."""
    aioice.ice.get_host_addresses = _loopback_addresses if enabled else _original_get_host_addresses


def loopback_only_active() -> bool:
    return aioice.ice.get_host_addresses is _loopback_addresses


def _screen_encoder_for(codec: RTCRtpCodecParameters) -> Encoder:
    if codec.mimeType.lower() == "video/h264":
        return ScreenH264Encoder()
    return _original_get_encoder(codec)


def use_screen_encoder(enabled: bool) -> None:
    """Encode H.264 video in this process with :class:`ScreenH264Encoder` (or aiortc's own again)."""
    # The name rtcrtpsender imported (its sender calls it from there) is the one to replace.
    encoder_for = _screen_encoder_for if enabled else _original_get_encoder
    aiortc.rtcrtpsender.get_encoder = encoder_for  # type: ignore[attr-defined]  # imported there, not re-exported


def screen_encoder_active() -> bool:
    return aiortc.rtcrtpsender.get_encoder is _screen_encoder_for  # type: ignore[attr-defined]  # imported there, not re-exported


def _send_keyframe_and_tell_track(sender: RTCRtpSender) -> None:
    _original_send_keyframe(sender)
    notify = getattr(sender.track, "keyframe_requested", None)
    if callable(notify):
        notify()


def forward_keyframe_requests(enabled: bool) -> None:
    """Also tell a sender's track (``keyframe_requested()``, when it has one) that the receiver wants a keyframe."""
    # mypy also reads a plain function put on a class as not matching the method it replaces: "assignment".
    hook = _send_keyframe_and_tell_track if enabled else _original_send_keyframe
    RTCRtpSender._send_keyframe = hook  # type: ignore[method-assign, assignment]  # the hook: aiortc has no option for it


def keyframe_requests_forwarded() -> bool:
    return RTCRtpSender._send_keyframe is _send_keyframe_and_tell_track


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, releasing a video frame once its marker-bit packet is in."""

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        if self._is_video and self._origin is not None:
            packets = []
            timestamp = None
            for count in range(self.capacity):
                packet = self._packets[(self._origin + count) % self.capacity]
                if packet is None or (timestamp is not None and packet.timestamp != timestamp):
                    break  # a gap, or a frame without its marker (lost): aiortc's rule below decides
                timestamp = packet.timestamp
                packets.append(packet)
                if packet.marker:
                    self.remove(count + 1)
                    data = b"".join(p._data for p in packets)  # type: ignore[attr-defined]  # aiortc's receiver sets it, undeclared
                    return JitterFrame(data=data, timestamp=timestamp)
        return super()._remove_frame(sequence_number)


def complete_frames_on_marker(enabled: bool) -> None:
    """Make receivers created after this call use :class:`MarkerJitterBuffer` (or aiortc's own)."""
    # The name rtcrtpreceiver imported (its receiver builds its buffer from there) is the one to replace.
    buffer = MarkerJitterBuffer if enabled else _original_jitter_buffer
    aiortc.rtcrtpreceiver.JitterBuffer = buffer  # type: ignore[attr-defined]  # imported there, not re-exported


def marker_frames_active() -> bool:
    return aiortc.rtcrtpreceiver.JitterBuffer is MarkerJitterBuffer  # type: ignore[attr-defined]  # imported there, not re-exported
