"""The link emulator's judgement (tests/support/link_emulator.py): delay, jitter and loss per packet, tbf's arguments."""

from __future__ import annotations

import random

import pytest

from tests.support import link_emulator
from tests.support.link_emulator import ImpairedPath, Impairment, tbf_arguments


def test_an_unimpaired_path_passes_each_packet_at_once() -> None:
    path = ImpairedPath(Impairment(), random.Random(1))
    assert [path.departure(t) for t in (0.0, 0.5, 0.5, 2.0)] == [0.0, 0.5, 0.5, 2.0]


def test_delay_and_jitter_stay_in_bounds_and_never_reorder() -> None:
    path = ImpairedPath(Impairment(delay=0.075, jitter=0.02), random.Random(7))
    arrivals = [i * 0.001 for i in range(5000)]
    departures = [path.departure(t) for t in arrivals]
    assert all(d is not None for d in departures)
    leaving = [d for d in departures if d is not None]
    assert leaving == sorted(leaving)
    delays = [d - t for d, t in zip(leaving, arrivals, strict=True)]
    # Holding a packet behind the one ahead can only add delay, never take any away.
    assert min(delays) >= 0.075 - 0.02 - 1e-9
    assert max(delays) <= 0.075 + 0.02 + 1e-9
    # Packets 1 ms apart are often held behind one jittered later: the mean drifts towards delay + jitter.
    assert 0.075 < sum(delays) / len(delays) < 0.075 + 0.02


def test_sparse_packets_are_delayed_by_the_delay_on_average() -> None:
    path = ImpairedPath(Impairment(delay=0.075, jitter=0.02), random.Random(7))
    delays = [d - i * 0.1 for i in range(5000) if (d := path.departure(i * 0.1)) is not None]
    assert abs(sum(delays) / len(delays) - 0.075) < 0.002


def test_loss_drops_about_its_share_independently() -> None:
    path = ImpairedPath(Impairment(loss=0.02), random.Random(3))
    lost = sum(path.departure(i * 0.001) is None for i in range(50_000))
    assert 800 <= lost <= 1200  # 2 % of 50,000 is 1,000; the binomial's sd is about 31


@pytest.mark.parametrize(
    ("impairment", "message"),
    [
        ({"delay": -0.1}, "a delay is 0 to 10 s"),
        ({"delay": 0.01, "jitter": 0.02}, "jitter is 0 up to the delay"),
        ({"loss": 1.0}, "loss is a chance from 0 to below 1"),
    ],
)
def test_an_impossible_impairment_is_refused(impairment: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Impairment(**impairment)


def test_tbf_gets_a_rate_a_burst_of_a_few_packets_and_a_bounded_queue() -> None:
    assert tbf_arguments(2500) == ["tbf", "rate", "2500kbit", "burst", "3200", "latency", "200ms"]
    assert tbf_arguments(20_000, latency_ms=50) == ["tbf", "rate", "20000kbit", "burst", "10000", "latency", "50ms"]
    with pytest.raises(ValueError, match="8 kbit/s to 10 Gbit/s"):
        tbf_arguments(0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--listen", "198.18.0.1", "--upstream", "198.18.0.1:3478"], "an address is HOST:PORT, not '198.18.0.1'"),
        (["--listen", "198.18.0.1:3479", "--upstream", "198.18.0.1:70000"], "an address is HOST:PORT"),
        (["--listen", "198.18.0.1:3479", "--upstream", "198.18.0.1:3478", "--impaired", "198.18.1.0/33"], "198.18.1.0/33"),
        (["--listen", "198.18.0.1:3479", "--upstream", "198.18.0.1:3478", "--loss", "1.5"], "loss is a chance"),
    ],
)
def test_the_relay_names_what_is_wrong_on_its_command_line(argv: list[str], message: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        link_emulator.main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
