"""A host redeeming a support code."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session

from broker.accounts.access import PublicAccess
from broker.audit import events as audit
from broker.deps import Source, State
from broker.refusals import Busy
from broker.serializers import session_join
from broker.server.json_bodies import BoundedJsonRoute
from broker.sessions.codes import Verdict
from broker.sessions.support_sessions import CodeRejected, redeem_code
from broker.state import BrokerState
from broker.storage.db_slots import Lane
from broker.throttling.attempt_slots import SlotRefused
from broker.throttling.rate_gate import SUPPORT_CODES
from protocol.api import JoinRequest, JoinResponse

router = APIRouter(tags=["join"], dependencies=[PublicAccess], route_class=BoundedJsonRoute)

@router.post(
    "/join", response_model=JoinResponse,
    summary="Redeem a support code (host side); no login, the code is the credential",
    responses={404: {}, 409: {}, 410: {}, 429: {"description": "Too many failed codes; see Retry-After"},
               503: {"description": "Too many codes being checked at once; see Retry-After"}},
)
async def join(body: JoinRequest, state: State, source: Source) -> JoinResponse:
    # A code counts as a failure only once it is found wrong; the slots keep guessing in
    # bounds meanwhile (no more codes checked at once than may still fail), and an
    # attempt beyond them waits for one rather than being refused.
    try:
        async with state.code_failures.slot(source or "unknown") as slot:
            try:
                # Ahead of other database work: this check holds one of the few slots of its address.
                return await state.unit(lambda db: _redeem(db, state, body, source), lane=Lane.ahead)
            except CodeRejected as rejected:
                blocked_for = slot.failed()  # frees the slot before the audit: waiters go on
                # Audited in a transaction of its own: the redemption's was rolled back.
                verdict = rejected.verdict
                await state.unit(lambda db: _audit_failure(db, source, verdict, blocked_for), lane=Lane.surely)
                raise rejected.refusal() from None
    except SlotRefused as refused:
        if refused.blocked:
            raise SUPPORT_CODES.refusal(refused.retry_after) from None
        raise Busy(
            "busy", f"too many support codes are being checked at once; try again in {refused.retry_after} s",
            retry_after=refused.retry_after,
        ) from None


def _redeem(db: Session, state: BrokerState, body: JoinRequest, source: str | None) -> JoinResponse:
    session, host_token = redeem_code(db, body, code_key=state.keys.code_hash_key, source=source)
    return session_join(session, state.settings.ice_config, state.keys.public_key_b64).with_token(host_token)


def _audit_failure(db: Session, source: str | None, verdict: Verdict, blocked_for: int | None) -> None:
    """Audit a failed redemption and, when it tips the limit, the block it starts.

    Requests refused while blocked are not audited one by one: the block event
    covers them, and a flood of refusals cannot fill the trail.
    """
    audit.record(db, "code.redeem_failed", actor=audit.ANONYMOUS, source=source, reason=verdict.value)
    SUPPORT_CODES.audit_block(db, source, blocked_for)
