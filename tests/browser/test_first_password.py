"""The browser console sends an account whose password someone else set to the change-password form, and keeps it there."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import sign_in
from tests.support.accounts import require_password_change

pytestmark = pytest.mark.slow

NEW_PASSWORD = "Lantern keeper passphrase 24"


async def test_a_first_password_leads_to_the_change_form_until_it_is_changed(broker, console_page) -> None:
    require_password_change(broker, "admin")
    page = await console_page(broker)
    await page.goto(broker.base_url + "/#/tickets")
    await sign_in(page, "admin", broker.admin_password)
    await expect(page.get_by_role("heading", name="Change your password")).to_be_visible()
    await expect(page).to_have_url(broker.base_url + "/#/account")
    nav = page.get_by_role("navigation", name="Sections")
    await expect(nav.get_by_role("link")).to_have_count(0)

    # Elsewhere by hand, also after a reload (then the broker's /auth/session says so): back to the form.
    for reload in (False, True):
        if reload:
            await page.reload()
            await expect(page.get_by_role("heading", name="Change your password")).to_be_visible()
        await page.evaluate("() => { location.hash = '#/tickets'; }")
        await expect(page.get_by_role("heading", name="Change your password")).to_be_visible()
        await expect(page).to_have_url(broker.base_url + "/#/account")

    await page.get_by_label("Current password").fill(broker.admin_password)
    await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    await page.get_by_label("New password again").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Change password").click()
    broker.admin_password = NEW_PASSWORD
    await expect(page.get_by_role("link", name="Change your password")).to_have_count(0)
    await nav.get_by_role("link", name="Tickets").click()
    await expect(page.get_by_role("heading", name="Tickets")).to_be_visible()
