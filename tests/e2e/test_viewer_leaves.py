"""The technician's viewer goes away and comes back, again and again: the end user's terminal stays clean.

A real host (``deskhand-host --ui terminal``) on Xvfb, a real broker, and as the
viewer a real ``deskhand-console control`` process that is killed while it
watches, as when the technician's laptop dies or the console is closed without
goodbye: the host hears of it from the broker (the viewer's signalling socket
closed) while its own side of the media is still up, and closes its peer
connection and screen track while aiortc waits for the next frame.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from tests.support.line_child import REPO
from tests.support.live_session import live_session

pytestmark = pytest.mark.slow

VISITS = 5


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    return {"DESKHAND_ICE_LOOPBACK": "true"}


async def watch_then_vanish(broker_url: str, session_id: str, token: str) -> None:
    """A ``deskhand-console control`` viewer that connects, sees the host's consent, and is killed."""
    viewer = subprocess.Popen(
        [sys.executable, "-m", "tech_console.cli", "--broker", broker_url, "control", session_id, "wait:60"],
        env={**os.environ, "DESKHAND_TOKEN": token}, cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert viewer.stderr is not None
        # Printed once the media and data channels are up and the host's consent is known.
        line = await asyncio.wait_for(asyncio.to_thread(viewer.stderr.readline), 30)
        assert line.startswith("Host allows: view"), line
        await asyncio.sleep(0.3)  # the screen is static: the host's track now waits for a change
    finally:
        viewer.kill()
        await asyncio.to_thread(viewer.wait)


async def test_a_viewer_vanishing_five_times_leaves_no_traceback_on_the_host(broker, xvfb) -> None:
    async with live_session(broker, xvfb.env, "--consent", "view", view=False) as live:
        await live.consented()
        token = broker.login()
        for _ in range(VISITS):
            await watch_then_vanish(broker.base_url, live.session_id, token)
    assert live.output.count("disconnected; waiting") == VISITS, live.output
    assert "ended by the technician: test over" in live.output
    assert "Traceback" not in live.errors, live.errors
    assert "Traceback" not in live.output, live.output
