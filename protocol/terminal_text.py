"""Text from peers and users made safe to print on a terminal: the one place that decides how.

What a peer or a user typed reaches terminals: the technician's console, the end
user's terminal, the operator's broker commands and every program's log. A
terminal obeys the control characters in that text: ESC starts sequences that
move the cursor, recolour, retitle the window or erase what was printed; a
newline starts what reads as a line of the program's own (a forged line in an
audit report); a carriage return writes over the line; Unicode's bidirectional
controls (U+202E and its kin) show text in another order than it is stored, and
other format characters hide text altogether.

Each such character is shown as a visible escape, written as Python writes it
(``\\x1b``, ``\\n``, ``\\u202e``), so nothing is lost and nothing acts:

* :func:`one_line` for anything shown on one line (a name, a chat message, a
  reason, a report line): line breaks become visible too;
* :func:`multi_line` for text that is meant to span lines (a ticket's
  description, a comment): its line breaks stay, everything else as above.

Escaped are: C0 and C1 control characters and DEL (``Cc``), line and paragraph
separators (``Zl``, ``Zp``), lone surrogates (``Cs``, which cannot even be
encoded for output), and format characters (``Cf``: bidirectional controls,
zero-width spaces, tag characters) except the zero-width joiner and non-joiner,
which scripts such as Persian and emoji sequences need to render right.
Backslashes are left as they are: text may look like an escape, but cannot act.
"""

from __future__ import annotations

import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_KEPT_FORMAT = frozenset({"\u200c", "\u200d"})
"""Zero-width non-joiner and joiner: they change how letters join, never order or visibility."""
_KEPT_IN_BLOCKS = frozenset({"\n", "\t"})


def one_line(text: str) -> str:
    """``text`` as one printable line: every control, format or line-breaking character a visible escape."""
    return _escaped(text, frozenset())


def multi_line(text: str) -> str:
    """``text`` printable with its own line breaks (``\\r\\n`` as ``\\n``) and tabs; everything else as :func:`one_line`."""
    return _escaped(text.replace("\r\n", "\n"), _KEPT_IN_BLOCKS)


def is_unsafe(ch: str) -> bool:
    """True for a character a terminal would obey or hide rather than show (see the module's list)."""
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES and ch not in _KEPT_FORMAT


def _escaped(text: str, kept: frozenset[str]) -> str:
    if text.isascii() and text.isprintable():  # the common case: nothing to look at twice
        return text
    return "".join(_escape(ch) if ch not in kept and is_unsafe(ch) else ch for ch in text)


def _escape(ch: str) -> str:
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
