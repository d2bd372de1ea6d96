"""The statement arithmetic on the README's worked example: one half-up rounding per line, and
totals that are the sums of the lines."""

from __future__ import annotations

from charter_server.domain.models import LineSums
from charter_server.services.statements import month_bounds, share_of, statement_sums


def _line(
    character: str, licensee: str, currency: str, revenues: list[int], bps: int, fee: int, **extra: str
) -> LineSums:
    return LineSums(
        rights_holder_id="rh_studio",
        statement_period="2026-10",
        character_id=character,
        licensee_id=licensee,
        currency=currency,
        adjustment_for_period=extra.get("adjustment", ""),
        records=len(revenues),
        uses=len(revenues),
        duration_ms=0,
        revenue_minor=sum(revenues),
        revenue_times_bps=sum(r * bps for r in revenues),
        fees_minor=fee * len(revenues),
    )


def test_share_rounds_half_up_once() -> None:
    assert [share_of(v) for v in (0, 4_999, 5_000, 15_000, 375_000, 124_750)] == [0, 0, 1, 2, 38, 12]


def test_the_readme_worked_example() -> None:
    lines, totals = statement_sums(
        [
            _line("chr_ren", "lic_game", "JPY", [1_234, 766], bps=1_000, fee=5),
            _line("chr_aoi", "lic_video", "USD", [1_001, 499, 0], bps=250, fee=7),
        ],
        with_lines=True,
    )

    shares = [
        (line.character_id, line.currency, line.uses, line.revenue_minor, line.revenue_share_minor) for line in lines
    ]
    owed = [(line.fee_minor, line.owed_minor) for line in lines]
    assert shares == [("chr_aoi", "USD", 3, 1_500, 38), ("chr_ren", "JPY", 2, 2_000, 200)]
    assert owed == [(21, 59), (10, 210)]
    sums = [(t.currency, t.revenue_share_minor, t.fee_minor, t.owed_minor) for t in totals]
    assert sums == [("JPY", 200, 10, 210), ("USD", 38, 21, 59)]


def test_totals_are_the_sums_of_the_rounded_lines() -> None:
    # Two lines of 0.5 each: rounded per line to 1 + 1; the total is 2, never a re-rounded 1.
    lines, totals = statement_sums(
        [_line("chr_a", "lic_1", "USD", [2], 2_500, 0), _line("chr_b", "lic_1", "USD", [2], 2_500, 0)],
        with_lines=True,
    )

    assert [line.revenue_share_minor for line in lines] == [1, 1]
    assert totals[0].revenue_share_minor == 2


def test_month_bounds_cover_the_calendar_month() -> None:
    assert [d.isoformat() for d in month_bounds("2026-02")] == ["2026-02-01", "2026-02-28"]
    assert [d.isoformat() for d in month_bounds("2028-02")] == ["2028-02-01", "2028-02-29"]
    assert [d.isoformat() for d in month_bounds("2026-12")] == ["2026-12-01", "2026-12-31"]
