"""The console's exit codes, and which failure ends a command with which.

0: done. 1: the broker, the session or the host refused or failed (the message says why),
or the command was interrupted. 2: the command line itself was wrong, before any request.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from protocol.transport import TransportError

from ..client import ConsoleError
from ..remote_view import ViewError
from .command import Handler
from .context import Context
from .output import say

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A command-line value the broker would refuse, caught before any request (exit status 2)."""


def run_command(run: Handler, args: argparse.Namespace) -> int:
    """Run a command with the parsed ``args``: its own exit code, or the one its failure calls for.

    The failure's message goes to stderr as one line after the program's name.
    """
    try:
        ctx = Context(args)
    except TransportError as exc:
        say(f"deskhand-console: {exc}", sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(run(ctx))
    except UsageError as exc:
        say(f"deskhand-console: {exc}", sys.stderr)
        return EXIT_USAGE
    except (ConsoleError, ViewError) as exc:
        say(f"deskhand-console: {exc}", sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED
