"""The documentation keeps up with the code: every broker setting and every command is in the
operations guide, and the README gives a newcomer exactly its two commands."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from broker.cli import build_parser as broker_parser
from broker.settings import Settings
from host_client.cli import build_parser as host_parser
from tech_console.cli import build_parser as console_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
OPERATIONS = (DOCS / "operations.md").read_text("utf-8")


def commands(parser: argparse.ArgumentParser, before: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command a program takes, as its words (``("ticket", "show")``); aliases left out."""
    found: list[tuple[str, ...]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    words = (*before, name)
                    found.extend(commands(sub, words) or [words])
    return found


def test_every_setting_is_in_the_operations_guide() -> None:
    missing = [f"DESKHAND_{name.upper()}" for name in Settings.model_fields if f"DESKHAND_{name.upper()}" not in OPERATIONS]
    assert missing == []


def test_every_console_command_has_its_row_in_the_operations_guide() -> None:
    missing = [" ".join(words) for words in commands(console_parser()) if f"`{' '.join(words)}" not in OPERATIONS]
    assert missing == []


def test_every_host_command_is_in_the_operations_guide() -> None:
    missing = [name for (name,) in commands(host_parser()) if f"deskhand-host {name}" not in OPERATIONS]
    assert missing == []


def test_every_broker_command_is_in_the_operations_guide() -> None:
    """``deskhand-broker users list|show|...``: the group, then each of its actions on that line."""
    missing = [
        " ".join(words) for words in commands(broker_parser())
        if not re.search(rf"deskhand-broker {words[0]}(?![\w-])"
                         + "".join(rf"[^\n]*(?<![\w-]){re.escape(action)}(?![\w-])" for action in words[1:]), OPERATIONS)
    ]
    assert missing == []


@pytest.mark.parametrize("name", ["README.md", *(p.name for p in DOCS.glob("*.md"))])
def test_no_document_calls_what_exists_future_work(name: str) -> None:
    text = (ROOT / name if name == "README.md" else DOCS / name).read_text("utf-8")
    stale = re.findall(r"(?i)(still to come|next issues?\b|until roles arrive|when roles arrive)", text)
    assert stale == []


def test_the_readme_gives_a_newcomer_exactly_two_commands() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^    (\S.*)$", section, re.MULTILINE) == ["./scripts/serve", "./scripts/test"]
