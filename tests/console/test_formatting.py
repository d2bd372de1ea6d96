"""What people read: money in each currency's own digits and the reader's locale, CSV cells that a
spreadsheet shows as text, and the terms form read back into terms."""

from __future__ import annotations

from decimal import Decimal

from babel import Locale
from charter.v1 import terms_pb2
from charter_server.console import formatting, terms_form
from starlette.datastructures import FormData

EN = Locale.parse("en_US")


def test_money_uses_each_currencys_digits_and_the_readers_locale() -> None:
    assert formatting.money(375, "USD", EN) == "$3.75"
    assert formatting.money(30, "JPY", EN) == "¥30"
    assert formatting.money(1_234_567, "EUR", Locale.parse("de_DE")) == "12.345,67\xa0€"
    assert formatting.money(5, "BHD", EN).endswith("0.005")  # three digits
    assert formatting.major_units(375, "USD") == Decimal("3.75")


def test_the_locale_comes_from_accept_language_and_falls_back_to_english() -> None:
    assert str(formatting.locale_for("fr-CH, fr;q=0.9")) == "fr_CH"
    assert str(formatting.locale_for("xx-nope, *")) == "en_US"
    assert str(formatting.locale_for("")) == "en_US"


def test_csv_cells_that_look_like_formulas_are_written_as_text() -> None:
    for dangerous in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"):
        assert formatting.csv_cell(dangerous) == "'" + dangerous
    assert formatting.csv_cell("Aoi Hoshino") == "Aoi Hoshino"
    assert formatting.csv_cell(-5) == "-5"
    assert formatting.csv_cell(Decimal("-0.25")) == "-0.25"


def test_the_terms_form_reads_back_into_the_terms_it_showed() -> None:
    terms = terms_pb2.Terms(
        permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION],
        max_content_rating=terms_pb2.CONTENT_RATING_TEEN,
        prohibited_categories=[terms_pb2.CONTENT_CATEGORY_HATE],
        allowed_territories=["JP", "US"],
        commercial_use_allowed=True,
        revenue_share_bps=1_250,
        per_use_fee=terms_pb2.Money(currency_code="JPY", minor_units=30),
        daily_quota=0,
        attribution_text="© Studio",
    )
    shown = terms_form.from_terms(terms)
    items: list[tuple[str, str]] = []
    for name, value in shown.values.items():
        items.extend((name, v) for v in value) if isinstance(value, list) else items.append((name, value))
    form, parsed = terms_form.parse(FormData(items))

    assert form.errors == {}
    assert parsed == terms


def test_the_terms_form_names_each_field_it_cannot_read() -> None:
    form, _ = terms_form.parse(
        FormData(
            [
                ("revenue_share_percent", "12.345"),
                ("fee_amount", "1e9999"),
                ("daily_quota", "many"),
                ("valid_from", "2031-02-30"),
                ("permitted_use_types", "99"),
                ("fee_currency", "USD"),
            ]
        )
    )

    assert sorted(form.errors) == [
        "daily_quota",
        "fee_amount",
        "permitted_use_types",
        "revenue_share_percent",
        "valid_from",
    ]
    assert terms_form.form_field_of("terms.per_use_fee.currency_code") == "fee_currency"
    assert terms_form.form_field_of("terms.revenue_share_bps") == "revenue_share_percent"
    assert terms_form.form_field_of("terms.allowed_territories[2]") == "allowed_territories"
