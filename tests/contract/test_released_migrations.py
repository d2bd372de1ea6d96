r"""Released migrations are never edited: their bytes are pinned in ``released_migrations.sha256``.

A database that ran a migration never runs it again, so an edited migration leaves deployed
databases different from new ones (0005 was once edited in place; its current text is what is
pinned). To change the schema, add a migration with the next number.

Adding a migration: once it is merged to ``main`` (the lead may renumber it at merge), append its
line to the manifest from the repository root::

    sha256sum server/charter_server/storage/migrations/versions/0009_example.py \
        >> tests/contract/released_migrations.sha256
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ._support import ROOT

VERSIONS = ROOT / "server" / "charter_server" / "storage" / "migrations" / "versions"
MANIFEST = Path(__file__).with_name("released_migrations.sha256")


def _manifest() -> dict[str, str]:
    """Pinned sha256 by path relative to the repository root."""
    pinned: dict[str, str] = {}
    for line in MANIFEST.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            digest, path = line.split(maxsplit=1)
            pinned[path.strip()] = digest
    return pinned


def _migrations() -> dict[str, str]:
    """The sha256 of every migration file, by path relative to the repository root."""
    return {
        str(path.relative_to(ROOT)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(VERSIONS.glob("*.py"))
        if path.name != "__init__.py"
    }


def test_the_manifest_pins_the_migrations_that_exist() -> None:
    pinned = _manifest()
    assert len(pinned) >= 8  # 0001 to 0008 were released before the manifest existed
    assert all(len(digest) == 64 for digest in pinned.values())


def test_no_released_migration_is_edited_or_removed() -> None:
    pinned, found = _manifest(), _migrations()
    # An edited migration: restore it (`git checkout main -- <path>`) and put the change in a new one.
    edited = sorted(path for path, digest in pinned.items() if path in found and found[path] != digest)
    assert edited == []
    # A removed or renamed released migration breaks every database that ran it.
    assert sorted(set(pinned) - set(found)) == []


def test_every_migration_is_in_the_manifest() -> None:
    # A new migration: append its line as the module docstring says (after the lead's renumbering).
    assert sorted(set(_migrations()) - set(_manifest())) == []
