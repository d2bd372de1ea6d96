"""`charter terms`: what a character is opted in to, version by version."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
from pathlib import Path
from typing import Annotated

import typer

from charter import _requests, catalog_file
from charter.cli import _output
from charter.cli._context import JsonOption, parse_time, settings
from charter.cli.characters import parse_choice
from charter.client import Client
from charter.errors import CharterError
from charter.territories import territory_code
from charter.v1 import character_pb2, terms_pb2

app = typer.Typer(help="Terms: how a character may be used; opt in, update, opt out.", no_args_is_help=True)

_TITLE = "terms"
_HISTORY_COLUMNS = (
    "version",
    "create_time",
    "author_key_id",
    "permitted_use_types",
    "max_content_rating",
    "commercial_use_allowed",
    "revenue_share_bps",
)
_TEMPLATE_COLUMNS = ("name", "description")

_CharacterId = Annotated[str, typer.Argument(help="The character id (chr_...).")]

# The override options shared by `set` and `apply-template`.
_UseTypes = Annotated[
    list[str] | None,
    typer.Option(
        "--use-type",
        help="A permitted use type, repeatable: " + _requests.enum_choices(terms_pb2.UseType, "USE_TYPE_") + ".",
    ),
]
_MaxRating = Annotated[
    str | None,
    typer.Option(
        "--max-rating",
        help="The highest content rating: " + _requests.enum_choices(terms_pb2.ContentRating, "CONTENT_RATING_") + ".",
    ),
]
_Prohibit = Annotated[
    list[str] | None,
    typer.Option(
        "--prohibit",
        help="A prohibited content category, repeatable: "
        + _requests.enum_choices(terms_pb2.ContentCategory, "CONTENT_CATEGORY_")
        + ".",
    ),
]
_Territories = Annotated[
    list[str] | None, typer.Option("--territory", help="An allowed territory (ISO 3166-1 alpha-2), repeatable.")
]
_Excluded = Annotated[
    list[str] | None,
    typer.Option("--exclude-territory", help="An excluded territory (ISO 3166-1 alpha-2), repeatable."),
]
_Licensees = Annotated[
    list[str] | None, typer.Option("--licensee", help="The only licensee ids that may be granted, repeatable.")
]
_Platforms = Annotated[
    list[str] | None, typer.Option("--platform", help="The only platforms that may be granted, repeatable.")
]
_NotWith = Annotated[
    list[str] | None, typer.Option("--not-with", help="A character id it may not appear with, repeatable.")
]
_Commercial = Annotated[
    bool | None, typer.Option("--commercial/--no-commercial", help="Whether commercial use is allowed.")
]
_Attribution = Annotated[str | None, typer.Option("--attribution", help="Attribution text required with each use.")]
_Watermark = Annotated[
    bool | None, typer.Option("--watermark/--no-watermark", help="Whether generated content must be watermarked.")
]
_RevenueShare = Annotated[
    int | None, typer.Option("--revenue-share-bps", help="The rights holder's revenue share, 0 to 10000 bps.")
]
_Fee = Annotated[int | None, typer.Option("--fee", help="A per-use fee in minor units (with --currency).")]
_Currency = Annotated[str | None, typer.Option("--currency", help="The ISO 4217 currency of --fee, e.g. JPY.")]
_DailyQuota = Annotated[int | None, typer.Option("--daily-quota", help="Uses per licensee per UTC day.")]
_MonthlyQuota = Annotated[int | None, typer.Option("--monthly-quota", help="Uses per licensee per UTC month.")]
_ValidFrom = Annotated[
    str | None, typer.Option("--valid-from", help="When use may begin, ISO 8601; UTC when no offset is given.")
]
_ValidUntil = Annotated[
    str | None, typer.Option("--valid-until", help="When use must end, ISO 8601; UTC when no offset is given.")
]
_OptIn = Annotated[
    bool,
    typer.Option(
        "--opt-in",
        help="Opt the character in with these terms if it is not opted in yet; without it, only the terms of an"
        " opted-in character are replaced.",
    ),
]


@dataclasses.dataclass(frozen=True, slots=True)
class TermsFlags:
    """The terms override options of a command, as given (None: not given)."""

    use_type: list[str] | None = None
    max_rating: str | None = None
    prohibit: list[str] | None = None
    territory: list[str] | None = None
    exclude_territory: list[str] | None = None
    licensee: list[str] | None = None
    platform: list[str] | None = None
    not_with: list[str] | None = None
    commercial: bool | None = None
    attribution: str | None = None
    watermark: bool | None = None
    revenue_share_bps: int | None = None
    fee: int | None = None
    currency: str | None = None
    daily_quota: int | None = None
    monthly_quota: int | None = None
    valid_from: str | None = None
    valid_until: str | None = None

    def override(self) -> catalog_file.TermsOverride:
        """Returns the given options as terms fields to lay over a starting point.

        Raises:
            typer.BadParameter: If a value is not understood, or only one of
                --fee and --currency is given.
        """
        terms = terms_pb2.Terms()
        fields: set[str] = set()
        given = fields.add
        if self.use_type is not None:
            terms.permitted_use_types.extend(
                parse_choice(_requests.parse_use_type, v, param_hint="--use-type") for v in self.use_type
            )
            given("permitted_use_types")
        if self.max_rating is not None:
            terms.max_content_rating = parse_choice(
                _requests.parse_content_rating, self.max_rating, param_hint="--max-rating"
            )
            given("max_content_rating")
        if self.prohibit is not None:
            terms.prohibited_categories.extend(
                parse_choice(_requests.parse_content_category, v, param_hint="--prohibit") for v in self.prohibit
            )
            given("prohibited_categories")
        for values, name, hint in (
            (self.territory, "allowed_territories", "--territory"),
            (self.exclude_territory, "excluded_territories", "--exclude-territory"),
            (self.licensee, "allowed_licensee_ids", ""),
            (self.platform, "allowed_platforms", ""),
            (self.not_with, "prohibited_co_appearance_ids", ""),
        ):
            if values is not None:
                # A territory is two ASCII letters (`charter.territories`): never str.upper of look-alikes.
                getattr(terms, name).extend(
                    parse_choice(territory_code, v.strip(), param_hint=hint) if hint else v for v in values
                )
                given(name)
        if self.commercial is not None:
            terms.commercial_use_allowed = self.commercial
            given("commercial_use_allowed")
        if self.attribution is not None:
            terms.attribution_text = self.attribution
            given("attribution_text")
        if self.watermark is not None:
            terms.watermark_required = self.watermark
            given("watermark_required")
        if self.revenue_share_bps is not None:
            terms.revenue_share_bps = self.revenue_share_bps
            given("revenue_share_bps")
        if (self.fee is None) != (self.currency is None):
            raise typer.BadParameter("give --fee and --currency together, for example --fee 120 --currency JPY")
        if self.fee is not None and self.currency is not None:
            terms.per_use_fee.CopyFrom(terms_pb2.Money(currency_code=self.currency.upper(), minor_units=self.fee))
            given("per_use_fee")
        if self.daily_quota is not None:
            terms.daily_quota = self.daily_quota
            given("daily_quota")
        if self.monthly_quota is not None:
            terms.monthly_quota = self.monthly_quota
            given("monthly_quota")
        for text, name, hint in (
            (self.valid_from, "valid_from", "--valid-from"),
            (self.valid_until, "valid_until", "--valid-until"),
        ):
            if text is not None:
                getattr(terms, name).FromDatetime(parse_time(text, hint).astimezone(dt.UTC))
                given(name)
        return catalog_file.TermsOverride(terms, frozenset(fields))


def _read_terms_file(path: Path) -> terms_pb2.Terms:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise typer.BadParameter(f"{path.name} is not a UTF-8 JSON file: {exc}", param_hint="--file") from None
    try:
        return catalog_file.terms_from_json(data).over()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--file") from None


def _submit(client: Client, character_id: str, terms: terms_pb2.Terms, *, opt_in: bool) -> terms_pb2.Terms:
    """Opts the character in with the terms (with --opt-in, when it is not yet), else replaces its terms."""
    if opt_in:
        character = client.get_character(character_id)
        if character.state != character_pb2.Character.STATE_OPTED_IN:
            return client.opt_in(character_id, terms).terms
    try:
        return client.update_terms(character_id, terms)
    except CharterError as exc:
        if exc.reason != "CHARACTER_NOT_OPTED_IN":
            raise
        _output.print_error(exc)
        _output.print_line("hint: add --opt-in to opt the character in with these terms.")
        raise typer.Exit(1) from None


@app.command("show")
def show(
    ctx: typer.Context,
    character_id: _CharacterId,
    *,
    version: Annotated[int, typer.Option(min=0, help="The version; the one in force by default.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """Show a character's terms (the version in force, or an older one)."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        terms = client.get_terms(character_id, version=version)
    _output.show(cli.json_output, terms, title=_TITLE)


@app.command("history")
def history(
    ctx: typer.Context,
    character_id: _CharacterId,
    *,
    page_size: Annotated[int, typer.Option(min=0, help="Results per call; 0 for the server's default.")] = 0,
    limit: Annotated[int, typer.Option(min=0, help="Stop after this many; 0 for all.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """List every terms version of a character, newest first."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        pager = client.list_terms_versions(character_id, page_size=page_size)
        versions = list(itertools.islice(pager, limit or None))
    _output.show_list(cli.json_output, versions, columns=_HISTORY_COLUMNS, title="terms versions")


@app.command("templates")
def templates(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Show the terms of this template.")] = None,
    json_output: JsonOption = False,
) -> None:
    """List the terms templates, or show the terms of one."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        found = client.list_terms_templates()
    if name is None:
        _output.show_list(cli.json_output, found, columns=_TEMPLATE_COLUMNS, title="terms templates")
        return
    template = _find_template(found, name, param_hint="NAME")
    if cli.json_output:
        _output.print_json(_output.to_dict(template))
    else:
        _output.show(False, template.terms, title=f"template {template.name}: {template.description}")


def _find_template(found: list[terms_pb2.TermsTemplate], name: str, *, param_hint: str) -> terms_pb2.TermsTemplate:
    for template in found:
        if template.name == name:
            return template
    known = ", ".join(t.name for t in found) or "none"
    raise typer.BadParameter(f"unknown template {name!r}; known: {known}", param_hint=param_hint)


@app.command("set")
def set_(
    ctx: typer.Context,
    character_id: _CharacterId,
    *,
    file: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            readable=True,
            help="A JSON file of Terms (protobuf JSON, as `charter --json terms show` prints); flags override it.",
        ),
    ] = None,
    use_type: _UseTypes = None,
    max_rating: _MaxRating = None,
    prohibit: _Prohibit = None,
    territory: _Territories = None,
    exclude_territory: _Excluded = None,
    licensee: _Licensees = None,
    platform: _Platforms = None,
    not_with: _NotWith = None,
    commercial: _Commercial = None,
    attribution: _Attribution = None,
    watermark: _Watermark = None,
    revenue_share_bps: _RevenueShare = None,
    fee: _Fee = None,
    currency: _Currency = None,
    daily_quota: _DailyQuota = None,
    monthly_quota: _MonthlyQuota = None,
    valid_from: _ValidFrom = None,
    valid_until: _ValidUntil = None,
    opt_in: _OptIn = False,
    json_output: JsonOption = False,
) -> None:
    """Set a character's terms from a file and/or flags, replacing the current terms whole (a new version)."""
    flags = TermsFlags(
        use_type=use_type,
        max_rating=max_rating,
        prohibit=prohibit,
        territory=territory,
        exclude_territory=exclude_territory,
        licensee=licensee,
        platform=platform,
        not_with=not_with,
        commercial=commercial,
        attribution=attribution,
        watermark=watermark,
        revenue_share_bps=revenue_share_bps,
        fee=fee,
        currency=currency,
        daily_quota=daily_quota,
        monthly_quota=monthly_quota,
        valid_from=valid_from,
        valid_until=valid_until,
    ).override()
    if file is None and not flags.fields:
        raise typer.BadParameter("give the terms: --file terms.json and/or flags such as --use-type")
    base = _read_terms_file(file) if file is not None else None
    terms = flags.over(base)
    cli = settings(ctx, json_output)
    with cli.client() as client:
        result = _submit(client, character_id, terms, opt_in=opt_in)
    _output.show(cli.json_output, result, title=_TITLE)


@app.command("apply-template")
def apply_template(
    ctx: typer.Context,
    character_id: _CharacterId,
    template: Annotated[str, typer.Argument(help="The template name (see `charter terms templates`).")],
    *,
    use_type: _UseTypes = None,
    max_rating: _MaxRating = None,
    prohibit: _Prohibit = None,
    territory: _Territories = None,
    exclude_territory: _Excluded = None,
    licensee: _Licensees = None,
    platform: _Platforms = None,
    not_with: _NotWith = None,
    commercial: _Commercial = None,
    attribution: _Attribution = None,
    watermark: _Watermark = None,
    revenue_share_bps: _RevenueShare = None,
    fee: _Fee = None,
    currency: _Currency = None,
    daily_quota: _DailyQuota = None,
    monthly_quota: _MonthlyQuota = None,
    valid_from: _ValidFrom = None,
    valid_until: _ValidUntil = None,
    opt_in: _OptIn = False,
    json_output: JsonOption = False,
) -> None:
    """Set a character's terms to a template's, adjusted by the given flags (a new version)."""
    flags = TermsFlags(
        use_type=use_type,
        max_rating=max_rating,
        prohibit=prohibit,
        territory=territory,
        exclude_territory=exclude_territory,
        licensee=licensee,
        platform=platform,
        not_with=not_with,
        commercial=commercial,
        attribution=attribution,
        watermark=watermark,
        revenue_share_bps=revenue_share_bps,
        fee=fee,
        currency=currency,
        daily_quota=daily_quota,
        monthly_quota=monthly_quota,
        valid_from=valid_from,
        valid_until=valid_until,
    ).override()
    cli = settings(ctx, json_output)
    with cli.client() as client:
        chosen = _find_template(client.list_terms_templates(), template, param_hint="TEMPLATE")
        result = _submit(client, character_id, flags.over(chosen.terms), opt_in=opt_in)
    _output.show(cli.json_output, result, title=_TITLE)


@app.command("opt-out")
def opt_out(
    ctx: typer.Context,
    character_id: _CharacterId,
    *,
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "",
    json_output: JsonOption = False,
) -> None:
    """Opt a character out: nothing may be rendered any more, and its grants are revoked."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        response = client.opt_out(character_id, reason=reason)
    if cli.json_output:
        _output.print_json(_output.to_dict(response))
        return
    _output.show(False, response.character, title="character", omit=("aliases",))
    typer.echo(f"revoked grants: {response.revoked_grant_count}")
