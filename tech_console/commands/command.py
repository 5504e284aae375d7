"""What a command group offers the entry point: each command's parser, and what runs it."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeAlias

from .context import Context

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""The ``COMMAND`` choice of the console's parser, where each command adds its own parser."""

Handler: TypeAlias = Callable[[Context], Coroutine[Any, Any, int]]
"""Runs a command with the parsed options; returns its exit code (:mod:`.exit_codes`)."""


@dataclass(frozen=True)
class Command:
    """One ``deskhand-console COMMAND``: ``add`` puts its parser (and its aliases) among ``Subcommands``."""

    add: Callable[[Subcommands], argparse.ArgumentParser]
    run: Handler
