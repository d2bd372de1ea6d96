"""Playwright for the console's browser tests: Debian's Chromium (found as ``.ci/dev.py`` finds it,
never downloaded), a page per test that records console errors, and checks every page must pass:
no JavaScript errors, every form control labelled, nothing wider than the window."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Any

WIDTHS = (1280, 390)
"""The window widths every page is checked at: a laptop and a phone."""


def find_chromium() -> str | None:
    """``CHARTER_CHROMIUM``, else the first Chromium on the PATH (as ``.ci/dev.py`` installs it)."""
    given = os.environ.get("CHARTER_CHROMIUM")
    if given:
        return given if os.path.exists(given) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


_DOCUMENT_STATUS = "Failed to load resource: the server responded with a status of"


@dataclass
class ConsoleLog:
    """What the browser reported while a test ran: console errors and uncaught exceptions."""

    errors: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        def on_console(message: Any) -> None:
            if message.type != "error":
                return
            # Chromium reports a page answered with an error status (a 400 for a form with a bad
            # value, a 403 for another's character) as "failed to load" the page itself: that is
            # the page the test asked for, not an error of the page's script or its resources.
            if message.text.startswith(_DOCUMENT_STATUS) and message.location.get("url") == page.url:
                return
            self.errors.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))


# Every visible input, select and textarea must have a label (or aria-label/-labelledby), and every
# button a name; returns the controls that do not, described for the failure message.
UNLABELLED = """
() => {
  const bad = [];
  for (const el of document.querySelectorAll('input, select, textarea, button')) {
    if (el.type === 'hidden') continue;
    const named = el.tagName === 'BUTTON'
      ? (el.textContent.trim() || el.getAttribute('aria-label'))
      : ((el.labels && el.labels.length > 0) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby'));
    if (!named) bad.push(el.outerHTML.slice(0, 120));
  }
  return bad;
}
"""

# The page's width beyond the window (0 when nothing makes the page scroll sideways).
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


class Tab:
    """A browser page on the console, with what every page is checked for."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.log = ConsoleLog()
        self.log.attach(page)

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base_url + path)

    def sign_in(self, api_key: str) -> None:
        self.goto("/sign-in")
        self.page.get_by_label("API key").fill(api_key)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_load_state()

    def problems(self) -> dict[str, Any]:
        """What is wrong with the page as shown, at each width: unlabelled controls, overflow."""
        # A click that follows a link returns once the navigation starts: the next page may not
        # have a document yet (seen under load: `document.documentElement` was null).
        self.page.wait_for_load_state()
        found: dict[str, Any] = {}
        unlabelled = self.page.evaluate(UNLABELLED)
        if unlabelled:
            found["unlabelled"] = unlabelled
        for width in WIDTHS:
            self.page.set_viewport_size({"width": width, "height": 900})
            overflow = self.page.evaluate(OVERFLOW)
            if overflow > 0:
                found[f"overflow at {width}px"] = overflow
        self.page.set_viewport_size({"width": WIDTHS[0], "height": 900})
        if self.log.errors:
            found["console errors"] = list(self.log.errors)
        return found
