"""The one-question satisfaction survey the end user may answer when a session ends."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broker.audit import events as audit
from broker.clock import utcnow
from broker.helpdesk.tickets import add_comment, get_ticket
from broker.refusals import Conflict
from broker.storage.models import SessionSurvey, SupportSession
from protocol.api import SessionState, SurveyOut
from protocol.helpdesk import CommentKind, Visibility
from protocol.requests import RATING_MAX, SurveyAnswer

SURVEY_WINDOW = timedelta(hours=24)
"""How long after a session ended its host may still answer the survey."""


def survey_out(survey: SessionSurvey) -> SurveyOut:
    return SurveyOut(
        session_id=survey.session_id, rating=survey.rating, comment=survey.comment,
        submitted_at=survey.submitted_at,
    )


def submit_survey(db: Session, session: SupportSession, answer: SurveyAnswer, *, source: str | None) -> SessionSurvey:
    """Store the host's answer for the ended ``session`` and note it on the ticket, once.

    Raises :class:`~broker.refusals.Conflict` while the session is live or when it was answered already.
    """
    if session.state != SessionState.ended.value:
        raise Conflict("session_live", "the survey opens when the session has ended")
    if db.scalar(select(SessionSurvey.session_id).where(SessionSurvey.session_id == session.id)) is not None:
        raise Conflict("survey_answered", "this session's survey was answered already")
    actor = audit.host_actor(session.id)
    survey = SessionSurvey(
        session_id=session.id, ticket_id=session.ticket_id, rating=answer.rating,
        comment=answer.comment, submitted_at=utcnow(),
    )
    db.add(survey)
    try:
        db.flush()
    except IntegrityError:
        # A second answer raced this one past the check above; the first stays.
        raise Conflict("survey_answered", "this session's survey was answered already") from None
    ticket = get_ticket(db, session.ticket_id)
    assert ticket is not None
    body = f"Satisfaction survey: {answer.rating}/{RATING_MAX}"
    if answer.comment:
        body += f"\n\n{answer.comment}"
    add_comment(
        db, ticket, kind=CommentKind.survey, visibility=Visibility.internal, body=body,
        actor=actor, session_id=session.id, source=source,
    )
    audit.record(
        db, "survey.submitted", actor=actor, source=source, session_id=session.id,
        ticket_id=session.ticket_id, rating=answer.rating, commented=bool(answer.comment),
    )
    return survey
