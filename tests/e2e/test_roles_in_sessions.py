"""Roles, teams and accounts reach live sessions: the grant says what the technician may do,
and the host enforces it even against a console that sends input anyway."""

from __future__ import annotations

import asyncio

import pytest

from protocol.permissions import Permission
from tech_console.client import ConsoleError
from tests.support.accounts import choose_own_password
from tests.support.api import bearer
from tests.support.live_session import live_session
from tests.support.polling import async_wait_until

pytestmark = pytest.mark.slow

PASSWORD = "Roles-test passphrase 9"
SESSION_BASICS = ["session.start", "tickets.read", "tickets.write"]


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    return {"DESKHAND_ICE_LOOPBACK": "true"}


def admin_call(broker, method: str, path: str, **body: object) -> dict:
    response = broker.http.request(method, path, headers=bearer(broker.login()), json=body or None)
    assert response.status_code < 300, response.text
    return response.json() if response.content else {}


def technician(broker, username: str, role: str, permissions: list[str], teams: list[str] | None = None) -> tuple[str, str]:
    admin_call(broker, "POST", "/roles", name=role, permissions=SESSION_BASICS + permissions)
    admin_call(broker, "POST", "/users", username=username, display_name=username.title(), password=PASSWORD,
               roles=[role], teams=teams or [])
    return username, choose_own_password(broker, username, PASSWORD)


async def test_a_technician_without_control_gets_no_control_and_the_host_refuses_input_sent_anyway(
    broker, xvfb, recorder
) -> None:
    login = technician(broker, "watcher", "watcher", ["view", "chat"])
    async with live_session(broker, xvfb.env, "--consent", "view,control,chat", login=login) as live:
        view = live.view
        await view.wait_for_control(30)
        await view.wait_until(lambda: view.grant is not None and view.consent is not None, 10, "grant and consent")
        assert Permission.control not in view.grant.permissions  # the user would allow it; the role does not
        view.click(0.5, 0.5)  # a console that ignores its grant
        view.type_text("x")
        await view.wait_until(lambda: len(view.refusals) >= 2, 10, "the host's refusals")
    assert recorder.clicks() == [] and recorder.text() == ""
    assert all("control" in r.reason for r in view.refusals)


async def test_a_permission_removed_mid_session_is_withdrawn_within_seconds(broker, xvfb, recorder) -> None:
    login = technician(broker, "fixer", "fixer", ["view", "control"])
    async with live_session(broker, xvfb.env, "--consent", "view,control", login=login) as live:
        view = live.view
        await view.wait_for_control(30)
        await view.wait_until(lambda: view.allowed(Permission.control), 10, "control")
        view.click(0.5, 0.5)
        await async_wait_until(lambda: recorder.clicks(), "the first click")
        admin_call(broker, "PATCH", "/roles/fixer", permissions=[*SESSION_BASICS, "view"])
        await view.wait_until(lambda: not view.allowed(Permission.control), 6, "the new grant without control")
        await asyncio.sleep(1.0)  # the host's copy travels beside the view's, over signalling
        view.click(0.25, 0.25)
        await view.wait_until(lambda: view.refusals, 10, "a refusal")
        assert len(recorder.clicks()) == 1
    kinds = [k for (k,) in broker.sql("SELECT kind FROM audit_events WHERE session_id = ? AND kind = 'grant.issued'", live.session_id)]
    assert len(kinds) == 2  # the first grant and the one without control


async def test_a_team_policy_denies_file_transfer(broker, xvfb, tmp_path) -> None:
    admin_call(broker, "POST", "/teams", name="frontline", policy={"denied": ["files.send", "files.receive"]})
    login = technician(broker, "fronter", "fronter", ["view", "files.send", "files.receive"], teams=["frontline"])
    async with live_session(broker, xvfb.env, "--consent", "view,files.send", view=False, login=login) as live:
        await live.consented()
        source = tmp_path / "tool.sh"
        source.write_text("echo hi\n")
        with pytest.raises(ConsoleError, match=r"files\.send"):
            await live.console.send_file(live.session_id, source)


async def test_disabling_an_account_ends_its_tokens_and_its_live_view(broker, xvfb) -> None:
    login = technician(broker, "leaver", "leaver", ["view"])
    async with live_session(broker, xvfb.env, "--consent", "view", login=login) as live:
        view = live.view
        await view.wait_until(lambda: view.grant is not None, 30, "the grant")
        admin_call(broker, "PATCH", "/users/leaver", disabled=True)
        await async_wait_until(lambda: view.ended is not None, "the view to end", timeout=10)
        assert "disabled" in (view.ended.reason or "")
        assert broker.http.get("/auth/me", headers=bearer(live.console.token)).status_code == 401
        admin_call(broker, "POST", f"/sessions/{live.session_id}/end", reason="account disabled")
        await asyncio.to_thread(live.host.wait, 20)


async def test_a_team_can_require_the_user_in_person_for_control(broker, xvfb) -> None:
    admin_call(broker, "POST", "/teams", name="careful", policy={"control_needs_user": True})
    login = technician(broker, "carer", "carer", ["view", "control"], teams=["careful"])
    async with live_session(broker, xvfb.env, "--consent", "view,control", login=login) as live:
        view = live.view
        await view.wait_until(lambda: view.consent is not None and view.grant is not None, 30, "consent and grant")
        # The flag consented to control; the team's policy does not count it, so the grant drops control.
        await view.wait_until(lambda: Permission.control not in view.grant.permissions, 6, "a grant without control")
        assert Permission.view in view.grant.permissions
