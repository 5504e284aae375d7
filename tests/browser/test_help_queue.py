"""The browser console's queue of help requests (asked without a code) and picking one up."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.browser.conftest import screenshot, sign_in
from tests.support.api import HOST_BODY, bearer

pytestmark = pytest.mark.slow


async def test_the_tickets_page_shows_the_queue_and_pick_up_opens_the_live_session(broker, console_page) -> None:
    first = broker.http.post("/requests", json={
        "name": "Dana Queue", "summary": "Word crashes on save", "details": "Since the update", **HOST_BODY}).json()
    second = broker.http.post("/requests", json={
        "name": "Eli Queue", "summary": "No sound", "priority": "high", "email": "eli@example.com", **HOST_BODY}).json()
    page = await console_page(broker)
    await sign_in(page, "admin", broker.admin_password)
    queue = page.get_by_role("table", name="Help requests waiting")
    await expect(queue.locator(f'tr[data-request="{first["request_id"]}"]')).to_contain_text("Dana Queue")
    await expect(queue.locator(f'tr[data-request="{second["request_id"]}"]')).to_contain_text("eli@example.com")
    await expect(page.get_by_role("heading", name="Waiting for help (2)")).to_be_visible()
    await screenshot(page, "help-queue")

    # The user withdraws the first request: the queue notices on its own.
    withdrawn = broker.http.delete(first["poll_path"].removeprefix("/api/v1"), headers=bearer(first["request_token"]))
    assert withdrawn.status_code == 200
    await expect(queue.locator(f'tr[data-request="{first["request_id"]}"]')).to_have_count(0, timeout=10_000)
    await expect(page.get_by_role("heading", name="Waiting for help (1)")).to_be_visible()

    await page.get_by_role("button", name="Pick up Eli Queue: No sound").click()
    await page.get_by_role("heading", name=re.compile("^Live session")).wait_for()
    session_id = page.url.rsplit("/", 1)[1]
    assert broker.sql("SELECT state, session_id FROM help_requests WHERE id = ?", second["request_id"]) == [
        ("picked", session_id)]
    assert broker.sql("SELECT state FROM support_sessions WHERE id = ?", session_id) == [("connected",)]

    await page.get_by_role("link", name="Tickets").click()
    await expect(page.get_by_role("cell", name="Nobody is waiting.")).to_be_visible()
