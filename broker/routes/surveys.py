"""The end user's satisfaction survey, answered by the host after its session ended."""

from __future__ import annotations

from fastapi import APIRouter

from broker.accounts.access import SessionPeerAccess
from broker.deps import DB, PeerToken, SessionId, Source
from broker.helpdesk.surveys import SURVEY_WINDOW, submit_survey, survey_out
from broker.refusals import Forbidden, Gone
from broker.server.json_bodies import BoundedJsonRoute
from broker.sessions.peers import identify_peer
from protocol.api import SurveyOut
from protocol.requests import SurveyAnswer
from protocol.signalling import Role

router = APIRouter(tags=["surveys"], dependencies=[SessionPeerAccess], route_class=BoundedJsonRoute)


@router.post(
    "/sessions/{session_id}/survey", response_model=SurveyOut, status_code=201,
    summary="The host answers the satisfaction survey, once, within a day after the session ended",
    responses={409: {"description": "The session is still live, or the survey was answered"}},
)
def answer(session_id: SessionId, body: SurveyAnswer, db: DB, token: PeerToken, source: Source) -> SurveyOut:
    try:
        peer = identify_peer(db, session_id, token, what="answer the survey", ended_grace=SURVEY_WINDOW)
    except Gone as refused:  # the one answer that says more here: for how long a survey stays open
        if refused.code != "session_over":
            raise
        hours = int(SURVEY_WINDOW.total_seconds() // 3600)
        raise Gone("session_over", f"the survey closes {hours} hours after the session ended") from None
    if peer.role is not Role.host:
        raise Forbidden("forbidden", "only the session's end user answers its survey")
    return survey_out(submit_survey(db, peer.session, body, source=source))
