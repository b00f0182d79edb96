"""The admin as finance, integrators and accountants use it, in a real (headless) Chromium on the demo data.

Run: `.venv/bin/python -m pytest tests/browser` (needs Debian's `chromium`; skipped without it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from reconciliation.models import ReconciliationException
from sync.models import Invoice

pytestmark = pytest.mark.browser

CONNECTION = "Northwind wholesale CSV"
DASHBOARD_HEADINGS = [  # the <h2>s of templates/admin/index.html, in order
    "Open exceptions",
    "Open exceptions by age",
    "Amount at risk",
    "Documents synced per day",
    "Failed jobs per day",
    "Connections",
]


def result_rows(page: Page) -> Any:
    return page.locator("#result_list tbody tr")


def paginator_count(page: Page, count: int, noun: str) -> None:
    expect(page.locator("p.paginator")).to_contain_text(re.compile(rf"\b{count} {noun}s?\b"))


def search(page: Page, text: str) -> None:
    page.locator("#searchbar").fill(text)
    page.locator("#changelist-search [type=submit]").click()
    expect(page).to_have_url(re.compile(rf"[?&]q={re.escape(text)}(&|$)"))


def sidebar_filter(page: Page, title: str, choice: str) -> None:
    section = page.locator(f'#changelist-filter details[data-filter-title="{title}"]')
    section.get_by_role("link", name=choice, exact=True).click()
    expect(section.locator("li.selected")).to_have_text(choice)


# --- 1. roles -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RoleView:
    links: tuple[str, ...]  # model links on the index
    no_links: tuple[str, ...] = ()
    add: tuple[str, ...] = ()  # models (lowercase names) with an "Add" link
    no_add: tuple[str, ...] = ()


ROLE_VIEWS = {
    # Documents come from their sources; nobody adds one by hand, not even a superuser.
    "admin": RoleView(
        links=("Users", "Groups", "Invoices", "Connections"), add=("user", "connection"), no_add=("invoice",)
    ),
    "integrator": RoleView(
        links=("Connections", "Sync profiles", "Mapping sets", "Invoices", "Sync jobs"),
        no_links=("Overrides", "Users", "Groups"),
        add=("connection", "syncprofile"),
        no_add=("invoice", "payment", "creditnote"),
    ),
    "finance": RoleView(
        links=("Invoices", "Payments", "Credit notes", "Reconciliation exceptions", "Overrides"),
        no_links=("Users", "Groups"),
        add=("override",),
        no_add=("invoice", "connection", "syncprofile"),
    ),
    "accountant": RoleView(
        links=("Overrides", "Invoices", "Reconciliation exceptions"),
        no_links=("Users", "Groups"),
        add=("override",),
    ),
}


@pytest.mark.parametrize("username", list(ROLE_VIEWS))
def test_each_role_sees_its_own_admin_index(page: Page, login: Any, username: str) -> None:
    view = ROLE_VIEWS[username]
    login(page, username)
    main = page.locator("#content-main")
    for name in view.links:
        expect(main.get_by_role("link", name=name, exact=True)).to_be_visible()
    for name in view.no_links:
        expect(main.get_by_role("link", name=name, exact=True)).to_have_count(0)
    for model in view.add:
        expect(main.locator(f"tr.model-{model} a.addlink")).to_be_visible()
    for model in view.no_add:
        expect(main.locator(f"tr.model-{model} a.addlink")).to_have_count(0)


# --- 2. dashboard -------------------------------------------------------------------------------------
def test_dashboard_renders_for_finance(page: Page, login: Any) -> None:
    login(page, "finance")
    expect(page).to_have_title("Back office | Ledgerlink")
    expect(page.locator("#site-name")).to_have_text("Ledgerlink")
    dashboard = page.locator("#dashboard")
    expect(dashboard.locator("h2")).to_contain_text(DASHBOARD_HEADINGS)  # in this order; more may follow
    open_total = ReconciliationException.objects.filter(state__in=ReconciliationException.OPEN_STATES).count()
    assert open_total > 0, "the demo should leave open exceptions"
    expect(dashboard.locator(".ll-big")).to_have_text(str(open_total))
    expect(dashboard).to_contain_text("Invalid input")
    expect(dashboard.get_by_role("link", name=re.compile(r"^1 override"))).to_be_visible()
    expect(dashboard.get_by_role("row").filter(has_text=CONNECTION)).to_contain_text("healthy")


def test_dashboard_open_exceptions_number_opens_the_open_queue(page: Page, login: Any) -> None:
    login(page, "finance")
    headline = page.locator("#dashboard .ll-big a")
    number = int(headline.inner_text().replace(",", ""))
    headline.click()
    expect(page).to_have_url(re.compile(r"/admin/reconciliation/reconciliationexception/\?state__in="))
    paginator_count(page, number, "reconciliation exception")


# --- 3. document list ---------------------------------------------------------------------------------
def test_invoice_list_shows_the_imported_invoices(page: Page, login: Any) -> None:
    login(page, "finance")
    page.locator("#content-main").get_by_role("link", name="Invoices", exact=True).click()
    expect(page).to_have_url(re.compile(r"/admin/sync/invoice/$"))
    paginator_count(page, Invoice.objects.count(), "invoice")
    expect(result_rows(page)).to_have_count(min(Invoice.objects.count(), 100))
    newest = Invoice.objects.order_by("-issue_date", "-id").first()
    expect(result_rows(page).first.locator("th.field-number")).to_have_text(newest.number)
    expect(result_rows(page).first.locator("td.field-source_connection")).to_contain_text(CONNECTION)


def test_invoice_search_finds_exactly_that_invoice(page: Page, login: Any) -> None:
    login(page, "finance")
    page.goto("/admin/sync/invoice/")
    search(page, "NP-2026-00118")
    expect(result_rows(page)).to_have_count(1)
    expect(result_rows(page).locator("th.field-number")).to_have_text("NP-2026-00118")
    expect(result_rows(page).locator("td.field-customer")).to_have_text("The Old Vicarage Guesthouse")


def test_invoice_list_filters_by_status(page: Page, login: Any) -> None:
    login(page, "finance")
    page.goto("/admin/sync/invoice/")
    sidebar_filter(page, "status", "Paid")
    expect(page).to_have_url(re.compile(r"[?&]status__exact=paid(&|$)"))
    paid = Invoice.objects.filter(status=Invoice.Status.PAID).count()
    assert 0 < paid < Invoice.objects.count()
    paginator_count(page, paid, "invoice")
    expect(result_rows(page).locator("td.field-status")).to_have_text(["Paid"] * min(paid, 100))


# --- 4. one document ----------------------------------------------------------------------------------
def test_invoice_page_shows_lines_lineage_and_history(page: Page, login: Any) -> None:
    invoice = Invoice.objects.get(number="NP-2026-00001")
    descriptions = list(invoice.lines.values_list("description", flat=True))
    assert descriptions
    login(page, "finance")
    page.goto("/admin/sync/invoice/")
    search(page, invoice.number)
    page.locator("#result_list").get_by_role("link", name=invoice.number, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/admin/sync/invoice/{invoice.pk}/change/"))
    expect(page.locator("#content h2").first).to_have_text(f"Invoice {invoice.number}")

    lines = page.locator("#lines-group")
    expect(lines.locator("tr.has_original")).to_have_count(len(descriptions))
    for description in descriptions:
        expect(lines.locator("td.field-description")).to_contain_text([description])

    lineage = page.locator(".field-lineage")
    expect(lineage.get_by_role("row").filter(has_text=CONNECTION)).to_contain_text("source")

    page.locator("#content-main .object-tools").get_by_role("link", name="History").click()
    expect(page).to_have_url(re.compile(rf"/admin/sync/invoice/{invoice.pk}/history/"))
    expect(page.locator("#change-history tbody tr").first).to_contain_text(invoice.number)
    expect(page.locator("#change-history tbody tr").first).to_contain_text("Created")


# --- 5. exception queue -------------------------------------------------------------------------------
def test_exception_queue_shows_rejected_rows_with_their_raw_value(page: Page, login: Any) -> None:
    login(page, "finance")
    page.locator("#content-main").get_by_role("link", name="Reconciliation exceptions", exact=True).click()
    expect(page).to_have_url(re.compile(r"/admin/reconciliation/reconciliationexception/$"))
    expect(page.locator("#result_list")).to_contain_text("NP-2026-00054")

    sidebar_filter(page, "kind", "Invalid input")
    expect(page).to_have_url(re.compile(r"[?&]kind__exact=invalid_input(&|$)"))
    invalid = ReconciliationException.objects.filter(kind=ReconciliationException.Kind.INVALID_INPUT).count()
    assert invalid > 0
    expect(result_rows(page).locator("td.field-kind")).to_have_text(["Invalid input"] * invalid)

    result_rows(page).filter(has_text="NP-2026-00054").locator("th.field-title a").click()
    expect(page).to_have_url(re.compile(r"/admin/reconciliation/reconciliationexception/\d+/change/"))
    expect(page.locator(".field-title .readonly")).to_have_text(
        re.compile(r"NP-2026-00054 rejected: row \d+")
    )
    expect(page.locator(".field-kind .readonly")).to_have_text("Invalid input")
    expect(page.locator(".field-document_number .readonly")).to_have_text("NP-2026-00054")
    expect(page.locator(".field-connection .readonly")).to_contain_text(CONNECTION)
    expect(page.locator(".field-message .readonly")).to_contain_text("'31/02/2026' is not a valid date")
    details = page.locator(".field-details_pretty .readonly")
    expect(details).to_contain_text('"raw_value": "31/02/2026"')
    expect(details).to_contain_text('"column": "issue_date"')


# --- 6. screenshots for reviewers ---------------------------------------------------------------------
def test_screenshots_of_dashboard_and_exception_queue(page: Page, login: Any, screenshot_dir: Path) -> None:
    dashboard, exceptions = screenshot_dir / "dashboard.png", screenshot_dir / "exception-queue.png"
    for path in (dashboard, exceptions):
        path.unlink(missing_ok=True)  # so that a stale picture cannot pass for a new one
    login(page, "finance")
    expect(page.locator("#dashboard")).to_be_visible()
    page.screenshot(path=dashboard, full_page=True)
    page.goto("/admin/reconciliation/reconciliationexception/")
    expect(result_rows(page).first).to_be_visible()
    page.screenshot(path=exceptions, full_page=True)
    for path in (dashboard, exceptions):
        assert path.stat().st_size > 0, path


# --- the harness itself -------------------------------------------------------------------------------
def test_harness_blocks_and_reports_requests_to_other_hosts(page: Page, browser_problems: Any) -> None:
    page.set_content('<img src="https://cdn.example.com/logo.png" alt="">')
    expect(page.locator("img")).to_have_js_property("complete", True)
    assert browser_problems.blocked == ["GET https://cdn.example.com/logo.png"]
    browser_problems.clear()  # seen and expected: do not fail this test for it


def test_harness_reports_missing_static_assets_and_script_errors(
    page: Page, live_server: Any, browser_problems: Any
) -> None:
    page.goto("/admin/login/")  # then replace the document, keeping the live server as its origin
    page.set_content(
        f'<script src="{live_server.url}/static/admin/js/no-such-file.js"></script>'
        "<script>throw new Error('boom from the page')</script>"
    )
    assert browser_problems.bad_responses == [f"404 GET {live_server.url}/static/admin/js/no-such-file.js"]
    assert any("boom from the page" in error for error in browser_problems.page_errors)
    browser_problems.clear()  # seen and expected: do not fail this test for them
