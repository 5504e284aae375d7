"""The one place that reaches into aiortc/aioice internals.

aioice gathers host candidates from every interface except loopback, and has no
option to change that. Deskhand's tests (and one-machine demos) must keep all
traffic on 127.0.0.1, so :func:`gather_loopback_only` swaps aioice's address
lister for one that returns only 127.0.0.1. ``tests/unit/test_aiortc_hooks.py``
checks that the hooked names still exist in the pinned aiortc/aioice range.
"""

from __future__ import annotations

from collections.abc import Callable

import aioice.ice

LOOPBACK_ADDRESS = "127.0.0.1"

_original_get_host_addresses: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses


def _loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return [LOOPBACK_ADDRESS] if use_ipv4 else []


def gather_loopback_only(enabled: bool) -> None:
    """Make every ICE agent in this process gather only 127.0.0.1 (or undo that)."""
    aioice.ice.get_host_addresses = _loopback_addresses if enabled else _original_get_host_addresses


def loopback_only_active() -> bool:
    return aioice.ice.get_host_addresses is _loopback_addresses
