"""Printing benchmark figures with their conditions, and keeping docs/benchmarks.md current."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import aiortc
import av

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"


def machine_conditions() -> list[str]:
    """Date, machine and library versions: the conditions every figure comes with."""
    return [
        f"date: {time.strftime('%Y-%m-%d')}",
        f"machine: {os.cpu_count()} cores, {platform.machine()}, {platform.system()} {platform.release()}",
        f"python {platform.python_version()}, aiortc {aiortc.__version__}, PyAV {av.__version__}",
    ]


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of ``values``."""
    data = sorted(values)
    return data[min(len(data) - 1, max(0, round(q / 100 * (len(data) - 1))))]


def publish(name: str, conditions: list[str], table: str, *, write: bool) -> None:
    """Print the figures; with ``write``, replace the ``name`` section of docs/benchmarks.md."""
    print("\n".join(conditions))
    print()
    print(table)
    if not write:
        return
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = DOCS.read_text("utf-8")
    start, stop = text.index(begin) + len(begin), text.index(end)
    block = "\n" + "\n".join(f"- {c}" for c in conditions) + "\n\n" + table + "\n"
    DOCS.write_text(text[:start] + block + text[stop:], "utf-8")
    print(f"\nwritten to {DOCS.relative_to(ROOT)}")
