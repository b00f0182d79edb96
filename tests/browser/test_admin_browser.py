"""The admin as finance, integrators and accountants use it, in a real (headless) Chromium on the demo data.

Run: `.venv/bin/python -m pytest tests/browser` (needs Debian's `chromium`; skipped without it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Count, Sum
from playwright.sync_api import Page, expect

from reconciliation.models import ReconciliationException
from reconciliation.selectors import dashboard_summary
from sync.models import Invoice
from tests.browser.pages import paginator_count, result_rows, row_of, search, sidebar_filter

pytestmark = pytest.mark.browser

CONNECTION = "Northwind wholesale CSV"
DASHBOARD_SECTIONS = [  # the cards of templates/admin/index.html, in order: (id, <h2>, <h3>s)
    ("dash-open", "Open exceptions", []),
    ("dash-age", "Open exceptions by age", ["Amount at risk"]),
    ("dash-approvals", "Overrides", []),
    ("dash-volume", "Documents synced per day", ["Failed jobs per day"]),
    ("dash-connections", "Connections", []),
]
DASHBOARD_DAYS = 14
OPEN_WORK_FILTER = "Open work (open, assigned, in review)"


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
    expect(dashboard.locator(":scope > section")).to_have_count(len(DASHBOARD_SECTIONS))
    for index, (section_id, heading, subheadings) in enumerate(DASHBOARD_SECTIONS):
        section = dashboard.locator(":scope > section").nth(index)
        expect(section).to_have_id(section_id)
        expect(section.locator("h2")).to_contain_text(heading)
        expect(section.locator("h3")).to_have_text(subheadings)

    open_exceptions = ReconciliationException.objects.filter(state__in=ReconciliationException.OPEN_STATES)
    open_total = open_exceptions.count()
    kinds = open_exceptions.values("kind").distinct().count()
    assert open_total > 0 and kinds > 1, "the demo should leave open exceptions of several types"
    card = dashboard.locator("#dash-open")
    expect(card.locator(".ll-big")).to_have_text(str(open_total))
    by_type = card.get_by_role("img", name="open exceptions by type")
    expect(by_type.locator("rect.bar")).to_have_count(kinds)  # one bar per type
    expect(by_type).to_contain_text("Invalid input")
    invalid = open_exceptions.filter(kind=ReconciliationException.Kind.INVALID_INPUT).count()
    expect(by_type.locator("title").filter(has_text="Invalid input")).to_have_text(
        f"Invalid input: {invalid}"
    )

    by_age = dashboard.locator("#dash-age").get_by_role("img", name="open exceptions by age")
    # every demo finding was raised just now, by the load
    expect(by_age.locator("title")).to_have_text(
        [f"Under a day: {open_total}", "1-7 days: 0", "7-30 days: 0", "Over 30 days: 0"]
    )
    expect(by_age.locator("rect.bar")).to_have_count(4)
    at_risk = (
        open_exceptions.exclude(amount_at_risk=None)
        .values("currency")
        .annotate(total=Sum("amount_at_risk"), n=Count("id"))
    )
    assert at_risk, "the demo should leave open exceptions with an amount at risk"
    for row in at_risk:
        plural = "" if row["n"] == 1 else "s"
        expect(dashboard.locator("#dash-age")).to_contain_text(
            f"{row['currency']} {row['total']:,.2f} ({row['n']} exception{plural})"
        )

    volume = dashboard.locator("#dash-volume")
    synced = volume.get_by_role("img", name="documents synced per day")
    expect(synced.locator("rect.bar")).to_have_count(DASHBOARD_DAYS)
    today = dashboard_summary(user=None)["volume"][-1]  # the demo load's own jobs
    assert today["value"] > 0
    expect(synced.locator("title").last).to_have_text(f"{today['label']}: {today['value']} documents")
    # the last day's label ends at its bar, inside the chart, not cut off at the right edge
    last_label = synced.locator("text").last
    expect(last_label).to_have_text(today["label"])
    label_box, chart_box = last_label.bounding_box(), synced.bounding_box()
    assert label_box and chart_box
    assert label_box["x"] + label_box["width"] <= chart_box["x"] + chart_box["width"] + 0.5
    expect(volume.get_by_role("img", name="failed jobs per day").locator("rect.fail")).to_have_count(
        DASHBOARD_DAYS
    )

    # The demo's one proposal is finance's own: waiting, but none of it for them to decide.
    approvals = dashboard.locator("#dash-approvals")
    expect(approvals.locator(".ll-big")).to_have_text("1")
    expect(approvals).to_contain_text("1 waiting for approval; 0 for you to decide")
    expect(
        dashboard.locator("#dash-connections").get_by_role("row").filter(has_text=CONNECTION)
    ).to_contain_text("healthy")


def test_dashboard_open_exceptions_number_opens_the_open_queue(page: Page, login: Any) -> None:
    # A settled finding the open queue must leave out.
    settled = ReconciliationException.objects.filter(state__in=ReconciliationException.OPEN_STATES).first()
    settled.state = ReconciliationException.State.RESOLVED
    settled.save()
    open_total = ReconciliationException.objects.filter(state__in=ReconciliationException.OPEN_STATES).count()
    login(page, "finance")
    headline = page.locator("#dash-open .ll-big a")
    expect(headline).to_have_text(str(open_total))
    headline.click()
    expect(page).to_have_url(re.compile(r"/admin/reconciliation/reconciliationexception/$"))
    state_filter = page.locator('#changelist-filter details[data-filter-title="state"]')
    expect(state_filter.locator("li.selected")).to_have_text(OPEN_WORK_FILTER)
    paginator_count(page, open_total, "reconciliation exception")
    expect(result_rows(page)).to_have_count(min(open_total, 100))
    expect(result_rows(page).locator("td.field-state")).not_to_contain_text(["Resolved"])
    expect(row_of(page, settled.pk)).to_have_count(0)


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
