"""The console's argparse ``type=`` functions, and its ``--json`` after an action.

Each type checks a value as the broker will, before any request. A refused value is an
:class:`argparse.ArgumentTypeError` whose sentence says what is wanted; argparse prints it
after the option and exits with status 2.
"""

from __future__ import annotations

import argparse
import enum
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from protocol.admin import NAME_PATTERN
from protocol.api import ExternalRef, SingleLine, TicketUpdate
from protocol.cli import number_in_range
from protocol.totp import normalize_recovery_code, normalize_second_factor, normalize_totp_code

from ..actions import Action, ActionError, parse_action
from ..client import _first_problem

E = TypeVar("E", bound=enum.Enum)

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def session_id(text: str) -> str:
    """A session, transfer or request id: a UUID, in lower case."""
    value = text.strip().lower()
    if not _UUID.match(value):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a session id (a UUID such as 65b3bd95-6679-4604-be05-c826beae02b7)"
        )
    return value


def _code_type(normalize: Callable[[str], str]) -> Callable[[str], str]:
    """An argparse ``type=`` from one of :mod:`protocol.totp`'s normalizers (its sentence as the error)."""

    def parse(text: str) -> str:
        try:
            return normalize(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


totp_code = _code_type(normalize_totp_code)
recovery_code = _code_type(normalize_recovery_code)
second_factor = _code_type(normalize_second_factor)

seconds = number_in_range(float, 0, 86400, "seconds")
ticket_id = number_in_range(int, 1, 2**62 - 1, "ticket id")


def when(text: str) -> datetime:
    """A date or an ISO 8601 time; UTC unless it says otherwise."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: use YYYY-MM-DD or an ISO 8601 time such as 2026-11-30T14:00"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def choice(kind: type[E], what: str) -> Callable[[str], E]:
    """An argparse ``type=`` for one member of the enum ``kind``, naming the choices when refused."""

    def parse(text: str) -> E:
        try:
            return kind(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {_shown(text)}; choose from {', '.join(m.value for m in kind)}"
            ) from None

    parse.__name__ = what.replace(" ", "_")
    return parse


def choices(kind: type[E], what: str) -> Callable[[str], list[E]]:
    """An argparse ``type=`` for comma-separated members of ``kind`` (``new,open``)."""
    one = choice(kind, what)

    def parse(text: str) -> list[E]:
        items = [one(part) for part in text.split(",") if part.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"no {what} given; choose from {', '.join(m.value for m in kind)}")
        return items

    parse.__name__ = what.replace(" ", "_")
    return parse


def _validated(kind: Any, what: str) -> Callable[[str], Any]:
    """An argparse ``type=`` checking the text as the API will (a :mod:`protocol.api` type)."""
    adapter: TypeAdapter[Any] = TypeAdapter(kind)

    def parse(text: str) -> Any:
        try:
            return adapter.validate_python(text)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(f"{what} {_shown(text)}: {_first_problem(exc)}") from None

    parse.__name__ = what.replace(" ", "_")
    return parse


def _shown(text: str) -> str:
    """``text`` quoted for an error message, cut short if long."""
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _model_field(model: type[BaseModel], name: str, what: str) -> Callable[[str], Any]:
    """An argparse ``type=`` checking the text as field ``name`` of the request ``model`` (all else left out)."""

    def parse(text: str) -> Any:
        try:
            return getattr(model.model_validate({name: text}), name)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(f"{what} {_shown(text)}: {_first_problem(exc)}") from None

    parse.__name__ = what.replace(" ", "_")
    return parse


category = _model_field(TicketUpdate, "category", "category")
subject = _model_field(TicketUpdate, "subject", "subject")
search_text = _validated(Annotated[SingleLine, Field(min_length=1, max_length=200)], "search text")
target_minutes = number_in_range(int, 1, 366 * 24 * 60, "minutes")
_NAME = re.compile(NAME_PATTERN)


def _named(what: str) -> Callable[[str], str]:
    """An argparse ``type=`` for an account or team name (the broker's rule: lower case, 2-64 characters)."""

    def parse(text: str) -> str:
        if not _NAME.match(text):
            raise argparse.ArgumentTypeError(
                f"{_shown(text)} is not a {what}: use 2-64 lower-case letters, digits, dots, dashes or underscores"
            )
        return text

    parse.__name__ = what
    return parse


username = _named("username")
team = _named("team name")


def assignee_filter(text: str) -> str:
    """``me``, ``none`` or a username."""
    if text in ("me", "none"):
        return text
    try:
        return username(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (or me, or none)") from None


def external(text: str) -> ExternalRef:
    """``SYSTEM:KEY``, e.g. ``jira:HELP-42``: a ticket's reference in another helpdesk."""
    system, colon, key = text.partition(":")
    if not colon:
        raise argparse.ArgumentTypeError(
            f"{_shown(text)} is not SYSTEM:KEY: write the helpdesk's name, a colon and the ticket's key there, "
            "e.g. jira:HELP-42"
        )
    try:
        return ExternalRef(system=system.strip(), key=key.strip())
    except ValidationError as exc:
        error = exc.errors()[0]
        part = "system" if error["loc"] and error["loc"][0] == "system" else "key"
        problem = (
            "use lower-case letters, digits, - or _, starting with a letter (jira, zendesk-eu)"
            if error["type"] == "string_pattern_mismatch" else _first_problem(exc)
        )
        raise argparse.ArgumentTypeError(f"the {part} of {_shown(text)}: {problem}") from None


def json_option(command: argparse.ArgumentParser) -> None:
    """``--json`` after the action too (``ticket list --json``), as the global ``--json`` before it."""
    command.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help="print the result as JSON for scripts")


def scripted_action(text: str) -> Action:
    """One ``NAME:ARGUMENT`` of ``control`` (:mod:`tech_console.actions`)."""
    try:
        return parse_action(text)
    except ActionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None

