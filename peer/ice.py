"""Turning the broker's :class:`~protocol.ice.IceConfig` into an aiortc configuration, and
watching a peer connection's attempt to connect."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer, RTCPeerConnection

from protocol.ice import IceConfig
from protocol.signalling import IceFailed

from .aiortc_hooks import (
    candidate_types,
    copy_stun_messages,
    gather_loopback_only,
    pipeline_turn_permissions,
    prompt_triggered_checks,
    quick_dtls_resends,
    quick_stun_retransmits,
    turn_failures,
    use_every_turn_url,
)
from .connect_watch import CONNECT_POLL_SECONDS, Attempt, ConnectDeadline, ice_failed_message

log = logging.getLogger(__name__)


def rtc_configuration(ice: IceConfig) -> RTCConfiguration:
    """The configuration for a new peer connection; applies ``loopback_only`` process-wide.

    An empty server list is passed explicitly: aiortc's default would contact a
    public STUN server. Every TURN URL is used, not only aiortc's first
    (:func:`~peer.aiortc_hooks.use_every_turn_url`), and a pair whose own check was lost is
    checked again as soon as the peer's check arrives on it, not at aioice's next retransmission
    (:func:`~peer.aiortc_hooks.prompt_triggered_checks`); the first check through a relay leaves
    right behind its ChannelBind, not a round trip later
    (:func:`~peer.aiortc_hooks.pipeline_turn_permissions`); an unanswered STUN request and a DTLS handshake
    flight nothing answered go again after a quarter of a second, not aioice's half second or OpenSSL's second
    (:func:`~peer.aiortc_hooks.quick_stun_retransmits`, :func:`~peer.aiortc_hooks.quick_dtls_resends`), and a
    check or a TURN request still unanswered after a hundredth of a second, and every check's answer, goes twice
    (:func:`~peer.aiortc_hooks.copy_stun_messages`): a lost one is made good without a retransmission.
    Video and data channels share one
    ICE transport (max-bundle): aiortc's default gives each its own, which gathers, allocates
    TURN relays and checks pairs twice over.
    """
    gather_loopback_only(ice.loopback_only)
    use_every_turn_url(True)
    prompt_triggered_checks(True)
    pipeline_turn_permissions(True)
    quick_stun_retransmits(True)
    quick_dtls_resends(True)
    copy_stun_messages(True)
    return RTCConfiguration(
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        iceServers=[
            RTCIceServer(urls=server.urls, username=server.username, credential=server.credential)
            for server in ice.servers
        ]
    )


async def watch_connection(pc: RTCPeerConnection, attempt: int, current: Callable[[], bool]) -> IceFailed | None:
    """Wait, from the moment the remote description was applied, until ``pc`` connects (None) or
    its attempt fails (:class:`~peer.connect_watch.ConnectDeadline`): then the ``ice_failed`` to
    send. None as well once ``current()`` says ``pc`` was replaced or closed by its owner."""
    deadline = ConnectDeadline(time.monotonic())
    while current():
        now = time.monotonic()
        standing = deadline.check(now, pc.connectionState)
        if standing is Attempt.connected:
            return None
        if standing is Attempt.failed:
            local, remote = candidate_types(pc)
            failed = ice_failed_message(attempt, deadline.waited(now), local, remote, turn_failures(pc))
            log.warning("media connection attempt %d failed after %.0f s (local candidates %s, remote %s)",
                        attempt, failed.seconds, failed.local_types or "none", failed.remote_types or "none")
            return failed
        await asyncio.sleep(CONNECT_POLL_SECONDS)
    return None
