"""`charter receipts`: check a signed decision receipt against the server's key set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charter.cli import _output
from charter.cli._context import JsonOption, settings
from charter.grants import KeyRing
from charter.receipts import ReceiptVerification, verify_receipt

app = typer.Typer(
    help="Decision receipts: Charter's signed account of an authorization; verify one.", no_args_is_help=True
)

_CHARACTER_COLUMNS = ("character_id", "allowed", "reasons", "grant_id", "terms_version", "declared", "detected")
_OMIT = ("characters", "context", "request_digest")


@app.command("verify")
def verify(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="The receipt envelope as DSSE JSON (as `charter authorize --receipt-out FILE` writes it).",
        ),
    ],
    *,
    licensee: Annotated[
        str | None, typer.Option(help="The licensee the receipt must be for (lic_...); any by default.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Verify a receipt file here, with the server's key set; exit 0 only when the verdict is VALID."""
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise typer.BadParameter(f"{file.name} is not a UTF-8 text file", param_hint="FILE") from None
    cli = settings(ctx, json_output)
    with cli.client() as client:
        key_set = client.get_key_set()
    try:
        keys = KeyRing.from_key_set(key_set)
    except ValueError as exc:
        _output.print_line(f"error: the server's key set cannot be used: {exc}")
        raise typer.Exit(1) from None
    result = verify_receipt(text, keys=keys, licensee_id=licensee)
    _print(cli.json_output, result)
    if not result.valid:
        raise typer.Exit(1)


def _print(json_output: bool, result: ReceiptVerification) -> None:
    receipt = result.receipt
    if json_output:
        _output.print_json(
            {
                "verdict": result.reason,
                "keyId": result.key_id,
                "receipt": None if receipt is None else _output.to_dict(receipt),
            }
        )
        return
    typer.echo(f"verdict: {result.reason}")
    typer.echo(f"key: {result.key_id or '-'}")
    if receipt is None:
        return
    _output.show(False, receipt, title="decision", omit=_OMIT)
    _output.show(False, receipt.context, title="use context")
    _output.show_list(False, receipt.characters, columns=_CHARACTER_COLUMNS, title="characters")
