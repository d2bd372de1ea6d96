"""The catalogue pages: the list with search, a character with its aliases and terms history,
editing terms (or applying a template), opting in and opting out.

New terms for an opted-in character are published in two steps: the first submit shows what they
would have changed over the last 30 days' decisions (``PreviewTerms``) and asks again; the second
publishes them, but only if the form still holds the terms that were previewed (a digest of them
travels in the form), otherwise it previews again.

Every page calls the API as the signed-in key; a rights holder opening another's character gets
the API's PERMISSION_DENIED, shown as a page (see `web.error_page`).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from charter.errors import FailedPreconditionError, InvalidArgumentError
from charter.v1 import authorization_service_pb2, character_pb2, terms_pb2
from starlette.requests import Request
from starlette.responses import Response

from charter_server.console import formatting, terms_form
from charter_server.console.web import checked_form, locale, page, redirect, session_of

PAGE = 100
"""Characters shown per catalogue search: a search narrows a large catalogue, it is not paged."""
HISTORY = 50
"""Terms versions shown on a character page, newest first."""
MAX_QUERY = 200

T = TypeVar("T")


async def first(items: AsyncIterator[T], count: int) -> list[T]:
    """At most ``count`` items of an async iterator (pages beyond are never fetched)."""
    found: list[T] = []
    async for item in items:
        found.append(item)
        if len(found) >= count:
            break
    return found


def _state_filter(text: str) -> int | None:
    for value, label in formatting.CHARACTER_STATES.items():
        if text == label.replace(" ", "_"):
            return value
    return None


async def catalogue(request: Request) -> Response:
    """The characters the key may see, searched by name in any script, with their state."""
    session = session_of(request)
    query = request.query_params.get("q", "")[:MAX_QUERY].strip()
    state_text = request.query_params.get("state", "")
    holder = request.query_params.get("rights_holder", "")[:60] if session.caller.is_staff else ""
    state = _state_filter(state_text)
    characters = await first(
        session.client.list_characters(query=query, state=state, rights_holder_id=holder, page_size=PAGE + 1),
        PAGE + 1,
    )
    return page(
        request,
        "catalogue.html",
        {
            "characters": characters[:PAGE],
            "more": len(characters) > PAGE,
            "query": query,
            "state": state_text if state is not None else "",
            "rights_holder": holder,
            "states": [(label.replace(" ", "_"), label) for label in formatting.CHARACTER_STATES.values()],
        },
        session=session,
    )


async def _history(client: Any, character_id: str) -> list[terms_pb2.Terms]:
    return await first(client.list_terms_versions(character_id, page_size=HISTORY), HISTORY)


async def character(request: Request) -> Response:
    """One character: names, keyword sets, current terms, what changed in each version, its grants."""
    session = session_of(request)
    character_id = request.path_params["character_id"]
    found: character_pb2.Character = await session.client.get_character(character_id)
    versions = await _history(session.client, character_id) if found.terms_version else []
    loc = locale(request)
    history = []
    for index, version in enumerate(versions):
        before = versions[index + 1] if index + 1 < len(versions) else None
        history.append((version, formatting.terms_changes(before, version, loc)))
    current = versions[0] if versions else None
    grants = await first(session.client.list_grants(character_id=character_id, page_size=PAGE), PAGE)
    summary = (
        [(label, formatting.terms_value(current, name, loc)) for name, label in formatting.TERMS_FIELDS]
        if current is not None
        else []
    )
    return page(
        request,
        "character.html",
        {"character": found, "history": history, "summary": summary, "grants": grants},
        session=session,
    )


async def edit_terms(request: Request) -> Response:
    """The terms form: the current terms, or a template's (`?template=`), or what was typed."""
    session = session_of(request)
    character_id = request.path_params["character_id"]
    found = await session.client.get_character(character_id)
    templates = await session.client.list_terms_templates()
    chosen = request.query_params.get("template", "")
    form = terms_form.TermsForm()
    template = next((t for t in templates if t.name == chosen), None)
    if template is not None:
        form = terms_form.from_terms(template.terms)
    elif found.terms_version:
        form = terms_form.from_terms(await session.client.get_terms(character_id))
    return _terms_page(request, session, found, templates, form, chosen if template is not None else "")


def _terms_page(
    request: Request,
    session: Any,
    found: character_pb2.Character,
    templates: list[terms_pb2.TermsTemplate],
    form: terms_form.TermsForm,
    template: str,
    *,
    status: int = 200,
    problem: str = "",
    preview: authorization_service_pb2.PreviewTermsResponse | None = None,
    previewed: str = "",
) -> Response:
    return page(
        request,
        "terms_edit.html",
        {
            "character": found,
            "templates": templates,
            "template": template,
            "form": form,
            "opted_in": found.state == character_pb2.Character.STATE_OPTED_IN,
            "problem": problem,
            "preview": preview,
            "previewed": previewed,
            "WOULD_DENY": authorization_service_pb2.TermsChange.DIRECTION_WOULD_DENY,
        },
        status=status,
        session=session,
    )


async def save_terms(request: Request) -> Response:
    """Publish the form's terms: opt in when the character is not, otherwise a new terms version."""
    session = session_of(request)
    form_data = await checked_form(request, session)
    character_id = request.path_params["character_id"]
    found = await session.client.get_character(character_id)
    form, terms = terms_form.parse(form_data)
    templates = await session.client.list_terms_templates()
    if form.errors:
        return _terms_page(request, session, found, templates, form, "", status=400)
    opted_in = found.state == character_pb2.Character.STATE_OPTED_IN
    digest = hashlib.sha256(terms.SerializeToString(deterministic=True)).hexdigest()
    try:
        if opted_in and form_data.get("previewed") != digest:
            preview = await session.client.preview_terms(character_id, terms)
            return _terms_page(request, session, found, templates, form, "", preview=preview, previewed=digest)
        if opted_in:
            saved = await session.client.update_terms(character_id, terms)
            session.flash.append(f"Terms version {saved.version} is published.")
        else:
            response = await session.client.opt_in(character_id, terms)
            session.flash.append(f"Opted in under terms version {response.terms.version}.")
    except InvalidArgumentError as error:
        for violation in error.field_violations:
            name = terms_form.form_field_of(violation.field)
            form.error(name or "_form", violation.description)
        return _terms_page(request, session, found, templates, form, "", status=400)
    except FailedPreconditionError as error:
        return _terms_page(request, session, found, templates, form, "", status=409, problem=error.message)
    return redirect(f"/characters/{character_id}")


async def confirm_opt_out(request: Request) -> Response:
    """Ask before opting out: it revokes every grant on the character."""
    session = session_of(request)
    character_id = request.path_params["character_id"]
    found = await session.client.get_character(character_id)
    grants = await first(session.client.list_grants(character_id=character_id, state="active", page_size=PAGE), PAGE)
    return page(request, "opt_out.html", {"character": found, "active_grants": grants}, session=session)


async def opt_out(request: Request) -> Response:
    session = session_of(request)
    form = await checked_form(request, session)
    character_id = request.path_params["character_id"]
    reason = form.get("reason")
    reason_text = reason.strip()[:500] if isinstance(reason, str) else ""
    if form.get("confirm") != "yes":
        found = await session.client.get_character(character_id)
        return page(
            request,
            "opt_out.html",
            {"character": found, "active_grants": [], "problem": "Tick the box to confirm."},
            status=400,
            session=session,
        )
    response = await session.client.opt_out(character_id, reason=reason_text)
    session.flash.append(f"Opted out. {response.revoked_grant_count} grant(s) revoked; no new uses will be allowed.")
    return redirect(f"/characters/{character_id}")
