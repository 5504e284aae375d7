"""A session worked in the browser console is in the audit report item by item: nothing missing, nothing twice.

Chromium as the technician, a real ``deskhand-host`` on Xvfb, a broker with
keystroke logging on: chat both ways, clipboard text both ways, input by mouse,
keyboard and the "Type on the host" form, a file sent; the page reports the
technician's side as ``tech_console/remote_view.py`` does (the CLI's version of
this test is ``tests/e2e/test_session_events.py``).
"""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import PICTURE_CENTRE, open_new_session, sign_in, video_size
from tests.support import audit_items as script
from tests.support.audit_items import input_totals, repeated_event_ids, reported_items, settled_report
from tests.support.input_recorder import RecorderProcess
from tests.support.polling import async_wait_until

pytestmark = pytest.mark.slow

TYPED = "hi there"


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    return script.SCRIPT_BROKER_ENV


async def test_a_browser_session_is_in_the_report_once_each(broker, xvfb, console_page, hosts, tmp_path) -> None:
    page = await console_page(broker)
    await sign_in(page, "admin", broker.admin_password)
    code = await open_new_session(page, "Printer offline", "Ann Smith", "ann@example.com")
    session_id = page.url.rsplit("/", 1)[1]
    with RecorderProcess(xvfb.env) as recorder:
        host = hosts.join(broker, code, xvfb.env, "view,control,chat,clipboard,files.send", tmp_path / "downloads")
        await expect(page.locator("#consent-info")).to_contain_text("clipboard text", timeout=30_000)
        await video_size(page, timeout=60)

        await page.get_by_label("Chat message").fill(script.CHAT)
        await page.get_by_role("button", name="Send", exact=True).click()
        await async_wait_until(
            lambda: broker.sql("SELECT 1 FROM audit_events WHERE session_id = ? AND kind = 'chat.received'", session_id),
            "the host to report the chat message", timeout=20,
        )
        host.stdin.write(script.REPLY + "\n")
        host.stdin.flush()
        await expect(page.locator(".chat")).to_contain_text(script.REPLY, timeout=10_000)

        await page.get_by_label("Put on their clipboard").fill(script.TECH_CLIPBOARD)
        await page.get_by_role("button", name="Put", exact=True).click()
        await async_wait_until(lambda: recorder.clipboard() == script.TECH_CLIPBOARD, "the technician's clipboard text")
        recorder.set_clipboard(script.USER_CLIPBOARD)
        await expect(page.locator("#session-log")).to_contain_text(f"the user's clipboard: {script.USER_CLIPBOARD}")

        cx, cy, _w, _h = await page.evaluate(PICTURE_CENTRE)
        await page.mouse.click(cx, cy)  # captures input; not sent
        await expect(page.locator("#capture-state")).to_contain_text("INPUT CAPTURED")
        await page.mouse.click(cx, cy)
        await page.keyboard.type("ok")
        await page.get_by_role("button", name="Release input").click()
        await page.get_by_label("Type on the host").fill(TYPED)
        await page.get_by_role("button", name="Type", exact=True).click()
        await async_wait_until(lambda: recorder.text() == "ok" + TYPED, "the typed text", timeout=10)

        picked = tmp_path / "notes.txt"
        picked.write_text("restart the spooler\n")
        await page.locator("#file-pick").set_input_files(str(picked))
        await expect(page.locator('.transfers li[data-name="notes.txt"]')).to_have_attribute("data-state", "completed",
                                                                                              timeout=30_000)

        await page.get_by_label("Note for the ticket").fill("Printer works again")
        await page.get_by_role("button", name="End session").click()
        await expect(page.locator("#ended")).to_contain_text("Printer works again")
        hosts.exited(host, 30)
    await page.close()

    report = await settled_report(broker, session_id)
    assert report["integrity"]["ok"], report["integrity"]
    assert reported_items(report) == (
        script.conversation() + script.typed("o", "k", TYPED) + script.file_sent("notes.txt")
    )
    # The click (down, up), o and k (down, up each), the form's text: 7, and any pointer moves;
    # every input the page sent was applied on the host, once.
    totals = input_totals(report)
    assert totals[("technician", "input.sent")] == totals[("host", "input.applied")] >= 7, totals
    assert ("host", "input.refused") not in totals
    assert repeated_event_ids(report) == []
    assert [(c["who"], c["text"]) for c in report["chat"]] == [
        ("Administrator (technician)", script.CHAT), (f"Ann Smith (host, login {report['participants'][1]['user_name']})", script.REPLY)]
    assert report["counts"]["chat_messages"] == 2 and report["counts"]["clipboard_shares"] == 2
