"""What the tests in separated networks share (the topology and coturn fixtures are in tests/conftest.py).

``relay_broker(net, env)`` is the broker of a relayed session: in the relay namespace on
198.18.0.1, with ``env`` from :meth:`~tests.support.coturn.CoturnServer.broker_env`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from tests.support.api import exported_bundle_verifies
from tests.support.audit_items import settled_report
from tests.support.broker import BrokerProcess
from tests.support.netns import PUBLIC_IP, NetTopology

CHECKED_CUT_SECONDS = 10.0
"""How long a link cut lasts in the recovery tests (what issue 18 checks)."""
BACK_WITHIN_SECONDS = 5.0
"""The picture returns this soon after the link does."""


def relay_broker(net: NetTopology, env: dict[str, str]) -> AbstractContextManager[BrokerProcess]:
    """The broker in the relay namespace on 198.18.0.1 with settings ``env``.

    Start it with the thread already in the tech namespace (:meth:`NetTopology.entered`):
    that is where its readiness check, and then the console, reach 198.18.0.1 from.
    """
    return BrokerProcess.start(env, host=PUBLIC_IP, wrap=net.wrap("relay"))


async def trail_verifies(broker: BrokerProcess, session_id: str, tmp_path: Path) -> list[str]:
    """The session's trail is whole and its exported bundle verifies; the host's media events, in order."""
    report = await settled_report(broker, session_id)
    assert report["integrity"]["ok"], report["integrity"]
    exported_bundle_verifies(broker, session_id, tmp_path)
    return [e["kind"] for e in report["events"] if e["kind"].startswith("media.")]
