"""Knowing that the screen changed without looking at it: the X DAMAGE extension.

Grabbing and comparing a 1920x1080 screen costs ~2 ms; doing it 30 times a
second on a desktop nobody touches would cost 6-10 % of a core for nothing.
The X server already knows when anything is drawn: a damage object on the root
window with report level *NonEmpty* sends one event when the screen goes from
clean to damaged, and stays silent until we mark it clean again. Between
changes the capture track sleeps on the connection's socket and costs nothing.

Without DAMAGE (some servers, Xvfb started with ``-extension DAMAGE``),
:func:`open_damage_watcher` returns None and the track polls at its frame rate,
comparing pixels instead.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger(__name__)


class XConnection(Protocol):
    """What :class:`DamageWatcher` uses of a python-xlib ``Display`` (the library has no type hints)."""

    def fileno(self) -> int: ...
    def pending_events(self) -> int: ...
    def next_event(self) -> object: ...
    def damage_subtract(self, damage: int) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class DamageWatcher:
    """A damage object on the root window of one X display connection."""

    def __init__(self, display: XConnection, damage_id: int) -> None:
        self._display = display
        self._damage = damage_id

    def fileno(self) -> int:
        """The X connection's socket: readable when the server sent an event."""
        return self._display.fileno()

    def take(self) -> bool:
        """Whether anything was drawn since the last call; marks the screen clean again.

        Marking clean comes before the caller grabs the screen, so a change drawn
        during the grab raises a new event instead of being lost.
        """
        display = self._display
        damaged = False
        while display.pending_events():
            display.next_event()
            damaged = True
        if damaged:
            display.damage_subtract(self._damage)
            display.flush()
        return damaged

    def close(self) -> None:
        try:
            self._display.close()
        except Exception:  # noqa: BLE001 - the server may be gone already
            pass


def open_damage_watcher(display_name: str | None = None) -> DamageWatcher | None:
    """A watcher on ``display_name`` (``$DISPLAY`` by default), or None where DAMAGE is unavailable."""
    try:
        from Xlib import display as xdisplay
        from Xlib.ext import damage
    except ImportError:  # python-xlib comes with pynput on X11; elsewhere: poll
        return None
    try:
        connection = xdisplay.Display(display_name)
    except Exception as exc:  # noqa: BLE001 - Xlib raises several unrelated types
        log.info("no X connection for damage events (%s); polling the screen instead", exc)
        return None
    if not connection.has_extension("DAMAGE"):
        connection.close()
        log.info("the X server has no DAMAGE extension; polling the screen instead")
        return None
    connection.damage_query_version()  # the protocol requires it before any other damage request
    damage_id = connection.screen().root.damage_create(damage.DamageReportNonEmpty)
    connection.flush()
    return DamageWatcher(connection, damage_id)
