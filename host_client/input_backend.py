"""Injecting input into the host's desktop.

:class:`InputBackend` is what :mod:`host_client.remote_input` needs; the real
implementation is :class:`PynputBackend`. pynput is imported only when the
backend is created, because importing it fails on a machine without a display.
Coordinates here are absolute desktop pixels.
"""

from __future__ import annotations

import sys
from typing import Protocol

from .keymap import KeyTarget


class InputUnavailable(RuntimeError):
    """Input cannot be injected on this machine; the message names the fix."""


class InputBackend(Protocol):
    def move(self, x: int, y: int) -> None: ...

    def button(self, name: str, down: bool) -> None:
        """``name`` is left, middle or right."""

    def scroll(self, dx: int, dy: int) -> None:
        """Whole notches; positive ``dy`` scrolls down."""

    def key(self, target: KeyTarget, down: bool) -> None: ...

    def type_text(self, text: str) -> None: ...

    def close(self) -> None:
        """Undo what injecting changed on the desktop (borrowed keycodes); called once at the end."""


class PynputBackend:
    """pynput's mouse and keyboard controllers; on X11, characters go through XTEST."""

    def __init__(self) -> None:
        try:
            from pynput import keyboard, mouse
        except Exception as exc:  # noqa: BLE001 - pynput raises ImportError subclasses and Xlib errors
            raise InputUnavailable(
                f"cannot control this desktop ({exc}); run in a desktop session (DISPLAY set)"
            ) from None
        self._keyboard_module = keyboard
        self._mouse = mouse.Controller()
        self._keyboard = keyboard.Controller()
        self._buttons = {"left": mouse.Button.left, "middle": mouse.Button.middle, "right": mouse.Button.right}
        self._xorg = None
        if sys.platform.startswith("linux") and type(self._keyboard).__module__.endswith("_xorg"):
            from .pynput_xorg import XorgCharTyper

            self._xorg = XorgCharTyper(self._keyboard)

    def move(self, x: int, y: int) -> None:
        self._mouse.position = (x, y)

    def button(self, name: str, down: bool) -> None:
        button = self._buttons[name]
        (self._mouse.press if down else self._mouse.release)(button)

    def scroll(self, dx: int, dy: int) -> None:
        # pynput: positive dy scrolls up; the wire says positive dy scrolls down.
        self._mouse.scroll(dx, -dy)

    def key(self, target: KeyTarget, down: bool) -> None:
        if target.special is not None:
            key = getattr(self._keyboard_module.Key, target.special, None)
            if key is None:
                raise ValueError(f"this host has no {target.special} key")
            (self._keyboard.press if down else self._keyboard.release)(key)
            return
        assert target.char is not None
        if self._xorg is not None:
            self._xorg.press(target.char, down)
        else:
            (self._keyboard.press if down else self._keyboard.release)(target.char)

    def type_text(self, text: str) -> None:
        if self._xorg is None:
            self._keyboard.type(text)
            return
        for char in text:
            if char == "\n":
                self.key(KeyTarget(special="enter"), True)
                self.key(KeyTarget(special="enter"), False)
            elif char == "\t":
                self.key(KeyTarget(special="tab"), True)
                self.key(KeyTarget(special="tab"), False)
            else:
                self._xorg.type_char(char)

    def close(self) -> None:
        if self._xorg is not None:
            self._xorg.close()
