"""CPU time and resident memory of a process (all its threads and its descendants) from /proc.

``utime + stime`` in ``/proc/PID/stat`` already covers every thread of the
process. Descendants (a host that starts helpers, x11vnc's forks) are found by
walking the ``ppid`` fields of ``/proc/*/stat`` and added while they live; a
child that exits between two samples takes its last slice with it, which is
fine for the long-lived processes the benchmark measures. Linux only.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
"""Units of utime/stime per second."""


def _stat_fields(pid: int) -> list[str] | None:
    """The fields after the command name of ``/proc/PID/stat`` (state first), or None if it is gone."""
    return _fields_of(PROC / str(pid) / "stat")


def _fields_of(stat_path: Path) -> list[str] | None:
    try:
        text = stat_path.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may itself contain spaces or ')'.
    return text[text.rindex(")") + 2 :].split()


def _own_seconds(fields: list[str]) -> float:
    # Fields 14 and 15 of stat(5) are utime and stime; fields[0] here is field 3 (state).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _children() -> dict[int, list[int]]:
    """Every live process's children, by parent pid."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def cpu_seconds(pid: int, *, descendants: bool = True) -> float:
    """User + system CPU seconds used so far by ``pid``'s threads (and its live descendants').

    Raises :class:`ProcessLookupError` when ``pid`` is not running.
    """
    fields = _stat_fields(pid)
    if fields is None:
        raise ProcessLookupError(f"no process {pid}")
    total = _own_seconds(fields)
    for child in _descendants(pid) if descendants else []:
        child_fields = _stat_fields(child)
        if child_fields is not None:
            total += _own_seconds(child_fields)
    return total


def _descendants(pid: int) -> list[int]:
    """The pids of ``pid``'s live children, their children, and so on."""
    tree = _children()
    found: list[int] = []
    pending = list(tree.get(pid, []))
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(tree.get(child, []))
    return found


def resident_bytes(pid: int, *, descendants: bool = True) -> int:
    """Resident memory (``VmRSS`` of ``/proc/PID/status``) of ``pid`` (and its live descendants), in bytes.

    Raises :class:`ProcessLookupError` when ``pid`` is not running.
    """
    pids = [pid, *(_descendants(pid) if descendants else [])]
    total = 0
    for each in pids:
        try:
            status = (PROC / str(each) / "status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            if each == pid:
                raise ProcessLookupError(f"no process {pid}") from None
            continue  # a child that ended while we looked
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024  # in kB
                break
    return total


def thread_seconds(pid: int, name: str) -> float:
    """CPU seconds of ``pid``'s threads called ``name`` (``/proc/PID/task/*/comm``); 0 if none runs."""
    total = 0.0
    for task in (PROC / str(pid) / "task").iterdir():
        try:
            if (task / "comm").read_text().strip() != name:
                continue
        except FileNotFoundError:
            continue  # the thread ended while we looked
        fields = _fields_of(task / "stat")
        if fields is not None:
            total += _own_seconds(fields)
    return total


@dataclass(frozen=True)
class CpuSample:
    """A process's CPU seconds at a moment (``time.monotonic()``)."""

    pid: int
    at: float
    seconds: float

    @classmethod
    def take(cls, pid: int) -> CpuSample:
        return cls(pid, time.monotonic(), cpu_seconds(pid))

    def percent_since(self, earlier: CpuSample) -> float:
        """Use between ``earlier`` and this sample, in % of one core."""
        if earlier.pid != self.pid:
            raise ValueError(f"samples of different processes ({earlier.pid} and {self.pid})")
        if self.at <= earlier.at:
            raise ValueError("the earlier sample must be taken first")
        return 100 * (self.seconds - earlier.seconds) / (self.at - earlier.at)


def percent_of_core(samples: list[tuple[CpuSample, CpuSample]]) -> float:
    """% of one core over several (start, end) intervals taken together."""
    busy = sum(end.seconds - start.seconds for start, end in samples)
    elapsed = sum(end.at - start.at for start, end in samples)
    if elapsed <= 0:
        raise ValueError("the intervals add up to no time")
    return 100 * busy / elapsed
