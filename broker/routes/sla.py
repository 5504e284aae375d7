"""SLA targets per priority."""

from __future__ import annotations

from fastapi import APIRouter

from broker.accounts.access import PolicyManager, SignedIn
from broker.audit import events as audit
from broker.deps import DB, Source, State
from broker.helpdesk.tickets import set_sla_targets, sla_targets
from broker.storage.models import SlaTarget
from protocol.api import Priority, SlaTargetOut, SlaTargetsOut, SlaTargetsUpdate

router = APIRouter(prefix="/sla", tags=["sla"])


def _targets_out(db: DB, state: State) -> SlaTargetsOut:
    order = [p.value for p in Priority]
    rows = sorted(sla_targets(db), key=lambda t: order.index(t.priority) if t.priority in order else len(order))
    settings = state.settings
    return SlaTargetsOut(
        targets=[SlaTargetOut(priority=Priority(t.priority), first_response_minutes=t.first_response_minutes,
                              resolution_minutes=t.resolution_minutes, business_hours=t.business_hours)
                 for t in rows if t.priority in order],
        business_hours=settings.business_hours, business_timezone=settings.business_timezone,
        warn_percent=settings.sla_warn_percent,
    )


@router.get("/targets", response_model=SlaTargetsOut, summary="SLA targets per priority and the business hours")
def show(db: DB, _user: SignedIn, state: State) -> SlaTargetsOut:
    return _targets_out(db, state)


@router.put(
    "/targets", response_model=SlaTargetsOut,
    summary="Set the SLA targets of some priorities (tickets opened before keep theirs)",
)
def replace(body: SlaTargetsUpdate, db: DB, user: PolicyManager, source: Source, state: State) -> SlaTargetsOut:
    set_sla_targets(db, [
        SlaTarget(priority=t.priority.value, first_response_minutes=t.first_response_minutes,
                  resolution_minutes=t.resolution_minutes, business_hours=t.business_hours)
        for t in body.targets
    ], actor=audit.user_actor(user), source=source)
    db.flush()
    return _targets_out(db, state)
