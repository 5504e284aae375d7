"""The browser console says what the Python console says about a connection.

The route words, the failure advice and the slow-link words are written twice (``protocol/route.py`` and
``peer/connect_watch.py`` in Python, ``live_view.js`` in the browser): each case here is
run through both, in real Chromium, and the words must be the same.
"""

from __future__ import annotations

import itertools

import pytest

from peer.connect_watch import failure_text, ice_failed_message
from protocol.channel import LinkState
from protocol.ice import CANDIDATE_TYPES
from protocol.route import Route, link_line
from protocol.signalling import IceFailed, TurnFailure
from tech_console.remote_view import OTHER_SIDE

pytestmark = pytest.mark.slow

RELAY_LEGS = [None, "udp", "tcp", "tls"]
LINKS = [LinkState(limited=limited, kbps=kbps, fps=fps)
         for limited in (True, False) for kbps in (0, 999, 1000, 1049, 1050, 1250, 19_950) for fps in (0.0, 4.5, 12.5, 29.97)]
FAILURES = [[], [TurnFailure(url="turn:198.18.0.1:3478?transport=udp", reason="the relay refused the credentials (wrong or expired)"),
                 TurnFailure(url="turns:relay.example:443?transport=tcp", reason="the relay is unreachable (no answer in time)")]]


async def test_route_words_and_failure_advice_match_the_python_consoles(broker, console_page) -> None:
    page = await console_page(broker)
    routes = [(local, remote, leg) for local, remote in itertools.product(CANDIDATE_TYPES, repeat=2)
              for leg in (RELAY_LEGS if local == "relay" else [None])]
    failures = [ice_failed_message(1, seconds, ["host", "relay"], ["host"], turn).model_dump()
                for turn in FAILURES for seconds in (15.0, 0.8, 14.96)]
    cases = [(failure, theirs) for failure in failures for theirs in (False, True)]
    links = [link.model_dump() for link in LINKS]
    said = await page.evaluate(
        """async ([routes, failures, links]) => {
            const view = await import("/js/live_view.js");
            return {
              kinds: view.CANDIDATE_TYPES,
              routes: routes.map(([local, remote, leg]) => view.routeWords(local, remote, leg === null ? undefined : leg)),
              failures: failures.map(([failure, theirs]) => view.failureAdvice(failure, theirs)),
              links: links.map((link) => view.linkWords(link)),
            };
        }""",
        [routes, cases, links],
    )
    assert said["kinds"] == list(CANDIDATE_TYPES)  # the order ice_failed lists them in
    assert said["routes"] == [Route(local, remote, leg).words() for local, remote, leg in routes]  # type: ignore[arg-type]
    assert said["failures"] == [failure_text(OTHER_SIDE, IceFailed.model_validate(failure), theirs=theirs)
                                for failure, theirs in cases]
    assert said["links"] == [link_line(link) for link in LINKS]
