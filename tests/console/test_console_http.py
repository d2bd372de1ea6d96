"""The console over HTTP, against the real API: signing in and out, sessions that end, CSRF on
every form, a rights holder kept to its own catalogue, bad input escaped or refused with nothing
changed, terms edited with messages next to the fields, statements with names and a CSV that
spreadsheets cannot run, usage series, and staff and auditor pages."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import charter
import pytest
from charter.v1 import character_pb2, grant_pb2
from charter_server.console.serve import ConsoleServer
from charter_server.console.web import ConsoleSettings
from markupsafe import escape

from .conftest import Web, csrf_of
from .scene import Scene, make_scene, simple_terms, unique

OPTED_IN = character_pb2.Character.STATE_OPTED_IN


def in_days(days: int) -> str:
    return f"{datetime.now(UTC) + timedelta(days=days):%Y-%m-%d}"


def esc(text: str) -> str:
    """Text as the console's templates write it (autoescaped by Jinja2)."""
    return str(escape(text))


def api(scene_or_target: Scene | str, key: str) -> charter.Client:
    target = scene_or_target if isinstance(scene_or_target, str) else scene_or_target.target
    return charter.Client(target, api_key=key)


def test_signing_in_keeps_the_key_on_the_server_and_gives_a_strict_http_only_cookie(web: Web, scene: Scene) -> None:
    form = web.get("/sign-in")
    signed_in = web.sign_in(scene.holder_key)
    cookie = signed_in.headers.get("set-cookie", "")
    catalogue = web.get("/catalogue")

    assert form.status_code == 200
    assert "default-src 'none'" in form.headers["content-security-policy"]
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/catalogue"
    assert "charter_console=" in cookie
    assert "httponly" in cookie.lower()
    assert "samesite=strict" in cookie.lower()
    assert "secure" not in cookie.lower().replace("samesite", "")  # plain HTTP on loopback
    assert scene.holder_key not in cookie
    assert scene.holder_key.split(".")[-1] not in catalogue.text
    assert catalogue.status_code == 200
    assert scene.first_name in catalogue.text
    assert scene.second_name in catalogue.text


def test_a_wrong_key_is_refused_and_repeated_failures_are_slowed_down(keys: Any, clock: Any) -> None:
    # A console of its own (the throttle counts per address, and every test comes from 127.0.0.1),
    # with its clock stopped, so that a slow machine cannot let a wait run out between two tries.
    stopped = clock.now()
    own = ConsoleServer(ConsoleSettings(server=keys.target), "127.0.0.1:0", clock=lambda: stopped)
    own.start()
    client = Web(own.url)
    try:
        answers = [client.sign_in(f"key_{'0' * 32}.{unique()}").status_code for _ in range(4)]
        throttled = client.sign_in(keys.rights_holder)
        nothing = client.get("/catalogue")
    finally:
        client.close()
        own.stop()

    # Three free tries, then each must wait (the right key too, until the wait is over).
    assert answers == [401, 401, 401, 429]
    assert throttled.status_code == 429
    assert nothing.status_code == 303
    assert nothing.headers["location"].startswith("/sign-in")


def test_behind_tls_the_cookies_are_secure(keys: Any, clock: Any) -> None:
    own = ConsoleServer(ConsoleSettings(server=keys.target, secure_cookies=True), "127.0.0.1:0", clock=clock.now)
    own.start()
    client = Web(own.url)
    try:
        form = client.get("/sign-in")
        # Over plain HTTP the client keeps the Secure cookie to itself, so the form is refused.
        refused = client.http.post("/sign-in", data={"csrf_token": csrf_of(form.text), "api_key": keys.rights_holder})
    finally:
        client.close()
        own.stop()
    cookie = form.headers.get("set-cookie", "").lower()

    assert "charter_console_signin=" in cookie
    assert "; secure" in cookie
    assert refused.status_code == 403


def test_a_generator_key_cannot_sign_in(web: Web, scene: Scene) -> None:
    refused = web.sign_in(scene.generator_key)

    assert refused.status_code == 403
    assert "charter_console=" not in refused.headers.get("set-cookie", "")


def test_the_catalogue_finds_a_character_by_its_kana_name(web: Web, scene: Scene) -> None:
    web.sign_in(scene.holder_key)
    found = web.get("/catalogue", params={"q": scene.kana})
    # Searching in hiragana finds the katakana alias: names are compared after normalisation.
    hiragana = "".join(chr(ord(c) - 0x60) if "\u30a1" <= c <= "\u30f6" else c for c in scene.kana)
    found_hiragana = web.get("/catalogue", params={"q": hiragana})

    assert found.status_code == 200
    assert f"/characters/{scene.first_id}" in found.text
    assert f"/characters/{scene.second_id}" not in found.text
    assert f"/characters/{scene.first_id}" in found_hiragana.text
    assert "state-opted-in" in found.text


def test_the_character_page_shows_names_terms_history_and_grants_with_licensee_names(web: Web, scene: Scene) -> None:
    with api(scene, scene.holder_key) as client:
        terms = client.get_terms(scene.first_id)
        terms.revenue_share_bps = 1_500
        client.update_terms(scene.first_id, terms)
    web.sign_in(scene.holder_key)
    page = web.get(f"/characters/{scene.first_id}")

    assert page.status_code == 200
    assert scene.kana in page.text
    assert "Version 2" in page.text
    assert 'class="before">10 %' in page.text
    assert 'class="after">15 %' in page.text
    assert esc(scene.licensee_name) in page.text


def test_editing_terms_with_an_invalid_value_shows_it_next_to_the_field_and_changes_nothing(
    web: Web, scene: Scene
) -> None:
    web.sign_in(scene.holder_key)
    form_page = f"/characters/{scene.first_id}/terms"
    too_much = web.post_form(form_page, form_page, {"permitted_use_types": "2", "revenue_share_percent": "150"})
    not_a_number = web.post_form(form_page, form_page, {"permitted_use_types": "2", "revenue_share_percent": "ten"})
    too_long = web.post_form(form_page, form_page, {"permitted_use_types": "2", "attribution_text": "x" * 5000})
    with api(scene, scene.holder_key) as client:
        after = client.get_character(scene.first_id)

    assert too_much.status_code == 400
    assert 'id="revenue_share_percent-error"' in too_much.text
    assert 'id="revenue_share_percent" name="revenue_share_percent" inputmode="decimal" maxlength="30" value="150"' in (
        too_much.text
    )
    assert not_a_number.status_code == 400
    assert 'id="revenue_share_percent-error"' in not_a_number.text
    assert too_long.status_code == 400
    assert 'id="attribution_text-error"' in too_long.text
    assert after.terms_version == 1


def test_editing_terms_publishes_a_new_version_and_a_template_fills_the_form(web: Web, scene: Scene) -> None:
    web.sign_in(scene.holder_key)
    form_page = f"/characters/{scene.first_id}/terms"
    with api(scene, scene.holder_key) as client:
        template = client.list_terms_templates()[0]
    applied = web.get(form_page, params={"template": template.name})
    fields: dict[str, Any] = {
        "permitted_use_types": ["1", "2"],
        "max_content_rating": "1",
        "commercial_use_allowed": "on",
        "revenue_share_percent": "12.5",
        "fee_currency": "JPY",
        "fee_amount": "30",
        "daily_quota": "1000",
    }
    previewed = web.post_form(form_page, form_page, fields)  # publishing asks again, with the preview
    saved = web.post_form(form_page, form_page, {**fields, "previewed": previewed_digest(previewed.text)})
    with api(scene, scene.holder_key) as client:
        terms = client.get_terms(scene.first_id)

    assert applied.status_code == 200
    assert f'value="{template.name}" selected' in applied.text
    assert previewed.status_code == 200
    assert 'id="preview"' in previewed.text
    assert saved.status_code == 303
    assert (terms.version, terms.revenue_share_bps, terms.daily_quota) == (2, 1_250, 1_000)
    assert (terms.per_use_fee.currency_code, terms.per_use_fee.minor_units) == ("JPY", 30)


def previewed_digest(html: str) -> str:
    """The digest of the previewed terms a preview page carries in its form."""
    found = re.search(r'name="previewed" value="([0-9a-f]{64})"', html)
    assert found is not None, html
    return found.group(1)


def test_new_terms_are_previewed_over_recent_decisions_before_they_are_published(web: Web, scene: Scene) -> None:
    web.sign_in(scene.holder_key)
    form_page = f"/characters/{scene.first_id}/terms"
    # The scene's three commercial uses, once their receipts are logged (every 0.1 s).
    with api(scene, scene.holder_key) as client:
        deadline = time.monotonic() + 10
        while client.preview_terms(scene.first_id, simple_terms()).replayed < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    no_commercial = {"permitted_use_types": ["1", "2"], "max_content_rating": "2"}
    preview = web.post_form(form_page, form_page, no_commercial)
    changed_since = web.post_form(
        form_page, form_page, {**no_commercial, "max_content_rating": "1", "previewed": previewed_digest(preview.text)}
    )
    with api(scene, scene.holder_key) as client:
        unpublished = client.get_character(scene.first_id).terms_version
    published = web.post_form(form_page, form_page, {**no_commercial, "previewed": previewed_digest(preview.text)})
    with api(scene, scene.holder_key) as client:
        after = client.get_terms(scene.first_id)

    assert preview.status_code == 200
    section = preview.text[preview.text.index('id="preview"') : preview.text.index("</section>")]
    assert "<strong>3</strong> of 3 allowed uses would have been denied" in section
    assert str(escape(scene.licensee_name)) in section
    assert "would be denied" in section and "commercial use not permitted" in section
    assert "Publish new terms" in preview.text
    # Terms changed after the preview are previewed again, not published.
    assert changed_since.status_code == 200 and 'id="preview"' in changed_since.text
    assert previewed_digest(changed_since.text) != previewed_digest(preview.text)
    assert unpublished == 1
    assert published.status_code == 303
    assert (after.version, after.commercial_use_allowed) == (2, False)


def test_opting_out_needs_the_confirmation_and_revokes_the_grants(web: Web, scene: Scene) -> None:
    web.sign_in(scene.holder_key)
    confirm_page = f"/characters/{scene.first_id}/opt-out"
    shown = web.get(confirm_page)
    unconfirmed = web.post_form(confirm_page, confirm_page, {"reason": "no"})
    with api(scene, scene.holder_key) as client:
        still = client.get_character(scene.first_id).state
    done = web.post_form(confirm_page, confirm_page, {"reason": "leaving", "confirm": "yes"})
    with api(scene, scene.holder_key) as client:
        after = client.get_character(scene.first_id).state
        grant = client.get_grant(scene.grant_id)

    assert shown.status_code == 200
    assert esc(scene.licensee_name) in shown.text
    assert unconfirmed.status_code == 400
    assert still == OPTED_IN
    assert done.status_code == 303
    assert after == character_pb2.Character.STATE_OPTED_OUT
    assert grant.state == grant_pb2.Grant.STATE_REVOKED


def test_a_form_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(web: Web, scene: Scene) -> None:
    web.sign_in(scene.holder_key)
    action = f"/characters/{scene.first_id}/opt-out"
    without = web.http.post(action, data={"confirm": "yes"})
    wrong = web.http.post(action, data={"confirm": "yes", "csrf_token": "x" * 43})
    sign_out_without = web.http.post("/sign-out")
    with api(scene, scene.holder_key) as client:
        state = client.get_character(scene.first_id).state
    still_signed_in = web.get("/catalogue")

    assert without.status_code == 403
    assert wrong.status_code == 403
    assert sign_out_without.status_code == 403
    assert "Traceback" not in without.text
    assert state == OPTED_IN
    assert still_signed_in.status_code == 200


def test_another_rights_holders_character_by_url_is_refused_with_a_page(web: Web, scene: Scene, keys: Any) -> None:
    other = make_scene(keys.target, keys.admin)
    web.sign_in(scene.holder_key)
    page = web.get(f"/characters/{other.first_id}")
    terms_page = web.get(f"/characters/{other.first_id}/terms")
    token = csrf_of(web.get("/catalogue").text)
    opt_out = web.http.post(f"/characters/{other.first_id}/opt-out", data={"csrf_token": token, "confirm": "yes"})
    statement = web.get(f"/statements/{other.holder_id}/{other.period}")
    with api(other, other.holder_key) as client:
        state = client.get_character(other.first_id).state

    assert page.status_code == 403
    assert "RESOURCE_NOT_OWNED" in page.text
    assert other.first_name not in page.text
    assert terms_page.status_code == 403
    assert opt_out.status_code == 403
    assert statement.status_code == 403
    assert "Traceback" not in page.text + opt_out.text
    assert state == OPTED_IN


def test_markup_in_names_and_terms_is_shown_as_text(web: Web, keys: Any) -> None:
    script = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    scene = make_scene(keys.target, keys.admin, licensee_name=f"App {script}", first_name=f"Aoi {script}")
    with api(scene, scene.holder_key) as client:
        terms = client.get_terms(scene.first_id)
        terms.attribution_text = script
        client.update_terms(scene.first_id, terms)
    web.sign_in(scene.holder_key)
    pages = [
        web.get("/catalogue"),
        web.get(f"/characters/{scene.first_id}"),
        web.get(f"/statements/{scene.holder_id}/{scene.period}"),
        web.get("/grants"),
        web.get("/catalogue", params={"q": script}),
    ]

    for page in pages:
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "<img src=x" not in page.text
    assert esc(script) in pages[1].text


def test_the_statement_shows_names_and_money_and_its_csv_guards_against_formulas(web: Web, keys: Any) -> None:
    scene = make_scene(keys.target, keys.admin, licensee_name=f'=HYPERLINK("http://x") {unique()}')
    web.sign_in(scene.holder_key)
    listing = web.get("/statements")
    page = web.get(f"/statements/{scene.holder_id}/{scene.period}")
    download = web.get(f"/statements/{scene.holder_id}/{scene.period}.csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))

    assert listing.status_code == 200
    assert f"/statements/{scene.holder_id}/{scene.period}" in listing.text
    assert page.status_code == 200
    assert scene.first_name in page.text
    assert esc(scene.licensee_name) in page.text
    # 3 uses x USD 0.25 fee + 10 % of USD 30.03 revenue = USD 0.75 + 3.00 (rounded once) = USD 3.75.
    assert "$3.75" in page.text
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    assert len(rows) == 1
    assert rows[0]["character_name"] == scene.first_name
    assert rows[0]["licensee_name"] == "'" + scene.licensee_name
    assert (rows[0]["uses"], rows[0]["owed_minor_units"], rows[0]["owed"], rows[0]["currency"]) == (
        "3",
        "375",
        "3.75",
        "USD",
    )


def test_the_usage_page_charts_the_uses_per_day_with_totals(web: Web, scene: Scene) -> None:
    web.sign_in(scene.holder_key)
    by_character = web.get("/usage")
    by_licensee = web.get("/usage", params={"by": "licensee"})
    a_year = web.get("/usage", params={"start": "2025-01-01", "end": "2025-12-31"})
    too_long = web.get("/usage", params={"start": "2024-01-01", "end": "2025-12-31"})

    assert by_character.status_code == 200
    assert '<svg class="chart"' in by_character.text
    assert 'class="bar"' in by_character.text
    assert scene.first_name in by_character.text
    assert ": 3 uses</title>" in by_character.text
    assert esc(scene.licensee_name) in by_licensee.text
    assert a_year.status_code == 200
    assert too_long.status_code == 400


def test_a_session_ends_after_it_is_idle_and_a_post_then_changes_nothing(
    web: Web, scene: Scene, moved_clock: Any, console: ConsoleServer
) -> None:
    web.sign_in(scene.holder_key)
    token = csrf_of(web.get("/catalogue").text)
    moved_clock.advance(console.state.settings.idle + timedelta(minutes=1))
    page = web.get("/catalogue")
    post = web.http.post(f"/characters/{scene.first_id}/opt-out", data={"csrf_token": token, "confirm": "yes"})
    with api(scene, scene.holder_key) as client:
        state = client.get_character(scene.first_id).state

    assert page.status_code == 303
    assert page.headers["location"] == "/sign-in?ended=1"
    assert post.status_code == 401
    assert state == OPTED_IN


def test_signing_out_ends_the_session_and_a_one_time_link_works_once(
    web: Web, scene: Scene, console: ConsoleServer
) -> None:
    web.sign_in(scene.holder_key)
    cookie = web.http.cookies.get("charter_console")
    out = web.post_form("/catalogue", "/sign-out", {})
    after = web.get("/catalogue")
    replay = Web(console.url)
    replay.http.cookies.set("charter_console", cookie or "")
    replayed = replay.get("/catalogue")
    link = console.sign_in_link(scene.holder_key).removeprefix(console.url)
    first_use = replay.get(link)
    second_use = Web(console.url).get(link)
    replay.close()

    assert out.status_code == 303
    assert after.status_code == 303
    assert replayed.status_code == 303
    assert first_use.status_code == 303
    assert first_use.headers["location"] == "/catalogue"
    assert second_use.status_code == 410


def test_staff_issue_suspend_and_revoke_grants_and_manage_keys(web: Web, scene: Scene, keys: Any) -> None:
    web.sign_in(keys.admin)
    overview = web.get("/staff")
    issued = web.post_form(
        "/grants",
        "/grants",
        {"character_id": scene.second_id, "licensee_id": scene.licensee_id, "expire_date": in_days(100)},
    )
    too_long = web.post_form(
        "/grants",
        "/grants",
        {"character_id": scene.second_id, "licensee_id": scene.licensee_id, "expire_date": in_days(100) + "x"},
    )
    suspended = web.post_form("/grants", f"/grants/{scene.grant_id}/suspend", {"reason": "check"})
    with api(scene, keys.admin) as client:
        after_suspend = client.get_grant(scene.grant_id).state
    revoked = web.post_form("/grants", f"/grants/{scene.grant_id}/revoke", {"reason": "done"})
    with api(scene, keys.admin) as client:
        after_revoke = client.get_grant(scene.grant_id).state
        second_grants = list(client.list_grants(character_id=scene.second_id))
    new_key = web.post_form(
        "/staff/api-keys",
        "/staff/api-keys",
        {"display_name": f"auditor {unique()}", "role": "auditor"},
    )
    pages = [
        web.get(p)
        for p in (
            "/staff/rights-holders",
            "/staff/licensees",
            "/staff/signing-keys",
            "/staff/alias-collisions",
            f"/statements?rights_holder={scene.holder_id}",
            f"/usage?rights_holder={scene.holder_id}",
            f"/catalogue?rights_holder={scene.holder_id}",
        )
    ]

    assert overview.status_code == 200
    assert issued.status_code == 303
    assert too_long.status_code == 400
    assert len(second_grants) == 1
    assert suspended.status_code == 303
    assert after_suspend == grant_pb2.Grant.STATE_SUSPENDED
    assert revoked.status_code == 303
    assert after_revoke == grant_pb2.Grant.STATE_REVOKED
    assert new_key.status_code == 200
    assert 'id="new-secret"' in new_key.text
    assert [p.status_code for p in pages] == [200] * len(pages)


def test_an_auditor_reads_everything_and_its_writes_are_refused(web: Web, scene: Scene, keys: Any) -> None:
    web.sign_in(keys.auditor)
    holders = web.get("/staff/rights-holders")
    statement = web.get(f"/statements/{scene.holder_id}/{scene.period}")
    token = csrf_of(holders.text)
    create = web.http.post(
        "/staff/rights-holders",
        data={"csrf_token": token, "display_name": f"Nope {unique()}", "contact_email": "a@b.example"},
    )
    revoke = web.http.post(f"/grants/{scene.grant_id}/revoke", data={"csrf_token": token, "reason": "x"})
    with api(scene, keys.admin) as client:
        grant = client.get_grant(scene.grant_id).state

    assert holders.status_code == 200
    assert 'action="/staff/rights-holders"' not in holders.text.replace(
        'method="get" action="/staff/rights-holders"', ""
    )
    assert statement.status_code == 200
    assert create.status_code == 403
    assert revoke.status_code == 403
    assert grant == grant_pb2.Grant.STATE_ACTIVE


def test_a_rights_holder_has_no_staff_pages_and_unknown_pages_are_not_found(web: Web, scene: Scene) -> None:
    web.sign_in(scene.holder_key)
    staff = web.get("/staff/api-keys")
    missing = web.get("/nothing-here")
    bad_statement = web.get(f"/statements/{scene.holder_id}/2026-13")
    # A month the address pattern takes but the API refuses (the day after it is no date).
    far_statement = web.get(f"/statements/{scene.holder_id}/9999-12")

    assert staff.status_code == 403
    assert missing.status_code == 404
    assert bad_statement.status_code == 404
    assert far_statement.status_code == 400
    assert "INVALID_FIELD" in far_statement.text


@pytest.mark.parametrize("size", [300 * 1024])
def test_an_oversized_form_is_refused(web: Web, scene: Scene, size: int) -> None:
    web.sign_in(scene.holder_key)
    form_page = f"/characters/{scene.first_id}/terms"
    refused = web.post_form(form_page, form_page, {"attribution_text": "x" * size})

    assert refused.status_code == 413
