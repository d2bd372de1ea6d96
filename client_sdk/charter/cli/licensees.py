"""`charter licensees`: the generation services and apps that render characters."""

from __future__ import annotations

import enum
import itertools
from typing import Annotated

import typer

from charter.cli import _output
from charter.cli._context import JsonOption, settings

app = typer.Typer(help="Licensees: the generation services and apps that render characters.", no_args_is_help=True)

_TITLE = "licensee"
# Rights-holder keys may not read licensees whole, only the public profiles of their own licensees.
_PROFILE_HINT = {
    "ROLE_NOT_PERMITTED": "a rights-holder key reads the public profiles of the licensees holding grants on its"
    " characters: `charter licensees profiles` and `charter licensees profile ID`."
}
_COLUMNS = ("id", "display_name", "platform", "contact_email", "state", "create_time")


class State(enum.StrEnum):
    """The states a listing can filter on."""

    active = "active"
    archived = "archived"


@app.command("create")
def create(
    ctx: typer.Context,
    *,
    display_name: Annotated[str, typer.Option(help="The name shown to people.")],
    contact_email: Annotated[str, typer.Option(help="The contact's e-mail address.")],
    platform: Annotated[str, typer.Option(help="The platform slug, for example example-video-app.")],
    legal_name: Annotated[str, typer.Option(help="The registered legal name.")] = "",
    request_id: Annotated[
        str | None, typer.Option(help="An idempotency key: repeating it returns the first result.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create a licensee."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        licensee = client.create_licensee(
            display_name=display_name,
            contact_email=contact_email,
            platform=platform,
            legal_name=legal_name,
            request_id=request_id,
        )
    _output.show(cli.json_output, licensee, title=_TITLE)


@app.command("show")
def show(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="The licensee id (lic_...).")],
    json_output: JsonOption = False,
) -> None:
    """Show one licensee."""
    cli = settings(ctx, json_output)
    with cli.client(_PROFILE_HINT) as client:
        licensee = client.get_licensee(id)
    _output.show(cli.json_output, licensee, title=_TITLE)


@app.command("list")
def list_(
    ctx: typer.Context,
    *,
    state: Annotated[
        State | None, typer.Option(case_sensitive=False, help="Only this state; active by default.")
    ] = None,
    query: Annotated[str, typer.Option(help="Only names containing this text.")] = "",
    platform: Annotated[str, typer.Option(help="Only this platform.")] = "",
    page_size: Annotated[int, typer.Option(min=0, help="Results per call; 0 for the server's default.")] = 0,
    limit: Annotated[int, typer.Option(min=0, help="Stop after this many; 0 for all.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """List licensees, oldest first."""
    cli = settings(ctx, json_output)
    with cli.client(_PROFILE_HINT) as client:
        pager = client.list_licensees(
            state=None if state is None else state.value,
            query=query,
            platform=platform,
            page_size=page_size,
        )
        found = list(itertools.islice(pager, limit or None))
    _output.show_list(cli.json_output, found, columns=_COLUMNS, title="licensees")


@app.command("update")
def update(
    ctx: typer.Context,
    *,
    id: Annotated[str, typer.Argument(help="The licensee id (lic_...).")],
    display_name: Annotated[str | None, typer.Option(help="The new display name.")] = None,
    contact_email: Annotated[str | None, typer.Option(help="The new contact e-mail address.")] = None,
    platform: Annotated[str | None, typer.Option(help="The new platform slug.")] = None,
    legal_name: Annotated[str | None, typer.Option(help="The new legal name; '' clears it.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Change the given fields of a licensee; the others stay as they are."""
    if all(v is None for v in (display_name, contact_email, platform, legal_name)):
        raise typer.BadParameter("give at least one field to change, for example --display-name")
    cli = settings(ctx, json_output)
    with cli.client() as client:
        licensee = client.update_licensee(
            id,
            display_name=display_name,
            contact_email=contact_email,
            platform=platform,
            legal_name=legal_name,
        )
    _output.show(cli.json_output, licensee, title=_TITLE)


@app.command("archive")
def archive(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="The licensee id (lic_...).")],
    json_output: JsonOption = False,
) -> None:
    """Archive a licensee (kept for statements and audit, no longer changeable)."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        licensee = client.archive_licensee(id)
    _output.show(cli.json_output, licensee, title=_TITLE)


# -- public profiles: what a rights holder may read about its licensees ------------------------------

_PROFILE_COLUMNS = ("id", "display_name", "platform", "state")


@app.command("profile")
def profile(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="The licensee id (lic_...).")],
    json_output: JsonOption = False,
) -> None:
    """Show a licensee's public profile: name, platform, state (a rights-holder key: its own licensees)."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        found = client.get_licensee_profile(id)
    _output.show(cli.json_output, found, title="licensee profile")


@app.command("profiles")
def profiles(
    ctx: typer.Context,
    *,
    rights_holder: Annotated[
        str, typer.Option(help="Only licensees holding or having held grants on this rights holder's characters.")
    ] = "",
    page_size: Annotated[int, typer.Option(min=0, help="Results per call; 0 for the server's default.")] = 0,
    limit: Annotated[int, typer.Option(min=0, help="Stop after this many; 0 for all.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """List licensees' public profiles; a rights-holder key sees those that hold or held grants on its characters."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        pager = client.list_licensee_profiles(rights_holder_id=rights_holder, page_size=page_size)
        found = list(itertools.islice(pager, limit or None))
    _output.show_list(cli.json_output, found, columns=_PROFILE_COLUMNS, title="licensee profiles")
