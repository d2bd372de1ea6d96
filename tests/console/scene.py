"""A rights holder's world for the console tests, made through the SDK as staff and a generator:
characters with names in several scripts, terms, a grant to a licensee with a display name, and
reported uses, so that every console page has something real to show."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import charter
from charter.usage import UsageReport
from charter.v1 import api_key_pb2, character_pb2, terms_pb2

_KANA = "カキクケコサシスセソタチツテトナ"


def unique(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def alias(value: str, language: str, kind: int = character_pb2.Alias.KIND_NICKNAME) -> character_pb2.Alias:
    return character_pb2.Alias(value=value, language=language, kind=kind)


def simple_terms(**changes: Any) -> terms_pb2.Terms:
    terms = terms_pb2.Terms(
        permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION, terms_pb2.USE_TYPE_VIDEO_GENERATION],
        max_content_rating=terms_pb2.CONTENT_RATING_TEEN,
        commercial_use_allowed=True,
        revenue_share_bps=1_000,
        per_use_fee=terms_pb2.Money(currency_code="USD", minor_units=25),
    )
    for name, value in changes.items():
        if isinstance(value, terms_pb2.Money):
            getattr(terms, name).CopyFrom(value)
        else:
            setattr(terms, name, value)
    return terms


@dataclass(frozen=True)
class Scene:
    """A fresh rights holder (and its key), two characters, a licensee holding a grant on the
    first, and uses of it reported today."""

    target: str
    holder_id: str
    holder_name: str
    holder_key: str
    kana: str  # a name in katakana that only the first character has
    first_id: str
    first_name: str
    second_id: str
    second_name: str
    licensee_id: str
    licensee_name: str
    grant_id: str
    generator_key: str
    period: str


def make_scene(target: str, admin: str, *, licensee_name: str = "", first_name: str = "") -> Scene:
    marker = unique()
    with charter.Client(target, api_key=admin) as staff:
        holder = staff.create_rights_holder(display_name=f"Studio {marker}", contact_email="rights@studio.example")
        holder_key = staff.create_api_key(
            display_name=f"console {marker}", role=api_key_pb2.ROLE_RIGHTS_HOLDER, rights_holder_id=holder.id
        ).secret
        # Eight kana from sixteen that no normalisation folds together and whose readings (ka, shi,
        # tsu...) split one way only: four kana (with small kana, voicing) collided across a suite.
        kana = "ホシノ" + "".join(_KANA[int(c, 16)] for c in marker)
        first = staff.create_character(
            rights_holder_id=holder.id,
            canonical_name=first_name or f"Aoi {marker}",
            franchise="Stage",
            aliases=[alias(kana, "ja"), alias(f"Aoi-chan {marker}", "en")],
        )
        second = staff.create_character(rights_holder_id=holder.id, canonical_name=f"Ren {marker}", franchise="Stage")
        staff.opt_in(first.id, simple_terms())
        staff.opt_in(second.id, simple_terms())
        licensee = staff.create_licensee(
            display_name=licensee_name or f"Render App {marker}", contact_email="ops@app.example", platform="web"
        )
        grant = staff.issue_grant(
            character_id=first.id, licensee_id=licensee.id, expire_time=datetime.now(UTC) + timedelta(days=200)
        )
        generator_key = staff.create_api_key(
            display_name=f"gen {marker}", role=api_key_pb2.ROLE_GENERATOR, licensee_id=licensee.id
        ).secret
    with charter.Client(target, api_key=generator_key) as generator:
        reports = []
        for number in range(3):
            decision = generator.authorize(
                character_ids=[first.id],
                use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION,
                content_rating=terms_pb2.CONTENT_RATING_ALL_AGES,
                commercial=True,
            )
            assert decision.allowed, decision
            reports.append(
                UsageReport(
                    receipt=decision.receipt,
                    character_id=first.id,
                    uses=1,
                    revenue_minor_units=1_000 + number,
                    currency="USD",
                    idempotency_key=f"console-{marker}-{number}",
                )
            )
        results = generator.report_usage(reports)
        assert all(r.accepted for r in results), results
    return Scene(
        target=target,
        holder_id=holder.id,
        holder_name=holder.display_name,
        holder_key=holder_key,
        kana=kana,
        first_id=first.id,
        first_name=first.canonical_name,
        second_id=second.id,
        second_name=second.canonical_name,
        licensee_id=licensee.id,
        licensee_name=licensee.display_name,
        grant_id=grant.id,
        generator_key=generator_key,
        period=f"{datetime.now(UTC):%Y-%m}",
    )
