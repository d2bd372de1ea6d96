"""The one composition root: ``build_server(settings)`` wires storage, services and transport.

The entry point and the tests both use it; nothing here runs at import time.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import prometheus_client
import structlog
from charter.v1 import (
    access_service_pb2,
    access_service_pb2_grpc,
    authorization_service_pb2,
    authorization_service_pb2_grpc,
    catalog_service_pb2,
    catalog_service_pb2_grpc,
    grant_service_pb2,
    grant_service_pb2_grpc,
    key_service_pb2,
    key_service_pb2_grpc,
    offline_service_pb2,
    offline_service_pb2_grpc,
    transparency_service_pb2,
    transparency_service_pb2_grpc,
    usage_service_pb2,
    usage_service_pb2_grpc,
)

from charter_server.api.access import AccessServicer
from charter_server.api.authorization import AuthorizationServicer
from charter_server.api.catalog import CatalogServicer
from charter_server.api.grants import GrantServicer, KeyServicer
from charter_server.api.offline import OfflineServicer
from charter_server.api.serving import StartupFailed, Transport, TransportOptions
from charter_server.api.transparency import TransparencyServicer
from charter_server.api.usage import UsageServicer
from charter_server.api.watch import RevocationStreams
from charter_server.config import Settings
from charter_server.domain.clock import Clock, SystemClock
from charter_server.domain.errors import DomainError
from charter_server.domain.models import SigningKeyPurpose
from charter_server.log_process import LogProcess
from charter_server.services.access import AccessService, Authenticator
from charter_server.services.authorization import AuthorizationService, AuthorizationView
from charter_server.services.catalog import CatalogService
from charter_server.services.characters import CharacterService
from charter_server.services.deployment import set_authorization_lease
from charter_server.services.grant_bundles import GrantBundleService
from charter_server.services.grants import GrantService
from charter_server.services.keys import DEVELOPMENT_KEK, KeyService
from charter_server.services.leases import LeaseService
from charter_server.services.licensee_keys import LicenseeKeyService
from charter_server.services.registry_snapshots import RegistrySnapshotService
from charter_server.services.revocations import RevocationFeed
from charter_server.services.screening import PromptScreen
from charter_server.services.statements import StatementService
from charter_server.services.transparency.appender import LogAppender
from charter_server.services.transparency.audit import LogAuditor
from charter_server.services.transparency.feed import LogFeed
from charter_server.services.transparency.reader import TransparencyLog
from charter_server.services.transparency.receipts import ReceiptLog
from charter_server.services.transparency.sequencer import LogHealth, Sequencer
from charter_server.services.usage import UsageService
from charter_server.services.usage_series import UsageSeriesService
from charter_server.storage import migrate
from charter_server.storage.database import Database
from charter_server.storage.dialect import UnsupportedDatabase

log = structlog.get_logger(__name__)

_FILES = (
    catalog_service_pb2.DESCRIPTOR,
    access_service_pb2.DESCRIPTOR,
    grant_service_pb2.DESCRIPTOR,
    key_service_pb2.DESCRIPTOR,
    authorization_service_pb2.DESCRIPTOR,
    usage_service_pb2.DESCRIPTOR,
    transparency_service_pb2.DESCRIPTOR,
    offline_service_pb2.DESCRIPTOR,
)
SERVICE_NAMES = (
    catalog_service_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,
    access_service_pb2.DESCRIPTOR.services_by_name["AccessService"].full_name,
    grant_service_pb2.DESCRIPTOR.services_by_name["GrantService"].full_name,
    key_service_pb2.DESCRIPTOR.services_by_name["KeyService"].full_name,
    authorization_service_pb2.DESCRIPTOR.services_by_name["AuthorizationService"].full_name,
    usage_service_pb2.DESCRIPTOR.services_by_name["UsageService"].full_name,
    transparency_service_pb2.DESCRIPTOR.services_by_name["TransparencyService"].full_name,
    offline_service_pb2.DESCRIPTOR.services_by_name["OfflineService"].full_name,
)
INLINE_METHODS = frozenset(
    {
        "/charter.v1.AuthorizationService/Authorize",
        "/charter.v1.AuthorizationService/ScreenPrompt",
        "/charter.v1.AuthorizationService/GetKeySet",
        "/charter.v1.CatalogService/ListTermsTemplates",
    }
)
"""Methods whose common path reads only memory: their bodies are tried on the event loop first
(see ``charter_server.api.dispatch``)."""


class StartupError(RuntimeError):
    """The server cannot start; the message says why and what to do."""


@dataclass
class Services:
    """The domain services, for in-process callers such as the server CLI."""

    catalog: CatalogService
    characters: CharacterService
    keys: KeyService
    grants: GrantService
    access: AccessService
    authenticator: Authenticator
    screen: PromptScreen
    feed: RevocationFeed
    view: AuthorizationView
    authorization: AuthorizationService
    usage: UsageService
    statements: StatementService
    appender: LogAppender
    sequencer: Sequencer
    receipt_log: ReceiptLog
    log_process: LogProcess | None
    log: TransparencyLog
    auditor: LogAuditor
    usage_series: UsageSeriesService
    licensee_keys: LicenseeKeyService
    bundles: GrantBundleService
    leases: LeaseService
    registry: RegistrySnapshotService


@dataclass
class CharterServer:
    """A built server: call ``start()``, then ``stop()`` (graceful) when done."""

    settings: Settings
    db: Database
    services: Services
    transport: Transport
    port: int
    _metrics: Any = None
    _stopped: threading.Event = field(default_factory=threading.Event)
    _stopping: threading.Lock = field(default_factory=threading.Lock)

    @property
    def draining(self) -> bool:
        """Whether shutdown has begun."""
        return self.transport.draining

    def start(self) -> None:
        """Start serving and report SERVING on the health service."""
        self.services.screen.start()
        self.services.view.start()
        if self.services.log_process is not None:
            # Built here, the first checkpoint left this process holding the lease: the log
            # process's sequencer takes it at once.
            self.services.sequencer.release()
            self.services.log_process.start()
        else:
            self.services.receipt_log.start()
            self.services.sequencer.start()
            self.services.auditor.start()
        self.transport.start()
        if self.settings.metrics_listen:
            host, _, port = self.settings.metrics_listen.rpartition(":")
            self._metrics, _thread = prometheus_client.start_http_server(int(port), addr=host)
        log.info(
            "server.started",
            listen=self.settings.listen,
            port=self.port,
            database=self.db.dialect.name,
            pid=os.getpid(),
        )

    def stop(self, grace: float | None = None) -> None:
        """Go NOT_SERVING, refuse new calls, let in-flight calls finish within the grace period."""
        if not self._stopping.acquire(blocking=False):  # a second call waits for the first
            self._stopped.wait()
            return
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        log.info("server.stopping", grace_seconds=grace)
        began = time.monotonic()
        self.transport.stop(grace)
        if self._metrics is not None:
            self._metrics.shutdown()
        self.services.screen.stop()
        self.services.view.stop()
        if self.services.log_process is not None:
            # What the drain left of the grace period (a little kept for the exit itself).
            self.services.log_process.stop(timeout=max(0.2, grace - (time.monotonic() - began) - 0.2))
        else:
            self.services.auditor.stop()
            # Receipts first: the sequencer's last batch then integrates them.
            self.services.receipt_log.stop()
            self.services.sequencer.stop()
        self.db.dispose()
        log.info("server.stopped", unfinished_calls=self.transport.unfinished)
        self._stopped.set()

    def flush_log(self, timeout: float = 10.0) -> bool:
        """Commit every receipt signed so far to the transparency log (integrated, or pending for
        the sequencer of another replica); whether that was done within ``timeout`` seconds."""
        if self.services.log_process is not None:
            return self.services.log_process.settle(timeout)
        self.services.receipt_log.flush()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped, or ``timeout`` seconds; whether it has stopped."""
        return self._stopped.wait(timeout)


def build_services(settings: Settings, db: Database, clock: Clock) -> Services:
    """The domain services over one database."""
    view = AuthorizationView(db)
    authenticator = Authenticator(db, clock, cache_seconds=settings.auth_cache_seconds, freshness=view.current)
    kek = settings.kek()
    if kek is None:
        log.warning(
            "signing_keys.development_kek",
            detail="no key-encryption key configured; signing keys are "
            "NOT protected at rest (production refuses to start like this)",
        )
        kek = DEVELOPMENT_KEK
    appender = LogAppender(clock)
    receipt_log = ReceiptLog(db, clock)
    health = LogHealth()
    log_process = LogProcess(settings, health, receipt_log) if settings.log_process else None
    receipts = receipt_log if log_process is None else log_process
    keys = KeyService(db, clock, kek, log_origin=settings.origin, log=appender)
    feed = RevocationFeed(db, clock, heartbeat_seconds=settings.revocation_heartbeat_seconds)
    # Committed changes announce themselves (storage.uow): the feed wakes its watchers first, then
    # the view reloads, and after a change that takes something away waits out the lease.
    db.events.subscribe(feed.on_committed)
    db.events.subscribe(view.on_committed)
    # Every change that commits is logged in its own transaction (services.transparency.feed).
    db.events.subscribe_in_transaction(LogFeed(appender).on_changes)
    grants = GrantService(
        db,
        clock,
        keys,
        issuer=settings.issuer,
        max_lifetime=timedelta(days=settings.max_grant_lifetime_days),
        skew=timedelta(seconds=settings.clock_skew_seconds),
    )
    screen = PromptScreen(db, preload=settings.preload)
    licensee_keys = LicenseeKeyService(db, clock)
    leases = LeaseService(db, clock, report_grace=timedelta(seconds=settings.lease_report_grace_seconds))
    return Services(
        catalog=CatalogService(db, clock),
        characters=CharacterService(db, clock, revoke_grants=grants.revoke_for_character),
        keys=keys,
        grants=grants,
        access=AccessService(db, clock),
        authenticator=authenticator,
        screen=screen,
        feed=feed,
        view=view,
        authorization=AuthorizationService(
            db,
            clock,
            keys,
            screen,
            view,
            grants.verifier,
            issuer=settings.issuer,
            log_origin=settings.origin,
            receipt_log=receipts,
        ),
        usage=UsageService(db, clock, keys, window=timedelta(days=settings.usage_window_days), log=appender),
        statements=StatementService(db, clock),
        appender=appender,
        sequencer=Sequencer(
            db, keys, settings.origin, health, interval=settings.log_interval_seconds, receipts=receipt_log
        ),
        receipt_log=receipt_log,
        log_process=log_process,
        log=TransparencyLog(db, health, is_buffered=receipts.is_buffered),
        auditor=LogAuditor(db, health, interval=settings.log_audit_interval_seconds),
        usage_series=UsageSeriesService(db),
        licensee_keys=licensee_keys,
        bundles=GrantBundleService(db, clock),
        leases=leases,
        registry=RegistrySnapshotService(db, clock, keys, issuer=settings.issuer),
    )


def open_database(settings: Settings) -> Database:
    """Open the database, migrating it when asked, and refuse an out-of-date schema."""
    try:
        db = Database(
            settings.database_url, busy_timeout_ms=settings.db_busy_timeout_ms, pool_size=settings.db_pool_size
        )
    except UnsupportedDatabase as error:
        raise StartupError(str(error)) from error
    try:
        if settings.migrate:
            migrate.upgrade(db.engine)
        if not migrate.is_current(db.engine):
            raise StartupError(
                "the database schema is not up to date: run `charter-server migrate` "
                "(or start with --migrate / CHARTER_MIGRATE=true)"
            )
    except StartupError:
        db.dispose()
        raise
    except Exception as error:
        db.dispose()
        # Never the password: this message reaches the terminal and the logs.
        shown = db.engine.url.render_as_string(hide_password=True)
        raise StartupError(f"cannot use the database at {shown!r}: {error}") from error
    return db


def _credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if not settings.tls_cert_file:
        return None
    cert = Path(settings.tls_cert_file).read_bytes()
    key = Path(settings.tls_key_file).read_bytes()
    client_ca = Path(settings.tls_client_ca_file).read_bytes() if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def transport_options(settings: Settings, *, reuse_port: bool = False) -> TransportOptions:
    """What the transport takes from the settings."""
    return TransportOptions(
        listen=settings.listen,
        credentials=_credentials(settings),
        max_workers=settings.max_workers,
        max_concurrent_rpcs=settings.max_concurrent_rpcs,
        max_message_bytes=settings.max_message_bytes,
        max_streams_per_key=settings.max_streams_per_key,
        max_unauthenticated_streams=settings.max_unauthenticated_streams,
        max_streams=settings.max_streams,
        max_streams_per_connection=settings.max_streams_per_connection,
        handshake_timeout_seconds=settings.handshake_timeout_seconds,
        keepalive_seconds=settings.keepalive_seconds,
        keepalive_timeout_seconds=settings.keepalive_timeout_seconds,
        min_client_ping_seconds=settings.min_client_ping_seconds,
        inline_methods=INLINE_METHODS,
        reuse_port=reuse_port,
    )


def build_server(settings: Settings, *, clock: Clock | None = None, reuse_port: bool = False) -> CharterServer:
    """Build (but do not start) a server from ``settings``; ``reuse_port`` lets several processes
    listen on one port (``--processes``)."""
    settings.validate()
    clock = clock or SystemClock()
    db = open_database(settings)
    try:
        if settings.authorization_lease_seconds is not None:
            set_authorization_lease(db, settings.authorization_lease_seconds)
        services = build_services(settings, db, clock)
        services.keys.ensure_active_key()
        services.keys.ensure_active_key(SigningKeyPurpose.TRANSPARENCY_LOG)
        # The first checkpoint (of the empty tree, for a new deployment) before the first call.
        services.sequencer.integrate()
    except (RuntimeError, DomainError) as error:
        db.dispose()
        raise StartupError(str(error)) from error
    executor = futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="charter-rpc")
    streams = RevocationStreams(services.feed, executor)
    registrations = (
        lambda server: catalog_service_pb2_grpc.add_CatalogServiceServicer_to_server(
            CatalogServicer(services.catalog, services.characters), server
        ),
        lambda server: access_service_pb2_grpc.add_AccessServiceServicer_to_server(
            AccessServicer(services.access, clock), server
        ),
        lambda server: grant_service_pb2_grpc.add_GrantServiceServicer_to_server(
            GrantServicer(services.grants), server
        ),
        lambda server: key_service_pb2_grpc.add_KeyServiceServicer_to_server(KeyServicer(services.keys), server),
        lambda server: authorization_service_pb2_grpc.add_AuthorizationServiceServicer_to_server(
            AuthorizationServicer(services.keys, services.grants, services.screen, streams, services.authorization),
            server,
        ),
        lambda server: usage_service_pb2_grpc.add_UsageServiceServicer_to_server(
            UsageServicer(services.usage, services.statements, services.usage_series), server
        ),
        lambda server: offline_service_pb2_grpc.add_OfflineServiceServicer_to_server(
            OfflineServicer(
                services.licensee_keys,
                services.bundles,
                services.leases,
                services.grants,
                services.keys,
                services.registry,
            ),
            server,
        ),
        lambda server: transparency_service_pb2_grpc.add_TransparencyServiceServicer_to_server(
            TransparencyServicer(services.log, settings.origin), server
        ),
    )
    try:
        transport = Transport(
            transport_options(settings, reuse_port=reuse_port),
            authenticator=services.authenticator,
            feed=services.feed,
            registrations=registrations,
            service_files=_FILES,
            service_names=SERVICE_NAMES,
            executor=executor,
        )
    except StartupFailed as error:
        executor.shutdown(wait=False)
        db.dispose()
        raise StartupError(str(error)) from error
    return CharterServer(settings, db, services, transport, transport.port)
