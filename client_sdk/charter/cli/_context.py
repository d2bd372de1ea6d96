"""The global options of the command line and the client built from them."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Iterator

import typer

from charter.cli import _output
from charter.client import Client
from charter.errors import CharterError


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
    def client(self) -> Iterator[Client]:
        """Yields a connected client; a CharterError inside becomes an error line and exit 1.

        Consume pagers inside the block: their calls happen while iterating.

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
            raise typer.Exit(1) from None


def settings(ctx: typer.Context) -> Settings:
    """Returns the settings the root command stored in the context."""
    obj = ctx.find_root().obj
    if not isinstance(obj, Settings):  # Only possible when a command is invoked without the root.
        raise RuntimeError("charter command invoked without its global options")
    return obj


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
