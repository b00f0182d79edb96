"""Triage in the admin: the queue, bulk actions behind confirmation, each exception's fixes, the
approval queue with four eyes on every path, and the dashboard."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from reconciliation import workflow
from reconciliation.models import ExceptionNote, Override, ReconciliationException, Tag
from sync import roles
from sync.models import Binding, Invoice, SyncJob, SyncProfile
from tests.factories import ConnectionFactory, InvoiceFactory, SyncJobFactory
from tests.reconciliation.helpers import accountant, exception_for, finance

pytestmark = pytest.mark.django_db
QUEUE = "admin:reconciliation_reconciliationexception_changelist"
S = ReconciliationException.State


def _messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def _rows(count: int) -> None:
    clerk = finance()
    tag, _ = Tag.objects.get_or_create(name="bank")
    for index in range(count):
        exception = exception_for(assignee=clerk if index % 2 else None)
        exception.tags.add(tag)


# --- the queue ----------------------------------------------------------------------------------------
def test_queue_page_stays_at_a_fixed_number_of_queries(client, django_assert_num_queries):
    user = finance()
    client.force_login(user)
    _rows(3)
    with django_assert_num_queries(QUEUE_QUERIES):
        response = client.get(reverse(QUEUE))
    assert response.status_code == 200
    assert response.content.decode().count('name="_selected_action"') == 3
    _rows(27)
    with django_assert_num_queries(QUEUE_QUERIES):
        response = client.get(reverse(QUEUE))
    assert response.content.decode().count('name="_selected_action"') == 30


# session, user, permissions (user, groups), count, rows, tags, and one each for the connection,
# assignee and tag filters' choices
QUEUE_QUERIES = 10


def test_queue_shows_open_work_by_default_and_all_on_request(client):
    client.force_login(finance())
    open_one = exception_for()
    done = exception_for(state=S.RESOLVED)
    page = client.get(reverse(QUEUE)).content.decode()
    assert f"/{open_one.pk}/change/" in page and f"/{done.pk}/change/" not in page
    page = client.get(reverse(QUEUE), {"state": "all"}).content.decode()
    assert f"/{done.pk}/change/" in page


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"at_risk": "lt100"}, {"small"}),
        ({"at_risk": "lt10k"}, {"large"}),
        ({"assignee": "me"}, {"mine"}),
        ({"assignee": "none"}, {"small", "large"}),
        ({"tags__id__exact": "TAG"}, {"mine"}),
        ({"kind": "duplicate"}, {"large"}),
        ({"q": "INV-SEARCH-7"}, {"mine"}),
        ({"q": "ext-42"}, {"large"}),
    ],
)
def test_queue_filters_and_search(client, params, expected):
    me = finance()
    client.force_login(me)
    rows = {
        "small": exception_for(amount_at_risk=Decimal("12.00")),
        "large": exception_for(amount_at_risk=Decimal("5000"), kind="duplicate", external_id="ext-42"),
        "mine": exception_for(
            assignee=me, state=S.ASSIGNED, document_number="INV-SEARCH-7", amount_at_risk=None
        ),
    }
    tag = Tag.objects.create(name="vip")
    rows["mine"].tags.add(tag)
    params = {key: (str(tag.pk) if value == "TAG" else value) for key, value in params.items()}
    page = client.get(reverse(QUEUE), params).content.decode()
    shown = {name for name, row in rows.items() if f"/{row.pk}/change/" in page}
    assert shown == expected


# --- bulk actions -------------------------------------------------------------------------------------
def _action(client, action: str, rows, **data):
    payload = {"action": action, "_selected_action": [row.pk for row in rows], "index": 0, **data}
    # as from the queue showing every state (the default view shows open work only)
    return client.post(reverse(QUEUE) + "?state=all", payload)


def test_bulk_resolve_confirms_first_then_reports_successes_and_failures(client):
    user = finance()
    client.force_login(user)
    first, second = exception_for(), exception_for()
    ignored = exception_for(state=S.IGNORED)
    rows = [first, second, ignored]

    confirm = _action(client, "resolve", rows)
    page = confirm.content.decode()
    assert confirm.status_code == 200 and 'id="confirm-rows"' in page
    assert "1 will be refused" in page
    assert "cannot move exception" in page and "from ignored to resolved (reopen it first)" in page
    assert ReconciliationException.objects.filter(state=S.RESOLVED).count() == 0  # nothing yet

    done = _action(client, "resolve", rows, confirmed="yes", reason="credited", follow=False)
    assert done.status_code == 302
    messages = _messages(done)
    assert any(m.startswith("Moved to resolved: 2") for m in messages), messages
    assert any(m.startswith("1 failed") and "from ignored to resolved" in m for m in messages), messages
    assert set(ReconciliationException.objects.filter(state=S.RESOLVED).values_list("pk", flat=True)) == {
        first.pk,
        second.pk,
    }
    assert first.history.first().history_user == user


def test_bulk_ignore_needs_a_reason_on_the_confirmation_page(client):
    client.force_login(finance())
    row = exception_for()
    response = _action(client, "ignore", [row], confirmed="yes", reason="")
    assert response.status_code == 200  # the page again, with the error
    assert "This field is required" in response.content.decode()
    row.refresh_from_db()
    assert row.state == S.OPEN
    _action(client, "ignore", [row], confirmed="yes", reason="test data")
    row.refresh_from_db()
    assert row.state == S.IGNORED


def test_bulk_assign_tag_and_assign_to_me(client):
    lead, clerk = finance(), finance()
    client.force_login(lead)
    rows = [exception_for(), exception_for()]
    page = _action(client, "assign", rows).content.decode()
    assert clerk.username in page  # offered on the confirmation page
    _action(client, "assign", rows, confirmed="yes", assignee=clerk.pk)
    assert set(ReconciliationException.objects.values_list("assignee", "state")) == {(clerk.pk, S.ASSIGNED)}
    _action(client, "tag", rows, confirmed="yes", names="bank, vip")
    assert set(rows[0].tags.values_list("name", flat=True)) == {"bank", "vip"}
    response = _action(client, "assign_to_me", rows, confirmed="yes")
    assert any(m.startswith("Assigned to you: 2") for m in _messages(response))
    assert set(ReconciliationException.objects.values_list("assignee", flat=True)) == {lead.pk}


def test_bulk_recheck_queues_a_check_per_row(client, monkeypatch):
    client.force_login(finance())
    rows = [exception_for(), exception_for()]
    calls = []

    def recheck(exception, *, user=None):
        calls.append((exception.pk, user))
        return SyncJobFactory()

    monkeypatch.setattr("reconciliation.services.recheck", recheck)
    response = _action(client, "recheck", rows, confirmed="yes")
    assert sorted(pk for pk, _ in calls) == sorted(row.pk for row in rows)
    assert any(m.startswith("Re-check queued: 2") for m in _messages(response))


def test_a_user_without_the_change_permission_gets_no_bulk_actions(client):
    from tests.factories import UserFactory

    viewer = UserFactory()
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_reconciliationexception"))
    client.force_login(viewer)
    row = exception_for()
    _action(client, "resolve", [row], confirmed="yes")
    row.refresh_from_db()
    assert row.state == S.OPEN


# --- one exception's page -----------------------------------------------------------------------------
def test_exception_page_links_to_lineage_document_mapping_and_override(client):
    client.force_login(finance())
    row = exception_for(kind="mapping_missing", details={"mapping_url": "/admin/sync/mappingset/3/change/"})
    page = client.get(
        reverse("admin:reconciliation_reconciliationexception_change", args=[row.pk])
    ).content.decode()
    assert reverse("admin:sync_lookup") + f"?q={row.document_number}" in page
    assert reverse("admin:sync_invoice_change", args=[row.object_id]) in page
    assert "/admin/sync/mappingset/3/change/" in page
    assert reverse("admin:reconciliation_override_propose") + f"?exception={row.pk}" in page
    assert "Re-run the check" in page and "Assign to me" in page


def test_exception_page_buttons_move_assign_note_and_tag_through_the_workflow(client):
    user = finance()
    client.force_login(user)
    row = exception_for()
    client.post(reverse("admin:reconciliation_exception_assign_me", args=[row.pk]))
    row.refresh_from_db()
    assert (row.state, row.assignee) == (S.ASSIGNED, user)
    client.post(reverse("admin:reconciliation_exception_note", args=[row.pk]), {"body": "Called them"})
    assert ExceptionNote.objects.get(exception=row).body == "Called them"
    client.post(reverse("admin:reconciliation_exception_tag", args=[row.pk]), {"names": "bank"})
    assert list(row.tags.values_list("name", flat=True)) == ["bank"]
    response = client.post(reverse("admin:reconciliation_exception_move", args=[row.pk]), {"to": "ignored"})
    assert any("needs a reason" in m for m in _messages(response))
    client.post(
        reverse("admin:reconciliation_exception_move", args=[row.pk]), {"to": "resolved", "reason": "ok"}
    )
    row.refresh_from_db()
    assert row.state == S.RESOLVED
    assert client.get(reverse("admin:reconciliation_exception_move", args=[row.pk])).status_code == 403


def test_repull_queues_a_pull_of_that_record_from_its_source(client):
    client.force_login(finance())
    invoice = InvoiceFactory()
    Binding.objects.create(
        connection=invoice.source_connection,
        object_type="invoice",
        object_id=invoice.pk,
        external_id="in_1047",
        is_origin=True,
    )
    row = exception_for(invoice)
    client.post(reverse("admin:reconciliation_exception_repull", args=[row.pk]))
    job = SyncJob.objects.get(kind="pull")
    assert (job.connection, job.params) == (invoice.source_connection, {"fetch": [["invoice", "in_1047"]]})


def _integration_admin():
    from tests.reconciliation.helpers import member

    return member(roles.INTEGRATION_ADMINS, is_staff=True)


def test_repush_without_a_profile_says_why(client):
    client.force_login(_integration_admin())
    row = exception_for()
    response = client.post(reverse("admin:reconciliation_exception_repush", args=[row.pk]))
    assert any("no enabled sync profile sends invoices" in m for m in _messages(response))
    assert not SyncJob.objects.exists()


def test_finance_staff_propose_a_repush_instead_of_pushing(client):
    clerk = finance(is_staff=True)
    client.force_login(clerk)
    invoice = InvoiceFactory()
    SyncProfile.objects.create(
        name="p",
        source=invoice.source_connection,
        destination=ConnectionFactory(role="destination"),
        object_types=["invoice"],
    )
    row = exception_for(invoice)
    page = client.get(reverse("admin:reconciliation_reconciliationexception_change", args=[row.pk]))

    text = page.content.decode()
    assert reverse("admin:reconciliation_exception_repush", args=[row.pk]) not in text
    propose = reverse("admin:reconciliation_override_propose") + f"?exception={row.pk}&amp;action=repush"
    assert propose in text and "Propose a re-push" in text
    response = client.post(reverse("admin:reconciliation_exception_repush", args=[row.pk]))
    assert response.status_code == 403
    assert not SyncJob.objects.exists()


def test_an_integration_admin_pushes_from_the_exception_page(client):
    client.force_login(_integration_admin())
    invoice = InvoiceFactory()
    SyncProfile.objects.create(
        name="p",
        source=invoice.source_connection,
        destination=ConnectionFactory(role="destination"),
        object_types=["invoice"],
    )
    row = exception_for(invoice)
    page = client.get(reverse("admin:reconciliation_reconciliationexception_change", args=[row.pk]))
    assert reverse("admin:reconciliation_exception_repush", args=[row.pk]) in page.content.decode()

    response = client.post(reverse("admin:reconciliation_exception_repush", args=[row.pk]))

    assert any("queued" in m for m in _messages(response))
    job = SyncJob.objects.get(kind="push")
    assert job.params == {"documents": [["invoice", invoice.pk]]}


# --- overrides ----------------------------------------------------------------------------------------
def _void(proposer) -> Override:
    return workflow.override_propose(
        by=proposer, action="void", reason="duplicate", exception=exception_for()
    )


def test_propose_page_creates_a_proposal_and_shows_a_bad_value(client):
    clerk = finance()
    client.force_login(clerk)
    row = exception_for()
    url = reverse("admin:reconciliation_override_propose") + f"?exception={row.pk}"
    assert client.get(url).status_code == 200
    bad = client.post(url, {"action": "set_field", "field_name": "total", "new_value": "12,5", "reason": "x"})
    assert "total &#x27;12,5&#x27; is not a number" in bad.content.decode()
    client.post(url, {"action": "set_field", "field_name": "total", "new_value": "130", "reason": "x"})
    override = Override.objects.get()
    assert (override.proposed_by, override.after_value, override.exception) == (clerk, "130.00", row)


def test_the_proposer_sees_no_approve_button_and_a_post_is_refused(client):
    proposer = accountant()
    override = _void(proposer)
    client.force_login(proposer)
    page = client.get(reverse("admin:reconciliation_override_change", args=[override.pk])).content.decode()
    assert 'id="decision-form"' not in page
    assert "you proposed it: another person must decide" in page
    response = client.post(
        reverse("admin:reconciliation_override_approve", args=[override.pk]), {"comment": "ok"}
    )
    assert any("proposed override" in m and "cannot approve" in m for m in _messages(response))
    override.refresh_from_db()
    assert override.state == Override.State.PROPOSED
    assert Invoice.objects.get(pk=override.object_id).status == "open"


def test_the_approval_queue_offers_the_button_only_to_someone_who_may_decide(client):
    mine, theirs = _void(accountant()), _void(finance())
    listing = reverse("admin:reconciliation_override_changelist") + "?state__exact=proposed"

    client.force_login(mine.proposed_by)
    page = client.get(listing).content.decode()
    button = 'href="{}#decision">Approve / reject'
    change = "admin:reconciliation_override_change"
    assert button.format(reverse(change, args=[theirs.pk])) in page
    assert button.format(reverse(change, args=[mine.pk])) not in page
    assert "you proposed it: another person must decide" in page

    client.force_login(theirs.proposed_by)  # finance staff: nobody's to decide
    page = client.get(listing).content.decode()
    assert "Approve / reject" not in page and "only accountants approve or reject" in page


def test_finance_staff_cannot_approve_through_the_admin(client):
    override = _void(finance())
    clerk = finance()
    client.force_login(clerk)
    page = client.get(reverse("admin:reconciliation_override_change", args=[override.pk])).content.decode()
    assert 'id="decision-form"' not in page
    client.post(reverse("admin:reconciliation_override_approve", args=[override.pk]))
    override.refresh_from_db()
    assert override.state == Override.State.PROPOSED


def test_another_accountant_approves_and_it_is_applied(client):
    override = _void(finance())
    approver = accountant()
    client.force_login(approver)
    page = client.get(reverse("admin:reconciliation_override_change", args=[override.pk])).content.decode()
    assert 'id="decision-form"' in page
    response = client.post(
        reverse("admin:reconciliation_override_approve", args=[override.pk]), {"comment": "checked"}
    )
    assert any("approved and applied" in m for m in _messages(response))
    override.refresh_from_db()
    assert (override.state, override.decided_by) == (Override.State.APPLIED, approver)
    assert Invoice.objects.get(pk=override.object_id).status == "void"


def test_reject_needs_a_comment(client):
    override = _void(finance())
    client.force_login(accountant())
    response = client.post(
        reverse("admin:reconciliation_override_reject", args=[override.pk]), {"comment": ""}
    )
    assert any("needs a comment" in m for m in _messages(response))
    client.post(reverse("admin:reconciliation_override_reject", args=[override.pk]), {"comment": "no"})
    override.refresh_from_db()
    assert override.state == Override.State.REJECTED


def test_bulk_approve_refuses_own_proposals_row_by_row(client):
    approver = accountant()
    own = _void(approver)
    other = _void(finance())
    client.force_login(approver)
    url = reverse("admin:reconciliation_override_changelist")
    payload = {"action": "approve_selected", "_selected_action": [own.pk, other.pk], "index": 0}
    page = client.post(url, payload).content.decode()
    assert "1 will be refused" in page and "you proposed it" in page
    response = client.post(url, {**payload, "confirmed": "yes", "comment": "month end"})
    messages = _messages(response)
    assert any(m.startswith("Approved: 1") for m in messages), messages
    assert any(m.startswith("1 failed") and "cannot approve" in m for m in messages), messages
    own.refresh_from_db()
    other.refresh_from_db()
    assert (own.state, other.state) == (Override.State.PROPOSED, Override.State.APPLIED)


def test_approval_queue_lists_what_waits_and_stays_at_fixed_queries(client, django_assert_max_num_queries):
    approver = accountant()
    client.force_login(approver)
    for _ in range(3):
        _void(finance())
    url = reverse("admin:reconciliation_override_changelist")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        page = client.get(url, {"queue": "for_me"}).content.decode()
    assert page.count("Approve / reject") == 3
    for _ in range(10):
        _void(finance())
    with CaptureQueriesContext(connection) as many:
        client.get(url, {"queue": "for_me"})
    assert len(many) == len(few)


def test_an_apply_failure_is_shown_and_can_be_retried(client):
    books = ConnectionFactory(role="destination")
    invoice = InvoiceFactory()
    override = workflow.override_propose(
        by=finance(),
        action="force_match",
        reason="x",
        object_type="invoice",
        object_id=invoice.pk,
        after_value={"connection": books.pk, "external_id": "QB-9"},
    )
    blocker = Binding.objects.create(
        connection=books, object_type="invoice", object_id=InvoiceFactory().pk, external_id="QB-9"
    )
    approver = accountant()
    client.force_login(approver)
    response = client.post(reverse("admin:reconciliation_override_approve", args=[override.pk]))
    assert any("applying it failed" in m for m in _messages(response))
    page = client.get(reverse("admin:reconciliation_override_change", args=[override.pk])).content.decode()
    assert "already bound" in page and "Try applying it again" in page
    blocker.delete()
    client.post(reverse("admin:reconciliation_override_apply", args=[override.pk]))
    override.refresh_from_db()
    assert (override.state, override.apply_error) == (Override.State.APPLIED, "")


def test_the_approval_page_shows_the_value_now_and_refuses_a_stale_proposal(client):
    invoice = InvoiceFactory(memo="PO 1")
    override = workflow.override_propose(
        by=finance(),
        action="set_field",
        reason="x",
        object_type="invoice",
        object_id=invoice.pk,
        field_name="memo",
        after_value="PO 2",
    )
    approver = accountant()
    client.force_login(approver)
    url = reverse("admin:reconciliation_override_change", args=[override.pk])
    page = client.get(url).content.decode()
    assert 'id="current-value"' in page and 'id="stale"' not in page

    Invoice.objects.filter(pk=invoice.pk).update(memo="PO 3 from the source")
    page = client.get(url).content.decode()

    assert "PO 3 from the source" in page and 'id="stale"' in page
    response = client.post(reverse("admin:reconciliation_override_approve", args=[override.pk]))
    assert any("memo is now" in m and "propose again" in m for m in _messages(response))
    override.refresh_from_db()
    assert override.state == Override.State.PROPOSED


def test_the_proposer_gets_no_retry_button(client):
    proposer = accountant()
    override = _void(proposer)
    Override.objects.filter(pk=override.pk).update(
        state=Override.State.APPROVED, decided_by=accountant(), apply_error="the database was down"
    )
    client.force_login(proposer)
    page = client.get(reverse("admin:reconciliation_override_change", args=[override.pk])).content.decode()
    assert "Try applying it again" not in page
    response = client.post(reverse("admin:reconciliation_override_apply", args=[override.pk]))
    assert any("cannot apply it" in m for m in _messages(response))
    assert Invoice.objects.get(pk=override.object_id).status == "open"


# --- the dashboard ------------------------------------------------------------------------------------
def test_dashboard_draws_charts_at_a_fixed_number_of_queries(client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(accountant())
    _rows(2)
    with CaptureQueriesContext(connection) as few:
        page = client.get(reverse("admin:index")).content.decode()
    assert page.count("<svg") >= 3
    assert 'id="dashboard"' in page
    _rows(12)
    _void(finance())
    with CaptureQueriesContext(connection) as many:
        page = client.get(reverse("admin:index")).content.decode()
    assert len(many) == len(few)
    assert "1 waiting for approval" in page


def test_history_shows_the_first_assignment_as_from_nobody(client):
    """The history page's change list reads "nobody → alice", never a deleted user without a key."""
    clerk = finance()
    client.force_login(clerk)
    exception = exception_for()
    workflow.exception_assign(exception, assignee=clerk, by=clerk)

    page = client.get(reverse("admin:reconciliation_reconciliationexception_history", args=[exception.pk]))

    text = page.content.decode()
    assert page.status_code == 200
    assert "Deleted user" not in text and "pk=None" not in text
    assert "nobody" in text and clerk.username in text
