"""ICE configuration as the broker hands it to both peers, and the grammar of a trickled candidate."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_ALLOWED_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


class IceServer(BaseModel):
    """One STUN or TURN server, in the shape of the W3C ``RTCIceServer``."""

    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(min_length=1, max_length=8)
    username: str | None = Field(default=None, max_length=512)
    credential: str | None = Field(default=None, max_length=512)

    @field_validator("urls")
    @classmethod
    def _check_schemes(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(_ALLOWED_SCHEMES) or len(url) > 512:
                raise ValueError(
                    f"ICE server URL {url[:80]!r} must start with stun:, stuns:, turn: or turns:"
                )
        return urls


class IceConfig(BaseModel):
    """What a peer needs to gather candidates.

    ``loopback_only`` asks both peers to offer only a 127.0.0.1 host candidate,
    so that a session between two processes on one machine (the test suite, a
    demo) never leaves the loopback interface.
    """

    model_config = ConfigDict(extra="forbid")

    servers: list[IceServer] = Field(default_factory=list, max_length=16)
    loopback_only: bool = False


CandidateType = Literal["host", "srflx", "prflx", "relay"]
"""The kinds of ICE candidate (RFC 8445 5.1.1): a local address, one seen through a NAT by STUN,
one learnt from a check, and a TURN relay's address."""

CANDIDATE_TYPES: tuple[CandidateType, ...] = ("host", "srflx", "prflx", "relay")

_FOUNDATION = re.compile(r"^[A-Za-z0-9+/]{1,32}$")
_TOKEN = re.compile(r"^[\x21-\x7e]{1,255}$")
_MAX_PRIORITY = 2**32 - 1


def candidate_problem(text: str) -> str | None:
    """What is wrong with a trickled candidate line (RFC 8839 section 5.1), or None if it is well formed.

    ``text`` is the candidate attribute's value, with or without its ``candidate:``
    prefix. Checked here, before a peer's ICE stack parses it: aiortc's parser
    asserts on a short line and raises on a non-number, which would end the
    receiving peer's session.
    """
    if text.startswith("candidate:"):
        text = text[len("candidate:"):]
    bits = text.split()
    if len(bits) < 8:
        return "an ICE candidate needs at least 8 fields: foundation component transport priority address port typ type"
    foundation, component, transport, priority, address, port, typ, kind = bits[:8]
    if not _FOUNDATION.match(foundation):
        return "the candidate's foundation must be 1-32 letters, digits, + or /"
    if not component.isdigit() or not 1 <= int(component) <= 256:
        return "the candidate's component must be a number from 1 to 256"
    if transport.lower() not in ("udp", "tcp"):
        return "the candidate's transport must be udp or tcp"
    if not priority.isdigit() or not 1 <= int(priority) <= _MAX_PRIORITY:
        return "the candidate's priority must be a number from 1 to 4294967295"
    if not _TOKEN.match(address):
        return "the candidate's address must be an IP address or a host name"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        return "the candidate's port must be a number from 0 to 65535"
    if typ != "typ" or kind not in CANDIDATE_TYPES:
        return "the candidate must say 'typ' and one of host, srflx, prflx, relay"
    extensions = bits[8:]
    if len(extensions) % 2:
        return "the candidate's extensions must come in name-value pairs"
    for name, value in zip(extensions[::2], extensions[1::2], strict=True):
        if not _TOKEN.match(name) or not _TOKEN.match(value):
            return "the candidate's extensions must be printable names and values"
        if name == "rport" and (not value.isdigit() or int(value) > 65535):
            return "the candidate's rport must be a number from 0 to 65535"
    return None
