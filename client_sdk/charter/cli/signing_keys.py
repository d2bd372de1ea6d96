"""`charter signing-keys`: the Ed25519 keys that sign grants and receipts, and the log's; list, rotate, revoke."""

from __future__ import annotations

from typing import Annotated

import typer

from charter.cli import _output
from charter.cli._context import JsonOption, settings

app = typer.Typer(help="Signing keys: the Ed25519 keys that sign grants; rotate and revoke.", no_args_is_help=True)

_TITLE = "signing key"
# The public key is 32 raw bytes: in the JSON form (base64) and `charter grants verify --offline`, not the table.
_COLUMNS = ("key_id", "purpose", "state", "algorithm", "activate_time", "retire_time", "revoke_time")
_OMIT = ("public_key",)


@app.command("list")
def list_(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List every signing key, revoked ones included, newest first (public halves only)."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        keys = client.list_signing_keys()
    _output.show_list(cli.json_output, keys, columns=_COLUMNS, title="signing keys")


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    *,
    log: Annotated[
        bool, typer.Option("--log", help="Rotate the transparency log's key (it signs checkpoints) instead.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Make a new key active and retire the previous one, which keeps verifying the grants it signed."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        response = client.rotate_signing_key(log=log)
    if cli.json_output:
        _output.print_json(_output.to_dict(response))
        return
    _output.show(False, response.active_key, title="new active key", omit=_OMIT)
    if response.HasField("retired_key"):
        _output.show(False, response.retired_key, title="retired key", omit=_OMIT)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key id (sk_...).")],
    *,
    reason: Annotated[str, typer.Option(help="Why, for the audit log; at most 500 characters.")],
    json_output: JsonOption = False,
) -> None:
    """Revoke a key: every grant it signed stops verifying (KEY_REVOKED).

    The active key cannot be revoked; rotate first.
    """
    cli = settings(ctx, json_output)
    with cli.client() as client:
        key = client.revoke_signing_key(key_id, reason=reason)
    _output.show(cli.json_output, key, title=_TITLE, omit=_OMIT)
