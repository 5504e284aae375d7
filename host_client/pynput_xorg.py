"""Typing characters on X11 through XTEST, where pynput would use XSendEvent.

pynput types a character on X by sending a synthetic event (XSendEvent) to the
window that has the input focus. Without a window manager the focus is
"PointerRoot", so the event goes nowhere; and many applications (xterm, some
toolkits) ignore synthetic events by design. XTEST, which pynput already uses
for special keys and the mouse, behaves like a real keyboard. This module is
the one place that reaches into pynput's X11 internals to do that:

* ``Controller.keyboard_mapping`` (keysym -> (keycode, shift state)),
* ``Controller._display`` (its python-xlib display),
* ``pynput._util.xorg.char_to_keysym``.

``tests/e2e/test_remote_control.py`` checks that those names still exist.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

SHIFT_MASK = 1
FRESH_MAPPING_SETTLE_SECONDS = 0.1
"""How long a character on a newly borrowed keycode waits for applications to take the mapping in
(generous for a busy machine; paid once per character while its keycode stays borrowed)."""


class XorgCharTyper:
    """Presses and releases character keys with XTEST, shifting when the layout needs it."""

    def __init__(self, controller: Any) -> None:
        from pynput._util.xorg import char_to_keysym
        from Xlib.ext import xtest

        self._controller = controller
        self._char_to_keysym = char_to_keysym
        self._xtest = xtest
        self._lock = threading.Lock()
        self._borrowed: OrderedDict[int, int] = OrderedDict()
        """keysym -> the spare keycode it is mapped onto, least recently used first."""

    def _keycode(self, keysym: int) -> tuple[int, bool] | None:
        entry = self._controller.keyboard_mapping.get(keysym)
        if entry is None:
            return None
        keycode, shift_state = entry
        return keycode, bool(shift_state & SHIFT_MASK)

    def press(self, char: str, down: bool) -> None:
        """One key transition for the character's own key (no implicit shift)."""
        keysym = self._char_to_keysym(char)
        found = self._keycode(keysym)
        with self._lock:
            display = self._controller._display
            if found is None:
                self._fake(display, self._borrowed_keycode(display, keysym), down)
                return
            self._fake(display, found[0], down)

    def type_char(self, char: str) -> None:
        """Type one character exactly, pressing Shift around it when the layout needs it."""
        keysym = self._char_to_keysym(char)
        found = self._keycode(keysym)
        with self._lock:
            display = self._controller._display
            if found is None:
                self._tap(display, self._borrowed_keycode(display, keysym))
                return
            keycode, shifted = found
            shift = display.keysym_to_keycode(0xFFE1) if shifted else None  # Shift_L
            if shift:
                self._fake(display, shift, True)
            self._tap(display, keycode)
            if shift:
                self._fake(display, shift, False)

    def _tap(self, display: Any, keycode: int) -> None:
        self._fake(display, keycode, True)
        self._fake(display, keycode, False)

    def _fake(self, display: Any, keycode: int, down: bool) -> None:
        from Xlib import X

        self._xtest.fake_input(display, X.KeyPress if down else X.KeyRelease, keycode)
        display.sync()

    def _borrowed_keycode(self, display: Any, keysym: int) -> int:
        """A spare keycode mapped onto ``keysym``, kept mapped until :meth:`close`.

        Clients re-read the keyboard mapping lazily, when they next look a key
        up, so a mapping undone right after the key was pressed is often gone by
        the time the application reads the event (xdotool's sleeps only narrow
        that window). Keeping borrowed keycodes mapped closes it; when every
        spare keycode is in use the least recently used one is taken over.
        """
        keycode = self._borrowed.get(keysym)
        if keycode is not None:
            self._borrowed.move_to_end(keysym)
            return keycode
        first = display.display.info.min_keycode
        count = display.display.info.max_keycode - first + 1
        mapping = display.get_keyboard_mapping(first, count)
        taken = set(self._borrowed.values())
        keycode = next((first + i for i, syms in enumerate(mapping) if not any(syms) and first + i not in taken), None)
        if keycode is None:
            if not self._borrowed:
                raise ValueError(f"character U+{keysym:04X} cannot be typed: no free keycode on this keyboard")
            _old, keycode = self._borrowed.popitem(last=False)
        display.change_keyboard_mapping(keycode, [(keysym,) * len(mapping[0])])
        display.sync()
        # The server tells every client of the new mapping (MappingNotify), and each re-reads
        # it when it gets round to that event; a key pressed at once may still be looked up
        # in the old mapping, where the keycode means nothing, and the character is lost
        # (seen: "Grüße" arrived as "Grüe" in one run of four). Only a freshly borrowed
        # keycode waits; one already mapped is typed at once.
        time.sleep(FRESH_MAPPING_SETTLE_SECONDS)
        self._borrowed[keysym] = keycode
        return keycode

    def close(self) -> None:
        """Give the borrowed keycodes back (the session is over)."""
        with self._lock:
            if not self._borrowed:
                return
            display = self._controller._display
            width = len(display.get_keyboard_mapping(display.display.info.min_keycode, 1)[0])
            for keycode in self._borrowed.values():
                display.change_keyboard_mapping(keycode, [(0,) * width])
            display.sync()
            self._borrowed.clear()
