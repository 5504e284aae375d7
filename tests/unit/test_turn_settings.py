"""TURN settings: read from the environment, and refused at start (naming the setting) when peers could not
use them or they would leak a long-term password."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from broker.cli import main
from broker.settings import Settings

SECRET = "s3cret+with/base64=chars_and.more-0123456789"


@pytest.fixture(autouse=True)
def _no_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("DESKHAND_")]:
        monkeypatch.delenv(name)


def refusal(**values: object) -> str:
    with pytest.raises(ValidationError) as refused:
        Settings(**values)
    return str(refused.value)


def test_no_turn_by_default() -> None:
    assert Settings().turn is None


def test_the_environment_configures_the_relay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESKHAND_TURN_URLS", " turns:relay.example.org:443 , turn:relay.example.org?transport=tcp,"
                       "turn:relay.example.org")
    monkeypatch.setenv("DESKHAND_TURN_SECRET", SECRET)
    monkeypatch.setenv("DESKHAND_TURN_REALM", "example.org")
    turn = Settings().turn
    assert turn is not None
    assert turn.ordered_urls() == ["turn:relay.example.org", "turn:relay.example.org?transport=tcp",
                                   "turns:relay.example.org:443"]
    assert turn.secret == SECRET.encode() and turn.realm == "example.org"
    assert SECRET not in repr(Settings())  # a settings dump in a log shows no secret
    # The shared configuration (the join answer's) has no relay in it.
    assert Settings().ice_config.servers == []


@pytest.mark.parametrize(("values", "setting", "words"), [
    ({"turn_urls": "http://relay.example.org"}, "turn_urls", "must start with turn: or turns:"),
    ({"turn_urls": "stun:relay.example.org"}, "turn_urls", "must start with turn: or turns:"),
    ({"turn_urls": "turn:relay.example.org,turn:"}, "turn_urls", "write turn:HOST"),
    ({"turn_urls": "turns:relay.example.org?transport=udp"}, "turn_urls", "turns: over UDP"),
    ({"turn_urls": ",".join(f"turn:r{i}.example.org" for i in range(9))}, "turn_urls", "at most 8"),
    ({"turn_secret": "x" * 31}, "turn_secret", "at least 32"),
    ({"turn_secret": "é" * 16}, "turn_secret", "may hold only"),  # 32 bytes, but not for turnserver.conf
    ({"turn_secret": "x" * 32 + "\nno-auth"}, "turn_secret", "may hold only"),
    ({"turn_secret": "x" * 32 + " # c"}, "turn_secret", "may hold only"),
    ({"turn_realm": "a b"}, "turn_realm", "should match pattern"),
])
def test_what_peers_cannot_use_is_refused_naming_the_setting(values: dict[str, str], setting: str, words: str) -> None:
    settings = {"turn_urls": "turn:relay.example.org", "turn_secret": "x" * 32, **values}
    with pytest.raises(ValidationError) as refused:
        Settings(**settings)
    errors = refused.value.errors()
    assert [e["loc"] for e in errors] == [(setting,)]
    assert words in errors[0]["msg"]


def test_urls_without_a_secret_and_a_secret_without_urls_are_refused() -> None:
    for values in ({"turn_urls": "turn:relay.example.org"}, {"turn_secret": "x" * 32},
                   {"turn_urls": " , ", "turn_secret": "x" * 32}):
        assert "DESKHAND_TURN_URLS and DESKHAND_TURN_SECRET go together" in refusal(**values)
    assert Settings(turn_urls="", turn_secret="").turn is None  # set but empty: unset


@pytest.mark.parametrize("url", ["turn:relay.example.org", "turns:relay.example.org:443", "turn:198.18.0.1?transport=tcp"])
def test_a_turn_url_in_the_ice_servers_is_refused(url: str) -> None:
    # Every peer would get that server's long-term password, and keep it.
    text = refusal(ice_servers=f'[{{"urls": ["stun:stun.example.org", "{url}"], "username": "u", "credential": "p"}}]')
    assert "ice_servers" in text and "DESKHAND_TURN_URLS" in text


def test_stun_servers_stay_configurable_beside_turn() -> None:
    settings = Settings(ice_servers='[{"urls": ["stun:stun.example.org"]}]', turn_urls="turn:relay.example.org",
                        turn_secret="x" * 32)
    assert [s.urls for s in settings.ice_config.servers] == [["stun:stun.example.org"]]
    assert "at most 15" in refusal(ice_servers="[" + ",".join(['{"urls": ["stun:s"]}'] * 16) + "]")


def test_the_broker_stops_at_start_naming_the_setting(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    serve = ["serve", "--data-dir", str(tmp_path / "data"), "--port", "0"]
    monkeypatch.setenv("DESKHAND_TURN_URLS", "turn:relay.example.org")
    assert main(serve) == 2
    assert "DESKHAND_TURN_URLS and DESKHAND_TURN_SECRET go together" in capsys.readouterr().err
    monkeypatch.setenv("DESKHAND_TURN_SECRET", "short")
    assert main(serve) == 2
    assert "deskhand-broker: DESKHAND_TURN_SECRET: " in capsys.readouterr().err
    monkeypatch.setenv("DESKHAND_TURN_SECRET", "x" * 32)
    monkeypatch.setenv("DESKHAND_TURN_URLS", "turns:relay.example.org?transport=udp")
    assert main(serve) == 2
    assert "deskhand-broker: DESKHAND_TURN_URLS: " in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
