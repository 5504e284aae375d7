"""Time ``GET /reports/kpis`` over HTTP on a real broker seeded with ``--tickets`` tickets.

    .venv/bin/python -m bench.kpi_query --tickets 8500 --repeat 7

Starts a broker on 127.0.0.1 in a temporary data directory, seeds it with
:mod:`bench.seed_helpdesk`, then asks for the last 30, 90 and 366 days ``--repeat``
times each and prints the median, fastest and slowest answer. Prints; never fails.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

from bench.seed_helpdesk import seed_database
from tests.support.api import bearer
from tests.support.broker import BrokerProcess


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kpi_query", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=8500, help="tickets to seed (default 8500, about 10,000 sessions)")
    parser.add_argument("--repeat", type=int, default=7, help="requests per range (default 7)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if not 1 <= args.tickets <= 1_000_000 or not 1 <= args.repeat <= 1000:
        parser.error("--tickets must be 1..1000000 and --repeat 1..1000")
    with BrokerProcess.start() as broker:
        summary = seed_database(f"sqlite:///{broker.db_path}", tickets=args.tickets, seed=args.seed, days=90)
        print("seeded:", "; ".join(summary.lines()))
        tickets, sessions, surveys = broker.sql(
            "SELECT (SELECT count(*) FROM tickets), (SELECT count(*) FROM support_sessions), "
            "(SELECT count(*) FROM session_surveys)")[0]
        print(f"database: {tickets} tickets, {sessions} sessions, {surveys} surveys")
        admin = bearer(broker.login())
        today = datetime.now(UTC).date()
        for days in (30, 90, 366):
            query = {"from": (today - timedelta(days=days - 1)).isoformat(), "to": today.isoformat()}
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                response = broker.http.get("/reports/kpis", params=query, headers=admin)
                times.append(time.perf_counter() - started)
                response.raise_for_status()
            print(f"last {days} days: median {statistics.median(times) * 1000:.0f} ms, "
                  f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms "
                  f"({response.json()['overall']['volume']} tickets created, {len(response.content)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
