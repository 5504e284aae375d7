"""Consent and grants over signalling: recorded, audited, relayed, refreshed; only from the host."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from host_client.grant_check import load_public_key, verify_grant
from protocol.grants import SignedGrant
from tests.support.api import join, start_session
from tests.support.database import BrokerDatabases
from tests.support.signalling import peer, receive, receive_type

pytestmark = pytest.mark.both_stacks

GRANT_TTL = 30


@pytest.fixture(scope="module")
def broker_env(broker_db: BrokerDatabases) -> dict[str, str]:
    return {"DESKHAND_GRANT_TTL_SECONDS": str(GRANT_TTL), **broker_db.env()}


def joined_session(broker, admin) -> dict[str, Any]:
    started = start_session(broker, admin)
    return join(broker, started["code"]).json()


async def test_host_consent_is_stored_audited_and_relayed_and_replayed_to_a_late_technician(broker, admin) -> None:
    joined = joined_session(broker, admin)
    session_id = joined["session_id"]
    tech_token = broker.login()
    async with peer(broker, session_id, joined["host_token"]) as host:
        async with peer(broker, session_id, tech_token) as tech:
            await receive_type(tech, "welcome")
            await host.send(json.dumps({"type": "consent", "permissions": ["control", "view"], "source": "window"}))
            relayed = await receive_type(tech, "consent")
            assert relayed == {"type": "consent", "permissions": ["control", "view"], "source": "window"}
        stored = broker.sql("SELECT consent, consent_source FROM support_sessions WHERE id = ?", session_id)
        assert stored == [('["view", "control"]', "window")]
        audited = broker.sql("SELECT data FROM audit_events WHERE kind = 'consent.changed' AND session_id = ?", session_id)
        assert json.loads(audited[0][0]) == {"permissions": ["view", "control"], "given_by": "window"}
        async with peer(broker, session_id, tech_token) as late:
            assert (await receive(late))["type"] == "welcome"
            assert (await receive(late))["type"] == "grant"
            assert (await receive(late))["permissions"] == ["view", "control"]


async def test_a_join_page_signals_with_its_host_token_as_a_subprotocol_and_consents_as_browser(broker, admin) -> None:
    joined = joined_session(broker, admin)
    session_id = joined["session_id"]
    async with peer(broker, session_id, joined["host_token"], as_subprotocol=True) as page:
        assert page.subprotocol == "deskhand.bearer"  # a browser drops a socket whose server chose none
        assert (await receive(page))["role"] == "host"
        await receive_type(page, "grant")
        await page.send(json.dumps({"type": "consent", "permissions": ["view", "chat"], "source": "browser"}))
        await asyncio.sleep(0.5)
    audited = broker.sql("SELECT data FROM audit_events WHERE kind = 'consent.changed' AND session_id = ?", session_id)
    assert json.loads(audited[0][0]) == {"permissions": ["view", "chat"], "given_by": "browser"}
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with peer(broker, session_id, "dhh_not-a-token", as_subprotocol=True):
            pass
    assert refused.value.response.status_code == 401


async def test_consent_from_the_technician_or_with_bad_names_is_refused(broker, admin) -> None:
    joined = joined_session(broker, admin)
    session_id = joined["session_id"]
    async with peer(broker, session_id, joined["host_token"]) as host, peer(broker, session_id, broker.login()) as tech:
        await receive_type(tech, "grant")
        await tech.send(json.dumps({"type": "consent", "permissions": ["control"], "source": "window"}))
        error = await receive_type(tech, "error")
        assert error["code"] == "not_allowed" and "only the host" in error["message"]
        await host.send(json.dumps({"type": "consent", "permissions": ["root"], "source": "window"}))
        assert (await receive_type(host, "error"))["code"] == "invalid_message"
        await host.send(json.dumps({"type": "consent", "permissions": ["view"], "source": "telepathy"}))
        assert (await receive_type(host, "error"))["code"] == "invalid_message"
    assert broker.sql("SELECT consent FROM support_sessions WHERE id = ?", session_id) == [(None,)]


async def test_flag_consent_is_audited_as_such(broker, admin) -> None:
    joined = joined_session(broker, admin)
    async with peer(broker, joined["session_id"], joined["host_token"]) as host:
        await receive_type(host, "grant")
        await host.send(json.dumps({"type": "consent", "permissions": ["view"], "source": "flag"}))
        await asyncio.sleep(0.5)
    kinds = [k for (k,) in broker.sql("SELECT kind FROM audit_events WHERE session_id = ?", joined["session_id"])]
    assert "consent.flag_used" in kinds


@pytest.mark.slow
async def test_grants_are_refreshed_before_they_expire(broker, admin) -> None:
    joined = joined_session(broker, admin)
    key = load_public_key(joined["broker_public_key"])
    async with peer(broker, joined["session_id"], joined["host_token"]) as host:
        first = SignedGrant.model_validate((await receive_type(host, "grant"))["grant"])
        second = SignedGrant.model_validate((await receive_type(host, "grant", timeout=GRANT_TTL / 3 + 5))["grant"])
    for signed in (first, second):
        grant = verify_grant(signed, key, session_id=joined["session_id"])
        assert grant.expires_at - grant.issued_at == GRANT_TTL
    assert second.grant.issued_at >= first.grant.issued_at + GRANT_TTL // 3 - 1
