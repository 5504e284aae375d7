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
from typing import Any

SHIFT_MASK = 1


class XorgCharTyper:
    """Presses and releases character keys with XTEST, shifting when the layout needs it."""

    def __init__(self, controller: Any) -> None:
        from pynput._util.xorg import char_to_keysym
        from Xlib.ext import xtest

        self._controller = controller
        self._char_to_keysym = char_to_keysym
        self._xtest = xtest
        self._lock = threading.Lock()

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
                self._with_borrowed_keycode(display, keysym, lambda kc: self._fake(display, kc, down))
                return
            self._fake(display, found[0], down)

    def type_char(self, char: str) -> None:
        """Type one character exactly, pressing Shift around it when the layout needs it."""
        keysym = self._char_to_keysym(char)
        found = self._keycode(keysym)
        with self._lock:
            display = self._controller._display
            if found is None:
                self._with_borrowed_keycode(display, keysym, lambda kc: self._tap(display, kc))
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

    def _with_borrowed_keycode(self, display: Any, keysym: int, action: Any) -> None:
        """Map ``keysym`` onto an unused keycode for the duration of ``action`` (as xdotool does)."""
        first = display.display.info.min_keycode
        count = display.display.info.max_keycode - first + 1
        mapping = display.get_keyboard_mapping(first, count)
        spare = next((first + i for i, syms in enumerate(mapping) if not any(syms)), None)
        if spare is None:
            raise ValueError(f"character U+{keysym:04X} cannot be typed: no free keycode on this keyboard")
        width = len(mapping[0])
        display.change_keyboard_mapping(spare, [(keysym,) * width])
        display.sync()
        time.sleep(0.02)  # clients re-read the mapping on MappingNotify
        try:
            action(spare)
        finally:
            display.change_keyboard_mapping(spare, [(0,) * width])
            display.sync()
