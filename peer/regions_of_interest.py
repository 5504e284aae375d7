"""Regions of interest on a PyAV frame: a quantiser offset per rectangle, read by FFmpeg's libx264.

FFmpeg's libx264 wrapper turns a frame's ``AV_FRAME_DATA_REGIONS_OF_INTEREST`` side data into x264's
per-macroblock quantiser offsets (the offset is a fraction of H.264's 51 steps; where rectangles overlap, the
first listed wins; x264's adaptive quantisation must be on, as it is under ``superfast``). PyAV reads side
data but cannot attach any, so this module does it through ``ctypes``: ``av_frame_new_side_data`` of the
libavutil PyAV itself loaded, on the ``AVFrame`` behind a PyAV ``VideoFrame``.

What it is for (:mod:`peer.screen_encoder`): a typed word on a picture that is still coarse after a capped
keyframe. Plain, x264 spends the frame on sharpening the whole picture (9.8-11.7 kB on the benchmark's 1080p
screen, the word at 26-28 dB); with the word at -1/3 and the rest at +1, 1.6 kB and the word at 47 dB, the rest
left to the refinement frames.

PyAV keeps the ``AVFrame`` pointer in its Cython object, where no Python name reaches it. The pointer's place is
found once per process and proved before use: the ``AVFrame``'s first field is its first plane's pointer,
which PyAV does show (``planes[0].buffer_ptr``), and the candidate is read through ``/proc/self/mem``, which
answers an error, never a crash, for an address that is not mapped. Where any of this fails (another PyAV
layout, no ``/proc``, no libavutil found) :func:`regions_supported` is False and frames are encoded whole.
"""

from __future__ import annotations

import ctypes
import logging
import os
import struct
import sys
import threading
from dataclasses import dataclass
from fractions import Fraction

import av
from av.sidedata.sidedata import Type as SideDataType

log = logging.getLogger(__name__)

POINTER_SIZE = ctypes.sizeof(ctypes.c_void_p)
POINTER_SEARCH = range(2 * POINTER_SIZE, 12 * POINTER_SIZE, POINTER_SIZE)
"""Byte offsets in a PyAV frame object where its ``AVFrame *`` may sit: after the object header (reference count
and type), and the Cython virtual table (PyAV 14-18: the third word)."""
MAX_REGIONS = 16
"""Rectangles one frame may carry (a typed line, the caret, a clock: a handful)."""


@dataclass(frozen=True)
class Region:
    """A rectangle of a frame in pixels (``bottom`` and ``right`` exclusive) and its quantiser offset, a
    fraction of H.264's quantiser range from -1 (finest) to +1 (coarsest)."""

    top: int
    bottom: int
    left: int
    right: int
    offset: Fraction

    def __post_init__(self) -> None:
        if not (0 <= self.top < self.bottom and 0 <= self.left < self.right):
            raise ValueError("a region has a positive size and starts inside the frame")
        if not -1 <= self.offset <= 1:
            raise ValueError("a region's quantiser offset is between -1 and 1")

    @property
    def area(self) -> int:
        """Pixels covered."""
        return (self.bottom - self.top) * (self.right - self.left)


class _Rational(ctypes.Structure):
    _fields_ = [("num", ctypes.c_int), ("den", ctypes.c_int)]


class _RegionOfInterest(ctypes.Structure):
    """libavutil's ``AVRegionOfInterest``."""

    _fields_ = [
        ("self_size", ctypes.c_uint32),
        ("top", ctypes.c_int),
        ("bottom", ctypes.c_int),
        ("left", ctypes.c_int),
        ("right", ctypes.c_int),
        ("qoffset", _Rational),
    ]


class _FrameSideData(ctypes.Structure):
    """The leading fields of libavutil's ``AVFrameSideData``."""

    _fields_ = [("type", ctypes.c_int), ("data", ctypes.c_void_p), ("size", ctypes.c_size_t)]


class _Libavutil:
    """The two libavutil functions used, from the copy PyAV loaded, and where PyAV keeps a frame's pointer."""

    def __init__(self, library: ctypes.CDLL, pointer_offset: int) -> None:
        self.new_side_data = library.av_frame_new_side_data
        self.new_side_data.restype = ctypes.c_void_p
        self.new_side_data.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
        self.remove_side_data = library.av_frame_remove_side_data
        self.remove_side_data.restype = None
        self.remove_side_data.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self.pointer_offset = pointer_offset


_lock = threading.Lock()
_libavutil: _Libavutil | None = None
_looked = False


def _loaded_libavutil() -> str | None:
    """The path of the libavutil this process has mapped (PyAV's, bundled or the system's), or None."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.split(maxsplit=5)[-1].strip()
                if os.path.basename(path).startswith("libavutil") and ".so" in path:
                    return path
    except OSError:
        return None
    return None


def _read_pointer(memory: int, address: int) -> int | None:
    """The pointer stored at ``address`` of this process, or None where nothing is mapped there."""
    if address <= 0:
        return None
    try:
        data = os.pread(memory, POINTER_SIZE, address)
    except (OSError, OverflowError, ValueError):
        return None
    if len(data) != POINTER_SIZE:
        return None
    return int(struct.unpack("P", data)[0])


def _pointer_offset(frame: av.VideoFrame) -> int | None:
    """Where in ``frame``'s object PyAV keeps its ``AVFrame *``: the word whose target starts with the first
    plane's pointer. Read through ``/proc/self/mem``, so a wrong guess is an error, not a crash."""
    plane = frame.planes[0].buffer_ptr
    try:
        memory = os.open("/proc/self/mem", os.O_RDONLY)
    except OSError:
        return None
    try:
        for offset in POINTER_SEARCH:
            candidate = _read_pointer(memory, id(frame) + offset)
            if candidate is not None and _read_pointer(memory, candidate) == plane:
                return offset
    finally:
        os.close(memory)
    return None


def _load() -> _Libavutil | None:
    global _libavutil, _looked
    with _lock:
        if _looked:
            return _libavutil
        _looked = True
        path = _loaded_libavutil() if sys.platform.startswith("linux") else None
        if path is None:
            log.info("regions of interest unavailable: PyAV's libavutil not found; frames are encoded whole")
            return None
        offset = _pointer_offset(av.VideoFrame(16, 16, "yuv420p"))
        if offset is None:
            log.info("regions of interest unavailable: PyAV %s keeps its frames where this module does not look",
                     av.__version__)
            return None
        try:
            _libavutil = _Libavutil(ctypes.CDLL(path), offset)
        except (OSError, AttributeError) as exc:
            log.info("regions of interest unavailable (%s); frames are encoded whole", exc)
        return _libavutil


def regions_supported() -> bool:
    """Whether frames can carry regions of interest in this process (found and proved on first call)."""
    return _load() is not None


def _frame_pointer(library: _Libavutil, frame: av.VideoFrame) -> int:
    pointer = ctypes.c_void_p.from_address(id(frame) + library.pointer_offset).value
    # The layout was proved on another frame of the same class; this frame's own first plane says it holds here.
    if pointer is None or ctypes.c_void_p.from_address(pointer).value != frame.planes[0].buffer_ptr:
        raise RuntimeError("a PyAV frame without its AVFrame where it was found before")
    return pointer


def set_regions(frame: av.VideoFrame, regions: list[Region]) -> bool:
    """Give ``frame`` these regions of interest (the first listed wins where they overlap), replacing any it
    had; an empty list takes them away. False (the frame untouched) where regions are unavailable."""
    library = _load()
    if library is None or not isinstance(frame, av.VideoFrame):
        return False
    if len(regions) > MAX_REGIONS:
        raise ValueError(f"at most {MAX_REGIONS} regions of interest a frame")
    pointer = _frame_pointer(library, frame)
    kind = SideDataType.REGIONS_OF_INTEREST.value
    library.remove_side_data(pointer, kind)
    if not regions:
        return True
    size = ctypes.sizeof(_RegionOfInterest)
    side = library.new_side_data(pointer, kind, size * len(regions))
    if not side:
        raise MemoryError("libavutil could not allocate a frame's regions of interest")
    entries = (_RegionOfInterest * len(regions)).from_address(_FrameSideData.from_address(side).data)
    for entry, region in zip(entries, regions, strict=True):
        entry.self_size = size
        entry.top, entry.bottom = min(region.top, frame.height), min(region.bottom, frame.height)
        entry.left, entry.right = min(region.left, frame.width), min(region.right, frame.width)
        entry.qoffset = _Rational(region.offset.numerator, region.offset.denominator)
    return True
