"""The ticket pages in Chromium: the queue with SLA flags and filters, working a ticket, the conversation."""

from __future__ import annotations

import re
import time

import pytest
from playwright.async_api import expect

from tests.browser.conftest import screenshot, sign_in
from tests.support.api import age_sla_timers, create_ticket

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    return {"DESKHAND_SLA_SWEEP_SECONDS": "0.2"}


def wait_for_breach(broker, ticket_id: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if broker.sql("SELECT sla_breached FROM tickets WHERE id = ?", ticket_id) == [(1,)]:
            return
        time.sleep(0.1)
    raise AssertionError(f"ticket {ticket_id} was never flagged as breached")


async def test_the_queue_flags_breaches_and_a_technician_works_a_ticket(broker, admin, console_page) -> None:
    late = create_ticket(broker, admin, subject="Payroll server down", priority="urgent", category="Servers")
    calm = create_ticket(broker, admin, subject="New mouse please", priority="low")
    age_sla_timers(broker, late["id"], hours=2)
    wait_for_breach(broker, late["id"])

    page = await console_page(broker)
    await sign_in(page, "admin", broker.admin_password)
    late_row = page.locator(f'tr[data-ticket="{late["id"]}"]')
    await expect(late_row.get_by_text("Breached")).to_be_visible()
    await expect(page.locator(f'tr[data-ticket="{calm["id"]}"]').get_by_text(re.compile(r"^Due in"))).to_be_visible()
    await screenshot(page, "tickets-sla")

    await page.get_by_label("SLA", exact=True).select_option("breached")
    await expect(page).to_have_url(re.compile(r"sla=breached"))
    await expect(late_row).to_be_visible()
    await expect(page.locator(f'tr[data-ticket="{calm["id"]}"]')).to_have_count(0)

    await late_row.get_by_role("link", name=f'#{late["id"]}').click()
    await expect(page.get_by_role("heading", name=re.compile("Payroll server down"))).to_be_visible()
    await page.get_by_role("button", name="Take it").click()
    await expect(page.get_by_text("Assigned: Administrator")).to_be_visible()
    await expect(page.locator("#ticket-status")).to_have_text("open")

    await page.get_by_label("Add to the conversation").fill("We are on it.\nExpect a call in 5 minutes.")
    await page.get_by_label("Public reply to the requester").check()
    await page.get_by_role("button", name="Add").click()
    reply = page.locator('li.comment[data-kind="reply"]')
    await expect(reply).to_contain_text("Expect a call in 5 minutes.")

    await page.get_by_label("Status").select_option("pending")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#ticket-status")).to_have_text("pending")
    sla = page.get_by_role("table", name="SLA timers")
    await expect(sla.get_by_role("row", name=re.compile("Resolution"))).to_contain_text("paused")
    await expect(sla.get_by_role("row", name=re.compile("First response"))).to_contain_text("breached")
    await screenshot(page, "ticket-worked")

    stored = broker.sql("SELECT status, assignee_id IS NOT NULL, first_response_at IS NOT NULL FROM tickets WHERE id = ?",
                        late["id"])
    assert stored == [("pending", 1, 1)]
    kinds = [k for (k,) in broker.sql("SELECT kind FROM audit_events WHERE ticket_id = ? ORDER BY id", late["id"])]
    assert {"ticket.assigned", "ticket.commented", "ticket.sla_breached", "ticket.status_changed"} <= set(kinds)


TABLE_IN_PANEL = """() => {
  const table = document.querySelector('table[aria-label="Tickets"]');
  const panel = table.closest('.panel');
  const style = getComputedStyle(panel);
  const t = table.getBoundingClientRect(), p = panel.getBoundingClientRect();
  return { table: [t.left, t.right], inside: [p.left + parseFloat(style.borderLeftWidth) + parseFloat(style.paddingLeft),
                                              p.right - parseFloat(style.borderRightWidth) - parseFloat(style.paddingRight)],
           page: document.documentElement.scrollWidth };
}"""


async def test_the_tickets_table_fits_its_panel_in_a_window_800_pixels_wide(broker, admin, console_page) -> None:
    create_ticket(broker, admin, subject="Printer on the third floor prints blank pages since the driver update",
                  priority="urgent", category="Printers", external={"system": "jira", "key": "HELP-4242"})
    create_ticket(broker, admin, subject="VPN", priority="low", assignee="admin")
    page = await console_page(broker)
    await sign_in(page, "admin", broker.admin_password)
    await page.set_viewport_size({"width": 800, "height": 800})
    await expect(page.locator('table[aria-label="Tickets"] tbody tr')).not_to_have_count(0)
    box = await page.evaluate(TABLE_IN_PANEL)
    assert box["inside"][0] - 0.5 <= box["table"][0] and box["table"][1] <= box["inside"][1] + 0.5, box
    assert box["page"] <= 800, "nothing on the page is wider than the window"
    await screenshot(page, "tickets-800")
