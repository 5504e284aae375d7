"""Auditor pages: the session list, a recorded session played and sought from its timeline, integrity, export."""

from __future__ import annotations

import asyncio
import zipfile
from datetime import datetime

import pytest
from playwright.async_api import expect

from protocol.permissions import Permission
from tests.browser.conftest import screenshot, sign_in
from tests.support.accounts import make_user
from tests.support.api import bearer
from tests.support.live_session import live_session

pytestmark = pytest.mark.slow

AUDITOR = ("audra", "Ledger-checking passphrase 42")
CHAT = "Checking the printer queue now"


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    return {"DESKHAND_ICE_LOOPBACK": "true"}


async def test_an_auditor_plays_a_recording_seeks_from_the_timeline_and_exports(broker, xvfb, console_page) -> None:
    admin = bearer(broker.login())
    make_user(broker, AUDITOR[0], role="auditor", password=AUDITOR[1])

    async with live_session(broker, xvfb.env, "--consent", "view,chat", subject="Printer queue stuck") as live:
        await live.view.wait_for_control(30)
        await live.view.wait_until(lambda: live.view.allowed(Permission.chat), 10, "consent to chat")
        await asyncio.sleep(2)
        live.view.send_chat(CHAT)
        await asyncio.sleep(3)
    session_id = live.session_id
    session = broker.http.get(f"/sessions/{session_id}", headers=admin).json()
    report = broker.http.get(f"/audit/sessions/{session_id}/report", headers=admin).json()
    chat_event = next(e for e in report["timeline"] if e["kind"] == "chat.sent")
    expected = (datetime.fromisoformat(chat_event["at"]) - datetime.fromisoformat(session["connected_at"])).total_seconds()
    assert 1 < expected < report["recording"]["duration_ms"] / 1000, (expected, report["recording"])

    page = await console_page(broker)
    await sign_in(page, *AUDITOR)
    await page.get_by_role("link", name="Audit").click()
    await expect(page.get_by_role("heading", name="Audit: sessions")).to_be_visible()
    await page.get_by_label("Technician").fill("admin")
    await page.get_by_label("Host").fill(session["host"]["machine_name"])
    await page.get_by_role("button", name="Filter").click()
    row_link = page.get_by_role("link", name=f"Session {session_id[:8]}")
    await expect(row_link).to_be_visible()
    await screenshot(page, "audit-sessions")
    await page.get_by_label("From").fill("2099-01-01")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("cell", name="No sessions match.")).to_be_visible()
    await page.get_by_label("From").fill("")
    await page.get_by_label("Ticket").fill(str(session["ticket_id"] + 1000))
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("cell", name="No sessions match.")).to_be_visible()
    await page.get_by_label("Ticket").fill(str(session["ticket_id"]))
    await page.get_by_label("To").fill("2099-01-01")
    await page.get_by_role("button", name="Filter").click()
    await row_link.click()

    await expect(page.get_by_role("heading", name="Printer queue stuck")).to_be_visible()
    await expect(page.locator("#integrity")).to_contain_text("Integrity verified")
    await expect(page.get_by_role("table", name="Chat")).to_contain_text(CHAT)
    # People by name; the recording's segments as runs, each with its count, all segments in them.
    host_name = f"Ann (host, login {session['host']['user_name']})"
    await expect(page.locator("#participants")).to_contain_text(f"Technician Administrator (technician), account admin; {host_name}")
    await expect(page.get_by_role("table", name="Chat")).to_contain_text("Administrator (technician)")
    runs = page.locator("ol.timeline li[data-kind='recording.segment']")
    counts = [int(await run.get_attribute("data-count") or 0) for run in await runs.all()]
    assert sum(counts) == report["recording"]["segments"] > len(counts), counts
    await expect(runs.first).to_contain_text(f"recording.segment {host_name} ×{counts[0]}")
    video = page.locator("video#recording")
    await page.wait_for_function("() => document.querySelector('video#recording').readyState >= 2", timeout=15_000)
    await video.evaluate("v => { v.muted = true; return v.play(); }")
    await page.wait_for_function("() => document.querySelector('video#recording').currentTime > 0.5", timeout=15_000)
    await video.evaluate("v => v.pause()")
    await screenshot(page, "audit-session")

    await video.evaluate("v => v.addEventListener('seeked', () => { window.seekedTo = v.currentTime; }, { once: true })")
    # By keyboard: the event is a button; Enter on it seeks.
    await page.locator("ol.timeline li[data-kind='chat.sent'] button").first.focus()
    await page.keyboard.press("Enter")
    landed = (await page.wait_for_function("() => window.seekedTo", timeout=15_000)) and await page.evaluate("window.seekedTo")
    assert abs(landed - expected) < 0.6, (landed, expected)
    assert await video.evaluate("v => v.seekable.length > 0 && v.seekable.end(0) > 1")
    await page.wait_for_function("() => document.querySelector('video#recording').readyState >= 2", timeout=15_000)

    async with page.expect_download() as waiting:
        await page.get_by_role("button", name="Export bundle").click()
    download = await waiting.value
    path = await download.path()
    with zipfile.ZipFile(path) as bundle:
        names = bundle.namelist()
    assert {"manifest.json", "events.jsonl", "recording.webm"} <= set(names)
    audited = [k for (k,) in broker.sql("SELECT kind FROM audit_events WHERE session_id = ?", session_id)]
    assert "recording.played" in audited and "audit.exported" in audited

    # Someone edits the trail behind the broker's back: the report names the problem, as an alert.
    broker.sql("UPDATE audit_events SET data = json_set(data, '$.text', 'nothing to see') "
               "WHERE session_id = ? AND kind = 'chat.sent'", session_id)
    await page.reload()
    problem = page.locator("#integrity")
    await expect(problem).to_have_attribute("role", "alert")
    await expect(problem).to_contain_text("Integrity check FAILED")
    await expect(problem).to_contain_text("was edited")
    await screenshot(page, "audit-session-tampered")
