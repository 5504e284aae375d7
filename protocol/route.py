"""How a session's media flows, in words: from the selected candidate pair's types.

One rule for every place that shows it (the console CLI, the host, the browser
console's badge mirrors it): both ends' own addresses is "direct", an address
seen through a NAT (srflx/prflx) on either side is "direct through NAT", and a
relay on either side is "relayed through TURN", naming this side's leg to the
relay when it is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
