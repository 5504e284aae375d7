"""Scripted remote-control actions for ``deskhand-console control``, parsed before anything runs.

Each action is one command-line word ``NAME:ARGUMENT``:

``click:X,Y[,BUTTON]``  click at normalised (X, Y); BUTTON is left (default), middle or right
``move:X,Y``            move the pointer
``type:TEXT``           type TEXT as it is
``key:CODE``            press and release a key by W3C code (Enter, KeyA, ArrowDown, F5...)
``chat:TEXT``           send a chat line
``clipboard:TEXT``      put TEXT on the host's clipboard
``monitor:N``           switch to monitor N (from 1)
``wait:SECONDS``        pause (0-60 s)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from protocol.channel import MAX_CHAT_CHARS, MAX_CLIPBOARD_CHARS

NAMES = ("click", "move", "type", "key", "chat", "clipboard", "monitor", "wait")


class ActionError(ValueError):
    """An action word that cannot be run; the message names the word and the fix."""


@dataclass(frozen=True)
class Action:
    name: str
    x: float = 0.0
    y: float = 0.0
    button: str = "left"
    text: str = ""
    number: float = 0


def parse_action(word: str) -> Action:
    name, sep, argument = word.partition(":")
    if not sep or name not in NAMES:
        raise ActionError(f"{word[:40]!r}: write NAME:ARGUMENT with NAME one of {', '.join(NAMES)}")
    if name in ("click", "move"):
        parts = argument.split(",")
        if len(parts) not in ((2, 3) if name == "click" else (2,)):
            raise ActionError(f"{word!r}: write {name}:X,Y{',BUTTON' if name == 'click' else ''} with X and Y from 0 to 1")
        x, y = (_unit(word, p) for p in parts[:2])
        button = parts[2] if len(parts) == 3 else "left"
        if button not in ("left", "middle", "right"):
            raise ActionError(f"{word!r}: the button is left, middle or right")
        return Action(name, x=x, y=y, button=button)
    if name == "key":
        if not re.fullmatch(r"[A-Za-z0-9]{1,32}", argument):
            raise ActionError(f"{word!r}: a key is a W3C code such as Enter, KeyA, Digit1 or ArrowDown")
        return Action(name, text=argument)
    if name in ("type", "chat", "clipboard"):
        limit = {"type": 100_000, "chat": MAX_CHAT_CHARS, "clipboard": MAX_CLIPBOARD_CHARS}[name]
        if (name != "clipboard" and not argument) or len(argument) > limit:
            raise ActionError(f"{word[:40]!r}: {name} needs 1 to {limit} characters")
        return Action(name, text=argument)
    if name == "monitor":
        if not argument.isdigit() or not 1 <= int(argument) <= 64:
            raise ActionError(f"{word!r}: a monitor number is 1 to 64")
        return Action(name, number=int(argument))
    try:
        seconds = float(argument)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 60:
        raise ActionError(f"{word!r}: wait takes 0 to 60 seconds")
    return Action(name, number=seconds)


def _unit(word: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise ActionError(f"{word!r}: coordinates are numbers from 0 to 1 (fractions of the monitor)")
    return value
