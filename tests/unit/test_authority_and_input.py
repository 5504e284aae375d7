"""Grant ∩ consent, and the input gate, with a recording backend (pure logic, no display)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.sessions.grants import sign_grant
from host_client.authority import Authority
from host_client.capture import Monitor
from host_client.keymap import KeyTarget, UnknownKey, resolve_key
from host_client.remote_input import MAX_QUEUED_INPUTS, RefusalThrottle, RemoteInput
from protocol.channel import Key, PointerButton, PointerMove, Refused, Text, Wheel
from protocol.grants import Grant, GrantRejected, SignedGrant
from protocol.permissions import Permission

KEY = Ed25519PrivateKey.generate()
MONITOR = Monitor(index=2, left=1920, top=0, width=1280, height=1024)


def signed(permissions: list[Permission], minutes: int = 15, session_id: str = "s") -> SignedGrant:
    now = datetime.now(UTC)
    return sign_grant(KEY, Grant(
        session_id=session_id, ticket_id=1, technician_id=1, technician_name="T", permissions=permissions,
        issued_at=int(now.timestamp()), expires_at=int((now + timedelta(minutes=minutes)).timestamp()),
    ))


def authority(grant: list[Permission] | None, consent: set[Permission] | None) -> Authority:
    a = Authority(KEY.public_key(), "s")
    if grant is not None:
        a.accept_grant(signed(grant))
    if consent is not None:
        a.set_consent(frozenset(consent))
    return a


def test_effective_permissions_are_the_intersection() -> None:
    a = authority([Permission.view, Permission.control], {Permission.control, Permission.chat})
    assert a.effective() == {Permission.control}
    assert a.refusal(Permission.control) is None
    assert a.refusal(Permission.chat) == "the broker's grant does not include chat"
    assert a.refusal(Permission.view) == "the user has not allowed view"


@pytest.mark.parametrize(
    ("grant", "consent", "reason"),
    [
        (None, None, "no grant from the broker yet"),
        ([Permission.control], None, "has not answered the consent prompt"),
    ],
)
def test_refusal_reasons_before_everything_is_in_place(grant, consent, reason) -> None:
    assert reason in authority(grant, consent).refusal(Permission.control)


def test_a_rejected_grant_keeps_the_previous_one_and_is_named_in_refusals() -> None:
    a = authority([Permission.control], {Permission.control})
    with pytest.raises(GrantRejected):
        a.accept_grant(signed([Permission.control], session_id="other"))
    assert a.allows(Permission.control)
    fresh = Authority(KEY.public_key(), "s")
    with pytest.raises(GrantRejected):
        fresh.accept_grant(sign_grant(Ed25519PrivateKey.generate(), signed([Permission.control]).grant))
    assert "refused the broker's grant: the grant's signature does not match" in fresh.refusal(Permission.control)


def test_an_expired_grant_allows_nothing() -> None:
    a = authority([Permission.control], {Permission.control})
    later = datetime.now(UTC) + timedelta(hours=1)
    assert a.effective(later) == frozenset()
    assert "expired" in a.refusal(Permission.control, later)


@pytest.mark.parametrize(
    ("code", "key", "target"),
    [("KeyA", "a", KeyTarget(char="a")), ("KeyA", "A", KeyTarget(char="a")), ("Digit3", "#", KeyTarget(char="3")),
     ("Enter", "Enter", KeyTarget(special="enter")), ("ShiftLeft", "Shift", KeyTarget(special="shift_l")),
     ("F12", "F12", KeyTarget(special="f12")), ("Slash", "/", KeyTarget(char="/")),
     ("Numpad7", "7", KeyTarget(char="7")), ("IntlRo", "ろ", KeyTarget(char="ろ"))],
)
def test_key_codes_map_to_physical_keys(code: str, key: str, target: KeyTarget) -> None:
    assert resolve_key(code, key) == target


def test_unknown_key_codes_are_refused() -> None:
    with pytest.raises(UnknownKey, match="Launch"):
        resolve_key("LaunchMail", "LaunchMail")


class RecordingBackend:
    """Records what would be injected (a fake for pure logic)."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def move(self, x: int, y: int) -> None:
        self.calls.append(("move", x, y))

    def button(self, name: str, down: bool) -> None:
        self.calls.append(("button", name, down))

    def scroll(self, dx: int, dy: int) -> None:
        self.calls.append(("scroll", dx, dy))

    def key(self, target: KeyTarget, down: bool) -> None:
        self.calls.append(("key", target.special or target.char, down))

    def type_text(self, text: str) -> None:
        self.calls.append(("text", text))

    def close(self) -> None:
        self.calls.append(("close",))


def gate(consent: set[Permission]) -> tuple[RemoteInput, RecordingBackend, list[Refused], Authority]:
    backend, reports = RecordingBackend(), []
    a = authority(list(Permission), consent)
    return RemoteInput(a, lambda: MONITOR, reports.append, backend_factory=lambda: backend), backend, reports, a


def drain(remote: RemoteInput) -> None:
    remote._worker.submit(lambda: None).result(5)


def test_allowed_input_is_mapped_to_the_monitor_and_applied_in_order() -> None:
    remote, backend, reports, _ = gate({Permission.control})
    assert remote.handle(PointerButton(seq=1, button="left", down=True, x=0.5, y=0.0))
    assert remote.handle(PointerButton(seq=2, button="left", down=False, x=1.0, y=1.0))
    assert remote.handle(Wheel(seq=3, dx=0, dy=2, x=0.0, y=0.5))
    assert remote.handle(Key(seq=4, code="KeyQ", key="q", down=True))
    assert remote.handle(Text(seq=5, text="hé"))
    assert remote.handle(PointerMove(seq=6, x=0.25, y=0.75))
    drain(remote)
    assert backend.calls == [
        ("move", 1920 + 640, 0), ("button", "left", True),
        ("move", 1920 + 1279, 1023), ("button", "left", False),
        ("move", 1920, 512), ("scroll", 0, 2),
        ("key", "q", True), ("text", "hé"), ("move", 1920 + 320, 767),
    ]
    assert remote.applied == 6 and reports == []


def test_refused_input_is_counted_reported_and_never_applied() -> None:
    remote, backend, reports, _ = gate({Permission.view})
    assert not remote.handle(Text(seq=9, text="rm -rf"))
    assert not remote.handle(Key(seq=10, code="Enter", down=True))
    drain(remote)
    assert backend.calls == []
    assert [(r.seq, r.what, r.reason, r.refused_total) for r in reports] == [
        (9, "text", "the user has not allowed control", 1),
        (10, "key", "the user has not allowed control", 2),
    ]


def test_revoking_control_releases_held_keys_and_buttons_and_stops_the_next_message() -> None:
    remote, backend, reports, a = gate({Permission.control})
    remote.handle(Key(seq=1, code="ShiftLeft", key="Shift", down=True))
    remote.handle(PointerButton(seq=2, button="right", down=True, x=0, y=0))
    remote.handle(Key(seq=3, code="KeyA", key="A", down=True))
    remote.handle(Key(seq=4, code="KeyA", key="A", down=False))
    a.set_consent(frozenset())
    remote.release_all()
    assert not remote.handle(Text(seq=5, text="x"))
    drain(remote)
    assert backend.calls[-2:] == [("key", "shift_l", False), ("button", "right", False)]
    assert ("text", "x") not in backend.calls
    assert reports[-1].seq == 5


def test_pointer_move_refusals_are_throttled_but_counted() -> None:
    throttle = RefusalThrottle(interval=0.2)
    now = time.monotonic()
    decisions = [throttle.count("pointer_move", "no", now + i * 0.01) for i in range(30)]
    assert decisions[0] and sum(decisions) == 2 and throttle.total == 30
    assert throttle.count("key", "no", now)


class HeldBackend(RecordingBackend):
    """A backend whose typing holds the worker: it says it started, then waits for ``proceed``."""

    def __init__(self, started: threading.Event, proceed: threading.Event) -> None:
        super().__init__()
        self.started, self.proceed = started, proceed

    def type_text(self, text: str) -> None:
        self.started.set()
        self.proceed.wait(5)


def test_input_beyond_what_the_worker_has_queued_is_refused_and_releasing_still_works() -> None:
    """A technician cannot queue minutes of input: beyond MAX_QUEUED_INPUTS waiting, input is refused."""
    remote, _backend, reports, _ = gate({Permission.control})
    started, proceed = threading.Event(), threading.Event()
    remote._backend = HeldBackend(started, proceed)  # the worker is held by the first text until proceed is set
    assert remote.handle(Text(seq=0, text="slow"))
    started.wait(5)
    accepted = [remote.handle(Key(seq=n, code="KeyA", key="a", down=n % 2 == 1)) for n in range(1, MAX_QUEUED_INPUTS + 10)]
    assert accepted.count(True) == MAX_QUEUED_INPUTS - 1 and not any(accepted[MAX_QUEUED_INPUTS - 1:])
    assert "still applying" in reports[-1].reason and reports[-1].seq == MAX_QUEUED_INPUTS + 9
    remote.release_all()  # never refused: it is how a stuck key comes up
    proceed.set()
    drain(remote)
    assert remote.handle(Key(seq=1000, code="KeyB", key="b", down=True))


def test_a_refusal_without_telling_is_counted_but_not_reported() -> None:
    remote, _backend, reports, _ = gate({Permission.control})
    remote.refuse(None, "rate_limited", "too fast", tell=False)
    remote.refuse(None, "rate_limited", "too fast")
    assert remote.refused == 2 and len(reports) == 1 and reports[0].refused_total == 2
