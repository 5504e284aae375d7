"""Turning the broker's :class:`~protocol.ice.IceConfig` into an aiortc configuration."""

from __future__ import annotations

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer

from protocol.ice import IceConfig

from .aiortc_hooks import gather_loopback_only, use_every_turn_url


def rtc_configuration(ice: IceConfig) -> RTCConfiguration:
    """The configuration for a new peer connection; applies ``loopback_only`` process-wide.

    An empty server list is passed explicitly: aiortc's default would contact a
    public STUN server. Every TURN URL is used, not only aiortc's first
    (:func:`~peer.aiortc_hooks.use_every_turn_url`). Video and data channels share one
    ICE transport (max-bundle): aiortc's default gives each its own, which gathers, allocates
    TURN relays and checks pairs twice over.
    """
    gather_loopback_only(ice.loopback_only)
    use_every_turn_url(True)
    return RTCConfiguration(
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        iceServers=[
            RTCIceServer(urls=server.urls, username=server.username, credential=server.credential)
            for server in ice.servers
        ]
    )
