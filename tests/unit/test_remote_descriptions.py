"""A malformed offer or answer, or a bad trickled candidate, from the other side ends one
connection attempt, never the receiving peer (peer.signalling.apply_remote_description).

aiortc's SDP parser asserts on a short candidate line and raises on much else; a real
offer from a real aiortc peer connection is mangled in each way here and handed to another.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from aiortc import RTCPeerConnection

from peer import aiortc_hooks
from peer.ice import rtc_configuration
from peer.signalling import apply_remote_candidate, apply_remote_description
from protocol.ice import IceConfig
from protocol.signalling import Answer, IceCandidate, Offer


@pytest.fixture(autouse=True)
def _restore_hooks():
    yield
    aiortc_hooks.gather_loopback_only(False)
    aiortc_hooks.use_every_turn_url(False)


def _mangled(sdp: str) -> dict[str, str]:
    return {
        "blank": " ",
        "not sdp": "hello",
        "short candidate": re.sub(r"a=candidate:(\S+) .*", r"a=candidate:\1 1 udp", sdp, count=1),
        "non-numeric port": re.sub(r"m=application \d+", "m=application port", sdp, count=1),
        "no fingerprint": re.sub(r"a=fingerprint:.*\r\n", "", sdp),
        "no ice credentials": re.sub(r"a=ice-(ufrag|pwd):.*\r\n", "", sdp),
        "truncated": sdp[: len(sdp) // 3],
    }


def test_every_mangled_offer_is_refused_with_a_reason_and_the_answerer_lives_on() -> None:
    async def run() -> dict[str, str | None]:
        config = rtc_configuration(IceConfig(loopback_only=True))
        offerer = RTCPeerConnection(config)
        offerer.createDataChannel("control")
        await offerer.setLocalDescription(await offerer.createOffer())
        offer_sdp = offerer.localDescription.sdp
        assert "a=end-of-candidates" in offer_sdp  # aiortc gathers first: its own end-of-candidates is sent
        outcomes: dict[str, str | None] = {}
        try:
            for name, sdp in _mangled(offer_sdp).items():
                answerer = RTCPeerConnection(config)
                outcomes[name] = await apply_remote_description(answerer, Offer(sdp=sdp))
                await answerer.close()
            # ... and the good offer still works for the next peer connection.
            answerer = RTCPeerConnection(config)
            assert await apply_remote_description(answerer, Offer(sdp=offer_sdp)) is None
            await answerer.setLocalDescription(await answerer.createAnswer())
            # An answer that trickles (the browser's): no end-of-candidates in it, "" sent after the last.
            trickling = answerer.localDescription.sdp.replace("a=end-of-candidates\r\n", "")
            assert await apply_remote_description(offerer, Answer(sdp=trickling)) is None
            (agent,) = aiortc_hooks._ice_connections(offerer)
            assert not agent._remote_candidates_end  # until then aioice cannot tell that every pair failed
            await apply_remote_candidate(offerer, IceCandidate(candidate=""))
            assert agent._remote_candidates_end
            # Well formed, but naming no media section: aiortc raises; logged and dropped.
            await apply_remote_candidate(answerer, IceCandidate(candidate="candidate:1 1 udp 1 127.0.0.1 9 typ host"))
            for _ in range(100):
                if answerer.connectionState == "connected":
                    break
                await asyncio.sleep(0.05)
            assert answerer.connectionState == "connected"
            await answerer.close()
        finally:
            await offerer.close()
        return outcomes

    outcomes = asyncio.run(run())
    refused = {name: problem for name, problem in outcomes.items() if problem is not None}
    # Every mangling is refused with words, none escaped as an exception; aiortc takes an offer
    # without a fingerprint (its DTLS then fails, and the attempt with it: the 15 s deadline).
    expected = {"blank", "not sdp", "short candidate", "non-numeric port", "no ice credentials", "truncated"}
    assert set(refused) == expected, outcomes
    assert all(problem and problem.startswith("its offer is malformed") and len(problem) <= 300
               for problem in refused.values())
