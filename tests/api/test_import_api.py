"""Bulk import through gRPC: per-row outcomes, nothing half-written for a failed row, idempotent
re-import by external id, terms in rows, batch limits and ownership.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from charter.v1 import catalog_service_pb2 as catalog_pb
from charter.v1 import terms_pb2 as t
from charter_server.domain import ids

from .character_helpers import (
    ARCHIVED,
    OPTED_IN,
    OPTED_OUT,
    Alias,
    Character,
    Holder,
    alias,
    create,
    get,
    kana_marker,
    list_all,
    new_holder,
    opt_in,
    refused,
    terms,
    versions,
)
from .helpers import auth, unique

Row = catalog_pb.ImportRow
Result = catalog_pb.ImportRowResult
CREATED, UPDATED, UNCHANGED, FAILED = (
    Result.OUTCOME_CREATED,
    Result.OUTCOME_UPDATED,
    Result.OUTCOME_UNCHANGED,
    Result.OUTCOME_FAILED,
)


@pytest.fixture
def holder(catalog: Any, access: Any, keys: Any) -> Holder:
    """A fresh rights holder per test, so its catalogue holds exactly what the test imported."""
    return new_holder(catalog, access, keys.admin)


def row(
    external_id: str,
    *,
    name: str | None = None,
    aliases: tuple[Alias, ...] = (),
    with_terms: t.Terms | None = None,
    **fields: Any,
) -> Row:
    character = Character(
        external_id=external_id,
        canonical_name=f"Chara {unique()}" if name is None else name,
        aliases=list(aliases),
        **fields,
    )
    return Row(character=character, terms=with_terms)


def run_import(catalog: Any, secret: str, holder_id: str, rows: list[Row]) -> list[Result]:
    request = catalog_pb.ImportCharactersRequest(rights_holder_id=holder_id, rows=rows)
    return list(catalog.ImportCharacters(request, metadata=auth(secret)).results)


def catalogue(catalog: Any, secret: str, holder_id: str) -> list[Character]:
    """Every character of a rights holder, archived ones included, as staff see them."""
    request = catalog_pb.ListCharactersRequest(rights_holder_id=holder_id)
    live, _ = list_all(catalog.ListCharacters, request, "characters", secret)
    archived, _ = list_all(
        catalog.ListCharacters,
        catalog_pb.ListCharactersRequest(rights_holder_id=holder_id, state=ARCHIVED),
        "characters",
        secret,
    )
    return live + archived


def summary(results: list[Result]) -> list[tuple[int, str, int, str, list[str]]]:
    return [(r.index, r.external_id, r.outcome, r.error_reason, [v.field for v in r.field_violations]) for r in results]


def test_good_rows_go_in_and_bad_rows_are_reported_and_leave_nothing_behind(
    catalog: Any, access: Any, keys: Any, holder: Holder
) -> None:
    other = new_holder(catalog, access, keys.admin)
    taken = kana_marker()
    create(catalog, other.secret, other.id, aliases=(alias(f"ミク{taken}"),))
    m, k = unique(), kana_marker()
    rows = [
        row(f"good-{m}-0", name=f"Hatsune Miku {m}", aliases=(alias(f"初音ミク{k}", kind=Alias.KIND_OFFICIAL_NAME),)),
        row("", aliases=(alias(f"無番{k}"),)),
        row(f"good-{m}-2", with_terms=terms(revenue_share_bps=250)),
        row(f"bad-{m}-3", name=""),
        row(f"bad-{m}-4", aliases=(alias(f"言語{k}", language="not a tag!"),)),
        row(f"bad-{m}-5", aliases=(alias(f"条件{k}"),), with_terms=terms(revenue_share_bps=10_001)),
        row(f"bad-{m}-6", aliases=(alias(f"種類{k}"), Alias(value=f"種類二{k}", language="ja", kind=99))),
        row(f"bad-{m}-7", aliases=(alias(f"自分{k}"), alias(f"ﾐｸ{taken}"))),
        # Valid on its own; fails only when its terms are checked against the database, after the
        # character itself was written: the row must still leave nothing behind.
        row(f"bad-{m}-8", aliases=(alias(f"後{k}"),), with_terms=terms(allowed_licensee_ids=[ids.new_id("licensee")])),
        row(f"good-{m}-9", franchise="Piapro"),
    ]

    results = run_import(catalog, holder.secret, holder.id, rows)
    stored = catalogue(catalog, keys.admin, holder.id)

    assert summary(results) == [
        (0, f"good-{m}-0", CREATED, "", []),
        (1, "", FAILED, "INVALID_FIELD", ["character.external_id"]),
        (2, f"good-{m}-2", CREATED, "", []),
        (3, f"bad-{m}-3", FAILED, "INVALID_FIELD", ["character.canonical_name"]),
        (4, f"bad-{m}-4", FAILED, "INVALID_FIELD", ["character.aliases[0].language"]),
        (5, f"bad-{m}-5", FAILED, "INVALID_FIELD", ["terms.revenue_share_bps"]),
        (6, f"bad-{m}-6", FAILED, "INVALID_FIELD", ["character.aliases[1].kind"]),
        (7, f"bad-{m}-7", FAILED, "ALIAS_CONFLICT", []),
        (8, f"bad-{m}-8", FAILED, "INVALID_FIELD", ["terms.allowed_licensee_ids[0]"]),
        (9, f"good-{m}-9", CREATED, "", []),
    ]
    assert all(r.character_id == "" for r in results if r.outcome == FAILED)
    assert [(c.id, c.external_id) for c in stored] == [(results[i].character_id, f"good-{m}-{i}") for i in (0, 2, 9)]
    assert (stored[0].state, stored[1].state, stored[1].terms_version) == (OPTED_OUT, OPTED_IN, 1)
    assert stored[0].aliases[0].normalized.startswith("初音みく")
    assert versions(catalog, keys.admin, stored[1].id)[0].revenue_share_bps == 250
    # No names of the failed rows were indexed: nobody finds them, and another rights holder may take them.
    for name in (f"無番{k}", f"言語{k}", f"条件{k}", f"種類{k}", f"自分{k}", f"後{k}"):
        assert (
            list_all(catalog.ListCharacters, catalog_pb.ListCharactersRequest(query=name), "characters", keys.admin)[0]
            == []
        )
    create(catalog, other.secret, other.id, aliases=tuple(alias(n) for n in (f"自分{k}", f"後{k}", f"条件{k}")))
    # No character kept a failed row's external id: fixing the rows creates them afresh.
    fixed = run_import(
        catalog,
        holder.secret,
        holder.id,
        [row(f"bad-{m}-3"), row(f"bad-{m}-8", with_terms=terms(allowed_licensee_ids=[keys.licensee_id]))],
    )
    assert [r.outcome for r in fixed] == [CREATED, CREATED]
    assert [v.version for v in versions(catalog, keys.admin, fixed[1].character_id)] == [1]


def test_reimporting_the_same_batch_changes_nothing(catalog: Any, keys: Any, holder: Holder) -> None:
    m, k = unique(), kana_marker()
    rows = [
        row(
            f"r-{m}-0",
            name=f"Kagamine Rin {m}",
            franchise="Piapro",
            description="Twin.",
            reference_urls=["https://piapro.example/rin"],
            aliases=(alias(f"鏡音リン{k}", kind=Alias.KIND_OFFICIAL_NAME), alias(f"Rin {m}", "ja-Latn", 4)),
        ),
        row(f"r-{m}-1", with_terms=terms(allowed_territories=["jp", "JP"], permitted_use_types=[1, 2, 1])),
        row(
            f"r-{m}-2",
            aliases=(alias(f"  レン{k} "),),
            with_terms=t.Terms(
                permitted_use_types=[t.USE_TYPE_CAMEO],
                max_content_rating=t.CONTENT_RATING_ALL_AGES,
                per_use_fee=t.Money(currency_code="JPY", minor_units=10),
                daily_quota=0,
            ),
        ),
    ]

    first = run_import(catalog, holder.secret, holder.id, rows)
    before = catalogue(catalog, keys.admin, holder.id)
    again = run_import(catalog, holder.secret, holder.id, rows)
    by_staff = run_import(catalog, keys.admin, holder.id, rows)

    assert [r.outcome for r in first] == [CREATED, CREATED, CREATED]
    assert [r.outcome for r in again] == [r.outcome for r in by_staff] == [UNCHANGED, UNCHANGED, UNCHANGED]
    assert [r.character_id for r in again] == [r.character_id for r in first]
    assert catalogue(catalog, keys.admin, holder.id) == before
    assert [len(versions(catalog, keys.admin, c.id)) for c in before] == [0, 1, 1]


def test_changing_one_row_updates_only_that_character(catalog: Any, keys: Any, holder: Holder) -> None:
    m = unique()
    rows = [row(f"c-{m}-{n}", name=f"Chara {m} {n}", with_terms=terms()) for n in range(3)]
    first = run_import(catalog, holder.secret, holder.id, rows)
    before = catalogue(catalog, keys.admin, holder.id)

    rows[1].character.franchise = "New franchise"
    rows[2].terms.revenue_share_bps = 300
    second = run_import(catalog, holder.secret, holder.id, rows)
    after = catalogue(catalog, keys.admin, holder.id)

    assert [r.outcome for r in second] == [UNCHANGED, UPDATED, UPDATED]
    assert [r.character_id for r in second] == [r.character_id for r in first]
    assert after[0] == before[0]
    assert (after[1].franchise, after[1].terms_version) == ("New franchise", 1)
    assert after[1].update_time.ToDatetime() > before[1].update_time.ToDatetime()
    assert (after[2].franchise, after[2].terms_version) == ("", 2)
    assert [v.revenue_share_bps for v in versions(catalog, keys.admin, after[2].id)] == [300, 0]


def test_a_row_with_terms_opts_an_existing_character_in(catalog: Any, holder: Holder) -> None:
    m = unique()
    existing = create(catalog, holder.secret, holder.id, name=f"Luka {m}", external_id=f"L-{m}")
    without_terms = run_import(catalog, holder.secret, holder.id, [row(f"L-{m}", name=f"Luka {m}")])

    with_terms = run_import(
        catalog, holder.secret, holder.id, [row(f"L-{m}", name=f"Luka {m}", with_terms=terms(revenue_share_bps=42))]
    )
    after = get(catalog, holder.secret, existing.id)

    assert [(r.outcome, r.character_id) for r in without_terms] == [(UNCHANGED, existing.id)]
    assert [(r.outcome, r.character_id) for r in with_terms] == [(UPDATED, existing.id)]
    assert (after.state, after.terms_version) == (OPTED_IN, 1)
    assert versions(catalog, holder.secret, existing.id)[0].revenue_share_bps == 42


def test_reimporting_after_an_opt_out_does_not_opt_the_character_in_again(catalog: Any, holder: Holder) -> None:
    """The same file again leaves an opted-out character opted out (its other fields still apply);
    other terms fail the row alone with CHARACTER_NOT_OPTED_IN, as UpdateTerms does: OptIn is the
    way back."""
    m = unique()
    rows = [row(f"O-{m}", name=f"Gumi {m}", with_terms=terms(revenue_share_bps=7))]
    character_id = run_import(catalog, holder.secret, holder.id, rows)[0].character_id
    catalog.OptOut(catalog_pb.OptOutRequest(character_id=character_id, reason="ended"), metadata=auth(holder.secret))

    again = run_import(catalog, holder.secret, holder.id, rows)
    rows[0].character.franchise = "Internet"
    renamed = run_import(catalog, holder.secret, holder.id, rows)
    rows[0].terms.revenue_share_bps = 8
    rows[0].character.franchise = "Other"
    other_terms = run_import(catalog, holder.secret, holder.id, rows)
    after = get(catalog, holder.secret, character_id)

    assert [(r.outcome, r.error_reason) for r in again] == [(UNCHANGED, "")]
    assert [(r.outcome, r.error_reason) for r in renamed] == [(UPDATED, "")]
    assert [(r.outcome, r.error_reason) for r in other_terms] == [(FAILED, "CHARACTER_NOT_OPTED_IN")]
    assert (after.state, after.terms_version, after.franchise) == (OPTED_OUT, 1, "Internet")
    assert len(versions(catalog, holder.secret, character_id)) == 1


def test_a_row_without_terms_leaves_the_licensing_state_alone(catalog: Any, holder: Holder) -> None:
    m = unique()
    existing = create(catalog, holder.secret, holder.id, name=f"Meiko {m}", external_id=f"M-{m}")
    opt_in(catalog, holder.secret, existing.id)

    results = run_import(catalog, holder.secret, holder.id, [row(f"M-{m}", name=f"Meiko {m}", franchise="Crypton")])
    after = get(catalog, holder.secret, existing.id)

    assert [r.outcome for r in results] == [UPDATED]
    assert (after.state, after.terms_version, after.franchise) == (OPTED_IN, 1, "Crypton")


def test_rows_for_archived_or_suspended_characters_fail_alone(catalog: Any, keys: Any, holder: Holder) -> None:
    m = unique()
    archived = create(catalog, holder.secret, holder.id, name=f"Old {m}", external_id=f"A-{m}")
    suspended = create(catalog, holder.secret, holder.id, name=f"Paused {m}", external_id=f"S-{m}")
    catalog.ArchiveCharacter(catalog_pb.ArchiveCharacterRequest(id=archived.id), metadata=auth(holder.secret))
    catalog.SuspendCharacter(
        catalog_pb.SuspendCharacterRequest(id=suspended.id, reason="review"), metadata=auth(keys.admin)
    )
    before = catalogue(catalog, keys.admin, holder.id)

    results = run_import(
        catalog,
        holder.secret,
        holder.id,
        [
            row(f"A-{m}", name=f"Old {m}", franchise="New"),
            row(f"S-{m}", name=f"Paused {m}", franchise="New", with_terms=terms()),
            row(f"N-{m}"),
        ],
    )

    assert summary(results)[:2] == [
        (0, f"A-{m}", FAILED, "CHARACTER_ARCHIVED", []),
        (1, f"S-{m}", FAILED, "CHARACTER_SUSPENDED", []),
    ]
    assert results[2].outcome == CREATED
    assert [c for c in catalogue(catalog, keys.admin, holder.id) if c.id != results[2].character_id] == before


def test_the_requests_rights_holder_owns_every_row(catalog: Any, access: Any, keys: Any, holder: Holder) -> None:
    other = new_holder(catalog, access, keys.admin)

    results = run_import(catalog, holder.secret, holder.id, [row(f"x-{unique()}", rights_holder_id=other.id)])

    assert get(catalog, keys.admin, results[0].character_id).rights_holder_id == holder.id
    assert catalogue(catalog, keys.admin, other.id) == []


def test_the_same_external_id_twice_in_a_batch_makes_one_character(catalog: Any, keys: Any, holder: Holder) -> None:
    twice = row(f"d-{unique()}")

    results = run_import(catalog, holder.secret, holder.id, [twice, twice])

    assert [r.outcome for r in results] == [CREATED, UNCHANGED]
    assert results[0].character_id == results[1].character_id
    assert len(catalogue(catalog, keys.admin, holder.id)) == 1


def test_a_row_with_a_name_too_long_once_normalised_fails_alone(catalog: Any, keys: Any, holder: Holder) -> None:
    """U+FDFA is one character that NFKC makes 18: the row fails naming the field, the others go in."""
    m = unique()
    rows = [row(f"ok-{m}"), row(f"long-{m}", aliases=(alias("\ufdfa" * 30, language="ar"),)), row(f"ok2-{m}")]

    results = run_import(catalog, holder.secret, holder.id, rows)

    assert summary(results) == [
        (0, f"ok-{m}", CREATED, "", []),
        (1, f"long-{m}", FAILED, "INVALID_FIELD", ["character.aliases[0].value"]),
        (2, f"ok2-{m}", CREATED, "", []),
    ]
    assert [c.external_id for c in catalogue(catalog, keys.admin, holder.id)] == [f"ok-{m}", f"ok2-{m}"]


@pytest.mark.parametrize("count", [0, 501])
def test_a_batch_must_hold_1_to_500_rows(catalog: Any, keys: Any, holder: Holder, count: int) -> None:
    rows = [row(f"n-{n}", name=f"Chara {n}") for n in range(count)]

    got = refused(
        catalog.ImportCharacters,
        catalog_pb.ImportCharactersRequest(rights_holder_id=holder.id, rows=rows),
        holder.secret,
    )

    assert (got.code, got.reason, got.fields) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", ("rows",))
    assert catalogue(catalog, keys.admin, holder.id) == []


def test_a_batch_of_500_rows_is_accepted(catalog: Any, keys: Any, holder: Holder) -> None:
    m = unique()
    rows = [row(f"n-{n}", name=f"Chara {m} {n}") for n in range(500)]

    results = run_import(catalog, holder.secret, holder.id, rows)

    assert [r.outcome for r in results] == [CREATED] * 500
    assert len(catalogue(catalog, keys.admin, holder.id)) == 500


def test_a_rights_holder_key_cannot_import_for_another_rights_holder(
    catalog: Any, access: Any, keys: Any, holder: Holder
) -> None:
    other = new_holder(catalog, access, keys.admin)

    got = refused(
        catalog.ImportCharacters,
        catalog_pb.ImportCharactersRequest(rights_holder_id=other.id, rows=[row(f"x-{unique()}")]),
        holder.secret,
    )

    assert (got.code, got.reason) == (grpc.StatusCode.PERMISSION_DENIED, "RESOURCE_NOT_OWNED")
    assert catalogue(catalog, keys.admin, other.id) == []


def test_importing_for_a_missing_or_archived_rights_holder_is_refused(catalog: Any, access: Any, keys: Any) -> None:
    archived = new_holder(catalog, access, keys.admin)
    catalog.ArchiveRightsHolder(catalog_pb.ArchiveRightsHolderRequest(id=archived.id), metadata=auth(keys.admin))

    missing = refused(
        catalog.ImportCharacters,
        catalog_pb.ImportCharactersRequest(rights_holder_id=ids.new_id("rights_holder"), rows=[row(f"x-{unique()}")]),
        keys.admin,
    )
    frozen = refused(
        catalog.ImportCharacters,
        catalog_pb.ImportCharactersRequest(rights_holder_id=archived.id, rows=[row(f"x-{unique()}")]),
        keys.admin,
    )

    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "RIGHTS_HOLDER_NOT_FOUND")
    assert (frozen.code, frozen.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RIGHTS_HOLDER_ARCHIVED")
    assert catalogue(catalog, keys.admin, archived.id) == []
