"""Domain records of offline-first generation: licensee keys and quota leases."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class LicenseeKeyState(enum.StrEnum):
    """State of a licensee key (mirrors ``charter.v1.LicenseeKey.State``)."""

    ACTIVE = "active"
    RETIRED = "retired"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class LicenseeKeyRecord:
    """An Ed25519 public key a licensee signs its decision records with."""

    key_id: str
    licensee_id: str
    public_key: bytes
    display_name: str
    state: LicenseeKeyState
    activate_time: datetime
    retire_time: datetime | None
    revoke_time: datetime | None


class LeaseState(enum.StrEnum):
    """State of a quota lease (mirrors ``charter.v1.QuotaLease.State``)."""

    OPEN = "open"
    RETURNED = "returned"
    RECLAIMED = "reclaimed"


@dataclass(frozen=True, slots=True)
class QuotaLeaseRecord:
    """A block of uses of one grant, counted against its quota counters when leased.

    ``day_period`` and ``month_period`` name the counters (``D2026-12-06``, ``M2026-12``) that hold
    the uses ('' when the terms have no such quota); ``capped`` says whether the grant's cap of
    uses counts them too. Whatever is not reported by ``report_deadline`` goes back to them.
    """

    lease_id: str
    licensee_id: str
    character_id: str
    grant_id: str
    uses: int
    reported: int
    state: LeaseState
    day_period: str
    month_period: str
    capped: bool
    create_time: datetime
    expire_time: datetime
    report_deadline: datetime
