"""The broker load benchmark runs every phase end to end at tiny sizes, so that it cannot rot.

Not a measurement: no figure is compared with a bound. What is checked is that each
phase did its work against a real broker (sockets held and answered, pairings through
every step with no error at two workers, on one broker and on two behind nginx, event
batches and segments stored), that the report prints it, and that the command line names
what is wrong before it starts anything.
"""

from __future__ import annotations

import pytest

from bench import broker_load
from bench.broker_load import parse_options, report, run
from bench.load_generator import PAIRING_STEPS

TINY = ["--quick", "--idle-sessions", "20", "--workers", "2", "--pairing-seconds", "2", "--writers", "2",
        "--write-seconds", "1", "--hold-seconds", "0.5", "--segment-picture", "still"]


def test_every_phase_does_its_work_and_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    options, write = parse_options(TINY)
    assert not write
    results = run(options)

    (idle,) = results.idle
    assert idle["held"] == idle["held_to_the_end"] == 20 and idle["setup_errors"] == {}, idle
    assert idle["probe"]["done"] == 10 and idle["probe"]["errors"] == {}, idle["probe"]
    (pairings,) = results.pairings
    assert pairings["errors"] == {} and pairings["cut_off"] == 0, pairings["errors"]
    assert pairings["done"] >= 1
    assert all(len(pairings["latencies"][step]) >= pairings["done"] for step in (*PAIRING_STEPS, "pairing"))
    assert [row["kind"] for row in results.writes] == ["events", "segments"]
    for row in results.writes:
        assert row["errors"] == {} and row["done"] >= 1, row

    report(options, results, write=False)
    printed = capsys.readouterr().out
    assert "| 20 of 20 (20) |" in printed
    assert "- errors at 2 workers: 0" in printed
    assert "- `audit verify` after 2 workers: passed" in printed
    assert "| event batches | 2 |" in printed and "| segments | 2 |" in printed
    assert "database: SQLite" in printed


def test_two_brokers_behind_nginx_pair_beside_one_and_are_reported(
        nginx_program: str, redis_server: object, postgres: object, capsys: pytest.CaptureFixture[str]) -> None:
    """``--brokers 2``: one broker, then two, behind nginx on PostgreSQL and Redis (the fixtures: installed or skip)."""
    options, _ = parse_options(["--brokers", "2", "--workers", "2", "--pairing-seconds", "2"])
    assert options.database == "postgresql" and options.phases == ("pairings",)
    results = run(options)

    assert [(row["workers"], row["brokers"]) for row in results.pairings] == [(2, 1), (2, 2)]
    for row in results.pairings:
        assert row["errors"] == {} and row["cut_off"] == 0 and row["done"] >= 1, row["errors"]
        assert row["trail"] == "passed", "the trail two brokers wrote verifies"
    report(options, results, write=False)
    printed = capsys.readouterr().out
    assert "- at 2 workers: 2 brokers pair " in printed
    assert "- errors at 2 workers, 2 brokers: 0" in printed


def test_quick_sizes_apply_and_flags_override_them() -> None:
    options, _ = parse_options(["--quick", "--workers", "3,7"])
    assert options.sizes.workers == (3, 7)
    assert options.sizes.idle == (200,) and options.sizes.writers == (4,)
    options, _ = parse_options(["--phases", "writes", "--setting", "DESKHAND_SIGNAL_MESSAGE_BURST=200"])
    assert options.phases == ("writes",) and options.settings == {"DESKHAND_SIGNAL_MESSAGE_BURST": "200"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--database-url", "postgresql://bench@127.0.0.1/bench"], "goes with --database postgresql"),
        (["--database", "postgresql", "--database-url", "mysql://u:secret@h/db"], "must be a postgresql:// URL"),
        (["--workers", "10,0"], "workers must be between 1 and 2000, not 0"),
        (["--writers", ","], "give at least one number"),
        (["--phases", "idle,naps"], "phases are among idle, pairings, writes"),
        (["--setting", "WORKERS=2"], "a setting is DESKHAND_NAME=VALUE"),
        (["--setting", "DESKHAND_DATABASE_URL=sqlite://"], "not the database URL"),
        (["--brokers", "2", "--database", "sqlite"], "--brokers runs on PostgreSQL"),
        (["--brokers", "2", "--phases", "idle"], "--brokers measures pairings only"),
    ],
)
def test_the_command_line_names_what_is_wrong(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_options(argv)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert message in error
    assert "secret" not in error


def test_more_idle_sockets_than_open_files_allow_are_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(broker_load, "raise_fd_limit", lambda: 5000)
    with pytest.raises(SystemExit):
        parse_options(["--idle-sessions", "1000,4500"])
    assert "4500 idle sockets need more open files than the limit allows (5000" in capsys.readouterr().err
    options, _ = parse_options(["--idle-sessions", "4000"])
    assert options.sizes.idle == (4000,)
