"""The x11vnc receiver's pure parts: its command line, its readiness line and its input checks."""

from __future__ import annotations

import pytest

from bench.vnc_receiver import listening_port, vnc_receiver, x11vnc_command


def test_x11vnc_command_serves_only_this_machine_and_keeps_the_screen_size() -> None:
    command = x11vnc_command("/usr/bin/x11vnc", ":7", 5999)
    assert command[0] == "/usr/bin/x11vnc"
    assert command[command.index("-display") + 1] == ":7"
    assert command[command.index("-rfbport") + 1] == "5999"
    assert {"-localhost", "-noipv6", "-nopw", "-forever", "-shared", "-norc", "-noncache", "-threads"} <= set(command)
    # X DAMAGE stays on as in a real install; no client-side cache (it makes the framebuffer taller).
    assert "-noxdamage" not in command and "-ncache" not in command
    assert "-nothreads" in x11vnc_command("x11vnc", ":7", 5999, threads=False)
    # In a namespace of its own (the link sweep), x11vnc listens on that namespace's address only.
    elsewhere = x11vnc_command("x11vnc", ":7", 5999, listen="198.18.1.2")
    assert "-localhost" not in elsewhere and elsewhere[elsewhere.index("-listen") + 1] == "198.18.1.2"


def test_listening_port_reads_the_port_line() -> None:
    assert listening_port(b"The VNC desktop is:      localhost:99\nPORT=5999\n") == 5999
    assert listening_port(b"Xlib:  extension \"DPMS\" missing on display \":1\".\n") is None
    assert listening_port(b"SOME_PORT=5999\n") is None


@pytest.mark.parametrize(
    ("env", "encoding", "message"),
    [
        ({"DISPLAY": ":1"}, "tight", "encoding 'tight' is not one of raw, zlib"),
        ({}, "zlib", "display_env needs DISPLAY"),
        ({"DISPLAY": ":1; rm -rf /"}, "zlib", "display_env needs DISPLAY"),
    ],
)
async def test_vnc_receiver_refuses_bad_arguments_before_starting_anything(
    env: dict[str, str], encoding: str, message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        async with vnc_receiver(env, 1920, 1080, encoding=encoding):
            pass
