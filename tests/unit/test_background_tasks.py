"""The clients' one home for tasks started on the side (``peer.background``), and the terminal that uses it.

Pure asyncio: no sockets, no threads but the terminal's reader of a pipe.
"""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import os

import pytest

from host_client.ui_terminal import TerminalUI
from peer import background
from peer.background import BackgroundTasks, cancel_and_wait
from protocol.permissions import Permission
from protocol.waits import wait_until_set


class Broken(Exception):
    """What the tasks under test fail with."""


async def fail(message: str) -> None:
    await asyncio.sleep(0)
    raise Broken(message)


def failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_failure_is_logged_once_with_its_owner_and_purpose_and_its_traceback(caplog) -> None:
    tasks = BackgroundTasks("host session")
    task = tasks.start(fail("the clipboard is gone"), "clipboard write")
    await asyncio.wait({task})
    await asyncio.sleep(0)  # done callbacks run
    gc.collect()  # an unretrieved exception would be reported again here, by asyncio
    [record] = failures(caplog)
    assert record.getMessage() == "host session: clipboard write failed: the clipboard is gone"
    assert record.exc_info is not None and record.exc_info[0] is Broken
    assert len(tasks) == 0


async def test_a_started_task_is_held_until_it_ends_even_when_nobody_else_holds_it() -> None:
    tasks = BackgroundTasks("owner")
    finished = asyncio.Event()

    async def work() -> None:
        await asyncio.sleep(0.01)
        finished.set()

    tasks.start(work(), "work")  # the task object is dropped at once
    gc.collect()
    assert len(tasks) == 1
    await asyncio.wait_for(finished.wait(), 5)
    await asyncio.sleep(0)
    assert len(tasks) == 0


async def test_close_cancels_and_awaits_what_runs_and_a_cancellation_is_not_a_failure(caplog) -> None:
    tasks = BackgroundTasks("owner")
    cleaned = []

    async def forever(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # clean-up that itself awaits: close waits for it
            cleaned.append(name)

    started = [tasks.start(forever(n), n) for n in ("a", "b")]
    await asyncio.sleep(0)
    await tasks.close()
    assert sorted(cleaned) == ["a", "b"]
    assert all(t.cancelled() for t in started)
    assert len(tasks) == 0 and not failures(caplog)


async def test_a_task_started_while_closing_is_reaped_by_the_same_close() -> None:
    tasks = BackgroundTasks("owner")
    late: list[asyncio.Task[None]] = []

    async def starts_another_when_cancelled() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            late.append(tasks.start(asyncio.Event().wait(), "late"))

    tasks.start(starts_another_when_cancelled(), "first")
    await asyncio.sleep(0)
    await tasks.close()
    assert late and late[0].cancelled() and len(tasks) == 0


async def test_a_task_that_closes_its_own_set_stops_the_others_and_goes_on() -> None:
    tasks = BackgroundTasks("owner")
    other = tasks.start(asyncio.Event().wait(), "other")

    async def closer() -> str:
        await tasks.close()
        return "went on"

    closing = tasks.start(closer(), "closer")
    assert await asyncio.wait_for(closing, 5) == "went on"
    assert other.cancelled()


async def test_a_failure_before_close_is_logged_and_close_does_not_raise_it(caplog) -> None:
    tasks = BackgroundTasks("owner")
    tasks.start(fail("early"), "early")
    await asyncio.sleep(0.01)
    await tasks.close()
    assert [r.getMessage() for r in failures(caplog)] == ["owner: early failed: early"]


async def test_cancel_and_wait_leaves_results_to_the_caller_and_takes_no_time_for_none() -> None:
    done = asyncio.ensure_future(asyncio.sleep(0, result="kept"))
    await asyncio.sleep(0.01)
    waiting = asyncio.ensure_future(asyncio.Event().wait())
    await cancel_and_wait((done, waiting))
    assert done.result() == "kept" and waiting.cancelled()
    await cancel_and_wait(())


async def test_a_task_that_lost_its_cancellation_is_cancelled_again_and_named(monkeypatch, caplog) -> None:
    monkeypatch.setattr(background, "CANCEL_AGAIN_SECONDS", 0.05)
    tasks = BackgroundTasks("owner")

    async def loses_one() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass  # as asyncio.wait_for can on Python 3.11, or a library
        await asyncio.Event().wait()

    task = tasks.start(loses_one(), "deaf")
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await tasks.close()
    assert task.cancelled() and len(tasks) == 0
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "owner: deaf still runs 0.05 s after it was cancelled; cancelling it again"]


async def test_wait_until_set_says_whether_the_event_was_set_in_time() -> None:
    event = asyncio.Event()
    assert not await wait_until_set(event, 0.01)
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_until_set(event, 5)


@pytest.mark.parametrize("ticks", range(4))
async def test_a_loop_waiting_with_wait_until_set_stops_when_cancelled_just_as_its_event_is_set(ticks: int) -> None:
    # asyncio.wait_for(event.wait(), timeout) in its place swallows the cancellation on Python 3.11
    # at some of these ticks (python/cpython#86296): the loop goes on, and close() waits for ever.
    tasks = BackgroundTasks("owner")
    wake = asyncio.Event()
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            wake.clear()
            await wait_until_set(wake, 1.0)
            rounds += 1

    tasks.start(loop(), "loop")
    await asyncio.sleep(0.01)
    wake.set()
    for _ in range(ticks):
        await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await tasks.close()
    assert len(tasks) == 0 and rounds <= 1


class ChatFails:
    """A session whose chat raises: what a command typed in the terminal runs."""

    def __init__(self) -> None:
        self.chats: list[str] = []

    def change_consent(self, permissions: frozenset[Permission]) -> None:
        pass

    def end_session(self) -> None:
        pass

    def send_chat(self, text: str) -> None:
        self.chats.append(text)
        raise Broken("the control channel broke")

    def cancel_transfer(self, transfer_id: str) -> None:
        pass


async def test_a_terminal_command_that_fails_is_logged_once_and_closing_the_terminal_stops_its_reader(caplog) -> None:
    read, write = os.pipe()
    ui = TerminalUI(stdin=os.fdopen(read, "r"), stdout=io.StringIO())
    actions = ChatFails()
    ui.attach(actions)
    ui.session_started("Tess", "session-1", 7)
    os.write(write, b"hello there\n")
    async with asyncio.timeout(5):
        while not failures(caplog):
            await asyncio.sleep(0.01)
    assert actions.chats == ["hello there"]
    [record] = failures(caplog)
    assert record.getMessage() == "terminal: command failed: the control channel broke"
    assert "hello there" not in record.getMessage()  # what the user typed stays out of the log line
    await ui.close("over")
    assert ui._dispatcher is not None and ui._dispatcher.cancelled()
    os.close(write)
