"""A full-screen Tk text window that records what reaches it, for remote-control tests.

Run as ``python -m tests.support.input_recorder`` with ``DISPLAY`` set; drive it
with :class:`RecorderProcess`. Commands (one per line, answers ``ok <json>``):

``text``        the text typed into the window so far
``clicks``      every button press as ``[x_root, y_root, button]``
``clear``       forget text and clicks
``setclip J``   own the clipboard with the JSON string ``J`` (as a user copying text)
``getclip``     the clipboard text as this X client sees it (null when empty)
``quit``
"""

from __future__ import annotations

import json
import sys
import tkinter as tk
from collections.abc import Mapping
from typing import Any

from tests.support.line_child import LineChild


class Recorder:
    def __init__(self) -> None:
        self.root = tk.Tk()
        self.root.title("Deskhand input recorder")
        width, height = self.root.winfo_screenwidth(), self.root.winfo_screenheight()
        self.root.overrideredirect(True)
        self.root.geometry(f"{width}x{height}+0+0")
        self.text = tk.Text(self.root, font=("TkFixedFont", 14))
        self.text.pack(fill="both", expand=True)
        self.clicks: list[list[int]] = []
        self.text.bind("<ButtonPress>", self._clicked, add="+")
        self.root.update()
        self.text.focus_force()
        self.root.createfilehandler(sys.stdin, tk.READABLE, self._command)
        print(f"ready {width} {height}", flush=True)

    def _clicked(self, event: Any) -> None:
        self.clicks.append([event.x_root, event.y_root, event.num])

    def _command(self, _file: object, _mask: int) -> None:
        line = sys.stdin.readline()
        if not line:
            self.root.destroy()
            return
        command, _, argument = line.rstrip("\n").partition(" ")
        if command == "text":
            reply: object = self.text.get("1.0", "end-1c")
        elif command == "clicks":
            reply = self.clicks
        elif command == "clear":
            self.text.delete("1.0", "end")
            self.clicks.clear()
            reply = None
        elif command == "setclip":
            self.root.clipboard_clear()
            self.root.clipboard_append(json.loads(argument))
            reply = None
        elif command == "getclip":
            try:
                reply = self.root.clipboard_get()
            except tk.TclError:
                reply = None
        elif command == "quit":
            self.root.destroy()
            return
        else:
            print(f"error unknown command {command!r}", flush=True)
            return
        print("ok " + json.dumps(reply), flush=True)


class RecorderProcess(LineChild):
    """The recorder in a child process on the display in ``env``."""

    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__("tests.support.input_recorder", env)

    def text(self) -> str:
        return json.loads(self.command("text"))

    def clicks(self) -> list[list[int]]:
        return json.loads(self.command("clicks"))

    def clear(self) -> None:
        self.command("clear")

    def set_clipboard(self, text: str) -> None:
        self.command("setclip " + json.dumps(text))

    def clipboard(self) -> str | None:
        return json.loads(self.command("getclip"))


if __name__ == "__main__":
    Recorder().root.mainloop()
