"""`charter authorize`: ask, as a generation backend would, whether a use may go ahead.

Exit status: 0 when every character is allowed, `EXIT_DENIED` (3) when any is denied, 1 when the
call fails and 2 for a usage error, so scripts can tell a denial from a failure.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from charter import _requests, envelope
from charter.cli import _output
from charter.cli._context import JsonOption, settings
from charter.cli._money import money
from charter.cli._tables import EMPTY, Cell, Column, Kind, Listing, render
from charter.cli.characters import parse_choice
from charter.decisions import CharacterDecision, Decision, Detection
from charter.terms import Obligations
from charter.v1 import envelope_pb2, terms_pb2

EXIT_DENIED = 3
"""The exit status of `charter authorize` when any character is denied."""

JsonFlag = JsonOption
"""The `--json` option of every command (`charter.cli._context.JsonOption`), under its older name."""


def _read_grant(path: Path) -> envelope_pb2.Envelope:
    """A grant file's envelope; a file that is not DSSE JSON is a usage error."""
    try:
        return envelope.from_json(path.read_bytes())
    except envelope.MalformedEnvelope as exc:
        raise typer.BadParameter(f"{path.name} is not a DSSE JSON envelope: {exc}", param_hint="--grant") from None


def authorize(
    ctx: typer.Context,
    *,
    use_type: Annotated[
        str,
        typer.Option(
            "--use-type",
            help="How the characters are used: " + _requests.enum_choices(terms_pb2.UseType, "USE_TYPE_") + ".",
        ),
    ],
    rating: Annotated[
        str,
        typer.Option(
            help="The content rating: " + _requests.enum_choices(terms_pb2.ContentRating, "CONTENT_RATING_") + "."
        ),
    ],
    character: Annotated[
        list[str] | None,
        typer.Option("--character", "-c", help="A character the content will show (chr_...), repeatable."),
    ] = None,
    prompt: Annotated[str, typer.Option(help="The prompt; every character it names is decided too.")] = "",
    category: Annotated[
        list[str] | None,
        typer.Option(
            help="A content category your classifiers flagged, repeatable: "
            + _requests.enum_choices(terms_pb2.ContentCategory, "CONTENT_CATEGORY_")
            + "."
        ),
    ] = None,
    territory: Annotated[
        str, typer.Option(help="The ISO 3166-1 alpha-2 code of where the content is served, for example JP.")
    ] = "",
    commercial: Annotated[
        bool, typer.Option("--commercial/--non-commercial", help="Whether the use is commercial.")
    ] = False,
    duration: Annotated[
        float | None, typer.Option(min=0, help="The length of the content in seconds, for usage records.")
    ] = None,
    grant: Annotated[
        list[Path] | None,
        typer.Option(
            "--grant",
            exists=True,
            dir_okay=False,
            readable=True,
            help="A grant envelope file (DSSE JSON) to present, repeatable; for a character with a presented"
            " grant only presented grants count.",
        ),
    ] = None,
    receipt_out: Annotated[
        Path | None,
        typer.Option(
            "--receipt-out", dir_okay=False, help="Write the signed decision receipt to this file, as DSSE JSON."
        ),
    ] = None,
    request_id: Annotated[
        str | None, typer.Option(help="Makes a retry safe: the same id never counts a quota twice.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Decide whether the characters of a use may be rendered; exit 0 when allowed, 3 when denied.

    Needs a generator's API key: the licensee is the key's. A denial is an answer, printed with
    every reason; a failed call exits 1, a usage error 2.
    """
    use_type_value = parse_choice(_requests.parse_use_type, use_type, param_hint="--use-type")
    rating_value = parse_choice(_requests.parse_content_rating, rating, param_hint="--rating")
    categories = [parse_choice(_requests.parse_content_category, c, param_hint="--category") for c in category or ()]
    grants = [_read_grant(path) for path in grant or ()]
    cli = settings(ctx, json_output)
    with cli.client() as client:
        decision = client.authorize(
            character_ids=character or (),
            prompt=prompt,
            use_type=use_type_value,
            content_rating=rating_value,
            categories=categories,
            territory=territory,
            commercial=commercial,
            duration=None if duration is None else dt.timedelta(seconds=duration),
            grants=grants,
            request_id=request_id,
        )
    if receipt_out is not None and decision.receipt is not None:
        receipt_out.write_text(envelope.to_json(decision.receipt) + "\n", encoding="utf-8")
    if cli.json_output:
        _output.print_json(decision_json(decision))
    else:
        print_decision(decision)
        if receipt_out is not None:
            _output.say(f"receipt written to {receipt_out}")
    if not decision.allowed:
        raise typer.Exit(EXIT_DENIED)


# -- printing -----------------------------------------------------------------------------------


def _reason_names(character: CharacterDecision) -> list[str]:
    return [reason.value.lower() for reason in character.reasons]


def _how_named(character: CharacterDecision) -> str:
    return ", ".join(label for label, on in (("declared", character.declared), ("detected", character.detected)) if on)


def _fee(owed: Obligations) -> str:
    if not owed.per_use_fee_currency:
        return EMPTY
    return money(owed.per_use_fee_minor_units, owed.per_use_fee_currency)


def print_decisions(characters: Sequence[CharacterDecision], *, title: str = "characters") -> None:
    """Prints one row per character: allowed or denied, the reasons, the grant, how it was named."""
    columns = [
        Column("character", Kind.ID),
        Column("decision"),
        Column("reasons"),
        Column("grant", Kind.ID),
        Column("terms version", Kind.NUMBER),
        Column("declared/detected"),
    ]
    rows: list[list[Cell]] = [
        [
            character.character_id,
            Text("allowed" if character.allowed else "denied", style="green" if character.allowed else "red"),
            ", ".join(_reason_names(character)),
            character.grant_id,
            str(character.terms_version) if character.terms_version else EMPTY,
            _how_named(character),
        ]
        for character in characters
    ]
    render(Listing(title, columns, rows, caption=f"{len(characters)} decided"))


def print_obligations(characters: Sequence[CharacterDecision]) -> None:
    """Prints what each allowed character's use owes, when any character is allowed."""
    owed = [(c.character_id, c.obligations) for c in characters if c.obligations is not None]
    if not owed:
        return
    columns = [
        Column("character", Kind.ID),
        Column("attribution"),
        Column("watermark"),
        Column("revenue share (bps)", Kind.NUMBER),
        Column("per-use fee", Kind.NUMBER),
    ]
    rows: list[list[Cell]] = [
        [
            character_id,
            obligations.attribution_text,
            "required" if obligations.watermark_required else "no",
            str(obligations.revenue_share_bps),
            _fee(obligations),
        ]
        for character_id, obligations in owed
    ]
    render(Listing("obligations", columns, rows))


def print_detections(detections: Sequence[Detection]) -> None:
    """Prints the characters a prompt names or describes: alias (or keyword set), rule, span,
    matched text, ambiguity."""
    columns = [
        Column("character", Kind.ID),
        Column("alias"),
        Column("rule"),
        Column("span"),
        Column("text"),
        Column("ambiguous"),
    ]
    rows: list[list[Cell]] = [
        [
            detection.character_id,
            f"{detection.keyword_set}: {detection.matched_alias}" if detection.described else detection.matched_alias,
            detection.rule.value.lower().replace("_", " "),
            f"{detection.start}-{detection.end}",
            detection.text,
            "yes" if detection.ambiguous else "no",
        ]
        for detection in detections
    ]
    render(Listing("detections", columns, rows, caption=f"{len(detections)} found"))


def print_decision(decision: Decision) -> None:
    """Prints a decision for people: the verdict line, the characters, obligations and detections."""
    verdict = "allowed" if decision.allowed else "denied: " + ", ".join(r.value.lower() for r in decision.reasons)
    _output.say(f"decision: {verdict}")
    typer.echo(f"receipt: {decision.receipt_id or EMPTY}")
    typer.echo(f"decided at: {decision.decide_time.isoformat(timespec='seconds')}")
    print_decisions(decision.characters)
    print_obligations(decision.characters)
    if decision.detections:
        print_detections(decision.detections)


def _obligations_json(owed: Obligations | None) -> dict[str, Any] | None:
    if owed is None:
        return None
    return {
        "attributionText": owed.attribution_text,
        "watermarkRequired": owed.watermark_required,
        "revenueShareBps": owed.revenue_share_bps,
        "perUseFee": None
        if not owed.per_use_fee_currency
        else {"currencyCode": owed.per_use_fee_currency, "minorUnits": str(owed.per_use_fee_minor_units)},
    }


def character_json(character: CharacterDecision) -> dict[str, Any]:
    """A character decision as JSON, with the reasons' names as the proto's JSON form has them."""
    return {
        "characterId": character.character_id,
        "allowed": character.allowed,
        "reasons": [f"DENY_REASON_{reason.value}" for reason in character.reasons],
        "grantId": character.grant_id,
        "termsVersion": character.terms_version,
        "obligations": _obligations_json(character.obligations),
        "rightsHolderId": character.rights_holder_id,
        "declared": character.declared,
        "detected": character.detected,
    }


def detection_json(detection: Detection) -> dict[str, Any]:
    """A detection as JSON, in the proto's JSON field names."""
    return {
        "characterId": detection.character_id,
        "matchedAlias": detection.matched_alias,
        "start": detection.start,
        "end": detection.end,
        "text": detection.text,
        "ambiguous": detection.ambiguous,
        "rule": f"RULE_{detection.rule.value}",
        "kind": "KIND_DESCRIPTION" if detection.described else "KIND_NAME",
        **({"keywordSet": detection.keyword_set} if detection.keyword_set else {}),
    }


def decision_json(decision: Decision) -> dict[str, Any]:
    """A decision as JSON: the verdict, each character, the detections and the receipt as DSSE JSON."""
    return {
        "allowed": decision.allowed,
        "receiptId": decision.receipt_id,
        "licenseeId": decision.licensee_id,
        "decideTime": decision.decide_time.isoformat(),
        "reasons": [f"DENY_REASON_{reason.value}" for reason in decision.reasons],
        "characters": [character_json(c) for c in decision.characters],
        "detections": [detection_json(d) for d in decision.detections],
        "receipt": None if decision.receipt is None else json.loads(envelope.to_json(decision.receipt)),
    }
