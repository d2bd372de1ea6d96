"""Settings: from command-line flags and ``CHARTER_*`` environment variables, validated at start."""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charter.transparency.note import MalformedNote, check_key_name
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from charter_server.storage.dialect import DIALECTS

ENV_PREFIX = "CHARTER_"


class SettingsError(ValueError):
    """A setting is invalid; the message names the setting and its environment variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server needs to start. Each field's environment variable is CHARTER_<FIELD>."""

    listen: str = "127.0.0.1:50051"
    """Address to serve gRPC on, ``host:port``; port 0 picks a free port."""
    database_url: str = "sqlite:///charter.db"
    """SQLAlchemy URL: ``sqlite:///path.db`` (default) or ``postgresql://user@host/db`` (psycopg 3)."""
    migrate: bool = False
    """Apply pending migrations at start (the Docker image does); otherwise refuse to start on an old schema."""
    log_format: str = "auto"
    """``json``, ``console``, or ``auto``: console on a terminal, JSON otherwise."""
    log_level: str = "info"
    """Lowest level logged: debug, info, warning or error."""
    max_workers: int = 16
    """Worker threads for the calls that may block (streams and the in-memory fast paths run on the
    event loop and need none)."""
    max_concurrent_rpcs: int = 256
    """Unary calls in flight before new ones are refused with RESOURCE_EXHAUSTED
    (``CONCURRENCY_LIMIT_REACHED``); streams have their own limits."""
    max_streams_per_key: int = 2000
    """Streams (``WatchRevocations``) one API key may have open at once."""
    max_unauthenticated_streams: int = 512
    """Streams without an API key (health watches, reflection) open at once, all callers together."""
    max_streams: int = 10000
    """Streams open at once in one server process, all callers together."""
    max_streams_per_connection: int = 0
    """HTTP/2 streams (calls of every kind, including those still sending their request) one client
    connection may have open at once; a client's gRPC library queues the calls past it. 0: no
    limit, gRPC's default (see the README, "Connections", for why it is off by default)."""
    handshake_timeout_seconds: float = 10.0
    """How long a new connection has to finish its TLS and HTTP/2 handshake before it is closed."""
    keepalive_seconds: float = 60.0
    """How often the server pings a connection with calls open, so that a client that vanished
    without closing it (a dead host, a partition) does not hold its streams for good."""
    keepalive_timeout_seconds: float = 20.0
    """How long such a ping may go unanswered before the connection is closed (its calls end)."""
    min_client_ping_seconds: float = 10.0
    """The shortest interval between a client's keepalive pings that the server accepts; a client
    pinging more often gets its connection closed (GOAWAY ``too_many_pings``). The SDK pings every
    30 s while it has calls open."""
    processes: int = 1
    """Server processes serving one port (``SO_REUSEPORT``); each keeps every guarantee."""
    max_message_bytes: int = 4 * 1024 * 1024
    """Largest request or response message, in bytes."""
    preload: bool = True
    """Load the morphological analysers (fugashi, jieba), the reading converters (pykakasi,
    pypinyin) and wordfreq's word lists when the server starts, in the background, so that no call
    pays for loading them (about 1-4 s of CPU, and about 400 MiB of memory per process); off, each
    loads when a call first needs it."""
    shutdown_grace_seconds: float = 10.0
    """On SIGTERM/SIGINT, how long in-flight calls may take to finish."""
    auth_cache_seconds: float = 5.0
    """How long a verified API key is cached; revocations through other replicas apply within this."""
    db_busy_timeout_ms: int = 5000
    """How long SQLite waits for a lock before the call fails with a retryable UNAVAILABLE."""
    db_pool_size: int = 10
    """PostgreSQL connection pool size (as many again may overflow)."""
    tls_cert_file: str = ""
    """PEM server certificate chain; with ``tls_key_file`` the server speaks TLS."""
    tls_key_file: str = ""
    """PEM private key of the server certificate."""
    tls_client_ca_file: str = ""
    """PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS)."""
    metrics_listen: str = ""
    """Address for the Prometheus metrics endpoint, ``host:port``; empty disables it."""
    environment: str = "development"
    """``production`` or ``development``. Production refuses to start without a key-encryption key."""
    key_encryption_key: str = dataclasses.field(default="", repr=False)
    """Base64 of 32 random bytes that encrypt the signing keys at rest. Prefer the _FILE variant."""
    key_encryption_key_file: str = ""
    """A file holding the key-encryption key (base64 of 32 bytes)."""
    issuer: str = "charter"
    """The issuer name written into every grant."""
    max_grant_lifetime_days: int = 366
    """The longest a grant may be valid, from its not-before time to its expiry."""
    clock_skew_seconds: float = 60.0
    """Tolerance for clocks that disagree, when checking validity windows."""
    revocation_heartbeat_seconds: float = 5.0
    """How often the revocation stream sends a heartbeat with the current sequence number."""
    authorization_lease_seconds: float | None = None
    """Set the deployment's authorization lease (kept in the database, shared by every replica) at
    start: the longest ``Authorize`` trusts its in-memory view without re-reading the database's
    change counter. Unset: keep the deployment's value (1 s when the database was made)."""
    usage_window_days: int = 60
    """How old a usage record may be when reported; older ones are refused (``USAGE_TOO_OLD``)."""
    log_origin: str = ""
    """The transparency log's origin: the first line of every checkpoint and the note key name of
    the log's key, a unique name such as ``charter.example/log``. Empty: ``<issuer>/log``."""
    log_interval_seconds: float = 0.2
    """How often the sequencer integrates pending log entries into the tree and signs a checkpoint."""
    log_audit_interval_seconds: float = 3600.0
    """How often the whole stored transparency log is recomputed from its entries and compared with
    its signed checkpoint (first a few seconds after start); 0 disables the audit."""
    log_process: bool = True
    """Run the transparency log (its sequencer, the receipts' entries, the audit) in a process of its
    own beside each server process, so its work takes no time from the calls; off, it runs on
    threads of the server process."""
    log_socket: str = ""
    """Set by ``serve --processes N`` for its children: the Unix socket of the one log process they
    share. Empty: a server with ``log_process`` starts a log process of its own."""

    @property
    def origin(self) -> str:
        """The transparency log's origin (``log_origin``, or ``<issuer>/log``)."""
        return self.log_origin or f"{self.issuer}/log"

    lease_report_grace_seconds: float = 600.0
    """How long after a quota lease expires its decision records are still accepted; then the uses
    leased but not reported go back to the quotas."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``CHARTER_*`` variables, then ``overrides``; validated."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + field.name.upper())
            if raw is not None:
                values[field.name] = _parse(field.name, field.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ``SettingsError`` naming the first invalid setting."""
        _address("listen", self.listen)
        if self.metrics_listen:
            _address("metrics_listen", self.metrics_listen)
        try:
            url = make_url(self.database_url)
        except ArgumentError as error:
            raise _error("database_url", f"is not a database URL: {error}") from None
        if url.get_backend_name() not in DIALECTS:  # storage.dialect: the databases Charter speaks
            raise _error("database_url", "must be a sqlite:/// or postgresql:// URL")
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            raise _error("database_url", "must name a SQLite file (an in-memory database cannot be shared)")
        if self.log_format not in ("auto", "json", "console"):
            raise _error("log_format", "must be auto, json or console")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise _error("log_level", "must be debug, info, warning or error")
        for name in (
            "max_workers",
            "max_concurrent_rpcs",
            "max_message_bytes",
            "db_busy_timeout_ms",
            "db_pool_size",
            "max_streams_per_key",
            "max_unauthenticated_streams",
            "max_streams",
        ):
            if getattr(self, name) < 1:
                raise _error(name, "must be at least 1")
        if self.environment not in ("development", "production"):
            raise _error("environment", "must be development or production")
        if self.key_encryption_key and self.key_encryption_key_file:
            raise _error("key_encryption_key", "and CHARTER_KEY_ENCRYPTION_KEY_FILE are exclusive; set one")
        if self.key_encryption_key_file and not Path(self.key_encryption_key_file).is_file():
            raise _error("key_encryption_key_file", f"names no readable file: {self.key_encryption_key_file}")
        if self.key_encryption_key or self.key_encryption_key_file:
            self.kek()
        elif self.environment == "production":
            raise _error(
                "key_encryption_key",
                "is required in production: set CHARTER_KEY_ENCRYPTION_KEY_FILE to a file holding base64 of "
                "32 random bytes (for example `python3 -c 'import os,base64;print(base64.b64encode(os.urandom(32))"
                ".decode())'`)",
            )
        if self.max_grant_lifetime_days < 1:
            raise _error("max_grant_lifetime_days", "must be at least 1")
        if not 0.05 <= self.revocation_heartbeat_seconds <= 300:
            raise _error("revocation_heartbeat_seconds", "must be between 0.05 and 300")
        self._validate_serving()
        if not 1 <= self.usage_window_days <= 3660:
            raise _error("usage_window_days", "must be between 1 and 3660")
        if not 0 <= self.lease_report_grace_seconds <= 7 * 86400:
            raise _error("lease_report_grace_seconds", "must be between 0 and 604800 (a week)")
        if not 0 <= self.clock_skew_seconds <= 3600:
            raise _error("clock_skew_seconds", "must be between 0 and 3600")
        _issuer_and_log_settings(self)
        for name in ("shutdown_grace_seconds", "auth_cache_seconds"):
            if getattr(self, name) < 0:
                raise _error(name, "must not be negative")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise _error("tls_cert_file", "and CHARTER_TLS_KEY_FILE must be set together")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise _error("tls_client_ca_file", "needs CHARTER_TLS_CERT_FILE and CHARTER_TLS_KEY_FILE")
        for name in ("tls_cert_file", "tls_key_file", "tls_client_ca_file"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise _error(name, f"names no readable file: {path}")

    def _validate_serving(self) -> None:
        if self.authorization_lease_seconds is not None and not 0.01 <= self.authorization_lease_seconds <= 60:
            raise _error("authorization_lease_seconds", "must be between 0.01 and 60")
        if self.max_streams_per_connection < 0:
            raise _error("max_streams_per_connection", "must be 0 (no limit) or more")
        for name, low, high in (
            ("processes", 1, 256),
            ("handshake_timeout_seconds", 0.1, 300),
            ("keepalive_seconds", 1, 7200),
            ("keepalive_timeout_seconds", 0.1, 600),
            ("min_client_ping_seconds", 0.1, 3600),
        ):
            if not low <= getattr(self, name) <= high:
                raise _error(name, f"must be between {low:g} and {high:g}")

    def kek(self) -> bytes | None:
        """The 32-byte key-encryption key, or None when none is configured (development only)."""
        text = self.key_encryption_key
        if self.key_encryption_key_file:
            text = Path(self.key_encryption_key_file).read_text(encoding="utf-8")
        if not text:
            return None
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            name = "key_encryption_key_file" if self.key_encryption_key_file else "key_encryption_key"
            raise _error(name, "must be base64 of exactly 32 bytes")
        return raw

    @property
    def port(self) -> int:
        """The port part of ``listen``."""
        return int(self.listen.rpartition(":")[2])


def _issuer_and_log_settings(settings: Settings) -> None:
    """The issuer, and the log's settings (whose origin defaults to ``<issuer>/log``)."""
    if not settings.issuer.strip() or len(settings.issuer) > 200:
        raise _error("issuer", "must be 1-200 characters")
    try:
        check_key_name(settings.origin)
    except MalformedNote:
        name = "log_origin" if settings.log_origin else "issuer"
        raise _error(name, "must make a log origin without spaces or '+' (set log_origin)") from None
    if len(settings.origin) > 200:
        raise _error("log_origin", "must be at most 200 characters")
    if not 0.01 <= settings.log_interval_seconds <= 10:
        raise _error("log_interval_seconds", "must be from 0.01 to 10")
    if settings.log_audit_interval_seconds < 0:
        raise _error("log_audit_interval_seconds", "must not be negative")


def _error(name: str, message: str) -> SettingsError:
    return SettingsError(f"setting {name} (--{name.replace('_', '-')}, {ENV_PREFIX}{name.upper()}) {message}")


def _address(name: str, value: str) -> None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise _error(name, f"must be host:port, got {value!r}")


def _parse(name: str, kind: Any, raw: str) -> Any:
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    kind = kind.removesuffix(" | None")
    try:
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise _error(name, f"must be a {kind}, got {raw!r}") from None
    return raw


def console_trusted_proxies(raw: str) -> tuple[str, ...]:
    """The console's ``--trusted-proxies`` (``CHARTER_CONSOLE_TRUSTED_PROXIES``): IP addresses or
    networks (``10.0.0.0/8``), separated by commas, of the reverse proxies whose
    ``X-Forwarded-For`` and ``X-Forwarded-Proto`` the console believes. Empty (the default)
    believes nobody's: the address the console sees is the client's."""
    items = tuple(part.strip() for part in raw.split(",") if part.strip())
    name = "setting trusted_proxies (--trusted-proxies, CHARTER_CONSOLE_TRUSTED_PROXIES)"
    if len(items) > 100:
        raise SettingsError(f"{name} must list at most 100 addresses or networks")
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise SettingsError(f"{name} must be IP addresses or networks separated by commas, got {item!r}") from None
    return items


def child_environment(settings: Settings, metrics_dir: str | None = None) -> dict[str, str]:
    """A child process's environment: every setting as its ``CHARTER_*`` variable (a server of
    ``--processes``, a log process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    for field in dataclasses.fields(Settings):
        value = getattr(settings, field.name)
        if value is None or field.name in ("processes", "migrate", "metrics_listen", "authorization_lease_seconds"):
            continue
        env[ENV_PREFIX + field.name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    if metrics_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    return env
