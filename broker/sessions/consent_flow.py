"""The end user's consent as the broker applies it: a revocation at once, the rest at a bounded rate.

The host enforces consent itself the moment the user changes it. The broker
applies it to the session too (file transfers are checked against it, a
technician who connects later is told it), relays it to the technician and
audits each change. A host that sends consent frames without end (a bug, or a
host that is the attacker) must neither turn them into thousands of audit events
nor fill the technician's outbox. So, for each consent a host sends:

* the consent already applied (every reconnecting host sends it again) changes
  nothing and is not recorded again;
* one that takes a permission away is applied at once, always;
* one that takes nothing away (adds a permission, or says it was given another
  way) is applied at once while the host's budget of changes allows
  (``DESKHAND_CONSENT_CHANGE_BURST``, refilled at ``DESKHAND_CONSENT_CHANGES_PER_SECOND``);
  beyond that it is held until the budget allows, and a later consent replaces it.

The user's last choice therefore always takes effect, a revocation without delay;
a flood of frames becomes a handful of applied (and audited) changes. Pure: the
caller passes the time and does the applying (``broker/routes/signal.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.permissions import Permission
from protocol.rates import TokenBucket
from protocol.signalling import ConsentSource


@dataclass(frozen=True)
class ConsentState:
    """What the user allows and how they said so."""

    permissions: frozenset[Permission]
    source: ConsentSource


@dataclass(frozen=True)
class ConsentStep:
    """What to do now: apply ``apply`` (or nothing), and look again in ``held_for`` seconds if set."""

    apply: ConsentState | None = None
    held_for: float | None = None


@dataclass
class ConsentFlow:
    """One host connection's consent changes, judged as they arrive."""

    changes: TokenBucket
    applied: ConsentState | None
    """What the session holds now (from the database when the host connected)."""
    held: ConsentState | None = None
    """A change waiting for the budget; the next to apply unless a later one replaces it."""

    def offer(self, consent: ConsentState, now: float) -> ConsentStep:
        """The host sent ``consent`` at ``now``."""
        if consent == self.applied:
            self.held = None  # the user went back to what applies: nothing waits any more
            return ConsentStep()
        revokes = self.applied is not None and not consent.permissions >= self.applied.permissions
        if self.changes.take(now) or revokes or self.applied is None:
            return self._apply(consent)
        self.held = consent
        return ConsentStep(held_for=self.changes.wait(now))

    def due(self, now: float) -> ConsentStep:
        """Look at the held change again: apply it if the budget allows now."""
        if self.held is None:
            return ConsentStep()
        if self.changes.take(now):
            return self._apply(self.held)
        return ConsentStep(held_for=self.changes.wait(now))

    def release(self) -> ConsentState | None:
        """The change still held when the host leaves: it is applied regardless, being the user's last word."""
        held, self.held = self.held, None
        if held is not None:
            self.applied = held
        return held

    def _apply(self, consent: ConsentState) -> ConsentStep:
        self.applied, self.held = consent, None
        return ConsentStep(apply=consent)


def consent_state(permissions: list[Permission] | list[str], source: ConsentSource | str) -> ConsentState:
    """A :class:`ConsentState` from a message's or the database's names."""
    return ConsentState(frozenset(Permission(p) for p in permissions), ConsentSource(source))
