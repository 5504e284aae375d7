"""What every command starts from: the broker, the token and the credentials file, resolved once."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from peer.transport import trust_ca_file
from protocol.transport import checked_broker_url

from ..client import TechConsole
from ..credentials import default_credentials_path, load_credentials
from .output import Lines, print_json, say

DEFAULT_BROKER = "http://127.0.0.1:8000"


class Context:
    """Resolved options shared by the commands.

    The broker is ``--broker``, else ``DESKHAND_BROKER``, else the one signed in to, else
    :data:`DEFAULT_BROKER`; the token is ``DESKHAND_TOKEN``, else the saved one if it was
    issued by that broker.

    Raises :class:`TransportError` for a broker URL the transport policy refuses
    (checked here, before any command can connect) or an unusable ``--ca-file``.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.credentials_path: Path = args.credentials or default_credentials_path()
        saved = load_credentials(self.credentials_path)
        self.broker: str = checked_broker_url(
            args.broker or os.environ.get("DESKHAND_BROKER") or (saved.broker if saved else DEFAULT_BROKER),
            insecure=args.insecure,
        )
        trust_ca_file(args.ca_file)
        token = os.environ.get("DESKHAND_TOKEN")
        if token is None and saved is not None and saved.broker.rstrip("/") == self.broker:
            token = saved.token
        self.token = token

    def client(self) -> TechConsole:
        """A client of the broker with the token (use it as ``async with``)."""
        return TechConsole(self.broker, self.token)

    def emit(self, model: BaseModel | Sequence[BaseModel], lines: Lines) -> None:
        """``model`` as JSON with ``--json``, else ``lines`` (see :func:`~.output.say`)."""
        if self.args.json:
            print_json(model.model_dump(mode="json") if isinstance(model, BaseModel)
                       else [m.model_dump(mode="json") for m in model])
        else:
            say(lines)

    def emit_data(self, data: object, lines: Lines) -> None:
        """``data`` (plain values, not a model) as JSON with ``--json``, else ``lines`` (see :func:`~.output.say`)."""
        if self.args.json:
            print_json(data)
        else:
            say(lines)
