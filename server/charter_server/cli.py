"""The ``charter-server`` command: serve, migrate, create the first admin key, run the demo, health check."""

from __future__ import annotations

import errno
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, TypeVar

import structlog
import typer
from rich.console import Console
from rich.markup import escape

from charter_server import logs
from charter_server.app import CharterServer, StartupError, build_server, build_services, open_database
from charter_server.config import Settings, SettingsError, console_trusted_proxies
from charter_server.domain.clock import SystemClock
from charter_server.domain.errors import DomainError, InvalidArgument
from charter_server.domain.models import Role, SigningKeyPurpose
from charter_server.processes import Supervisor
from charter_server.services.deployment import authorization_lease, set_authorization_lease
from charter_server.storage import migrate as migrations
from charter_server.storage.database import Database

T = TypeVar("T")

log = structlog.get_logger(__name__)

app = typer.Typer(
    help="Charter licensing service. Every option also reads its CHARTER_* environment variable.",
    no_args_is_help=True,
    add_completion=False,
)
# soft_wrap: an error is one line however narrow the terminal (or a CI log) is.
err = Console(stderr=True, soft_wrap=True)


def _opt(name: str, help_text: str, flag: str | None = None) -> Any:
    return typer.Option(
        flag or f"--{name}", envvar=f"CHARTER_{name.upper().replace('-', '_')}", help=help_text, show_default=False
    )


@app.callback()
def _settings(
    ctx: typer.Context,
    listen: Annotated[str | None, _opt("listen", "host:port to serve on [127.0.0.1:50051]")] = None,
    database_url: Annotated[str | None, _opt("database-url", "SQLAlchemy URL [sqlite:///charter.db]")] = None,
    log_format: Annotated[str | None, _opt("log-format", "auto, json or console [auto]")] = None,
    log_level: Annotated[str | None, _opt("log-level", "debug, info, warning or error [info]")] = None,
    max_workers: Annotated[int | None, _opt("max-workers", "threads serving RPCs [16]")] = None,
    max_concurrent_rpcs: Annotated[int | None, _opt("max-concurrent-rpcs", "unary RPCs in flight [256]")] = None,
    max_streams_per_key: Annotated[int | None, _opt("max-streams-per-key", "open streams per API key [2000]")] = None,
    max_unauthenticated_streams: Annotated[
        int | None, _opt("max-unauthenticated-streams", "open streams without a key, in all [512]")
    ] = None,
    max_streams: Annotated[int | None, _opt("max-streams", "open streams per process, in all [10000]")] = None,
    max_streams_per_connection: Annotated[
        int | None, _opt("max-streams-per-connection", "calls open on one connection, 0 no limit [0]")
    ] = None,
    handshake_timeout_seconds: Annotated[
        float | None, _opt("handshake-timeout-seconds", "a new connection's handshake [10]")
    ] = None,
    keepalive_seconds: Annotated[
        float | None, _opt("keepalive-seconds", "ping connections with calls open this often [60]")
    ] = None,
    keepalive_timeout_seconds: Annotated[
        float | None, _opt("keepalive-timeout-seconds", "close a connection whose ping goes unanswered [20]")
    ] = None,
    min_client_ping_seconds: Annotated[
        float | None, _opt("min-client-ping-seconds", "refuse clients pinging more often [10]")
    ] = None,
    max_message_bytes: Annotated[int | None, _opt("max-message-bytes", "largest message [4194304]")] = None,
    preload: Annotated[
        bool | None,
        _opt("preload", "load the analysers and word lists at start [on]", "--preload/--no-preload"),
    ] = None,
    shutdown_grace_seconds: Annotated[float | None, _opt("shutdown-grace-seconds", "drain time [10]")] = None,
    auth_cache_seconds: Annotated[float | None, _opt("auth-cache-seconds", "API key cache [5]")] = None,
    db_busy_timeout_ms: Annotated[int | None, _opt("db-busy-timeout-ms", "SQLite lock wait [5000]")] = None,
    db_pool_size: Annotated[int | None, _opt("db-pool-size", "PostgreSQL pool size [10]")] = None,
    tls_cert_file: Annotated[str | None, _opt("tls-cert-file", "PEM server certificate")] = None,
    tls_key_file: Annotated[str | None, _opt("tls-key-file", "PEM server key")] = None,
    tls_client_ca_file: Annotated[str | None, _opt("tls-client-ca-file", "PEM CA for mutual TLS")] = None,
    metrics_listen: Annotated[str | None, _opt("metrics-listen", "host:port of Prometheus metrics")] = None,
    environment: Annotated[str | None, _opt("environment", "development or production [development]")] = None,
    key_encryption_key_file: Annotated[
        str | None, _opt("key-encryption-key-file", "file with base64 of 32 bytes that encrypts signing keys")
    ] = None,
    issuer: Annotated[str | None, _opt("issuer", "issuer name written into grants [charter]")] = None,
    max_grant_lifetime_days: Annotated[int | None, _opt("max-grant-lifetime-days", "longest grant [366]")] = None,
    clock_skew_seconds: Annotated[float | None, _opt("clock-skew-seconds", "validity tolerance [60]")] = None,
    revocation_heartbeat_seconds: Annotated[
        float | None, _opt("revocation-heartbeat-seconds", "revocation stream heartbeat [5]")
    ] = None,
    authorization_lease_seconds: Annotated[
        float | None,
        _opt("authorization-lease-seconds", "set the deployment's lease (shared by every replica) at start"),
    ] = None,
    usage_window_days: Annotated[int | None, _opt("usage-window-days", "oldest usage record accepted [60]")] = None,
    log_origin: Annotated[str | None, _opt("log-origin", "transparency log origin [<issuer>/log]")] = None,
    log_interval_seconds: Annotated[
        float | None, _opt("log-interval-seconds", "transparency log batch interval [0.2]")
    ] = None,
    log_audit_interval_seconds: Annotated[
        float | None, _opt("log-audit-interval-seconds", "full transparency log audit, 0 off [3600]")
    ] = None,
    log_process: Annotated[
        bool | None,
        _opt("log-process", "the transparency log in a process of its own [on]", "--log-process/--no-log-process"),
    ] = None,
    lease_report_grace_seconds: Annotated[
        float | None,
        _opt("lease-report-grace-seconds", "records of an expired quota lease accepted for [600]"),
    ] = None,
) -> None:
    overrides = {k: v for k, v in locals().items() if k != "ctx"}
    try:
        # Options already fell back to the environment; from_env fills in only what is left.
        ctx.obj = Settings.from_env(**overrides)
    except SettingsError as error:
        _print_error(str(error))
        raise typer.Exit(2) from None
    logs.configure(ctx.obj.log_format, ctx.obj.log_level)


def _print_error(message: str) -> None:
    """One line on stderr: whitespace (driver messages span lines) collapsed, brackets not read as markup."""
    err.print(f"[red]error:[/red] {escape(' '.join(message.split()))}")


def _fail(message: str) -> typer.Exit:
    _print_error(message)
    return typer.Exit(1)


SIGNAL_CHECK_SECONDS = 0.2
"""How often the serving main thread wakes to run a signal handler that another thread received."""


def _serve(server: CharterServer, *, supervised: bool = False) -> None:
    """Serve until SIGTERM or SIGINT, drain, and return (or end the process, see below).

    A child of ``--processes`` (``supervised``) also drains when its supervisor is gone, even
    killed with ``kill -9``: nobody would restart it or stop it, and a supervisor started again on
    the same port would share it with the orphans (``SO_REUSEPORT``), an upgrade's old code among them.
    """
    stop_thread: list[threading.Thread] = []
    parent = os.getppid()

    def _drain() -> None:
        if not stop_thread:  # a second signal during the drain changes nothing
            thread = threading.Thread(target=server.stop, name="charter-shutdown", daemon=True)
            stop_thread.append(thread)
            thread.start()

    def _on_signal(_signum: int, _frame: FrameType | None) -> None:
        _drain()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.start()
    # Python runs signal handlers in the main thread, between bytecodes. A signal the kernel hands
    # to another thread (gRPC's, say) does not wake a main thread blocked on a lock, so an untimed
    # wait could miss a SIGTERM for good: waking now and then lets the handler run.
    while not server.wait(SIGNAL_CHECK_SECONDS):
        if supervised and not stop_thread and os.getppid() != parent:  # re-parented: the supervisor died
            log.warning("server.supervisor_gone", supervisor_pid=parent)
            _drain()
    # Drained and stopped, with everything committed and the log written: leave now. The
    # interpreter's own teardown (gRPC's threads, a worker thread still in a call that outlived the
    # grace period) can take seconds, past the grace period the orchestrator allows.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@app.command()
def serve(
    ctx: typer.Context,
    migrate: Annotated[
        bool, typer.Option("--migrate", envvar="CHARTER_MIGRATE", help="Apply pending migrations first.")
    ] = False,
    processes: Annotated[
        int | None,
        typer.Option("--processes", envvar="CHARTER_PROCESSES", help="server processes on one port [1]"),
    ] = None,
    reuse_port: Annotated[bool, typer.Option("--reuse-port", hidden=True)] = False,
) -> None:
    """Serve the gRPC API until SIGTERM or SIGINT, then drain gracefully."""
    settings: Settings = ctx.obj
    overrides: dict[str, Any] = {}
    if migrate:
        overrides["migrate"] = True
    if processes is not None:
        overrides["processes"] = processes
    if overrides:
        try:
            settings = Settings.from_env(**{**_as_dict(settings), **overrides})
        except SettingsError as error:
            _print_error(str(error))
            raise typer.Exit(2) from None
    if settings.processes > 1 and not reuse_port:
        try:
            _prepare(settings)
        except StartupError as error:
            raise _fail(str(error)) from None
        raise typer.Exit(Supervisor(settings, settings.processes).run())
    try:
        server = build_server(settings, reuse_port=reuse_port)
    except StartupError as error:
        raise _fail(str(error)) from None
    _serve(server, supervised=reuse_port)


def _prepare(settings: Settings) -> None:
    """What the children of ``--processes`` must not race to do: migrate, make the first signing
    keys (of grants and of the log), apply the lease setting."""
    db = open_database(settings)
    try:
        if settings.authorization_lease_seconds is not None:
            set_authorization_lease(db, settings.authorization_lease_seconds)
        keys = build_services(settings, db, SystemClock()).keys
        keys.ensure_active_key()
        keys.ensure_active_key(SigningKeyPurpose.TRANSPARENCY_LOG)
    except (RuntimeError, DomainError) as error:
        raise StartupError(str(error)) from error
    finally:
        db.dispose()


settings_app = typer.Typer(help="Settings every replica of the deployment shares (kept in the database).")
app.add_typer(settings_app, name="settings")


@settings_app.command("show")
def settings_show(ctx: typer.Context) -> None:
    """Print the deployment's shared settings."""
    lease = _with_database(ctx, authorization_lease)
    print(f"authorization_lease_seconds {lease.seconds:g}")
    if lease.longest > lease.seconds:
        print(f"  (the previous lease, {lease.previous_seconds:g} s, still counts for {lease.longest:.3g} s more)")


@settings_app.command("set")
def settings_set(
    ctx: typer.Context,
    authorization_lease_seconds: Annotated[
        float,
        typer.Option(
            "--authorization-lease-seconds",
            help="the longest any replica's Authorize trusts its memory; revocations wait this long",
        ),
    ],
) -> None:
    """Change the deployment's shared settings; every replica follows within its current lease."""
    try:
        before, after = _with_database(ctx, lambda db: set_authorization_lease(db, authorization_lease_seconds))
    except InvalidArgument as error:
        _print_error(f"authorization_lease_seconds {error.violations[0].description}")
        raise typer.Exit(2) from None
    print(f"authorization_lease_seconds {after.seconds:g} (was {before.seconds:g})")


def _with_database(ctx: typer.Context, action: Callable[[Database], T]) -> T:
    settings: Settings = ctx.obj
    try:
        db = open_database(settings)
    except StartupError as error:
        raise _fail(str(error)) from None
    try:
        return action(db)
    finally:
        db.dispose()


@app.command()
def migrate(ctx: typer.Context) -> None:
    """Apply pending database migrations, then exit."""
    settings: Settings = ctx.obj
    db = Database(settings.database_url, busy_timeout_ms=settings.db_busy_timeout_ms)
    try:
        migrations.upgrade(db.engine)
    except Exception as error:
        raise _fail(f"migration failed: {error}") from None
    finally:
        db.dispose()
    err.print("database is up to date")


@app.command("create-admin-key")
def create_admin_key(
    ctx: typer.Context,
    display_name: Annotated[str, typer.Option("--display-name", help="Who holds the key.")] = "first admin",
) -> None:
    """Create an admin API key for a new deployment and print its secret once."""
    settings: Settings = ctx.obj
    try:
        db = open_database(settings)
    except StartupError as error:
        raise _fail(str(error)) from None
    try:
        created = build_services(settings, db, SystemClock()).access.create_bootstrap_admin(display_name)
    finally:
        db.dispose()
    err.print(f"created admin key {created.api_key.id}; the secret is shown only now:")
    print(created.secret)


def _console_settings(
    server: str, server_ca_file: str | None, *, secure_cookies: bool, trusted_proxies: tuple[str, ...] = ()
) -> Any:
    from charter_server.console.web import ConsoleSettings

    return ConsoleSettings(
        server=server,
        server_root_certificates=_read(server_ca_file) if server_ca_file else None,
        secure_cookies=secure_cookies,
        trusted_proxies=trusted_proxies,
    )


@app.command()
def console(
    ctx: typer.Context,
    listen: Annotated[
        str, typer.Option("--listen", envvar="CHARTER_CONSOLE_LISTEN", help="host:port of the console [127.0.0.1:8080]")
    ] = "127.0.0.1:8080",
    server: Annotated[
        str | None,
        typer.Option("--server", envvar="CHARTER_CONSOLE_SERVER", help="the Charter gRPC server [127.0.0.1:50051]"),
    ] = None,
    server_ca_file: Annotated[
        str | None,
        typer.Option(
            "--server-ca-file", envvar="CHARTER_CONSOLE_SERVER_CA_FILE", help="PEM roots: call the server over TLS"
        ),
    ] = None,
    tls_cert_file: Annotated[
        str | None, typer.Option("--console-tls-cert-file", envvar="CHARTER_CONSOLE_TLS_CERT_FILE", help="serve HTTPS")
    ] = None,
    tls_key_file: Annotated[
        str | None, typer.Option("--console-tls-key-file", envvar="CHARTER_CONSOLE_TLS_KEY_FILE", help="its key")
    ] = None,
    secure_cookies: Annotated[
        bool,
        typer.Option("--secure-cookies", envvar="CHARTER_CONSOLE_SECURE_COOKIES", help="behind a TLS proxy"),
    ] = False,
    trusted_proxies: Annotated[
        str,
        typer.Option(
            "--trusted-proxies",
            envvar="CHARTER_CONSOLE_TRUSTED_PROXIES",
            help="IP addresses or networks of reverse proxies whose X-Forwarded-For is believed [none]",
        ),
    ] = "",
) -> None:
    """Serve the web console for rights holders, staff and auditors (a client of the gRPC API)."""
    from charter_server.console.serve import ConsoleServer

    settings: Settings = ctx.obj
    if (tls_cert_file is None) != (tls_key_file is None):
        raise _fail("give both --console-tls-cert-file and --console-tls-key-file, or neither")
    try:
        proxies = console_trusted_proxies(trusted_proxies)
    except SettingsError as error:
        _print_error(str(error))
        raise typer.Exit(2) from None
    try:
        web = ConsoleServer(
            _console_settings(
                server or settings.listen,
                server_ca_file,
                secure_cookies=secure_cookies or bool(tls_cert_file),
                trusted_proxies=proxies,
            ),
            listen,
            certfile=tls_cert_file,
            keyfile=tls_key_file,
        )
    except (OSError, ValueError) as error:
        raise _fail(f"cannot serve the console on {listen}: {error}") from None
    Console().print(f"Charter console on {web.url} (calling {server or settings.listen})")
    web.serve_forever()


def _tool_paths() -> tuple[str, str]:
    """The Python and the ``charter`` CLI of this installation, quoted for a shell."""
    bin_dir = Path(sys.executable).parent
    charter_cli = bin_dir / "charter"
    return shlex.quote(sys.executable), shlex.quote(str(charter_cli)) if charter_cli.exists() else "charter"


def _demo_console(settings: Settings, server: CharterServer, listen: str) -> Any:
    """The demo's console (not started yet), or None when ``listen`` is ``off``."""
    from charter_server.console.serve import ConsoleServer

    if listen == "off":
        return None
    host = settings.listen.rpartition(":")[0] or "127.0.0.1"
    console_settings = _console_settings(f"{host}:{server.port}", None, secure_cookies=False)
    try:
        try:
            return ConsoleServer(console_settings, listen)
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            # The demo must start whatever else runs on this machine: another free port will do.
            return ConsoleServer(console_settings, f"{listen.rpartition(':')[0]}:0")
    except (OSError, ValueError) as error:
        raise _fail(f"cannot serve the console on {listen}: {error} (--console-listen off to skip it)") from None


@app.command()
def demo(
    ctx: typer.Context,
    listen: Annotated[str | None, typer.Option("--listen", help="host:port to serve on [127.0.0.1:50051]")] = None,
    console_listen: Annotated[
        str,
        typer.Option("--console-listen", envvar="CHARTER_CONSOLE_LISTEN", help="host:port of the web console, or off"),
    ] = "127.0.0.1:8080",
) -> None:
    """Migrate, seed a small demo catalogue with a key per role (printed once), serve the API and the console."""
    from charter_server import demo as demo_data

    settings: Settings = ctx.obj
    overrides: dict[str, Any] = {"migrate": True} if listen is None else {"migrate": True, "listen": listen}
    settings = Settings.from_env(**{**_as_dict(settings), **overrides})
    try:
        server = build_server(settings)
    except StartupError as error:
        raise _fail(str(error)) from None
    with server.db.uow() as uow:
        seeded_before = uow.api_keys.count_admins() > 0
    out = Console(soft_wrap=True)  # ids are never broken across lines, whatever the width
    # Where it really listens: with port 0 (`--listen 127.0.0.1:0`) the port the server was given.
    address = f"{settings.listen.rpartition(':')[0]}:{server.port}"
    web = _demo_console(settings, server, console_listen)
    if seeded_before:
        out.print(
            "[yellow]Demo data already present; its keys were printed when it was created.[/yellow]\n"
            f"Delete the database ({settings.database_url}) to start afresh."
        )
    else:
        data = demo_data.seed(server.services)
        out.print(f"[bold]Charter demo[/bold] on {address} ({settings.database_url})")
        out.print(f"rights holder {data.rights_holder_id}, licensee {data.licensee_id}")
        out.print(f"character {data.character_id} (Aoi Hoshino, opted in under the fan-noncommercial template)")
        out.print(f"grant {data.grant_id} of that character to the licensee, for a year")
        out.print("API keys, shown only now (store them; only their hashes are kept):")
        for role, secret in data.secrets.items():
            print(f"  {role.value:<14} {secret}")
        # Full paths, so that the commands work when pasted into a new shell without .venv on PATH.
        python, charter_cli = _tool_paths()
        target = shlex.quote(address)
        print("\nTry the SDK from another terminal:")
        snippet = (
            f'import charter; c = charter.Client("{address}", api_key="{data.secrets[Role.ADMIN]}"); '
            "print([h.display_name for h in c.list_rights_holders()])"
        )
        print(f"  {python} -c {shlex.quote(snippet)}")
        print("\nAsk, as the generation backend, whether a prompt may be rendered:")
        print(
            f"  {charter_cli} --target {target} --api-key {data.secrets[Role.GENERATOR]} "
            "authorize --prompt 'Hoshino Aoi dancing on a stage' --use-type image-generation --rating all-ages"
        )
        print("\nSee, as the rights holder, this month's revenue-share statement (one use is already reported):")
        print(
            f"  {charter_cli} --target {target} --api-key {data.secrets[Role.RIGHTS_HOLDER]} "
            f"statements show --period {datetime.now(UTC):%Y-%m}"
        )
        if web is not None:
            print(f"\nThe web console is at {web.url}; sign in as the rights holder once with this link:")
            print(f"  {web.sign_in_link(data.secrets[Role.RIGHTS_HOLDER])}")
        sys.stdout.flush()
    if web is not None and seeded_before:
        out.print(f"The web console is at {web.url} (sign in with a key printed when the demo was created).")
    if web is not None:
        web.start()
        sys.stdout.flush()
    _serve(server)


@app.command()
def healthcheck(
    ctx: typer.Context,
    target: Annotated[str | None, typer.Option("--target", help="host:port [127.0.0.1:<listen port>]")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 3.0,
    ca_file: Annotated[
        str | None,
        _opt("healthcheck-tls-ca-file", "PEM roots to verify the server with [the --tls-cert-file]", "--tls-ca-file"),
    ] = None,
    client_cert_file: Annotated[
        str | None,
        _opt("healthcheck-tls-client-cert-file", "PEM client certificate for mutual TLS", "--tls-client-cert-file"),
    ] = None,
    client_key_file: Annotated[
        str | None,
        _opt("healthcheck-tls-client-key-file", "PEM key of the client certificate", "--tls-client-key-file"),
    ] = None,
    server_name: Annotated[
        str | None,
        _opt(
            "healthcheck-tls-server-name",
            "name the server certificate must carry [the target's host]",
            "--tls-server-name",
        ),
    ] = None,
) -> None:
    """Exit 0 when the gRPC health service answers SERVING, 1 otherwise (for container health checks).

    With TLS configured (--tls-cert-file) it speaks TLS; under mutual TLS give it a client
    certificate the server's --tls-client-ca-file signed.
    """
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    settings: Settings = ctx.obj
    address = target or f"127.0.0.1:{settings.port}"
    if bool(client_cert_file) != bool(client_key_file):
        _print_error("--tls-client-cert-file and --tls-client-key-file go together")
        raise typer.Exit(2)
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    try:
        if settings.tls_cert_file or ca_file or client_cert_file:
            roots = _read(ca_file or settings.tls_cert_file) if (ca_file or settings.tls_cert_file) else None
            credentials = grpc.ssl_channel_credentials(
                root_certificates=roots,
                private_key=_read(client_key_file) if client_key_file else None,
                certificate_chain=_read(client_cert_file) if client_cert_file else None,
            )
            channel = grpc.secure_channel(address, credentials, options=options)
        else:
            channel = grpc.insecure_channel(address)
    except OSError as error:
        raise _fail(f"health check cannot read {error.filename}: {error.strerror}") from None
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
    except grpc.RpcError as error:
        raise _fail(f"health check failed: {error.code().name}") from None
    finally:
        channel.close()
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(status)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise typer.Exit(1)


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _as_dict(settings: Settings) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(settings)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive use
        sys.exit(130)
