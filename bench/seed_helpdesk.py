"""Fill a broker's database with a realistic helpdesk history, for the dashboard and its benchmarks.

    .venv/bin/python -m bench.seed_helpdesk --data-dir /tmp/deskhand-demo --tickets 3000 --seed 1

Migrates the database first (so an empty data directory works), then writes in one
transaction: technicians (role ``technician``, names ``seed-tech-NN``) and teams
(``seed-*``), made through :mod:`broker.accounts.directory` like the admin API makes them
(validated and audited), and tickets over the last ``--days`` days with their
first responses, resolutions, reopens, support sessions (0 to 3 per ticket), session
reports, replies and satisfaction surveys, bulk-inserted through the models.

Every row is in a state the broker itself produces: done tickets have ``resolved_at``
(and a first response); closed ones ``closed_at`` after it; reopened ones a
``reopen_count``; a session a host joined has ``connected_at`` and, once over,
``ended_at`` and a session report; expired sessions were never joined; surveys answer
ended sessions. Seeded tickets carry no SLA timers (like tickets from before SLAs).
One audit event (``data.seeded``) says what was added, in place of an event per
ticket, session and survey (so no webhook hears about seeded tickets).

The same ``--seed`` gives the same data relative to the day it runs (times are
anchored on the current UTC hour). Run it while the broker is stopped, or while it
runs: SQLite takes the one write transaction like any other.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Required, TypedDict, Unpack

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from broker.accounts.directory import create_team, create_user
from broker.audit import events as audit
from broker.settings import Settings
from broker.storage.db import Database
from broker.storage.models import SessionSurvey, SupportSession, Team, Ticket, TicketComment, User
from protocol.admin import TeamCreate, UserCreate

ACTOR = "broker:seed"
PRIORITIES = (("low", 20), ("normal", 55), ("high", 20), ("urgent", 5))
CATEGORIES = (("hardware", 18), ("software", 25), ("network", 15), ("account", 15), ("printing", 10),
              ("email", 10), ("", 7))
# Median minutes to the first response and to resolution, per priority (lognormal around them).
FIRST_RESPONSE_MEDIAN = {"urgent": 10, "high": 40, "normal": 120, "low": 300}
RESOLUTION_MEDIAN = {"urgent": 180, "high": 480, "normal": 36 * 60, "low": 72 * 60}
SESSIONS_PER_TICKET = (25, 40, 25, 10)
"""Weights of 0, 1, 2 and 3 sessions on a ticket that got a response."""
RATINGS = (5, 7, 13, 35, 40)
"""Weights of the ratings 1 to 5."""
TEAMS = (("seed-desk", "First-line service desk"), ("seed-field", "Desk-side and hardware"),
         ("seed-network", "Network and accounts"))
FIRST_NAMES = ("Ana", "Ben", "Chloe", "Dev", "Emil", "Fatima", "Goran", "Hana", "Ivo", "Jun", "Kira", "Lars",
               "Mei", "Nils", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tove", "Umar", "Vera", "Wen", "Yusuf")
LAST_NAMES = ("Berg", "Costa", "Dahl", "Ek", "Fischer", "Garcia", "Holm", "Ito", "Jensen", "Kowalski", "Lind",
              "Moreau", "Novak", "Olsen", "Park", "Quist", "Rossi", "Silva", "Tan", "Usman", "Varga", "Weber")
SUBJECTS = {
    "hardware": ("Laptop does not wake from sleep", "Second monitor flickers", "Docking station not detected"),
    "software": ("Office crashes when saving", "Cannot install the accounting update", "App asks for a licence"),
    "network": ("VPN drops every few minutes", "No Wi-Fi in meeting room 3", "Shared drive is very slow"),
    "account": ("Locked out after password change", "Need access to the finance folder", "MFA prompt loops"),
    "printing": ("Printer on floor 2 prints blank pages", "Cannot add the new printer", "Scans never arrive"),
    "email": ("Mail stuck in outbox", "Calendar invites go missing", "Shared mailbox not visible"),
    "": ("Something is wrong with my computer", "Please call me back", "Help needed"),
}


@dataclass
class SeedSummary:
    """What :func:`seed` added."""

    technicians: int = 0
    teams: int = 0
    tickets: int = 0
    sessions: int = 0
    surveys: int = 0
    comments: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        statuses = ", ".join(f"{name} {count}" for name, count in sorted(self.statuses.items()))
        return [
            f"technicians: {self.technicians} (new), teams: {self.teams} (new)",
            f"tickets: {self.tickets} ({statuses})",
            f"sessions: {self.sessions}, surveys: {self.surveys}, comments: {self.comments}",
            f"took {self.seconds:.2f} s",
        ]


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def _minutes(rng: random.Random, median: float, spread: float = 0.9) -> timedelta:
    """A lognormal duration around ``median`` minutes (never under a minute)."""
    return timedelta(minutes=max(1.0, median * math.exp(rng.gauss(0, spread))))


def _hex(rng: random.Random) -> str:
    return hashlib.sha256(rng.getrandbits(256).to_bytes(32, "big")).hexdigest()


def _technicians(db: Session, count: int) -> tuple[list[User], dict[int, list[int]], int, int]:
    """The seed technicians and teams, created through the directory if missing; also how many were new."""
    new_teams = 0
    teams: list[Team] = []
    for name, description in TEAMS:
        found = db.scalars(select(Team).where(Team.name == name)).one_or_none()
        if found is None:
            found = create_team(db, TeamCreate(name=name, description=description), actor=ACTOR, source=None)
            new_teams += 1
        teams.append(found)
    users, new_users = [], 0
    for index in range(count):
        username = f"seed-tech-{index + 1:02d}"
        user = db.scalars(select(User).where(User.username == username)).unique().one_or_none()
        if user is None:
            # Every technician in one team, every third also in the next: some belong to two.
            member_of = [teams[index % len(teams)].name] + ([teams[(index + 1) % len(teams)].name] if index % 3 == 0 else [])
            display = f"{FIRST_NAMES[index % len(FIRST_NAMES)]} {LAST_NAMES[(index * 7) % len(LAST_NAMES)]}"
            user, _password = create_user(db, UserCreate(username=username, display_name=display, teams=member_of),
                                          actor=ACTOR, source=None)
            new_users += 1
        users.append(user)
    db.flush()
    teams_of = {u.id: [t.id for t in u.teams] for u in users}
    return users, teams_of, new_users, new_teams


def seed(db: Session, *, tickets: int, seed: int = 1, days: int = 90, technicians: int = 12,
         now: datetime | None = None) -> SeedSummary:
    """Add ``tickets`` tickets (with sessions, surveys, comments) created over the last ``days`` days."""
    started = time.perf_counter()
    rng = random.Random(seed)
    now = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    users, teams_of, new_users, new_teams = _technicians(db, technicians)
    summary = SeedSummary(technicians=new_users, teams=new_teams)
    next_ticket = (db.scalar(select(func.max(Ticket.id))) or 0) + 1
    people = [(f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}", "") for _ in range(max(20, tickets // 4))]
    people = [(name, f"{name.lower().replace(' ', '.')}{i}@example.org") for i, (name, _) in enumerate(people)]
    people_weights = [1 / (rank + 1) ** 0.8 for rank in range(len(people))]  # a few people ask a lot
    day_weights = [0.3 if (now - timedelta(days=d)).weekday() >= 5 else 1.0 for d in range(days)]

    ticket_rows, session_rows, survey_rows, comment_rows = [], [], [], []
    for number in range(tickets):
        ticket_id = next_ticket + number
        created = now
        while created >= now:  # today only up to now: draw again (rarely more than once)
            back = rng.choices(range(days), weights=day_weights)[0]
            hour = min(23.99, max(0.0, rng.gauss(12.5, 3.0)))  # mostly office hours (UTC)
            created = (now - timedelta(days=back)).replace(hour=0) + timedelta(hours=hour, seconds=rng.randrange(60))
        priority, category = _pick(rng, PRIORITIES), _pick(rng, CATEGORIES)
        origin = rng.choices(("console", "host", "inbound"), weights=(70, 20, 10))[0]
        name, email = rng.choices(people, weights=people_weights)[0]
        technician = rng.choice(users)
        # The lifecycle, from durations drawn per priority; whatever lies after now has not happened yet.
        responded = created + _minutes(rng, FIRST_RESPONSE_MEDIAN[priority])
        resolved = responded + _minutes(rng, RESOLUTION_MEDIAN[priority], 1.1)
        reopened = rng.random() < 0.1
        status, first_response_at, resolved_at, closed_at, reopen_count = "new", None, None, None, 0
        if responded < now:
            first_response_at = responded
            status = "pending" if rng.random() < 0.25 else "open"
        if first_response_at is not None and resolved < now:
            status, resolved_at = "resolved", resolved
            if reopened:
                # Resolved, reopened later, and (unless that is still going on) resolved again.
                reopen_count = 1
                again = resolved + _minutes(rng, 24 * 60)
                if again < now and rng.random() < 0.6:
                    resolved_at = again + _minutes(rng, RESOLUTION_MEDIAN[priority])
                    if resolved_at >= now:
                        status, resolved_at = "reopened", resolved
                else:
                    status = "reopened"
            if status == "resolved" and rng.random() < 0.45:
                closing = resolved_at + _minutes(rng, 3 * 24 * 60, 0.4)
                if closing < now:
                    status, closed_at = "closed", closing
        assignee_id: int | None = technician.id
        team_id = rng.choice(teams_of[technician.id]) if rng.random() < 0.5 else None
        if status == "new" and rng.random() < 0.6:
            assignee_id = None  # still in the queue
        elif rng.random() < 0.05:
            assignee_id, team_id = None, rng.choice(teams_of[technician.id])  # handed to a team only
        subject = rng.choice(SUBJECTS[category])
        ticket_rows.append({
            "id": ticket_id, "subject": subject, "description": f"{subject}. Reported by {name}.",
            "requester_name": name, "requester_email": "" if origin == "host" else email,
            "priority": priority, "status": status, "category": category,
            "created_by_id": technician.id if origin == "console" else None, "created_via": origin,
            "created_at": created, "updated_at": closed_at or resolved_at or first_response_at or created,
            "assignee_id": assignee_id, "assignee_team_id": team_id,
            "external_system": "jira" if origin == "inbound" else None,
            "external_key": f"HD-{seed}-{ticket_id}" if origin == "inbound" else None,
            "first_response_at": first_response_at, "resolved_at": resolved_at, "closed_at": closed_at,
            "reopen_count": reopen_count, "sla": {}, "sla_breached": False,
        })
        summary.statuses[status] += 1
        if first_response_at is None:
            continue
        # Support sessions: the first (if any) may be the first response itself.
        count = rng.choices(range(4), weights=SESSIONS_PER_TICKET)[0]
        by_session = count > 0 and rng.random() < 0.5
        reply = {"ticket_id": ticket_id, "at": first_response_at, "kind": "reply", "visibility": "public",
                 "author_id": technician.id, "author": f"user:{technician.username}", "session_id": None,
                 "body": "Thanks, we are looking into it."}
        if not by_session:
            comment_rows.append(reply)
        until = resolved_at or now
        for index in range(count):
            session_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            runner = technician if rng.random() < 0.9 else rng.choice(users)
            if index == 0 and by_session:
                connected: datetime | None = first_response_at
                opened = first_response_at - timedelta(seconds=rng.randrange(20, 300))
            else:
                opened = first_response_at + (until - first_response_at) * rng.random()
                connected = opened + timedelta(seconds=rng.randrange(20, 300)) if rng.random() < 0.88 else None
            row = {
                "id": session_id, "ticket_id": ticket_id, "technician_id": runner.id, "code_hash": _hex(rng),
                "code_expires_at": opened + timedelta(minutes=10), "created_at": opened,
                "host_token_hash": None, "connected_at": None, "ended_at": None, "ended_by": None, "end_reason": None,
                "host_machine_name": None, "host_os": None, "host_user_name": None, "host_address": None,
                "consent": None, "consent_source": None, "consent_at": None,
            }
            if connected is None or connected >= now:
                expired = opened + timedelta(minutes=10)
                if expired >= now:
                    continue  # a code still live: leave it out rather than seed a waiting session
                row.update(state="expired", ended_at=expired, ended_by="broker",
                           end_reason="the support code expired before a host joined")
                session_rows.append(row)
                continue
            ended = connected + _minutes(rng, 15, 0.7)
            row.update(host_token_hash=_hex(rng), connected_at=connected, host_machine_name=f"PC-{ticket_id:05d}",
                       host_os="Linux 6.8 x86_64", host_user_name=name.split()[0].lower(), host_address="10.0.0.7",
                       consent=["view", "control"], consent_source="window", consent_at=connected)
            if ended >= now:
                # Still going on: leave it out (no host is connected to a seeded broker); the
                # first response then came as a reply.
                if index == 0 and by_session:
                    comment_rows.append(reply)
                continue
            row.update(state="ended", ended_at=ended, ended_by="technician", end_reason="done")
            session_rows.append(row)
            comment_rows.append({"ticket_id": ticket_id, "at": ended, "kind": "session_report", "visibility": "internal",
                                 "author_id": None, "author": audit.BROKER, "session_id": session_id,
                                 "body": f"Remote session with {row['host_user_name']} on {row['host_machine_name']}: "
                                         f"{int((ended - connected).total_seconds() // 60)} min."})
            submitted = ended + timedelta(minutes=rng.randrange(1, 10))
            if rng.random() < 0.35 and submitted < now:
                rating = rng.choices(range(1, 6), weights=RATINGS)[0]
                survey_rows.append({"session_id": session_id, "ticket_id": ticket_id, "rating": rating,
                                    "comment": "", "submitted_at": submitted})
                comment_rows.append({"ticket_id": ticket_id, "at": submitted, "kind": "survey", "visibility": "internal",
                                     "author_id": None, "author": f"host:{session_id}", "session_id": session_id,
                                     "body": f"Satisfaction: {rating} of 5"})

    for model, rows in ((Ticket, ticket_rows), (SupportSession, session_rows), (SessionSurvey, survey_rows),
                        (TicketComment, comment_rows)):
        if rows:
            db.execute(insert(model), rows)
    summary.tickets, summary.sessions = len(ticket_rows), len(session_rows)
    summary.surveys, summary.comments = len(survey_rows), len(comment_rows)
    audit.record(db, "data.seeded", actor=ACTOR, seed=seed, days=days, tickets=summary.tickets,
                 sessions=summary.sessions, surveys=summary.surveys, comments=summary.comments)
    summary.seconds = time.perf_counter() - started
    return summary


class SeedOptions(TypedDict, total=False):
    """:func:`seed`'s keyword arguments (its defaults apply to those left out), as :func:`seed_database` passes them on."""

    tickets: Required[int]
    seed: int
    days: int
    technicians: int
    now: datetime | None


def seed_database(database_url: str, **options: Unpack[SeedOptions]) -> SeedSummary:
    """Migrate the database at ``database_url`` to the newest schema, then :func:`seed` it in one transaction."""
    database = Database(database_url)
    try:
        database.migrate()
        started = time.perf_counter()
        with database.session() as db:
            summary = seed(db, **options)
        summary.seconds = time.perf_counter() - started  # with the commit
        return summary
    finally:
        database.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.seed_helpdesk", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, help="the broker's data directory (default: DESKHAND_DATA_DIR or the usual one)")
    parser.add_argument("--tickets", type=int, default=3000, help="tickets to add (default 3000)")
    parser.add_argument("--days", type=int, default=90, help="spread them over this many days up to now (default 90)")
    parser.add_argument("--technicians", type=int, default=12, help="seed technicians to use, created if missing (default 12)")
    parser.add_argument("--seed", type=int, default=1, help="random seed: the same seed gives the same data (default 1)")
    args = parser.parse_args(argv)
    for name in ("tickets", "days", "technicians"):
        value, limit = getattr(args, name), {"tickets": 1_000_000, "days": 3650, "technicians": 500}[name]
        if not 1 <= value <= limit:
            parser.error(f"--{name} must be between 1 and {limit}, not {value}")
    settings = Settings(data_dir=args.data_dir) if args.data_dir else Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    summary = seed_database(settings.effective_database_url, tickets=args.tickets, seed=args.seed, days=args.days,
                            technicians=args.technicians)
    print(f"seeded {settings.effective_database_url}")
    print("\n".join(summary.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
