"""Table models of the transparency log (made by migration ``0011_transparency_log``, the entries'
lookup indexes changed by ``0014_log_lookup_prefixes``)."""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import BigInteger, ColumnElement, Index, Integer, LargeBinary, String, literal_column
from sqlalchemy.orm import Mapped, mapped_column

from charter_server.storage.tables import Base, SeqType

LOOKUP_PREFIX_BYTES: Final = 4
"""How many leading bytes of an entry's leaf hash and receipt digest their indexes hold."""


def lookup_prefix(column: Any) -> ColumnElement[Any]:
    """``substr(column, 1, 4)``, with constant arguments: the expression of the entries' lookup
    indexes, which the databases use only for a query that has this very expression."""
    return literal_column(f"substr({column.name}, 1, {LOOKUP_PREFIX_BYTES})")


class LogPendingRow(Base):
    """An entry appended in the transaction of the change it records, not yet integrated."""

    __tablename__ = "log_pending"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    receipt_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True, index=True)
    rights_holder_id: Mapped[str] = mapped_column(String(40))
    licensee_id: Mapped[str] = mapped_column(String(40))


class LogEntryRow(Base):
    """An integrated entry: its index, its bytes exactly as logged, who may read it."""

    __tablename__ = "log_entries"
    # Found by leaf hash and by receipt digest through indexes of their first bytes (see
    # migration 0014): a third of the size of whole-hash indexes, which every entry inserts into.
    __table_args__ = (
        Index("ix_log_entries_leaf_hash_prefix", literal_column(f"substr(leaf_hash, 1, {LOOKUP_PREFIX_BYTES})")),
        Index(
            "ix_log_entries_receipt_digest_prefix",
            literal_column(f"substr(receipt_digest, 1, {LOOKUP_PREFIX_BYTES})"),
        ),
    )

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    receipt_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    rights_holder_id: Mapped[str] = mapped_column(String(40))
    licensee_id: Mapped[str] = mapped_column(String(40))
    integrate_ms: Mapped[int] = mapped_column(BigInteger)


class LogTileRow(Base):
    """A C2SP tile of the tree: concatenated 32-byte hashes (``charter.transparency.tiles``)."""

    __tablename__ = "log_tiles"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hashes: Mapped[bytes] = mapped_column(LargeBinary)


class LogCheckpointRow(Base):
    """A signed checkpoint, kept for good (witnesses may ask for any size they saw)."""

    __tablename__ = "log_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(40))
    sign_ms: Mapped[int] = mapped_column(BigInteger)


class LogHeadRow(Base):
    """The one row: the integrated tree's size and root, and the sequencer's lease."""

    __tablename__ = "log_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    lease_holder: Mapped[str] = mapped_column(String(64))
    lease_until_ms: Mapped[int] = mapped_column(BigInteger)
