"""The host pins the broker key it joined with: a grant signed by any other key is refused.

Real broker, real screen (Xvfb), the real :class:`~host_client.session.HostSession`
in this process; only the user interface is a recorder.
"""

from __future__ import annotations

import asyncio
import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from host_client import session as session_module
from host_client.clipboard import NoClipboard
from host_client.join import join_session
from host_client.session import HostOptions, HostSession
from host_client.ui import UserActions
from protocol.api import TicketCreate
from protocol.permissions import Permission
from tech_console.client import TechConsole

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    return {"DESKHAND_ICE_LOOPBACK": "true"}


class RecordingUI:
    """Remembers what the session showed; answers consent with a fixed set."""

    def __init__(self, answer: frozenset[Permission]) -> None:
        self.answer = answer
        self.notices: list[str] = []
        self.asked: list[tuple[str, list[Permission]]] = []

    async def ask_code(self) -> str | None:
        return None

    async def ask_consent(
        self, technician: str, offered: list[Permission], preselected: frozenset[Permission]
    ) -> frozenset[Permission] | None:
        self.asked.append((technician, offered))
        return self.answer

    def attach(self, actions: UserActions) -> None:
        self.actions = actions

    def session_started(self, technician: str, session_id: str, ticket_id: int) -> None:
        pass

    def permissions_changed(self, granted: frozenset[Permission], consented: frozenset[Permission]) -> None:
        pass

    def technician_present(self, present: bool) -> None:
        pass

    def chat_received(self, text: str) -> None:
        pass

    def notice(self, text: str) -> None:
        self.notices.append(text)

    async def close(self, summary: str) -> None:
        pass


class ThinkingUI(RecordingUI):
    """Answers the consent prompt only once told to, as a user who reads it first."""

    def __init__(self, answer: frozenset[Permission]) -> None:
        super().__init__(answer)
        self.decided = asyncio.Event()

    async def ask_consent(
        self, technician: str, offered: list[Permission], preselected: frozenset[Permission]
    ) -> frozenset[Permission] | None:
        await self.decided.wait()
        return await super().ask_consent(technician, offered, preselected)


async def run_host(broker, monkeypatch, xvfb, *, pinned_key: str | None, answer: frozenset[Permission],
                   ui: RecordingUI | None = None):
    monkeypatch.setenv("DISPLAY", xvfb.display)
    console = TechConsole(broker.base_url)  # closed by the test
    await console.login("admin", broker.admin_password)
    ticket = await console.create_ticket(TicketCreate(subject="Grants", requester_name="A", requester_email="a@example.com"))
    started = await console.start_session(ticket.id)
    joined = await join_session(broker.base_url, started.code)
    if pinned_key is not None:
        joined = joined.model_copy(update={"broker_public_key": pinned_key})
    ui = ui or RecordingUI(answer)
    host = HostSession(broker.base_url, joined, ui=ui, clipboard=NoClipboard(), options=HostOptions())
    running = asyncio.create_task(host.run())
    view = console.view(started.session.id)
    await view.start()
    return console, started.session.id, host, running, view, ui


async def test_a_grant_signed_by_another_key_is_refused_and_nothing_is_allowed(broker, monkeypatch, xvfb) -> None:
    stranger = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    console, session_id, host, running, view, ui = await run_host(
        broker, monkeypatch, xvfb, pinned_key=base64.b64encode(stranger).decode(), answer=frozenset(Permission)
    )
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not host.authority.rejected_grants:
            assert asyncio.get_running_loop().time() < deadline, "the host never saw the grant"
            await asyncio.sleep(0.05)
        assert host.authority.grant is None
        assert host.authority.rejected_grants == ["the grant's signature does not match the broker's key"]
        assert ui.asked == []  # no consent prompt for a grant that is not genuine
        assert any("refused the broker's grant" in n for n in ui.notices)
        assert "refused the broker's grant" in host.authority.refusal(Permission.control)
        await asyncio.sleep(1.0)
        assert not host.consent_sent.is_set()
        assert broker.sql("SELECT consent FROM support_sessions WHERE id = ?", session_id) == [(None,)]
        assert view.consent is None
    finally:
        await view.close()
        await console.end_session(session_id, "done")
        await asyncio.wait_for(running, 20)
        await console.aclose()


async def test_the_genuine_grant_leads_to_the_prompt_with_the_technician_name(broker, monkeypatch, xvfb) -> None:
    console, session_id, host, running, view, ui = await run_host(
        broker, monkeypatch, xvfb, pinned_key=None, answer=frozenset({Permission.view})
    )
    try:
        await asyncio.wait_for(host.consent_sent.wait(), 10)
        assert ui.asked == [("Administrator", list(Permission))]
        await view.wait_until(lambda: view.consent is not None, 10, "consent at the technician")
        assert view.consent.source.value == "terminal"
        assert host.authority.grant is not None and host.authority.grant.technician_name == "Administrator"
    finally:
        await view.close()
        await console.end_session(session_id, "done")
        await asyncio.wait_for(running, 20)
        await console.aclose()


@pytest.mark.parametrize("stale", [False, True], ids=["fresh", "stale"])
async def test_the_offer_is_made_while_the_user_reads_the_prompt(broker, monkeypatch, xvfb, stale: bool) -> None:
    """A technician is waiting: the host makes its peer connection (candidates gathered) before the user
    answers, and offers that one once they consent; one older than the limit is made afresh."""
    if stale:
        monkeypatch.setattr(session_module, "PREPARED_PEER_SECONDS", 0.0)
    ui = ThinkingUI(frozenset({Permission.view}))
    console, session_id, host, running, view, _ = await run_host(
        broker, monkeypatch, xvfb, pinned_key=None, answer=ui.answer, ui=ui
    )
    try:
        await view.wait_until(lambda: host.authority.grant is not None, 10, "the grant at the host")
        await asyncio.sleep(1.0)  # the user reads the prompt
        assert not host.consent_sent.is_set() and host.prepared_offers == 0
        assert view.peer_connection is None, "nothing is offered to the technician before consent"
        ui.decided.set()
        frame = await view.wait_for_frame(20)
        assert (frame.width, frame.height) == (1920, 1080)
        assert host.prepared_offers == (0 if stale else 1)
    finally:
        await view.close()
        await console.end_session(session_id, "done")
        await asyncio.wait_for(running, 20)
        await console.aclose()
