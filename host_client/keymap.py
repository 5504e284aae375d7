"""W3C ``KeyboardEvent.code`` names to what the host presses.

A ``key`` message is a physical key going down or up. Keys that type a
character are pressed as their unshifted character (``KeyA`` -> ``a``), so the
modifiers the technician holds (Shift, Ctrl) apply as they would on a real
keyboard; other keys map to pynput's ``Key`` names. Pure data.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

SPECIAL_KEYS: dict[str, str] = {
    "Enter": "enter", "NumpadEnter": "enter", "Tab": "tab", "Space": "space", "Backspace": "backspace",
    "Escape": "esc", "Delete": "delete", "Insert": "insert", "Home": "home", "End": "end",
    "PageUp": "page_up", "PageDown": "page_down", "ArrowLeft": "left", "ArrowRight": "right",
    "ArrowUp": "up", "ArrowDown": "down", "ShiftLeft": "shift_l", "ShiftRight": "shift_r",
    "ControlLeft": "ctrl_l", "ControlRight": "ctrl_r", "AltLeft": "alt_l", "AltRight": "alt_gr",
    "MetaLeft": "cmd_l", "MetaRight": "cmd_r", "CapsLock": "caps_lock", "NumLock": "num_lock",
    "ScrollLock": "scroll_lock", "PrintScreen": "print_screen", "Pause": "pause", "ContextMenu": "menu",
    **{f"F{i}": f"f{i}" for i in range(1, 21)},
}

PUNCTUATION_KEYS: dict[str, str] = {
    "Minus": "-", "Equal": "=", "BracketLeft": "[", "BracketRight": "]", "Backslash": "\\",
    "Semicolon": ";", "Quote": "'", "Backquote": "`", "Comma": ",", "Period": ".", "Slash": "/",
    "IntlBackslash": "\\", "NumpadAdd": "+", "NumpadSubtract": "-", "NumpadMultiply": "*",
    "NumpadDivide": "/", "NumpadDecimal": ".",
}


@dataclass(frozen=True)
class KeyTarget:
    """Either a named special key (``special``) or a character key (``char``)."""

    special: str | None = None
    char: str | None = None


class UnknownKey(ValueError):
    """The key cannot be pressed on this host."""


def resolve_key(code: str, key: str = "") -> KeyTarget:
    """What to press for ``code`` (falling back to a one-character ``key``)."""
    if code in SPECIAL_KEYS:
        return KeyTarget(special=SPECIAL_KEYS[code])
    if code.startswith("Key") and len(code) == 4 and code[3] in string.ascii_uppercase:
        return KeyTarget(char=code[3].lower())
    if code.startswith("Digit") and len(code) == 6 and code[5].isdigit():
        return KeyTarget(char=code[5])
    if code.startswith("Numpad") and len(code) == 7 and code[6].isdigit():
        return KeyTarget(char=code[6])
    if code in PUNCTUATION_KEYS:
        return KeyTarget(char=PUNCTUATION_KEYS[code])
    if len(key) == 1 and key.isprintable():
        return KeyTarget(char=key)
    raise UnknownKey(f"key code {code!r} is not supported")
