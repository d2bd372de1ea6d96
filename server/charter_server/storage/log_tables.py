"""Table models of the transparency log (made by migration ``0011_transparency_log``)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from charter_server.storage.tables import Base, SeqType


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

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    receipt_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True, index=True)
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
