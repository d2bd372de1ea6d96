"""`charter grants`: signed grants, their lifecycle, and verifying a grant file."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path
from typing import Annotated

import typer
from google.protobuf.message import Message

from charter import _requests, catalog_file, envelope
from charter.cli import _output
from charter.cli._context import JsonOption, licensee_of, parse_time, settings
from charter.cli.characters import parse_choice
from charter.grants import GrantVerifier, KeyRing, Verification
from charter.v1 import grant_pb2, signing_key_pb2, terms_pb2

app = typer.Typer(
    help="Grants: signed permissions for a licensee to use a character; issue, revoke, verify.",
    no_args_is_help=True,
)

_TITLE = "grant"
_COLUMNS = (
    "id",
    _output.NamedField("character", "character_id", "character_name"),
    _output.NamedField("licensee", "licensee_id", "licensee_display_name"),
    "state",
    "not_before",
    "expire_time",
    "rights_holder_id",
)
# The envelope is binary; people see a summary line, scripts its protobuf JSON (or --envelope-json).
_OMIT = ("terms", "envelope")

_GrantId = Annotated[str, typer.Argument(help="The grant id (grt_...).")]
_Reason = Annotated[str, typer.Option(help="Why, for the audit log; at most 500 characters.")]


def _read_terms_file(path: Path) -> terms_pb2.Terms:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise typer.BadParameter(f"{path.name} is not a UTF-8 JSON file: {exc}", param_hint="--terms-file") from None
    try:
        return catalog_file.terms_from_json(data).over()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--terms-file") from None


def _show(json_output: bool, grant: grant_pb2.Grant) -> None:
    """Prints a grant; for people, its terms as a table of their own and a line about its envelope."""
    if json_output:
        _output.print_json(_output.to_dict(grant))
        return
    _output.show(False, grant, title=_TITLE, omit=_OMIT)
    if grant.HasField("terms"):
        _output.show(False, grant.terms, title="terms as granted")
    signed_by = ", ".join(s.keyid for s in grant.envelope.signatures) or "-"
    _output.say(
        f"envelope: {len(grant.envelope.payload)}-byte payload signed by {signed_by};"
        f" `charter grants show {grant.id} --envelope-json` prints it as DSSE JSON."
    )


def _show_change(json_output: bool, grant: grant_pb2.Grant, sequence: int, *, label: str, response: Message) -> None:
    """Prints a lifecycle change: the grant and the revocation log's sequence number, or the response's JSON."""
    if json_output:
        _output.print_json(_output.to_dict(response))
        return
    # The terms did not change; the grant's state and the log position are the news.
    _output.show(False, grant, title=_TITLE, omit=_OMIT)
    typer.echo(f"{label} sequence: {sequence}")


@app.command("issue")
def issue(
    ctx: typer.Context,
    *,
    character: Annotated[str, typer.Option(help="The character (chr_...); it must be opted in.")],
    licensee: Annotated[str, typer.Option(help="The licensee (lic_...).")],
    expires: Annotated[
        str | None,
        typer.Option(help="When the grant stops being valid, ISO 8601; UTC when no offset is given."),
    ] = None,
    days: Annotated[
        int | None,
        typer.Option(min=1, help="Instead of --expires: the grant lasts this many days from its start."),
    ] = None,
    not_before: Annotated[
        str | None,
        typer.Option(help="When the grant starts to be valid, ISO 8601; now by default."),
    ] = None,
    terms_file: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            readable=True,
            help="A JSON file of Terms narrowing the character's current terms (never wider);"
            " the current terms as they are by default.",
        ),
    ] = None,
    max_uses: Annotated[
        int | None,
        typer.Option(min=0, help="The most uses the grant allows over its whole validity; no cap by default."),
    ] = None,
    request_id: Annotated[
        str | None, typer.Option(help="An idempotency key: repeating it returns the first grant.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Issue a signed grant for a licensee to use a character until --expires (or for --days)."""
    if expires is not None and days is not None:
        raise typer.BadParameter("give --expires or --days, not both")
    start = None if not_before is None else parse_time(not_before, "--not-before")
    if days is not None:
        expire_time = (start or dt.datetime.now(dt.UTC)) + dt.timedelta(days=days)
    elif expires is not None:
        expire_time = parse_time(expires, "--expires")
    else:
        raise typer.BadParameter("give when the grant expires: --expires 2030-01-31T00:00:00Z or --days 30")
    narrowed = _read_terms_file(terms_file) if terms_file is not None else None
    cli = settings(ctx, json_output)
    with cli.client() as client:
        grant = client.issue_grant(
            character_id=character,
            licensee_id=licensee,
            expire_time=expire_time,
            not_before=start,
            narrowed_terms=narrowed,
            max_uses=max_uses,
            request_id=request_id,
        )
    _show(cli.json_output, grant)


@app.command("show")
def show(
    ctx: typer.Context,
    id: _GrantId,
    *,
    envelope_json: Annotated[
        bool,
        typer.Option(
            "--envelope-json",
            help="Print only the grant's signed envelope as standard DSSE JSON, to hand to the licensee"
            " (redirect it to a file).",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Show one grant, or with --envelope-json only its signed envelope."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        grant = client.get_grant(id)
    if envelope_json:
        if not grant.HasField("envelope"):
            _output.print_line(f"error: grant {id} has no envelope")
            raise typer.Exit(1)
        typer.echo(envelope.to_json(grant.envelope))
        return
    _show(cli.json_output, grant)


@app.command("list")
def list_(
    ctx: typer.Context,
    *,
    character: Annotated[str, typer.Option(help="Only grants for this character.")] = "",
    licensee: Annotated[str, typer.Option(help="Only grants for this licensee.")] = "",
    rights_holder: Annotated[str, typer.Option(help="Only grants for characters of this rights holder.")] = "",
    state: Annotated[
        str | None,
        typer.Option(
            help="Only this state: " + _requests.enum_choices(grant_pb2.Grant.State, "STATE_") + "; all by default."
        ),
    ] = None,
    page_size: Annotated[int, typer.Option(min=0, help="Results per call; 0 for the server's default.")] = 0,
    limit: Annotated[int, typer.Option(min=0, help="Stop after this many; 0 for all.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """List grants, newest first."""
    state_value = None if state is None else parse_choice(_requests.parse_grant_state, state, param_hint="--state")
    cli = settings(ctx, json_output)
    with cli.client() as client:
        pager = client.list_grants(
            character_id=character,
            licensee_id=licensee,
            rights_holder_id=rights_holder,
            state=state_value,
            page_size=page_size,
        )
        found = list(itertools.islice(pager, limit or None))
    _output.show_list(cli.json_output, found, columns=_COLUMNS, title="grants")


@app.command("suspend")
def suspend(ctx: typer.Context, id: _GrantId, *, reason: _Reason, json_output: JsonOption = False) -> None:
    """Suspend an active grant: it verifies as SUSPENDED until reinstated."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        response = client.suspend_grant(id, reason=reason)
    _show_change(cli.json_output, response.grant, response.sequence, label="suspension", response=response)


@app.command("reinstate")
def reinstate(ctx: typer.Context, id: _GrantId, json_output: JsonOption = False) -> None:
    """Lift the suspension of a grant."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        response = client.reinstate_grant(id)
    _show_change(cli.json_output, response.grant, response.sequence, label="reinstatement", response=response)


@app.command("revoke")
def revoke(ctx: typer.Context, id: _GrantId, *, reason: _Reason, json_output: JsonOption = False) -> None:
    """Revoke a grant for good and print the revocation log's sequence number."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        response = client.revoke_grant(id, reason=reason)
    _show_change(cli.json_output, response.grant, response.sequence, label="revocation", response=response)


# -- verify -----------------------------------------------------------------------------------


@app.command("verify")
def verify(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="The grant envelope as DSSE JSON (as `charter grants show ID --envelope-json` prints it).",
        ),
    ],
    *,
    character: Annotated[str, typer.Option(help="The character the grant is presented for (chr_...).")],
    licensee: Annotated[
        str | None,
        typer.Option(
            help="The licensee presenting the grant (lic_...); by default the one a generator key is bound to."
        ),
    ] = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Verify here against the server's key set instead of asking the server; revocation and"
            " suspension are then not checked.",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Verify a grant file for a licensee and a character; exit 0 only when the verdict is VALID."""
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise typer.BadParameter(f"{file.name} is not a UTF-8 text file", param_hint="FILE") from None
    cli = settings(ctx, json_output)
    with cli.client() as client:
        presenter = licensee_of(client, licensee)
        if offline:
            result = _verify_offline(client.get_key_set(), text, licensee_id=presenter, character_id=character)
        else:
            response = client.verify_grant(text, licensee_id=presenter, character_id=character)
            result = Verification(
                verdict=response.verdict,
                claims=response.claims if response.HasField("claims") else None,
                key_id=response.key_id,
            )
    _print_verification(cli.json_output, result, offline=offline)
    if not result.valid:
        raise typer.Exit(1)


def _verify_offline(key_set: signing_key_pb2.KeySet, text: str, *, licensee_id: str, character_id: str) -> Verification:
    """Verifies here, with the SDK's verifier and the server's key set; no revocation state."""
    try:
        keys = KeyRing.from_key_set(key_set)
    except ValueError as exc:
        _output.print_line(f"error: the server's key set cannot be used: {exc}")
        raise typer.Exit(1) from None
    return GrantVerifier().verify(
        text, keys=keys, licensee_id=licensee_id, character_id=character_id, now=dt.datetime.now(dt.UTC)
    )


def _print_verification(json_output: bool, result: Verification, *, offline: bool) -> None:
    if json_output:
        _output.print_json(
            {
                "verdict": result.reason,
                "keyId": result.key_id,
                "claims": None if result.claims is None else _output.to_dict(result.claims),
                "checkedBy": "offline" if offline else "server",
                "revocationChecked": not offline,
            }
        )
    else:
        typer.echo(f"verdict: {result.reason}")
        typer.echo(f"key: {result.key_id or '-'}")
        if offline:
            _output.say(
                "revocation: not checked (offline verification has no revocation state; run without --offline"
                " to ask the server)"
            )
        else:
            typer.echo("revocation: checked by the server")
        if result.claims is not None:
            _output.show(False, result.claims, title="claims", omit=("terms",))
            if result.claims.HasField("terms"):
                _output.show(False, result.claims.terms, title="terms as granted")
