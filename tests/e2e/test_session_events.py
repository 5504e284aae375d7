"""A session scripted with ``deskhand-console`` is in the audit report item by item: nothing missing, nothing twice.

A real broker (keystroke logging on), ``deskhand-host`` on Xvfb, the console's CLI
as the technician (``control`` with chat, clipboard, input and a monitor choice,
then ``send`` with a file), the end user answering in the host's terminal and
copying text on the host. The report, and what ``audit report`` prints, name
people and show the recording as runs. The browser console's version of this is
``tests/browser/test_session_events.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from protocol.permissions import Permission
from tests.support import audit_items as script
from tests.support.api import bearer
from tests.support.audit_items import input_totals, repeated_event_ids, reported_items, settled_report
from tests.support.live_session import live_session
from tests.support.polling import async_wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    return script.SCRIPT_BROKER_ENV


def console(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tech_console.cli", *args], capture_output=True, text=True, env=env,
                          timeout=90)


async def test_a_console_cli_session_is_in_the_report_once_each(broker, xvfb, recorder, tmp_path) -> None:
    source = tmp_path / "fix.ps1"
    source.write_bytes(os.urandom(100_000))
    env = {**os.environ, "DESKHAND_BROKER": broker.base_url, "DESKHAND_TOKEN": broker.login()}
    async with live_session(broker, xvfb.env, "--consent", "view,control,chat,clipboard,files.send") as live:
        await live.view.wait_for_control(30)
        await live.view.wait_until(lambda: live.view.allowed(Permission.control), 10, "consent to control")
        await live.view.close()  # the CLI is the technician from here on
        control = asyncio.create_task(asyncio.to_thread(
            console, env, "--json", "control", live.session_id, f"chat:{script.CHAT}", f"clipboard:{script.TECH_CLIPBOARD}",
            "click:0.5,0.5", "type:abc", "key:Enter", "monitor:1", "wait:4", "--listen", "1",
        ))
        # The user answers once the host has the message: a chat line, and text copied on the host.
        await async_wait_until(
            lambda: broker.sql("SELECT 1 FROM audit_events WHERE session_id = ? AND kind = 'chat.received'", live.session_id),
            "the host to report the chat message", timeout=40,
        )
        live.user_types(script.REPLY)
        await async_wait_until(lambda: recorder.clipboard() == script.TECH_CLIPBOARD, "the technician's clipboard text")
        recorder.set_clipboard(script.USER_CLIPBOARD)
        controlled = await control
        assert controlled.returncode == 0, controlled.stdout + controlled.stderr
        seen = json.loads(controlled.stdout)
        assert {"from": "user", "text": script.REPLY} in seen["chat"] and seen["clipboard"] == script.USER_CLIPBOARD
        sent = await asyncio.to_thread(console, env, "send", live.session_id, str(source))
        assert sent.returncode == 0, sent.stdout + sent.stderr
    assert recorder.text() == "abc\n"

    report = await settled_report(broker, live.session_id)
    assert report["integrity"]["ok"], report["integrity"]
    assert reported_items(report) == (
        script.conversation() + script.typed("abc") + script.file_sent("fix.ps1")
        + Counter({("technician", "monitor.selected", "1"): 1, ("host", "monitor.selected", "1"): 1})
    )
    # click (button down and up), the text, Enter (down and up): five inputs, each applied once.
    assert input_totals(report) == {("technician", "input.sent"): 5, ("host", "input.applied"): 5}
    assert repeated_event_ids(report) == []
    assert [(c["who"], c["text"]) for c in report["chat"]] == [
        ("Administrator (technician)", script.CHAT), (f"Ann (host, login {report['participants'][1]['user_name']})", script.REPLY)]
    segments = report["recording"]["segments"]
    assert report["counts"] == {
        "chat_messages": 2, "clipboard_shares": 2, "inputs_sent": 5, "inputs_applied": 5, "inputs_refused": 0,
        "monitor_switches": 1, "recording_segments": segments, "files": 1,
    }
    runs = [e for e in report["timeline"] if e["kind"] == "recording.segment"]
    assert sum(e["count"] for e in runs) == segments > len(runs), "the segments are shown in runs"
    assert [e["seq"] for e in report["timeline"]] == sorted(e["seq"] for e in report["timeline"]), "in the broker's order"

    printed = await asyncio.to_thread(console, env, "audit", "report", live.session_id)
    assert printed.returncode == 0, printed.stderr
    host_name = f"Ann (host, login {report['participants'][1]['user_name']})"
    assert f"  chat.sent  Administrator (technician)  \u201c{script.CHAT}\u201d  [" in printed.stdout
    assert f"  chat.sent  {host_name}  \u201c{script.REPLY}\u201d  [" in printed.stdout
    assert sum(f"recording.segment  {host_name}" in line for line in printed.stdout.splitlines()) == len(runs)
    ticket = broker.http.get(f"/tickets/{report['ticket']['id']}", headers=bearer(env["DESKHAND_TOKEN"])).json()
    note = next(c for c in ticket["comments"] if c["kind"] == "session_report")
    assert "Chat messages: 2" in note["body"] and "Clipboard shared: 2 times" in note["body"], note["body"]
