"""How a session's media flows, in words: from the selected candidate pair's types.

One rule for every place that shows it (the console CLI, the host, the browser
console's badge mirrors it): both ends' own addresses is "direct", an address
seen through a NAT (srflx/prflx) on either side is "direct through NAT", and a
relay on either side is "relayed through TURN", naming this side's leg to the
relay when it is known.

And how fast it flows when the link, not the screen, is the limit (:func:`link_line`,
from the host's :class:`~protocol.channel.LinkState`; ``live_view.js`` mirrors it). The
numbers are rounded with integer arithmetic only, so Python and JavaScript round alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .channel import LinkState
from .ice import CandidateType

TurnLeg = Literal["udp", "tcp", "tls"]
"""How a peer reaches its TURN relay (a ``turns:`` URL is TLS over TCP)."""


@dataclass(frozen=True)
class Route:
    """The selected candidate pair as seen from one side."""

    local_type: CandidateType
    remote_type: CandidateType
    turn_leg: TurnLeg | None = None
    """This side's leg to its relay, when ``local_type`` is relay."""

    @property
    def relayed(self) -> bool:
        return "relay" in (self.local_type, self.remote_type)

    def words(self) -> str:
        """"direct", "direct through NAT", "relayed through TURN over UDP" (TCP, TLS) or "relayed through TURN"."""
        if self.relayed:
            if self.local_type == "relay" and self.turn_leg is not None:
                return f"relayed through TURN over {self.turn_leg.upper()}"
            return "relayed through TURN"
        if self.local_type == "host" and self.remote_type == "host":
            return "direct"
        return "direct through NAT"


def route_line(route: Route | None, round_trip: float | None) -> str:
    """One status line: "media: relayed through TURN over TCP, round trip 42 ms"."""
    how = route.words() if route is not None else "not connected"
    if round_trip is None:
        return f"media: {how}"
    return f"media: {how}, round trip {round_trip * 1000:.0f} ms"


def link_line(state: LinkState | None) -> str | None:
    """"slow connection: 1.2 Mbit/s, 12 fps" while the host says the link limits the picture, else None."""
    if state is None or not state.limited:
        return None
    if state.kbps >= 1000:
        tenths = (state.kbps + 50) // 100
        rate = f"{tenths // 10}.{tenths % 10} Mbit/s"
    else:
        rate = f"{state.kbps} kbit/s"
    return f"slow connection: {rate}, {int(state.fps + 0.5)} fps"
