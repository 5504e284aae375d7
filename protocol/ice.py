"""ICE configuration as the broker hands it to both peers."""

from __future__ import annotations

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
