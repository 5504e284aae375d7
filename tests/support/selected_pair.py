"""Which candidate pair an aiortc peer connection uses: the one place tests read it.

aiortc's ``getStats()`` has no candidate-pair entries, so this reads its private state
(the ICE transport's aioice ``Connection`` and its nominated pair). When
``peer.aiortc_hooks`` offers the same, this function is the one line to switch.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection


def selected_candidate_types(pc: RTCPeerConnection | None) -> tuple[str, str] | None:
    """(local, remote) candidate types of the nominated pair, e.g. ``("relay", "relay")``; ``None`` before one is nominated."""
    if pc is None:
        return None
    for transceiver in pc.getTransceivers():
        ice_transport: Any = transceiver.receiver.transport.transport
        nominated = getattr(ice_transport._connection, "_nominated", {})
        if nominated:
            pair = next(iter(nominated.values()))
            return pair.local_candidate.type, pair.remote_candidate.type
    return None
