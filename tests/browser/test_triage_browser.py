"""Triage as the finance team works it, in a real (headless) Chromium on the demo data: the exception queue
and its bulk actions, one exception's notes, tags and lineage, overrides under four eyes, and the preview of
the next reminder run.

Each test makes its own rows through the ORM (the UI is the point only where the test clicks).
Run: `.venv/bin/python -m pytest tests/browser` (needs Debian's `chromium`; skipped without it).
"""

from __future__ import annotations

import itertools
import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from playwright.sync_api import Page, expect

from connectors.models import Connection
from reconciliation import workflow
from reconciliation.models import Override, ReconciliationException, Reminder, ReminderPolicy
from reconciliation.reminders.demo import DEMO_BODY, DEMO_SUBJECT
from sync import roles
from sync.models import Binding, Customer, Invoice
from tests.browser.pages import (
    bulk_action,
    message,
    paginator_count,
    result_rows,
    row_of,
    search,
    sidebar_filter,
    sign_in_as,
)

pytestmark = pytest.mark.browser

Kind = ReconciliationException.Kind
State = ReconciliationException.State
DEMO_CONNECTION = "Northwind wholesale CSV"
EXCEPTION_URL = "/admin/reconciliation/reconciliationexception/{pk}/change/"
OVERRIDE_URL = "/admin/reconciliation/override/{pk}/change/"
_fingerprints = itertools.count(1)


def finding(
    invoice: Invoice,
    *,
    kind: str = Kind.AMOUNT_MISMATCH,
    title: str = "",
    connection: Connection | None = None,
    state: str = State.OPEN,
    amount_at_risk: Decimal = Decimal("2.50"),
) -> ReconciliationException:
    """An exception about `invoice`, as a reconciliation run would raise it."""
    return ReconciliationException.objects.create(
        kind=kind,
        state=state,
        fingerprint=f"browser-{next(_fingerprints)}",
        title=title or f"{invoice.number}: {kind.replace('_', ' ')}",
        object_type="invoice",
        object_id=invoice.pk,
        document_number=invoice.number,
        currency=invoice.currency,
        amount_at_risk=amount_at_risk,
        connection=connection or invoice.source_connection,
    )


def owed_invoices(count: int) -> list[Invoice]:
    """Demo invoices still owed, none of them named by any exception yet."""
    named = ReconciliationException.objects.filter(object_type="invoice", object_id__isnull=False).values(
        "object_id"
    )  # without the NULLs, which would make NOT IN match nothing
    invoices = list(
        Invoice.objects.filter(status=Invoice.Status.OPEN, amount_due__gt=0)
        .exclude(pk__in=named)
        .order_by("number")[:count]
    )
    assert len(invoices) == count, "the demo should hold enough open invoices"
    return invoices


def user(username: str) -> Any:
    return get_user_model().objects.get(username=username)


def open_exception(page: Page, exception: ReconciliationException) -> None:
    page.goto(EXCEPTION_URL.format(pk=exception.pk))
    expect(page.locator(".field-title .readonly")).to_have_text(exception.title)


# --- the queue: filter, select, bulk action behind a confirmation page --------------------------------
def test_finance_assigns_filtered_exceptions_to_themselves_in_bulk(page: Page, login: Any) -> None:
    shop = Connection.objects.create(name="Harbour shop CSV", platform="csv")
    first, second, third, fourth = owed_invoices(4)
    picked = [
        finding(first, kind=Kind.DUPLICATE, connection=shop),
        finding(second, kind=Kind.DUPLICATE, connection=shop),
    ]
    left = finding(third, kind=Kind.DUPLICATE, connection=shop)
    # What the filters must leave out: another type, another state, another connection.
    other_kind = finding(fourth, kind=Kind.AMOUNT_MISMATCH, connection=shop)
    other_state = finding(fourth, kind=Kind.DUPLICATE, connection=shop, state=State.RESOLVED)
    other_connection = finding(fourth, kind=Kind.DUPLICATE)

    login(page, "finance")
    page.locator("#content-main").get_by_role("link", name="Reconciliation exceptions", exact=True).click()
    sidebar_filter(page, "connection", str(shop))
    sidebar_filter(page, "kind", "Duplicate")
    sidebar_filter(page, "state", "Open")
    expect(page).to_have_url(re.compile(r"[?&]state=open(&|$)"))
    paginator_count(page, 3, "reconciliation exception")
    for shown in (*picked, left):
        expect(row_of(page, shown.pk)).to_have_count(1)
    for hidden in (other_kind, other_state, other_connection):
        expect(row_of(page, hidden.pk)).to_have_count(0)

    bulk_action(page, "Assign to me", [row.pk for row in picked])
    expect(page.locator("#content h1")).to_have_text("Assign to me")
    expect(page.locator("#confirm-what")).to_contain_text("assigned to finance")
    confirm_rows = page.locator("#confirm-rows tbody tr")
    expect(confirm_rows).to_have_count(2)
    for index, row in enumerate(sorted(picked, key=lambda row: row.pk)):
        expect(confirm_rows.nth(index)).to_have_attribute("data-pk", str(row.pk))
        expect(confirm_rows.nth(index)).to_contain_text(row.title)
        expect(confirm_rows.nth(index).locator("td").nth(2)).to_have_text("Open")
    expect(page.locator(".ll-refused")).to_have_count(0)
    assert ReconciliationException.objects.filter(assignee__isnull=False, connection=shop).count() == 0

    page.get_by_role("button", name="Yes, assign to me", exact=True).click()
    ids = "; ".join(f"#{row.pk}" for row in sorted(picked, key=lambda row: row.pk))
    expect(message(page)).to_have_text(f"Assigned to you: 2 ({ids})")
    expect(message(page, "error")).to_have_count(0)
    # Back on the same filtered queue: only the row left alone is still open.
    expect(page).to_have_url(re.compile(r"[?&]state=open(&|$)"))
    expect(result_rows(page)).to_have_count(1)
    expect(row_of(page, left.pk).locator("td.field-assignee")).to_have_text("-")

    sidebar_filter(page, "state", "Assigned")
    expect(result_rows(page)).to_have_count(2)
    expect(result_rows(page).locator("td.field-state")).to_have_text(["Assigned", "Assigned"])
    expect(result_rows(page).locator("td.field-assignee")).to_have_text(["finance", "finance"])

    row_of(page, picked[0].pk).locator("th.field-title a").click()
    expect(page.locator("#triage-state h2")).to_have_text("State: Assigned · finance")
    page.locator("#content-main .object-tools").get_by_role("link", name="History").click()
    # Object, Date/time, Comment, Changed by, Change reason, Changes: the newest first.
    latest = page.locator("#change-history tbody tr").first.locator("td")
    expect(latest.nth(3)).to_have_text("finance")
    expect(latest.nth(4)).to_have_text("assigned to finance")
    expect(latest.nth(5)).to_contain_text(re.compile(r"state:\s*open\s*→\s*assigned", re.IGNORECASE))

    finance = user("finance")
    assert {
        row.assignee_id for row in ReconciliationException.objects.filter(pk__in=[r.pk for r in picked])
    } == {finance.pk}
    left.refresh_from_db()
    assert (left.state, left.assignee_id) == (State.OPEN, None)


# --- one exception: a note, tags, and its document's lineage ------------------------------------------
def test_finance_notes_tags_and_follows_the_lineage_of_an_exception(page: Page, login: Any) -> None:
    (invoice,) = owed_invoices(1)
    exception = finding(invoice, title=f"{invoice.number}: QuickBooks total differs by 2.50")

    login(page, "finance")
    page.goto("/admin/reconciliation/reconciliationexception/")
    search(page, f"#{exception.pk}")
    expect(result_rows(page)).to_have_count(1)
    row_of(page, exception.pk).locator("th.field-title a").click()
    expect(page).to_have_url(re.compile(EXCEPTION_URL.format(pk=exception.pk)))
    expect(page.locator("#triage-notes")).to_contain_text("No notes yet.")

    note = "Called Northwind's accounts team: a credit note for 2.50 is on its way."
    notes = page.locator("#triage-notes")
    notes.locator("textarea[name=body]").fill(note)
    notes.get_by_role("button", name="Add note", exact=True).click()
    expect(message(page)).to_have_text("Note added.")
    expect(notes.locator(".ll-note")).to_have_count(1)
    expect(notes.locator(".ll-note")).to_contain_text(note)
    expect(notes.locator(".ll-note")).to_contain_text("finance")

    state = page.locator("#triage-state")
    state.locator("input[name=names]").fill("waiting on customer, credit note due")
    state.get_by_role("button", name="Add tags", exact=True).click()
    expect(message(page)).to_have_text("Tags changed.")
    expect(page.locator(".field-tag_list .readonly")).to_have_text("credit note due, waiting on customer")

    # The tag works as a queue filter straight away.
    page.goto("/admin/reconciliation/reconciliationexception/")
    sidebar_filter(page, "tags", "waiting on customer")
    expect(result_rows(page)).to_have_count(1)
    expect(row_of(page, exception.pk).locator("td.field-tag_list")).to_have_text(
        "credit note due, waiting on customer"
    )

    row_of(page, exception.pk).locator("th.field-title a").click()
    page.locator("#link-lineage").click()
    expect(page).to_have_url(re.compile(rf"/admin/sync/binding/lookup/\?q={re.escape(invoice.number)}$"))
    expect(page.locator("#ll-lookup-q")).to_have_value(invoice.number)
    card = page.locator(f'section.ll-doc[data-object-type="invoice"][data-object-id="{invoice.pk}"]')
    expect(card.locator("h2")).to_contain_text(invoice.number)
    expect(card).to_contain_text(DEMO_CONNECTION)
    expect(card.get_by_role("link", name=exception.title)).to_have_attribute(
        "href", EXCEPTION_URL.format(pk=exception.pk)
    )


# --- overrides: four eyes -------------------------------------------------------------------------------
def propose(
    page: Page, exception: ReconciliationException, action: str, reason: str, **fields: str
) -> Override:
    """Propose an override from the exception's page; returns it once its page shows."""
    open_exception(page, exception)
    page.locator("#link-propose").click()
    expect(page).to_have_url(
        re.compile(rf"/admin/reconciliation/override/propose/\?exception={exception.pk}$")
    )
    expect(page.locator("#content-main")).to_contain_text(f"About exception #{exception.pk}")
    page.locator("#id_action").select_option(action)
    for name, value in fields.items():
        page.locator(f"#id_{name}").fill(value)
    page.locator("#id_reason").fill(reason)
    page.get_by_role("button", name="Propose", exact=True).click()
    expect(page).to_have_url(re.compile(r"/admin/reconciliation/override/\d+/change/$"))
    override = Override.objects.get(exception=exception, state=Override.State.PROPOSED)
    expect(message(page)).to_have_text(
        f"Override #{override.pk} proposed; an accountant other than you must approve it."
    )
    return override


def expect_no_way_to_decide(page: Page, override: Override) -> None:
    """The proposer's own page: told why, and neither button nor form to decide with."""
    page.goto(OVERRIDE_URL.format(pk=override.pk))
    expect(page.locator("#cannot-decide")).to_have_text(
        "You cannot decide this one: you proposed it: another person must decide."
    )
    expect(page.locator("#decision-form")).to_have_count(0)
    expect(page.get_by_role("button", name="Approve and apply", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Reject", exact=True)).to_have_count(0)


def approve(page: Page, override: Override, comment: str) -> None:
    """From the approval queue's "waiting for me", open the override and approve it with a comment."""
    page.goto("/admin/reconciliation/override/")
    sidebar_filter(page, "approval", "Waiting for me (not mine)")
    row_of(page, override.pk).get_by_role("link", name="Approve / reject").click()
    expect(page).to_have_url(re.compile(rf"{OVERRIDE_URL.format(pk=override.pk)}#decision$"))
    page.locator("#decision-form textarea[name=comment]").fill(comment)
    page.get_by_role("button", name="Approve and apply", exact=True).click()
    expect(message(page)).to_have_text(f"Override #{override.pk} approved and applied.")


def test_finance_proposes_and_an_accountant_approves_an_accepted_difference(page: Page, login: Any) -> None:
    mine_invoice, theirs_invoice = owed_invoices(2)
    exception = finding(
        mine_invoice,
        title=f"{mine_invoice.number}: Xero total differs by 3.20",
        amount_at_risk=Decimal("3.20"),
    )
    # Someone else's proposal, so that "waiting for me" has something to show finance.
    theirs = workflow.override_propose(
        by=user("accountant"),
        exception=finding(theirs_invoice),
        action=Override.Action.ACCEPT_DIFFERENCE,
        limit_amount=Decimal("2.50"),
        reason="Bank charge on an international transfer.",
    )

    login(page, "finance")
    override = propose(
        page,
        exception,
        "accept_difference",
        "Customer paid 3.20 short for bank charges; agreed to write it off.",
        limit_amount="3.20",
    )
    expect(page.locator("#decision h2")).to_have_text("Accept a difference within a limit · Proposed")
    expect_no_way_to_decide(page, override)
    open_exception(page, exception)
    expect(page.locator("#triage-state h2")).to_have_text("State: In review")
    expect(page.locator("#triage-overrides")).to_contain_text(f"#{override.pk} Accept a difference")

    # The approval queue offers finance someone else's proposal, never their own, and no way to approve.
    page.goto("/admin/reconciliation/override/")
    sidebar_filter(page, "approval", "Waiting for me (not mine)")
    expect(row_of(page, theirs.pk)).to_have_count(1)
    expect(row_of(page, override.pk)).to_have_count(0)
    expect(page.locator('select[name="action"] option', has_text="Approve and apply")).to_have_count(0)
    sidebar_filter(page, "approval", "Proposed by me")
    expect(row_of(page, override.pk)).to_have_count(1)

    sign_in_as(page, login, "accountant")
    approve(page, override, "Checked the bank statement: 3.20 bank charge.")
    expect(page.locator("#decision h2")).to_have_text("Accept a difference within a limit · Applied")
    expect(page.locator(".field-decided_by .readonly")).to_have_text("accountant")
    expect(page.locator(".field-decision_comment .readonly")).to_have_text(
        "Checked the bank statement: 3.20 bank charge."
    )
    page.locator("#decision").get_by_role("link", name="The exception").click()
    expect(page.locator("#triage-state h2")).to_have_text("State: Resolved")
    expect(page.locator("#triage-overrides")).to_contain_text(
        f"#{override.pk} Accept a difference within a limit · Applied · by finance, decided by accountant"
    )

    override.refresh_from_db()
    exception.refresh_from_db()
    assert override.state == Override.State.APPLIED
    assert (exception.state, exception.resolved_by.get_username()) == (State.RESOLVED, "accountant")


def test_an_accountant_cannot_approve_their_own_proposal_on_any_path(page: Page, login: Any) -> None:
    (invoice,) = owed_invoices(1)
    exception = finding(
        invoice, kind=Kind.STATUS_MISMATCH, title=f"{invoice.number}: paid in Stripe, open here"
    )
    controller = get_user_model().objects.create_user(
        "controller", email="controller@example.com", password="pw-controller-1", is_staff=True
    )
    controller.groups.add(Group.objects.get(name=roles.ACCOUNTANTS))

    login(page, "accountant")
    override = propose(page, exception, "mark_paid", "Paid by card in Stripe on the 3rd; the payout landed.")
    expect_no_way_to_decide(page, override)

    page.goto("/admin/reconciliation/override/")
    sidebar_filter(page, "approval", "Waiting for me (not mine)")
    expect(row_of(page, override.pk)).to_have_count(0)

    # The bulk action refuses it too: marked on the confirmation page, refused when confirmed.
    sidebar_filter(page, "approval", "Proposed by me")
    bulk_action(page, "Approve and apply", [override.pk])
    refused = page.locator(f'#confirm-rows tr[data-pk="{override.pk}"]')
    expect(refused).to_have_class(re.compile(r"\bll-refused\b"))
    expect(refused).to_contain_text("Refused: you proposed it: another person must decide")
    expect(page.locator("#content-main")).to_contain_text("1 will be refused")
    page.get_by_role("button", name="Yes, approve overrides", exact=True).click()
    expect(message(page, "error")).to_contain_text(
        f"1 failed: Mark paid (Proposed): accountant proposed override #{override.pk} and cannot approve it"
    )
    expect(message(page)).to_have_count(0)
    override.refresh_from_db()
    invoice.refresh_from_db()
    assert (override.state, override.decided_by_id) == (Override.State.PROPOSED, None)
    assert invoice.status == Invoice.Status.OPEN

    # Another accountant approves it; the invoice is settled by hand.
    sign_in_as(page, login, "controller", "pw-controller-1")
    approve(page, override, "Seen the Stripe payout.")
    expect(page.locator("#decision h2")).to_have_text("Mark paid · Applied")
    page.locator("#decision").get_by_role("link", name="The document").click()
    expect(page).to_have_url(re.compile(rf"/admin/sync/invoice/{invoice.pk}/change/$"))
    expect(page.locator(".field-status .readonly")).to_have_text("Paid")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_due) == (Invoice.Status.PAID, Decimal(0))


# --- reminders: preview of the next run -----------------------------------------------------------------
def test_reminder_preview_shows_what_would_be_sent_and_skipped_and_why(page: Page, login: Any) -> None:
    run_date = date(2031, 3, 14)
    group = "trade"
    policy = ReminderPolicy.objects.create(
        name="Trade customers",
        customer_group=group,
        on_due_date=True,
        subject_template=DEMO_SUBJECT,
        body_template=DEMO_BODY,
    )
    source = Connection.objects.get(name=DEMO_CONNECTION)
    books = Connection.objects.create(name="Harbour books", platform="xero", role=Connection.Role.DESTINATION)

    def owed(number: str, name: str, email: str) -> Invoice:
        customer = Customer.objects.create(name=name, email=email, group=group)
        return Invoice.objects.create(
            number=number,
            customer=customer,
            source_connection=source,
            currency="GBP",
            issue_date=run_date - timedelta(days=30),
            due_date=run_date,
            total=Decimal("120.00"),
            amount_due=Decimal("120.00"),
        )

    to_send = owed("TR-1001", "Harbour Lights Cafe", "accounts@harbourlights.example")
    no_email = owed("TR-1002", "Cash Sales", "")
    settled = owed("TR-1003", "Pemberton & Sons", "ledger@pemberton.example")
    Binding.objects.create(
        connection=books,
        object_type="invoice",
        object_id=settled.pk,
        external_id="X-77",
        snapshot={"status": "paid"},
    )
    status = finding(settled, kind=Kind.STATUS_MISMATCH, title="TR-1003: paid in Xero, open here")

    login(page, "integrator")
    page.locator("#content-main").get_by_role("link", name="Reminder policies", exact=True).click()
    result_rows(page).get_by_role("link", name=policy.name, exact=True).click()
    page.locator("#preview-next-run").click()
    expect(page).to_have_url(re.compile(rf"/admin/reconciliation/reminderpolicy/{policy.pk}/preview/$"))
    expect(page.locator("#content h1")).to_have_text(f"Preview next run: {policy.name}")
    page.locator("#preview-date").fill(run_date.isoformat())
    page.get_by_role("button", name="Show", exact=True).click()
    expect(page).to_have_url(re.compile(rf"\?date={run_date.isoformat()}$"))
    expect(page.locator("#content-main")).to_contain_text("A run on Friday 14 March 2031 would send")
    expect(page.locator("#to-send")).to_have_text("1")
    expect(page.locator("#to-skip")).to_have_text("2")

    rows = page.locator("table.ll-reminders tbody tr")
    expect(rows).to_have_count(3)
    send = rows.filter(has=page.get_by_role("link", name=to_send.number, exact=True))
    expect(send).not_to_have_class(re.compile(r"\bll-skip\b"))
    expect(send).to_contain_text("accounts@harbourlights.example")
    expect(send).to_contain_text("On the due date")
    expect(send.locator("summary")).to_have_text(f"invoice TR-1001 from {settings.COMPANY_NAME}")
    body = send.locator("details pre")
    expect(body).to_be_hidden()
    send.locator("summary").click()
    expect(body).to_contain_text("Dear Harbour Lights Cafe,")
    expect(body).to_contain_text("Invoice TR-1001 for £120.00 is due today.")

    skip_no_email = rows.filter(has=page.get_by_role("link", name=no_email.number, exact=True))
    expect(skip_no_email).to_have_class(re.compile(r"\bll-skip\b"))
    expect(skip_no_email.locator("td").nth(5)).to_contain_text("Skip")
    expect(skip_no_email.locator(".ll-reasons li")).to_have_text(["customer Cash Sales has no email address"])
    skip_settled = rows.filter(has=page.get_by_role("link", name=settled.number, exact=True))
    expect(skip_settled.locator(".ll-reasons li")).to_have_text(
        ["Xero (Harbour books) shows it paid", f"open status exception #{status.pk}: {status.title}"]
    )
    expect(skip_settled.locator("details")).to_have_count(0)  # nothing rendered for a skipped one

    assert Reminder.objects.count() == 0  # a preview reads only
