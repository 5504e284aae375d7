"""The auditors' session list filters by time with or without a zone (a time without one is UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from tests.support.api import start_session


def test_since_and_until_take_times_with_and_without_a_zone(broker, admin) -> None:
    session_id = start_session(broker, admin)["session"]["id"]
    now = datetime.now(UTC)
    hour = timedelta(hours=1)

    def listed(**params: str) -> list[str]:
        response = broker.http.get("/audit/sessions", params=params, headers=admin)
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()]

    naive = "%Y-%m-%dT%H:%M:%S"
    assert session_id in listed(since=(now - hour).strftime(naive), until=(now + hour).strftime(naive))
    assert session_id in listed(since=(now - hour).isoformat(), until=(now + hour).isoformat())
    assert session_id not in listed(since=(now + hour).strftime(naive))
    assert session_id not in listed(until=(now - hour).isoformat())
    # The same moment in another zone.
    assert session_id in listed(since=(now - hour).astimezone(timezone(timedelta(hours=5))).isoformat())
    # A moment with no date in UTC is refused, not a server error.
    for name, moment in (("until", "0001-01-01T00:10:29+13:20"), ("since", "9999-12-31T23:10:29-13:20")):
        refused = broker.http.get("/audit/sessions", params={name: moment}, headers=admin)
        assert refused.status_code == 422 and refused.json()["message"].startswith(f"{name}: "), refused.text
