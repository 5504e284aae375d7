"""``deskhand-broker webhooks|inbound``: external helpdesk links on the broker's own machine.

The same rules and audit events as ``/webhooks`` and ``/inbound-sources`` of the
admin API (both call :mod:`broker.integrations.webhooks`); works on the data directory while
the broker runs, whose delivery worker picks up changes at its next round.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy.orm import Session

from broker.accounts import cli as admin_cli
from broker.accounts.cli import as_json, names
from broker.integrations import webhooks
from protocol.terminal_text import one_line
from protocol.webhooks import WEBHOOK_EVENTS, DeliveryState, InboundSourceCreate, WebhookCreate, WebhookUpdate

COMMANDS = ("webhooks", "inbound")


def add_parsers(commands: Any, data_dir_help: str) -> None:
    """Add the ``webhooks`` and ``inbound`` commands to ``deskhand-broker``."""
    common = admin_cli.common_options(data_dir_help)

    hooks = commands.add_parser("webhooks", help="outbound webhooks: endpoints, deliveries, replays")
    w = hooks.add_subparsers(dest="action", metavar="ACTION", required=True)
    w.add_parser("list", parents=[common], help="every endpoint (never its secret)")
    add = w.add_parser("add", parents=[common], help="add an endpoint; prints a generated secret once",
                       description="Events: " + ", ".join(WEBHOOK_EVENTS))
    add.add_argument("name")
    add.add_argument("url", help="http:// or https:// URL the events are POSTed to")
    add.add_argument("--events", type=names, default=[], help="comma-separated events (default: all)")
    add.add_argument("--secret-stdin", action="store_true", help="read the shared secret from stdin instead of generating one")
    add.add_argument("--disabled", action="store_true", help="add it disabled (nothing is queued for it until enabled)")
    change = w.add_parser("set", parents=[common], help="change an endpoint's URL or events, enable or disable it",
                          description="Events: " + ", ".join(WEBHOOK_EVENTS))
    change.add_argument("name")
    change.add_argument("--url")
    change.add_argument("--events", type=names, help="comma-separated events (replaces the current ones; empty: all)")
    change.add_argument("--enabled", choices=("yes", "no"))
    w.add_parser("remove", parents=[common], help="remove an endpoint and its queued deliveries").add_argument("name")
    w.add_parser("test", parents=[common], help="queue a webhook.test event for one endpoint").add_argument("name")
    deliveries = w.add_parser("deliveries", parents=[common], help="deliveries, newest first")
    deliveries.add_argument("--state", choices=[s.value for s in DeliveryState])
    deliveries.add_argument("--webhook", help="only this endpoint's")
    deliveries.add_argument("--limit", type=int, default=50)
    w.add_parser("replay", parents=[common], help="send a dead delivery again").add_argument("delivery_id")

    inbound = commands.add_parser("inbound", help="external systems allowed to create and update tickets")
    i = inbound.add_subparsers(dest="action", metavar="ACTION", required=True)
    i.add_parser("list", parents=[common], help="every inbound source")
    add = i.add_parser("add", parents=[common], help="allow a system; prints a generated secret once")
    add.add_argument("system", help="its name in POST /api/v1/inbound/SYSTEM and on tickets, e.g. jira")
    add.add_argument("--secret-stdin", action="store_true", help="read the shared secret from stdin instead of generating one")
    for action, text in (("enable", "accept its requests again"), ("disable", "refuse its requests"),
                         ("remove", "stop accepting its requests for good (its tickets keep their reference)")):
        i.add_parser(action, parents=[common], help=text).add_argument("system")


def run(args: argparse.Namespace, db_session: Callable[[], Any], master_key: Callable[[], bytes]) -> int:
    """Carry out one ``webhooks|inbound`` command; ``master_key()`` loads the broker's key when a secret is stored."""
    handlers = {name: partial(handler, master_key=master_key) for name, handler in _HANDLERS.items()}
    return admin_cli.run(args, db_session, handlers)


def _secret(args: argparse.Namespace) -> str | None:
    # Read from stdin, not an argument: an argument would be in the shell history and ps.
    return sys.stdin.readline().rstrip("\n") if args.secret_stdin else None


def _shown_once(secret: str | None) -> str:
    return f"\nShared secret (shown once; give it to the other side): {secret}" if secret else ""


def _webhooks(db: Session, args: argparse.Namespace, actor: str, *, master_key: Callable[[], bytes]) -> tuple[Any, str]:
    if args.action == "list":
        endpoints = [webhooks.webhook_out(db, e) for e in webhooks.list_webhooks(db)]
        lines = [f"{w.name:<20} {'on ' if w.enabled else 'off'} {w.url}  events: {', '.join(w.events) or 'all'}; "
                 f"{w.pending} pending, {w.dead} dead" for w in endpoints]
        return as_json(endpoints), "\n".join(lines) or "No webhooks."
    if args.action == "add":
        asked = WebhookCreate(name=args.name, url=args.url, events=args.events, secret=_secret(args),
                              enabled=not args.disabled)
        endpoint, generated = webhooks.create_webhook(db, asked, master_key(), actor=actor, source=None)
        added = webhooks.webhook_out(db, endpoint)
        return {"webhook": as_json(added), "secret": generated}, f"Webhook {added.name} added." + _shown_once(generated)
    if args.action == "deliveries":
        state = DeliveryState(args.state) if args.state else None
        found = webhooks.list_deliveries(db, state=state, webhook=args.webhook, limit=max(1, min(args.limit, 500)))
        lines = [f"{d.id}  {d.state.value:<9} {d.webhook:<16} {d.event:<22} attempts {d.attempts}"
                 + (f"  last: {one_line(d.last_error)}" if d.last_error else "") for d in found]
        return as_json(found), "\n".join(lines) or "No deliveries."
    if args.action == "replay":
        replayed = webhooks.replay_delivery(db, args.delivery_id, actor=actor, source=None)
        return as_json(replayed), f"Delivery {replayed.id} to {replayed.webhook} will be sent again."
    endpoint = webhooks.find_webhook(db, args.name)
    if args.action == "set":
        body = WebhookUpdate(url=args.url, events=args.events,
                             enabled=None if args.enabled is None else args.enabled == "yes")
        out = webhooks.webhook_out(db, webhooks.update_webhook(db, endpoint, body, actor=actor, source=None))
        return as_json(out), f"Webhook {out.name} changed."
    if args.action == "test":
        delivery = webhooks.send_test(db, endpoint, actor=actor, source=None)
        return {"delivery": delivery.id}, f"Test event queued for {endpoint.name} (delivery {delivery.id})."
    webhooks.delete_webhook(db, endpoint, actor=actor, source=None)
    return {"removed": args.name}, f"Webhook {args.name} removed."


def _inbound(db: Session, args: argparse.Namespace, actor: str, *, master_key: Callable[[], bytes]) -> tuple[Any, str]:
    if args.action == "list":
        found = [webhooks.inbound_source_out(s) for s in webhooks.list_inbound_sources(db)]
        lines = [f"{s.system:<20} {'enabled' if s.enabled else 'disabled'}" for s in found]
        return as_json(found), "\n".join(lines) or "No inbound sources."
    if args.action == "add":
        body = InboundSourceCreate(system=args.system, secret=_secret(args))
        row, generated = webhooks.create_inbound_source(db, body, master_key(), actor=actor, source=None)
        return ({"source": as_json(webhooks.inbound_source_out(row)), "secret": generated},
                f"Inbound source {row.system} added: it may POST to /api/v1/inbound/{row.system}." + _shown_once(generated))
    row = webhooks.find_inbound_source(db, args.system)
    if args.action in ("enable", "disable"):
        webhooks.set_inbound_source_enabled(db, row, args.action == "enable", actor=actor, source=None)
        return as_json(webhooks.inbound_source_out(row)), f"Inbound source {row.system} {args.action}d."
    webhooks.delete_inbound_source(db, row, actor=actor, source=None)
    return {"removed": args.system}, f"Inbound source {args.system} removed."


_HANDLERS: dict[str, Callable[..., tuple[Any, str]]] = {
    "webhooks": _webhooks, "inbound": _inbound,
}
