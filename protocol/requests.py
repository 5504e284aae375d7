"""Help requests without a code, and the satisfaction survey at a session's end.

An end user asks for help from the host client (``deskhand-host request``):
the broker opens a ticket and queues the request; the host long-polls it with
the secret it was given. A technician picks it up from the queue, which
starts a session whose host token is that same secret, so the waiting host
enters the session without anything read aloud, and still answers the
consent prompt. When a session ends, the host may answer a one-question
survey, which lands on the ticket.
"""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import EmailStr, Field, StrictInt

from .api import (
    API_PREFIX,
    HostDescription,
    HostInfo,
    MultiLine,
    Priority,
    Request,
    Response,
    SessionJoin,
    SessionOut,
    SingleLine,
    UserBrief,
)

POLL_WAIT_MAX = 25
"""The longest a host's poll is held open (seconds); its HTTP timeout must be longer."""
SURVEY_COMMENT_MAX = 2000
RATING_MIN, RATING_MAX = 1, 5


class HelpRequestState(str, enum.Enum):
    """``waiting`` in the queue; ``picked`` up by a technician (a session exists);
    ``cancelled`` by the user; ``expired`` because the host stopped polling."""

    waiting = "waiting"
    picked = "picked"
    cancelled = "cancelled"
    expired = "expired"


class HelpRequestCreate(HostDescription):
    """An end user's request for help, sent by the host client."""

    name: SingleLine = Field(min_length=1, max_length=120)
    """Who asks (the ticket's requester)."""
    summary: SingleLine = Field(min_length=1, max_length=200)
    """What is wrong, in one line (the ticket's subject)."""
    details: MultiLine = Field(default="", max_length=20_000)
    email: EmailStr | None = Field(default=None, max_length=254)
    """Where replies may reach the requester; optional."""
    priority: Priority = Priority.normal


def request_poll_path(request_id: str) -> str:
    """Where the host polls (GET) and cancels (DELETE) its request."""
    return f"{API_PREFIX}/requests/{request_id}"


class HelpRequestCreated(Response):
    """The answer to a new request: the only time its token is ever shown."""

    request_id: str
    ticket_id: int
    request_token: str
    """The host's secret: bearer for polling and cancelling, and its host token once picked up."""
    poll_path: str
    """Path to poll (GET) and to cancel (DELETE), relative to the broker URL."""
    position: int
    """Place in the queue, 1 = next."""


class HelpRequestStatus(Response):
    """What the host's poll says."""

    state: HelpRequestState
    position: int | None = None
    """While waiting: place in the queue, 1 = next."""
    join: SessionJoin | None = None
    """Once picked up: the session to enter (the request token is its host token)."""


class HelpRequestOut(Response):
    """A request as technicians see it in the queue."""

    id: str
    ticket_id: int
    state: HelpRequestState
    subject: str
    requester_name: str
    requester_email: str
    priority: Priority
    details: str
    host: HostInfo
    created_at: datetime
    last_seen_at: datetime
    position: int | None = None
    picked_by: UserBrief | None = None
    picked_at: datetime | None = None
    session_id: str | None = None


class HelpRequestPicked(Response):
    """The answer to picking a request up: the session, connected, no code involved."""

    session: SessionOut
    request: HelpRequestOut


class SurveyAnswer(Request):
    """The end user's answer to "How satisfied are you with this help?"."""

    rating: StrictInt = Field(ge=RATING_MIN, le=RATING_MAX)
    """1 (very unhappy) to 5 (very happy); a number, not a string or true."""
    comment: MultiLine = Field(default="", max_length=SURVEY_COMMENT_MAX)


__all__ = [
    "POLL_WAIT_MAX",
    "RATING_MAX",
    "RATING_MIN",
    "SURVEY_COMMENT_MAX",
    "HelpRequestCreate",
    "HelpRequestCreated",
    "HelpRequestOut",
    "HelpRequestPicked",
    "HelpRequestState",
    "HelpRequestStatus",
    "SurveyAnswer",
    "request_poll_path",
]
