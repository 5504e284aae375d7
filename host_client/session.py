"""A joined host: signalling, consent, the screen stream and remote input.

What the session decides (consent, offers, the end, control paused while the
recording lags) is :class:`~host_client.session_state.HostSessionState`, a pure
object; :class:`HostSession` feeds it events and carries out its actions with
aiortc, the signalling WebSocket and the UI.

The host is the WebRTC offerer, and offers only once the user has answered the
consent prompt (or ``--consent`` answered it). Each time a technician
(re)connects, the host builds a fresh peer connection: a screen track, and the
``input``, ``pointer`` and ``control`` data channels. Whatever the technician
sends is applied only if the broker's signed grant and the user's consent both
allow it (:class:`~host_client.authority.Authority`). If the signalling socket
drops, the host reconnects with backoff while media keeps flowing peer to peer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection
from pydantic import BaseModel

from peer.aiortc_hooks import (
    forward_keyframe_requests,
    offer_h264_main,
    pace_video_senders,
    pacer_stats,
    quick_sctp_retransmits,
    report_receiver_losses,
    selected_route,
    use_screen_encoder,
)
from peer.background import BackgroundTasks
from peer.events import EventReporter, clipboard_fields
from peer.ice import rtc_configuration, watch_connection
from peer.landing import DEFAULT_MAX_FILE_BYTES, LandingFolder
from peer.link_report import LinkReporter
from peer.screen_encoder import screen_codec_preferences
from peer.signalling import (
    SignallingChannel,
    apply_remote_candidate,
    apply_remote_description,
    keep_signalling,
)
from peer.stream_budget import StreamBudget
from peer.transfers import TransferClient
from protocol.api import JoinResponse
from protocol.channel import (
    CONTROL_CHANNEL,
    CONTROL_MESSAGE_BURST,
    CONTROL_MESSAGES_PER_SECOND,
    INPUT_CHANNEL,
    INPUT_MESSAGE_BURST,
    INPUT_MESSAGES_PER_SECOND,
    LIVENESS_MESSAGE_BURST,
    LIVENESS_MESSAGES_PER_SECOND,
    POINTER_CHANNEL,
    Chat,
    LinkState,
    MonitorInfo,
    Monitors,
    Notice,
    Ping,
    Pong,
    Refused,
    SelectMonitor,
    is_liveness_frame,
    parse_input,
    parse_liveness,
    parse_tech_control,
)
from protocol.channel import (
    Clipboard as ClipboardMessage,
)
from protocol.frames import MessageError
from protocol.ice import IceConfig
from protocol.permissions import Permission
from protocol.rates import Flow, MessageRate
from protocol.recording import SessionPolicy
from protocol.route import route_line
from protocol.signalling import (
    Answer,
    Consent,
    ConsentSource,
    End,
    FileRequestUpdate,
    IceCandidate,
    Offer,
    TransferUpdate,
    encode,
)

from .authority import Authority
from .capture import Monitor, Screen, ScreenTrack
from .file_transfers import HostTransfers
from .files import default_downloads_root, session_folder
from .grant_check import load_public_key
from .input_backend import InputBackend, PynputBackend
from .recorder import RecordingUploader, SegmentRecorder
from .recording_quality import carries_full_recording
from .recording_time import resume_point
from .remote_input import RemoteInput
from .session_state import (
    Action,
    AddCandidate,
    ApplyAnswer,
    ClosePeer,
    CloseSignalling,
    HandOnToTransfers,
    HostSessionState,
    MarkMediaConnected,
    ObtainConsent,
    PrepareOffer,
    ReleaseInput,
    ReopenSignalling,
    Report,
    ResumeTransfers,
    SendConsent,
    SendEnd,
    SendIceFailed,
    SendLiveness,
    SendOffer,
    SessionStarted,
    ShowPermissions,
    ShowTechnicianPresent,
    SkipAfterEnd,
    StartRecording,
    TellTechnician,
    TellUser,
)
from .state import SavedSession, state_dir
from .ui import Clipboard, HostUI
from .upload_yield import STILL_SECONDS, first_picture_due, next_watch_due

log = logging.getLogger(__name__)

CLIPBOARD_POLL_SECONDS = 0.5
END_CONFIRM_SECONDS = 5.0
"""How long a host that ends the session waits for the broker to confirm it."""
PENDING_CONTROL_LIMIT = 50
"""Chat lines the user may type before the control channel is open; they are sent when it opens."""
RECORDING_WATCH_SECONDS = 0.5
"""How often the host tells the state how far the recording is behind and the live stream what to leave it
(sooner once a settled picture starts to sharpen: :func:`~host_client.upload_yield.next_watch_due`)."""
LINK_WATCH_SECONDS = 1.0
"""How often the host judges whether its link limits the picture (:class:`~peer.link_report.LinkReporter`)."""
LIVENESS_TICK_SECONDS = 0.25
"""How often the session gives the liveness the time at the least (sooner when it is due)."""
AFTER_END_SECONDS = 600.0
"""How long the host waits for the user to answer what it asks once the session ended (the survey)."""
RECORDING_DRAIN_SECONDS = 30.0
"""How long a host that is done waits for its last recording segments to reach the broker."""
PREPARED_PEER_SECONDS = 60.0
"""How long a peer connection made while the user reads the consent prompt (:class:`PrepareOffer`) stays
good to offer. Its candidates are this machine's addresses at that moment (a laptop moves), and an offer
of stale ones costs a failed attempt; older, the offer is made afresh (a TURN allocation, a round trip
or two to the relay)."""


@dataclass
class _Peer:
    """One peer connection and what the session sends on it: the screen track and the data channels."""

    pc: RTCPeerConnection
    track: ScreenTrack
    channels: dict[str, RTCDataChannel]
    ice: IceConfig
    made_at: float
    """``time.monotonic()`` when it was made."""

    async def close(self) -> None:
        """Stop its track and close it (its TURN allocations are deleted: on a broken path, slowly)."""
        self.track.stop()
        await self.pc.close()

    def discard(self, tasks: BackgroundTasks) -> None:
        """Let go of a peer connection that was never the session's: it closes on the side."""
        tasks.start(self.close(), "closing an unused peer connection")


@dataclass(frozen=True)
class HostSummary:
    """How a session ended, for the one-line report at exit."""

    session_id: str
    ended_by: str
    reason: str
    duration: float
    frames_sent: int
    inputs_applied: int = 0
    inputs_refused: int = 0

    def line(self) -> str:
        minutes, seconds = divmod(int(self.duration), 60)
        hours, minutes = divmod(minutes, 60)
        why = f": {self.reason}" if self.reason else ""
        return (
            f"Session {self.session_id} ended by the {self.ended_by}{why} "
            f"after {hours}:{minutes:02d}:{seconds:02d}; {self.frames_sent} frames sent, "
            f"{self.inputs_applied} inputs applied, {self.inputs_refused} refused."
        )


def add_screen_sender(pc: RTCPeerConnection, track: ScreenTrack) -> None:
    """Send ``track`` on ``pc`` through Deskhand's screen pipeline.

    H.264 is preferred (main profile where the receiver takes it, constrained baseline otherwise), encoded by
    :class:`~peer.screen_encoder.ScreenH264Encoder`; the receiver's keyframe
    requests reach the track, which sends only on change. VP8 with aiortc's
    encoder remains for receivers without H.264. Either way the packets leave
    paced at the track's budget (:func:`~peer.aiortc_hooks.pace_video_senders`), which
    also hears the receiver's reports of loss (:func:`~peer.aiortc_hooks.report_receiver_losses`), and
    the data channels resend a lost input chunk within a fraction of a second
    (:func:`~peer.aiortc_hooks.quick_sctp_retransmits`).
    """
    use_screen_encoder(True)
    offer_h264_main(True)
    forward_keyframe_requests(True)
    pace_video_senders(True)
    report_receiver_losses(True)
    quick_sctp_retransmits(True)
    transceiver = pc.addTransceiver(track, direction="sendonly")
    transceiver.setCodecPreferences(screen_codec_preferences())


@dataclass(frozen=True)
class HostOptions:
    """How this host runs a session."""

    fps: float = 60.0
    monitor: int = 1
    preset_consent: frozenset[Permission] | None = None
    """``--consent``: answer the prompt with this set, unattended (reported as such)."""
    consent_source: ConsentSource = ConsentSource.terminal
    """How the UI asks, for the audit trail."""
    trace_input: Callable[[int, float], None] | None = None
    downloads_root: Path = field(default_factory=default_downloads_root)
    """Files sent to this computer land in a per-session folder under here."""
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    after_end: Callable[[HostSession, HostSummary], Awaitable[None]] | None = None
    """Run once the session has ended, before the UI closes (the satisfaction survey)."""


class HostSession:
    """Runs one joined session until it ends; implements :class:`~host_client.ui.UserActions`."""

    def __init__(
        self,
        broker_url: str,
        joined: JoinResponse,
        *,
        ui: HostUI,
        clipboard: Clipboard,
        options: HostOptions | None = None,
        screen: Screen | None = None,
        input_backend: Callable[[], InputBackend] = PynputBackend,
        saved: SavedSession | None = None,
    ) -> None:
        self._broker_url = broker_url
        self._joined = joined
        self._ui = ui
        self._clipboard = clipboard
        self._options = options or HostOptions()
        self._screen = screen or Screen()
        self._monitors = self._screen.monitors()
        if not 1 <= self._options.monitor <= len(self._monitors):
            raise ValueError(f"monitor {self._options.monitor} does not exist; this machine has {len(self._monitors)}")
        self._selected = self._monitors[self._options.monitor - 1]
        self.authority = Authority(load_public_key(joined.broker_public_key), joined.session_id)
        self._state = HostSessionState(
            self.authority, ice=joined.ice, preset_consent=self._options.preset_consent,
            consent_source=self._options.consent_source,
        )
        """What the session decides; this object carries it out (see :mod:`host_client.session_state`)."""
        self.events = EventReporter(broker_url, joined.host_token, joined.session_id)
        self.input = RemoteInput(
            self.authority, lambda: self._selected, self._report_threadsafe,
            backend_factory=input_backend, trace=self._options.trace_input,
            reporter=self.events, log_keystrokes=lambda: self.policy.keystroke_logging,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channel: SignallingChannel | None = None
        self._pc: RTCPeerConnection | None = None
        self._track: ScreenTrack | None = None
        self._connected_at: float | None = None
        """When the current peer connection came up (``time.monotonic()``); None until it does."""
        self._prepared: asyncio.Task[_Peer] | None = None
        """The next offer's peer connection, made (or being made) while the user reads the consent prompt."""
        self.prepared_offers = 0
        """Offers sent on a peer connection made while the user read the consent prompt."""
        self._data: dict[str, RTCDataChannel] = {}
        self._tasks = BackgroundTasks("host session", log)
        """Everything the session runs beside its signalling loop; cancelled and awaited when it stops."""
        self._frames_before = 0
        self._after_end: asyncio.Future[None] | None = None
        self._clipboard_seen: str | None = None
        self._pending_control: list[Chat | ClipboardMessage | Monitors | Refused | Notice | LinkState | Ping | Pong] = []
        self._link_report = LinkReporter()
        self._started = time.monotonic()
        self._saved = saved
        self.landing = LandingFolder(
            session_folder(self._options.downloads_root, joined.session_id, joined.ticket_id),
            self._options.max_file_bytes,
        )
        self._files_client = TransferClient(broker_url, joined.host_token, joined.session_id)
        self.files = HostTransfers(
            self._files_client, self.landing, self.authority, ui,
            unattended=self._options.preset_consent is not None, saved=saved,
            technician=lambda: self.authority.grant.technician_name if self.authority.grant else "the technician",
        )
        self.recording_spool = state_dir() / "recordings" / joined.session_id
        self.uploader = RecordingUploader(
            broker_url, joined.host_token, joined.session_id, self.recording_spool,
            live_congested=self._live_congested, live_starting=self._live_starting, live_limit=self._live_limit,
            live_sharpening=self._live_sharpening,
            max_lag_seconds=lambda: self.policy.recording_max_lag_seconds,
        )
        self.recorder: SegmentRecorder | None = None
        self.media_connected = asyncio.Event()
        self.consent_sent = asyncio.Event()

    @property
    def session_id(self) -> str:
        return self._joined.session_id

    @property
    def host_token(self) -> str:
        """This host's secret for the session's HTTP resources (the survey, after the end)."""
        return self._joined.host_token

    @property
    def ui(self) -> HostUI:
        return self._ui

    def _live_limit(self) -> float | None:
        """The live screen stream's target bit rate (before any upload's share) while the link limits it,
        or has not yet shown it carries a full recording beside the picture (:func:`~host_client.recording_quality.carries_full_recording`;
        the recording's uploads are then paced to a share of it); None otherwise. Unpaced, the first
        segment (about 100 kB) left in one burst while the first picture was being refined, and the
        queue dropped the picture's packets (1 Mbit/s, 150 ms, through the link emulator)."""
        if self._track is None:
            return None
        budget, now = self._track.budget, time.monotonic()
        unproven = not carries_full_recording(budget.estimate)
        return budget.target_bitrate(now, uploads=False) if budget.link_limited(now) or unproven else None

    def _live_congested(self) -> bool:
        """Whether the live stream finds the link congested (the recording's whole uploads wait, as
        :class:`~host_client.upload_yield.UploadYield` says)."""
        return self._track is not None and self._track.budget.congested

    def _live_starting(self) -> bool:
        """Whether the live stream's media connection is being set up or sending its first picture
        (:func:`~host_client.upload_yield.first_picture_due`; the recording's whole uploads wait). An
        upload under way held the connection's DTLS flights behind it (0.29 s for a 660-byte flight at
        1 Mbit/s, 77 ms for the others), then took a third of the link from the first picture's
        refinement (measured through the link emulator at 1 Mbit/s, 150 ms)."""
        pc = self._pc
        return pc is not None and first_picture_due(pc.connectionState, self._connected_at, time.monotonic())

    def _live_sharpening(self) -> bool:
        """Whether the live stream is sharpening a settled picture: the screen has been still for
        :data:`~host_client.upload_yield.STILL_SECONDS` and its last frames were capped (the recording's
        uploads wait, as long as their deadlines allow: :meth:`~host_client.upload_yield.UploadYield.defer_due`).
        Beside a refinement sent at the whole target, the paced upload of the scroll's backlog overfilled
        a 1 Mbit/s link and cut the estimate: 25-30 dB 2 s after a scroll (through the link emulator)."""
        track = self._track
        return track is not None and track.budget.refining and time.monotonic() - track.last_change >= STILL_SECONDS

    def _recording_link_limited(self) -> bool:
        """Whether the link may not carry a full-quality recording beside the live stream now: the live
        stream finds it congested, or its receiver has not yet shown it carries that much
        (:func:`~host_client.recording_quality.carries_full_recording`). Without a live stream the link
        is the recording's alone, unless a technician is there: a live stream is about to start, and
        the segment then being recorded goes up beside its first picture. Called on the recorder's
        thread too: it only reads."""
        track = self._track
        if track is None:
            return self._state.technician_present
        budget = track.budget
        return budget.congested or not carries_full_recording(budget.estimate)

    @property
    def frames_sent(self) -> int:
        return self._frames_before + (self._track.frames_sent if self._track else 0)

    @property
    def selected_monitor(self) -> Monitor:
        return self._selected

    @property
    def policy(self) -> SessionPolicy:
        """How the deployment records sessions (from the broker's ``welcome``)."""
        return self._state.policy

    async def run(self) -> HostSummary:
        """Serve the session until the technician, the user or the broker ends it."""
        self._loop = asyncio.get_running_loop()
        self._ui.attach(self)
        self.events.start()
        self._tasks.start(self._watch_clipboard(), "clipboard watch")
        self._tasks.start(self.uploader.run(), "recording upload")
        self._tasks.start(self._watch_recording(), "recording watch")
        self._tasks.start(self._watch_liveness(), "liveness")
        self._tasks.start(self._watch_link(), "link watch")
        try:
            await self._signalling_loop()
        finally:
            # Also the consent question, the end confirmation timer and any consent or clipboard write under way.
            await self._tasks.close()
            await self._stop_recording()
            await self._discard_prepared()
            await self._close_peer()
            if self._channel is not None:
                await self._channel.close()
            await asyncio.to_thread(self.input.close)
            await self.files.close()
            await self._files_client.aclose()
            await self.events.close()
            self._screen.close()
        ended = self._state.ended
        if self._saved is not None and ended is not None:
            self._saved.forget()
        ended_by, reason = (ended.by, ended.reason) if ended else ("broker", "the broker could not be reached")
        summary = HostSummary(
            session_id=self.session_id, ended_by=ended_by, reason=reason,
            duration=time.monotonic() - self._started, frames_sent=self.frames_sent,
            inputs_applied=self.input.applied, inputs_refused=self.input.refused,
        )
        if self._options.after_end is not None and ended is not None:
            await self._run_after_end(self._options.after_end, summary)
        await self._ui.close(summary.line())
        await self._tasks.close()  # an end asked for while the survey was open
        return summary

    async def _run_after_end(
        self, after_end: Callable[[HostSession, HostSummary], Awaitable[None]], summary: HostSummary
    ) -> None:
        """Run ``after_end`` (the survey) for at most :data:`AFTER_END_SECONDS`; the user ending
        again (Ctrl-C, End) skips it. Its failures are logged: the session is over either way."""
        task = asyncio.ensure_future(asyncio.wait_for(after_end(self, summary), AFTER_END_SECONDS))
        self._after_end = task
        self._state.after_end_started()
        await asyncio.wait({task})  # not ``await task``: its cancellation is a skip, not ours
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, asyncio.TimeoutError):
            log.info("nobody answered after the session ended; going on")
        elif error is not None:
            log.error("after the session ended: %s", error, exc_info=error)

    # --- user actions (UserActions) -------------------------------------------------------

    def change_consent(self, permissions: frozenset[Permission]) -> None:
        self._carry_out_soon(self._state.consent_changed(frozenset(permissions), datetime.now(UTC)))

    def end_session(self) -> None:
        self._tasks.start(self.end("the user ended the session"), "end")

    def cancel_transfer(self, transfer_id: str) -> None:
        self.files.cancel(transfer_id)

    def send_chat(self, text: str) -> None:
        reason = self.authority.refusal(Permission.chat)
        if reason is not None:
            self._ui.notice(f"chat is not possible: {reason}")
            return
        self._send_control(Chat(text=text[:4000]), queue=True)
        self.events.add("chat.sent", text=text[:4000])

    async def end(self, reason: str) -> None:
        """The user ends the session: tell the broker, which tells the technician.

        Safe to call at any moment, also before signalling is connected: the
        end is then sent as soon as it is. The session is over when the broker
        confirms (``session_ended``), or after :data:`END_CONFIRM_SECONDS`.
        Once it is over, ending again skips what is asked after the end (the survey).
        """
        await self._carry_out(self._state.end_requested(reason))

    # --- carrying out what the state decides ---------------------------------------------

    async def _carry_out(self, actions: list[Action]) -> None:
        """Do ``actions`` in order, each finished before the next."""
        for action in actions:
            pending = self._perform(action)
            if pending is not None:
                await pending

    def _carry_out_soon(self, actions: list[Action]) -> None:
        """Do ``actions`` from a caller that cannot wait (the UI): what must be awaited runs as a task."""
        for action in actions:
            pending = self._perform(action)
            if pending is not None:
                self._tasks.start(pending, type(action).__name__)

    def _perform(self, action: Action) -> Coroutine[Any, Any, None] | None:
        """Do ``action`` now, or return what is left to await."""
        match action:
            case ReleaseInput():
                self.input.release_all()
            case ShowPermissions(granted=granted, consented=consented):
                self._ui.permissions_changed(granted, consented)
            case ShowTechnicianPresent(present=present):
                self._ui.technician_present(present)
            case SessionStarted(technician=technician, ticket_id=ticket_id):
                self._ui.session_started(technician, self.session_id, ticket_id)
            case TellUser(text=text):
                self._ui.notice(text)
            case TellTechnician(text=text):
                self._send_control(Notice(text=text), queue=True)
            case Report(kind=kind, fields=fields):
                self.events.add(kind, **fields)
            case SendConsent(permissions=permissions, source=source):
                self.consent_sent.set()
                return self._send_signal(Consent(permissions=permissions, source=source))
            case ObtainConsent():
                self._tasks.start(self._obtain_consent(action), "consent question")
            case ResumeTransfers():
                return self.files.resume()
            case HandOnToTransfers(message=TransferUpdate() as update):
                self.files.on_transfer(update.transfer)
            case HandOnToTransfers(message=FileRequestUpdate() as update):
                self.files.on_file_request(update.request)
            case StartRecording():
                return self._start_recording()
            case ClosePeer():
                return self._close_peer(wait=False)
            case PrepareOffer(ice=ice):
                self._prepare_offer(ice)
            case SendOffer(ice=ice, attempt=attempt):
                return self._offer(ice, attempt)
            case ApplyAnswer(sdp=sdp, connect_deadline=connect_deadline):
                return self._apply_answer(sdp, connect_deadline)
            case SendLiveness(message=message):
                self._send_control(message)  # only on an open channel, never held
            case AddCandidate(candidate=message):
                return self._add_candidate(message)
            case MarkMediaConnected():
                self.media_connected.set()
            case SendIceFailed(message=message):
                return self._send_signal(message)
            case SendEnd(reason=reason):
                return self._send_end(reason)
            case CloseSignalling():
                if self._channel is not None:
                    return self._channel.close()
            case ReopenSignalling():
                if self._channel is not None and not self._channel.closed:
                    self._channel.abort()
            case SkipAfterEnd():
                if self._after_end is not None:
                    self._after_end.cancel()
        return None

    # --- consent ----------------------------------------------------------------------

    async def _obtain_consent(self, ask: ObtainConsent) -> None:
        if ask.unattended_answer is not None:
            chosen: frozenset[Permission] | None = ask.unattended_answer
            source = ConsentSource.flag
        else:
            chosen = await self._ui.ask_consent(ask.technician, ask.offered, ask.preselected)
            source = self._options.consent_source
        await self._carry_out(self._state.consent_answered(chosen, source, datetime.now(UTC)))

    # --- signalling ---------------------------------------------------------------------

    async def _send_signal(self, message: BaseModel) -> None:
        if self._channel is not None and not self._channel.closed:
            try:
                await self._channel.send(message)
            except Exception as exc:  # noqa: BLE001 - a lost socket is handled by the loop
                log.info("could not send %s: %s", type(message).__name__, exc)

    async def _send_end(self, reason: str) -> None:
        """Send the end; the broker confirms with ``session_ended``, or after
        :data:`END_CONFIRM_SECONDS` the session is over without its word."""
        await self._send_signal(End(reason=reason))

        async def give_up_waiting() -> None:
            await asyncio.sleep(END_CONFIRM_SECONDS)
            await self._carry_out(self._state.end_unconfirmed(reason))

        self._tasks.start(give_up_waiting(), "end confirmation")

    async def _signalling_loop(self) -> None:
        over = await keep_signalling(_HostSignalling(self, self._state))
        if over is not None:
            self._state.signalling_over(over.reason)

    # --- its turns in keep_signalling (through _HostSignalling) ---------------------------

    async def _open_signalling(self) -> SignallingChannel:
        self._channel = await SignallingChannel.open(self._broker_url, self._joined.signalling_path, self._joined.host_token)
        return self._channel

    async def _signalling_connected(self) -> None:
        await self._carry_out(self._state.signalling_connected())

    async def _receive(self, message: BaseModel) -> None:
        await self._carry_out(self._state.receive(message, datetime.now(UTC)))

    def _signalling_dropped(self) -> bool:
        self._carry_out_soon(self._state.signalling_lost())
        return self._state.over

    # --- media and data channels ----------------------------------------------------------

    def _new_peer(self, ice: IceConfig) -> _Peer:
        """A fresh peer connection with the screen track and the data channels; not yet the session's."""
        pc = RTCPeerConnection(rtc_configuration(ice))
        track = ScreenTrack(
            lambda: self._selected,
            visible=lambda: self.authority.allows(Permission.view),
            fps=self._options.fps,
            screen=self._screen,
        )
        add_screen_sender(pc, track)
        channels = self._open_data_channels(pc)

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            if self._pc is not pc:
                return  # replaced, or not yet offered: what it does now concerns nobody
            log.info("media connection: %s", pc.connectionState)
            if pc.connectionState == "connected":
                self._connected_at = time.monotonic()
                log.info(route_line(selected_route(pc), None))
            self._carry_out_soon(self._state.media_connection_changed(pc.connectionState, time.monotonic()))

        return _Peer(pc, track, channels, ice, time.monotonic())

    def _prepare_offer(self, ice: IceConfig) -> None:
        """Make the next offer's peer connection on the side (:class:`PrepareOffer`), unless one is made."""
        if self._prepared is None:
            self._prepared = self._tasks.start(self._make_offer(self._new_peer(ice)), "preparing the next offer")

    async def _make_offer(self, peer: _Peer) -> _Peer:
        """``peer`` with its offer made: candidates gathered, TURN relays allocated (about 0.3 s at 150 ms)."""
        try:
            await peer.pc.setLocalDescription(await peer.pc.createOffer())
        except BaseException:
            peer.discard(self._tasks)
            raise
        return peer

    async def _take_prepared(self, ice: IceConfig) -> _Peer | None:
        """The prepared peer connection if it still fits an offer with ``ice`` (None: make one afresh)."""
        task, self._prepared = self._prepared, None
        if task is None:
            return None
        await asyncio.wait([task])
        if task.cancelled() or task.exception() is not None:
            return None  # a failure is logged by the session's tasks; the offer is made afresh
        peer = task.result()
        if peer.ice != ice or time.monotonic() - peer.made_at > PREPARED_PEER_SECONDS:
            log.info("the prepared peer connection is stale; the offer is made afresh")
            peer.discard(self._tasks)
            return None
        return peer

    async def _offer(self, ice: IceConfig, attempt: int) -> None:
        """A peer connection offered to the technician: the one prepared while the user read the prompt,
        or a fresh one (the state closed the previous one first)."""
        peer = await self._take_prepared(ice)
        if peer is not None and self._state.offer_attempt != attempt:
            peer.discard(self._tasks)  # a newer offer came while it was being finished
            return
        made = peer is not None
        if made:
            self.prepared_offers += 1
        peer = peer or self._new_peer(ice)
        self._pc, self._track, self._data, self._connected_at = peer.pc, peer.track, peer.channels, None
        if not made:
            await peer.pc.setLocalDescription(await peer.pc.createOffer())
        if self._pc is not peer.pc:
            return  # replaced while the offer was being made (a re-offer came sooner)
        # Making the offer takes a moment, in which the broker may die: then the offer is lost,
        # not the session; the signalling loop reconnects and offers again (Offering.awaiting_answer).
        await self._send_signal(Offer(sdp=peer.pc.localDescription.sdp, attempt=attempt))

    async def _apply_answer(self, sdp: str, connect_deadline: bool) -> None:
        # The state expects this answer; the peer connection has its offer in place unless it is
        # still being made beside the signalling loop (after the consent question).
        pc = self._pc
        if pc is None or pc.signalingState != "have-local-offer":
            return
        problem = await apply_remote_description(pc, Answer(sdp=sdp))
        if problem is not None:
            await self._carry_out(self._state.answer_refused(problem))
            return
        if connect_deadline:
            self._tasks.start(self._watch_connect(pc, self._state.offer_attempt), "connect watch")

    async def _watch_connect(self, pc: RTCPeerConnection, attempt: int) -> None:
        """Give ``pc`` its time to connect; if it fails, explain and tell the technician's side."""
        failed = await watch_connection(pc, attempt, lambda: self._pc is pc)
        if failed is not None:
            await self._carry_out(self._state.connect_gave_up(failed))

    async def _add_candidate(self, message: IceCandidate) -> None:
        if self._pc is not None:
            await apply_remote_candidate(self._pc, message)

    def _open_data_channels(self, pc: RTCPeerConnection) -> dict[str, RTCDataChannel]:
        """``pc``'s input, pointer and control channels, answered by this session once ``pc`` is its own."""
        input_channel = pc.createDataChannel(INPUT_CHANNEL, ordered=True)
        pointer = pc.createDataChannel(POINTER_CHANNEL, ordered=False, maxRetransmits=0)
        control = pc.createDataChannel(CONTROL_CHANNEL, ordered=True)
        # Each channel at its own rate: a flood on one is dropped before it is even parsed,
        # and holds up neither the other channels nor the screen, the recording or signalling.
        input_rate = MessageRate.per_second(INPUT_MESSAGES_PER_SECOND, INPUT_MESSAGE_BURST)
        pointer_rate = MessageRate.per_second(INPUT_MESSAGES_PER_SECOND, INPUT_MESSAGE_BURST)
        control_rate = MessageRate.per_second(CONTROL_MESSAGES_PER_SECOND, CONTROL_MESSAGE_BURST)
        liveness_rate = MessageRate.per_second(LIVENESS_MESSAGES_PER_SECOND, LIVENESS_MESSAGE_BURST)

        @input_channel.on("message")
        def _on_input(frame: str | bytes) -> None:
            if self._within_rate(input_rate):
                self._input_frame(frame, pointer_only=False)

        @pointer.on("message")
        def _on_pointer(frame: str | bytes) -> None:
            if self._within_rate(pointer_rate):
                self._input_frame(frame, pointer_only=True)

        @control.on("open")
        def _on_control_open() -> None:
            if self._data.get(CONTROL_CHANNEL) is not control:
                return  # its connection was replaced
            self._carry_out_soon(self._state.control_opened(time.monotonic()))
            self._send_monitors()
            pending, self._pending_control = self._pending_control, []
            for message in pending:
                self._send_control(message)

        @control.on("message")
        def _on_control(frame: str | bytes) -> None:
            if self._data.get(CONTROL_CHANNEL) is not control:
                return  # a replaced connection's: its pongs prove nothing about the current one
            if is_liveness_frame(frame):
                # Their own allowance: a chat flood cannot starve them into a false "interrupted".
                if self._within_rate(liveness_rate):
                    self._liveness_frame(frame)
            elif self._within_rate(control_rate):
                self._control_frame(frame)

        return {INPUT_CHANNEL: input_channel, POINTER_CHANNEL: pointer, CONTROL_CHANNEL: control}

    def _within_rate(self, rate: MessageRate) -> bool:
        """Count one message of a channel; False (refused; the technician told at most every 5 s) over its rate."""
        flow = rate.admit(time.monotonic())
        if flow is Flow.accepted:
            return True
        self.input.refuse(None, "rate_limited", rate.describe(), tell=flow is Flow.refused_tell)
        return False

    def _input_frame(self, frame: str | bytes, *, pointer_only: bool) -> None:
        try:
            message = parse_input(frame, pointer_only=pointer_only)
        except MessageError as bad:
            self.input.refuse(None, bad.code.value, bad.message)
            return
        self.input.handle(message)

    def _liveness_frame(self, frame: str | bytes) -> None:
        try:
            message = parse_liveness(frame)
        except MessageError as bad:
            self.input.refuse(None, bad.code.value, bad.message)
            return
        self._carry_out_soon(self._state.liveness_received(message, time.monotonic()))

    async def _watch_liveness(self) -> None:
        """Give the liveness the time: pings, the interruption and the re-offers happen in its ticks."""
        while True:
            now = time.monotonic()
            due = self._state.recovery.due_at()
            wait = LIVENESS_TICK_SECONDS if due is None else min(LIVENESS_TICK_SECONDS, max(0.0, due - now))
            await asyncio.sleep(wait)
            try:
                await self._carry_out(self._state.liveness_tick(time.monotonic()))
            except Exception:  # one failed re-offer must not end the watching; the next replaces it
                log.exception("reconnecting: an action failed")

    def _control_frame(self, frame: str | bytes) -> None:
        try:
            message = parse_tech_control(frame)
        except MessageError as bad:
            self.input.refuse(None, bad.code.value, bad.message)
            return
        needed = {Chat: Permission.chat, ClipboardMessage: Permission.clipboard, SelectMonitor: Permission.view}[type(message)]
        reason = self.authority.refusal(needed)
        if reason is not None:
            self.input.refuse(None, message.type, reason)
            return
        if isinstance(message, Chat):
            self._ui.chat_received(message.text)
            self.events.add("chat.received", text=message.text)
        elif isinstance(message, ClipboardMessage):
            self.events.add("clipboard.received", **clipboard_fields(message.text))
            self._clipboard_seen = message.text
            self._tasks.start(self._write_clipboard(message.text), "clipboard write")
        else:
            self._select_monitor(message.index)

    def _select_monitor(self, index: int) -> None:
        if not 1 <= index <= len(self._monitors):
            self.input.refuse(None, "select_monitor", f"monitor {index} does not exist; this host has {len(self._monitors)}")
            return
        self.input.release_all()
        self._selected = self._monitors[index - 1]
        self.events.add("monitor.selected", index=index)
        self._send_monitors()

    def _send_monitors(self) -> None:
        self._send_control(
            Monitors(
                monitors=[MonitorInfo(index=m.index, left=m.left, top=m.top, width=m.width, height=m.height) for m in self._monitors],
                selected=self._selected.index,
            )
        )

    # --- recording ----------------------------------------------------------------------

    async def _start_recording(self) -> None:
        """Start recording once the policy is known, continuing the session's recording where it belongs.

        The offsets count from the recording's one origin (see :mod:`host_client.recording_time`):
        the time this host was down stays a gap, and nothing lands on top of what the broker or
        the spool holds.
        """
        if self.recorder is not None:
            return
        held = None
        try:
            held = await self.uploader.status()
        except Exception as exc:  # noqa: BLE001 - the broker may be away; the saved origin and the spool suffice
            log.info("recording status unavailable (%s); continuing from what this computer kept", exc)
        start = resume_point(
            round(time.time() * 1000), saved_origin_ms=self._saved.recording_origin_ms if self._saved else None,
            held=held, spooled=self.uploader.spooled(),
        )
        if start.clock_behind_ms:
            log.warning("this computer's clock is %.1f s behind the end of the recording (it was set back); "
                        "the recording continues right after its end", start.clock_behind_ms / 1000)
        if self._saved is not None and self._saved.recording_origin_ms != start.origin_ms:
            self._saved.recording_origin_ms = start.origin_ms
            self._saved.save()
        self.recorder = SegmentRecorder(
            self.recording_spool, lambda: self._selected, lambda: self.authority.allows(Permission.view),
            fps=self.policy.recording_fps, start_index=start.index, start_offset_ms=start.offset_ms,
            origin_ms=start.origin_ms,
            on_segment=self._segment_recorded if self._loop else None, link_congested=self._recording_link_limited,
        )
        self.recorder.start()
        self._ui.notice(
            f"this session is recorded for the audit trail: your shared screen at {self.policy.recording_fps:g} "
            "frames per second (nothing when viewing is not allowed), and what the technician does"
        )

    def _segment_recorded(self, index: int) -> None:
        """Called on the recorder's thread: hand the finished segment to the uploader, on the event loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.uploader.segment_ready, index)

    async def _stop_recording(self) -> None:
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.stop)
        if not await self.uploader.drain(RECORDING_DRAIN_SECONDS):
            self._ui.notice(f"{len(self.uploader.pending())} recording segments could not be uploaded yet; "
                            "they stay in the spool for the next run")

    async def _watch_recording(self) -> None:
        """Tell the state how far the recording is behind (it pauses control as the policy says), and
        the live stream how much of the link to leave the recording (:meth:`RecordingUploader.live_reserve`)."""
        while True:
            track = self._track
            await asyncio.sleep(RECORDING_WATCH_SECONDS if track is None else next_watch_due(
                RECORDING_WATCH_SECONDS, still_seconds=time.monotonic() - track.last_change,
                refining=track.budget.refining))
            failed = self.recorder.error if self.recorder is not None else None
            lag = self.uploader.lag_seconds()
            self._carry_out_soon(self._state.recording_checked(lag, failed))
            if self._track is not None:
                # Far behind, the recording gets part of the link before control would pause for it;
                # nearer, on a link that limits the picture, a paced upload takes its pace of it.
                budget, now = self._track.budget, time.monotonic()
                still = now - self._track.last_change
                # Only where the link is the limit; and the first picture has the link to itself (uploads wait
                # for it too, as long as the lag allows).
                limited = budget.link_limited(now) and not self._live_starting()
                before = budget.target_bitrate(now)
                budget.reserve(self.uploader.live_reserve(
                    lag, still_seconds=still, limited=limited, capacity=budget.link_capacity(now),
                    sharpening=self._live_sharpening()), now)
                # What a paced upload takes counts as carried (and, outside a part set aside, is left to it): its
                # pace from its next piece on (held to the floor the moment a settled picture starts to sharpen).
                budget.uploading(self.uploader.current_pace() * 8 if budget.link_limited(now) else 0.0, now)
                if self.uploader.stored is not None:
                    budget.upload_stored(self.uploader.stored[1], self.uploader.stored[0])
                if budget.target_bitrate(now) > before:
                    self._track.reconsider()

    async def _watch_link(self) -> None:
        """Tell the technician when the link, not the screen, limits the picture, and to what."""
        while True:
            await asyncio.sleep(LINK_WATCH_SECONDS)
            track = self._track
            if track is None:
                continue
            now = time.monotonic()
            budget = track.budget
            if log.isEnabledFor(logging.DEBUG):
                self._log_link(budget, now)
            state = self._link_report.observe(
                limited=budget.link_limited(now), bitrate=budget.target_bitrate(now), fps=budget.sent_fps(now), now=now
            )
            if state is not None and not self._send_control(state):
                self._link_report.forget_sent()  # not said: say it on the next connection

    def _log_link(self, budget: StreamBudget, now: float) -> None:
        """Log (debug) what the budget and the pacer under the video sender see: the figures behind "slow connection"."""
        pc = self._pc
        senders = [] if pc is None else [sender for sender in pc.getSenders() if sender.track is self._track]
        stats = pacer_stats(senders[0]) if senders else None
        log.debug(
            "link: target %.0f kbit/s (%.0f kbit/s left to the recording), sent %.1f fps, congested %s%s",
            budget.target_bitrate(now) / 1000, budget.reserved / 1000,
            budget.sent_fps(now), budget.congested,
            "" if stats is None else f"; pacer {stats.pace_bps / 1000:.0f} kbit/s, queue {stats.queue_delay_ms:.0f} ms "
            f"{stats.queued_bytes} B, {stats.packets_sent} sent, {stats.frames_dropped} frames dropped, "
            f"{stats.keyframes_asked} keyframes asked, {stats.retransmissions_refused} RTX refused",
        )

    def _send_control(
        self,
        message: Chat | ClipboardMessage | Monitors | Refused | Notice | LinkState | Ping | Pong,
        *,
        queue: bool = False,
    ) -> bool:
        """Send on the control channel; with ``queue``, hold it until the channel opens."""
        channel = self._data.get(CONTROL_CHANNEL)
        if channel is None or channel.readyState != "open":
            if queue and len(self._pending_control) < PENDING_CONTROL_LIMIT:
                self._pending_control.append(message)
                if channel is None:
                    self._ui.notice("the technician is not connected; the message will be sent when they are")
            return False
        channel.send(encode(message))
        return True

    def _report_threadsafe(self, refused: Refused) -> None:
        # Called from the input worker thread as well as the loop.
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._send_control, refused)

    async def _write_clipboard(self, text: str) -> None:
        try:
            await self._clipboard.write(text)
        except Exception as exc:  # noqa: BLE001 - tell the user and the technician, keep going
            log.warning("could not set the clipboard: %s", exc)
            self._ui.notice(f"could not set the clipboard: {exc}")
            self.input.refuse(None, "clipboard", f"the host could not set its clipboard: {exc}")

    async def _watch_clipboard(self) -> None:
        """Send the user's clipboard changes to the technician, when clipboard sync is allowed.

        What is on the clipboard when the session starts is never sent: only what the
        user copies during the session while clipboard sync is allowed. The clipboard
        is not even read while it is not (each read is a round trip through the X
        server, twice a second). (Reading can stall for seconds when another program
        holds the clipboard and does not answer, so it happens here, not before the
        session starts.)
        """
        if self._clipboard_seen is None:
            self._clipboard_seen = await self._clipboard.read()
        watching = True
        while True:
            await asyncio.sleep(CLIPBOARD_POLL_SECONDS)
            if not self.authority.allows(Permission.clipboard):
                watching = False
                continue
            text = await self._clipboard.read()
            if not watching:
                # Allowed again: what was copied meanwhile is the new starting point, not sent.
                self._clipboard_seen, watching = text, True
                continue
            if text is None or text == self._clipboard_seen:
                continue
            self._clipboard_seen = text
            if self.authority.allows(Permission.clipboard):
                try:
                    # Only what reached the technician is reported: it is not sent again later.
                    if self._send_control(ClipboardMessage(text=text)):
                        self.events.add("clipboard.sent", **clipboard_fields(text))
                except ValueError:
                    self._ui.notice("the clipboard holds too much text to share")

    async def _discard_prepared(self) -> None:
        """Close the prepared peer connection if no offer took it (the session ended before consent)."""
        task, self._prepared = self._prepared, None
        if task is not None and task.done() and not task.cancelled() and task.exception() is None:
            await task.result().close()

    async def _close_peer(self, *, wait: bool = True) -> None:
        """Let go of the peer connection; ``wait=False`` closes it on the side.

        Closing deletes its TURN allocations, which on a broken path waits out the relay's
        retransmissions (half a minute): a replaced connection must not hold up its successor.
        """
        if self._track is not None:
            self._frames_before += self._track.frames_sent
            self._track.stop()
            self._track = None
        self._data = {}
        self._link_report.forget_sent()  # the next connection's console starts from "not limited"
        if self._pc is not None:
            pc, self._pc = self._pc, None
            if wait:
                await pc.close()
            else:
                self._tasks.start(pc.close(), "closing a replaced peer connection")
        self.media_connected.clear()



class _HostSignalling:
    """The host's turns in :func:`peer.signalling.keep_signalling`: the session's own methods for them."""

    def __init__(self, session: HostSession, state: HostSessionState) -> None:
        self._session = session
        self._state = state

    def over(self) -> bool:
        return self._state.over

    async def open(self) -> SignallingChannel:
        return await self._session._open_signalling()

    async def connected(self, channel: SignallingChannel) -> None:
        await self._session._signalling_connected()

    async def handle(self, message: BaseModel) -> None:
        await self._session._receive(message)

    def dropped(self) -> bool:
        return self._session._signalling_dropped()
