"""Benchmarks refuse bad arguments before they start anything (no Xvfb, no broker, no namespaces)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bench import first_picture, motion_search, relay_connect, relay_recovery, screen_stream
from bench.aiortc_receiver import aiortc_receiver
from bench.chromium_receiver import chromium_receiver


@pytest.mark.parametrize(
    ("main", "argv", "message"),
    [
        (screen_stream.main, ["--static-seconds", "0"], "between 1 and 3600"),
        (screen_stream.main, ["--phase-seconds", "soon"], "not a number of seconds"),
        (screen_stream.main, ["--phase-seconds", "nan"], "between 1 and 3600"),
        (screen_stream.main, ["--only", "x11vnc,teamviewer"], "unknown pipeline teamviewer"),
        (screen_stream.main, ["--only", ","], "(none given)"),
        (first_picture.main, ["--frames", "1"], "between 2 and 600"),
        (first_picture.main, ["--frames", "many"], "frames"),
        (motion_search.main, ["--fps", "0"], "between 1 and 60"),
        (motion_search.main, ["--seconds", "x"], "not a number"),
    ],
)
def test_the_command_line_names_what_is_wrong(
    main: Callable[[list[str]], int], argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


async def test_receivers_refuse_a_bad_screen_size_or_host_module() -> None:
    with pytest.raises(ValueError, match="screen size must be positive, not 0x1080"):
        async with aiortc_receiver(None, {}, 0, 1080):  # type: ignore[arg-type]  # no broker: refused first
            pass
    with pytest.raises(ValueError, match="screen size must be positive, not 1920x-1"):
        async with chromium_receiver(None, {}, 1920, -1):  # type: ignore[arg-type]  # no broker: refused first
            pass
    with pytest.raises(ValueError, match="dotted Python module name, not 'x;rm -rf'"):
        async with chromium_receiver(None, {}, 1920, 1080, host_module="x;rm -rf"):  # type: ignore[arg-type]  # no broker: refused first
            pass


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--paths", "udp,carrier-pigeon"], "paths are among direct, udp, tcp, tls, not carrier-pigeon"),
        (["--paths", ","], "not nothing"),
        (["--runs", "0"], "runs must be between 1 and 100, not 0"),
    ],
)
def test_relay_connect_names_what_is_wrong_on_its_command_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        relay_connect.parse_options(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_relay_connect_paths_default_to_all_in_order() -> None:
    assert relay_connect.parse_options([]).paths == ("direct", "udp", "tcp", "tls")
    assert relay_connect.parse_options(["--paths", "tls, udp"]).paths == ("tls", "udp")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cuts", "10,soon"], "cut lengths are seconds separated by commas, not '10,soon'"),
        (["--cuts", "2"], "each cut is between 5 and 120 s"),
        (["--cuts", "10,600"], "each cut is between 5 and 120 s"),
        (["--cuts", ","], "each cut is between 5 and 120 s"),
        (["--runs", "0"], "runs must be between 1 and 50, not 0"),
    ],
)
def test_relay_recovery_names_what_is_wrong_on_its_command_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        relay_recovery.parse_options(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_relay_recovery_cuts_default_to_the_issues_lengths() -> None:
    assert relay_recovery.parse_options([]).cuts == (10.0, 20.0, 30.0)
    assert relay_recovery.parse_options(["--cuts", "30, 5"]).cuts == (30.0, 5.0)
