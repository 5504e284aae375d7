"""Admin pages: a role, a team with its policy and an account made through the console; a technician sees none of it."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import screenshot, sign_in
from tests.support.accounts import make_user
from tests.support.api import bearer

pytestmark = pytest.mark.slow


async def test_an_admin_creates_a_role_a_team_and_an_account_through_the_pages(broker, console_page) -> None:
    admin = bearer(broker.login())
    page = await console_page(broker, expect_http_errors=frozenset({409}))
    await sign_in(page, "admin", broker.admin_password)
    await page.get_by_role("link", name="Admin").click()
    await expect(page.get_by_role("heading", name="Admin: accounts")).to_be_visible()

    # A role with chosen permissions; a duplicate name is refused next to the form.
    await page.get_by_role("navigation", name="Admin").get_by_role("link", name="Roles").click()
    await expect(page.get_by_role("heading", name="Admin: roles")).to_be_visible()
    new_role = page.locator("form[aria-labelledby=new-role]")
    await new_role.get_by_label("Name").fill("auditor")
    await new_role.get_by_role("button", name="Create role").click()
    await expect(new_role.get_by_role("alert")).to_contain_text("auditor")
    await new_role.get_by_label("Name").fill("helpdesk-lite")
    await new_role.get_by_label("Description").fill("First line: look and chat")
    for permission in ("session.start", "tickets.read", "view", "chat"):
        await new_role.get_by_label(permission, exact=True).check()
    await new_role.get_by_role("button", name="Create role").click()
    await expect(page.get_by_role("heading", name="helpdesk-lite")).to_be_visible()
    await screenshot(page, "admin-roles")
    role = next(r for r in broker.http.get("/roles", headers=admin).json() if r["name"] == "helpdesk-lite")
    assert sorted(role["permissions"]) == ["chat", "session.start", "tickets.read", "view"] and not role["builtin"]

    # A team whose policy denies control and file receiving, requires recording, wants the user in person.
    await page.get_by_role("navigation", name="Admin").get_by_role("link", name="Teams").click()
    new_team = page.locator("form[aria-labelledby=new-team]")
    await new_team.get_by_label("Name", exact=True).fill("night-shift")
    await new_team.get_by_label("control", exact=True).check()
    await new_team.get_by_label("files.receive", exact=True).check()
    await new_team.get_by_label("Recording required").check()
    await new_team.get_by_label("Control needs the user in person").check()
    await new_team.get_by_role("button", name="Create team").click()
    await expect(page.get_by_role("heading", name="night-shift")).to_be_visible()
    await screenshot(page, "admin-teams")
    team = broker.http.get("/teams", headers=admin).json()[0]
    assert team["name"] == "night-shift"
    assert team["policy"] == {"denied": ["control", "files.receive"], "recording_required": True, "control_needs_user": True}

    # An account in that role and team; its generated password is shown once and works.
    await page.get_by_role("navigation", name="Admin").get_by_role("link", name="Accounts").click()
    new_account = page.locator("form[aria-labelledby=new-account]")
    await new_account.get_by_label("Username").fill("terry")
    await new_account.get_by_label("Display name").fill("Terry Tech")
    await new_account.get_by_label("technician", exact=True).uncheck()
    await new_account.get_by_label("helpdesk-lite", exact=True).check()
    await new_account.get_by_label("night-shift", exact=True).check()
    await new_account.get_by_role("button", name="Create account").click()
    password = (await page.locator("#new-password").text_content() or "").strip()
    assert len(password) >= 16
    await screenshot(page, "admin-accounts")
    terry = broker.http.get("/users/terry", headers=admin).json()
    assert terry["roles"] == ["helpdesk-lite"] and terry["teams"] == ["night-shift"] and not terry["disabled"]
    assert broker.http.post("/auth/login", json={"username": "terry", "password": password}).status_code == 200

    await page.get_by_role("button", name="Disable terry").click()
    await expect(page.get_by_role("button", name="Enable terry")).to_be_visible()
    assert broker.http.get("/users/terry", headers=admin).json()["disabled"] is True
    await page.get_by_role("button", name="Enable terry").click()
    await expect(page.get_by_role("button", name="Disable terry")).to_be_visible()
    assert broker.http.get("/users/terry", headers=admin).json()["disabled"] is False
    await page.get_by_role("button", name="Reset password of terry").click()
    await expect(page.get_by_role("heading", name="Password for terry")).to_be_visible()
    again = (await page.locator("#new-password").text_content() or "").strip()
    assert again != password
    assert broker.http.post("/auth/login", json={"username": "terry", "password": again}).status_code == 200


async def test_a_technician_sees_no_admin_or_audit_and_is_not_allowed_there(broker, console_page) -> None:
    make_user(broker, "tina", role="technician", password="Screwdriver passphrase 77")
    page = await console_page(broker)
    await sign_in(page, "tina", "Screwdriver passphrase 77")
    nav = page.get_by_role("navigation", name="Sections")
    await expect(nav.get_by_role("link", name="Tickets")).to_be_visible()
    await expect(nav.get_by_role("link", name="Admin")).to_have_count(0)
    await expect(nav.get_by_role("link", name="Audit")).to_have_count(0)
    await page.evaluate("() => { location.hash = '#/admin/users'; }")
    await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    await screenshot(page, "admin-not-allowed")
    await page.evaluate("() => { location.hash = '#/audit'; }")
    await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()


async def test_an_admin_changes_roles_and_team_members_and_deletes_an_account_and_a_role(broker, console_page) -> None:
    admin = bearer(broker.login())
    assert broker.http.post("/roles", headers=admin, json={"name": "short-lived", "permissions": ["tickets.read"]}).status_code == 201
    assert broker.http.post("/teams", headers=admin, json={"name": "day-shift"}).status_code == 201
    assert broker.http.post("/users", headers=admin, json={
        "username": "ulla", "display_name": "Ulla", "roles": ["technician"]}).status_code == 201
    page = await console_page(broker)
    page.on("dialog", lambda dialog: dialog.accept())
    await sign_in(page, "admin", broker.admin_password)
    await page.evaluate("() => { location.hash = '#/admin/users'; }")
    editor = page.get_by_role("form", name="Roles and teams of ulla")
    await editor.get_by_label("short-lived", exact=True).check()
    await editor.get_by_label("day-shift", exact=True).check()
    await editor.get_by_role("button", name="Save ulla").click()
    await expect(page.get_by_role("status")).to_have_text("Saved ulla")
    ulla = broker.http.get("/users/ulla", headers=admin).json()
    assert sorted(ulla["roles"]) == ["short-lived", "technician"] and ulla["teams"] == ["day-shift"]

    await page.get_by_role("navigation", name="Admin").get_by_role("link", name="Teams").click()
    team = page.get_by_role("form", name="day-shift")
    await expect(team.get_by_label("Members")).to_have_value("ulla")
    await team.get_by_label("Members").fill("ulla, admin")
    await team.get_by_label("chat", exact=True).check()
    await team.get_by_role("button", name="Save day-shift").click()
    await expect(page.get_by_role("status")).to_have_text("Saved team day-shift")
    saved = next(t for t in broker.http.get("/teams", headers=admin).json() if t["name"] == "day-shift")
    assert sorted(saved["members"]) == ["admin", "ulla"] and saved["policy"]["denied"] == ["chat"]

    await page.get_by_role("navigation", name="Admin").get_by_role("link", name="Accounts").click()
    await page.get_by_role("button", name="Delete ulla").click()
    await expect(page.get_by_role("form", name="Roles and teams of ulla")).to_have_count(0)
    assert broker.http.get("/users/ulla", headers=admin).status_code == 404

    await page.get_by_role("navigation", name="Admin").get_by_role("link", name="Roles").click()
    await page.get_by_role("button", name="Delete short-lived").click()
    await expect(page.get_by_role("heading", name="short-lived")).to_have_count(0)
    assert "short-lived" not in {r["name"] for r in broker.http.get("/roles", headers=admin).json()}
    await expect(page.get_by_role("button", name="Delete technician")).to_have_count(0)


async def test_an_account_that_manages_only_team_policies_finds_admin_on_the_teams_page(broker, console_page) -> None:
    admin = bearer(broker.login())
    role = broker.http.post("/roles", headers=admin, json={"name": "policy-keeper", "permissions": ["policies.manage"]})
    assert role.status_code == 201, role.text
    make_user(broker, "pam", role="policy-keeper", password="Rulebook passphrase 31")
    page = await console_page(broker)
    await sign_in(page, "pam", "Rulebook passphrase 31")
    nav = page.get_by_role("navigation", name="Sections")
    await expect(nav.get_by_role("link", name="Admin")).to_have_count(1)
    await expect(nav.get_by_role("link", name="Tickets")).to_have_count(0)
    await expect(page.get_by_role("heading", name="Admin: teams")).to_be_visible()  # the first page Pam may open
    await expect(nav.get_by_role("link", name="Admin")).to_have_attribute("aria-current", "page")
