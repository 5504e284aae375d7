"""A program that does not end says, on SIGUSR1, where each of its tasks and threads waits."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from protocol.cli import WAITS_SIGNAL, report_waits_on_signal


async def stuck_in_close(released: asyncio.Event) -> None:
    await released.wait()


async def test_sigusr1_writes_each_task_where_it_waits_and_each_thread(capfd: pytest.CaptureFixture[str]) -> None:
    loop = asyncio.get_running_loop()
    released = asyncio.Event()
    stuck = asyncio.create_task(stuck_in_close(released), name="closing the peer connection")
    blocked = threading.Event()
    worker = threading.Thread(target=blocked.wait, name="recorder", daemon=True)
    worker.start()
    report_waits_on_signal(loop)
    try:
        os.kill(os.getpid(), WAITS_SIGNAL)
        await asyncio.sleep(0.2)  # the handler runs on the loop's next turn
        written = capfd.readouterr().err
    finally:
        loop.remove_signal_handler(WAITS_SIGNAL)
        released.set()
        blocked.set()
        await stuck
    task_part, thread_part = written.split("--- threads ---")
    assert "task closing the peer connection" in task_part
    assert f"{__file__}:" in task_part and "in stuck_in_close" in task_part
    assert "asyncio/locks.py" in task_part  # down the chain of awaits, not only the task's own frame
    assert "thread recorder" in thread_part and "in wait" in thread_part
