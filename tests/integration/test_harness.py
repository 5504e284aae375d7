"""The broker harness itself: a broker that cannot start is reported with its output."""

from __future__ import annotations

import pytest

from tests.support.broker import BrokerProcess, BrokerStartError


def test_a_broker_that_refuses_its_settings_is_reported_with_its_output() -> None:
    with pytest.raises(BrokerStartError) as raised, BrokerProcess.start({"DESKHAND_LOG_LEVEL": "verbose"}):
        pass
    message = str(raised.value)
    assert "exited before printing" in message and "exit code 2" in message
    assert "DESKHAND_LOG_LEVEL: Value error, must be one of debug, info, warning, error" in message


def test_settings_of_the_developer_do_not_reach_a_test_broker(monkeypatch: pytest.MonkeyPatch, start_broker) -> None:
    monkeypatch.setenv("DESKHAND_LOG_LEVEL", "verbose")  # would stop any broker that saw it
    monkeypatch.setenv("DESKHAND_DATABASE_URL", "sqlite:////nonexistent/elsewhere.sqlite3")
    broker = start_broker(DESKHAND_LOG_LEVEL="warning")
    assert broker.login().startswith("dhu_")
    assert broker.db_path.exists()
    assert broker.sql("SELECT username FROM users") == [("admin",)]
    # warning level: uvicorn's start-up lines are gone, the banner still was read.
    assert not any("Application startup complete" in line for line in broker.output)
