"""The test harness's own rules: CI never skips, test brokers never inherit settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import missing_dependency
from tests.support.broker import (
    DEFAULT_ENV,
    PASSWORD_LINE,
    URL_LINE,
    broker_environment,
)
from tests.support.coturn import CoturnMissing, CoturnServer, render_config
from tests.support.netns import NetnsUnavailable, NetTopology
from tests.support.xvfb import XvfbMissing, XvfbServer


def test_a_missing_dependency_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install xvfb.*CI=true"):
        missing_dependency("Xvfb is not installed: apt-get install xvfb")


@pytest.mark.parametrize("ci", [None, "", "false", "1"])
def test_a_missing_dependency_skips_elsewhere(monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="apt-get install xvfb"):
        missing_dependency("Xvfb is not installed: apt-get install xvfb")


def test_xvfb_missing_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(XvfbMissing, match="apt-get install xvfb"), XvfbServer.start():
        pass


def test_test_brokers_inherit_no_deskhand_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESKHAND_DATABASE_URL", "sqlite:////srv/production.sqlite3")
    monkeypatch.setenv("DESKHAND_CODE_TTL_SECONDS", "31")
    monkeypatch.setenv("SOME_OTHER_VARIABLE", "kept")
    env = broker_environment({"DESKHAND_ICE_LOOPBACK": "true", "DESKHAND_EXPIRY_SWEEP_SECONDS": "0.5"})
    assert "DESKHAND_DATABASE_URL" not in env and "DESKHAND_CODE_TTL_SECONDS" not in env
    assert env["SOME_OTHER_VARIABLE"] == "kept"
    assert env["DESKHAND_ICE_LOOPBACK"] == "true"
    assert env["DESKHAND_EXPIRY_SWEEP_SECONDS"] == "0.5"  # overrides beat the defaults
    assert broker_environment()["DESKHAND_EXPIRY_SWEEP_SECONDS"] == DEFAULT_ENV["DESKHAND_EXPIRY_SWEEP_SECONDS"]


def test_the_banner_lines_are_parsed() -> None:
    """The lines as broker/cli.py prints them (checked for real by every integration test)."""
    url = URL_LINE.match("  console:        http://127.0.0.1:41234/")
    assert url is not None and url.group(1) == "http://127.0.0.1:41234"
    password = PASSWORD_LINE.match("  password: kZ6krQLczx2fG7BDzJpm")
    assert password is not None and password.group(1) == "kZ6krQLczx2fG7BDzJpm"
    assert URL_LINE.match("  API docs:       http://127.0.0.1:41234/api/v1/docs") is None


def test_a_line_child_answers_ok_error_for_bad_input_and_stops_at_quit(monkeypatch, capsys) -> None:
    import io

    from tests.support.line_child import serve_lines

    def double(argument: str) -> str:
        return str(2 * int(argument))  # int() raises ValueError on a bad argument

    monkeypatch.setattr("sys.stdin", io.StringIO("double 21\ndouble x\nbogus\n\nquit\ndouble 1\n"))
    serve_lines("640 480", {"double": double})
    assert capsys.readouterr().out.splitlines() == [
        "ready 640 480",
        "ok 42",
        "error invalid literal for int() with base 10: 'x'",
        "error unknown command 'bogus'",
        "error unknown command ''",
    ]


def test_namespaces_without_ip_name_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(NetnsUnavailable, match="apt-get install iproute2"), NetTopology.create():
        pass


def test_coturn_missing_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CoturnMissing, match="apt-get install coturn"), CoturnServer.start(NetTopology("unused"), tmp_path):
        pass


def test_coturn_relays_only_between_allocations_on_its_own_address(tmp_path: Path) -> None:
    config = render_config(tmp_path, None).splitlines()
    assert "denied-peer-ip=198.18.0.0-198.19.255.255" in config  # the edges' own addresses and 198.18.9.0/24
    assert "allowed-peer-ip=198.18.0.1" in config  # "allowed" wins: the other peer's allocation
    assert "relay-ip=198.18.0.1" in config and "listening-ip=198.18.0.1" in config
    assert "use-auth-secret" in config and "no-tls" in config
    assert all(str(tmp_path) in line for line in config if line.startswith(("userdb=", "pidfile=", "log-file=")))
