"""Data-channel messages between the technician and the host.

Three channels, created by the host (the offerer):

``input``   reliable, ordered: buttons, wheel, keys, text, and pointer moves too.
``pointer`` unordered, no retransmits: pointer moves only. A lost move is
            replaced by the next one; buttons and wheel carry their own
            coordinates, so a click never lands where a late move left the pointer.
``control`` reliable, ordered: chat, clipboard, monitors, the host's
            reports of refused input and of a slow link (``link``), and
            liveness (``ping``/``pong``, both ways).

Coordinates are normalised to the selected monitor: (0, 0) is its top-left
pixel, (1, 1) its bottom-right. Every input message carries a ``seq`` so a
refusal can name the message it refuses.

The host takes each channel's messages at a bounded rate (``*_MESSAGES_PER_SECOND``
after a burst): beyond it they are dropped, counted as refused, and the
technician is told at most every 5 s (a ``refused`` with ``what`` ``rate_limited``).

Liveness: each side sends a ``ping`` a second on ``control`` once it is open and
answers each ``ping`` with a ``pong`` of the same ``seq`` (:mod:`peer.liveness` decides
when, and what a silence means). The host sends ``ping`` ``seq`` 0 the moment the channel
opens, and each side starts watching on the other's first ``ping`` or ``pong``: a side that
never sends one (an older console or host) is not taken for gone. Those small frames are recognised before anything is
parsed (:func:`is_liveness_frame`) and taken at a rate of their own
(``LIVENESS_MESSAGES_PER_SECOND``): a chat flood cannot starve them into a false
"interrupted", and a ping flood spends only that allowance, never the control one.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .api import MultiLine
from .frames import frame_size, parse_frame

INPUT_CHANNEL = "input"
POINTER_CHANNEL = "pointer"
CONTROL_CHANNEL = "control"

MAX_CHANNEL_MESSAGE_BYTES = 64 * 1024
MAX_TEXT_CHARS = 1000

INPUT_MESSAGES_PER_SECOND = 250
"""What the host takes on the ``input`` channel, and on ``pointer`` each, once the burst is
spent: a mouse moving at 125 Hz, keys, and a long paste's pieces fit well within it."""
INPUT_MESSAGE_BURST = 500
CONTROL_MESSAGES_PER_SECOND = 5
"""What the host takes on ``control`` (chat, clipboard, monitor choices) once the burst is spent."""
CONTROL_MESSAGE_BURST = 20
LIVENESS_MESSAGES_PER_SECOND = 4
"""What the host takes of ``ping`` and ``pong`` on ``control``: the other side sends one ping and
one pong a second; twice that leaves room, and each ping admitted costs one pong, no more."""
LIVENESS_MESSAGE_BURST = 10
"""Pings and pongs held up by a stall shorter than the interruption limit arrive together."""
MAX_LIVENESS_FRAME_BYTES = 128
"""A ``ping`` or ``pong`` is at most this long (ours are under 50 bytes); a longer frame is no
liveness message and is charged to the control allowance like any other."""
MAX_CHAT_CHARS = 4000
MAX_CLIPBOARD_CHARS = 32_000

Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Seq = Annotated[int, Field(ge=0, lt=2**53)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- input (technician -> host) -------------------------------------------------------


class PointerMove(_Message):
    type: Literal["pointer_move"] = "pointer_move"
    seq: Seq
    x: Unit
    y: Unit


class PointerButton(_Message):
    type: Literal["pointer_button"] = "pointer_button"
    seq: Seq
    button: Literal["left", "middle", "right"]
    down: bool
    x: Unit
    y: Unit


class Wheel(_Message):
    """Scroll by whole notches; positive ``dy`` scrolls down, positive ``dx`` right."""

    type: Literal["wheel"] = "wheel"
    seq: Seq
    dx: int = Field(ge=-50, le=50)
    dy: int = Field(ge=-50, le=50)
    x: Unit
    y: Unit


class Key(_Message):
    """A physical key, named as in W3C UI Events: ``code`` (``KeyA``) and ``key`` (``a``)."""

    type: Literal["key"] = "key"
    seq: Seq
    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9]+$")
    key: str = Field(default="", max_length=32)
    down: bool


class Text(_Message):
    """Text to type as it is, whatever the keyboard layout."""

    type: Literal["text"] = "text"
    seq: Seq
    text: MultiLine = Field(min_length=1, max_length=MAX_TEXT_CHARS)


InputMessage = Annotated[PointerMove | PointerButton | Wheel | Key | Text, Field(discriminator="type")]
InputMessageT = PointerMove | PointerButton | Wheel | Key | Text


def typed_text(message: InputMessageT) -> str | None:
    """What an input message types, as keystroke logging records it (on both sides).

    A text message's text, or the character of a key going down; None for
    pointer input and for keys that type no character (Enter, Shift...).
    """
    if isinstance(message, Text):
        return message.text
    if isinstance(message, Key) and message.down and len(message.key) == 1:
        return message.key
    return None


# --- control (both ways) ------------------------------------------------------------


class Chat(_Message):
    type: Literal["chat"] = "chat"
    text: MultiLine = Field(min_length=1, max_length=MAX_CHAT_CHARS)


class Clipboard(_Message):
    type: Literal["clipboard"] = "clipboard"
    text: MultiLine = Field(max_length=MAX_CLIPBOARD_CHARS)


class SelectMonitor(_Message):
    """Technician to host: stream (and aim input at) this monitor, counted from 1."""

    type: Literal["select_monitor"] = "select_monitor"
    index: int = Field(ge=1, le=64)


class MonitorInfo(_Message):
    index: int
    left: int
    top: int
    width: int
    height: int


class Monitors(_Message):
    """Host to technician: the host's monitors and which one is streamed."""

    type: Literal["monitors"] = "monitors"
    monitors: list[MonitorInfo] = Field(max_length=64)
    selected: int


class Refused(_Message):
    """Host to technician: a message was not applied, and why."""

    type: Literal["refused"] = "refused"
    seq: int | None = None
    """The refused input's ``seq``; None for control messages."""
    what: str = Field(max_length=64)
    reason: str = Field(max_length=500)
    refused_total: int = 0
    """How many messages this host has refused in the session so far."""


class Notice(_Message):
    """Host to technician: something the technician must know (control paused, and why)."""

    type: Literal["notice"] = "notice"
    text: str = Field(max_length=500)


class LinkState(_Message):
    """Host to technician: whether the link, not the screen, limits the picture, and to what.

    Sent when that changes, and every few seconds while it lasts (:mod:`peer.link_report`).
    """

    type: Literal["link"] = "link"
    limited: bool
    kbps: int = Field(ge=0, le=10_000_000)
    """The bitrate the picture is fitted to, in kbit/s."""
    fps: float = Field(ge=0, le=240)
    """The frame rate the picture is sent at while the screen changes."""


class Ping(_Message):
    """Either side: are you there? Answered with a :class:`Pong` of the same ``seq``.

    ``seq`` counts the sender's pings in the session (it never restarts with a new peer
    connection), so a pong that answers a ping of an earlier connection is told apart.
    """

    type: Literal["ping"] = "ping"
    seq: Seq


class Pong(_Message):
    """Either side: the answer to the :class:`Ping` with this ``seq``."""

    type: Literal["pong"] = "pong"
    seq: Seq


TechControlMessage = Annotated[Chat | Clipboard | SelectMonitor, Field(discriminator="type")]
HostControlMessage = Annotated[Chat | Clipboard | Monitors | Refused | Notice | LinkState, Field(discriminator="type")]

_input: TypeAdapter[InputMessageT] = TypeAdapter(InputMessage)
_tech_control: TypeAdapter[Chat | Clipboard | SelectMonitor] = TypeAdapter(TechControlMessage)
_host_control: TypeAdapter[Chat | Clipboard | Monitors | Refused | Notice | LinkState] = TypeAdapter(HostControlMessage)
LivenessMessage = Annotated[Ping | Pong, Field(discriminator="type")]
_liveness: TypeAdapter[Ping | Pong] = TypeAdapter(LivenessMessage)
_LIVENESS_TYPES = ("ping", "pong")
_INPUT_TYPES = ("pointer_move", "pointer_button", "wheel", "key", "text")
_TECH_CONTROL_TYPES = ("chat", "clipboard", "select_monitor")
_HOST_CONTROL_TYPES = ("chat", "clipboard", "monitors", "refused", "notice", "link")


def parse_input(frame: str | bytes, *, pointer_only: bool = False) -> InputMessageT:
    """An input message from the technician (raises :class:`~protocol.frames.MessageError`)."""
    types = ("pointer_move",) if pointer_only else _INPUT_TYPES
    return parse_frame(frame, _input, types, MAX_CHANNEL_MESSAGE_BYTES)


def parse_tech_control(frame: str | bytes) -> Chat | Clipboard | SelectMonitor:
    """A control message from the technician, as the host reads it."""
    return parse_frame(frame, _tech_control, _TECH_CONTROL_TYPES, MAX_CHANNEL_MESSAGE_BYTES)


def parse_host_control(frame: str | bytes) -> Chat | Clipboard | Monitors | Refused | Notice | LinkState:
    """A control message from the host, as the technician reads it."""
    return parse_frame(frame, _host_control, _HOST_CONTROL_TYPES, MAX_CHANNEL_MESSAGE_BYTES)


def is_liveness_frame(frame: str | bytes) -> bool:
    """Whether a ``control`` frame is a ``ping`` or ``pong`` (valid or not): small, a JSON object, of that type.

    Judged before any rate is charged, so it never reads more than
    :data:`MAX_LIVENESS_FRAME_BYTES`; a frame it says yes to goes to :func:`parse_liveness`,
    any other to the side's control parser.
    """
    if frame_size(frame) > MAX_LIVENESS_FRAME_BYTES:
        return False
    try:
        data = json.loads(frame)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and data.get("type") in _LIVENESS_TYPES


def parse_liveness(frame: str | bytes) -> Ping | Pong:
    """A ``ping`` or ``pong`` from the other side, read by the host and the technician alike."""
    return parse_frame(frame, _liveness, _LIVENESS_TYPES, MAX_LIVENESS_FRAME_BYTES)


def to_pixel(value: float, origin: int, extent: int) -> int:
    """A normalised coordinate on a monitor axis to an absolute pixel (0 -> first, 1 -> last)."""
    return origin + round(value * (extent - 1))
