"""Browser tests: Playwright driving the system Chromium against pytest-django's live server
(a real HTTP server on 127.0.0.1 over the test database).

Playwright cannot download browsers here: it launches ``/usr/bin/chromium`` (Debian's
package; ``./run test`` installs it) or ``COACHGATE_CHROMIUM``. Without one the tests fail
and say so; they are never skipped quietly.

Every journey checks, at desktop and at 390 px width, that the page does not scroll
sideways and that axe-core (vendored under tests/browser/vendor) finds no serious or
critical violation. Screenshots go to ``test-artifacts/browser/`` (or
``COACHGATE_ARTIFACTS``), named by test, for a person to look at.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).resolve().parent / "vendor" / "axe-core-4.14.1" / "axe.min.js"
ARTIFACTS = Path(os.environ.get("COACHGATE_ARTIFACTS", ROOT / "test-artifacts")) / "browser"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.browser


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.django_db(transaction=True))


def chromium_path() -> str:
    path = os.environ.get("COACHGATE_CHROMIUM", "/usr/bin/chromium")
    if not Path(path).exists():
        pytest.fail(f"No Chromium at {path}: `apt-get install chromium` (./run test does), "
                    "or set COACHGATE_CHROMIUM.", pytrace=False)
    return path


# Module-scoped, not session-scoped: while Playwright runs, its event loop is the thread's
# running loop, and tests after the browser tests that call asyncio.run() (discord.py's
# smoke test) would fail with "cannot be called from a running event loop".
# For as long as that loop runs, Django would take the ORM calls the tests make between
# page actions for async code; they are synchronous and safe, so Django is told so for
# exactly that time (never for the rest of the suite, nor for the processes it starts).
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            yield p
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=chromium_path(),
                                   args=["--no-sandbox", "--disable-dev-shm-usage"])
    yield b
    b.close()


def _context(browser: Browser, viewport: dict[str, int], **kwargs: Any) -> BrowserContext:
    # bypass_csp: axe-core is injected as an inline script, which the site's CSP refuses.
    ctx = browser.new_context(viewport=viewport, bypass_csp=True, locale="en-GB",
                              timezone_id=kwargs.pop("timezone_id", "Europe/London"), **kwargs)
    ctx.set_default_timeout(10_000)
    return ctx


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = _context(browser, DESKTOP)
    yield ctx
    ctx.close()


@pytest.fixture
def phone_context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = _context(browser, PHONE, is_mobile=True, has_touch=True)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    p = context.new_page()
    _fail_on_page_errors(p)
    return p


@pytest.fixture
def phone(phone_context: BrowserContext) -> Page:
    p = phone_context.new_page()
    _fail_on_page_errors(p)
    return p


def _fail_on_page_errors(p: Page) -> None:
    """A JavaScript error on any page is a test failure (collected, checked by `check`)."""
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p._coachgate_errors = errors  # type: ignore[attr-defined]  # read by check()


@pytest.fixture
def base_url(live_server: Any) -> str:
    return str(live_server.url)


def login_as(context: BrowserContext, base_url: str, user: Any) -> None:
    """Log the context in as ``user`` without the sign-in form (journeys that test the form
    itself use it): a real session, made by Django's test client, in a cookie."""
    from django.test import Client

    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    cookie = client.cookies["sessionid"]
    context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": base_url}])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:120]


def shot(page: Page, request: pytest.FixtureRequest, name: str) -> Path:
    """A full-page screenshot in the artifacts directory: <test>/<name>.png."""
    where = ARTIFACTS / _slug(request.node.name)
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{_slug(name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def no_horizontal_scroll(page: Page) -> None:
    width = page.evaluate("() => document.documentElement.scrollWidth")
    view = page.evaluate("() => window.innerWidth")
    if width > view:
        wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
            .slice(0, 5).map(e => e.tagName + (e.id ? '#' + e.id : '')
              + (e.className && typeof e.className === 'string' ? '.' + e.className : ''))""")
        raise AssertionError(f"{page.url} is {width} px wide at {view} px; too wide: {wide}")


def axe_violations(page: Page, impacts: tuple[str, ...] = ("serious", "critical")
                   ) -> list[dict[str, Any]]:
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
          nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return [v for v in result if v["impact"] in impacts]


def check(page: Page, request: pytest.FixtureRequest, name: str) -> Path:
    """What every page of a journey must pass: no JavaScript error, no sideways scroll, no
    serious accessibility violation; then its screenshot."""
    errors = getattr(page, "_coachgate_errors", [])
    assert not errors, f"JavaScript errors on {page.url}: {errors}"
    path = shot(page, request, name)
    no_horizontal_scroll(page)
    bad = axe_violations(page)
    assert not bad, f"accessibility violations on {page.url}: {bad}"
    return path
