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
* :func:`offer_h264_main` -- aiortc knows H.264 only as constrained baseline
  (``aiortc.codecs.CODECS``); the main profile's CABAC takes a quarter fewer bytes for
  text. The hook adds it (with its RTX entry) to what this process offers and answers;
  :func:`use_screen_encoder` encodes for whichever profile the peers agreed on.
* :func:`forward_keyframe_requests` -- aiortc turns a PLI/FIR into a flag read
  when the *next* frame is encoded; a capture track that sends frames only when
  the screen changes would sit on that flag until something moves. The hook also
  calls the track's ``keyframe_requested()`` so it sends a frame now.
* :func:`report_receiver_losses` -- aiortc's sender reads a receiver report's
  fraction lost only into its stats; REMB is all its encoder hears of the link. The
  hook also hands the fraction to the screen encoder, hence to the stream's budget
  (:meth:`~peer.stream_budget.StreamBudget.receiver_loss`): heavy loss is
  congestion even when the receiver's estimate misses it. So do the packets each
  NACK names (:meth:`~peer.stream_budget.StreamBudget.packets_nacked`): a round trip
  after a loss, where the next report may come a second later.
* :func:`pace_video_senders` -- aiortc's sender hands each packet to its DTLS
  transport the moment it is encoded: a keyframe leaves as one burst a slow
  link's bottleneck queue drops the tail of, and retransmissions join it. The
  hook gives every video sender a paced view of its transport
  (:class:`PacedTransport`, one :class:`~peer.pacer.LinkPacer` per transport),
  re-stamps abs-send-time as packets leave, and raises aiortc's RTP history so
  NACKs for queued packets can still be answered. RTCP and data channels never
  wait behind video.
* :func:`complete_frames_on_marker` -- aiortc's receiver jitter buffer hands a
  video frame to the decoder only when the first packet of the *next* frame
  arrives, a whole frame interval late (forever, on a screen that stopped
  changing). RTP marks a frame's last packet with the marker bit; the hook's
  buffer releases the frame as soon as it is complete. It also recovers from a
  packet lost for good: aiortc asks for it once (NACK) and otherwise waits until
  512 newer packets have come, minutes of a screen that barely changes, during
  which the picture stays frozen. The hook's buffer gives up on a hole after
  :data:`LOST_PACKET_PATIENCE`, asks for a keyframe (PLI) and passes nothing on
  until one comes (what follows a hole refers to pictures the decoder never had).
  A complete keyframe behind a hole is passed on at once: no wait for the hole.
  aiortc passes on one frame per packet; when a retransmission fills a hole and so
  completes the frames behind it too, the hook passes on all of them (left behind, every
  later frame was shown a frame late: a colour change waited for the next frame, 0.3 s, and
  once that was lost for the keep-alive, 5 s).
* :func:`recover_losses_on_a_timer` -- aiortc's receiver NACKs only when a newer
  packet shows a gap, never again, and with each new gap NACKs every seq it ever
  missed (also those long given up on); it has no timer. The hook's
  :class:`TimedNackGenerator` hands arrivals to a
  :class:`~peer.loss_recovery.LossRecovery`, linked with the marker buffer, and a
  task per video receiver sends what it says every :data:`RECOVERY_TICK`: NACKs
  repeated on the round trip (measured by a STUN binding), then a keyframe request
  when they fail, repeated until a keyframe begins; the buffer gives up on a hole
  when the recovery does.
* :func:`use_every_turn_url` -- aiortc's ``connection_kwargs`` keeps only the first
  TURN URL (and ``turns:`` only over TCP), and aioice drops a failed allocation
  without a word. The hook makes every ICE agent allocate on *every* TURN URL at
  once (:class:`MultiTurnConnection`), prefer UDP over TCP over TLS relays, and
  log and keep (``turn_failures``) why an allocation failed.
* :func:`prompt_triggered_checks` -- aioice leaves a pair whose own check is in progress
  to its STUN retransmission (0.5 s, then 1 s) when the peer's check arrives on it; RFC 8445
  section 7.3.1.4 checks it afresh at once. A TURN relay drops a check that reaches it before
  its client's permission, so without this the controlled side completed ICE half a second
  after the controlling one. The hook does so, at most once per pair per
  :data:`~peer.triggered_checks.FRESH_CHECK_INTERVAL`; the replaced request's answer still counts.
* :func:`pipeline_turn_permissions` -- aioice's TURN client sends nothing to a new peer before
  the ChannelBind is answered, a round trip to the relay; the hook sends the first STUN message
  (an ICE check) as a Send indication right behind the ChannelBind request, which installs the
  permission first. aioice's own send over the channel still follows.
* :func:`quick_sctp_retransmits` -- aiortc's SCTP waits at least 1 s (3 s before
  the first round trip) to resend a lost chunk; a lost keystroke with nothing after it
  would wait that long. The hook gives it Chromium's 220 ms floor and 500 ms start.
* :func:`quick_stun_retransmits` -- aioice resends an unanswered STUN request (an ICE check,
  a TURN allocation or permission) after 0.5 s, then 1 s, ...; a lost check at 150 ms held a
  connection up 0.66 s. The hook starts at Chromium's 250 ms and retransmits once more, so a
  transaction still gives up after as long.
* :func:`copy_stun_messages` -- a lost ICE check, TURN request or check's answer waits for
  the request's retransmission (the asker cannot tell which was lost). The hook sends a
  request still unanswered after :data:`STUN_COPY_AFTER` again, and every check's answer.
* :func:`quick_dtls_resends` -- aiortc leaves a lost DTLS handshake flight to OpenSSL's
  timer (1 s, then 2 s, ...), and the OpenSSL inside ``cryptography`` offers no way to
  shorten it. The hook keeps the last flight it wrote and sends the same datagrams
  again after :data:`DTLS_RESEND_AFTER` while nothing has come back.
* :func:`selected_route`, :func:`ice_round_trip`, :func:`candidate_types`,
  :func:`turn_failures` -- aiortc's ``getStats()`` has no candidate pairs; these
  read the nominated pair and the gathered candidates from aiortc's private state.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import os
import ssl
import time
import weakref
from collections.abc import Callable
from typing import Any

import aioice.ice
import aioice.stun
import aioice.turn
import aiortc.clock
import aiortc.codecs
import aiortc.rtcicetransport
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import aiortc.rtcsctptransport
from aioice import Candidate, stun
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import CandidatePair, StunProtocol, TransportPolicy
from aiortc import RTCIceServer, RTCIceTransport, RTCPeerConnection
from aiortc.codecs import get_encoder
from aiortc.codecs.base import Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters, RTCRtpSendParameters
from aiortc.rtcrtpreceiver import NackGenerator, RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RTCP_RTPFB_NACK, AnyRtcpPacket, RtcpRrPacket, RtcpRtpfbPacket, RtcpSrPacket, RtpPacket, is_rtcp
from aiortc.utils import uint16_add, uint16_gt

from protocol.route import Route
from protocol.signalling import TurnFailure

from .loss_recovery import LossRecovery, Nack
from .pacer import LinkPacer, PaceBudget, PacedPacket, PacerStats
from .rtp_bytes import (
    ABS_SEND_TIME_URI,
    RtpHeader,
    abs_send_time,
    rtp_header,
    rtx_original_sequence_number,
    starts_keyframe,
    with_abs_send_time,
)
from .screen_encoder import CONSTRAINED_BASELINE, MAIN_PROFILE, ScreenH264Encoder, x264_profile
from .triggered_checks import FreshCheckGate
from .turn_routes import RelayGathering, TurnRoute, TurnServerEntry, turn_routes

log = logging.getLogger(__name__)

LOOPBACK_ADDRESS = "127.0.0.1"
TURN_CA_FILE_ENV = "DESKHAND_TURN_CA_FILE"
"""A PEM file of CAs to trust for ``turns:`` relays instead of the system's (a private CA, the tests)."""
LOST_PACKET_PATIENCE = 1.0
"""Seconds a hole may hold up newer video packets before the receiver gives up on it.

Long enough for aiortc's one NACK to be answered across a slow link (a round
trip or two), short next to the minutes aiortc itself waits. Checked when a
packet arrives: on a static screen the host's keep-alive frame (every 5 s at
most) brings the next one. The buffer's own rule, without :func:`recover_losses_on_a_timer`;
with it the patience follows the round trip (:func:`peer.loss_recovery.abandon_after`)."""

# aiortc's own, read where they are defined: the hooked modules import them without re-exporting.
_original_get_host_addresses = aioice.ice.get_host_addresses
_original_get_encoder = get_encoder
_original_send_keyframe = RTCRtpSender._send_keyframe
_original_handle_rtcp_packet = RTCRtpSender._handle_rtcp_packet
_original_jitter_buffer = JitterBuffer
_original_nack_generator = NackGenerator
_original_receive = RTCRtpReceiver.receive
_original_connection_kwargs = aiortc.rtcicetransport.connection_kwargs
_original_connection = aiortc.rtcicetransport.Connection  # type: ignore[attr-defined]  # imported there, not re-exported
_original_write_ssl = RTCDtlsTransport._write_ssl
_original_recv_next = RTCDtlsTransport._recv_next


def _loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return [LOOPBACK_ADDRESS] if use_ipv4 else []


def gather_loopback_only(enabled: bool) -> None:
    """Make every ICE agent in this process gather only 127.0.0.1 (or undo that)."""
    aioice.ice.get_host_addresses = _loopback_addresses if enabled else _original_get_host_addresses


def loopback_only_active() -> bool:
    return aioice.ice.get_host_addresses is _loopback_addresses


def _screen_encoder_for(codec: RTCRtpCodecParameters) -> Encoder:
    if codec.mimeType.lower() == "video/h264":
        return ScreenH264Encoder(profile=x264_profile(codec))
    return _original_get_encoder(codec)


def use_screen_encoder(enabled: bool) -> None:
    """Encode H.264 video in this process with :class:`ScreenH264Encoder` (or aiortc's own again)."""
    # The name rtcrtpsender imported (its sender calls it from there) is the one to replace.
    encoder_for = _screen_encoder_for if enabled else _original_get_encoder
    aiortc.rtcrtpsender.get_encoder = encoder_for  # type: ignore[attr-defined]  # imported there, not re-exported


def screen_encoder_active() -> bool:
    return aiortc.rtcrtpsender.get_encoder is _screen_encoder_for  # type: ignore[attr-defined]  # imported there, not re-exported


def _main_entries() -> list[RTCRtpCodecParameters]:
    """aiortc's constrained baseline entry and its RTX, made main profile, on the next free payload types."""
    video = aiortc.codecs.CODECS["video"]
    baseline = next(c for c in video if c.mimeType.lower() == "video/h264"
                    and c.parameters.get("profile-level-id") == CONSTRAINED_BASELINE)
    payload_type = max(c.payloadType for c in video if c.payloadType is not None) + 1
    main = copy.deepcopy(baseline)
    main.payloadType = payload_type
    main.parameters = {**baseline.parameters, "profile-level-id": MAIN_PROFILE}
    rtx = RTCRtpCodecParameters(mimeType="video/rtx", clockRate=main.clockRate, payloadType=payload_type + 1,
                                parameters={"apt": payload_type})
    return [main, rtx]


def _is_main_entry(codec: RTCRtpCodecParameters, main_payload_type: int | None) -> bool:
    if codec.mimeType.lower() == "video/rtx":
        return main_payload_type is not None and codec.parameters.get("apt") == main_payload_type
    return codec.mimeType.lower() == "video/h264" and codec.parameters.get("profile-level-id") == MAIN_PROFILE


def offer_h264_main(enabled: bool) -> None:
    """Offer and answer H.264 main profile in this process too, or no longer (aiortc's list again)."""
    video = aiortc.codecs.CODECS["video"]
    main = next((c.payloadType for c in video if _is_main_entry(c, None)), None)
    if enabled and main is None:
        video.extend(_main_entries())
    elif not enabled and main is not None:
        video[:] = [c for c in video if not _is_main_entry(c, main)]


def h264_main_offered() -> bool:
    return any(_is_main_entry(c, None) for c in aiortc.codecs.CODECS["video"])


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


# --- receiver reports of loss reach the screen encoder -----------------------------------------


async def _handle_rtcp_and_report_loss(self: RTCRtpSender, packet: AnyRtcpPacket) -> None:
    encoder = getattr(self, "_RTCRtpSender__encoder", None)  # private: aiortc builds it on the first frame
    if isinstance(encoder, ScreenH264Encoder):
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == self._ssrc:
                    encoder.receiver_loss(report.fraction_lost / 256, report.packets_lost)
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK and packet.media_ssrc == self._ssrc:
            encoder.packets_nacked(list(packet.lost))
    await _original_handle_rtcp_packet(self, packet)


def report_receiver_losses(enabled: bool) -> None:
    """Also hand the fraction lost of each receiver report (RTCP RR/SR) on a sender's SSRC, and the packets
    each NACK names, to its :class:`~peer.screen_encoder.ScreenH264Encoder`, hence to the stream's budget."""
    hook = _handle_rtcp_and_report_loss if enabled else _original_handle_rtcp_packet
    RTCRtpSender._handle_rtcp_packet = hook  # type: ignore[method-assign]  # the hook: aiortc has no option for it


def receiver_losses_reported() -> bool:
    return RTCRtpSender._handle_rtcp_packet is _handle_rtcp_and_report_loss


# --- video senders paced ----------------------------------------------------------------------

PACED_RTP_HISTORY_SIZE = 1024
"""Packets aiortc's sender keeps for NACKs, and its receiver keeps NACKing, while senders are paced.

aiortc's 128 is less than one 1080p keyframe plus the pacer's queue: a NACK for
a packet still queued or just sent would go unanswered. A power of two, so
sequence numbers still map onto the history evenly across their wrap."""
MIN_RETRANSMIT_WINDOW = 0.02
MAX_RETRANSMIT_WINDOW = 1.0
"""Bounds of the round trip the pacer refuses a repeated retransmission within (a measured one is used)."""
_original_rtp_history_size: int = aiortc.rtcrtpsender.RTP_HISTORY_SIZE  # type: ignore[attr-defined]  # imported there, not re-exported
_original_sender_send = RTCRtpSender.send


class PacedLink:
    """One DTLS transport's :class:`~peer.pacer.LinkPacer` and the task that sends what it lets go.

    The task re-stamps abs-send-time as each packet leaves: stamped when it was
    packetized, the pacer's own queueing would read to the receiver's estimator
    (REMB) as network queueing, and the estimate, hence the pace, would sink.
    It ends when the last paced sender stops; a send that fails (the transport
    closed) ends it too, and later media sends raise ``ConnectionError``, which
    ends aiortc's sender loop as the real transport would.
    """

    def __init__(self, transport: RTCDtlsTransport) -> None:
        self.transport = transport
        self.pacer = LinkPacer(time.monotonic())
        self.error: Exception | None = None
        self._senders: dict[int, tuple[RTCRtpSender, int | None]] = {}
        """Media SSRC: the sender, and its abs-send-time extension id (None when not negotiated)."""
        self._queued = asyncio.Event()
        self._sent = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, sender: RTCRtpSender, abs_send_time_id: int | None) -> None:
        """Pace ``sender`` on this link, at its track's budget (when it has a :class:`PaceBudget`)."""
        budget = getattr(sender.track, "budget", None)
        self.pacer.add_sender(sender._ssrc, budget if isinstance(budget, PaceBudget) else None)
        self._senders[sender._ssrc] = (sender, abs_send_time_id)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._drain())

    def remove(self, sender: RTCRtpSender) -> None:
        """Stop pacing ``sender``; with the last one gone the task ends and the link is forgotten."""
        self.pacer.remove_sender(sender._ssrc)
        self._senders.pop(sender._ssrc, None)
        self._sent.set()  # a send waiting on the backlog re-checks: it no longer waits
        if not self._senders:
            if self._task is not None:
                self._task.cancel()
            if _paced_links.get(self.transport) is self:
                del _paced_links[self.transport]

    def offer(self, packet: PacedPacket) -> None:
        """Queue ``packet`` (never waits)."""
        now = time.monotonic()
        self.pacer.offer(packet, now)
        self._ask_for_keyframes(now)
        self._queued.set()

    async def wait_while_backlogged(self, sender: int) -> None:
        """Return once ``sender``'s queue is short enough for its next frame (the encoder waits here)."""
        while self.error is None and self.pacer.backlogged(sender, time.monotonic()):
            self._sent.clear()
            await self._sent.wait()
        if self.error is not None:
            raise ConnectionError(f"the paced transport failed: {self.error}")

    def _follow_round_trip(self) -> None:
        """Refuse a repeated retransmission for as long as one takes to arrive and be missed again:
        the senders' round trip, as aiortc measures it from receiver reports (private state)."""
        measured = [rtt for sender, _ in self._senders.values()
                    if isinstance(rtt := getattr(sender, "_RTCRtpSender__rtt", None), float)]
        if measured:
            self.pacer.round_trip = min(MAX_RETRANSMIT_WINDOW, max(MIN_RETRANSMIT_WINDOW, max(measured)))

    def _ask_for_keyframes(self, now: float) -> None:
        for ssrc, (sender, _) in list(self._senders.items()):
            if self.pacer.take_keyframe_request(ssrc, now):
                stats = self.pacer.stats(now)
                log.info("video pacer: frames dropped for lack of link (%d so far, pace %.0f kbit/s); keyframe asked",
                         stats.frames_dropped, stats.pace_bps / 1000)
                sender._send_keyframe()  # the hooked one, when forward_keyframe_requests is on: the track wakes

    async def _drain(self) -> None:
        try:
            while self._senders:
                now = time.monotonic()
                packet = self.pacer.pop(now)
                self._ask_for_keyframes(now)
                if packet is None:
                    self._follow_round_trip()  # between bursts: the packets go first
                    self._sent.set()
                    due = self.pacer.next_departure(now)
                    if due is None:
                        self._queued.clear()
                        await self._queued.wait()
                    else:
                        await asyncio.sleep(due - now)
                    continue
                await self.transport._send_rtp(self._stamped(packet))
                self._sent.set()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # whatever ends the link must reach the senders, not vanish
            if not isinstance(error, ConnectionError):
                log.exception("the video pacer stopped")
            self.error = error
            self._sent.set()

    def _stamped(self, packet: PacedPacket) -> bytes:
        entry = self._senders.get(packet.sender)
        if entry is None or entry[1] is None:
            return packet.data
        seconds = aiortc.clock.current_ntp_time() / (1 << 32)  # aiortc's own clock for this stamp
        return with_abs_send_time(packet.data, entry[1], abs_send_time(seconds))


_paced_links: weakref.WeakKeyDictionary[RTCDtlsTransport, PacedLink] = weakref.WeakKeyDictionary()


class PacedTransport:
    """A video sender's view of its DTLS transport, through which its RTP is paced.

    * RTCP (the sender's reports) passes straight to the real transport.
    * Retransmissions (RTX, or a resend of an old sequence number when RTX was
      not negotiated) are queued with priority and never awaited: aiortc sends
      them from inside the DTLS receive loop, and waiting there would hold up
      all inbound traffic, input included.
    * Media is queued and awaited only while the sender is backlogged: aiortc's
      sender loop then pauses, so the track grabs fewer and fresher frames.
    * Everything else (registration, stats, state) is the real transport's.
    """

    def __init__(self, transport: RTCDtlsTransport, link: PacedLink, sender: RTCRtpSender, codec: str) -> None:
        self._real = transport
        self._link = link
        self._sender = sender
        self._codec = codec
        self._newest: int | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    @property
    def link(self) -> PacedLink:
        return self._link

    def _unregister_rtp_sender(self, sender: RTCRtpSender) -> None:
        self._real._unregister_rtp_sender(sender)
        self._link.remove(sender)

    async def _send_rtp(self, data: bytes) -> None:
        if is_rtcp(data):
            await self._real._send_rtp(data)
            return
        try:
            header = rtp_header(data)
        except ValueError:
            await self._real._send_rtp(data)  # not a packet the pacer can judge: SRTP will
            return
        sender = self._sender
        if header.ssrc == sender._rtx_ssrc:
            try:
                original = rtx_original_sequence_number(data, header)
            except ValueError:
                return
            self._queue_retransmission(data, header, original)
            return
        if header.ssrc != sender._ssrc or sender._ssrc not in self._link.pacer.senders:
            await self._real._send_rtp(data)  # not this sender's media, or sent while it stops: as aiortc would
            return
        if self._newest is not None and not uint16_gt(header.sequence_number, self._newest):
            self._queue_retransmission(data, header, header.sequence_number)  # a resend without RTX
            return
        self._newest = header.sequence_number
        if self._link.error is not None:
            raise ConnectionError(f"the paced transport failed: {self._link.error}")
        payload = data[header.payload_offset:header.payload_end]
        self._link.offer(PacedPacket(
            data=data, sender=header.ssrc, sequence_number=header.sequence_number, timestamp=header.timestamp,
            marker=header.marker, keyframe_start=starts_keyframe(payload, self._codec),
        ))
        await self._link.wait_while_backlogged(header.ssrc)

    def _queue_retransmission(self, data: bytes, header: RtpHeader, original: int) -> None:
        if self._link.error is None and self._sender._ssrc in self._link.pacer.senders:
            self._link.offer(PacedPacket(
                data=data, sender=self._sender._ssrc, sequence_number=header.sequence_number,
                timestamp=header.timestamp, original_sequence_number=original,
            ))


def _paced_view(sender: RTCRtpSender, parameters: RTCRtpSendParameters) -> PacedTransport:
    transport = sender.transport
    link = _paced_links.get(transport)
    if link is None:
        link = _paced_links[transport] = PacedLink(transport)
    abs_send_time_id = next((e.id for e in parameters.headerExtensions if e.uri == ABS_SEND_TIME_URI), None)
    link.add(sender, abs_send_time_id)
    codec = parameters.codecs[0].mimeType.split("/")[-1] if parameters.codecs else ""
    return PacedTransport(transport, link, sender, codec)


async def _send_paced(self: RTCRtpSender, parameters: RTCRtpSendParameters) -> None:
    if self.kind == "video" and not isinstance(self.transport, PacedTransport):
        self.setTransport(_paced_view(self, parameters))  # type: ignore[arg-type]  # the view stands in for it
    await _original_sender_send(self, parameters)


def pace_video_senders(enabled: bool) -> None:
    """Pace the RTP of video senders started after this call (:class:`PacedTransport`), or send it at once again.

    The pace follows the track's ``budget`` when it is a :class:`~peer.pacer.PaceBudget`
    (the screen track's :class:`~peer.stream_budget.StreamBudget`); a track without
    one is paced at :data:`peer.pacer.FALLBACK_PACE`. Also sets aiortc's RTP history
    to :data:`PACED_RTP_HISTORY_SIZE` (back to aiortc's own when switched off).
    """
    RTCRtpSender.send = _send_paced if enabled else _original_sender_send  # type: ignore[method-assign]  # the hook: aiortc has no option for it
    size = PACED_RTP_HISTORY_SIZE if enabled else _original_rtp_history_size
    aiortc.rtcrtpsender.RTP_HISTORY_SIZE = size  # type: ignore[attr-defined]  # imported there, read at call time
    aiortc.rtcrtpreceiver.RTP_HISTORY_SIZE = size  # type: ignore[attr-defined]


def video_senders_paced() -> bool:
    return RTCRtpSender.send is _send_paced


def pacer_stats(sender: RTCRtpSender) -> PacerStats | None:
    """How the pacer under ``sender`` is doing (None when the sender is not paced)."""
    transport = sender.transport
    if not isinstance(transport, PacedTransport):
        return None
    return transport.link.pacer.stats(time.monotonic())


H264_START_CODE = b"\x00\x00\x00\x01"
H264_IDR_SLICE = 5
H264_SPS = 7
VP8_KEYFRAME_START_CODE = b"\x9d\x01\x2a"


def depayloaded_starts_keyframe(data: bytes) -> bool:
    """Whether a depayloaded video *packet* is the first of a keyframe.

    H.264: it begins with a start code (a NAL unit's first byte) and holds the SPS that the
    encoder puts before each IDR (``repeat-headers``: the STAP-A of SPS and PPS comes first),
    or the IDR's *first* slice (``first_mb_in_slice`` 0, coded as a single 1 bit): an IDR of
    several slices (threads) has more NAL units of type 5. VP8: as :func:`is_keyframe`, whose
    tests sit in the frame's first bytes.
    """
    if data.startswith(H264_START_CODE):
        return any(
            nal and (nal[0] & 0x1F == H264_SPS or (nal[0] & 0x1F == H264_IDR_SLICE and len(nal) > 1 and nal[1] & 0x80))
            for nal in data.split(H264_START_CODE)
        )
    return is_keyframe(data)


def is_keyframe(data: bytes) -> bool:
    """Whether a depayloaded video frame (H.264 Annex B or VP8) is a whole keyframe the decoder can start from.

    H.264: the frame's first packet is there (it begins with a start code, which aiortc
    writes only before a NAL unit's first byte) and it holds an IDR slice. VP8: the
    frame tag says key frame and the key frame start code follows it.
    """
    if data.startswith(H264_START_CODE):
        # Emulation prevention keeps start codes out of NAL payloads: split is exact.
        return any(nal and nal[0] & 0x1F == H264_IDR_SLICE for nal in data.split(H264_START_CODE))
    return len(data) >= 6 and not data[0] & 0x01 and data[3:6] == VP8_KEYFRAME_START_CODE


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, releasing a video frame once its marker-bit packet is in,
    skipping a hole at once when a complete keyframe sits behind it, and otherwise giving
    up on a lost packet (keyframe requested) after :data:`LOST_PACKET_PATIENCE`.

    Linked to a :class:`~peer.loss_recovery.LossRecovery` (:attr:`recovery`, set by
    :func:`recover_losses_on_a_timer`), the recovery decides instead: a hole is given up
    once the recovery no longer waits for it (its NACKs went unanswered, a patience
    derived from the round trip), keyframe requests go through the recovery's timer,
    and what the buffer moves past is never asked for again."""

    def __init__(
        self, capacity: int, prefetch: int = 0, is_video: bool = False,
        *, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(capacity, prefetch, is_video)
        self._clock = clock
        self._newest: int | None = None
        self._held_up: tuple[int, float] | None = None
        """The origin a hole holds up and since when."""
        self._keyframe_wanted = False
        self._keyframe_asked_at = float("-inf")
        self.recovery: LossRecovery | None = None
        """The receiver's loss recovery, once linked; None: the buffer's own patience rules."""
        self.holes_given_up = 0
        """Holes given up on so far (each cost a keyframe)."""
        self.holes_skipped_to_keyframe = 0
        """Holes skipped because a complete keyframe had arrived behind them (no keyframe asked for)."""
        self.payload_type: int | None = None
        """The payload type of the newest video packet (a retransmission's unwrapped): the frames' codec."""

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        if not self._is_video:
            return super().add(packet)
        seq = packet.sequence_number
        self.payload_type = packet.payload_type
        if self._newest is None or uint16_gt(seq, self._newest):
            self._newest = seq
        recovery = self.recovery
        if recovery is not None and depayloaded_starts_keyframe(packet._data):  # type: ignore[attr-defined]  # aiortc's receiver sets it, undeclared
            recovery.keyframe_started(seq)
        ask_keyframe, frame = super().add(packet)
        lost_up_to = seq
        if ask_keyframe:  # aiortc dropped packets itself: an overflow, or numbering that started over
            self._keyframe_wanted = True
            self._newest = seq  # the newest, or the first of the new numbering
        now = self._clock()
        if frame is None and self._first_hole() is not None:
            frame = self._skip_to_complete_keyframe()
        gave_up = False
        while frame is None and self._hole_given_up(now):
            lost_up_to = self._skip_hole()
            self.holes_given_up += 1
            self._keyframe_wanted = gave_up = True
            frame = self._remove_frame(seq)
        if self._keyframe_wanted:
            # Frames before the keyframe refer to pictures the decoder never had: dropped,
            # all that are complete (aiortc takes one frame per packet; they would queue).
            while frame is not None and not is_keyframe(frame.data):
                frame = self._remove_frame(seq)
            if frame is not None:
                self._keyframe_wanted = False
            elif recovery is None:  # again while none comes: the request or its answer may be lost too
                ask_keyframe = ask_keyframe or now - self._keyframe_asked_at >= LOST_PACKET_PATIENCE
        if ask_keyframe:
            self._keyframe_asked_at = now
        if recovery is None:
            return ask_keyframe, frame
        if ask_keyframe or (gave_up and self._keyframe_wanted):
            recovery.picture_lost(lost_up_to)  # asked on the recovery's timer, repeated until a keyframe comes
        if self._origin is not None:
            recovery.forget_before(self._origin)
        return False, frame

    def _first_hole(self) -> int | None:
        """The offset from the origin of the first missing packet older than the newest one, if any."""
        if self._origin is None or self._newest is None or not uint16_gt(self._newest, self._origin):
            return None
        for offset in range(min(uint16_add(self._newest, -self._origin), self.capacity)):
            if self._packets[(self._origin + offset) % self.capacity] is None:
                return offset
        return None

    def _hole_given_up(self, now: float) -> bool:
        """Whether the first hole is lost for good: the recovery no longer waits for it, or
        (unlinked) it has held up the origin for :data:`LOST_PACKET_PATIENCE`."""
        hole = self._first_hole()
        if self.recovery is not None:
            return (hole is not None and self._origin is not None
                    and not self.recovery.waiting_for(uint16_add(self._origin, hole)))
        return self._hole_holding_up(hole, now) >= LOST_PACKET_PATIENCE

    def _hole_holding_up(self, hole: int | None, now: float) -> float:
        """Seconds the current origin has been held up by a missing packet (0 when nothing is)."""
        if hole is None or self._origin is None:
            self._held_up = None
            return 0.0
        if self._held_up is None or self._held_up[0] != self._origin:
            self._held_up = (self._origin, now)
        return now - self._held_up[1]

    def _skip_hole(self) -> int:
        """Drop everything before the first packet that came after the first hole; returns the
        seq of the hole's last missing packet."""
        hole = self._first_hole()
        assert hole is not None and self._origin is not None
        offset = hole
        while self._packets[(self._origin + offset) % self.capacity] is None:
            offset += 1  # the newest packet is there: this ends
        self.remove(offset)
        self._held_up = None
        return uint16_add(self._origin, -1)

    def _skip_to_complete_keyframe(self) -> JitterFrame | None:
        """Release the first complete keyframe behind the first hole, dropping everything before
        it: the decoder can start from it, so the hole is not worth waiting for."""
        hole = self._first_hole()
        assert hole is not None and self._origin is not None and self._newest is not None
        for offset in range(hole + 1, min(uint16_add(self._newest, -self._origin) + 1, self.capacity)):
            packet = self._packets[(self._origin + offset) % self.capacity]
            if packet is None or not depayloaded_starts_keyframe(packet._data):  # type: ignore[attr-defined]  # aiortc's receiver sets it, undeclared
                continue
            if self._complete_frame_at(offset) is not None:
                self.remove(offset)
                self._held_up = None
                self.holes_skipped_to_keyframe += 1
                return self._remove_frame(packet.sequence_number)
        return None

    def _complete_frame_at(self, offset: int) -> list[RtpPacket] | None:
        """The packets of the frame starting ``offset`` packets after the origin, if all are in
        up to its marker packet."""
        assert self._origin is not None
        packets: list[RtpPacket] = []
        for count in range(offset, self.capacity):
            packet = self._packets[(self._origin + count) % self.capacity]
            if packet is None or (packets and packet.timestamp != packets[0].timestamp):
                return None  # a gap, or a frame without its marker (lost)
            packets.append(packet)
            if packet.marker:
                return packets
        return None

    def next_complete_frame(self) -> JitterFrame | None:
        """Another frame complete at the origin now, taken out of the buffer; None when there is none
        (or while a keyframe is wanted: what comes before it is dropped as packets arrive).

        aiortc takes one frame per packet, but one packet can complete several: a retransmission
        filling a hole completes the frames that arrived behind it. Left in the buffer, the next
        would wait for the next packet (on a still screen the keep-alive, 5 s later) and every
        frame after it would be shown a frame late, for the rest of the session."""
        if not self._is_video or self._keyframe_wanted:
            return None
        frame = self._take_complete_at_origin()
        if frame is not None and self.recovery is not None and self._origin is not None:
            self.recovery.forget_before(self._origin)
        return frame

    def _take_complete_at_origin(self) -> JitterFrame | None:
        if self._origin is None:
            return None
        packets = self._complete_frame_at(0)
        if packets is None:
            return None
        self.remove(len(packets))
        data = b"".join(p._data for p in packets)  # type: ignore[attr-defined]  # aiortc's receiver sets it, undeclared
        return JitterFrame(data=data, timestamp=packets[0].timestamp)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        if self._is_video and (frame := self._take_complete_at_origin()) is not None:
            return frame
        # Not complete on its marker: aiortc's rule (a packet of the next frame is in) decides.
        return super()._remove_frame(sequence_number)


async def _handle_rtp_packet_passing_every_complete_frame(
    receiver: RTCRtpReceiver, packet: RtpPacket, arrival_time_ms: int
) -> None:
    """The receiver's class's handling of an RTP packet (aiortc's, or whatever wraps it now), then the
    further frames it completed in a :class:`MarkerJitterBuffer`
    (:meth:`~MarkerJitterBuffer.next_complete_frame`) passed to the decoder the way aiortc passes the first.

    Set on each receiver as it starts (:func:`_receive_with_hooks`), not on the class: a wrapper put
    on the class later (a test's packet loss) still runs, whichever came first."""
    await type(receiver)._handle_rtp_packet(receiver, packet, arrival_time_ms)
    buffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]  # name-mangled private state
    if not isinstance(buffer, MarkerJitterBuffer) or not receiver._RTCRtpReceiver__decoder_thread:  # type: ignore[attr-defined]
        return
    codec = receiver._RTCRtpReceiver__codecs.get(buffer.payload_type)  # type: ignore[attr-defined]
    while codec is not None and (frame := buffer.next_complete_frame()) is not None:
        frame.timestamp = receiver._RTCRtpReceiver__timestamp_mapper.map(frame.timestamp)  # type: ignore[attr-defined]
        receiver._RTCRtpReceiver__decoder_queue.put((codec, frame))  # type: ignore[attr-defined]


def complete_frames_on_marker(enabled: bool) -> None:
    """Make receivers created after this call use :class:`MarkerJitterBuffer` (or aiortc's own), and
    pass on every frame a packet completes."""
    # The name rtcrtpreceiver imported (its receiver builds its buffer from there) is the one to replace.
    buffer = MarkerJitterBuffer if enabled else _original_jitter_buffer
    aiortc.rtcrtpreceiver.JitterBuffer = buffer  # type: ignore[attr-defined]  # imported there, not re-exported
    _hook_receive()


def marker_frames_active() -> bool:
    module: Any = aiortc.rtcrtpreceiver  # JitterBuffer is imported there, not re-exported
    return module.JitterBuffer is MarkerJitterBuffer and RTCRtpReceiver.receive is _receive_with_hooks


# --- lost packets asked for again on a timer ------------------------------------------------

RECOVERY_TICK = 0.02
"""Seconds between two looks at a video receiver's missing packets: small next to the 50 ms between NACKs."""
ROUND_TRIP_PERIOD = 2.0
"""Seconds between two round-trip measurements (one STUN binding on the nominated pair) for the recovery."""


class TimedNackGenerator(NackGenerator):
    """aiortc's NACK generator; once linked to a :class:`LossRecovery` (:attr:`recovery`) it
    hands it every arrival and lets aiortc NACK only the packets a new gap shows, at once.
    The retries, the keyframe requests and the forgetting are the recovery's."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self.recovery: LossRecovery | None = None
        self.media_ssrc: int | None = None
        """The SSRC of the media packets seen (retransmissions unwrapped): what NACK and PLI name."""

    def add(self, packet: RtpPacket) -> bool:
        if self.recovery is None:
            return super().add(packet)
        self.media_ssrc = packet.ssrc
        shown = self.recovery.packet(packet.sequence_number, self._clock(), ends_frame=bool(packet.marker))
        # aiortc NACKs ``missing`` right after add() says True: only these, not every seq it ever missed.
        self.missing = set(shown)
        return bool(shown)


async def _receive_with_hooks(receiver: RTCRtpReceiver, parameters: RTCRtpReceiveParameters) -> None:
    """aiortc's ``receive``; a new video receiver with the marker buffer then passes on every frame a
    packet completes (:func:`_handle_rtp_packet_passing_every_complete_frame`), and one with the timed
    NACK generator too is linked to one :class:`LossRecovery` whose timer ends with the receiver's RTCP
    task (``stop()``)."""
    started = receiver._RTCRtpReceiver__started  # type: ignore[attr-defined]  # name-mangled private state
    await _original_receive(receiver, parameters)
    nacks = receiver._RTCRtpReceiver__nack_generator  # type: ignore[attr-defined]
    buffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    rtcp_task: asyncio.Future[None] | None = receiver._RTCRtpReceiver__rtcp_task  # type: ignore[attr-defined]
    if started or rtcp_task is None or not isinstance(buffer, MarkerJitterBuffer):
        return
    # The transport calls it on the receiver: an attribute of its own comes before the class's method.
    receiver._handle_rtp_packet = functools.partial(_handle_rtp_packet_passing_every_complete_frame, receiver)  # type: ignore[method-assign]
    if not isinstance(nacks, TimedNackGenerator):
        return
    recovery = LossRecovery()
    nacks.recovery = buffer.recovery = recovery
    timer = asyncio.ensure_future(_recover_losses(receiver, nacks, recovery))
    rtcp_task.add_done_callback(lambda _: timer.cancel())


def _hook_receive() -> None:
    """``receive`` is hooked while either receiver hook is on (the marker buffer, the timed NACKs)."""
    module: Any = aiortc.rtcrtpreceiver  # the names the receiver builds its parts by
    on = module.JitterBuffer is MarkerJitterBuffer or module.NackGenerator is TimedNackGenerator
    # mypy reads a plain function put on a class as not matching the method it replaces: "assignment".
    RTCRtpReceiver.receive = _receive_with_hooks if on else _original_receive  # type: ignore[method-assign, assignment]


async def _recover_losses(receiver: RTCRtpReceiver, nacks: TimedNackGenerator, recovery: LossRecovery) -> None:
    """Send what the recovery says, every :data:`RECOVERY_TICK`; measure the round trip now and then."""
    measuring: asyncio.Future[float | None] | None = None
    measure_at = 0.0
    try:
        while True:
            await asyncio.sleep(RECOVERY_TICK)
            now = time.monotonic()
            if measuring is not None and measuring.done():
                if (sample := measuring.result()) is not None:
                    recovery.round_trip_measured(sample)
                measuring = None
            if measuring is None and now >= measure_at:
                measure_at = now + ROUND_TRIP_PERIOD
                measuring = asyncio.ensure_future(_transport_round_trip(receiver.transport))
            ssrc = nacks.media_ssrc
            if ssrc is None:
                continue  # nothing received yet
            for action in recovery.tick(now):
                if isinstance(action, Nack):
                    await receiver._send_rtcp_nack(ssrc, list(action.sequence_numbers))
                else:
                    await receiver._send_rtcp_pli(ssrc)
    finally:
        if measuring is not None:
            measuring.cancel()


def recover_losses_on_a_timer(enabled: bool) -> None:
    """Make video receivers created after this call ask again for lost packets on a timer
    (:class:`TimedNackGenerator`, :class:`LossRecovery`), or only as aiortc does.

    Works with :func:`complete_frames_on_marker`: a receiver without the marker buffer
    keeps aiortc's NACKs."""
    module: Any = aiortc.rtcrtpreceiver  # NackGenerator is defined there; the receiver builds it by that name
    module.NackGenerator = TimedNackGenerator if enabled else _original_nack_generator
    _hook_receive()


def losses_recovered_on_a_timer() -> bool:
    module: Any = aiortc.rtcrtpreceiver
    return module.NackGenerator is TimedNackGenerator and RTCRtpReceiver.receive is _receive_with_hooks


def loss_recovery_of(pc: RTCPeerConnection) -> LossRecovery | None:
    """The loss recovery of ``pc``'s (first) video receiver, for its counters; None without one."""
    for transceiver in pc.getTransceivers():
        nacks = getattr(transceiver.receiver, "_RTCRtpReceiver__nack_generator", None)
        if isinstance(nacks, TimedNackGenerator) and nacks.recovery is not None:
            return nacks.recovery
    return None


# --- every TURN URL, failures explained ------------------------------------------------------


def turn_failure_reason(error: BaseException) -> str:
    """Why a TURN allocation failed, in words an administrator can act on."""
    if isinstance(error, stun.TransactionFailed):
        code, text = error.response.attributes.get("ERROR-CODE", (0, ""))
        if code == 401:
            return "the relay refused the credentials (wrong or expired)"
        if code == 486:
            return "the relay's allocation quota is reached (486)"
        if code == 403:
            return "the relay refused the allocation (403 forbidden)"
        return f"the relay refused the allocation ({code} {text})".strip()
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"the relay's TLS certificate is not trusted ({error.verify_message})"
    if isinstance(error, ssl.SSLError):
        return f"the TLS connection to the relay failed ({error.reason or error})"
    if isinstance(error, TimeoutError | stun.TransactionTimeout):
        return "the relay is unreachable (no answer in time)"
    if isinstance(error, OSError):
        return f"the relay is unreachable ({error.strerror or error})"
    return f"the allocation failed ({type(error).__name__}: {error})"


def _turn_ssl() -> bool | ssl.SSLContext:
    """What aioice gets for a ``turns:`` route: asyncio's default (system CAs), or a context
    trusting :data:`TURN_CA_FILE_ENV`'s CAs."""
    ca_file = os.environ.get(TURN_CA_FILE_ENV)
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


class MultiTurnConnection(aioice.ice.Connection):
    """aioice's ICE agent, allocating a relay on every :class:`TurnRoute` in parallel.

    Host and server-reflexive candidates come from aioice as before. Each relay's
    local preference follows its leg (UDP > TCP > TLS, :data:`peer.turn_routes.LOCAL_PREFERENCE`)
    and its foundation names the leg, so ICE prefers the UDP relay when several work.
    Gathering waits as :class:`RelayGathering` says. Every failure is logged and kept in
    :attr:`turn_failures`; :attr:`relay_routes` says which route each relay socket uses.
    """

    def __init__(self, *args: Any, turn_routes: list[TurnRoute] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.turn_routes = list(turn_routes or [])
        self.turn_failures: list[TurnFailure] = []
        self.relay_routes: dict[StunProtocol, TurnRoute] = {}

    async def get_component_candidates(self, component: int, addresses: list[str], timeout: int = 5) -> list[Candidate]:
        own = asyncio.ensure_future(super().get_component_candidates(component, addresses, timeout))
        relays = await self._relay_candidates(component)
        return [*await own, *relays]

    async def _relay_candidates(self, component: int) -> list[Candidate]:
        if not self.turn_routes:
            return []
        loop = asyncio.get_running_loop()
        tasks = {
            asyncio.ensure_future(self._allocate(component, route)): route for route in self.turn_routes
        }
        gathering = RelayGathering(loop.time(), len(tasks))
        pending = set(tasks)
        candidates: list[Candidate] = []
        try:
            while pending and not gathering.done(loop.time()):
                done, pending = await asyncio.wait(pending, timeout=gathering.wait_seconds(loop.time()),
                                                   return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    allocated = self._settle(task, tasks[task], candidates)
                    gathering.settled(loop.time(), allocated=allocated)
        except asyncio.CancelledError:
            # The attempt was dropped while gathering (the connection closed or replaced): the
            # allocations still under way go too, and what they end with is nobody's concern.
            for task in pending:
                task.cancel()
                task.add_done_callback(_abandoned_allocation)
            raise
        for task in pending:
            if task.done():  # finished since the last wait: an allocation made is not thrown away
                self._settle(task, tasks[task], candidates)
                continue
            task.cancel()  # aioice's endpoint closes its socket when cancelled
            self._turn_failed(tasks[task], "the relay is unreachable (no answer in time)")
        return candidates

    def _settle(self, task: asyncio.Future[tuple[Candidate, StunProtocol]], route: TurnRoute,
                candidates: list[Candidate]) -> bool:
        """Take a finished allocation's relay into the agent, or log and keep why it failed."""
        error = task.exception()
        if error is not None:
            self._turn_failed(route, turn_failure_reason(error))
            return False
        candidate, protocol = task.result()
        candidates.append(candidate)
        self._protocols.append(protocol)
        self.relay_routes[protocol] = route
        return True

    async def _allocate(self, component: int, route: TurnRoute) -> tuple[Candidate, StunProtocol]:
        candidate, protocol = await aioice.ice.relayed_candidate(
            component=component,
            hide_related_address=self._transport_policy == TransportPolicy.RELAY,
            protocol_factory=lambda: StunProtocol(self),
            turn_server=(route.host, route.port),
            turn_username=route.username,
            turn_password=route.password,
            turn_ssl=_turn_ssl() if route.tls else False,  # type: ignore[arg-type]  # passed on to create_turn_endpoint, which takes a context
            turn_transport=route.transport,
        )
        # aioice gives every relay the same priority and a foundation without the leg.
        candidate.priority = candidate_priority(component, "relay", route.local_preference)
        candidate.foundation = candidate_foundation("relay", f"udp-{route.leg}", candidate.host)
        return candidate, protocol

    def _turn_failed(self, route: TurnRoute, reason: str) -> None:
        log.warning("TURN relay %s not used: %s", route.url, reason)
        if all(f.url != route.url for f in self.turn_failures):
            self.turn_failures.append(TurnFailure(url=route.url[:512], reason=reason[:300]))


def _abandoned_allocation(task: asyncio.Future[Any]) -> None:
    # Retrieved, so asyncio does not log "exception was never retrieved" for an attempt given up.
    if not task.cancelled() and task.exception() is not None:
        log.debug("an abandoned TURN allocation ended with %r", task.exception())


def _connection_kwargs_with_every_turn_url(servers: list[RTCIceServer]) -> dict[str, Any]:
    """aiortc's ``connection_kwargs`` for STUN, plus ``turn_routes`` for every TURN URL."""
    stun_only = [
        RTCIceServer(urls=stun_urls, username=s.username, credential=s.credential, credentialType=s.credentialType)
        for s in servers
        if (stun_urls := [u for u in ([s.urls] if isinstance(s.urls, str) else s.urls) if u.startswith("stun")])
    ]
    kwargs = _original_connection_kwargs(stun_only)
    routes, problems = turn_routes(
        TurnServerEntry(s.urls, s.username, s.credential) for s in servers if s.credentialType == "password"
    )
    for problem in problems:
        log.warning("TURN URL not used: %s", problem)
    kwargs["turn_routes"] = routes
    return kwargs


def use_every_turn_url(enabled: bool) -> None:
    """Make new ICE agents allocate on every TURN URL (:class:`MultiTurnConnection`), or aiortc's first only."""
    module: Any = aiortc.rtcicetransport  # Connection is imported there, not re-exported
    module.connection_kwargs = _connection_kwargs_with_every_turn_url if enabled else _original_connection_kwargs
    module.Connection = MultiTurnConnection if enabled else _original_connection


def every_turn_url_active() -> bool:
    module: Any = aiortc.rtcicetransport
    return module.Connection is MultiTurnConnection and module.connection_kwargs is _connection_kwargs_with_every_turn_url


# --- triggered checks sent at once ------------------------------------------------------------

_original_check_incoming = aioice.ice.Connection.check_incoming
_original_build_request = aioice.ice.Connection.build_request


class _FreshChecks:
    """One ICE agent's fresh checks: which it may start, and which requests' answers still count."""

    def __init__(self) -> None:
        self.gate: FreshCheckGate[CandidatePair] = FreshCheckGate()
        self.latest: dict[CandidatePair, bytes] = {}
        """The transaction id of the last request built for each pair while its check was in progress."""
        self.replaced: dict[CandidatePair, list[bytes]] = {}
        """Per pair checked afresh: the transaction ids of the requests its fresh check replaced."""


_fresh_checks: weakref.WeakKeyDictionary[aioice.ice.Connection, _FreshChecks] = weakref.WeakKeyDictionary()


def _fresh_checks_of(connection: aioice.ice.Connection) -> _FreshChecks:
    checks = _fresh_checks.get(connection)
    if checks is None:
        checks = _fresh_checks[connection] = _FreshChecks()
    return checks


class _LateAnswer:
    """Stands in a STUN protocol's transactions for a replaced check's request.

    RFC 8445 section 7.3.1.4: a cancelled check is not sent again, but its answer still
    counts. It is handed to the pair's check in progress, which takes it as its own: the same
    peer answers it, signed with the same password. Only a success: an error (a role
    conflict) was about the request the check replaced, not the one it sends now.
    """

    def __init__(self, checks: _FreshChecks, pair: CandidatePair) -> None:
        self.checks = checks
        self.pair = pair

    def response_received(self, message: stun.Message, addr: tuple[str, int]) -> None:
        """Pass a success answer on to the transaction of the pair's check in progress (if any)."""
        if message.message_class != stun.Class.RESPONSE:
            return
        current_id = self.checks.latest.get(self.pair)
        transactions: dict[bytes, Any] = self.pair.protocol.transactions  # ours stand there too
        current = transactions.get(current_id) if current_id is not None else None
        if current is not None and current is not self:
            current.response_received(message, addr)


def _build_request_and_note_checks(self: aioice.ice.Connection, pair: CandidatePair, nominate: bool) -> stun.Message:
    request: stun.Message = _original_build_request(self, pair, nominate)
    # A check's own request (consent and round-trip probes use pairs that succeeded).
    if pair.state is CandidatePair.State.IN_PROGRESS:
        _fresh_checks_of(self).latest[pair] = request.transaction_id
    return request


def _check_incoming_and_check_afresh(self: aioice.ice.Connection, message: stun.Message, addr: tuple[str, int],
                                     protocol: StunProtocol) -> None:
    _original_check_incoming(self, message, addr, protocol)
    # aioice's rule checks a frozen, waiting or failed pair now and a succeeded one needs none; an
    # in-progress one it leaves to its retransmissions.
    pair = next((p for p in self._check_list if p.protocol is protocol and p.remote_addr == addr), None)
    if pair is not None and pair.state is CandidatePair.State.WAITING and pair.task is not None:
        # aioice's own triggered check, about to send its first request: as fresh as one of ours, so a copy
        # of the same request right behind (copy_stun_messages) does not replace it.
        _fresh_checks_of(self).gate.note(pair, time.monotonic())
        return
    if pair is None or pair.state is not CandidatePair.State.IN_PROGRESS or self._check_list_done:
        return
    previous = pair.task
    if previous is None or previous.done():
        return
    checks = _fresh_checks_of(self)
    if not checks.gate.admit(pair, time.monotonic()):
        return
    latest = checks.latest.get(pair)
    replaced = [*checks.replaced.get(pair, []), *([latest] if latest is not None else [])]
    checks.replaced[pair] = replaced
    pair.task = asyncio.ensure_future(_check_afresh(self, pair, previous, replaced))


async def _check_afresh(connection: aioice.ice.Connection, pair: CandidatePair, previous: asyncio.Task[None],
                        replaced: list[bytes]) -> None:
    """Replace ``pair``'s check in progress (``previous``) by a new one, the answers to the
    ``replaced`` requests counting as answers to it."""
    checks = _fresh_checks_of(connection)
    late = _LateAnswer(checks, pair)
    transactions: dict[bytes, Any] = pair.protocol.transactions
    try:
        # Started after whatever was already due: an answer that had just come ended the check.
        if previous.done() or pair.state is not CandidatePair.State.IN_PROGRESS:
            return
        previous.cancel()  # its request is not sent again, and its transaction is forgotten...
        await asyncio.wait([previous])
        for transaction_id in replaced:  # ...but an answer to it still counts
            transactions.setdefault(transaction_id, late)
        await connection.check_start(pair)
    finally:
        for transaction_id in replaced:
            if transactions.get(transaction_id) is late:
                del transactions[transaction_id]
        if checks.replaced.get(pair) is replaced:  # not taken over by a later fresh check
            del checks.replaced[pair]


def prompt_triggered_checks(enabled: bool) -> None:
    """Make every ICE agent in this process check a pair afresh at once when the peer's check
    arrives while its own is in progress (RFC 8445 section 7.3.1.4), or leave that to aioice's
    retransmissions (0.5 s, then 1 s, ...).

    A fresh check replaces the one in progress, whose request is not sent again; an answer
    to that request still counts. One fresh check per pair within
    :data:`~peer.triggered_checks.FRESH_CHECK_INTERVAL`, none once the check list is done.
    """
    connection: Any = aioice.ice.Connection  # the methods are replaced on aioice's class, for every agent
    connection.check_incoming = _check_incoming_and_check_afresh if enabled else _original_check_incoming
    connection.build_request = _build_request_and_note_checks if enabled else _original_build_request


def triggered_checks_prompt() -> bool:
    return (aioice.ice.Connection.check_incoming is _check_incoming_and_check_afresh
            and aioice.ice.Connection.build_request is _build_request_and_note_checks)


# --- a relay's first send to a peer not held for its channel ---------------------------------

_original_turn_send_data = aioice.turn.TurnClientMixin.send_data
_STUN_MAGIC_COOKIE = b"\x21\x12\xa4\x42"


def _is_stun(data: bytes) -> bool:
    """Whether ``data`` is a STUN message (RFC 8489 section 5: two zero bits, then the magic cookie)."""
    return len(data) >= 20 and data[0] < 0x40 and data[4:8] == _STUN_MAGIC_COOKIE


def _send_indication(data: bytes, addr: tuple[str, int]) -> stun.Message:
    indication = stun.Message(message_method=stun.Method.SEND, message_class=stun.Class.INDICATION)
    indication.attributes["XOR-PEER-ADDRESS"] = addr
    indication.attributes["DATA"] = data
    return indication


def _send_indication_while_binding(protocol: aioice.turn.TurnClientMixin, data: bytes, addr: tuple[str, int]) -> None:
    # Only while the ChannelBind is unanswered: once bound, aioice's own send is on its way.
    transport: asyncio.BaseTransport | None = getattr(protocol, "transport", None)
    if addr in protocol.peer_connect_waiters and transport is not None and not transport.is_closing():
        protocol.send_stun(_send_indication(data, addr), protocol.server)


async def _send_data_with_permission_ahead(self: aioice.turn.TurnClientMixin, data: bytes,
                                           addr: tuple[str, int]) -> None:
    if _is_stun(data) and addr not in self.peer_to_channel and addr not in self.peer_connect_waiters:
        # aioice's send below puts the ChannelBind request on the wire before it first waits;
        # this runs just after, so the relay installs the permission before the indication.
        asyncio.get_running_loop().call_soon(_send_indication_while_binding, self, data, addr)
    await _original_turn_send_data(self, data, addr)


def pipeline_turn_permissions(enabled: bool) -> None:
    """Make every TURN client in this process send a STUN message to a new peer at once, as a
    Send indication right behind the ChannelBind request (or wait for the binding, as aioice does).

    aioice binds a channel to a peer before it sends it anything: the first ICE check through a
    relay waits a round trip to the relay, on a slow leg 150 ms or more. The relay handles the
    ChannelBind, which installs the peer's permission, before the indication that follows it on
    the same flow, so the check leaves at once. aioice still sends it over the channel once
    bound: the peer answers the copy that comes first (a STUN request sent twice is one
    transaction), and if the indication is lost or refused nothing is lost but the head start.
    Only STUN goes ahead: the first thing sent to a peer is an ICE check.
    """
    mixin: Any = aioice.turn.TurnClientMixin  # both aioice's UDP and TCP clients inherit send_data
    mixin.send_data = _send_data_with_permission_ahead if enabled else _original_turn_send_data


def turn_permissions_pipelined() -> bool:
    return aioice.turn.TurnClientMixin.send_data is _send_data_with_permission_ahead


# --- data channels: a lost input chunk is resent in a fraction of a second -------------------

QUICK_SCTP_RTO_MIN = 0.22
"""Seconds: the least time before aiortc's SCTP resends an unacknowledged chunk (aiortc: 1 s).

Input, chat and pings are small and sparse, so a lost chunk is rarely followed by the three
later ones that would trigger a fast retransmit: it waits for the retransmission timer. RFC
9260's 1 s floor then adds a second to a keystroke at any loss. Chromium's own SCTP (dcsctp)
uses 220 ms, above any peer's delayed-ack time; aiortc acknowledges at once."""
QUICK_SCTP_RTO_INITIAL = 0.5
"""Seconds before the first round trip is measured (aiortc: 3 s; dcsctp: 500 ms): a lost INIT
or first message costs half a second, not three."""


class _ModuleTimers:
    """Module globals of a dependency that a hook sets to Deskhand's values, or back to the dependency's own (read
    where they are defined, when this module is imported)."""

    def __init__(self, module: Any, names: tuple[str, ...], ours: tuple[float, ...]) -> None:
        self._module, self._names, self._ours = module, names, ours
        self._theirs = tuple(getattr(module, name) for name in names)

    def use(self, ours: bool) -> None:
        for name, value in zip(self._names, self._ours if ours else self._theirs, strict=True):
            setattr(self._module, name, value)

    def in_use(self) -> bool:
        return tuple(getattr(self._module, name) for name in self._names) == self._ours


_sctp_timers = _ModuleTimers(aiortc.rtcsctptransport, ("SCTP_RTO_MIN", "SCTP_RTO_INITIAL"),
                             (QUICK_SCTP_RTO_MIN, QUICK_SCTP_RTO_INITIAL))


def quick_sctp_retransmits(enabled: bool) -> None:
    """Give aiortc's SCTP Chromium's retransmission floor and start (:data:`QUICK_SCTP_RTO_MIN`), or its own.

    aiortc reads both as module globals: the floor each time it updates the timeout, the
    start when an association is made. Its timer never backs off on expiry and no count of
    expiries closes the association, so a lower floor only resends sooner.
    """
    _sctp_timers.use(enabled)


def sctp_retransmits_quick() -> bool:
    return _sctp_timers.in_use()


# --- STUN: a lost check or TURN request is resent in a quarter second -------------------------

QUICK_STUN_RTO = 0.25
"""Seconds before aioice first resends an unanswered STUN request (aioice: 0.5 s; Chromium: 250 ms), doubling
after each. At 2 % loss each way, one seed of ``bench/link_sweep.py``'s relay in seven lost an ICE check's
datagram at 1 Mbit/s and 150 ms: ICE took 0.88 s instead of 0.22, and the first picture came at 2.1 s."""
QUICK_STUN_RETRANSMISSIONS = 7
"""Resends before a request times out (aioice: 6): one more at the halved start gives up after as long
(63.75 s against 63.5)."""
_stun_timers = _ModuleTimers(aioice.stun, ("RETRY_RTO", "RETRY_MAX"), (QUICK_STUN_RTO, QUICK_STUN_RETRANSMISSIONS))


def quick_stun_retransmits(enabled: bool) -> None:
    """Give aioice's STUN requests :data:`QUICK_STUN_RTO` and :data:`QUICK_STUN_RETRANSMISSIONS`, or its own.

    aioice reads both as module globals when a transaction is made; a request made with its own count of
    retransmissions (a consent check: none) keeps it.
    """
    _stun_timers.use(enabled)


def stun_retransmits_quick() -> bool:
    return _stun_timers.in_use()


# --- STUN: a check, a TURN request and a check's answer go twice ------------------------------

STUN_COPY_AFTER = 0.01
"""Seconds after a STUN request went out at which the same datagram goes again while unanswered, and after
which every answer the ICE agent gives to a binding request (a check; once connected, a consent check or a
round-trip probe every few seconds) goes again.

A lost request waits for its retransmission (:data:`QUICK_STUN_RTO`), and a lost answer too: the asker
cannot tell the two apart. At 2 % loss each way, the seed ``bench/link_sweep.py``'s relay uses by default
lost the host's answer to the console's first check at 1 Mbit/s and 150 ms: the console's ICE waited for its
retransmission, DTLS finished 0.46 s after ICE instead of 0.30 s, and the first picture came 1.58-1.61 s after
consent instead of 1.37-1.41. A second copy is lost with the first one time in fifty at 2 % loss; a copy costs
100-200 bytes. A request answered within the gap (a local network) goes once, and over TURN's TCP or TLS
never. A request's copy that arrives after the original is answered again (the asker takes the first
answer; the agent's triggered check is not made afresh for it, :func:`prompt_triggered_checks`), and an
answer's copy finds no transaction and is dropped. Requests that may not be retransmitted (consent checks,
round-trip probes) are not copied: their loss is counted, not repaired. Only answers to requests signed with
the agent's ICE password are copied (an unsigned or wrongly signed one gets a single error answer), so a stranger
cannot use the agent to send twice what it sends; a copy due after the agent's socket closed is not sent."""

_original_transaction_retry = aioice.stun.Transaction._Transaction__retry  # type: ignore[attr-defined]  # name-mangled
_original_ice_send_stun = StunProtocol.send_stun


def _retry_and_copy(self: Any) -> None:
    """aioice's ``Transaction.__retry`` (a send of the request); a request it may retransmit goes again
    :data:`STUN_COPY_AFTER` later unless answered meanwhile."""
    tries = self._Transaction__tries
    _original_transaction_retry(self)
    reliable = isinstance(self._Transaction__protocol, aioice.turn.TurnStreamMixin)  # TURN over TCP or TLS
    if self._Transaction__tries > tries and self._Transaction__tries_max > 1 and not reliable:
        asyncio.get_running_loop().call_later(STUN_COPY_AFTER, _copy_request, self)


def _copy_request(transaction: Any) -> None:
    if not transaction._Transaction__future.done():
        _send_copy(transaction._Transaction__protocol, transaction._Transaction__request, transaction._Transaction__addr)


_copying = False
"""Whether the message being sent is a copy (an answer's is not to be copied again)."""


def _send_stun_and_copy_answers(self: StunProtocol, message: stun.Message, addr: tuple[str, int]) -> None:
    """aioice's ``StunProtocol.send_stun``; an answer to a check goes again :data:`STUN_COPY_AFTER` later."""
    _original_ice_send_stun(self, message, addr)
    answer = message.message_method == stun.Method.BINDING and message.message_class == stun.Class.RESPONSE
    if answer and not _copying:
        asyncio.get_running_loop().call_later(STUN_COPY_AFTER, _send_copy, self, message, addr)


def _send_copy(protocol: Any, message: stun.Message, addr: tuple[str, int]) -> None:
    """Send ``message`` again through ``protocol``'s own ``send_stun``, as the original went, unless its socket
    closed meanwhile (asyncio's transport fails on a send once its socket is gone; a relayed one drops it)."""
    global _copying
    closing = getattr(getattr(protocol, "transport", None), "is_closing", None)
    if closing is not None and closing():
        return
    _copying = True
    try:
        protocol.send_stun(message, addr)
    except OSError:  # the network went away meanwhile: a retransmission is the one to find out
        return
    finally:
        _copying = False


def copy_stun_messages(enabled: bool) -> None:
    """Send every STUN request aioice may retransmit, and every ICE check's answer, a second time after
    :data:`STUN_COPY_AFTER` (a request only while unanswered), or once, as aioice does."""
    transaction: Any = aioice.stun.Transaction
    transaction._Transaction__retry = _retry_and_copy if enabled else _original_transaction_retry
    protocol: Any = StunProtocol
    protocol.send_stun = _send_stun_and_copy_answers if enabled else _original_ice_send_stun


def stun_messages_copied() -> bool:
    transaction: Any = aioice.stun.Transaction
    return transaction._Transaction__retry is _retry_and_copy and StunProtocol.send_stun is _send_stun_and_copy_answers


# --- DTLS: a lost handshake flight is sent again in a fraction of a second ---------------------

DTLS_RESEND_AFTER = (0.25, 0.5)
"""Seconds after a DTLS handshake flight went out at which, with nothing come back meanwhile, its datagrams
are sent again (OpenSSL's own timer retransmits at 1 s, then 2 s, ...).

A flight is answered a round trip and the peer's work later (0.31 s for the whole handshake at 150 ms). At 2 %
loss each way, 2 of 7 seeds of ``bench/link_sweep.py``'s relay lost a datagram of the handshake, and the first
picture at 1 Mbit/s and 150 ms came at 2.0 and 2.7 s instead of 1.4. A copy that arrives after the original is
a replay to the peer's record layer, which drops it; one that arrives instead of it is the flight. A lost
answer is the peer's to send again (Chromium starts its own timer lower; a Deskhand peer has this hook)."""


class _HandshakeFlight:
    """The datagrams of the last handshake flight a DTLS transport wrote, and how often they went again."""

    def __init__(self, heard: int, sent_at: float) -> None:
        self.datagrams: list[bytes] = []
        self.heard = heard
        """The transport's count of datagrams received when the flight went out."""
        self.sent_at = sent_at
        self.resent = 0
        """How many of :data:`DTLS_RESEND_AFTER` have been done."""


_flights: weakref.WeakKeyDictionary[RTCDtlsTransport, _HandshakeFlight] = weakref.WeakKeyDictionary()


def _datagrams_heard(transport: RTCDtlsTransport) -> int:
    return int(transport._RTCDtlsTransport__rx_packets)  # type: ignore[attr-defined]  # aiortc's private counter


class _KeptSends:
    """The ICE transport under a DTLS transport, keeping what is sent through it (for one ``_write_ssl``)."""

    def __init__(self, inner: RTCIceTransport, kept: list[bytes]) -> None:
        self._inner = inner
        self._kept = kept

    async def _send(self, data: bytes) -> None:
        self._kept.append(data)
        await self._inner._send(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def _write_ssl_keeping_the_flight(self: RTCDtlsTransport) -> None:
    """aiortc's ``_write_ssl``; during the handshake what it sends is kept as the flight under way (a new one
    once something was heard since the last went out)."""
    if self.encrypted:
        await _original_write_ssl(self)
        return
    kept: list[bytes] = []
    inner = self._transport
    self._transport = _KeptSends(inner, kept)  # type: ignore[assignment]  # stands in for it, attribute by attribute
    try:
        await _original_write_ssl(self)
    finally:
        self._transport = inner
    if kept:
        heard = _datagrams_heard(self)
        flight = _flights.get(self)
        if flight is None or flight.heard != heard:
            flight = _flights[self] = _HandshakeFlight(heard, time.monotonic())
        flight.datagrams.extend(kept)


async def _resend_unanswered(transport: RTCDtlsTransport, flight: _HandshakeFlight) -> None:
    """Send ``flight`` again at each of :data:`DTLS_RESEND_AFTER` not yet done, while ``transport`` lives."""
    while flight.resent < len(DTLS_RESEND_AFTER):
        await asyncio.sleep(max(0.0, flight.sent_at + DTLS_RESEND_AFTER[flight.resent] - time.monotonic()))
        if transport.state in ("closed", "failed"):
            return
        flight.resent += 1
        log.debug("DTLS: no answer to a handshake flight after %.2f s; sending its %d datagram(s) again",
                  time.monotonic() - flight.sent_at, len(flight.datagrams))
        try:
            for datagram in flight.datagrams:
                await transport.transport._send(datagram)
        except ConnectionError:
            return  # the ICE transport is gone: the handshake fails as it would have


_resends_after_handshakes: set[asyncio.Future[None]] = set()
"""The tasks sending a handshake's last flight again (kept from the garbage collector)."""


async def _recv_next_resending_the_flight(self: RTCDtlsTransport) -> None:
    """aiortc's ``_recv_next``; meanwhile the last handshake flight is sent again on :data:`DTLS_RESEND_AFTER`.

    Until the handshake is done, whatever was heard: a copy of the peer's flight that crossed ours is no answer
    (its record layer drops it as a replay), and a real answer makes a new flight at once. Once it is done, the
    flight written after the last datagram heard is the handshake's last (the server's Finished, in DTLS 1.2): the
    peer, still waiting for it if it was lost, says nothing before its own timer (1 s), so it goes again on the
    schedule whatever comes meanwhile (copies of the peer's own flight, crossing, are no word on it)."""
    flight = _flights.get(self)
    if flight is None or flight.resent >= len(DTLS_RESEND_AFTER):
        await _original_recv_next(self)
        return
    if self.encrypted:
        del _flights[self]
        if flight.heard == _datagrams_heard(self):
            task = asyncio.ensure_future(_resend_unanswered(self, flight))
            _resends_after_handshakes.add(task)
            task.add_done_callback(_resends_after_handshakes.discard)
        await _original_recv_next(self)
        return
    resending = asyncio.ensure_future(_resend_unanswered(self, flight))
    try:
        await _original_recv_next(self)
    finally:
        resending.cancel()


def quick_dtls_resends(enabled: bool) -> None:
    """Send a DTLS handshake flight nothing answered again after :data:`DTLS_RESEND_AFTER`, or leave it to OpenSSL."""
    transport: Any = RTCDtlsTransport
    transport._write_ssl = _write_ssl_keeping_the_flight if enabled else _original_write_ssl
    transport._recv_next = _recv_next_resending_the_flight if enabled else _original_recv_next


def dtls_resends_quick() -> bool:
    return RTCDtlsTransport._write_ssl is _write_ssl_keeping_the_flight


# --- what the connection is doing (aiortc's private state) ------------------------------------


def _ice_connections(pc: RTCPeerConnection) -> list[aioice.ice.Connection]:
    """The ICE agents of ``pc``: one per ICE transport (media and SCTP, unless bundled)."""
    dtls = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        dtls.append(pc.sctp.transport)
    connections: list[aioice.ice.Connection] = []
    for transport in dtls:
        connection = transport.transport._connection
        if connection not in connections:
            connections.append(connection)
    return connections


def _nominated_pair(pc: RTCPeerConnection) -> tuple[aioice.ice.Connection, CandidatePair] | None:
    for connection in _ice_connections(pc):
        pair = connection._nominated.get(1)
        if pair is not None:
            return connection, pair
    return None


def selected_route(pc: RTCPeerConnection) -> Route | None:
    """The nominated candidate pair's types and, for a relay of ours, its leg (None before one is)."""
    nominated = _nominated_pair(pc)
    if nominated is None:
        return None
    connection, pair = nominated
    relay = connection.relay_routes.get(pair.protocol) if isinstance(connection, MultiTurnConnection) else None
    return Route(
        local_type=pair.local_candidate.type,  # type: ignore[arg-type]  # aioice's types are the four of CandidateType
        remote_type=pair.remote_candidate.type,  # type: ignore[arg-type]
        turn_leg=relay.leg if relay is not None else None,
    )


async def ice_round_trip(pc: RTCPeerConnection, timeout: float = 1.0) -> float | None:
    """Seconds one STUN binding takes on the nominated pair (as consent checks do), or None
    when there is no pair or no answer within ``timeout``."""
    nominated = _nominated_pair(pc)
    if nominated is None:
        return None
    return await _binding_round_trip(*nominated, timeout)


async def _transport_round_trip(dtls: RTCDtlsTransport, timeout: float = 1.0) -> float | None:
    """:func:`ice_round_trip` on the ICE agent under one DTLS transport (a receiver's)."""
    connection: aioice.ice.Connection = dtls.transport._connection
    pair = connection._nominated.get(1)
    if pair is None:
        return None
    return await _binding_round_trip(connection, pair, timeout)


async def _binding_round_trip(connection: aioice.ice.Connection, pair: CandidatePair, timeout: float) -> float | None:
    if connection.remote_password is None:
        return None
    request = connection.build_request(pair, nominate=False)
    started = time.monotonic()
    try:
        await asyncio.wait_for(
            pair.protocol.request(request, pair.remote_addr,
                                  integrity_key=connection.remote_password.encode("utf8"), retransmissions=0),
            timeout,
        )
    except (TimeoutError, stun.TransactionError, OSError):
        return None
    return time.monotonic() - started


def candidate_types(pc: RTCPeerConnection) -> tuple[list[str], list[str]]:
    """The kinds of candidate ``pc`` gathered and received (each once), for ``ice_failed``."""
    local: set[str] = set()
    remote: set[str] = set()
    for connection in _ice_connections(pc):
        local.update(c.type for c in connection.local_candidates)
        remote.update(c.type for c in connection.remote_candidates)
    return sorted(local), sorted(remote)


def turn_failures(pc: RTCPeerConnection) -> list[TurnFailure]:
    """Why TURN allocations of ``pc`` failed (each URL once)."""
    failures: list[TurnFailure] = []
    for connection in _ice_connections(pc):
        for failure in getattr(connection, "turn_failures", []):
            if all(f.url != failure.url for f in failures):
                failures.append(failure)
    return failures
