"""`charter characters`: the characters of rights holders, their aliases, and bulk import."""

from __future__ import annotations

import enum
import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from charter import _requests, catalog_file
from charter.cli import _output
from charter.cli._context import JsonOption, RightsHolderOption, rights_holder_of, settings
from charter.cli._tables import Cell, Column, Kind, Listing, render
from charter.errors import CharterError
from charter.v1 import catalog_service_pb2, character_pb2

app = typer.Typer(help="Characters: names, aliases and licensing state; bulk import.", no_args_is_help=True)

_TITLE = "character"
_COLUMNS = ("id", "canonical_name", "franchise", "external_id", "state", "terms_version", "rights_holder_id")
_ALIAS_COLUMNS = ("value", "language", "kind", "ambiguous", "normalized")
_COLLISION_COLUMNS = ("normalized", "character_ids", "rights_holder_ids")

_Result = catalog_service_pb2.ImportRowResult
# The outcomes in the order the summary lists them, with their labels.
_OUTCOMES = (
    (_Result.OUTCOME_CREATED, "created"),
    (_Result.OUTCOME_UPDATED, "updated"),
    (_Result.OUTCOME_UNCHANGED, "unchanged"),
    (_Result.OUTCOME_FAILED, "failed"),
)
_MAX_BATCH = 500  # The most rows ImportCharacters takes in one call.

_V = TypeVar("_V")


class FileFormat(enum.StrEnum):
    """The import file formats."""

    csv = "csv"
    json = "json"


def parse_choice(parse: Callable[[str], _V], value: str, *, param_hint: str) -> _V:
    """Parses an enum-like option with the SDK's parser; a bad value is a usage error.

    Raises:
        typer.BadParameter: With the accepted names, when the value names nothing.
    """
    try:
        return parse(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=param_hint) from None


def _show(json_output: bool, character: character_pb2.Character) -> None:
    """Prints a character; for people, its aliases as a table of their own."""
    _output.show(json_output, character, title=_TITLE, omit=() if json_output else ("aliases",))
    if not json_output and character.aliases:
        _output.show_list(False, character.aliases, columns=_ALIAS_COLUMNS, title="aliases")


def _aliases(entries: Sequence[str] | None) -> list[character_pb2.Alias]:
    result = []
    for entry in entries or ():
        try:
            result.append(catalog_file.parse_alias_entry(entry))
        except ValueError as exc:
            raise typer.BadParameter(f"{entry!r}: {exc}", param_hint="--alias") from None
    return result


@app.command("create")
def create(
    ctx: typer.Context,
    *,
    canonical_name: Annotated[str, typer.Option(help="The canonical name, for example 'Hatsune Miku'.")],
    franchise: Annotated[str, typer.Option(help="The franchise or work.")] = "",
    description: Annotated[str, typer.Option(help="A description for people.")] = "",
    reference_url: Annotated[
        list[str] | None, typer.Option(help="An official page or model sheet; repeat for more.")
    ] = None,
    alias: Annotated[
        list[str] | None,
        typer.Option(help="An alias as value|language|kind|ambiguous, for example 'ミク|ja|short_name'; repeatable."),
    ] = None,
    external_id: Annotated[str, typer.Option(help="Your own id of the character; imports match on it.")] = "",
    request_id: Annotated[
        str | None, typer.Option(help="An idempotency key: repeating it returns the first result.")
    ] = None,
    rights_holder: RightsHolderOption = None,
    json_output: JsonOption = False,
    ambiguous_name: Annotated[
        bool, typer.Option(help="The canonical name may also name something else (decided only when declared).")
    ] = False,
) -> None:
    """Create a character; it stays opted out until its terms are set with `charter terms set --opt-in`."""
    aliases = _aliases(alias)
    cli = settings(ctx, json_output)
    with cli.client() as client:
        character = client.create_character(
            rights_holder_id=rights_holder_of(client, rights_holder),
            canonical_name=canonical_name,
            franchise=franchise,
            description=description,
            reference_urls=reference_url or (),
            aliases=aliases,
            external_id=external_id,
            request_id=request_id,
            canonical_name_ambiguous=ambiguous_name,
        )
    _show(cli.json_output, character)


@app.command("show")
def show(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="The character id (chr_...).")],
    json_output: JsonOption = False,
) -> None:
    """Show one character with its aliases."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        character = client.get_character(id)
    _show(cli.json_output, character)


@app.command("list")
def list_(
    ctx: typer.Context,
    *,
    rights_holder: Annotated[str, typer.Option(help="Only characters of this rights holder.")] = "",
    state: Annotated[
        str | None,
        typer.Option(
            help="Only this state: "
            + _requests.enum_choices(character_pb2.Character.State, "STATE_")
            + "; all but archived by default."
        ),
    ] = None,
    franchise: Annotated[str, typer.Option(help="Only this franchise (ignoring case).")] = "",
    query: Annotated[str, typer.Option(help="Only names or aliases containing this text, after normalisation.")] = "",
    page_size: Annotated[int, typer.Option(min=0, help="Results per call; 0 for the server's default.")] = 0,
    limit: Annotated[int, typer.Option(min=0, help="Stop after this many; 0 for all.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """List characters, oldest first."""
    state_value = None if state is None else parse_choice(_requests.parse_character_state, state, param_hint="--state")
    cli = settings(ctx, json_output)
    with cli.client() as client:
        pager = client.list_characters(
            rights_holder_id=rights_holder, state=state_value, franchise=franchise, query=query, page_size=page_size
        )
        found = list(itertools.islice(pager, limit or None))
    _output.show_list(cli.json_output, found, columns=_COLUMNS, title="characters")


@app.command("update")
def update(
    ctx: typer.Context,
    *,
    id: Annotated[str, typer.Argument(help="The character id (chr_...).")],
    canonical_name: Annotated[str | None, typer.Option(help="The new canonical name.")] = None,
    franchise: Annotated[str | None, typer.Option(help="The new franchise; '' clears it.")] = None,
    description: Annotated[str | None, typer.Option(help="The new description; '' clears it.")] = None,
    reference_url: Annotated[
        list[str] | None, typer.Option(help="The reference URLs, replacing the old ones; repeatable.")
    ] = None,
    clear_reference_urls: Annotated[bool, typer.Option(help="Remove every reference URL.")] = False,
    external_id: Annotated[str | None, typer.Option(help="The new external id; '' clears it.")] = None,
    json_output: JsonOption = False,
    ambiguous_name: Annotated[
        bool | None, typer.Option(help="Whether the canonical name may also name something else.")
    ] = None,
) -> None:
    """Change the given fields of a character; the others stay as they are (aliases: add-alias, remove-alias)."""
    if reference_url and clear_reference_urls:
        raise typer.BadParameter("give --reference-url or --clear-reference-urls, not both")
    urls = [] if clear_reference_urls else reference_url
    if all(v is None for v in (canonical_name, franchise, description, urls, external_id, ambiguous_name)):
        raise typer.BadParameter("give at least one field to change, for example --canonical-name")
    cli = settings(ctx, json_output)
    with cli.client() as client:
        character = client.update_character(
            id,
            canonical_name=canonical_name,
            franchise=franchise,
            description=description,
            reference_urls=urls,
            external_id=external_id,
            canonical_name_ambiguous=ambiguous_name,
        )
    _show(cli.json_output, character)


@app.command("add-alias")
def add_alias(
    ctx: typer.Context,
    *,
    id: Annotated[str, typer.Argument(help="The character id (chr_...).")],
    value: Annotated[str, typer.Argument(help="The alias as written, for example ミク.")],
    language: Annotated[str, typer.Option(help="The BCP 47 language tag, for example ja, ja-Latn or en.")],
    kind: Annotated[
        str, typer.Option(help="The kind: " + _requests.enum_choices(character_pb2.Alias.Kind, "KIND_") + ".")
    ] = "nickname",
    ambiguous: Annotated[
        bool, typer.Option(help="The alias may also name another rights holder's character (a common word).")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Add an alias to a character (or change the kind of the alias with this value and language)."""
    kind_value = parse_choice(_requests.parse_alias_kind, kind, param_hint="--kind")
    added = character_pb2.Alias(value=value, language=language, kind=kind_value, ambiguous=ambiguous)
    cli = settings(ctx, json_output)
    with cli.client() as client:
        character = client.get_character(id)
        kept = [a for a in character.aliases if (a.value, a.language) != (value, language)]
        # The update replaces the whole list (field mask `aliases`); a concurrent change to
        # the aliases between the get and the update would be overwritten.
        character = client.update_character(id, aliases=[*kept, added])
    _show(cli.json_output, character)


@app.command("remove-alias")
def remove_alias(
    ctx: typer.Context,
    *,
    id: Annotated[str, typer.Argument(help="The character id (chr_...).")],
    value: Annotated[str, typer.Argument(help="The alias to remove, as written.")],
    language: Annotated[str | None, typer.Option(help="Only the alias in this language.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Remove an alias from a character."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        character = client.get_character(id)
        kept = [a for a in character.aliases if not (a.value == value and (language is None or a.language == language))]
        if len(kept) == len(character.aliases):
            _output.print_line(f"error: character {id} has no alias {value!r}")
            raise typer.Exit(1)
        character = client.update_character(id, aliases=kept)
    _show(cli.json_output, character)


@app.command("archive")
def archive(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="The character id (chr_...).")],
    json_output: JsonOption = False,
) -> None:
    """Archive a character: hidden from lists, still denied at generation time."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        character = client.archive_character(id)
    _show(cli.json_output, character)


@app.command("suspend")
def suspend(
    ctx: typer.Context,
    *,
    id: Annotated[str, typer.Argument(help="The character id (chr_...).")],
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")],
    json_output: JsonOption = False,
) -> None:
    """Suspend a character (staff): treated as opted out until reinstated."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        character = client.suspend_character(id, reason=reason)
    _show(cli.json_output, character)


@app.command("reinstate")
def reinstate(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="The character id (chr_...).")],
    json_output: JsonOption = False,
) -> None:
    """Lift a suspension: back to opted in if it has terms in force, else opted out."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        character = client.reinstate_character(id)
    _show(cli.json_output, character)


@app.command("collisions")
def collisions(
    ctx: typer.Context,
    *,
    page_size: Annotated[int, typer.Option(min=0, help="Results per call; 0 for the server's default.")] = 0,
    limit: Annotated[int, typer.Option(min=0, help="Stop after this many; 0 for all.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """List names shared by characters of different rights holders (allowed only when ambiguous)."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        found = list(itertools.islice(client.list_alias_collisions(page_size=page_size), limit or None))
    _output.show_list(cli.json_output, found, columns=_COLLISION_COLUMNS, title="alias collisions")


# -- import -----------------------------------------------------------------------------------


@app.command("import")
def import_(
    ctx: typer.Context,
    *,
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="The CSV or JSON catalogue file."),
    ],
    rights_holder: RightsHolderOption = None,
    batch_size: Annotated[int, typer.Option(min=1, max=_MAX_BATCH, help="Rows per ImportCharacters call.")] = 100,
    format: Annotated[
        FileFormat | None,
        typer.Option(case_sensitive=False, help="The file format; by default from the file's extension."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Import a catalogue file: new rows are created, changed rows updated, identical rows left alone.

    Exits with 1 when any row failed; the failed rows are listed, and nothing of
    them was written. Importing the same file again changes nothing.
    """
    try:
        entries = catalog_file.load(file, format=None if format is None else format.value)
    except catalog_file.CatalogFileError as exc:
        raise typer.BadParameter(str(exc), param_hint="FILE") from None
    cli = settings(ctx, json_output)
    results: list[tuple[int, catalog_service_pb2.ImportRowResult]] = []
    pending: list[tuple[int, catalog_service_pb2.ImportRow]] = []
    failure: CharterError | None = None
    with cli.client() as client:
        owner = rights_holder_of(client, rights_holder)
        templates = (
            client.list_terms_templates()
            if any(isinstance(e, catalog_file.CatalogRow) and e.terms_template for e in entries)
            else []
        )
        for entry in entries:
            resolved = entry if isinstance(entry, catalog_file.RowError) else catalog_file.resolve(entry, templates)
            if isinstance(resolved, catalog_file.RowError):
                results.append((resolved.row, resolved.to_result()))
            else:
                pending.append((entry.row, resolved))
        sent = 0
        with _progress() as progress:
            task = progress.add_task("importing", total=len(pending))
            for start in range(0, len(pending), batch_size):
                batch = pending[start : start + batch_size]
                try:
                    answers = client.import_characters(owner, [row for _, row in batch])
                except CharterError as exc:
                    # Earlier batches are in; stop here and report what happened so far.
                    failure = exc
                    break
                results.extend((batch[answer.index][0], answer) for answer in answers)
                sent += len(batch)
                progress.advance(task, len(batch))
    results.sort(key=lambda pair: pair[0])
    counts = Counter(result.outcome for _, result in results)
    not_sent = len(pending) - sent
    _print_import(cli.json_output, results, counts, not_sent)
    if failure is not None:
        _output.print_error(failure)
        _output.print_line(
            f"error: the import stopped; {not_sent} row(s) were not sent. Importing the file again is safe:"
            " rows already imported come back unchanged."
        )
        raise typer.Exit(1)
    if counts[_Result.OUTCOME_FAILED]:
        raise typer.Exit(1)


def _progress() -> Progress:
    # On stderr, so `--json` output on stdout stays clean for scripts.
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )


def _print_import(
    json_output: bool,
    results: list[tuple[int, catalog_service_pb2.ImportRowResult]],
    counts: Counter[catalog_service_pb2.ImportRowResult.Outcome.ValueType],
    not_sent: int,
) -> None:
    summary: dict[str, int] = {label: counts[outcome] for outcome, label in _OUTCOMES}
    if json_output:
        rows: list[dict[str, Any]] = []
        for row, result in results:
            data = _output.to_dict(result)
            # `index` is the position in one batch; the row number is what people look up.
            data.pop("index", None)
            rows.append({"row": row, **data})
        _output.print_json({"summary": dict(summary, notSent=not_sent), "rows": rows})
        return
    _output.print_counts("import summary", "rows", summary, not_sent)
    failed = [(row, result) for row, result in results if result.outcome == _Result.OUTCOME_FAILED]
    if not failed:
        return
    columns = [Column("row", Kind.NUMBER), Column("external id"), Column("reason"), Column("fields")]
    failures: list[list[Cell]] = [
        [
            str(row),
            result.external_id,
            result.error_reason,
            "\n".join(f"{v.field}: {v.description}" for v in result.field_violations),
        ]
        for row, result in failed
    ]
    render(Listing("failed rows", columns, failures))
