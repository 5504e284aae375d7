"""Scripted control actions are parsed, and refused with a sentence, before anything runs."""

from __future__ import annotations

import pytest

from tech_console.actions import Action, ActionError, parse_action


@pytest.mark.parametrize(
    ("word", "action"),
    [
        ("click:0.5,0.5", Action("click", x=0.5, y=0.5)),
        ("click:0,1,right", Action("click", x=0.0, y=1.0, button="right")),
        ("move:0.25,0.75", Action("move", x=0.25, y=0.75)),
        ("type:Hello, Deskhand! 123", Action("type", text="Hello, Deskhand! 123")),
        ("type:a:b", Action("type", text="a:b")),
        ("key:Enter", Action("key", text="Enter")),
        ("chat:hi", Action("chat", text="hi")),
        ("clipboard:", Action("clipboard", text="")),
        ("monitor:2", Action("monitor", number=2)),
        ("wait:0.5", Action("wait", number=0.5)),
    ],
)
def test_valid_actions(word: str, action: Action) -> None:
    assert parse_action(word) == action


@pytest.mark.parametrize(
    ("word", "words"),
    [
        ("click", "NAME:ARGUMENT"), ("launch:x", "NAME:ARGUMENT"), ("click:0.5", "X,Y"),
        ("click:1.5,0", "from 0 to 1"), ("click:nan,0", "from 0 to 1"), ("click:0,0,thumb", "left, middle or right"),
        ("move:0,0,left", "X,Y"), ("key:Ctrl+C", "W3C code"), ("key:", "W3C code"), ("type:", "1 to"),
        ("chat:" + "x" * 5000, "1 to 4000"), ("monitor:0", "1 to 64"), ("monitor:two", "1 to 64"),
        ("wait:61", "0 to 60"), ("wait:soon", "0 to 60"),
    ],
)
def test_invalid_actions(word: str, words: str) -> None:
    with pytest.raises(ActionError, match=words):
        parse_action(word)
