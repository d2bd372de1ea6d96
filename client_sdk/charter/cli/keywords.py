"""`charter keywords`: a character's descriptive keyword sets (detections of kind DESCRIPTION)."""

from __future__ import annotations

from typing import Annotated

import typer

from charter import _requests
from charter.cli import _output
from charter.cli._context import JsonOption, settings
from charter.cli._tables import Cell, Column, Listing, render
from charter.v1 import character_pb2

app = typer.Typer(
    help="Keyword sets that describe a character without naming it; a prompt with every keyword of a set is"
    " a detection (best-effort).",
    no_args_is_help=True,
)

_ID = Annotated[str, typer.Argument(help="The character id (chr_...).")]


def _print(json_output: bool, character: character_pb2.Character) -> None:
    if json_output:
        _output.print_json([_output.to_dict(k) for k in character.keyword_sets])
        return
    rows: list[list[Cell]] = [
        [keyword_set.name, " + ".join("|".join(k.variants) for k in keyword_set.keywords)]
        for keyword_set in character.keyword_sets
    ]
    columns = [Column("name"), Column("keywords (variants separated by |)")]
    render(Listing(f"keyword sets of {character.id}", columns, rows, caption=f"{len(character.keyword_sets)} sets"))


@app.command("list")
def list_(ctx: typer.Context, id: _ID, json_output: JsonOption = False) -> None:
    """List a character's keyword sets."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        character = client.get_character(id)
    _print(cli.json_output, character)


@app.command("add")
def add(
    ctx: typer.Context,
    id: _ID,
    name: Annotated[str, typer.Argument(help="The set's name; a set of that name is replaced.")],
    *,
    keyword: Annotated[
        list[str],
        typer.Option(help="A keyword, its variants separated by |, for example 'videogame|video game'; 2 to 6."),
    ],
    json_output: JsonOption = False,
) -> None:
    """Add a keyword set to a character (or replace the set of that name)."""
    keywords = [[v.strip() for v in entry.split("|") if v.strip()] for entry in keyword]
    cli = settings(ctx, json_output)
    with cli.client() as client:
        character = client.add_keyword_set(id, _requests.keyword_set(name, *keywords))
    _print(cli.json_output, character)


@app.command("remove")
def remove(
    ctx: typer.Context,
    id: _ID,
    name: Annotated[str, typer.Argument(help="The set's name.")],
    json_output: JsonOption = False,
) -> None:
    """Remove a keyword set from a character."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        before = client.get_character(id)
        if name not in [k.name for k in before.keyword_sets]:
            _output.print_line(f"error: character {id} has no keyword set {name!r}")
            raise typer.Exit(1)
        character = client.remove_keyword_set(id, name)
    _print(cli.json_output, character)
