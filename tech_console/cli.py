"""``deskhand-console``: the technician's command line, for scripting and tests.

The entry point only: the global options, the commands from :mod:`tech_console.commands`
(one module per group) in the order ``--help`` lists them, and the dispatch to the one given.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from peer.transport import add_transport_options
from protocol.cli import configure_logging

from .commands import account, audit, files, remote, sessions, tickets
from .commands.command import Command
from .commands.context import DEFAULT_BROKER
from .commands.exit_codes import EXIT_USAGE, run_command

COMMANDS: tuple[Command, ...] = (
    account.LOGIN, account.LOGOUT, account.WHOAMI, account.PASSWD, account.TOTP,
    tickets.TICKET, tickets.SLA,
    sessions.SESSION, sessions.REQUESTS, sessions.PICKUP,
    remote.CONTROL,
    files.SEND, files.FETCH, files.TRANSFERS, files.CANCEL,
    audit.AUDIT,
    remote.SNAPSHOT,  # last, where it has always been listed
)
"""Every command, in the order ``deskhand-console --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: global options, then ``COMMAND`` with each command's own options."""
    parser = argparse.ArgumentParser(
        prog="deskhand-console",
        description="Work Deskhand tickets and sessions from the command line.",
    )
    parser.add_argument(
        "--broker",
        help=f"broker URL (default: DESKHAND_BROKER, else the one you signed in to, else {DEFAULT_BROKER})",
    )
    parser.add_argument(
        "--credentials", type=Path,
        default=Path(os.environ["DESKHAND_CONSOLE_CREDENTIALS"]) if os.environ.get("DESKHAND_CONSOLE_CREDENTIALS") else None,
        help="file where 'login' keeps the token (default: DESKHAND_CONSOLE_CREDENTIALS or "
        "~/.config/deskhand/console.json)",
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON for scripts")
    parser.add_argument("-v", "--verbose", action="store_true", help="log connection details to stderr")
    add_transport_options(parser)
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add(subcommands).set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``deskhand-console`` with ``argv`` (default: the process's arguments); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(logging.INFO if args.verbose else logging.WARNING)
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return EXIT_USAGE
    return run_command(run, args)


if __name__ == "__main__":
    sys.exit(main())
