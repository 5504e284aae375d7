"""Helpdesk commands: ``ticket`` (alias ``tickets``: open, list, show, update, comment, take) and ``sla``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from protocol.api import (
    CommentCreate,
    Priority,
    SlaOut,
    SlaTargetIn,
    SlaTargetsOut,
    SlaTimerOut,
    TicketCreate,
    TicketOut,
    TicketSummary,
    TicketUpdate,
)
from protocol.cli import number_in_range
from protocol.helpdesk import CommentKind, SlaFilter, TicketOrder, TicketStatus, Visibility
from protocol.terminal_text import multi_line, one_line

from . import arguments as arg
from .command import Command, Subcommands
from .context import Context
from .exit_codes import EXIT_OK, UsageError
from .session_text import describe_session


def _add_ticket(commands: Subcommands) -> argparse.ArgumentParser:
    ticket = commands.add_parser(
        "ticket", aliases=["tickets"], help="open, list, show, change, assign and comment on tickets",
        description="Statuses: " + ", ".join(s.value for s in TicketStatus) + "; each status allows only "
        "some moves ('ticket show' lists them). A public comment or a connected session is the first response.",
    )
    ticket_cmds = ticket.add_subparsers(dest="ticket_command", metavar="ACTION", required=True)
    create = ticket_cmds.add_parser("create", aliases=["new"], help="open a ticket")
    create.add_argument("--subject", required=True, help="one line saying what is wrong")
    create.add_argument("--requester-name", required=True, help="who asked for help")
    create.add_argument("--requester-email", required=True, help="their email address")
    create.add_argument(
        "--priority", choices=[p.value for p in Priority], default=Priority.normal.value,
        help="ticket priority (default normal)",
    )
    create.add_argument("--description", default="", help="longer description (optional)")
    create.add_argument("--category", type=arg.category, default="", help="a category such as Network (optional)")
    create.add_argument("--assignee", type=arg.username, metavar="USERNAME",
                        help="the technician who works it (someone other than you needs tickets.assign)")
    create.add_argument("--team", type=arg.team, metavar="TEAM", help="the team that works it (needs tickets.assign)")
    create.add_argument("--external", type=arg.external, metavar="SYSTEM:KEY",
                        help="the same ticket in another helpdesk, e.g. jira:HELP-42")
    arg.json_option(create)
    listing = ticket_cmds.add_parser("list", help="list tickets, newest first unless --order says otherwise")
    listing.add_argument("--status", type=arg.choices(TicketStatus, "status"), metavar="STATUS[,STATUS]",
                         help="only these statuses: " + ", ".join(s.value for s in TicketStatus))
    listing.add_argument("--priority", type=arg.choices(Priority, "priority"), metavar="PRIORITY[,PRIORITY]",
                         help="only these priorities: " + ", ".join(p.value for p in Priority))
    listing.add_argument("--assignee", type=arg.assignee_filter, metavar="me|none|USERNAME",
                         help="only yours (me), nobody's and no team's (none), or this technician's")
    listing.add_argument("--team", type=arg.team, metavar="TEAM", help="only this team's")
    listing.add_argument("--category", type=arg.category, help="only this category")
    listing.add_argument("--sla", type=arg.choice(SlaFilter, "SLA state"), metavar="breached|at_risk|on_track",
                         help="only tickets over a target, past the warning share of one, or neither")
    listing.add_argument("--search", type=arg.search_text, metavar="TEXT",
                         help="text in the subject, requester name or e-mail")
    listing.add_argument("--external", type=arg.external, metavar="SYSTEM:KEY", help="the ticket linked to this reference")
    listing.add_argument("--order", type=arg.choice(TicketOrder, "order"), metavar="due|newest|oldest|updated",
                         help="due: soonest SLA breach first; updated: last changed first (default newest)")
    listing.add_argument("--limit", type=number_in_range(int, 1, 500, "limit"), default=50, help="at most this many (1-500, default 50)")
    listing.add_argument("--offset", type=number_in_range(int, 0, 10_000_000, "offset"), default=0,
                         help="skip this many first (for paging)")
    arg.json_option(listing)
    show = ticket_cmds.add_parser("show", help="show a ticket with its SLA timers, sessions, comments and surveys")
    show.add_argument("ticket_id", type=arg.ticket_id, help="ticket number")
    arg.json_option(show)
    update = ticket_cmds.add_parser(
        "update", help="change a ticket's status, priority, assignment, category, reference or subject",
        description="Only what you give changes. A status must be one the ticket may move to "
        "('ticket show' lists them); the broker refuses others and names the allowed ones.",
    )
    update.add_argument("ticket_id", type=arg.ticket_id, help="ticket number")
    update.add_argument("--status", type=arg.choice(TicketStatus, "status"), metavar="STATUS",
                        help="move it: " + ", ".join(s.value for s in TicketStatus))
    update.add_argument("--priority", type=arg.choice(Priority, "priority"), metavar="PRIORITY",
                        help=", ".join(p.value for p in Priority) + " (the SLA timers keep the time spent)")
    person = update.add_mutually_exclusive_group()
    person.add_argument("--assign", type=arg.username, metavar="USERNAME",
                        help="give it to this technician (someone other than you needs tickets.assign)")
    person.add_argument("--unassign", action="store_true", help="take the technician off it")
    group = update.add_mutually_exclusive_group()
    group.add_argument("--team", type=arg.team, metavar="TEAM", help="give it to this team (needs tickets.assign)")
    group.add_argument("--no-team", action="store_true", help="take the team off it")
    update.add_argument("--category", type=arg.category, help="a category (an empty string clears it)")
    reference = update.add_mutually_exclusive_group()
    reference.add_argument("--external", type=arg.external, metavar="SYSTEM:KEY", help="link it to another helpdesk's ticket")
    reference.add_argument("--no-external", action="store_true", help="remove the link")
    update.add_argument("--subject", type=arg.subject, help="a new subject line")
    arg.json_option(update)
    comment = ticket_cmds.add_parser(
        "comment", help="add an internal note, or with --public a reply to the requester",
        description="A public reply is the ticket's first response (a new ticket becomes open).",
    )
    comment.add_argument("ticket_id", type=arg.ticket_id, help="ticket number")
    comment.add_argument("text", metavar="TEXT", help="the comment; - reads it from standard input")
    comment.add_argument("--public", action="store_true", help="a reply the requester sees (default: an internal note)")
    arg.json_option(comment)
    take = ticket_cmds.add_parser("take", help="assign a ticket to yourself")
    take.add_argument("ticket_id", type=arg.ticket_id, help="ticket number")
    arg.json_option(take)
    return ticket


def _add_sla(commands: Subcommands) -> argparse.ArgumentParser:
    sla = commands.add_parser("sla", help="show or set the SLA targets per priority")
    sla_cmds = sla.add_subparsers(dest="sla_command", metavar="ACTION", required=True)
    arg.json_option(sla_cmds.add_parser("show", help="the targets, the business hours and the warning share"))
    sla_set = sla_cmds.add_parser(
        "set", help="set one priority's targets (needs policies.manage)",
        description="Tickets opened from now on get the new targets; open tickets keep theirs "
        "until their priority changes.",
    )
    sla_set.add_argument("priority", type=arg.choice(Priority, "priority"), metavar="PRIORITY",
                         help=", ".join(p.value for p in Priority))
    sla_set.add_argument("--first-response", type=arg.target_minutes, required=True, metavar="MIN",
                         help="minutes until the first response is due")
    sla_set.add_argument("--resolution", type=arg.target_minutes, required=True, metavar="MIN",
                         help="minutes until the resolution is due (not fewer than --first-response)")
    sla_set.add_argument("--business-hours", action="store_true",
                         help="count only the broker's business hours (default: every minute counts)")
    arg.json_option(sla_set)
    return sla


async def _ticket(ctx: Context) -> int:
    args = ctx.args
    action = "create" if args.ticket_command == "new" else args.ticket_command
    body = _ticket_request(args, action)  # checked before anything is sent
    async with ctx.client() as tc:
        if action == "create":
            ticket = await tc.create_ticket(body)
            ctx.emit(ticket, f"Ticket {ticket.id} opened: {ticket.subject} ({_summary(ticket)})")
        elif action == "list":
            found = await tc.list_tickets(
                status=args.status, priority=args.priority, assignee=args.assignee, team=args.team,
                category=args.category, sla=args.sla, q=args.search,
                external_system=args.external.system if args.external else None,
                external_key=args.external.key if args.external else None,
                order=args.order, limit=args.limit, offset=args.offset,
            )
            ctx.emit(found, _ticket_table(found, datetime.now(UTC)))
        elif action == "show":
            ticket = await tc.get_ticket(args.ticket_id)
            ctx.emit(ticket, _describe_ticket(ticket))
        elif action == "update":
            ticket = await tc.update_ticket(args.ticket_id, body)
            ctx.emit(ticket, f"Ticket {ticket.id} updated: {_summary(ticket)}")
        elif action == "comment":
            added = await tc.add_comment(args.ticket_id, body.body, public=body.visibility is Visibility.public)
            what = "Public reply" if added.visibility is Visibility.public else "Internal note"
            ctx.emit(added, f"{what} {added.id} added to ticket {args.ticket_id}.")
        else:
            me = await tc.me()
            ticket = await tc.update_ticket(args.ticket_id, assignee=me.username)
            ctx.emit(ticket, f"Ticket {ticket.id} is yours: {_summary(ticket)}")
    return EXIT_OK


R = TypeVar("R", bound=BaseModel)


def _request(model: type[R], flags: dict[str, str], **fields: Any) -> R:
    """``model(**fields)``, or :class:`UsageError` naming the option behind each refused field."""
    try:
        return model(**fields)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            flag = flags.get(name, "--" + name.replace("_", "-") if name else "")
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{flag}: {message}" if flag else message)
        raise UsageError("; ".join(problems)) from None


_UPDATE_OPTIONS = "--status, --priority, --assign/--unassign, --team/--no-team, --category, " \
    "--external/--no-external or --subject"


def _ticket_request(args: argparse.Namespace, action: str) -> Any:
    """The request body of a ticket action, validated; None for actions that send none."""
    if action == "create":
        return _request(
            TicketCreate, {},
            subject=args.subject, requester_name=args.requester_name, requester_email=args.requester_email,
            priority=Priority(args.priority), description=args.description, category=args.category,
            assignee=args.assignee, team=args.team, external=args.external,
        )
    if action == "update":
        fields: dict[str, Any] = {
            name: value for name, value in (
                ("status", args.status), ("priority", args.priority), ("assignee", args.assign),
                ("team", args.team), ("category", args.category), ("external", args.external),
                ("subject", args.subject),
            ) if value is not None
        }
        # Given as None, these clear the field; left out, they keep it.
        for name, cleared in (("assignee", args.unassign), ("team", args.no_team), ("external", args.no_external)):
            if cleared:
                fields[name] = None
        if not fields:
            raise UsageError(f"nothing to change: give {_UPDATE_OPTIONS}")
        return _request(TicketUpdate, {"assignee": "--assign"}, **fields)
    if action == "comment":
        # Piped text ends with a line end that is not part of the comment.
        text = sys.stdin.read().rstrip("\r\n") if args.text == "-" else args.text
        return _request(
            CommentCreate, {"body": "TEXT"},
            body=text, visibility=Visibility.public if args.public else Visibility.internal,
        )
    return None


def _summary(t: TicketSummary) -> str:
    """One line: status, priority, who works it, SLA."""
    sla = _sla_cell(t.sla, datetime.now(UTC))
    return f"{t.status.value}, {t.priority.value}, {_assigned(t) or 'nobody assigned'}, SLA {sla}"


def _assigned(t: TicketSummary) -> str:
    parts = ([t.assignee.username] if t.assignee else []) + ([f"team {t.team.name}"] if t.team else [])
    return ", ".join(parts)


def _ticket_table(tickets: list[TicketSummary], now: datetime) -> list[str]:
    if not tickets:
        return ["No tickets."]
    rows = [["ID", "STATUS", "PRIORITY", "SLA (UTC)", "ASSIGNED", "SESSIONS", "SUBJECT"]]
    rows.extend(
        [str(t.id), t.status.value, t.priority.value, _sla_cell(t.sla, now), _assigned(t) or "-",
         str(t.session_count), t.subject]
        for t in tickets
    )
    return _columns(rows, right={0, 5})


def _columns(rows: list[list[str]], right: Collection[int] = ()) -> list[str]:
    """Rows as aligned text lines (the last column unpadded); ``right``: columns aligned right.

    Cells are made printable first (:func:`one_line`), so that widths count what is shown."""
    rows = [[one_line(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell if i == len(row) - 1 else cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _sla_cell(sla: SlaOut | None, now: datetime) -> str:
    """What a ticket's SLA needs now, in a few words: breached, at risk 12 min left, due 14:05, paused, met."""
    if sla is None:
        return "-"
    if sla.breached:
        return "breached"
    timers = (sla.first_response, sla.resolution)
    dues = [t.due_at for t in timers if t.due_at is not None]
    if sla.at_risk and dues:
        return f"at risk {_span((min(dues) - now).total_seconds())} left"
    if dues:
        return f"due {_moment(min(dues), now)}"
    if any(t.state == "paused" for t in timers):
        return "paused"
    return "met"


def _span(seconds: float, *, up: bool = True) -> str:
    """A length of time to the minute (rounded up, or with ``up=False`` down): 12 min, 4 h 05 min, 3 d 2 h."""
    minutes = max(0, -(-int(seconds) // 60) if up else int(seconds) // 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _moment(at: datetime, now: datetime) -> str:
    """A UTC time, with the date only when it is not today."""
    at = at.astimezone(UTC)
    return f"{at:%H:%M}" if at.date() == now.astimezone(UTC).date() else f"{at:%Y-%m-%d %H:%M}"


def _describe_timer(name: str, t: SlaTimerOut, now: datetime) -> str:
    spent = f"{_span(t.spent_s, up=False)} of {_span(t.target_s)}"
    if t.state == "met":
        return f"{name} met" + (f" {_moment(t.met_at, now)} UTC" if t.met_at else "") + f" ({spent})"
    if t.state == "paused":
        return f"{name} paused ({spent} spent)"
    if t.state == "breached":
        return f"{name} BREACHED ({spent})"
    due = f", due {_moment(t.due_at, now)} UTC" if t.due_at else ""
    return f"{name} {t.state.replace('_', ' ')} ({spent} spent{due})"


async def _sla(ctx: Context) -> int:
    args = ctx.args
    target = None
    if args.sla_command == "set":
        if args.resolution < args.first_response:
            raise UsageError(f"--resolution ({args.resolution} min) must not be shorter than "
                             f"--first-response ({args.first_response} min)")
        target = _request(
            SlaTargetIn, {}, priority=args.priority, first_response_minutes=args.first_response,
            resolution_minutes=args.resolution, business_hours=args.business_hours,
        )
    async with ctx.client() as tc:
        targets = await (tc.set_sla_targets([target]) if target is not None else tc.sla_targets())
    ctx.emit(targets, _describe_targets(targets))
    return EXIT_OK


def _describe_targets(s: SlaTargetsOut) -> list[str]:
    rows = [["PRIORITY", "FIRST RESPONSE", "RESOLUTION", "COUNTS"]]
    rows.extend(
        [t.priority.value, _span(t.first_response_minutes * 60), _span(t.resolution_minutes * 60),
         "business hours" if t.business_hours else "every hour"]
        for t in s.targets
    )
    return [*_columns(rows), f"Business hours: {s.business_hours} ({s.business_timezone}); "
            f"a ticket is at risk after {s.warn_percent} % of a target."]


_COMMENT_KINDS = {CommentKind.note: "internal note", CommentKind.reply: "public reply"}
"""A technician's comments by name; the broker's (session report, survey, inbound) as visibility and kind."""


def _describe_ticket(t: TicketOut) -> list[str]:
    now = datetime.now(UTC)
    moves = ", ".join(s.value for s in t.allowed_statuses) or "nothing"
    lines = [
        f"Ticket {t.id}: {t.subject}",
        f"  status {t.status.value} (may become {moves}), priority {t.priority.value}"
        + (f", category {t.category}" if t.category else ""),
        f"  opened {t.created_at:%Y-%m-%d %H:%M} UTC by "
        + (t.created_by.username if t.created_by else f"the requester ({t.created_via.value})")
        + (f", reopened {t.reopen_count} times" if t.reopen_count else ""),
        f"  requester: {t.requester_name}" + (f" <{t.requester_email}>" if t.requester_email else ""),
        f"  assigned:  {_assigned(t) or 'nobody'}",
    ]
    if t.external:
        lines.append(f"  external:  {t.external.system}:{t.external.key}")
    if t.sla:
        calendar = "business hours" if t.sla.business_hours else "every hour counts"
        lines.append(f"  SLA ({calendar}): {_describe_timer('first response', t.sla.first_response, now)}; "
                     f"{_describe_timer('resolution', t.sla.resolution, now)}")
    if t.description:
        lines.extend(_indented(t.description, "  "))
    lines.append(f"  sessions: {len(t.sessions)}")
    lines.extend("  " + line for s in t.sessions for line in describe_session(s))
    lines.append(f"  comments: {len(t.comments)}")
    for c in t.comments:
        who = c.author_user.username if c.author_user else c.author
        kind = _COMMENT_KINDS.get(c.kind, f"{c.visibility.value} {c.kind.value.replace('_', ' ')}")
        lines.append(f"    {c.at:%Y-%m-%d %H:%M} UTC  {who}, {kind}:")
        lines.extend(_indented(c.body, "      "))
    for v in t.surveys:
        lines.append(f"  survey of session {v.session_id}: {v.rating}/5" + (f" \"{v.comment}\"" if v.comment else ""))
    return lines


def _indented(text: str, prefix: str) -> list[str]:
    """The lines of ``text`` (its own line breaks only: :func:`multi_line`), each after ``prefix``; blank ones empty.

    Tabs become spaces: a printed line shows a tab as an escape (:func:`~.output.say`)."""
    return [(prefix + line.expandtabs(4)).rstrip() for line in multi_line(text).split("\n")]


TICKET = Command(_add_ticket, _ticket)
SLA = Command(_add_sla, _sla)
