"""The technician's live view of a remote session: signalling, WebRTC answerer, remote control.

The host offers a screen track and three data channels (see
:mod:`protocol.channel`); this side answers, decodes frames (keeping only the
newest, so a slow consumer never builds a backlog) and sends input, chat,
clipboard text and monitor choices. What the host reports back (monitors,
chat, clipboard, refusals) and what the broker says (grant, consent) is kept
as plain state, and :meth:`RemoteView.wait_until` waits for any condition on it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from pydantic import BaseModel

from peer.aiortc_hooks import (
    complete_frames_on_marker,
    ice_round_trip,
    offer_h264_main,
    quick_sctp_retransmits,
    recover_losses_on_a_timer,
    selected_route,
)
from peer.background import BackgroundTasks, cancel_and_wait
from peer.connect_watch import failure_text, ice_failed_message
from peer.events import EventReporter, clipboard_fields
from peer.ice import rtc_configuration, watch_connection
from peer.liveness import (
    TECHNICIAN_WORDS,
    GaveUp,
    Interrupted,
    Recovery,
    RecoveryAction,
    Restored,
    SendPing,
    SendPong,
)
from peer.signalling import (
    SignallingChannel,
    apply_remote_candidate,
    apply_remote_description,
    keep_signalling,
)
from protocol.api import signalling_path
from protocol.channel import (
    CONTROL_CHANNEL,
    INPUT_CHANNEL,
    MAX_TEXT_CHARS,
    POINTER_CHANNEL,
    Chat,
    Clipboard,
    InputMessageT,
    Key,
    LinkState,
    Monitors,
    Notice,
    Ping,
    PointerButton,
    PointerMove,
    Pong,
    Refused,
    SelectMonitor,
    Text,
    Wheel,
    is_liveness_frame,
    parse_host_control,
    parse_liveness,
    typed_text,
)
from protocol.frames import MessageError
from protocol.grants import Grant
from protocol.ice import IceConfig
from protocol.permissions import Permission
from protocol.recording import SessionPolicy
from protocol.route import Route, link_line, route_line
from protocol.signalling import (
    Answer,
    Consent,
    End,
    Error,
    GrantIssued,
    IceCandidate,
    IceFailed,
    IceRenewed,
    Offer,
    PeerInfo,
    PeerJoined,
    PeerLeft,
    Role,
    SessionEnded,
    Welcome,
    encode,
)
from protocol.waits import wait_until_set

log = logging.getLogger(__name__)

OTHER_SIDE = "the end user"

LIVENESS_TICK_SECONDS = 0.25
"""How often the view gives its liveness the time at the least (sooner when it is due)."""

FrameHook = Callable[[av.VideoFrame, float], None]
"""Called for every decoded frame with the ``time.monotonic()`` of its arrival."""


class ViewError(Exception):
    """The view cannot deliver what was asked; the message says why."""


@dataclass(frozen=True)
class ChatLine:
    sender: str
    """``technician`` (sent from here) or ``user`` (typed on the host)."""
    text: str
    at: float


class RemoteView:
    """One technician connection to one session."""

    def __init__(self, broker_url: str, session_id: str, token: str, *, on_frame: FrameHook | None = None) -> None:
        self._broker_url = broker_url
        self._path = signalling_path(session_id)
        self._token = token
        self.session_id = session_id
        self.events = EventReporter(broker_url, token, session_id)
        self.policy = SessionPolicy()
        self.notices: list[str] = []
        self._on_frame = on_frame
        self._channel: SignallingChannel | None = None
        self._pc: RTCPeerConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tasks = BackgroundTasks("remote view", log)
        """The signalling loop and the frame reader: held, failures logged, stopped on :meth:`close`."""
        self._ice = IceConfig()
        self._changed = asyncio.Event()
        self._data: dict[str, RTCDataChannel] = {}
        self._seq = itertools.count(1)
        self.host: PeerInfo | None = None
        self.ended: SessionEnded | None = None
        self.grant: Grant | None = None
        self.consent: Consent | None = None
        self.monitors: Monitors | None = None
        self.link: LinkState | None = None
        """The host's latest word on whether the link limits the picture (:meth:`link_status`)."""
        self.chat: list[ChatLine] = []
        self.remote_clipboard: str | None = None
        self.refusals: list[Refused] = []
        self.latest_frame: av.VideoFrame | None = None
        self.latest_frame_at = 0.0
        self.first_frame_at: float | None = None
        self.frames_received = 0
        self.connect_failure: str | None = None
        """Why the current media connection attempt failed (ours or the host's ``ice_failed``),
        in words for the technician; None while it works or is being made."""
        self._attempts = 0
        self._recovery = Recovery(offerer=False)
        """Whether the host still answers; while it does not, waits go on and the host re-offers
        (:mod:`peer.liveness`); after :data:`~peer.liveness.GIVE_UP_SECONDS` the view gives up."""
        self._control_watched = False
        """The host pinged on the current control channel (it does as soon as the channel opens):
        from then on its silence counts. A host that never pings (an older one) is never taken for gone."""

    # --- connecting and waiting ---------------------------------------------------------

    async def start(self) -> None:
        """Connect to the broker's signalling; media follows when the host offers."""
        self._channel = await SignallingChannel.open(self._broker_url, self._path, self._token)
        self._tasks.start(self._signalling_loop(), "signalling")
        self._tasks.start(self._watch_liveness(), "liveness")
        self.events.start()

    async def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until ``condition()`` holds; raise :class:`ViewError` naming ``what`` on timeout or end."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.ended is not None:
                raise ViewError(
                    f"the session ended ({self.ended.ended_by}: {self.ended.reason or 'no reason'}) "
                    f"while waiting for {what}"
                )
            if self.connect_failure is not None:
                raise ViewError(self.connect_failure)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ViewError(f"gave up waiting for {what} after {timeout:g} s")
            self._changed.clear()
            await wait_until_set(self._changed, min(remaining, 0.5))

    def _notify(self) -> None:
        self._changed.set()

    async def wait_for_frame(self, timeout: float, *, newer_than: float = 0.0) -> av.VideoFrame:
        """The newest frame that arrived after ``newer_than`` (a ``time.monotonic()``)."""
        await self.wait_until(
            lambda: self.latest_frame is not None and self.latest_frame_at > newer_than, timeout, "a video frame"
        )
        assert self.latest_frame is not None
        return self.latest_frame

    async def wait_for_control(self, timeout: float) -> None:
        """Until the input, pointer and control channels are open (the host has consented and connected):
        :meth:`move` sends on the pointer channel unless asked otherwise."""
        await self.wait_until(
            lambda: all(
                (c := self._data.get(label)) is not None and c.readyState == "open"
                for label in (INPUT_CHANNEL, POINTER_CHANNEL, CONTROL_CHANNEL)
            ),
            timeout,
            "the host's input channel",
        )

    @property
    def peer_connection(self) -> RTCPeerConnection | None:
        """The current WebRTC connection (None before the host's offer and between reconnections).

        For statistics (``await view.peer_connection.getStats()``) and diagnostics
        such as the negotiated codec; the view owns it: do not close it.
        """
        return self._pc

    def route(self) -> Route | None:
        """How the media flows now (the selected candidate pair), or None while not connected."""
        return selected_route(self._pc) if self._pc is not None else None

    async def round_trip(self) -> float | None:
        """Seconds a STUN check takes on the media path now (None while not connected)."""
        return await ice_round_trip(self._pc) if self._pc is not None else None

    async def route_status(self) -> str:
        """"media: relayed through TURN over TCP, round trip 42 ms" (:func:`protocol.route.route_line`)."""
        return route_line(self.route(), await self.round_trip())

    def link_status(self) -> str | None:
        """"slow connection: 1.2 Mbit/s, 12 fps" while the host says its link limits the picture, else None."""
        return link_line(self.link)

    @property
    def reconnecting(self) -> bool:
        """The host stopped answering and the connection is being made again (waits go on meanwhile)."""
        return self._recovery.reconnecting

    def allowed(self, permission: Permission) -> bool:
        """Whether grant and consent both allow ``permission``, as far as this side knows."""
        return (
            self.grant is not None
            and permission in self.grant.permissions
            and self.consent is not None
            and permission in self.consent.permissions
        )

    async def snapshot(self, path: Path, *, timeout: float, settle: float = 1.0) -> av.VideoFrame:
        """Save the current remote screen as a PNG.

        Waits for the first frame, then ``settle`` seconds more so that the
        host's refinement frame has come (it sends one 0.3 s after the screen
        settles, and nothing more while the screen stays still), and saves the
        newest frame.
        """
        await self.wait_for_frame(timeout)
        assert self.first_frame_at is not None
        settle_until = self.first_frame_at + settle
        if time.monotonic() < settle_until:
            await asyncio.sleep(settle_until - time.monotonic())
        frame = await self.wait_for_frame(timeout)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_image().save(path, format="PNG")  # type: ignore[no-untyped-call]  # PyAV's stubs leave to_image unannotated
        return frame

    # --- remote control -----------------------------------------------------------------

    def move(self, x: float, y: float, *, reliable: bool = False) -> int:
        """Move the pointer to (x, y) on the selected monitor (0..1). Unreliable unless asked."""
        message = PointerMove(seq=next(self._seq), x=x, y=y)
        self._send_input(INPUT_CHANNEL if reliable else POINTER_CHANNEL, message)
        return message.seq

    def button(self, x: float, y: float, down: bool, button: str = "left") -> int:
        message = PointerButton(seq=next(self._seq), button=button, down=down, x=x, y=y)
        self._send_input(INPUT_CHANNEL, message)
        return message.seq

    def click(self, x: float, y: float, button: str = "left") -> int:
        """Press and release ``button`` at (x, y); returns the seq of the release."""
        self.button(x, y, True, button)
        return self.button(x, y, False, button)

    def wheel(self, x: float, y: float, dy: int, dx: int = 0) -> int:
        message = Wheel(seq=next(self._seq), dx=dx, dy=dy, x=x, y=y)
        self._send_input(INPUT_CHANNEL, message)
        return message.seq

    def key(self, code: str, key: str = "", *, down: bool) -> int:
        message = Key(seq=next(self._seq), code=code, key=key, down=down)
        self._send_input(INPUT_CHANNEL, message)
        return message.seq

    def press_key(self, code: str, key: str = "") -> int:
        """A key going down and up (``Enter``, ``KeyA``...)."""
        self.key(code, key, down=True)
        return self.key(code, key, down=False)

    def type_text(self, text: str) -> int:
        """Type ``text`` on the host as it is; long text goes in pieces of 1000 characters."""
        seq = 0
        for start in range(0, len(text), MAX_TEXT_CHARS):
            message = Text(seq=next(self._seq), text=text[start : start + MAX_TEXT_CHARS])
            self._send_input(INPUT_CHANNEL, message)
            seq = message.seq
        return seq

    def send_chat(self, text: str) -> None:
        self._send(CONTROL_CHANNEL, Chat(text=text))
        self.events.add("chat.sent", text=text)
        self.chat.append(ChatLine("technician", text, time.monotonic()))
        self._notify()

    def set_clipboard(self, text: str) -> None:
        """Put ``text`` on the host's clipboard (needs the clipboard permission there)."""
        self._send(CONTROL_CHANNEL, Clipboard(text=text))
        self.events.add("clipboard.sent", **clipboard_fields(text))

    def select_monitor(self, index: int) -> None:
        """Stream (and aim input at) the host's monitor ``index``, counted from 1."""
        self._send(CONTROL_CHANNEL, SelectMonitor(index=index))
        self.events.add("monitor.selected", index=index)

    def _send(self, label: str, message: BaseModel) -> None:
        channel = self._data.get(label)
        if channel is None or channel.readyState != "open":
            raise ViewError(
                f"the host's {label} channel is not open: wait for the host to consent and connect "
                "(wait_for_control)"
            )
        channel.send(encode(message))

    def _send_input(self, label: str, message: InputMessageT) -> None:
        """Send on the input or pointer channel, counting it and logging what it types."""
        self._send(label, message)
        self.events.count("input.sent")
        typed = typed_text(message)
        if typed and self.policy.keystroke_logging:
            self.events.add("input.text", text=typed)

    # --- ending -------------------------------------------------------------------------

    async def end_session(self, reason: str = "") -> None:
        """End the whole session through signalling."""
        if self._channel is not None and not self._channel.closed:
            await self._channel.send(End(reason=reason))

    async def close(self) -> None:
        """Leave the session (it stays open for the host to be viewed again)."""
        await self._tasks.close()  # the signalling loop and the frame reader (a failure of either is logged)
        self._recovery.stop()
        await self._close_peer(wait=True)
        if self._channel is not None:
            await self._channel.close()
        await self.events.close()

    # --- plumbing -----------------------------------------------------------------------

    async def _signalling_loop(self) -> None:
        """Handle signalling; when it drops without an end, keep the media and reconnect."""
        over = await keep_signalling(_ViewSignalling(self), self._channel)
        if over is not None and self.ended is None:
            self.ended = SessionEnded(ended_by="broker", reason=over.reason)
        self._notify()

    async def _handle(self, message: BaseModel) -> None:
        if isinstance(message, Welcome):
            self._ice = message.ice
            self.host = message.peer
            self.policy = message.policy
        elif isinstance(message, IceRenewed):
            self._ice = message.ice  # fresh TURN credentials, for the next peer connection
        elif isinstance(message, GrantIssued):
            self.grant = message.grant.grant
        elif isinstance(message, Consent):
            self.consent = message
        elif isinstance(message, PeerJoined) and message.peer.role is Role.host:
            self.host = message.peer
        elif isinstance(message, PeerLeft) and message.role is Role.host:
            log.info("the host left; waiting for it to come back")
            self._recovery.stop()  # its absence is no interruption: it offers again when it returns
            await self._close_peer()
        elif isinstance(message, Offer):
            await self._answer(message)
        elif isinstance(message, IceCandidate):
            if self._pc is not None:
                await apply_remote_candidate(self._pc, message)
        elif isinstance(message, IceFailed):
            if self._pc is not None:
                await self._give_up(failure_text(OTHER_SIDE, message, theirs=True))
        elif isinstance(message, SessionEnded):
            self.ended = message
        elif isinstance(message, Error):
            log.warning("the broker reported a problem: %s (%s)", message.message, message.code.value)

    async def _answer(self, offer: Offer) -> None:
        await self._close_peer()
        complete_frames_on_marker(True)
        offer_h264_main(True)
        quick_sctp_retransmits(True)
        recover_losses_on_a_timer(True)
        pc = RTCPeerConnection(rtc_configuration(self._ice))
        self._pc = pc
        self._attempts += 1
        self.connect_failure = None

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self._reader = self._tasks.start(self._read_frames(track), "frame reader")

        @pc.on("datachannel")
        def _on_datachannel(channel: RTCDataChannel) -> None:
            if self._pc is not pc:
                return  # replaced by a newer offer
            self._data[channel.label] = channel
            channel.on("open", self._notify)
            if channel.label == CONTROL_CHANNEL:
                channel.on("message", lambda frame: self._control_frame(channel, frame))
                self._control_watched = False
            self._notify()

        problem = await apply_remote_description(pc, offer)
        if problem is not None:
            # This offer only: the session goes on. The host hears it (it waits for no answer then).
            if self._channel is not None and not self._channel.closed:
                await self._channel.send(ice_failed_message(self._attempts, 0.0, [], [], []))
            await self._give_up(f"Could not connect to {OTHER_SIDE}: their computer sent a connection setup "
                                f"this console cannot use ({problem}).")
            return
        if not self._recovery.reconnecting:  # while reconnecting, the host's next offer replaces this one
            self._tasks.start(self._watch_connect(pc, self._attempts), "connect watch")
        await pc.setLocalDescription(await pc.createAnswer())
        assert self._channel is not None  # offers only arrive on an open channel
        await self._channel.send(Answer(sdp=pc.localDescription.sdp, attempt=offer.attempt))

    async def _watch_connect(self, pc: RTCPeerConnection, attempt: int) -> None:
        """Give ``pc`` its time to connect; if it fails, tell the host, then the technician."""
        failed = await watch_connection(pc, attempt, lambda: self._pc is pc)
        if failed is None:
            return
        if self._channel is not None and not self._channel.closed:
            await self._channel.send(failed)  # first: the technician may leave as soon as told
        await self._give_up(failure_text(OTHER_SIDE, failed))

    async def _give_up(self, explanation: str) -> None:
        """This connection attempt is over: close it and let every wait fail with ``explanation``."""
        self.connect_failure = explanation
        self.notices.append(explanation)
        await self._close_peer()
        self._notify()

    def _control_frame(self, channel: RTCDataChannel, frame: str | bytes) -> None:
        if self._data.get(CONTROL_CHANNEL) is not channel:
            return  # a replaced connection's: its pongs prove nothing about the current one
        if is_liveness_frame(frame):
            self._liveness_frame(frame)
            return
        try:
            message = parse_host_control(frame)
        except MessageError as bad:
            log.warning("ignoring a control message from the host: %s", bad.message)
            return
        if isinstance(message, Notice):
            self.notices.append(message.text)
            log.info("the host says: %s", message.text)
        elif isinstance(message, Chat):
            self.chat.append(ChatLine("user", message.text, time.monotonic()))
            self.events.add("chat.received", text=message.text)
        elif isinstance(message, Clipboard):
            self.remote_clipboard = message.text
            self.events.add("clipboard.received", **clipboard_fields(message.text))
        elif isinstance(message, Monitors):
            self.monitors = message
        elif isinstance(message, LinkState):
            self.link = message
            log.info("%s", link_line(message) or "the link no longer limits the picture")
        else:
            self.refusals.append(message)
            log.info("the host refused %s %s: %s", message.what, message.seq, message.reason)
        self._notify()

    def _liveness_frame(self, frame: str | bytes) -> None:
        try:
            message = parse_liveness(frame)
        except MessageError as bad:
            log.warning("ignoring a liveness message from the host: %s", bad.message)
            return
        if not self._control_watched:
            self._control_watched = True
            self._recover(self._recovery.opened(time.monotonic()))
        if isinstance(message, Ping):
            self._recover(self._recovery.ping_received(message.seq))
        else:
            self._recover(self._recovery.pong_received(message.seq, time.monotonic()))

    async def _watch_liveness(self) -> None:
        """Give the liveness the time: pings, the interruption and giving up happen in its ticks."""
        while True:
            due = self._recovery.due_at()
            now = time.monotonic()
            await asyncio.sleep(LIVENESS_TICK_SECONDS if due is None else min(LIVENESS_TICK_SECONDS, max(0.0, due - now)))
            gave_up = self._recover(self._recovery.tick(time.monotonic()))
            if gave_up:
                await self._close_peer()

    def _recover(self, actions: list[RecoveryAction]) -> bool:
        """Carry out the liveness's ``actions`` (the host makes the offers; this side only answers them);
        True when it gave up: the caller closes the peer connection."""
        gave_up = False
        for action in actions:
            match action:
                case SendPing(seq=seq):
                    self._send_liveness(Ping(seq=seq))
                case SendPong(seq=seq):
                    self._send_liveness(Pong(seq=seq))
                case Interrupted(silent_seconds=silent):
                    log.warning("%s (no answer from the host for %.1f s)", TECHNICIAN_WORDS.reconnecting, silent)
                    self.notices.append(TECHNICIAN_WORDS.reconnecting)
                case Restored(silent_seconds=silent):
                    log.warning("%s (after %.1f s)", TECHNICIAN_WORDS.restored, silent)
                    self.notices.append(TECHNICIAN_WORDS.restored)
                case GaveUp(seconds=seconds):
                    self.connect_failure = TECHNICIAN_WORDS.lost(seconds)
                    log.warning("%s", self.connect_failure)
                    self.notices.append(self.connect_failure)
                    gave_up = True
        if actions:
            self._notify()
        return gave_up

    def _send_liveness(self, message: Ping | Pong) -> None:
        """A ping or pong, on the control channel if it is open; never held (one sent late proves nothing)."""
        channel = self._data.get(CONTROL_CHANNEL)
        if channel is not None and channel.readyState == "open":
            channel.send(encode(message))

    async def _read_frames(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = time.monotonic()
            if self.first_frame_at is None:
                self.first_frame_at = now
            assert isinstance(frame, av.VideoFrame)  # only the video track is read (see _on_track)
            self.latest_frame = frame
            self.latest_frame_at = now
            self.frames_received += 1
            if self._on_frame is not None:
                self._on_frame(frame, now)
            self._notify()

    async def _close_peer(self, *, wait: bool = False) -> None:
        """Let go of the peer connection; unless ``wait``, it closes on the side: closing deletes its
        TURN allocations, which on a broken path waits out the relay's retransmissions (half a
        minute), and the next offer must not wait for that."""
        if self._reader is not None:
            await cancel_and_wait([self._reader])  # how it ended is logged by the tasks (:mod:`peer.background`)
            self._reader = None
        self._data = {}
        self._control_watched = False
        self.link = None  # the next connection's host says again if its link still limits
        self._recovery.closed()
        if self._pc is not None:
            pc, self._pc = self._pc, None
            if wait:
                await pc.close()
            else:
                self._tasks.start(pc.close(), "closing a replaced peer connection")


class _ViewSignalling:
    """The technician's turns in :func:`peer.signalling.keep_signalling`: the view stays up while it reconnects."""

    def __init__(self, view: RemoteView) -> None:
        self._view = view

    def over(self) -> bool:
        return self._view.ended is not None

    async def open(self) -> SignallingChannel:
        v = self._view
        return await SignallingChannel.open(v._broker_url, v._path, v._token)

    async def connected(self, channel: SignallingChannel) -> None:
        self._view._channel = channel

    async def handle(self, message: BaseModel) -> None:
        await self._view._handle(message)
        self._view._notify()

    def dropped(self) -> bool:
        self._view._channel = None
        return False
