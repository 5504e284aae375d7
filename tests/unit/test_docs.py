"""The operations guide documents every broker setting."""

from __future__ import annotations

from pathlib import Path

from broker.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_setting_is_in_the_operations_guide() -> None:
    text = (DOCS / "operations.md").read_text("utf-8")
    missing = [f"DESKHAND_{name.upper()}" for name in Settings.model_fields if f"DESKHAND_{name.upper()}" not in text]
    assert missing == []
