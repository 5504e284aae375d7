"""Turning the broker's :class:`~protocol.ice.IceConfig` into an aiortc configuration."""

from __future__ import annotations

from aiortc import RTCConfiguration, RTCIceServer

from protocol.ice import IceConfig

from .aiortc_hooks import gather_loopback_only


def rtc_configuration(ice: IceConfig) -> RTCConfiguration:
    """The configuration for a new peer connection; applies ``loopback_only`` process-wide.

    An empty server list is passed explicitly: aiortc's default would contact a
    public STUN server.
    """
    gather_loopback_only(ice.loopback_only)
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=server.urls, username=server.username, credential=server.credential)
            for server in ice.servers
        ]
    )
