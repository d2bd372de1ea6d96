"""The global options of the command line, the client built from them, and what a key is bound to."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Annotated

import grpc
import typer

from charter.cli import _output
from charter.client import Client
from charter.errors import CharterError

JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print JSON for scripts instead of tables (also accepted before the command)."),
]
"""The `--json` option every command takes, so it works after the command as well as before it."""

RightsHolderOption = Annotated[
    str | None,
    typer.Option(
        "--rights-holder", help="The rights holder (rh_...); by default the one a rights-holder key is bound to."
    ),
]
"""`--rights-holder` where a rights-holder key needs none: the CLI asks the server whom the key is bound to."""

# What to do, by the reason of a failed call.
_HINTS = {
    "CREDENTIALS_MISSING": "set CHARTER_API_KEY to your API key's secret (or pass --api-key).",
    "CREDENTIALS_INVALID": "the server at {target} does not know this API key: check that CHARTER_API_KEY holds the"
    " whole secret (key_….…) and that CHARTER_TARGET names the server that issued it.",
    "API_KEY_REVOKED": "this API key was revoked; ask licensing staff for a new one and set CHARTER_API_KEY to it.",
    "API_KEY_EXPIRED": "this API key has expired; ask licensing staff for a new one and set CHARTER_API_KEY to it.",
    "ROLE_NOT_PERMITTED": "your API key's role may not do this; `charter whoami` shows the role.",
    "RESOURCE_NOT_OWNED": "your API key acts only for its own rights holder or licensee (`charter whoami` shows"
    " which); the id may also not exist.",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """What the global options say: where the server is and how to print.

    Attributes:
        target: The server address.
        api_key: The API key secret, if any.
        root_certificates: PEM roots to verify the server with; set means TLS.
        json_output: Print protobuf JSON instead of tables.
        timeout: The deadline of each call in seconds.
    """

    target: str
    api_key: str | None
    root_certificates: bytes | None
    json_output: bool
    timeout: float

    @contextlib.contextmanager
    def client(self, hints: Mapping[str, str] | None = None) -> Iterator[Client]:
        """Yields a connected client; a CharterError inside becomes an error line, a hint and exit 1.

        Consume pagers inside the block: their calls happen while iterating. `hints` are a
        command's own hints by reason, ahead of the general ones.

        Raises:
            typer.Exit: With status 1 when a call fails, 2 when an option is invalid.
        """
        try:
            client = Client(
                self.target,
                api_key=self.api_key,
                root_certificates=self.root_certificates,
                timeout=self.timeout,
            )
        except ValueError as exc:
            # Bad global options (for example an API key with a space in it) are
            # usage errors, not failures of a call.
            _output.print_line(f"error: {exc}")
            raise typer.Exit(2) from None
        try:
            with client:
                yield client
        except CharterError as exc:
            _output.print_error(exc)
            hint = (hints or {}).get(exc.reason or "") or self.hint(exc)
            if hint:
                _output.print_line(f"hint: {hint}")
            raise typer.Exit(1) from None

    def hint(self, exc: CharterError) -> str:
        """What to do about a failed call, when the failure says it: '' otherwise."""
        if exc.code is grpc.StatusCode.UNAVAILABLE and exc.reason is None:
            # No reason: the failure came from the transport, not from a Charter server.
            return (
                f"no server answers at {self.target} — is it running? Start one with `charter-server serve`,"
                " or set CHARTER_TARGET (or --target) to its address; add --tls-ca for a server that uses TLS."
            )
        if exc.code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"the server at {self.target} did not answer within {self.timeout:g} s; raise --timeout."
        return _HINTS.get(exc.reason or "", "").format(target=self.target)


def settings(ctx: typer.Context, json_output: bool = False) -> Settings:
    """Returns the settings the root command stored in the context, with a command's own `--json` applied."""
    obj = ctx.find_root().obj
    if not isinstance(obj, Settings):  # Only possible when a command is invoked without the root.
        raise RuntimeError("charter command invoked without its global options")
    return dataclasses.replace(obj, json_output=True) if json_output else obj


def rights_holder_of(client: Client, given: str | None) -> str:
    """The rights holder a command acts for: `--rights-holder`, else the one the caller's key is bound to.

    Raises:
        typer.BadParameter: If neither says one (an admin or auditor key without the option).
        CharterError: If the caller cannot be looked up.
    """
    return given or _bound(client, "rights_holder_id", "the rights holder (rh_...)", "--rights-holder")


def licensee_of(client: Client, given: str | None) -> str:
    """The licensee a command acts for: `--licensee`, else the one the caller's key is bound to.

    Raises:
        typer.BadParameter: If neither says one.
        CharterError: If the caller cannot be looked up.
    """
    return given or _bound(client, "licensee_id", "the licensee (lic_...)", "--licensee")


def _bound(client: Client, field: str, what: str, option: str) -> str:
    bound: str = getattr(client.get_caller(), field)
    if not bound:
        raise typer.BadParameter(f"give {what}: this API key is not bound to one", param_hint=option)
    return bound


def parse_time(value: str, hint: str) -> dt.datetime:
    """An ISO 8601 time from an option; a time without an offset is read as UTC."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 time such as 2030-01-31T00:00:00Z", param_hint=hint
        ) from None
    # UTC is the zone the server reports times in.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)
