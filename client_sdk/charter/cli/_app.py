"""The root `charter` command: global options and one sub-command group per module.

A new resource adds a module with its own `typer.Typer()` group and one
`add_typer` line here.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from charter._options import DEFAULT_TIMEOUT
from charter._requests import NameWarning
from charter._version import __version__
from charter.cli import (
    api_keys,
    audit,
    authorize,
    characters,
    grants,
    keywords,
    licensees,
    receipts,
    rights_holders,
    screen,
    signing_keys,
    statements,
    terms,
    usage,
)
from charter.cli._context import Settings

app = typer.Typer(
    name="charter",
    help="Charter, the opt-in character licensing service: manage rights holders, characters and their terms,"
    " licensees, API keys, signed grants and signing keys; authorize a use, screen a prompt, verify a receipt;"
    " report usage and read revenue-share statements; witness and audit the transparency log.",
    no_args_is_help=True,
    # --install-completion / --show-completion for bash, zsh, fish and PowerShell.
    add_completion=True,
    # Tracebacks with local variables would print the API key.
    pretty_exceptions_show_locals=False,
)

app.add_typer(rights_holders.app, name="rights-holders")
app.add_typer(characters.app, name="characters")
app.add_typer(keywords.app, name="keywords")
app.add_typer(terms.app, name="terms")
app.add_typer(licensees.app, name="licensees")
app.add_typer(api_keys.app, name="api-keys")
app.add_typer(grants.app, name="grants")
app.add_typer(signing_keys.app, name="signing-keys")
app.add_typer(receipts.app, name="receipts")
app.add_typer(usage.app, name="usage")
app.add_typer(statements.app, name="statements")
app.add_typer(audit.app, name="audit")
app.command("whoami")(api_keys.whoami)
app.command("authorize")(authorize.authorize)
app.command("screen")(screen.screen)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"charter {__version__} (charter-sdk)")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    *,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    target: Annotated[
        str, typer.Option(envvar="CHARTER_TARGET", help="The server address, host:port.")
    ] = "localhost:50051",
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="CHARTER_API_KEY",
            help="The API key secret. Prefer the environment variable: flags show up in process lists.",
            show_default=False,
        ),
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option(
            "--tls-ca",
            envvar="CHARTER_TLS_CA",
            exists=True,
            dir_okay=False,
            readable=True,
            help="PEM root certificates to verify the server with; turns on TLS.",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Print JSON for scripts instead of tables (also accepted after the command)."),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(envvar="CHARTER_TIMEOUT", min=0.001, help="The deadline of each call, in seconds."),
    ] = DEFAULT_TIMEOUT,
) -> None:
    """Charter, the opt-in character licensing service."""
    warnings.simplefilter("always", NameWarning)
    warnings.showwarning = _show_warning
    ctx.obj = Settings(
        target=target,
        api_key=api_key or None,
        root_certificates=tls_ca.read_bytes() if tls_ca is not None else None,
        json_output=json_output,
        timeout=timeout,
    )


_SHOW_WARNING = warnings.showwarning


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
    **_: Any,
) -> None:
    """Prints a name warning of the server as ``warning: ...`` on stderr, other warnings as usual."""
    if isinstance(message, NameWarning):
        typer.echo(f"warning: {message}", err=True)
    else:
        _SHOW_WARNING(message, category, filename, lineno, file, line)
