"""UsageService.GetUsageSeries end to end: daily series per character and per licensee that add up
exactly what ReportUsage accepted (duplicates and refused records not counted), agree with a
statement over the same range, every day of the range present in the totals, names next to ids,
who may read them, and bad requests naming their field.

Each test builds its own rights holder. The clock is moved to two minutes before a UTC midnight,
so that one decision's records can fall on either side of it (a record may happen up to five
minutes after the server's now); ``moved_clock`` puts it back afterwards.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from charter.v1 import usage_pb2, usage_service_pb2_grpc
from charter.v1 import usage_service_pb2 as us

from .character_helpers import Holder, new_holder, refused
from .grant_helpers import Stubs, generator_key, issue, new_licensee, opted_in_character, stubs
from .helpers import auth
from .test_usage_api import receipt, record, report, seconds

UsageStub = usage_service_pb2_grpc.UsageServiceStub
BY_CHARACTER = us.USAGE_SERIES_GROUPING_CHARACTER
BY_LICENSEE = us.USAGE_SERIES_GROUPING_LICENSEE


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> Stubs:
    return stubs(channel)


@pytest.fixture(scope="module")
def usage(channel: grpc.Channel) -> UsageStub:
    return UsageStub(channel)


def series(usage: UsageStub, secret: str, holder_id: str, first: datetime, last: datetime, **options: Any) -> Any:
    request = us.GetUsageSeriesRequest(
        rights_holder_id=holder_id, start_date=f"{first:%Y-%m-%d}", end_date=f"{last:%Y-%m-%d}", **options
    )
    return usage.GetUsageSeries(request, metadata=auth(secret))


def day(found: Any) -> tuple[str, int, int, int]:
    return (found.date, found.records, found.uses, found.duration_milliseconds)


class Scene:
    """A rights holder with two characters, each granted to the session's licensee and a second one,
    and records on both sides of a UTC midnight."""

    def __init__(self, api: Stubs, usage: UsageStub, keys: Any, moved_clock: Any) -> None:
        now = moved_clock.now()
        midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
        moved_clock.advance(midnight - timedelta(minutes=2) - now)
        self.before = moved_clock.now()
        self.after = midnight + timedelta(minutes=2)
        self.day1, self.day2 = f"{self.before:%Y-%m-%d}", f"{self.after:%Y-%m-%d}"
        self.holder: Holder = new_holder(api.catalog, api.access, keys.admin)
        self.lic1 = keys.licensee_id
        self.lic2 = new_licensee(api, keys.admin)
        self.gen1, self.gen2 = keys.generator, generator_key(api, keys.admin, self.lic2)
        self.chr1 = opted_in_character(api, self.holder)
        self.chr2 = opted_in_character(api, self.holder)
        for character_id in (self.chr1, self.chr2):
            for licensee_id in (self.lic1, self.lic2):
                issue(api, keys.admin, moved_clock, character_id, licensee_id)
        first = record(receipt(api, self.gen1, self.chr1), self.chr1, self.before, duration=seconds(2))
        results = report(usage, self.gen1, first)
        # chr1 by lic1: one record each side of midnight, and a zero-use part of the second video.
        second_receipt = receipt(api, self.gen1, self.chr1)
        results += report(
            usage,
            self.gen1,
            # The zero-use part first: a receipt's one use, once counted, admits no further records.
            record(second_receipt, self.chr1, self.after, uses=0, duration=seconds(4)),
            record(second_receipt, self.chr1, self.after, duration=seconds(3)),
            first,  # a duplicate delivery: answered as the first time, counted once
        )
        # chr2 by lic2, before midnight; then the same receipt's use again under a new key (refused).
        lic2_receipt = receipt(api, self.gen2, self.chr2)
        results += report(usage, self.gen2, record(lic2_receipt, self.chr2, self.before))
        refused_result = report(usage, self.gen2, record(lic2_receipt, self.chr2, self.before))
        # chr1 by lic2, after midnight.
        results += report(usage, self.gen2, record(receipt(api, self.gen2, self.chr1), self.chr1, self.after))
        assert [r.status for r in results] == [usage_pb2.USAGE_STATUS_ACCEPTED] * len(results)
        assert refused_result[0].error_reason == "RECEIPT_CONSUMED"


def test_series_add_up_the_accepted_records_per_day_and_agree_with_the_statement(
    api: Stubs, usage: UsageStub, keys: Any, moved_clock: Any
) -> None:
    scene = Scene(api, usage, keys, moved_clock)
    first, last = scene.before - timedelta(days=1), scene.after + timedelta(days=1)
    by_character = series(usage, scene.holder.secret, scene.holder.id, first, last, grouping=BY_CHARACTER)
    by_licensee = series(usage, keys.admin, scene.holder.id, first, last, grouping=BY_LICENSEE)
    only_lic2 = series(usage, keys.auditor, scene.holder.id, first, last, licensee_id=scene.lic2)
    only_chr2 = series(usage, keys.admin, scene.holder.id, first, last, character_id=scene.chr2, grouping=BY_LICENSEE)
    as_generator = series(usage, scene.gen2, scene.holder.id, first, last)
    statement = usage.GetStatement(
        us.GetStatementRequest(
            rights_holder_id=scene.holder.id, start_date=f"{first:%Y-%m-%d}", end_date=f"{last:%Y-%m-%d}"
        ),
        metadata=auth(keys.admin),
    ).statement
    names = {
        c.id: c.canonical_name
        for c in (
            api.catalog.GetCharacter(_get(cid), metadata=auth(keys.admin)).character for cid in (scene.chr1, scene.chr2)
        )
    }

    d0, d3 = f"{first:%Y-%m-%d}", f"{last:%Y-%m-%d}"
    assert by_character.grouping == BY_CHARACTER
    assert (by_character.start_date, by_character.end_date) == (d0, d3)
    assert by_character.rights_holder_display_name.startswith("Studio ")
    assert [(s.character_id, s.character_name, s.licensee_id) for s in by_character.series] == [
        (scene.chr1, names[scene.chr1], ""),
        (scene.chr2, names[scene.chr2], ""),
    ]
    chr1, chr2 = by_character.series
    assert [day(d) for d in chr1.days] == [(scene.day1, 1, 1, 2000), (scene.day2, 3, 2, 7000)]
    assert day(chr1.total) == ("", 4, 3, 9000)
    assert [day(d) for d in chr2.days] == [(scene.day1, 1, 1, 0)]
    assert [day(d) for d in by_character.days] == [
        (d0, 0, 0, 0),
        (scene.day1, 2, 2, 2000),
        (scene.day2, 3, 2, 7000),
        (d3, 0, 0, 0),
    ]
    assert day(by_character.total) == ("", 5, 4, 9000)
    assert by_character.omitted_series == 0
    # The same records as the statement over the range, which adds up the records themselves.
    totals = [(t.records, t.uses, t.duration_milliseconds) for t in statement.totals]
    assert totals == [(5, 4, 9000)]

    assert [(s.licensee_id, s.character_id, day(s.total)) for s in by_licensee.series] == [
        (scene.lic1, "", ("", 3, 2, 9000)),
        (scene.lic2, "", ("", 2, 2, 0)),
    ]
    assert all(s.licensee_display_name.startswith("App ") for s in by_licensee.series)
    assert [day(d) for d in by_licensee.series[1].days] == [(scene.day1, 1, 1, 0), (scene.day2, 1, 1, 0)]

    # Equal uses: by id.
    assert [(s.character_id, day(s.total)) for s in only_lic2.series] == [
        (character_id, ("", 1, 1, 0)) for character_id in sorted((scene.chr1, scene.chr2))
    ]
    assert [(s.licensee_id, day(s.total)) for s in only_chr2.series] == [(scene.lic2, ("", 1, 1, 0))]
    # A generator sees only its own licensee's uses, whatever it asks.
    assert day(as_generator.total) == ("", 2, 2, 0)


def _get(character_id: str) -> Any:
    from charter.v1 import catalog_service_pb2

    return catalog_service_pb2.GetCharacterRequest(id=character_id)


def test_max_series_keeps_the_busiest_and_the_totals_cover_all(
    api: Stubs, usage: UsageStub, keys: Any, moved_clock: Any
) -> None:
    scene = Scene(api, usage, keys, moved_clock)
    found = series(usage, keys.admin, scene.holder.id, scene.before, scene.after, max_series=1)

    assert [s.character_id for s in found.series] == [scene.chr1]
    assert found.omitted_series == 1
    assert day(found.total) == ("", 5, 4, 9000)


def test_who_may_read_a_series_and_bad_requests_name_their_field(api: Stubs, usage: UsageStub, keys: Any) -> None:
    holder = new_holder(api.catalog, api.access, keys.admin)
    other = new_holder(api.catalog, api.access, keys.admin)
    today = datetime.now(UTC)

    def ask(secret: str, **fields: Any) -> Any:
        request = us.GetUsageSeriesRequest(
            rights_holder_id=holder.id, start_date=f"{today:%Y-%m-%d}", end_date=f"{today:%Y-%m-%d}"
        )
        for name, value in fields.items():
            setattr(request, name, value)
        return refused(usage.GetUsageSeries, request, secret)

    not_owned = ask(other.secret)
    other_licensee = ask(keys.generator, licensee_id=new_licensee(api, keys.admin))
    too_long = ask(keys.admin, start_date=f"{today - timedelta(days=366):%Y-%m-%d}")
    backwards = ask(keys.admin, start_date=f"{today + timedelta(days=1):%Y-%m-%d}")
    no_dates = ask(keys.admin, start_date="", end_date="")
    bad_date = ask(keys.admin, end_date="2031-02-30")
    too_many = ask(keys.admin, max_series=101)
    bad_grouping = ask(keys.admin, grouping=7)
    bad_character = ask(keys.admin, character_id="lic_nope")
    missing = ask(keys.admin, rights_holder_id="rh_" + "0" * 32)
    a_year = usage.GetUsageSeries(
        us.GetUsageSeriesRequest(
            rights_holder_id=holder.id,
            start_date=f"{today - timedelta(days=365):%Y-%m-%d}",
            end_date=f"{today:%Y-%m-%d}",
        ),
        metadata=auth(holder.secret),
    )

    assert (not_owned.code, not_owned.reason) == (grpc.StatusCode.PERMISSION_DENIED, "RESOURCE_NOT_OWNED")
    assert (other_licensee.code, other_licensee.reason) == (grpc.StatusCode.PERMISSION_DENIED, "RESOURCE_NOT_OWNED")
    for found, field in (
        (too_long, "end_date"),
        (backwards, "end_date"),
        (no_dates, "start_date"),
        (bad_date, "end_date"),
        (too_many, "max_series"),
        (bad_grouping, "grouping"),
        (bad_character, "character_id"),
    ):
        assert found.code == grpc.StatusCode.INVALID_ARGUMENT
        assert field in found.fields
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "RIGHTS_HOLDER_NOT_FOUND")
    assert len(a_year.days) == 366
    assert list(a_year.series) == []
    assert day(a_year.total) == ("", 0, 0, 0)
