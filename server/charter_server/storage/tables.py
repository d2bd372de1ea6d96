"""SQLAlchemy table models. The schema itself is made only by the Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to storage")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RightsHolderRow(Base):
    """A rights holder."""

    __tablename__ = "rights_holders"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    legal_name: Mapped[str] = mapped_column(String(300))
    contact_email: Mapped[str] = mapped_column(String(254))
    revenue_share_account: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), index=True)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime())
    update_time: Mapped[datetime] = mapped_column(UTCDateTime())
    archive_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LicenseeRow(Base):
    """A licensee."""

    __tablename__ = "licensees"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    legal_name: Mapped[str] = mapped_column(String(300))
    contact_email: Mapped[str] = mapped_column(String(254))
    platform: Mapped[str] = mapped_column(String(63), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime())
    update_time: Mapped[datetime] = mapped_column(UTCDateTime())
    archive_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiKeyRow(Base):
    """An API key; only the SHA-256 of its secret is stored."""

    __tablename__ = "api_keys"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), index=True)
    rights_holder_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("rights_holders.id"), nullable=True)
    licensee_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("licensees.id"), nullable=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    expire_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    creator_key_id: Mapped[str] = mapped_column(String(40))
    create_time: Mapped[datetime] = mapped_column(UTCDateTime())
    revoke_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RequestRecordRow(Base):
    """The outcome of an idempotent create, keyed by caller, method and request id."""

    __tablename__ = "request_records"

    caller_key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    method: Mapped[str] = mapped_column(String(100), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(40))
    create_time: Mapped[datetime] = mapped_column(UTCDateTime())


class CharacterRow(Base):
    """A character; its aliases are stored as JSON, their normalised keys in ``character_names``."""

    __tablename__ = "characters"
    __table_args__ = (UniqueConstraint("rights_holder_id", "external_id", name="uq_characters_external_id"),)

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    rights_holder_id: Mapped[str] = mapped_column(String(40), ForeignKey("rights_holders.id"), index=True)
    # NULL when the rights holder gave none, so the unique constraint ignores it.
    external_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    canonical_name: Mapped[str] = mapped_column(String(200))
    franchise: Mapped[str] = mapped_column(String(200))
    franchise_key: Mapped[str] = mapped_column(String(200), index=True)
    description: Mapped[str] = mapped_column(Text)
    reference_urls: Mapped[list[str]] = mapped_column(JSON)
    aliases: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), index=True)
    state_before_suspension: Mapped[str | None] = mapped_column(String(16), nullable=True)
    terms_version: Mapped[int] = mapped_column(Integer)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime())
    update_time: Mapped[datetime] = mapped_column(UTCDateTime())
    archive_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    canonical_name_ambiguous: Mapped[bool] = mapped_column(Boolean, default=False)
    keyword_sets: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)


class CharacterNameRow(Base):
    """One normalised name (canonical or alias) of a character: for search and collision checks."""

    __tablename__ = "character_names"

    character_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("characters.id", ondelete="CASCADE"), primary_key=True
    )
    normalized: Mapped[str] = mapped_column(String(400), primary_key=True, index=True)
    rights_holder_id: Mapped[str] = mapped_column(String(40))
    ambiguous: Mapped[bool] = mapped_column(Boolean)
    skeleton: Mapped[str | None] = mapped_column(String(400), nullable=True, index=True)


class TermsVersionRow(Base):
    """One immutable version of a character's terms: the serialized ``charter.v1.Terms``."""

    __tablename__ = "terms_versions"

    character_id: Mapped[str] = mapped_column(String(40), ForeignKey("characters.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    terms: Mapped[bytes] = mapped_column(LargeBinary)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime())
    author_key_id: Mapped[str] = mapped_column(String(40))


class SigningKeyRow(Base):
    """An Ed25519 signing key; the private key is encrypted under the key-encryption key."""

    __tablename__ = "signing_keys"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(40), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    encrypted_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16))
    activate_time: Mapped[datetime] = mapped_column(UTCDateTime())
    retire_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoke_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoke_reason: Mapped[str] = mapped_column(String(500))
    purpose: Mapped[str] = mapped_column(String(24), default="grants")


class GrantRow(Base):
    """An issued grant with its signed envelope."""

    __tablename__ = "grants"
    # Which licensees hold grants on a rights holder's characters: the licensees a rights holder
    # may read the public profiles of.
    __table_args__ = (Index("ix_grants_rights_holder_licensee", "rights_holder_id", "licensee_id"),)

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    character_id: Mapped[str] = mapped_column(String(40), ForeignKey("characters.id"), index=True)
    rights_holder_id: Mapped[str] = mapped_column(String(40), index=True)
    licensee_id: Mapped[str] = mapped_column(String(40), ForeignKey("licensees.id"), index=True)
    terms_version: Mapped[int] = mapped_column(Integer)
    terms: Mapped[bytes] = mapped_column(LargeBinary)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    expire_time: Mapped[datetime] = mapped_column(UTCDateTime())
    issue_time: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16), index=True)
    state_reason: Mapped[str] = mapped_column(String(500))
    state_time: Mapped[datetime] = mapped_column(UTCDateTime())
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    signing_key_id: Mapped[str] = mapped_column(String(40), index=True)
    max_uses: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class RevocationEventRow(Base):
    """The revocation log: its sequence numbers come from ``counters`` so they commit in order."""

    __tablename__ = "revocation_events"

    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    grant_id: Mapped[str] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    event_time: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(String(500))
    character_id: Mapped[str] = mapped_column(String(40), server_default="")


class CounterRow(Base):
    """Named counters, incremented under a row lock so numbers are handed out in commit order."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class QuotaCounterRow(Base):
    """Uses counted against a quota: one row per licensee, character and period (``D2026-11-21``,
    ``M2026-11``), raised only by a conditional single-statement update."""

    __tablename__ = "quota_counters"

    licensee_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    character_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger)


class GrantUseRow(Base):
    """Uses counted against a grant's lifetime cap, raised only by a conditional single-statement update."""

    __tablename__ = "grant_uses"

    grant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger)


class LicenseeKeyRow(Base):
    """An Ed25519 public key a licensee registered for its decision records."""

    __tablename__ = "licensee_keys"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(40), unique=True)
    licensee_id: Mapped[str] = mapped_column(String(40), index=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    activate_time: Mapped[datetime] = mapped_column(UTCDateTime())
    retire_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoke_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoke_reason: Mapped[str] = mapped_column(String(500))


class QuotaLeaseRow(Base):
    """A block of uses counted against a grant's quota counters, spent offline; ``reported`` is
    raised only by a conditional single-statement update that never passes ``uses``."""

    __tablename__ = "quota_leases"
    __table_args__ = (Index("ix_quota_leases_reclaim", "state", "report_deadline"),)

    lease_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    licensee_id: Mapped[str] = mapped_column(String(40), index=True)
    character_id: Mapped[str] = mapped_column(String(40))
    grant_id: Mapped[str] = mapped_column(String(40))
    uses: Mapped[int] = mapped_column(BigInteger)
    reported: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    day_period: Mapped[str] = mapped_column(String(16))
    month_period: Mapped[str] = mapped_column(String(16))
    capped: Mapped[bool] = mapped_column(Boolean)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime())
    expire_time: Mapped[datetime] = mapped_column(UTCDateTime())
    report_deadline: Mapped[datetime] = mapped_column(UTCDateTime())


class AuthorizationRow(Base):
    """An Authorize decision that counted a quota (an ``AuthorizeResponse`` with its decision and receipt),
    kept so a retry returns it instead of counting again."""

    __tablename__ = "authorizations"

    receipt_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    licensee_id: Mapped[str] = mapped_column(String(40), index=True)
    decide_time: Mapped[datetime] = mapped_column(UTCDateTime())
    response: Mapped[bytes] = mapped_column(LargeBinary)


class UsageRecordRow(Base):
    """An accepted usage record: what a licensee rendered, under its idempotency key, forever.

    Everything a statement needs is copied from the verified receipt when the record is accepted
    (the rights holder, the grant, the revenue share and the fee), so statements never depend on
    terms or grants that change later. ``statement_period`` is fixed on acceptance: the month the
    use happened, or the next open month when that one was already closed (an adjustment).
    """

    __tablename__ = "usage_records"
    __table_args__ = (
        UniqueConstraint("licensee_id", "idempotency_key"),
        Index("ix_usage_records_statement", "rights_holder_id", "statement_period"),
        Index("ix_usage_records_happened", "rights_holder_id", "happen_time"),
    )

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    licensee_id: Mapped[str] = mapped_column(String(40))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(64))
    receipt_id: Mapped[str] = mapped_column(String(40), index=True)
    character_id: Mapped[str] = mapped_column(String(40))
    rights_holder_id: Mapped[str] = mapped_column(String(40))
    grant_id: Mapped[str] = mapped_column(String(40))
    uses: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    revenue_minor: Mapped[int] = mapped_column(BigInteger)
    revenue_share_bps: Mapped[int] = mapped_column(Integer)
    fee_minor: Mapped[int] = mapped_column(BigInteger)
    happen_time: Mapped[datetime] = mapped_column(UTCDateTime())
    happen_period: Mapped[str] = mapped_column(String(7))
    statement_period: Mapped[str] = mapped_column(String(7))
    accept_time: Mapped[datetime] = mapped_column(UTCDateTime())


class UsageDailyRow(Base):
    """The daily roll-up of usage records: per rights holder, UTC day of use, character and licensee.

    ``ReportUsage`` adds each accepted record to its row in the same transaction that inserts the
    record (one conditional upsert per batch), so the roll-up always equals the records' sums;
    usage series read it instead of the records (at most one row per character, licensee and day).
    """

    __tablename__ = "usage_daily"
    # On SQLite the rows live in the primary key's order (no rowid table beside it), so a range of
    # days is read in one pass over the key, the sums included.
    __table_args__ = ({"sqlite_with_rowid": False},)

    rights_holder_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    character_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    licensee_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    records: Mapped[int] = mapped_column(BigInteger)
    uses: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(BigInteger)


class UsageDailyCharacterRow(Base):
    """``usage_daily`` summed over licensees: per rights holder, UTC day and character.

    Kept with ``usage_daily`` in the same upsert batch; a series per character over all licensees
    reads it (one row per character and day instead of one per character, licensee and day).
    """

    __tablename__ = "usage_daily_characters"
    # Days last in the key: a series' days are one range of it, and summing per series walks the
    # key in order (on SQLite, whose rows are stored in the key's order, with no sort).
    __table_args__ = ({"sqlite_with_rowid": False},)

    rights_holder_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    character_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    records: Mapped[int] = mapped_column(BigInteger)
    uses: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(BigInteger)


class UsageDailyLicenseeRow(Base):
    """``usage_daily`` summed over characters: per rights holder, UTC day and licensee (see
    ``UsageDailyCharacterRow``)."""

    __tablename__ = "usage_daily_licensees"
    __table_args__ = ({"sqlite_with_rowid": False},)

    rights_holder_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    licensee_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    records: Mapped[int] = mapped_column(BigInteger)
    uses: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(BigInteger)


class StatementAmountRow(Base):
    """The revenue and the fees (fee x uses) one licensee's records add to a rights holder's
    statement month in one currency, in minor units: what its accepted usage records add up to.

    ``ReportUsage`` adds each accepted record with money to its row in the same transaction that
    inserts the record, so the bounds on a month's amounts (``MAX_STATEMENT_MINOR_UNITS`` for the
    month, a tenth of it for each licensee) are checked against the month's few rows instead of a
    sum over its records.
    """

    __tablename__ = "statement_amounts"
    __table_args__ = ({"sqlite_with_rowid": False},)

    rights_holder_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    statement_period: Mapped[str] = mapped_column(String(7), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    licensee_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    revenue: Mapped[int] = mapped_column(BigInteger)
    fees: Mapped[int] = mapped_column(BigInteger)


class DecisionHourRow(Base):
    """Decisions per hour: per character, hour, licensee, use context and outcome, how many.

    Filled from the receipts as they are logged (``services.transparency.receipts``), one upsert
    per batch; ``PreviewTerms`` replays proposed terms over it. A use context is kept once as its
    canonical text (``context``), keyed by a digest of it so the key stays short.
    """

    __tablename__ = "decision_hours"
    # On SQLite the rows live in the primary key's order: one character's range of hours is one pass.
    __table_args__ = ({"sqlite_with_rowid": False},)

    character_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)  # hours since 1970 (UTC)
    licensee_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    context_digest: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(400), primary_key=True)  # "" allowed, else the deny reasons
    context: Mapped[str] = mapped_column(Text)
    decisions: Mapped[int] = mapped_column(BigInteger)


class ReceiptUseRow(Base):
    """Uses a licensee reported against one receipt's (or decision record's) character, raised only
    by a conditional single-statement update that never passes the receipt's capacity. Keyed by the
    licensee too: a decision record's id is chosen by the SDK, so another licensee may use the same
    one, and must never block this licensee's record (migration 0015)."""

    __tablename__ = "receipt_uses"

    licensee_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    receipt_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    character_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger)


class StatementClosureRow(Base):
    """A closed statement period of one rights holder."""

    __tablename__ = "statement_closures"

    rights_holder_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    close_time: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_by_key_id: Mapped[str] = mapped_column(String(40))


DEPLOYMENT_SETTINGS_ID = 1
"""The id of `DeploymentSettingsRow`'s one row."""


class DeploymentSettingsRow(Base):
    """The one row of settings every replica of a deployment shares (see ``storage.deployment``)."""

    __tablename__ = "deployment_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    authorization_lease_ms: Mapped[int] = mapped_column(BigInteger)
    previous_lease_ms: Mapped[int] = mapped_column(BigInteger)
    lease_changed_ms: Mapped[int] = mapped_column(BigInteger)
    page_token_key: Mapped[bytes] = mapped_column(LargeBinary(64))
