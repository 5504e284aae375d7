"""``deskhand-broker``: run the broker."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

from pydantic import ValidationError

from broker.accounts import cli as admin_cli
from broker.accounts.logins import FIRST_ADMIN, ensure_first_admin
from broker.audit.chain import SignedHead, Verdict
from broker.integrations import cli as integrations_cli
from broker.keys import BrokerKeys, KeyFileError, load_or_create_keys
from broker.settings import Settings
from broker.storage.db import Database
from broker.turn_config import RelayOptions, TurnConfigError, parse_address, parse_network, render
from protocol.api import API_PREFIX
from protocol.cli import configure_logging, number_in_range
from protocol.terminal_text import one_line

WS_MAX_BYTES = 1024 * 1024
"""Frames above this are cut off by the server itself (close code 1009)."""

ENV_HELP = """\
environment (each DESKHAND_* variable is documented in docs/operations.md):
  DESKHAND_DATA_DIR               data directory (default ~/.local/share/deskhand)
  DESKHAND_DATABASE_URL           SQLAlchemy URL (default SQLite in the data directory)
  DESKHAND_HOST, DESKHAND_PORT    listen address (default 127.0.0.1:8000)
  DESKHAND_TLS_CERT_FILE, DESKHAND_TLS_KEY_FILE
                                  serve HTTPS with this PEM certificate and key
  DESKHAND_TRUSTED_PROXIES        IPs/CIDRs of proxies whose X-Forwarded-* headers count
  DESKHAND_CODE_TTL_SECONDS       support code lifetime (default 600)
  DESKHAND_TOKEN_TTL_SECONDS      login token lifetime (default 28800)
  DESKHAND_CODE_FAILURES_PER_SOURCE, DESKHAND_CODE_FAILURES_GLOBAL,
  DESKHAND_CODE_FAILURE_WINDOW_SECONDS
                                  wrong-code limits (default 10 and 200 per 60 s)
  DESKHAND_ICE_SERVERS            JSON list of STUN servers (default none)
  DESKHAND_ICE_LOOPBACK           true: peers use only 127.0.0.1 candidates
  DESKHAND_TURN_URLS, DESKHAND_TURN_SECRET, DESKHAND_TURN_REALM
                                  TURN relay (coturn) whose credentials each peer gets
  DESKHAND_SIGNAL_MAX_MESSAGE_BYTES
                                  largest signalling message (default 65536)
  DESKHAND_HTTP_MAX_BODY_BYTES, DESKHAND_HTTP_MAX_HEADER_BYTES,
  DESKHAND_HTTP_HEADER_TIMEOUT_SECONDS, DESKHAND_HTTP_BODY_TIMEOUT_SECONDS
                                  request limits (default 1 MiB, 64 KiB, 10 s, 30 s)
  DESKHAND_SIGNING_KEY, DESKHAND_CODE_HASH_KEY
                                  keys as base64 instead of files in the data directory
  DESKHAND_LOG_LEVEL              debug, info, warning or error (default info)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deskhand-broker",
        description="The Deskhand broker: pairs technicians and end users, relays signalling, "
        "keeps tickets, sessions and the audit trail.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=ENV_HELP,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the broker (creates the data directory, keys and first admin on first start)",
        description="Run the broker. On first start it creates the data directory, the keys "
        "and an 'admin' account whose password is printed once.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=ENV_HELP,
    )
    serve.add_argument("--host", help="address to listen on (default: DESKHAND_HOST or 127.0.0.1)")
    serve.add_argument(
        "--port", type=number_in_range(int, 0, 65535, "port"), help="TCP port, 0 for any free port (default: DESKHAND_PORT or 8000)"
    )
    serve.add_argument(
        "--data-dir", type=Path,
        help="data directory for the database and keys (default: DESKHAND_DATA_DIR or ~/.local/share/deskhand)",
    )
    audit_parser = commands.add_parser(
        "audit", help="verify the audit trail, export its signed heads",
        description="Check the tamper-evident audit trail; export the broker's signed heads to keep elsewhere.",
    )
    audit_commands = audit_parser.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = audit_commands.add_parser(
        "verify",
        help="recompute every chain, check every signed head and every stored recording segment",
        description="Recompute every audit chain from the database, check the broker's signed heads (every "
        "sealed event must be covered by one), that every session the broker chain recorded is still there, "
        "and the hash of every stored recording segment; name the first event or segment that was edited, "
        "deleted, reordered, inserted or appended. With --heads, also check the trail against heads exported "
        "earlier and kept outside the broker. Exit 0 when everything checks out, 1 otherwise. "
        "Safe to run beside a running broker (it only reads).",
    )
    verify.add_argument("--data-dir", type=Path, help="data directory (default: DESKHAND_DATA_DIR)")
    verify.add_argument("--heads", type=Path, metavar="FILE", help="a heads file from 'audit heads' kept outside the broker")
    bundle = audit_commands.add_parser(
        "verify-bundle", help="check an exported session bundle offline (no database needed)",
        description="Check an exported bundle: its event chain, the broker's signed head over its last event, "
        "every recording segment, the joined recording.webm and the manifest. Exit 0 when everything checks "
        "out, 1 otherwise.",
    )
    bundle.add_argument("file", type=Path, help="the .zip an auditor exported")
    bundle.add_argument("--key", help="the broker's public key (base64) you trust; default: the one in the bundle")
    bundle.add_argument("--heads", type=Path, metavar="FILE", help="a heads file from 'audit heads' kept outside the broker")
    heads = audit_commands.add_parser(
        "heads", help="export every chain's signed head, to keep where the broker cannot write",
        description="Write the broker's signed head of every audit chain (JSON). Keep the file outside the "
        "broker (an auditor's machine, write-once storage): 'verify --heads' and 'verify-bundle --heads' then "
        "detect any later rewrite of what it covers, even by someone holding the signing key.",
    )
    heads.add_argument("--data-dir", type=Path, help="data directory (default: DESKHAND_DATA_DIR)")
    heads.add_argument("--out", type=Path, metavar="FILE", help="write here instead of to standard output")
    turn = commands.add_parser(
        "turn-config", help="print the coturn configuration (turnserver.conf) matching the TURN settings",
        description="Print a turnserver.conf for coturn that accepts exactly the credentials this broker mints "
        "(DESKHAND_TURN_URLS, DESKHAND_TURN_SECRET, DESKHAND_TURN_REALM) and cannot reach private or internal "
        "networks. It holds the secret: write it where only coturn can read it.",
    )
    turn.add_argument("--deny", action="append", default=[], metavar="CIDR",
                      help="another network the relay must not reach (repeat for more)")
    turn.add_argument("--allow", action="append", default=[], metavar="CIDR",
                      help="a network the relay may reach although it is denied (repeat for more)")
    turn.add_argument("--relay-ip", action="append", default=[], metavar="IP",
                      help="the relay's own address, allowed as a peer: two peers relayed by one coturn meet there "
                      "(needed when it is a private or otherwise denied address; repeat for more)")
    turn.add_argument("--tls-cert", type=Path, metavar="FILE", help="PEM certificate chain for turns: URLs")
    turn.add_argument("--tls-key", type=Path, metavar="FILE", help="its PEM private key")
    turn.add_argument("--min-port", type=number_in_range(int, 1024, 65535, "port"), default=RelayOptions.min_port,
                      help=f"lowest UDP port of relayed media (default {RelayOptions.min_port})")
    turn.add_argument("--max-port", type=number_in_range(int, 1024, 65535, "port"), default=RelayOptions.max_port,
                      help=f"highest UDP port of relayed media (default {RelayOptions.max_port})")
    turn.add_argument("--total-quota", type=number_in_range(int, 1, 1_000_000, "quota"),
                      default=RelayOptions.total_quota,
                      help=f"allocations the whole relay may hold (default {RelayOptions.total_quota})")
    admin_cli.add_parsers(commands, "data directory (default: DESKHAND_DATA_DIR)")
    integrations_cli.add_parsers(commands, "data directory (default: DESKHAND_DATA_DIR)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in ("serve", "audit", "turn-config", *ADMIN_COMMANDS):
        parser.print_help()
        return 2
    if args.command == "audit" and args.audit_command == "verify-bundle":
        return verify_bundle_command(args.file, args.key, args.heads)
    overrides = {
        k: v for k, v in (
            ("host", getattr(args, "host", None)), ("port", getattr(args, "port", None)), ("data_dir", getattr(args, "data_dir", None))
        ) if v is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for err in exc.errors():
            # Errors about several settings together have no location; their message names them.
            name = "DESKHAND_" + "_".join(str(p) for p in err["loc"]).upper() + ": " if err["loc"] else ""
            print(f"deskhand-broker: {name}{err['msg']}", file=sys.stderr)
        return 2
    if args.command == "turn-config":
        return turn_config_command(settings, args)
    if args.command == "audit":
        return heads_command(settings, args.out) if args.audit_command == "heads" else verify_command(settings, args.heads)
    if args.command in ADMIN_COMMANDS:
        return admin_command(args, settings)
    return serve(settings)


ADMIN_COMMANDS = ("users", "roles", "teams", *integrations_cli.COMMANDS)


def admin_command(args: argparse.Namespace, settings: Settings) -> int:
    """``deskhand-broker users|roles|teams|webhooks|inbound``, on an existing data directory."""

    if not settings.data_dir.is_dir() and settings.database_url is None:
        print(f"deskhand-broker: no broker data in {settings.data_dir}; start the broker once, or give --data-dir",
              file=sys.stderr)
        return 2
    database = settings.open_database()
    database.migrate()
    try:
        if args.command in integrations_cli.COMMANDS:
            return integrations_cli.run(args, database.session, lambda: _load_keys(settings).recording_master_key)
        return admin_cli.run(args, database.session)
    finally:
        database.dispose()


def _load_keys(settings: Settings) -> BrokerKeys:
    return load_or_create_keys(settings.data_dir, settings.signing_key, settings.code_hash_key,
                               settings.recording_master_key)


def _open_trail(settings: Settings) -> tuple[BrokerKeys, Database] | None:
    if not (settings.data_dir / "signing.key").exists() and settings.signing_key is None:
        print(f"deskhand-broker: no broker data in {settings.data_dir}; give --data-dir", file=sys.stderr)
        return None
    return _load_keys(settings), settings.open_database()


def _read_heads(path: Path | None) -> list[SignedHead] | None:
    """The heads in ``path`` ([] without one); None (after saying why) when it cannot be read."""
    from broker.audit.heads import HeadsFileError, parse_heads

    if path is None:
        return []
    try:
        return parse_heads(path.read_bytes(), str(path))
    except OSError as exc:
        print(f"deskhand-broker: cannot read {path}: {exc.strerror}", file=sys.stderr)
    except HeadsFileError as exc:
        print(f"deskhand-broker: {one_line(str(exc))}", file=sys.stderr)
    return None


def turn_config_command(settings: Settings, args: argparse.Namespace) -> int:
    """``deskhand-broker turn-config``: print the coturn configuration for the TURN settings."""
    if settings.turn is None:
        print("deskhand-broker: set DESKHAND_TURN_URLS and DESKHAND_TURN_SECRET first: the relay's configuration "
              "follows them", file=sys.stderr)
        return 2
    try:
        options = RelayOptions(
            deny=tuple(parse_network(text, "--deny") for text in args.deny),
            allow=tuple(parse_network(text, "--allow") for text in args.allow),
            relay_ips=tuple(parse_address(text, "--relay-ip") for text in args.relay_ip),
            tls_cert=args.tls_cert, tls_key=args.tls_key,
            min_port=args.min_port, max_port=args.max_port, total_quota=args.total_quota,
        )
        sys.stdout.write(render(settings.turn, options))
    except TurnConfigError as exc:
        print(f"deskhand-broker: {one_line(str(exc))}", file=sys.stderr)
        return 2
    return 0


def verify_command(settings: Settings, heads_file: Path | None) -> int:
    """``deskhand-broker audit verify [--heads FILE]``."""
    from broker.audit.chain import BROKER_CHAIN, Freshness
    from broker.audit.recordings import RecordingStore
    from broker.audit.trail import load_chains, verify_loaded
    from broker.clock import utcnow
    from broker.storage.blobs import BlobStoreError

    exported = _read_heads(heads_file)
    opened = _open_trail(settings) if exported is not None else None
    if exported is None or opened is None:
        return 2
    keys, database = opened
    store = RecordingStore(settings.data_dir, keys.recording_master_key, settings.open_blobs())
    with database.session() as db:
        trail = load_chains(db)
    database.dispose()
    try:
        verdict = verify_loaded(trail, keys.public_key, store.stored_sha256,
                                freshness=Freshness(utcnow(), settings.audit_grace), exported_heads=exported)
    except BlobStoreError as exc:
        print(f"deskhand-broker: cannot verify the recordings: {exc}", file=sys.stderr)
        return 2
    code = _print_verdict(verdict, trail.unsealed, heads_file)
    broker_head = max(trail.heads.get(BROKER_CHAIN, []), key=lambda h: h.seq, default=None)
    if broker_head is not None:
        # A trail cut back to an earlier signed point verifies on its own: the date tells.
        print(f"The broker chain is signed to event {broker_head.seq}, at {broker_head.signed_at}.")
    return code


def heads_command(settings: Settings, out: Path | None) -> int:
    """``deskhand-broker audit heads [--out FILE]``."""
    import json

    from broker.audit.heads import heads_document

    opened = _open_trail(settings)
    if opened is None:
        return 2
    keys, database = opened
    with database.session() as db:
        document = heads_document(db, keys.public_key_b64)
    database.dispose()
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
        return 0
    partial = out.with_name(out.name + ".part")
    try:
        partial.write_text(text)
        partial.replace(out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        print(f"deskhand-broker: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"{len(document['heads'])} signed heads written to {out} (broker key SHA-256 {document['public_key_sha256']}). "
          "Keep it where the broker cannot write; check later with: deskhand-broker audit verify --heads FILE")
    return 0


def verify_bundle_command(path: Path, key: str | None, heads_file: Path | None) -> int:
    """``deskhand-broker audit verify-bundle FILE [--key KEY] [--heads FILE]``."""
    from broker.audit.bundles import BundleError, verify_bundle

    exported = _read_heads(heads_file)
    if exported is None:
        return 2
    try:
        verdict, info = verify_bundle(path, key, exported)
    except BundleError as exc:
        print(f"deskhand-broker: {one_line(str(exc))}", file=sys.stderr)
        return 2
    # A bundle comes from anywhere: what it says is printed as text, never as terminal commands.
    print(one_line(f"Bundle of session {info['session_id']}, broker key SHA-256 {info['public_key_sha256']}")
          + ("" if key else " (taken from the bundle: compare it with your broker's)"))
    if not info["ended"]:
        print("The session had not ended when this bundle was exported: it holds the trail up to then.")
    return _print_verdict(verdict, 0, heads_file)


def _print_verdict(verdict: Verdict, unsealed: int, heads_file: Path | None) -> int:
    counts = (f"{verdict.chains} chains, {verdict.events} events, {verdict.checkpoints} signed heads, "
              f"{verdict.segments} recording segments")
    if heads_file is not None:
        counts += f", {verdict.exported_heads} heads from {heads_file}"
    if verdict.ok:
        notes = [f"{unsealed} newer events are not sealed yet." if unsealed else "",
                 f"{verdict.unsigned_recent} events sealed moments ago are not signed yet." if verdict.unsigned_recent else ""]
        print(" ".join([f"Trail verified: {counts}.", *filter(None, notes)]))
        return 0
    print(f"TRAIL DOES NOT VERIFY ({counts}).")
    # Problems quote what the trail or a bundle holds: one printable line each.
    print(f"First problem: {one_line(str(verdict.problems[0]))}")
    for problem in verdict.problems[1:]:
        print(f"  also: {one_line(str(problem))}")
    return 1


def serve(settings: Settings) -> int:
    """``deskhand-broker serve``: the web server, until it is stopped."""
    # Imported here, not above: building the app's routes takes most of a second or two, which
    # the commands that work on the database alone (users, webhooks, audit) need not wait for.
    import uvicorn

    from broker.app import create_app
    from broker.server.collector import settle_collector
    from broker.server.forwarded import ForwardedHeaders
    from broker.server.request_limits import RequestLimits, declared_body_limits
    from broker.server.uvicorn_hooks import HeadLimits, LeanWebSocketsProtocol, http_protocol
    from broker.state import build_state
    from broker.storage.blobs import BlobStoreError

    # The database and anything else the broker writes hold secrets' hashes: owner only.
    os.umask(0o077)
    configure_logging(settings.log_level)
    if settings.log_level != "debug":
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        state = build_state(settings)
    except (KeyFileError, BlobStoreError) as exc:
        print(f"deskhand-broker: {exc}", file=sys.stderr)
        return 1
    try:
        sock = _bind(settings.host, settings.port, settings.listen_backlog)
    except OSError as exc:
        print(
            f"deskhand-broker: cannot listen on {settings.host}:{settings.port}: {exc.strerror}; "
            "pick another port with --port",
            file=sys.stderr,
        )
        return 1
    with state.database.session() as db:
        admin_password = ensure_first_admin(db)
    host, port = sock.getsockname()[:2]
    base = f"{'https' if settings.tls else 'http'}://{_url_host(host)}:{port}"
    print("Deskhand broker", flush=True)
    print(f"  data directory: {settings.data_dir}")
    print(f"  console:        {base}/")
    print(f"  API docs:       {base}{API_PREFIX}/docs")
    if admin_password is not None:
        # Printed to the terminal only, never to a log: it is shown this once.
        print("First start: an admin account was created (shown only this once).")
        print(f"  username: {FIRST_ADMIN}")
        print(f"  password: {admin_password}")
        print("  Sign in and change it: deskhand-console login --username admin; deskhand-console passwd")
    sys.stdout.flush()
    app = create_app(state)
    limited = RequestLimits(app, max_body_bytes=settings.http_max_body_bytes,
                            body_timeout=settings.http_body_timeout_seconds,
                            route_limits=declared_body_limits(app.openapi()))
    settle_collector()
    config = uvicorn.Config(
        ForwardedHeaders(limited, settings.trusted_proxy_networks),
        # uvicorn's httptools protocol, with limits on each request's head (broker/server/uvicorn_hooks.py).
        http=http_protocol(HeadLimits(settings.http_max_header_bytes, settings.http_header_timeout_seconds)),
        log_level=settings.log_level,
        timeout_keep_alive=settings.http_keepalive_seconds,
        # Without it a stop waits for every request under way, a long poll's 25 s included.
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        ws_max_size=WS_MAX_BYTES,
        # The sans-I/O websockets protocol: no tasks of its own per connection, pings on timers;
        # lean: the opening handshake is let go once answered (broker/server/uvicorn_hooks.py).
        ws=LeanWebSocketsProtocol,
        # Signalling messages are small; compression would hold a zlib state per socket (some 30 KiB each).
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ws_ping_seconds or None,
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
        # Off: uvicorn's proxy handling is replaced by ForwardedHeaders (broker/server/forwarded.py says why).
        proxy_headers=False,
        server_header=False,
        log_config=None,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])  # uvicorn picks uvloop when installed (uvicorn[standard] installs it)
    return 0


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


if __name__ == "__main__":
    sys.exit(main())
