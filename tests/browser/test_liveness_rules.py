"""The browser console keeps the liveness rules the Python peers keep.

``tech_console/web/js/liveness.js`` is the technician's side of ``peer/liveness.py``
written again in JavaScript. Here its numbers must be Python's, and the same events (scripted
cases and seeded random runs) must give the same actions, state and next wake-up through
both, the JavaScript run in real Chromium.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from peer.liveness import (
    GIVE_UP_SECONDS,
    PING_SECONDS,
    SILENCE_SECONDS,
    GaveUp,
    Interrupted,
    Recovery,
    RecoveryAction,
    Restored,
    SendPing,
    SendPong,
)

pytestmark = pytest.mark.slow

Event = list[Any]
"""``["opened", now]``, ``["closed"]``, ``["stop"]``, ``["tick", now]``, ``["ping", seq]``, ``["pong", seq, now]``."""

RUN_IN_BROWSER = """async (scripts) => {
  const { Recovery, LIVENESS_SECONDS } = await import("/js/liveness.js");
  const runs = scripts.map((events) => {
    const recovery = new Recovery();
    return events.map(([what, a, b]) => {
      const actions =
        what === "opened" ? recovery.opened(a) : what === "closed" ? recovery.closed() : what === "stop" ? recovery.stop()
        : what === "tick" ? recovery.tick(a) : what === "ping" ? recovery.pingReceived(a) : recovery.pongReceived(a, b);
      return { actions, reconnecting: recovery.reconnecting, due: recovery.dueAt() };
    });
  });
  return { seconds: LIVENESS_SECONDS, runs };
}"""


def as_js(action: RecoveryAction) -> dict[str, Any]:
    """A Python action in the shape liveness.js gives it."""
    if isinstance(action, SendPing):
        return {"type": "send_ping", "seq": action.seq}
    if isinstance(action, SendPong):
        return {"type": "send_pong", "seq": action.seq}
    if isinstance(action, Interrupted):
        return {"type": "interrupted", "silentSeconds": action.silent_seconds}
    if isinstance(action, Restored):
        assert action.attempts == 0  # the technician's side makes no offers
        return {"type": "restored", "silentSeconds": action.silent_seconds}
    if isinstance(action, GaveUp):
        return {"type": "gave_up", "seconds": action.seconds}
    raise AssertionError(f"the technician's side never does {action!r}")


def run_in_python(events: list[Event]) -> list[dict[str, Any]]:
    recovery = Recovery(offerer=False)
    steps = []
    for what, *args in events:
        if what == "opened":
            actions = recovery.opened(args[0])
        elif what == "closed":
            actions = recovery.closed()
        elif what == "stop":
            actions = recovery.stop()
        elif what == "tick":
            actions = recovery.tick(args[0])
        elif what == "ping":
            actions = recovery.ping_received(args[0])
        else:
            actions = recovery.pong_received(args[0], args[1])
        steps.append({"actions": [as_js(a) for a in actions], "reconnecting": recovery.reconnecting, "due": recovery.due_at()})
    return steps


def ticks(start: float, end: float, step: float = 0.5) -> list[Event]:
    return [["tick", start + k * step] for k in range(int((end - start) / step) + 1)]


SCRIPTED: dict[str, list[Event]] = {
    "healthy: each ping answered": [["opened", 0.0], ["pong", 1, 0.05], ["ping", 1], *ticks(0.5, 2.0), ["pong", 2, 1.05],
                                    ["pong", 3, 2.05], *ticks(2.5, 6.0)],
    "silence, then an answer on the same channel": [["opened", 0.0], ["pong", 1, 0.1], *ticks(0.5, 5.0), ["pong", 4, 5.2],
                                                    *ticks(5.5, 7.0)],
    "the old channel's pong proves nothing about the new one": [
        ["opened", 0.0], ["pong", 1, 0.1], *ticks(0.5, 4.0), ["closed"], ["pong", 3, 4.1], *ticks(4.5, 6.0),
        ["opened", 6.2], ["pong", 2, 6.3], ["pong", 99, 6.4], ["pong", 8, 6.5], *ticks(7.0, 8.0)],
    "pings before a channel is open go unanswered": [["ping", 1], ["pong", 1, 0.0], ["opened", 1.0], ["ping", 2]],
    "giving up after a minute": [["opened", 0.0], *ticks(0.5, 70.0, 1.0), ["pong", 5, 70.5], ["opened", 71.0], *ticks(71.5, 75.0)],
    "stopped: no outcome": [["opened", 0.0], *ticks(0.5, 4.0), ["stop"], *ticks(4.5, 70.0, 5.0), ["pong", 3, 70.0]],
}


def random_run(seed: int) -> list[Event]:
    """Events in a plausible order with time going forward: the cases nobody thought of."""
    rng = random.Random(seed)
    now, events = 0.0, []
    for _ in range(120):
        now = round(now + rng.choice([0.1, 0.5, 1.0, 2.0, 4.0, 15.0]), 3)
        what = rng.choices(["tick", "pong", "ping", "opened", "closed", "stop"], [10, 5, 3, 1, 1, 0.3])[0]
        if what in ("tick", "opened"):
            events.append([what, now])
        elif what == "pong":
            events.append(["pong", rng.randint(0, 40), now])
        elif what == "ping":
            events.append(["ping", rng.randint(0, 40)])
        else:
            events.append([what])
    return events


async def test_the_browser_keeps_the_python_peers_liveness_rules(broker, console_page) -> None:
    page = await console_page(broker)
    scripts = {**SCRIPTED, **{f"random run {seed}": random_run(seed) for seed in range(40)}}
    said = await page.evaluate(RUN_IN_BROWSER, list(scripts.values()))
    assert said["seconds"] == {"ping": PING_SECONDS, "silence": SILENCE_SECONDS, "giveUp": GIVE_UP_SECONDS}
    for (name, events), in_browser in zip(scripts.items(), said["runs"], strict=True):
        assert in_browser == run_in_python(events), name
    # The scripted cases do reach every outcome (so the comparison is not of empty lists).
    seen = {a["type"] for name in SCRIPTED for step in run_in_python(SCRIPTED[name]) for a in step["actions"]}
    assert seen == {"send_ping", "send_pong", "interrupted", "restored", "gave_up"}
