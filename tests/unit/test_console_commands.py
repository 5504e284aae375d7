"""``deskhand-console`` offers every command it offered before its split into command groups (issue 17).

The commands live in ``tech_console/commands/``, one module per group; ``tech_console/cli.py``
puts them on one parser. These tests make sure no command, action or alias is dropped on
the way, that ``--help`` lists them in the same order, and that each one has a handler.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from tech_console.cli import build_parser

EVERY_COMMAND = {
    "login", "logout", "whoami", "passwd", "totp", "totp enroll", "totp disable",
    *(f"{ticket}{action}" for ticket in ("ticket", "tickets")
      for action in ("", " create", " new", " list", " show", " update", " comment", " take")),
    "sla", "sla show", "sla set",
    "session", "session start", "session show", "session end", "requests", "pickup",
    "control", "snapshot",
    "send", "fetch", "transfers", "cancel",
    "audit", "audit sessions", "audit report", "audit recording", "audit export", "audit verify", "audit heads",
}
"""Every command and action as its words, aliases (``tickets``, ``ticket new``) included: the parser's before the split."""

HELP_ORDER = [
    "login", "logout", "whoami", "passwd", "totp", "ticket", "tickets", "sla", "session", "requests", "pickup",
    "control", "send", "fetch", "transfers", "cancel", "audit", "snapshot",
]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parsers of ``parser``'s subcommands by name, aliases included, in the order they were added."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def command_words(parser: argparse.ArgumentParser, before: str = "") -> Iterator[str]:
    """Every command and action under ``parser`` as its words (``ticket show``), depth first."""
    for name, sub in subcommands(parser).items():
        words = f"{before} {name}".strip()
        yield words
        yield from command_words(sub, words)


def test_the_parser_offers_every_command_it_offered_before_the_split() -> None:
    assert set(command_words(build_parser())) == EVERY_COMMAND


def test_help_lists_the_commands_in_the_same_order() -> None:
    assert list(subcommands(build_parser())) == HELP_ORDER


def test_every_command_has_a_handler() -> None:
    # An alias runs what its command runs; no command parses into nothing to do.
    commands = subcommands(build_parser())
    assert all(callable(sub.get_default("run")) for sub in commands.values())
    assert commands["tickets"].get_default("run") is commands["ticket"].get_default("run")
