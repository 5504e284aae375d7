"""Every broker setting, in one place.

Each field reads from an environment variable named ``DESKHAND_<FIELD>``
(for example ``DESKHAND_CODE_TTL_SECONDS``). ``docs/operations.md`` lists them
all; keep the two in step.
"""

from __future__ import annotations

import os
import ssl
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, TypeAdapter, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from broker.accounts.lockout import LockoutPolicy
from broker.helpdesk.sla import SLA_CLOCK_KEY, BusinessCalendar, CalendarError, SlaClock
from broker.keys import KeyFileError, require_owner_only
from broker.server.forwarded import Network, parse_trusted_proxies
from broker.sessions.session_usage import SessionQuotas
from broker.sessions.turn_credentials import (
    DEFAULT_REALM,
    SECRET_ALPHABET,
    SECRET_MIN_BYTES,
    TurnSettings,
    parse_turn_url,
)
from broker.storage.blobs import Blobs, LocalBlobs, ObjectStoreConfig, S3Blobs
from broker.storage.db import Database
from broker.storage.db_slots import DatabaseBudget
from protocol.ice import IceConfig, IceServer
from protocol.recording import MAX_EVENTS_PER_BATCH, MAX_RECORDING_FPS, MAX_SEGMENT_BYTES, SessionPolicy
from protocol.signalling import DEFAULT_MAX_MESSAGE_BYTES

MAX_TURN_URLS = 8
"""As many URLs as one ICE server may carry (``protocol.ice.IceServer``)."""

MAX_STATIC_ICE_SERVERS = 15
"""As many servers as an ICE configuration may carry (``protocol.ice.IceConfig``), less the TURN relay's."""


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/deskhand``, or ``~/.local/share/deskhand``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "deskhand"


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
"""How a ``DESKHAND_REDIS_URL`` may start (the URL forms redis-py understands)."""

class Settings(BaseSettings):
    """Broker configuration. Construct with keyword arguments to override the environment."""

    model_config = SettingsConfigDict(env_prefix="DESKHAND_", extra="ignore")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Directory holding the SQLite database and the broker's keys.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default is sqlite:///<data_dir>/deskhand.sqlite3.",
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description="Redis the brokers share (redis://, rediss:// or unix://); unset: this broker counts alone.",
    )
    object_store_url: str | None = Field(
        default=None, max_length=500,
        description="S3 endpoint (http:// or https://) of the bucket for recordings and transfer chunks; unset: files "
        "under the data directory.",
    )
    object_store_bucket: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="The bucket's name (S3 naming rules)."
    )
    object_store_access_key_id: SecretStr | None = Field(default=None, description="Access key id for the bucket.")
    object_store_secret_access_key: SecretStr | None = Field(default=None, description="Its secret access key.")
    object_store_region: str = Field(
        default="us-east-1", pattern=r"^[a-z0-9-]{1,40}$", description="Region to sign requests for."
    )
    object_store_prefix: str = Field(
        default="", max_length=200, pattern=r"^([A-Za-z0-9._-]+/)*$",
        description="Put before every object name, ending in / (several installations in one bucket).",
    )
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    log_level: str = Field(default="info", description="debug, info, warning or error.")
    tls_cert_file: Path | None = Field(
        default=None,
        description="PEM certificate (chain) to serve HTTPS with; needs tls_key_file too.",
    )
    tls_key_file: Path | None = Field(
        default=None,
        description="PEM private key of tls_cert_file, unencrypted, readable by the owner only.",
    )
    host_downloads: Path | None = Field(
        default=None,
        description="Folder of single-file host builds (scripts/build-host's deskhand-host-<system>-<machine>) "
        "offered on the join page and at /downloads; none by default.",
    )
    host_downloads_per_hour: int = Field(
        default=20, ge=1, le=100_000,
        description="Whole host builds one address may download an hour (then 429 with Retry-After); "
        "a request continuing a download (a Range not from byte 0) is not counted.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For/-Proto are believed.",
    )

    http_max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, le=1024**3,
        description="Largest request body of the JSON API (413 beyond it, before it is read); recording "
        "segments and transfer chunks have their own limits.",
    )
    http_max_header_bytes: int = Field(
        default=64 * 1024, ge=4096, le=1024 * 1024,
        description="Largest request head: the request line and every header together (431 beyond it).",
    )
    http_header_timeout_seconds: float = Field(
        default=10.0, gt=0, le=3600,
        description="How long a request's head may take to arrive, from its first byte or the connection's "
        "opening (408 and the connection closed beyond it).",
    )
    http_body_timeout_seconds: float = Field(
        default=30.0, gt=0, le=3600,
        description="How long the broker waits for the next bytes of a request body it is reading (408 beyond it).",
    )

    db_concurrency: int = Field(
        default=16, ge=1, le=1000,
        description="Database units of work (requests, peers' writes) run at once; the pool holds twice this "
        "plus 8 connections, the thread pool this plus 24 threads (broker/storage/db_slots.py says why).",
    )
    db_queue: int = Field(
        default=2000, ge=0, le=1_000_000,
        description="Requests allowed to wait for a database slot; one more gets 503 broker_busy with Retry-After.",
    )
    db_queue_seconds: float = Field(
        default=10.0, gt=0, le=300,
        description="How long a request may wait for a database slot before it gets 503 broker_busy.",
    )
    listen_backlog: int = Field(
        default=2048, ge=16, le=65535,
        description="Connections the kernel queues before the broker accepts them (capped by net.core.somaxconn).",
    )

    shutdown_grace_seconds: int = Field(
        default=5, ge=0, le=600,
        description="On SIGTERM, how long the broker lets requests under way finish before it cuts them "
        "(long polls included; clients ask again, through a balancer on another broker).",
    )
    http_keepalive_seconds: int = Field(
        default=15, ge=1, le=600,
        description="Seconds an idle HTTP connection stays open for the client's next request. Longer than "
        "the 5 s for which httpx (the Python console, the host) keeps one, so a request sent on a connection "
        "never meets the broker closing it.",
    )

    token_ttl_seconds: int = Field(
        default=8 * 3600, ge=60, le=30 * 86400, description="Lifetime of a login token."
    )
    code_ttl_seconds: int = Field(
        default=600, ge=30, le=86400, description="How long a support code can be redeemed."
    )
    code_failures_per_source: int = Field(
        default=10, ge=1, le=100_000,
        description="Failed code redemptions allowed from one address per window.",
    )
    code_failures_global: int = Field(
        default=200, ge=1, le=10_000_000,
        description="Failed code redemptions allowed from all addresses together per window.",
    )
    code_failure_window_seconds: int = Field(
        default=60, ge=1, le=86400, description="Window of the two limits above."
    )
    code_check_wait_seconds: float = Field(
        default=5.0, gt=0, le=60,
        description="How long a join waits for its turn when as many codes from its address are being "
        "checked as may still fail (503 with Retry-After beyond it).",
    )

    password_min_length: int = Field(
        default=12, ge=8, le=1024,
        description="Shortest password accepted when one is set or changed.",
    )
    login_failures_before_lock: int = Field(
        default=5, ge=1, le=1000,
        description="Consecutive failed sign-ins that lock an account.",
    )
    login_lock_seconds: int = Field(
        default=30, ge=1, le=3600,
        description="First lock of an account; each further failure doubles it, up to an hour.",
    )
    login_failures_per_source: int = Field(
        default=20, ge=1, le=100_000,
        description="Failed sign-ins allowed from one address per window, whatever the accounts.",
    )
    login_failure_window_seconds: int = Field(
        default=60, ge=1, le=86400, description="Window of the limit above."
    )

    ice_servers: str = Field(
        default="[]",
        description='JSON list of STUN servers as RTCIceServer objects, e.g. [{"urls": ["stun:stun.example.org"]}]; '
        "a TURN relay goes in turn_urls.",
    )
    ice_loopback: bool = Field(
        default=False,
        description="Tell both peers to gather only 127.0.0.1 candidates (tests, one-machine demos).",
    )
    turn_urls: str = Field(
        default="",
        description="Comma-separated TURN URLs of the relay the peers may use (turn:HOST[:PORT][?transport=udp|tcp], "
        "turns:HOST[:PORT]); each peer gets credentials of its own for them, expiring with its grant.",
    )
    turn_secret: SecretStr | None = Field(
        default=None,
        description="The secret shared with coturn (its static-auth-secret): at least 32 characters of "
        "A-Z a-z 0-9 + / = . _ -. Never sent to a peer.",
    )
    turn_realm: str = Field(
        default=DEFAULT_REALM, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9.-]+$",
        description="The relay's realm (coturn's realm).",
    )

    grant_ttl_seconds: int = Field(
        default=900, ge=30, le=86400,
        description="Lifetime of a signed session grant; the broker re-issues it at a third of that.",
    )
    transfer_max_bytes: int = Field(
        default=4 * 1024**3, ge=1, le=2**50,
        description="Largest file one transfer may carry (bytes).",
    )
    transfer_memory_bytes: int = Field(
        default=512 * 1024**2, ge=0, le=2**40,
        description="Memory for chunks in transit; beyond it they wait on disk in the data directory.",
    )
    transfers_per_session: int = Field(
        default=4, ge=1, le=100, description="Transfers that may run at once in one session.",
    )
    file_requests_per_session: int = Field(
        default=4, ge=1, le=100,
        description="File requests that may wait for the user's answer at once in one session (then 429).",
    )
    recording_required: bool = Field(
        default=True,
        description="Pause remote control while the session's recording is more than the allowed lag behind.",
    )
    recording_max_lag_seconds: float = Field(
        default=5.0, ge=1, le=3600, description="How far the recording may fall behind before control pauses.",
    )
    recording_fps: float = Field(default=2.0, gt=0, le=MAX_RECORDING_FPS, description="Frames per second in the recording.")
    keystroke_logging: bool = Field(
        default=False, description="Peers report every text typed into the session (otherwise counts only).",
    )
    recording_upload_grace_seconds: int = Field(
        default=600, ge=0, le=86400,
        description="How long after a session ends its host may still upload recording segments it had spooled.",
    )
    audit_checkpoint_seconds: float = Field(
        default=60, gt=0, le=3600,
        description="The checkpoint interval: the longest a sealed audit event may go without a signed head. "
        "The broker signs a chain's head as it seals events into it (every second); verification fails on a "
        "sealed event older than this that no signed head covers (it was appended without the key).",
    )
    signing_key: SecretStr | None = Field(
        default=None,
        description="Ed25519 private key (base64 of the 32-byte seed); default: data_dir/signing.key.",
    )
    code_hash_key: SecretStr | None = Field(
        default=None,
        description="Key (base64, 32 bytes) of the keyed hash of support codes; default: data_dir/code-hash.key.",
    )

    recording_master_key: SecretStr | None = Field(
        default=None,
        description="AES-256 key (base64, 32 bytes) that wraps each session's recording key; default: data_dir/recording-master.key.",
    )

    ws_ping_seconds: float = Field(
        default=30.0, ge=0, le=3600,
        description="Seconds between the broker's WebSocket pings to each connected peer (0: none); a peer that does "
        "not answer within 20 s is disconnected.",
    )
    signal_max_message_bytes: int = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES, ge=4096, le=1024 * 1024,
        description="Largest signalling message accepted; larger ones get an error reply.",
    )
    signal_messages_per_second: float = Field(
        default=20.0, gt=0, le=100_000,
        description="Signalling messages one connection may send a second once its burst is spent; beyond, they are "
        "dropped and the sender gets one rate_limited error. Consent and end always pass (consent has its own limit).",
    )
    signal_message_burst: int = Field(
        default=100, ge=1, le=100_000, description="Signalling messages one connection may send at once.",
    )
    consent_changes_per_second: float = Field(
        default=1.0, gt=0, le=1000,
        description="Consent changes that add a permission applied a second once the burst is spent; beyond, the "
        "latest waits its turn. A change that takes a permission away is applied at once, always.",
    )
    consent_change_burst: int = Field(
        default=5, ge=1, le=1000, description="Consent changes a host may make at once before they are paced.",
    )
    peer_events_per_second: float = Field(
        default=50.0, gt=0, le=100_000,
        description="Events one peer may report a second in a session once its burst is spent (then 429).",
    )
    peer_event_burst: int = Field(
        default=2 * MAX_EVENTS_PER_BATCH, ge=MAX_EVENTS_PER_BATCH, le=10_000_000,
        description="Events one peer may report at once in a session; at least one full batch.",
    )
    session_max_events: int = Field(
        default=200_000, ge=1, le=1_000_000_000,
        description="Events the peers of one session may report in all (then 413 quota_exceeded).",
    )
    session_max_event_bytes: int = Field(
        default=128 * 1024**2, ge=1024, le=2**50,
        description="Bytes of event data the peers of one session may report in all (then 413 quota_exceeded).",
    )
    session_max_recording_bytes: int = Field(
        default=16 * 1024**3, ge=1024**2, le=2**50,
        description="Bytes of recording one session may store (then 413 quota_exceeded).",
    )
    session_max_segments: int = Field(
        default=200_000, ge=1, le=10_000_000,
        description="Recording segments one session may store, about one a second (then 413 quota_exceeded).",
    )
    segment_max_bytes: int = Field(
        default=8 * 1024**2, ge=64 * 1024, le=MAX_SEGMENT_BYTES,
        description="Largest recording segment accepted (a second of screen; the host's encoder aims at 1.5 Mbit/s).",
    )
    expiry_sweep_seconds: float = Field(
        default=5.0, gt=0, le=3600,
        description="How often waiting sessions whose code ran out are marked expired.",
    )
    repeat_window_days: int = Field(
        default=30, ge=1, le=365,
        description="KPIs: a ticket is a repeat incident when its requester had another in the same category this many days before.",
    )

    request_idle_seconds: int = Field(
        default=120, ge=3, le=86400,
        description="A help request whose host has not polled for this long leaves the queue (expired).",
    )
    requests_per_source: int = Field(
        default=5, ge=1, le=100_000,
        description="Help requests one address may open per window (beyond it: 429 with Retry-After).",
    )
    requests_global: int = Field(
        default=200, ge=1, le=10_000_000,
        description="Help requests all addresses together may open per window.",
    )
    request_window_seconds: int = Field(
        default=600, ge=1, le=86400, description="Window of the two limits above.",
    )
    request_queue_max: int = Field(
        default=500, ge=1, le=1_000_000,
        description="Most help requests waiting at once; a new one beyond it is refused (503) until the queue shrinks.",
    )

    business_hours: str = Field(
        default="mon-fri 09:00-17:00",
        description='Working hours for SLA targets that count business hours only, e.g. "mon-fri 09:00-17:00".',
    )
    business_timezone: str = Field(
        default="UTC", description="IANA time zone of business_hours, e.g. Europe/Berlin.",
    )
    sla_warn_percent: int = Field(
        default=80, ge=1, le=99,
        description="Share of an SLA target after which a ticket is flagged near breach (percent).",
    )
    sla_sweep_seconds: float = Field(
        default=30.0, gt=0, le=3600,
        description="How often the broker looks for SLA timers that ran out (and audits each breach once).",
    )

    webhook_retry_base_seconds: float = Field(
        default=10.0, gt=0, le=3600,
        description="Wait after a webhook delivery's first failed attempt; each further failure doubles it (at most an hour).",
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, le=50,
        description="Attempts of one webhook delivery before it is dead (listed for replay).",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="How long one webhook request may take, connecting included.",
    )
    webhook_poll_seconds: float = Field(
        default=2.0, gt=0, le=3600, description="How often the broker looks for webhook deliveries that are due.",
    )
    inbound_max_skew_seconds: int = Field(
        default=300, ge=1, le=3600,
        description="How far an inbound webhook's X-Deskhand-Timestamp may be from the broker's clock.",
    )
    inbound_failures_per_source: int = Field(
        default=20, ge=1, le=100_000,
        description="Refused inbound webhook requests allowed from one address per minute (then 429).",
    )

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        value = value.lower()
        if value not in ("debug", "info", "warning", "error"):
            raise ValueError("must be one of debug, info, warning, error")
        return value

    @field_validator("tls_cert_file", "tls_key_file", "host_downloads", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # DESKHAND_TLS_CERT_FILE= (set but empty) means "no TLS", not the current directory.
        return None if value == "" else value

    @field_validator("tls_cert_file", "tls_key_file")
    @classmethod
    def _check_readable(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        if not value.is_file():
            raise ValueError(f"{value} does not exist or is not a file; give the path of a PEM file")
        if not os.access(value, os.R_OK):
            raise ValueError(f"{value} is not readable by this user; fix its owner or mode")
        return value

    @field_validator("host_downloads")
    @classmethod
    def _check_downloads_folder(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} does not exist or is not a folder; give the folder that holds the host builds")
        if value is not None and not os.access(value, os.R_OK | os.X_OK):
            raise ValueError(f"{value} is not readable by this user; fix its owner or mode")
        return value

    @field_validator("tls_key_file")
    @classmethod
    def _check_key_private(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:
                require_owner_only(value)
            except KeyFileError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(REDIS_SCHEMES):
            raise ValueError(f"must start with {', '.join(REDIS_SCHEMES)} (as redis-py takes it), e.g. "
                             "redis://127.0.0.1:6379/0")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        parse_trusted_proxies(value)
        return value

    @model_validator(mode="after")
    def _check_tls_pair(self) -> Settings:
        cert, key = self.tls_cert_file, self.tls_key_file
        if (cert is None) != (key is None):
            raise ValueError(
                "DESKHAND_TLS_CERT_FILE and DESKHAND_TLS_KEY_FILE go together: set both to serve HTTPS, "
                "or neither to serve plain HTTP"
            )
        if cert is not None and key is not None:
            _check_certificate_and_key(cert, key)
        return self

    @model_validator(mode="after")
    def _check_object_store(self) -> Settings:
        self.object_store()
        return self

    def object_store(self) -> ObjectStoreConfig | None:
        """The object store these settings name, or None (files under the data directory)."""
        url = self.object_store_url
        if url is None:
            return None
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"DESKHAND_OBJECT_STORE_URL must start with http:// or https:// (got {url[:40]!r})")
        missing = [name for name, value in (
            ("DESKHAND_OBJECT_STORE_BUCKET", self.object_store_bucket),
            ("DESKHAND_OBJECT_STORE_ACCESS_KEY_ID", self.object_store_access_key_id),
            ("DESKHAND_OBJECT_STORE_SECRET_ACCESS_KEY", self.object_store_secret_access_key),
        ) if value is None]
        if missing:
            raise ValueError(f"DESKHAND_OBJECT_STORE_URL is set, so set {', '.join(missing)} too")
        assert self.object_store_bucket and self.object_store_access_key_id and self.object_store_secret_access_key
        return ObjectStoreConfig(
            endpoint_url=url, bucket=self.object_store_bucket,
            access_key_id=self.object_store_access_key_id.get_secret_value(),
            secret_access_key=self.object_store_secret_access_key.get_secret_value(),
            region=self.object_store_region, prefix=self.object_store_prefix,
        )

    def open_blobs(self) -> Blobs:
        """Where recordings and transfer chunks are kept: the object store, or the data directory."""
        config = self.object_store()
        return LocalBlobs(self.data_dir) if config is None else S3Blobs(config)

    @model_validator(mode="after")
    def _check_business_hours(self) -> Settings:
        try:
            BusinessCalendar.parse(self.business_hours, self.business_timezone)
        except CalendarError as exc:
            raise ValueError(f"DESKHAND_BUSINESS_HOURS / DESKHAND_BUSINESS_TIMEZONE: {exc}") from None
        return self

    @cached_property
    def sla_clock(self) -> SlaClock:
        """Business calendar and near-breach share for every ticket's SLA timers."""
        return SlaClock(BusinessCalendar.parse(self.business_hours, self.business_timezone),
                        self.sla_warn_percent / 100)

    @field_validator("ice_servers")
    @classmethod
    def _check_ice(cls, value: str) -> str:
        servers = TypeAdapter(list[IceServer]).validate_json(value)
        if any(url.startswith(("turn:", "turns:")) for server in servers for url in server.urls):
            # Every peer would get its long-term password, and keep it after the session.
            raise ValueError(
                "holds a turn: or turns: URL, whose password every peer would receive and keep; "
                "list the relay in DESKHAND_TURN_URLS with DESKHAND_TURN_SECRET instead (per-peer credentials "
                "that expire), and keep only stun: servers here"
            )
        if len(servers) > MAX_STATIC_ICE_SERVERS:
            raise ValueError(f"lists {len(servers)} servers; at most {MAX_STATIC_ICE_SERVERS}")
        return value

    @field_validator("turn_urls")
    @classmethod
    def _check_turn_urls(cls, value: str) -> str:
        urls = _split_urls(value)
        if len(urls) > MAX_TURN_URLS:
            raise ValueError(f"lists {len(urls)} URLs; at most {MAX_TURN_URLS}")
        for url in urls:
            parse_turn_url(url)  # its TurnUrlError is a ValueError: the message names the URL
        return value

    @field_validator("turn_secret", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("turn_secret")
    @classmethod
    def _check_turn_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if len(secret.encode()) < SECRET_MIN_BYTES:
            raise ValueError(
                f"is {len(secret.encode())} bytes long; it must be at least {SECRET_MIN_BYTES} "
                "(make one with: openssl rand -base64 48)"
            )
        if not SECRET_ALPHABET.match(secret):
            raise ValueError("may hold only A-Z a-z 0-9 + / = . _ - (it is written into turnserver.conf as it is)")
        return value

    @model_validator(mode="after")
    def _check_turn_pair(self) -> Settings:
        if bool(_split_urls(self.turn_urls)) != (self.turn_secret is not None):
            raise ValueError(
                "DESKHAND_TURN_URLS and DESKHAND_TURN_SECRET go together: set both to relay sessions through "
                "TURN, or neither"
            )
        return self

    @cached_property
    def turn(self) -> TurnSettings | None:
        """The TURN relay whose credentials the broker mints per peer, or None when none is configured."""
        if self.turn_secret is None:
            return None
        return TurnSettings(
            urls=tuple(parse_turn_url(url) for url in _split_urls(self.turn_urls)),
            secret=self.turn_secret.get_secret_value().encode(), realm=self.turn_realm,
        )

    @cached_property
    def lockout_policy(self) -> LockoutPolicy:
        """When failed sign-ins lock an account, and for how long."""
        return LockoutPolicy(self.login_failures_before_lock, self.login_lock_seconds)

    @cached_property
    def session_quotas(self) -> SessionQuotas:
        """The most one session's peers may store."""
        return SessionQuotas(
            recording_bytes=self.session_max_recording_bytes, recording_segments=self.session_max_segments,
            peer_events=self.session_max_events, peer_event_bytes=self.session_max_event_bytes,
        )

    @cached_property
    def audit_grace(self) -> timedelta:
        """:attr:`audit_checkpoint_seconds` as a duration."""
        return timedelta(seconds=self.audit_checkpoint_seconds)

    @property
    def session_policy(self) -> SessionPolicy:
        """The recording policy sent to both peers of every session."""
        return SessionPolicy(
            recording_required=self.recording_required,
            recording_max_lag_seconds=self.recording_max_lag_seconds,
            recording_fps=self.recording_fps,
            keystroke_logging=self.keystroke_logging,
        )

    @cached_property
    def ice_config(self) -> IceConfig:
        """The ICE configuration every peer of every session shares (STUN, loopback): the join answer's.

        A peer's own, with its TURN credentials, is :func:`broker.sessions.turn_credentials.ice_for_peer`'s.
        """
        servers = TypeAdapter(list[IceServer]).validate_json(self.ice_servers)
        return IceConfig(servers=servers, loopback_only=self.ice_loopback)

    @cached_property
    def trusted_proxy_networks(self) -> tuple[Network, ...]:
        """The parsed ``trusted_proxies`` (empty: headers from proxies are never believed)."""
        return parse_trusted_proxies(self.trusted_proxies)

    @property
    def tls(self) -> bool:
        """True when the broker serves HTTPS."""
        return self.tls_cert_file is not None

    @property
    def database_budget(self) -> DatabaseBudget:
        """Slots, queue, pool and threads, all from ``db_concurrency`` (``broker.storage.db_slots``)."""
        return DatabaseBudget(slots=self.db_concurrency, queue=self.db_queue, wait_seconds=self.db_queue_seconds)

    def open_database(self) -> Database:
        """The database these settings name, its sessions knowing the SLA clock (``broker.helpdesk.tickets``),
        its pool sized by :attr:`database_budget`."""
        return Database(
            self.effective_database_url, session_info={SLA_CLOCK_KEY: self.sla_clock},
            connections=self.database_budget.pool_connections,
        )

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'deskhand.sqlite3'}"


def _split_urls(value: str) -> list[str]:
    """The URLs of a comma-separated list, spaces around them dropped."""
    return [url.strip() for url in value.split(",") if url.strip()]


def _check_certificate_and_key(cert: Path, key: Path) -> None:
    """Load the pair as the server will, so a mismatch is reported at start, not at the first client."""
    encrypted = False

    def no_password() -> bytes:
        nonlocal encrypted
        encrypted = True  # OpenSSL asks for a password only for an encrypted key
        return b""

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key, password=no_password)
    except ssl.SSLError as exc:
        if encrypted:
            raise ValueError(
                f"DESKHAND_TLS_KEY_FILE {key} is encrypted; the broker cannot ask for a passphrase. "
                f"Decrypt it (openssl pkey -in {key} -out plain.key; chmod 600 plain.key)"
            ) from None
        raise ValueError(
            f"DESKHAND_TLS_CERT_FILE {cert} and DESKHAND_TLS_KEY_FILE {key} are not a PEM certificate "
            f"and its private key ({exc.reason or exc}); check that the key belongs to the certificate"
        ) from None
