"""The aiortc/aioice internals that peer.aiortc_hooks relies on still exist and behave."""

from __future__ import annotations

import asyncio
import inspect

import aioice.ice
import pytest

from protocol.ice import IceConfig, IceServer
from peer import aiortc_hooks
from peer.ice import rtc_configuration


@pytest.fixture(autouse=True)
def _restore_hook():
    yield
    aiortc_hooks.gather_loopback_only(False)


def test_aioice_still_gathers_through_a_module_level_address_lister() -> None:
    assert callable(aioice.ice.get_host_addresses)
    assert list(inspect.signature(aioice.ice.get_host_addresses).parameters) == ["use_ipv4", "use_ipv6"]
    source = inspect.getsource(aioice.ice.Connection.gather_candidates)
    assert "get_host_addresses(" in source


def test_loopback_only_gathers_exactly_127_0_0_1() -> None:
    async def gather() -> list[str]:
        connection = aioice.ice.Connection(ice_controlling=True, components=1)
        try:
            await connection.gather_candidates()
            return [c.host for c in connection.local_candidates]
        finally:
            await connection.close()

    aiortc_hooks.gather_loopback_only(True)
    assert aiortc_hooks.loopback_only_active()
    assert asyncio.run(gather()) == ["127.0.0.1"]
    aiortc_hooks.gather_loopback_only(False)
    assert not aiortc_hooks.loopback_only_active()
    assert "127.0.0.1" not in asyncio.run(gather())


def test_rtc_configuration_passes_servers_and_applies_loopback() -> None:
    config = rtc_configuration(
        IceConfig(
            servers=[IceServer(urls=["turn:turn.example.org"], username="u", credential="p")],
            loopback_only=True,
        )
    )
    assert [s.urls for s in config.iceServers] == [["turn:turn.example.org"]]
    assert config.iceServers[0].username == "u"
    assert aiortc_hooks.loopback_only_active()


def test_empty_server_list_stays_empty_so_no_public_stun_is_contacted() -> None:
    assert rtc_configuration(IceConfig()).iceServers == []
