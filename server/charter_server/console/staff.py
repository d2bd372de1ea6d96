"""Staff pages: rights holders, licensees, API keys, signing keys, alias collisions, issuing and
changing grants, closing a month. Auditors see the same pages without the forms; the API refuses
their writes anyway, and a refusal is shown as a page (see `web.error_page`)."""

from __future__ import annotations

from datetime import UTC, datetime

from charter.errors import AlreadyExistsError, FailedPreconditionError, InvalidArgumentError
from charter.v1 import api_key_pb2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from charter_server.console.pages import PAGE, first
from charter_server.console.sessions import ROLE_NAMES
from charter_server.console.web import NotAllowed, checked_form, message_page, page, redirect, session_of

MAX_TEXT = 500

ROLES = {
    "admin": api_key_pb2.ROLE_ADMIN,
    "rights_holder": api_key_pb2.ROLE_RIGHTS_HOLDER,
    "generator": api_key_pb2.ROLE_GENERATOR,
    "auditor": api_key_pb2.ROLE_AUDITOR,
    "licensee_admin": api_key_pb2.ROLE_LICENSEE_ADMIN,
}


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip()[:MAX_TEXT] if isinstance(value, str) else ""


def _violations(error: InvalidArgumentError) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for violation in error.field_violations:
        name = violation.field.rsplit(".", 1)[-1]
        found.setdefault(name, []).append(violation.description)
    return found or {"_form": [error.message]}


def _staff_only(request: Request) -> None:
    if not session_of(request).caller.is_staff:
        raise NotAllowed()


async def overview(request: Request) -> Response:
    session = session_of(request)
    _staff_only(request)
    return page(request, "staff.html", {}, session=session)


async def rights_holders(request: Request) -> Response:
    session = session_of(request)
    _staff_only(request)
    errors: dict[str, list[str]] = {}
    values: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        form = await checked_form(request, session)
        values = {name: _text(form, name) for name in ("display_name", "contact_email", "legal_name")}
        try:
            created = await session.client.create_rights_holder(**values)
            session.flash.append(f"Rights holder {created.display_name} ({created.id}) created.")
            return redirect("/staff/rights-holders")
        except (InvalidArgumentError, AlreadyExistsError) as error:
            errors = _violations(error) if isinstance(error, InvalidArgumentError) else {"_form": [error.message]}
            status = 400
    query = request.query_params.get("q", "")[:200]
    found = await first(session.client.list_rights_holders(query=query, page_size=PAGE), PAGE)
    return page(
        request,
        "rights_holders.html",
        {"rights_holders": found, "query": query, "errors": errors, "values": values},
        status=status,
        session=session,
    )


async def licensees(request: Request) -> Response:
    session = session_of(request)
    _staff_only(request)
    errors: dict[str, list[str]] = {}
    values: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        form = await checked_form(request, session)
        values = {name: _text(form, name) for name in ("display_name", "contact_email", "platform")}
        try:
            created = await session.client.create_licensee(**values)
            session.flash.append(f"Licensee {created.display_name} ({created.id}) created.")
            return redirect("/staff/licensees")
        except (InvalidArgumentError, AlreadyExistsError) as error:
            errors = _violations(error) if isinstance(error, InvalidArgumentError) else {"_form": [error.message]}
            status = 400
    query = request.query_params.get("q", "")[:200]
    found = await first(session.client.list_licensees(query=query, page_size=PAGE), PAGE)
    return page(
        request,
        "licensees.html",
        {"licensees": found, "query": query, "errors": errors, "values": values},
        status=status,
        session=session,
    )


async def api_keys(request: Request) -> Response:
    session = session_of(request)
    _staff_only(request)
    errors: dict[str, list[str]] = {}
    values: dict[str, str] = {}
    secret = ""
    status = 200
    if request.method == "POST":
        form = await checked_form(request, session)
        values = {name: _text(form, name) for name in ("display_name", "role", "rights_holder_id", "licensee_id")}
        role = ROLES.get(values["role"])
        if role is None:
            errors = {"role": ["choose a role"]}
            status = 400
        else:
            try:
                created = await session.client.create_api_key(
                    display_name=values["display_name"],
                    role=role,
                    rights_holder_id=values["rights_holder_id"],
                    licensee_id=values["licensee_id"],
                )
                secret = created.secret
                values = {}
            except InvalidArgumentError as error:
                errors = _violations(error)
                status = 400
    found = await first(session.client.list_api_keys(page_size=PAGE), PAGE)
    return page(
        request,
        "api_keys.html",
        {"keys": found, "errors": errors, "values": values, "secret": secret, "role_names": ROLE_NAMES},
        status=status,
        session=session,
    )


async def revoke_api_key(request: Request) -> Response:
    session = session_of(request)
    await checked_form(request, session)
    key_id = request.path_params["key_id"][:60]
    await session.client.revoke_api_key(key_id)
    session.flash.append(f"API key {key_id} revoked.")
    return redirect("/staff/api-keys")


async def signing_keys(request: Request) -> Response:
    session = session_of(request)
    _staff_only(request)
    if request.method == "POST":
        await checked_form(request, session)
        rotated = await session.client.rotate_signing_key()
        session.flash.append(f"New signing key {rotated.active_key.key_id} is active.")
        return redirect("/staff/signing-keys")
    found = await session.client.list_signing_keys()
    return page(request, "signing_keys.html", {"keys": found}, session=session)


async def alias_collisions(request: Request) -> Response:
    session = session_of(request)
    _staff_only(request)
    found = await first(session.client.list_alias_collisions(page_size=PAGE), PAGE)
    return page(request, "alias_collisions.html", {"collisions": found}, session=session)


async def issue_grant(request: Request) -> Response:
    session = session_of(request)
    form = await checked_form(request, session)
    expiry_text = _text(form, "expire_date")
    try:
        expiry = datetime.fromisoformat(expiry_text).replace(tzinfo=UTC)
    except ValueError:
        return message_page(
            request,
            "The grant was not issued",
            "The expiry must be a date, YYYY-MM-DD. Nothing was changed.",
            status=400,
            session=session,
        )
    try:
        grant = await session.client.issue_grant(
            character_id=_text(form, "character_id"), licensee_id=_text(form, "licensee_id"), expire_time=expiry
        )
    except (InvalidArgumentError, FailedPreconditionError) as error:
        violations = (
            [(v.field, v.description) for v in error.field_violations]
            if isinstance(error, InvalidArgumentError)
            else []
        )
        return message_page(
            request,
            "The grant was not issued",
            f"{error.message} Nothing was changed.",
            status=400,
            session=session,
            violations=violations,
            reason=error.reason or "",
        )
    session.flash.append(f"Grant {grant.id} issued.")
    return redirect("/grants")


async def change_grant(request: Request) -> Response:
    """Suspend, reinstate or revoke a grant, with the reason given."""
    session = session_of(request)
    form = await checked_form(request, session)
    grant_id = request.path_params["grant_id"][:60]
    action = request.path_params["action"]
    reason = _text(form, "reason") or "changed in the console"
    if action == "suspend":
        await session.client.suspend_grant(grant_id, reason=reason)
    elif action == "reinstate":
        await session.client.reinstate_grant(grant_id)
    elif action == "revoke":
        await session.client.revoke_grant(grant_id, reason=reason)
    else:
        return message_page(request, "Not found", "There is no such action.", status=404, session=session)
    session.flash.append(f"Grant {grant_id}: {action} done.")
    return redirect("/grants")


async def close_month(request: Request) -> Response:
    session = session_of(request)
    form = await checked_form(request, session)
    holder = _text(form, "rights_holder_id")
    period = _text(form, "period")
    closed = await session.client.close_statement_period(holder, period=period)
    session.flash.append(f"{closed.period} is closed for {closed.rights_holder_display_name or holder}.")
    return redirect(f"/statements?rights_holder={holder}")
