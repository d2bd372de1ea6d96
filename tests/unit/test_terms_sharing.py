"""`charter.terms_sharing.compiled`: compiled terms shared by content answer exactly as compiling
each terms message afresh, carry their own version and character, and are never shared between
terms that differ in anything else."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from charter.terms import CompiledTerms, UseContext
from charter.terms_sharing import compiled
from charter.v1 import terms_pb2 as t
from google.protobuf.timestamp_pb2 import Timestamp

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def standard(**changes: object) -> t.Terms:
    """A rights holder's standard terms, as a grant carries them."""
    fields: dict[str, object] = {
        "permitted_use_types": [t.USE_TYPE_VIDEO_GENERATION, t.USE_TYPE_IMAGE_GENERATION],
        "max_content_rating": t.CONTENT_RATING_TEEN,
        "excluded_territories": ["KP"],
        "allowed_platforms": ["video-app"],
        "prohibited_co_appearance_ids": ["chr_" + "9" * 32],
        "valid_until": Timestamp(seconds=int(NOW.timestamp()) + 3600),
        "attribution_text": "Character (c) Studio",
        "revenue_share_bps": 250,
    }
    fields.update(changes)
    return t.Terms(**fields)  # type: ignore[arg-type]


def contexts() -> list[UseContext]:
    return [
        UseContext(use, rating, NOW, territory=territory, platform=platform, co_characters=co, commercial=commercial)
        for use, rating, territory, platform, co, commercial in itertools.product(
            (t.USE_TYPE_VIDEO_GENERATION, t.USE_TYPE_CAMEO),
            (t.CONTENT_RATING_ALL_AGES, t.CONTENT_RATING_ADULT),
            ("JP", "KP", ""),
            ("video-app", "other"),
            ((), ("chr_" + "9" * 32,)),
            (False, True),
        )
    ]


def same_answers(left: CompiledTerms, right: CompiledTerms) -> bool:
    return all(left.evaluate(c) == right.evaluate(c) for c in contexts()) and left.obligations == right.obligations


def test_identical_terms_share_one_compiled_form() -> None:
    first, second = compiled(standard()), compiled(standard())
    assert first is second
    assert same_answers(first, CompiledTerms.from_terms(standard()))


@pytest.mark.parametrize("character_id", ["chr_" + "a" * 32, "chr_" + "b" * 200, ""])
@pytest.mark.parametrize("version", [0, 3, 300])
def test_terms_differing_in_version_or_character_share_the_rest_under_their_own_labels(
    character_id: str, version: int
) -> None:
    base = compiled(standard(character_id="chr_" + "c" * 32, version=1))
    labelled = compiled(standard(character_id=character_id, version=version))
    assert (labelled.character_id, labelled.version) == (character_id, version)
    assert same_answers(labelled, CompiledTerms.from_terms(standard(character_id=character_id, version=version)))
    assert labelled.obligations is base.obligations  # shared, not compiled again


def test_relabelling_carries_every_compiled_field() -> None:
    source = CompiledTerms.from_terms(standard(daily_quota=5, valid_from=Timestamp(seconds=10)))
    other = source.relabelled(7, "chr_" + "e" * 32)
    for name in CompiledTerms.__slots__:
        if name not in ("version", "character_id"):
            assert getattr(other, name) is getattr(source, name), name
    assert (other.version, other.character_id) == (7, "chr_" + "e" * 32)


@pytest.mark.parametrize(
    "changes",
    [
        {"permitted_use_types": [t.USE_TYPE_CAMEO]},
        {"max_content_rating": t.CONTENT_RATING_ADULT},
        {"excluded_territories": []},
        {"allowed_platforms": ["other"]},
        {"prohibited_co_appearance_ids": []},
        {"valid_until": Timestamp(seconds=1)},
        {"attribution_text": "Another studio"},
        {"revenue_share_bps": 251},
        {"daily_quota": 0},
        {"commercial_use_allowed": True},
    ],
)
def test_terms_differing_in_anything_else_are_never_shared(changes: dict[str, object]) -> None:
    plain = compiled(standard(character_id="chr_" + "f" * 32))
    changed = compiled(standard(character_id="chr_" + "f" * 32, **changes))
    assert changed is not plain
    assert same_answers(changed, CompiledTerms.from_terms(standard(**changes)))
    assert not same_answers(changed, plain) or changed.daily_quota != plain.daily_quota
