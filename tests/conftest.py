"""Shared fixtures: a database per backend (SQLite always, PostgreSQL when reachable), a real
server on 127.0.0.1:0 built by the same composition root as production, and a key per role.

Every PostgreSQL run gets its own freshly created database, dropped at the end, so concurrent
runs never collide. The schema is always made by the Alembic migrations.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hypothesis
import pytest
import structlog
from charter_server.app import CharterServer, build_server
from charter_server.config import Settings
from charter_server.domain.models import Principal, Role
from charter_server.services.access import ApiKeyInput
from charter_server.services.catalog import LicenseeInput, RightsHolderInput

# Servers built in process log through structlog's default setup until a test configures it, and
# that default writes each line to whatever sys.stdout is at that moment: a server thread's line
# (the screen warmed, the log process started) landed in the output of a CLI that a test was
# running with Click's runner, which swaps sys.stdout. Their lines go to the real standard error
# instead, which pytest captures during a test but not between two (while it reports one): a
# background thread's info or debug line (a stream ended, receipts integrated) then landed between
# the dots of the run's output. Tests that read the logs configure them themselves; by default
# only warnings and errors are written.
structlog.configure(
    logger_factory=structlog.WriteLoggerFactory(file=sys.__stderr__),
    wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
)

# Property tests: on CI the same examples every run (seeded by each test), so a red build is
# reproducible and never a lottery; locally, new random examples every run, which is how they
# find what nobody thought of. The shared machine is slow at times: no per-example deadline.
hypothesis.settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
hypothesis.settings.register_profile("dev", deadline=None)
hypothesis.settings.load_profile("ci" if os.environ.get("CI") else "dev")

POSTGRES_ADMIN_URL = os.environ.get("CHARTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
WARM_SECONDS = 120.0  # a bound on waiting for a server's analysers to load, not a timing

# The files that take longest, slowest first (the process tests of drains, kills and offline
# backends at the head, then by their seconds in a whole run on three workers). pytest-xdist hands
# whole files to the workers in collection order as they finish the previous ones; its own
# reorder (by number of tests, turned off by `.ci/dev.py test`) put these files of few, slow
# tests last, and one worker then ran them for minutes while the other had nothing left to take.
# Every file of over 45 s (at load 10-20) is listed: one left out was handed out near the end of
# a run, where test_processes.py (3 tests, 177 s) and test_names_fast_path.py (164 s) kept one
# worker busy for minutes after the others had finished.
SLOWEST_FILES = (
    "tests/server/test_drain.py",
    "tests/server/test_offline_processes.py",
    "tests/server/test_usage_processes.py",
    "tests/api/test_offline_authorizer.py",
    "tests/server/test_processes.py",
    "tests/server/test_transparency_log.py",
    "tests/api/test_offline_api.py",
    "tests/api/test_grants_api.py",
    "tests/api/test_import_api.py",
    "tests/api/test_usage_api.py",
    "tests/api/test_bad_input.py",
    "tests/api/test_decide_paths.py",
    "tests/cli/test_audit_cli.py",
    "tests/server/test_log_tamper.py",
    "tests/api/test_registry_snapshot.py",
    "tests/api/test_authorize_api.py",
    "tests/server/test_storage.py",
    "tests/server/test_log_process.py",
    "tests/api/test_revocation_stream.py",
    "tests/console/test_console_hardening.py",
    "tests/server/test_signing_keys.py",
    "tests/server/test_config.py",
    "tests/server/test_lifecycle.py",
    "tests/unit/transparency/test_tiles.py",
    "tests/api/test_names_api.py",
    "tests/api/test_role_matrix.py",
    "tests/server/test_replicas.py",
    "tests/console/test_console_http.py",
    "tests/contract/test_sdk_install.py",
    "tests/server/test_demo_process.py",
    "tests/unit/test_names_fast_path.py",
    "tests/server/test_revocation_stream_processes.py",
    "tests/cli/test_people_cli.py",
    "tests/contract/test_static_checks.py",
    "tests/server/test_offline_quota_processes.py",
    "tests/server/test_receipt_log_entries.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest files first, each file's tests in their own order (the sort is stable)."""
    rank = {path: n for n, path in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


class TestClock:
    """A clock the tests can move; it follows real time plus an offset."""

    def __init__(self) -> None:
        self._offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._offset += delta

    def reset(self) -> None:
        with self._lock:
            self._offset = timedelta()


def _postgres_reason() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    try:
        import psycopg

        with psycopg.connect(_libpq(POSTGRES_ADMIN_URL), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as error:  # any failure means "not reachable" for the skip reason
        return f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {error}"
    return None


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo what the test (`logs.configure`, or a CLI it invokes) did to structlog and the root logger."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test run, dropped afterwards."""
    reason = _postgres_reason()
    if reason is not None:
        pytest.skip(reason)
    import psycopg

    name = f"charter_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(POSTGRES_ADMIN_URL), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(_libpq(POSTGRES_ADMIN_URL), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated-on-demand database URL of each backend."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("sqlite") / "charter.db"
        return f"sqlite:///{path}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def clock() -> TestClock:
    """The clock of every test server."""
    return TestClock()


@pytest.fixture
def moved_clock(clock: TestClock) -> Iterator[TestClock]:
    """The shared clock, reset after the test however it was moved."""
    yield clock
    clock.reset()


@pytest.fixture(scope="session")
def server(database_url: str, clock: TestClock) -> Iterator[CharterServer]:
    """A running server on a free loopback port, one per backend."""
    # A short authorization lease: every revocation waits it out before returning (see
    # charter_server.services.authorization), and the suite revokes a lot.
    settings = Settings(
        listen="127.0.0.1:0",
        database_url=database_url,
        migrate=True,
        log_format="json",
        shutdown_grace_seconds=1.0,
        authorization_lease_seconds=0.05,
    )
    built = build_server(settings, clock=clock)
    built.start()
    # The analysers load in the background at start (1-4 s, 9 s at load average 10): a test that
    # starts its own servers meanwhile would share the GIL with that loading.
    built.services.screen.warmed.wait(WARM_SECONDS)
    try:
        yield built
    finally:
        built.stop(grace=1.0)


@dataclass(frozen=True)
class Keys:
    """A secret per role, plus the rights holder and licensee the scoped keys are bound to."""

    target: str
    admin: str
    rights_holder: str
    generator: str
    auditor: str
    rights_holder_id: str
    licensee_id: str
    admin_key_id: str
    licensee_admin: str = ""

    def secret(self, role: Role) -> str:
        return {
            Role.ADMIN: self.admin,
            Role.RIGHTS_HOLDER: self.rights_holder,
            Role.GENERATOR: self.generator,
            Role.AUDITOR: self.auditor,
            Role.LICENSEE_ADMIN: self.licensee_admin,
        }[role]


def make_keys(server: CharterServer, label: str = "") -> Keys:
    """Create a rights holder, a licensee and a key per role through the real services."""
    services = server.services
    admin = services.access.create_bootstrap_admin(f"test admin {label}".strip())
    staff = Principal(admin.api_key.id, Role.ADMIN)
    suffix = uuid.uuid4().hex[:8]
    holder = services.catalog.create_rights_holder(
        staff, RightsHolderInput(display_name=f"Studio {suffix}", contact_email="rights@studio.example")
    )
    licensee = services.catalog.create_licensee(
        staff, LicenseeInput(display_name=f"App {suffix}", contact_email="ops@app.example", platform="test-app")
    )
    secrets = {}
    for role, rh, lic in (
        (Role.RIGHTS_HOLDER, holder.id, ""),
        (Role.GENERATOR, "", licensee.id),
        (Role.AUDITOR, "", ""),
        (Role.LICENSEE_ADMIN, "", licensee.id),
    ):
        secrets[role] = services.access.create_api_key(
            staff, ApiKeyInput(f"test {role.value}", role, rights_holder_id=rh, licensee_id=lic)
        ).secret
    return Keys(
        target=f"127.0.0.1:{server.port}",
        admin=admin.secret,
        rights_holder=secrets[Role.RIGHTS_HOLDER],
        generator=secrets[Role.GENERATOR],
        auditor=secrets[Role.AUDITOR],
        rights_holder_id=holder.id,
        licensee_id=licensee.id,
        admin_key_id=admin.api_key.id,
        licensee_admin=secrets[Role.LICENSEE_ADMIN],
    )


@pytest.fixture(scope="session")
def keys(server: CharterServer) -> Keys:
    """A key per role on the session's server."""
    return make_keys(server)
