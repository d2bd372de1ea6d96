"""`charter api-keys` and `charter whoami`: the API keys that authenticate callers."""

from __future__ import annotations

import enum
import itertools
from typing import Annotated

import typer

from charter.cli import _output
from charter.cli._context import JsonOption, parse_time, settings

app = typer.Typer(help="API keys: who may call Charter, and as what.", no_args_is_help=True)

_TITLE = "API key"
_COLUMNS = ("id", "display_name", "role", "rights_holder_id", "licensee_id", "state", "expire_time")


class RoleName(enum.StrEnum):
    """The roles a key can have (see `charter.Role`)."""

    admin = "admin"
    rights_holder = "rights_holder"
    generator = "generator"
    auditor = "auditor"
    licensee_admin = "licensee_admin"


@app.command("create")
def create(
    ctx: typer.Context,
    *,
    display_name: Annotated[str, typer.Option(help="Who holds the key, for example 'render farm eu-west'.")],
    role: Annotated[RoleName, typer.Option(case_sensitive=False, help="What the key may do.")],
    rights_holder: Annotated[str, typer.Option(help="The rights holder a rights_holder key acts for (rh_...).")] = "",
    licensee: Annotated[str, typer.Option(help="The licensee a generator key acts for (lic_...).")] = "",
    expires: Annotated[
        str | None,
        typer.Option(help="When the key stops working, ISO 8601; UTC when no offset is given; never by default."),
    ] = None,
    # The spellings of earlier releases, kept working for scripts but no longer shown.
    rights_holder_id: Annotated[str, typer.Option(hidden=True)] = "",
    licensee_id: Annotated[str, typer.Option(hidden=True)] = "",
    expire_time: Annotated[str | None, typer.Option(hidden=True)] = None,
    request_id: Annotated[
        str | None, typer.Option(help="An idempotency key: repeating it returns the first key.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create an API key and print its secret, which is shown only this once."""
    when = expires if expires is not None else expire_time
    expire = None if when is None else parse_time(when, "--expires")
    cli = settings(ctx, json_output)
    with cli.client() as client:
        created = client.create_api_key(
            display_name=display_name,
            role=role.value,
            rights_holder_id=rights_holder or rights_holder_id,
            licensee_id=licensee or licensee_id,
            expire_time=expire,
            request_id=request_id,
        )
    if cli.json_output:
        _output.print_json(_output.to_dict(created))
    else:
        _output.show(False, created.api_key, title=_TITLE)
        if created.secret:
            # Plain echo, not Rich, on a line of its own: the secret must come out whole and copyable,
            # and at 80 characters it fills an 80-column terminal exactly.
            typer.echo("secret (shown only this once):")
            typer.echo(created.secret)
    if created.secret:
        _output.print_line("warning: the secret is shown only once; store it now, it cannot be shown again.")
    else:
        _output.print_line(
            "warning: this request id already created the key; its secret was shown then and cannot be shown again."
        )


@app.command("show")
def show(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="The key id (key_...).")],
    json_output: JsonOption = False,
) -> None:
    """Show one API key (never its secret)."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        key = client.get_api_key(id)
    _output.show(cli.json_output, key, title=_TITLE)


@app.command("list")
def list_(
    ctx: typer.Context,
    *,
    role: Annotated[RoleName | None, typer.Option(case_sensitive=False, help="Only keys with this role.")] = None,
    show_inactive: Annotated[bool, typer.Option(help="Include revoked and expired keys.")] = False,
    page_size: Annotated[int, typer.Option(min=0, help="Results per call; 0 for the server's default.")] = 0,
    limit: Annotated[int, typer.Option(min=0, help="Stop after this many; 0 for all.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """List API keys, oldest first (never their secrets)."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        pager = client.list_api_keys(
            role=None if role is None else role.value, show_inactive=show_inactive, page_size=page_size
        )
        keys = list(itertools.islice(pager, limit or None))
    _output.show_list(cli.json_output, keys, columns=_COLUMNS, title="API keys")


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="The key id (key_...).")],
    json_output: JsonOption = False,
) -> None:
    """Revoke an API key; it authenticates nothing from then on."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        key = client.revoke_api_key(id)
    _output.show(cli.json_output, key, title=_TITLE)


def whoami(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Show the API key this command authenticates with."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        key = client.get_caller()
    _output.show(cli.json_output, key, title="caller")
