"""Harness for the browser tests: Debian's Chromium driven by Playwright against pytest-django's live server.

* One Chromium for the session; every test gets a fresh context (no cookies carried over) and page.
* The page may talk to the live server only: any other request is aborted and fails the test, and so do
  JavaScript errors, console errors, static assets answering >= 400 and any same-origin response >= 500.
* Without a Chromium binary every browser test is skipped, saying how to get one.

Run: `.venv/bin/python -m pytest tests/browser` (or `-m browser`); `-m "not browser"` leaves them out.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.management import call_command

CHROMIUM_ENV = "LEDGERLINK_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEMO_PASSWORD = "pw-e2e-123"
TIMEOUT_MS = 10_000
SCREENSHOT_DIR = Path(settings.BASE_DIR) / "var" / "screenshots"

_PROBLEMS = pytest.StashKey["BrowserProblems"]()


def chromium_path() -> str:
    return os.environ.get(CHROMIUM_ENV, "").strip() or DEFAULT_CHROMIUM


# --- browser --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Playwright + Chromium, started once. Skips every browser test when Chromium is not installed."""
    executable = chromium_path()
    if not (Path(executable).is_file() and os.access(executable, os.X_OK)):
        pytest.skip(
            f"browser tests need Chromium at {executable}: run `apt-get install chromium` "
            f"(Debian's package) or set {CHROMIUM_ENV} to a Chromium/Chrome binary"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="install the dev extras: playwright")

    # Playwright's sync API keeps an asyncio loop running on this thread, which makes Django refuse ORM
    # calls (SynchronousOnlyOperation) from the test and its fixtures. Nothing here is concurrent.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        # Playwright gives the browser a fresh temporary --user-data-dir and removes it on close.
        with sync_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=executable, headless=True, args=CHROMIUM_ARGS, timeout=30_000
            )
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@dataclass
class BrowserProblems:
    """What went wrong in the page besides the test's own assertions."""

    origin: str
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    bad_responses: list[str] = field(default_factory=list)

    def is_local(self, url: str) -> bool:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}" == self.origin

    def clear(self) -> None:
        for found in (self.blocked, self.console_errors, self.page_errors, self.bad_responses):
            found.clear()

    def report(self) -> str:
        sections = [
            ("requests to other hosts (blocked: pages must work offline, without a CDN)", self.blocked),
            ("JavaScript errors", self.page_errors),
            ("console errors", self.console_errors),
            ("failed same-origin requests", self.bad_responses),
        ]
        return "\n".join(
            f"{title}:\n" + "\n".join(f"  - {line}" for line in lines) for title, lines in sections if lines
        )


def _watch(page: Any, problems: BrowserProblems) -> None:
    static_path = "/" + settings.STATIC_URL.lstrip("/")

    def route(route: Any) -> None:
        url = route.request.url
        if problems.is_local(url):
            route.continue_()
        else:
            problems.blocked.append(f"{route.request.method} {url}")
            route.abort("blockedbyclient")

    def on_console(message: Any) -> None:
        if message.type == "error":
            location = message.location or {}
            problems.console_errors.append(f"{message.text} ({location.get('url', '?')})")

    def on_response(response: Any) -> None:
        if not problems.is_local(response.url):
            return
        is_static = urlsplit(response.url).path.startswith(static_path)
        if response.status >= 500 or (is_static and response.status >= 400):
            problems.bad_responses.append(f"{response.status} {response.request.method} {response.url}")

    def on_request_failed(request: Any) -> None:
        # ERR_ABORTED: the page navigated away before the asset arrived, which is not the asset's fault.
        if request.failure == "net::ERR_ABORTED" or not problems.is_local(request.url):
            return
        if urlsplit(request.url).path.startswith(static_path):
            problems.bad_responses.append(f"{request.failure} {request.method} {request.url}")

    page.context.route("**/*", route)
    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.page_errors.append(str(error)))
    page.on("response", on_response)
    page.on("requestfailed", on_request_failed)


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Any, live_server: Any) -> Iterator[Any]:
    """A new context and page on the live server (relative URLs work), watched for offline/JS problems."""
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1366, "height": 900}, locale="en-GB", timezone_id="UTC"
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    tab = context.new_page()
    problems = BrowserProblems(origin=live_server.url)
    request.node.stash[_PROBLEMS] = problems
    _watch(tab, problems)
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def browser_problems(request: pytest.FixtureRequest, page: Any) -> BrowserProblems:
    """What the harness caught in `page` so far (for tests of the harness itself)."""
    return request.node.stash[_PROBLEMS]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail the test itself (not its teardown) on blocked requests, JS errors or failed assets."""
    try:
        result = yield
    except BaseException as exc:
        problems = item.stash.get(_PROBLEMS, None)
        if problems is not None and problems.report() and isinstance(exc, Exception):
            exc.add_note("\nbrowser problems seen during the test:\n" + problems.report())
        raise
    problems = item.stash.get(_PROBLEMS, None)
    if problems is not None and problems.report():
        pytest.fail("browser problems seen during the test:\n" + problems.report(), pytrace=False)
    return result


# --- data and login -------------------------------------------------------------------------------------
def _restore_roles() -> None:
    """Re-create the role groups that the data migration `sync.0002_roles` made, if they are gone.

    The flush that ends every transactional test deletes them. Serialized rollback cannot bring them back
    here: while Playwright's event loop runs, Django hands this thread a different connection object
    (asgiref's thread-critical Local turns context-local under a running loop) from the one the test
    database was serialized on, so the serialized copy is silently missing whenever ordinary `db` tests
    ran first. Re-running the migration's own function on the migrated model state gives the same groups
    and permissions.
    """
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    from sync import roles

    if Group.objects.filter(name__in=roles.ROLE_PERMISSIONS).count() == len(roles.ROLE_PERMISSIONS):
        return
    state = MigrationLoader(connection, ignore_no_migrations=True).project_state()
    roles.apply_roles(state.apps)


@pytest.fixture
def demo_data(transactional_db: None) -> None:
    """The demo documents and users, committed so that the live server's thread sees them."""
    _restore_roles()
    call_command("load_demo", password=DEMO_PASSWORD, stdout=io.StringIO())


@pytest.fixture
def login(live_server: Any, demo_data: None) -> Callable[..., None]:
    """`login(page, username)`: sign in through the admin login form and check we reached the index."""
    from playwright.sync_api import expect

    def sign_in(page: Any, username: str, password: str = DEMO_PASSWORD) -> None:
        page.goto("/admin/login/?next=/admin/")
        page.locator("#id_username").fill(username)
        page.locator("#id_password").fill(password)
        page.locator("#login-form [type=submit]").click()
        page.wait_for_load_state()
        expect(page).to_have_url(f"{live_server.url}/admin/")
        expect(page.locator("#content h1")).to_have_text("Back office")
        expect(page.locator("#user-tools")).to_contain_text(username)

    return sign_in


@pytest.fixture
def screenshot_dir() -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR
