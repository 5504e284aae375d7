"""The console's transfer progress bars on stderr, and the summary of how fast a transfer went."""

from __future__ import annotations

import time

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
)
from rich.text import Text

from peer.transfer_rate import TransferRate, seconds_text, size_text
from peer.transfers import ProgressHook
from protocol.terminal_text import one_line

from .output import err


class _RateColumn(ProgressColumn):
    """Rate and time left as :class:`~peer.transfer_rate.TransferRate` measures them.

    Not rich's own speed column: that needs two updates inside its window and shows "?"
    for a file that arrives in one chunk, and it counts from when the bar appeared (the
    wait for the other side to accept included)."""

    def render(self, task: Task) -> Text:
        rate = task.fields.get("rate", 0.0)
        if not rate:
            return Text("…", style="progress.data.speed")
        left = (task.total or 0) - task.completed
        return Text(f"{size_text(rate)}/s" + (f", {seconds_text(left / rate)} left" if left > 0 else ""),
                    style="progress.data.speed")


class TransferBars:
    """The console's transfer progress bars on stderr, each with the rate of its transfer."""

    def __init__(self) -> None:
        self._bars = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(), _RateColumn(),
            console=err, transient=False,
        )

    def __enter__(self) -> TransferBars:
        self._bars.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._bars.stop()

    def track(self, description: str) -> tuple[ProgressHook, TransferRate]:
        """A new bar: the progress hook to give its transfer, and the rate it measures (for the summary)."""
        task = self._bars.add_task(one_line(description), total=None, rate=0.0)
        rate = TransferRate()

        def update(done: int, total: int) -> None:
            self._bars.update(task, completed=done, total=total, rate=rate.update(done, total, time.monotonic()))

        return update, rate


def how_fast(rate: TransferRate) -> str:
    """``: 3.15 MB in 1.2 s, 2.63 MB/s`` to end a summary line with, or nothing when not known."""
    summary = rate.summary()
    return f": {summary}" if summary else ""
