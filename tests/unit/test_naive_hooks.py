"""The naive pipeline of the benchmarks runs with every Deskhand aiortc hook off (bench.naive_host)."""

from __future__ import annotations

import tech_console.remote_view as remote_view
from bench.naive_host import RECEIVER_HOOKS, check_hooks_off, receiver_hooks_off


def test_inside_receiver_hooks_off_a_remote_view_cannot_switch_its_hooks_on() -> None:
    called = [switch.__name__ for switch, _active in RECEIVER_HOOKS]
    assert all(hasattr(remote_view, name) for name in called)  # RemoteView switches each of them on
    try:
        with receiver_hooks_off():
            for name in called:
                getattr(remote_view, name)(True)  # what RemoteView does for every offer
            check_hooks_off(RECEIVER_HOOKS)
        for switch, active in RECEIVER_HOOKS:
            assert getattr(remote_view, switch.__name__) is switch
            switch(True)
            assert active()
    finally:
        for switch, _active in RECEIVER_HOOKS:
            switch(False)
