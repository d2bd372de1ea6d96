"""The console in a real browser (Debian's Chromium, driven by Playwright): signing in, searching
the catalogue in kana, editing terms through a validation error, opting out, a statement with names
and its CSV download, the usage chart, signing out, and a form posted without its CSRF token.

Every page visited is checked at 1280 and 390 pixels wide (nothing wider than the window), for
JavaScript errors in the browser's console (a blocked inline script or style would be one), and
for form controls without a label. A failing test leaves a screenshot and the page's HTML in
``test-artifacts/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import charter
from charter.v1 import character_pb2

from .browser import Tab
from .scene import Scene


def check(tab: Tab) -> None:
    assert tab.problems() == {}, tab.page.url


def test_sign_in_search_in_kana_and_sign_out(tab: Tab, scene: Scene) -> None:
    tab.goto("/sign-in")
    check(tab)
    tab.sign_in(scene.holder_key)
    page = tab.page
    assert page.url.endswith("/catalogue")
    check(tab)
    # Typing searches as you type (htmx swaps the results in and keeps the address up to date).
    page.get_by_label("Search names in any script").fill(scene.kana)
    page.locator(f'#results a[href="/characters/{scene.first_id}"]').wait_for()
    page.wait_for_function(f"() => !document.querySelector('#results a[href=\"/characters/{scene.second_id}\"]')")
    assert "q=" in page.url
    check(tab)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/sign-in")
    tab.goto("/catalogue")
    assert "/sign-in" in page.url
    check(tab)


def test_editing_terms_shows_the_error_next_to_the_field_then_previews_and_publishes(tab: Tab, scene: Scene) -> None:
    tab.sign_in(scene.holder_key)
    page = tab.page
    tab.goto(f"/characters/{scene.first_id}")
    check(tab)
    page.get_by_role("link", name="Edit terms").click()
    check(tab)
    page.get_by_label("Revenue share (%)").fill("150")
    page.get_by_role("button", name="Preview the change").click()
    error = page.locator("#revenue_share_percent-error")
    error.wait_for()
    assert error.is_visible()
    assert page.get_by_label("Revenue share (%)").get_attribute("aria-invalid") == "true"
    check(tab)
    page.get_by_label("Revenue share (%)").fill("12.5")
    page.get_by_label("Commercial use allowed").uncheck()
    page.get_by_role("button", name="Preview the change").click()
    preview = page.locator("#preview")
    preview.wait_for()
    assert "would have been denied" in preview.inner_text()
    check(tab)
    page.get_by_role("button", name="Publish new terms").click()
    page.wait_for_url(f"**/characters/{scene.first_id}")
    assert page.locator("h2#terms").inner_text().endswith("(version 2)")
    check(tab)


def test_opting_out_asks_first(tab: Tab, scene: Scene) -> None:
    tab.sign_in(scene.holder_key)
    page = tab.page
    tab.goto(f"/characters/{scene.first_id}")
    page.get_by_role("link", name="Opt out").click()
    check(tab)
    page.get_by_role("button", name="Opt out").click()
    page.locator(".problem").wait_for()
    with charter.Client(scene.target, api_key=scene.holder_key) as client:
        assert client.get_character(scene.first_id).state == character_pb2.Character.STATE_OPTED_IN
    page.get_by_label("Reason (kept in the audit log)").fill("leaving the service")
    page.get_by_label("I understand").check()
    page.get_by_role("button", name="Opt out").click()
    page.wait_for_url(f"**/characters/{scene.first_id}")
    assert page.locator("h1 .badge").inner_text() == "opted out"
    check(tab)


def test_a_statement_with_names_and_its_csv_download(tab: Tab, scene: Scene, tmp_path: Path) -> None:
    tab.sign_in(scene.holder_key)
    page = tab.page
    page.get_by_role("link", name="Statements").click()
    check(tab)
    page.get_by_role("link", name=scene.period).click()
    lines = page.locator("#statement-lines")
    assert scene.first_name in lines.inner_text()
    assert scene.licensee_name in lines.inner_text()
    assert "$3.75" in page.locator("#statement-totals").inner_text()
    check(tab)
    with page.expect_download() as started:
        page.get_by_role("link", name="Download CSV").click()
    saved = tmp_path / "statement.csv"
    started.value.save_as(saved)
    text = saved.read_text(encoding="utf-8")
    assert scene.first_name in text
    assert scene.licensee_name in text
    check(tab)


def test_the_usage_chart(tab: Tab, scene: Scene) -> None:
    tab.sign_in(scene.holder_key)
    page = tab.page
    page.get_by_role("link", name="Usage").click()
    chart = page.locator("svg.chart").first
    chart.wait_for()
    assert page.locator("svg.chart rect.bar").count() >= 2  # the total and the character's
    assert scene.first_name in page.locator("#usage-table").inner_text()
    check(tab)
    page.get_by_label("One chart per").select_option("licensee")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**by=licensee**")
    assert scene.licensee_name in page.locator("#usage-table").inner_text()
    check(tab)


def test_a_form_posted_without_its_csrf_token_is_refused(tab: Tab, scene: Scene) -> None:
    tab.sign_in(scene.holder_key)
    page = tab.page
    tab.goto(f"/characters/{scene.first_id}/opt-out")
    # The same form, as another site would post it: without this session's token.
    page.evaluate(
        """(action) => {
            const form = document.createElement('form');
            form.method = 'post';
            form.action = action;
            const confirm = document.createElement('input');
            confirm.name = 'confirm';
            confirm.value = 'yes';
            form.appendChild(confirm);
            document.body.appendChild(form);
            form.submit();
        }""",
        f"/characters/{scene.first_id}/opt-out",
    )
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() != ""
    assert page.locator(".problem").is_visible()
    with charter.Client(scene.target, api_key=scene.holder_key) as client:
        assert client.get_character(scene.first_id).state == character_pb2.Character.STATE_OPTED_IN
    check(tab)


def test_every_page_fits_both_widths_and_is_labelled(tab: Tab, scene: Scene, keys: Any) -> None:
    tab.sign_in(scene.holder_key)
    for path in (
        "/catalogue",
        f"/characters/{scene.first_id}",
        f"/characters/{scene.first_id}/terms",
        f"/characters/{scene.first_id}/opt-out",
        "/grants",
        "/usage",
        "/statements",
        f"/statements/{scene.holder_id}/{scene.period}",
        f"/characters/{'chr_' + '0' * 32}",
    ):
        tab.goto(path)
        assert tab.problems() == {}, path
    tab.page.get_by_role("button", name="Sign out").click()
    tab.sign_in(keys.admin)
    for path in (
        "/staff",
        "/staff/rights-holders",
        "/staff/licensees",
        "/staff/api-keys",
        "/staff/signing-keys",
        "/staff/alias-collisions",
        "/grants",
        f"/statements?rights_holder={scene.holder_id}",
        f"/usage?rights_holder={scene.holder_id}",
        f"/catalogue?rights_holder={scene.holder_id}",
    ):
        tab.goto(path)
        assert tab.problems() == {}, path
