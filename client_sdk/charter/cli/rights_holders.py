"""`charter rights-holders`: the studios and publishers that own characters."""

from __future__ import annotations

import enum
import itertools
from typing import Annotated

import typer

from charter.cli import _output
from charter.cli._context import JsonOption, settings

app = typer.Typer(help="Rights holders: the studios and publishers that own characters.", no_args_is_help=True)

_TITLE = "rights holder"
_COLUMNS = ("id", "display_name", "contact_email", "state", "create_time")


class State(enum.StrEnum):
    """The states a listing can filter on."""

    active = "active"
    archived = "archived"


@app.command("create")
def create(
    ctx: typer.Context,
    *,
    display_name: Annotated[str, typer.Option(help="The name shown to people.")],
    contact_email: Annotated[str, typer.Option(help="The licensing contact's e-mail address.")],
    legal_name: Annotated[str, typer.Option(help="The registered legal name.")] = "",
    revenue_share_account: Annotated[str, typer.Option(help="The default account reference for revenue share.")] = "",
    request_id: Annotated[
        str | None, typer.Option(help="An idempotency key: repeating it returns the first result.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create a rights holder."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        holder = client.create_rights_holder(
            display_name=display_name,
            contact_email=contact_email,
            legal_name=legal_name,
            revenue_share_account=revenue_share_account,
            request_id=request_id,
        )
    _output.show(cli.json_output, holder, title=_TITLE)


@app.command("show")
def show(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="The rights holder id (rh_...).")],
    json_output: JsonOption = False,
) -> None:
    """Show one rights holder."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        holder = client.get_rights_holder(id)
    _output.show(cli.json_output, holder, title=_TITLE)


@app.command("list")
def list_(
    ctx: typer.Context,
    *,
    state: Annotated[
        State | None, typer.Option(case_sensitive=False, help="Only this state; active by default.")
    ] = None,
    query: Annotated[str, typer.Option(help="Only names containing this text.")] = "",
    page_size: Annotated[int, typer.Option(min=0, help="Results per call; 0 for the server's default.")] = 0,
    limit: Annotated[int, typer.Option(min=0, help="Stop after this many; 0 for all.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """List rights holders, oldest first."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        pager = client.list_rights_holders(
            state=None if state is None else state.value, query=query, page_size=page_size
        )
        holders = list(itertools.islice(pager, limit or None))
    _output.show_list(cli.json_output, holders, columns=_COLUMNS, title="rights holders")


@app.command("update")
def update(
    ctx: typer.Context,
    *,
    id: Annotated[str, typer.Argument(help="The rights holder id (rh_...).")],
    display_name: Annotated[str | None, typer.Option(help="The new display name.")] = None,
    legal_name: Annotated[str | None, typer.Option(help="The new legal name; '' clears it.")] = None,
    contact_email: Annotated[str | None, typer.Option(help="The new contact e-mail address.")] = None,
    revenue_share_account: Annotated[
        str | None, typer.Option(help="The new revenue-share account; '' clears it.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Change the given fields of a rights holder; the others stay as they are."""
    if all(v is None for v in (display_name, legal_name, contact_email, revenue_share_account)):
        raise typer.BadParameter("give at least one field to change, for example --display-name")
    cli = settings(ctx, json_output)
    with cli.client() as client:
        holder = client.update_rights_holder(
            id,
            display_name=display_name,
            legal_name=legal_name,
            contact_email=contact_email,
            revenue_share_account=revenue_share_account,
        )
    _output.show(cli.json_output, holder, title=_TITLE)


@app.command("archive")
def archive(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="The rights holder id (rh_...).")],
    json_output: JsonOption = False,
) -> None:
    """Archive a rights holder (kept for statements and audit, no longer changeable)."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        holder = client.archive_rights_holder(id)
    _output.show(cli.json_output, holder, title=_TITLE)
