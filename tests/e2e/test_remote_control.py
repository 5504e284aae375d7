"""Remote control on a real X server: consent, input, revocation, chat, clipboard, monitors.

The host runs as ``deskhand-host`` in its own process with the terminal UI (its
stdin is the user's keyboard for commands and chat); the technician is a
:class:`~tech_console.client.TechConsole` in the test; what reaches the desktop
is read from a full-screen Tk recorder window and with xdotool.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from protocol.api import TicketCreate
from protocol.permissions import Permission
from tech_console.client import TechConsole
from tests.support.input_recorder import RecorderProcess
from tests.support.live_session import Live, live_session
from tests.support.polling import async_wait_until
from tests.support.xvfb import XvfbServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    return {"DESKHAND_ICE_LOOPBACK": "true"}


def pointer(env: dict[str, str]) -> tuple[int, int]:
    out = subprocess.run(["xdotool", "getmouselocation", "--shell"], capture_output=True, text=True,
                         env={**os.environ, **env}, check=True).stdout
    values = dict(line.split("=", 1) for line in out.split())
    return int(values["X"]), int(values["Y"])


async def controlled(live: Live) -> None:
    await live.view.wait_for_control(30)
    await live.view.wait_until(lambda: live.view.allowed(Permission.control), 10, "consent to control")


async def test_click_and_typed_text_reach_the_window_exactly(broker, xvfb, recorder) -> None:
    async with live_session(broker, xvfb.env, "--consent", "view,control,chat") as live:
        await controlled(live)
        live.view.click(0.5, 0.5)
        await async_wait_until(lambda: recorder.clicks(), "the click")
        assert recorder.clicks() == [[960, 540, 1]]
        assert pointer(xvfb.env) == (960, 540)

        live.view.type_text("Hello, Deskhand! 123")
        await async_wait_until(lambda: recorder.text() == "Hello, Deskhand! 123", "the typed text", timeout=10)

        # Physical keys: Shift held while a key goes down types the capital.
        view = live.view
        view.press_key("Enter")
        view.key("ShiftLeft", "Shift", down=True)
        view.press_key("KeyB", "B")
        view.key("ShiftLeft", "Shift", down=False)
        view.press_key("KeyC", "c")
        view.press_key("Backspace")
        view.press_key("Digit7", "7")
        await async_wait_until(lambda: recorder.text() == "Hello, Deskhand! 123\nB7", "the keys", timeout=10)

        live.view.click(0.0, 1.0)
        await async_wait_until(lambda: len(recorder.clicks()) == 2, "the corner click")
        assert recorder.clicks()[-1][:2] == [0, 1079]
    assert "ended by the technician: test over" in live.output
    assert "2 refused" not in live.output and "0 refused" in live.output


async def test_view_only_consent_refuses_input_and_says_why(broker, xvfb, recorder) -> None:
    async with live_session(broker, xvfb.env, "--consent", "view") as live:
        await live.view.wait_for_control(30)
        await live.view.wait_until(lambda: live.view.consent is not None, 10, "consent")
        assert [p.value for p in live.view.consent.permissions] == ["view"]
        assert live.view.consent.source.value == "flag"
        live.view.click(0.5, 0.5)
        live.view.type_text("should not appear")
        await live.view.wait_until(lambda: len(live.view.refusals) >= 1, 10, "a refusal")
        refusal = live.view.refusals[0]
        assert refusal.reason == "the user has not allowed control"
        assert refusal.seq == 1 and refusal.what == "pointer_button"
        await asyncio.sleep(0.5)
        assert recorder.text() == "" and recorder.clicks() == []
        live.view.send_chat("hello?")  # chat was not consented either
        await live.view.wait_until(lambda: any(r.what == "chat" for r in live.view.refusals), 10, "chat refusal")
    kinds = [k for (k,) in broker.sql("SELECT kind FROM audit_events WHERE session_id = ?", live.session_id)]
    assert "consent.changed" in kinds and "consent.flag_used" in kinds
    stored = broker.sql("SELECT consent, consent_source FROM support_sessions WHERE id = ?", live.session_id)
    assert stored == [('["view"]', "flag")]


async def test_revoking_control_stops_injection_at_the_next_message(broker, xvfb, recorder) -> None:
    async with live_session(broker, xvfb.env, "--consent", "view,control") as live:
        await controlled(live)
        live.view.type_text("before")
        await async_wait_until(lambda: recorder.text() == "before", "text before revoking")
        # A held Shift must not stay stuck after control is revoked.
        live.view.key("ShiftLeft", "Shift", down=True)
        live.view.press_key("KeyX", "X")
        await async_wait_until(lambda: recorder.text() == "beforeX", "a key typed with Shift held")
        live.user_types("r")
        await live.view.wait_until(lambda: not live.view.allowed(Permission.control), 10, "the revocation")
        first_after = live.view.type_text("after")
        await live.view.wait_until(lambda: any(r.seq == first_after for r in live.view.refusals), 10,
                                   f"a refusal of {first_after} (have {live.view.refusals})")
        await asyncio.sleep(0.5)
        assert recorder.text() == "beforeX"
        local = subprocess.run(["xdotool", "key", "a"], env={**os.environ, **xvfb.env})
        assert local.returncode == 0
        await async_wait_until(lambda: recorder.text() == "beforeXa", "an unshifted key from the local user")


async def test_chat_both_ways_and_clipboard_both_ways(broker, xvfb, recorder) -> None:
    async with live_session(broker, xvfb.env, "--consent", "view,chat,clipboard") as live:
        await live.view.wait_for_control(30)
        await live.view.wait_until(lambda: live.view.allowed(Permission.clipboard), 10, "consent")
        live.view.send_chat("Hi Ann, I am looking at it now")
        live.user_types("thanks, the printer is the one on the left")
        await live.view.wait_until(lambda: any(c.sender == "user" for c in live.view.chat), 10, "the user's chat")
        assert [c.text for c in live.view.chat if c.sender == "user"] == ["thanks, the printer is the one on the left"]

        live.view.set_clipboard("\\\\fileserver\\drivers ✓")
        await async_wait_until(lambda: recorder.clipboard() == "\\\\fileserver\\drivers ✓", "the host clipboard")

        recorder.set_clipboard("error code 0x8007 copied by the user")
        await live.view.wait_until(
            lambda: live.view.remote_clipboard == "error code 0x8007 copied by the user", 10, "the user's clipboard"
        )
    assert "Administrator: Hi Ann, I am looking at it now" in live.output


@contextmanager
def two_monitor_display() -> Iterator[XvfbServer]:
    with XvfbServer.start(1920, 1080) as server:
        env = {**os.environ, **server.env}
        for name, geometry in (("left", "960/254x1080/286+0+0"), ("right", "960/254x1080/286+960+0")):
            subprocess.run(["xrandr", "--setmonitor", name, geometry, "none"], env=env, check=True)
        yield server


async def test_monitor_switch_moves_the_stream_and_the_input(broker) -> None:
    with two_monitor_display() as display, RecorderProcess(display.env) as recorder:
        async with live_session(broker, display.env, "--consent", "view,control") as live:
            await controlled(live)
            await live.view.wait_until(lambda: live.view.monitors is not None, 10, "the monitor list")
            monitors = live.view.monitors.monitors
            assert [(m.left, m.width) for m in monitors][:2] == [(0, 960), (960, 960)]
            assert live.view.monitors.selected == 1
            frame = await live.view.wait_for_frame(30)
            assert frame.width == 960

            live.view.select_monitor(2)
            await live.view.wait_until(lambda: live.view.monitors.selected == 2, 10, "the switch")
            live.view.click(0.5, 0.5)
            await async_wait_until(lambda: recorder.clicks(), "the click on monitor 2")
            assert recorder.clicks() == [[960 + 480, 540, 1]]

            live.view.select_monitor(9)
            await live.view.wait_until(lambda: any(r.what == "select_monitor" for r in live.view.refusals), 10, "refusal")
            assert "does not exist" in live.view.refusals[-1].reason


async def test_the_console_cli_scripts_a_session(broker, xvfb, recorder, tmp_path) -> None:
    async with live_session(broker, xvfb.env, "--consent", "view,control,chat") as live:
        await controlled(live)
        await live.view.close()  # the CLI takes over as the technician's connection
        env = {**os.environ, "DESKHAND_BROKER": broker.base_url, "DESKHAND_TOKEN": broker.login()}
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "tech_console.cli", "--json", "control", live.session_id,
             "click:0.5,0.5", "type:scripted", "key:Enter", "chat:done here", "clipboard:nope", "--listen", "1"],
            capture_output=True, text=True, env=env, timeout=90,
        )
        assert await asyncio.to_thread(lambda: recorder.text()) == "scripted\n"
        report = json.loads(result.stdout)
        assert report["consent"] == ["view", "control", "chat"]
        assert [r["what"] for r in report["refused"]] == ["clipboard"]
        assert result.returncode == 1  # something was refused
    assert "Administrator: done here" in live.output


def xdo(env: dict[str, str], *args: str) -> str:
    return subprocess.run(["xdotool", *args], capture_output=True, text=True, env={**os.environ, **env}, check=True, timeout=30).stdout


async def test_the_host_window_asks_for_the_code_and_consent(broker, xvfb) -> None:
    """deskhand-host with no code and no --consent, as an end user runs it: all in the window."""
    from host_client.ui_window import TITLE

    async with TechConsole(broker.base_url) as console:
        await console.login("admin", broker.admin_password)
        ticket = await console.create_ticket(TicketCreate(subject="Window", requester_name="Ann", requester_email="ann@example.com"))
        started = await console.start_session(ticket.id)
        host = subprocess.Popen(
            [sys.executable, "-m", "host_client.cli", "join", "--broker", broker.base_url, "--ui", "window", "--no-survey"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **xvfb.env},
        )
        view = console.view(started.session.id)
        try:
            window = (await asyncio.to_thread(xdo, xvfb.env, "search", "--sync", "--onlyvisible", "--name", TITLE)).split()[0]
            await asyncio.to_thread(xdo, xvfb.env, "windowfocus", "--sync", window)
            await asyncio.to_thread(xdo, xvfb.env, "type", started.code_display)
            await asyncio.to_thread(xdo, xvfb.env, "key", "Return")
            await view.start()
            await view.wait_until(lambda: view.host is not None, 30, "the host to join")
            # The consent prompt ticks view and chat in advance; Return allows them.
            await asyncio.sleep(1.0)
            await asyncio.to_thread(xdo, xvfb.env, "windowfocus", "--sync", window)
            await asyncio.to_thread(xdo, xvfb.env, "key", "Return")
            await view.wait_until(lambda: view.consent is not None, 30, "consent from the window")
            assert [p.value for p in view.consent.permissions] == ["view", "chat"]
            assert view.consent.source.value == "window"
            await view.wait_for_frame(30)
            await console.end_session(started.session.id, "done")
            out, err = await asyncio.to_thread(host.communicate, timeout=30)
            assert host.returncode == 0, err
            assert "ended by the technician: done" in out
        finally:
            await view.close()
            if host.poll() is None:
                host.kill()
                host.communicate()


def test_the_pynput_internals_the_xorg_typer_uses_still_exist(xvfb, monkeypatch) -> None:
    monkeypatch.setenv("DISPLAY", xvfb.display)
    from pynput import keyboard
    from pynput._util.xorg import char_to_keysym

    controller = keyboard.Controller()
    assert isinstance(controller.keyboard_mapping, dict) and controller.keyboard_mapping
    assert controller._display is not None
    assert char_to_keysym("a") == 0x61


async def test_characters_missing_from_the_keyboard_layout_are_typed_too(broker, xvfb, recorder) -> None:
    keymap_before = await asyncio.to_thread(keysyms_mapped, xvfb.display)
    async with live_session(broker, xvfb.env, "--consent", "view,control") as live:
        await controlled(live)
        live.view.click(0.5, 0.5)
        live.view.type_text("café ✓ ß")
        await typed(recorder, "café ✓ ß", "non-ASCII text")
        live.view.type_text("✓")  # typed again through the keycode it borrowed
        await typed(recorder, "café ✓ ß✓", "the same character again")
    # The keycodes borrowed for the characters are given back when the session ends.
    await async_wait_until(lambda: keysyms_mapped(xvfb.display) == keymap_before, "the keyboard mapping restored")


async def typed(recorder: RecorderProcess, expected: str, what: str) -> None:
    """Wait until the window holds ``expected``; a failure says what it holds instead."""
    try:
        await async_wait_until(lambda: recorder.text() == expected, what, timeout=10)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the window holds {recorder.text()!r}") from None


def keysyms_mapped(display_name: str) -> set[int]:
    """Every keysym the X server's keyboard mapping holds."""
    from Xlib import display as xdisplay

    display = xdisplay.Display(display_name)
    try:
        first = display.display.info.min_keycode
        mapping = display.get_keyboard_mapping(first, display.display.info.max_keycode - first + 1)
        return {sym for syms in mapping for sym in syms if sym}
    finally:
        display.close()
