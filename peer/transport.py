"""Which certificates the clients trust, and their ``--insecure`` and ``--ca-file`` options.

Every HTTPS and WSS connection the clients open (:mod:`peer.broker_client` and websockets alike)
uses :func:`tls_context`, the system's CA store plus the CA file given with
``--ca-file``. It is a process-wide setting on purpose, like ``SSL_CERT_FILE``: which
authorities a program trusts does not differ between its connections, and one shared
context saves every short-lived client the ~40 ms of loading a CA bundle. Which broker
URLs they may use at all is :mod:`protocol.transport`'s rule.
"""

from __future__ import annotations

import argparse
import os
import ssl
import threading
from pathlib import Path
from urllib.parse import urlsplit

from protocol.transport import TransportError

_lock = threading.Lock()
_ca_file: Path | None = None
_context: ssl.SSLContext | None = None


def load_tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A client context verifying certificates and host names: the system CAs plus ``ca_file``."""
    context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except FileNotFoundError:
            raise TransportError(
                f"CA file {ca_file} does not exist; give the PEM file of the CA that signed the broker's certificate") from None
        except PermissionError:
            raise TransportError(f"CA file {ca_file} is not readable; check its permissions") from None
        except IsADirectoryError:
            raise TransportError(f"CA file {ca_file} is a directory; give the PEM certificate file inside it") from None
        except ssl.SSLError as exc:
            raise TransportError(
                f"CA file {ca_file} holds no PEM certificate ({exc.reason or exc}); give the CA "
                "certificate that signed the broker's (for a self-signed broker, its certificate itself)"
            ) from None
    return context


def trust_ca_file(ca_file: Path | None) -> None:
    """Make every later client connection trust ``ca_file`` as well (None: the system CAs only).

    Loads the file at once, so a bad one is reported before anything connects.
    """
    global _ca_file, _context
    context = load_tls_context(ca_file)
    with _lock:
        _ca_file, _context = ca_file, context


def tls_context() -> ssl.SSLContext:
    """The context every HTTPS and WSS connection of this process uses."""
    global _context
    with _lock:
        if _context is None:
            _context = load_tls_context(_ca_file)
        return _context


def websocket_tls(url: str) -> ssl.SSLContext | None:
    """:func:`tls_context` for a ``wss://`` URL; None for ``ws://`` (websockets refuses a context there)."""
    return tls_context() if urlsplit(url).scheme == "wss" else None


def add_transport_options(parser: argparse.ArgumentParser) -> None:
    """``--insecure`` and ``--ca-file``, the same in both client programs (see :mod:`protocol.transport` and this module)."""
    parser.add_argument(
        "--insecure", action="store_true",
        help="allow plain http:// to a broker on another machine: tokens and the session then cross "
        "the network unencrypted, so only on a trusted lab network",
    )
    parser.add_argument(
        "--ca-file", type=ca_file, metavar="PATH", default=os.environ.get("DESKHAND_CA_FILE") or None,
        help="also trust this PEM CA certificate for https:// (e.g. a broker's self-signed one; "
        "default: DESKHAND_CA_FILE, else the system's CAs only)",
    )


def ca_file(text: str) -> Path:
    """An argparse ``type=`` for ``--ca-file``: a readable PEM certificate, loaded once to check it."""
    path = Path(text).expanduser()
    try:
        load_tls_context(path)
    except TransportError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return path
