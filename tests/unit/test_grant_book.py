"""The grant watcher's book: which connected sessions need a look, a new grant or a renewal (pure, times passed in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from broker.sessions.grant_watch import GrantBook
from broker.sessions.grants import same_terms
from protocol.grants import Grant
from protocol.permissions import Permission

RENEW_AFTER = 300.0


def grant(session_id: str = "s-1", permissions: tuple[Permission, ...] = (Permission.view,), issued_at: int = 1000,
          name: str = "Tess") -> Grant:
    return Grant(session_id=session_id, ticket_id=1, technician_id=2, technician_name=name,
                 permissions=list(permissions), issued_at=issued_at, expires_at=issued_at + 900)


def test_only_sessions_whose_grant_predates_a_change_are_looked_at() -> None:
    book = GrantBook()
    book.issued("s-1", grant("s-1"), as_of=4, now=0.0)
    book.issued("s-2", grant("s-2"), as_of=5, now=0.0)
    assert book.stale(5) == {"s-1": 4}
    assert book.stale(6) == {"s-1": 4, "s-2": 5}
    book.settle("s-1", looked_at=4, count=6, new=None, now=1.0)
    assert book.stale(6) == {"s-2": 5}


def test_a_change_while_a_session_is_looked_at_is_looked_at_again() -> None:
    book = GrantBook()
    book.issued("s-1", grant(), as_of=3, now=0.0)
    looked_at = book.stale(4)["s-1"]
    book.recheck("s-1")  # the host's consent was written meanwhile
    assert book.settle("s-1", looked_at, count=4, new=None, now=1.0)
    assert book.stale(4) == {"s-1": -1}


def test_a_recheck_makes_a_session_stale_without_any_counted_change() -> None:
    book = GrantBook()
    book.issued("s-1", grant(), as_of=0, now=0.0)
    assert book.stale(0) == {}
    book.recheck("s-1")
    assert book.stale(0) == {"s-1": -1}


def test_a_new_grant_is_held_and_restarts_the_renewal_clock() -> None:
    book = GrantBook()
    book.issued("s-1", grant(), as_of=0, now=0.0)
    assert book.due(RENEW_AFTER - 1, RENEW_AFTER) == []
    changed = grant(permissions=(Permission.view, Permission.control))
    assert book.settle("s-1", looked_at=0, count=1, new=changed, now=RENEW_AFTER)
    assert book.grant("s-1") == changed
    assert book.due(RENEW_AFTER + 1, RENEW_AFTER) == []


def test_a_forgotten_session_is_neither_looked_at_nor_renewed() -> None:
    book = GrantBook()
    book.issued("s-1", grant(), as_of=0, now=0.0)
    book.forget("s-1")
    assert not book.holds("s-1") and len(book) == 0
    assert book.stale(9) == {} and book.due(10 * RENEW_AFTER, RENEW_AFTER) == []
    assert not book.settle("s-1", looked_at=0, count=9, new=grant(), now=1.0)


def test_renewal_keeps_the_terms_and_moves_the_clock() -> None:
    book = GrantBook()
    book.issued("s-1", grant(), as_of=0, now=0.0)
    book.renewed("s-1", grant(issued_at=1300), now=RENEW_AFTER)
    assert book.due(RENEW_AFTER * 2 - 1, RENEW_AFTER) == []
    assert book.grant("s-1") == grant(issued_at=1300)


def test_terms_ignore_the_times_but_not_permissions_or_name() -> None:
    assert same_terms(grant(issued_at=1000), grant(issued_at=5000))
    assert not same_terms(grant(), grant(permissions=()))
    assert not same_terms(grant(), grant(name="Tess T."))


def test_a_sign_in_is_over_at_its_end_and_told_once() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    book = GrantBook()
    for sid in ("over", "later", "gone"):
        book.issued(sid, grant(sid), as_of=0, now=0.0)
    book.signed_in("later", now + timedelta(seconds=1))
    book.signed_in("over", now)
    book.signed_in("gone", now - timedelta(seconds=1))
    book.forget("gone")
    assert book.sign_ins_over(now) == ["over"]
    assert book.sign_ins_over(now) == []
    assert book.sign_ins_over(now + timedelta(seconds=1)) == ["later"]


def test_a_grant_is_due_once_per_issue() -> None:
    book = GrantBook()
    book.issued("s-1", grant(), as_of=0, now=0.0)
    book.issued("s-1", grant(), as_of=0, now=10.0)  # the host reconnected: the first issue no longer counts
    assert book.due(RENEW_AFTER + 5, RENEW_AFTER) == []
    assert book.due(RENEW_AFTER + 10, RENEW_AFTER) == ["s-1"]
    assert book.due(RENEW_AFTER + 11, RENEW_AFTER) == []


def test_sessions_connected_with_an_older_count_stay_stale_until_looked_at() -> None:
    book = GrantBook()
    book.issued("s-1", grant("s-1"), as_of=2, now=0.0)
    assert book.stale(3) == {"s-1": 2}
    book.issued("s-2", grant("s-2"), as_of=2, now=0.0)  # read the count before the change, connected after it
    assert book.stale(3) == {"s-1": 2, "s-2": 2}
    book.settle("s-1", 2, 3, None, 1.0)
    book.settle("s-2", 2, 3, None, 1.0)
    assert book.stale(3) == {}
