"""Asking for help without a code: queue a request, wait for a technician, answer the survey.

The broker's answer to a new request holds a secret; the host polls with it,
and once a technician picks the request up the same secret is the session's
host token (:meth:`protocol.api.SessionJoin.with_token`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pydantic import ValidationError

from protocol.api import API_PREFIX, JoinResponse
from protocol.requests import (
    POLL_WAIT_MAX,
    HelpRequestCreate,
    HelpRequestCreated,
    HelpRequestState,
    HelpRequestStatus,
    SurveyAnswer,
)

from .join import JoinRefused, call_broker, host_broker, machine_description

log = logging.getLogger(__name__)

POLL_TIMEOUT = POLL_WAIT_MAX + 15.0
"""HTTP timeout of one held poll: longer than the broker ever holds it."""
OUTAGE_LIMIT = 60.0
"""How long the broker may be unreachable while waiting before the host gives up."""


def help_request_body(
    *, name: str, summary: str, details: str = "", email: str | None = None, priority: str = "normal"
) -> HelpRequestCreate:
    """The request for this machine; raises ``ValidationError`` naming the field that is wrong."""
    machine_name, os_name, user_name = machine_description()
    return HelpRequestCreate(
        name=name, summary=summary, details=details, email=email or None, priority=priority,
        machine_name=machine_name, os=os_name, user_name=user_name,
    )


REQUEST_FIELDS = ("name", "summary", "details", "email", "priority")
"""The fields of a help request the user fills in (the rest describes the machine)."""
FORM_LABELS = {"name": "Your name", "summary": "What is wrong", "email": "Your email", "details": "Details"}
"""How those fields are called when one is refused in a prompt or form."""


def describe_problems(exc: ValidationError, labels: dict[str, str]) -> str:
    """One sentence per refused field, each named by ``labels`` (an option, a form label)."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{labels.get(field, field)}: {message}")
    return "; ".join(problems)


class HelpRequestClient:
    """One queued request, seen from the host. Use as ``async with HelpRequestClient(url) as r:``.

    Once created, the request's secret goes with every call as its bearer token.
    """

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url.rstrip("/")
        self._broker = host_broker(self.broker_url)
        self.created: HelpRequestCreated | None = None

    async def __aenter__(self) -> HelpRequestClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._broker.aclose()

    async def create(self, body: HelpRequestCreate) -> HelpRequestCreated:
        """Queue the request; raises :class:`JoinRefused` with a sentence for the user."""
        self.created = await call_broker(self._broker, "POST", API_PREFIX + "/requests", HelpRequestCreated, body=body)
        self._broker.token = self.created.request_token
        return self.created

    async def wait_for_technician(
        self, on_position: Callable[[int], None], *, outage_limit: float = OUTAGE_LIMIT
    ) -> JoinResponse:
        """Poll until a technician picks the request up; call ``on_position`` when the place changes.

        Raises :class:`JoinRefused` when the request was cancelled or expired, or the broker
        stayed unreachable for ``outage_limit`` seconds.
        """
        created = self._require()
        position: int | None = None
        unreachable_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            params = {"wait": POLL_WAIT_MAX, **({"position": position} if position is not None else {})}
            try:
                status = await call_broker(
                    self._broker, "GET", created.poll_path, HelpRequestStatus, params=params, timeout=POLL_TIMEOUT,
                )
            except JoinRefused as refused:
                if refused.status is not None:
                    raise
                # The broker restarting or the network blinking: keep the place, try again.
                unreachable_since = unreachable_since or loop.time()
                if loop.time() - unreachable_since > outage_limit:
                    raise
                log.info("waiting: %s", refused.message)
                await asyncio.sleep(2.0)
                continue
            unreachable_since = None
            if status.state is HelpRequestState.picked and status.join is not None:
                return status.join.with_token(created.request_token)
            if status.state is HelpRequestState.cancelled:
                raise JoinRefused("the help request was withdrawn")
            if status.state is HelpRequestState.expired:
                raise JoinRefused("the help request expired: this computer stopped waiting for too long; ask again")
            if status.position is not None and status.position != position:
                position = status.position
                on_position(position)

    async def cancel(self) -> None:
        """Withdraw the request (while it waits); best effort when leaving."""
        created = self._require()
        await call_broker(self._broker, "DELETE", created.poll_path, HelpRequestStatus)

    def _require(self) -> HelpRequestCreated:
        if self.created is None:
            raise RuntimeError("create the request first")
        return self.created


async def submit_survey(broker_url: str, session_id: str, host_token: str, answer: SurveyAnswer) -> None:
    """Send the end user's survey answer; raises :class:`JoinRefused` saying why not."""
    async with host_broker(broker_url, host_token) as broker:
        await call_broker(broker, "POST", f"{API_PREFIX}/sessions/{session_id}/survey", None, body=answer)
