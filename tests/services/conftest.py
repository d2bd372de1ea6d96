"""Fixtures of the fast service tests: the services called directly, no gRPC, on real SQLite.

The schema is made once per session with the Alembic migrations (as everywhere) into a template
file; each test gets its own copy, which takes about a millisecond. The clock is the test's.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from charter_server.domain.models import Principal, Role
from charter_server.services.catalog import CatalogService, LicenseeInput, RightsHolderInput
from charter_server.services.keys import KeyService
from charter_server.storage import migrate
from charter_server.storage.database import Database

KEK = bytes(range(32))
_SHM = Path("/dev/shm")
ADMIN = Principal("key_admin", Role.ADMIN)


class StillClock:
    """A clock that stands still until the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.time = now

    def now(self) -> datetime:
        """The time the test set."""
        return self.time

    def advance(self, by: timedelta) -> None:
        """Move the time on."""
        self.time += by


@pytest.fixture(scope="session")
def schema_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file at the newest migration, made once."""
    path = tmp_path_factory.mktemp("schema") / "template.db"
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db.engine)
    db.dispose()  # the last connection checkpoints the WAL into the file
    return path


@pytest.fixture
def db(schema_template: Path) -> Iterator[Database]:
    """A database of this test's own, migrated; in memory-backed files where the system has them,
    so that the commits' fsyncs cost nothing."""
    folder = Path(tempfile.mkdtemp(prefix="charter-service-", dir=_SHM if _SHM.is_dir() else None))
    path = folder / "charter.db"
    shutil.copyfile(schema_template, path)
    database = Database(f"sqlite:///{path}")
    try:
        yield database
    finally:
        database.dispose()
        shutil.rmtree(folder)


@pytest.fixture
def clock() -> StillClock:
    """The test's clock: 5 November 2026, noon UTC."""
    return StillClock(datetime(2026, 11, 5, 12, tzinfo=UTC))


@pytest.fixture
def keys(db: Database, clock: StillClock) -> KeyService:
    """The signing keys, with the first key made."""
    service = KeyService(db, clock, KEK)
    # Made long before the test's time, so that receipts of past decisions verify.
    now, clock.time = clock.time, clock.time - timedelta(days=365)
    service.ensure_active_key()
    clock.time = now
    return service


@dataclass(frozen=True)
class Parties:
    """A rights holder and a licensee, and their callers."""

    rights_holder_id: str
    licensee_id: str
    holder: Principal
    generator: Principal


@pytest.fixture
def parties(db: Database, clock: StillClock) -> Parties:
    """A rights holder and a licensee made through the catalogue service."""
    catalog = CatalogService(db, clock)
    holder = catalog.create_rights_holder(ADMIN, RightsHolderInput("Studio", "rights@studio.example"))
    licensee = catalog.create_licensee(ADMIN, LicenseeInput("Video app", "ops@video.example", "video-app"))
    return Parties(
        holder.id,
        licensee.id,
        Principal("key_holder", Role.RIGHTS_HOLDER, rights_holder_id=holder.id),
        Principal("key_generator", Role.GENERATOR, licensee_id=licensee.id),
    )
