"""The workflow service: the exception state machine and maker-checker overrides."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from reconciliation import workflow
from reconciliation.models import ExceptionNote, Override, ReconciliationException, Tag
from reconciliation.workflow import FourEyesError, WorkflowError
from sync.models import Invoice
from tests.factories import InvoiceFactory, UserFactory
from tests.reconciliation.helpers import accountant, exception_for, finance

pytestmark = pytest.mark.django_db
S = ReconciliationException.State
STATES = list(S.values)


def _in_state(state: str, user) -> ReconciliationException:
    exception = exception_for()
    if state != S.OPEN:
        exception.state = state
        exception.assignee = user if state in (S.ASSIGNED, S.IN_REVIEW) else None
        exception.save()
    return exception


VALID = {
    (S.OPEN, S.ASSIGNED),
    (S.OPEN, S.IN_REVIEW),
    (S.OPEN, S.RESOLVED),
    (S.OPEN, S.IGNORED),
    (S.ASSIGNED, S.OPEN),
    (S.ASSIGNED, S.IN_REVIEW),
    (S.ASSIGNED, S.RESOLVED),
    (S.ASSIGNED, S.IGNORED),
    (S.IN_REVIEW, S.OPEN),
    (S.IN_REVIEW, S.ASSIGNED),
    (S.IN_REVIEW, S.RESOLVED),
    (S.IN_REVIEW, S.IGNORED),
    (S.RESOLVED, S.OPEN),
    (S.IGNORED, S.OPEN),
}


@pytest.mark.parametrize(("from_state", "to_state"), [(a, b) for a in STATES for b in STATES if a != b])
def test_every_move_is_allowed_or_refused_by_the_table(from_state, to_state):
    user = finance()
    exception = _in_state(from_state, user)
    if from_state == S.OPEN and to_state == S.ASSIGNED:
        exception.assignee = user  # assigned needs someone to be assigned to
        exception.save()
    if (from_state, to_state) in VALID:
        assert workflow.exception_move(exception, to_state, by=user, reason="checked with the bank") is True
        exception.refresh_from_db()
        assert exception.state == to_state
    else:
        with pytest.raises(WorkflowError) as refused:
            workflow.exception_move(exception, to_state, by=user, reason="checked")
        assert refused.value.code == "invalid_move"
        assert f"from {workflow._label(from_state)} to {workflow._label(to_state)}" in str(refused.value)
        assert "reopen it first" in str(refused.value)
        exception.refresh_from_db()
        assert exception.state == from_state


@pytest.mark.parametrize("state", STATES)
def test_repeating_a_move_is_harmless(state):
    user = finance()
    exception = _in_state(state, user)
    history = exception.history.count()
    assert workflow.exception_move(exception, state, by=user, reason="again") is False
    assert exception.history.count() == history


def test_moving_to_assigned_without_an_assignee_is_refused():
    with pytest.raises(WorkflowError, match="assign it to someone"):
        workflow.exception_move(exception_for(), S.ASSIGNED, by=finance())


def test_an_unknown_state_is_refused_with_its_name():
    with pytest.raises(WorkflowError, match="'closed' is not a state") as refused:
        workflow.exception_move(exception_for(), "closed", by=finance())
    assert refused.value.code == "unknown_state"


def test_ignore_needs_a_reason_and_keeps_it_in_a_note():
    user = finance()
    exception = exception_for()
    with pytest.raises(WorkflowError, match="needs a reason") as refused:
        workflow.exception_ignore(exception, by=user, reason="  ")
    assert refused.value.code == "reason_required"
    assert workflow.exception_ignore(exception, by=user, reason="test invoice, never sent") is True
    assert exception.state == S.IGNORED
    assert exception.resolved_by == user
    assert ExceptionNote.objects.get(exception=exception).body.endswith("test invoice, never sent")


def test_resolve_and_reopen_record_who_when_and_why_in_history():
    user = finance()
    exception = exception_for()
    workflow.exception_resolve(exception, by=user, reason="credit note issued")
    exception.refresh_from_db()
    assert (exception.state, exception.resolved_by, exception.resolved_by_system) == (S.RESOLVED, user, False)
    assert exception.resolved_at is not None
    latest = exception.history.first()
    assert latest.history_user == user
    assert latest.history_change_reason == "open -> resolved: credit note issued"
    assert workflow.exception_reopen(exception, by=user, reason="came back") is True
    exception.refresh_from_db()
    assert (exception.state, exception.resolved_at, exception.resolved_by) == (S.OPEN, None, None)
    assert exception.history.first().history_change_reason.startswith("reopened")


def test_assign_moves_an_open_exception_to_assigned_and_unassign_moves_it_back():
    lead, clerk = finance(), finance()
    exception = exception_for()
    assert workflow.exception_assign(exception, assignee=clerk, by=lead) is True
    assert (exception.state, exception.assignee) == (S.ASSIGNED, clerk)
    assert exception.history.first().history_user == lead
    assert workflow.exception_assign(exception, assignee=clerk, by=lead) is False  # harmless repeat
    assert workflow.exception_assign(exception, assignee=None, by=lead) is True
    assert (exception.state, exception.assignee) == (S.OPEN, None)


def test_assign_refuses_a_closed_exception_and_someone_who_cannot_work_exceptions():
    user = finance()
    exception = _in_state(S.RESOLVED, user)
    with pytest.raises(WorkflowError, match="reopen it before assigning"):
        workflow.exception_assign(exception, assignee=user, by=user)
    with pytest.raises(WorkflowError, match="cannot work exceptions") as refused:
        workflow.exception_assign(exception_for(), assignee=UserFactory(), by=user)
    assert refused.value.code == "invalid_assignee"


def test_a_user_without_the_permission_cannot_move_anything():
    with pytest.raises(WorkflowError) as refused:
        workflow.exception_resolve(exception_for(), by=UserFactory(), reason="x")
    assert refused.value.code == "permission"


def test_tags_are_created_added_and_removed_with_history():
    user = finance()
    exception = exception_for()
    assert workflow.exception_tag(exception, ["bank", " vip ", "bank"], by=user) is True
    assert set(exception.tags.values_list("name", flat=True)) == {"bank", "vip"}
    latest = exception.history.first()
    assert (latest.history_user, latest.history_change_reason) == (user, "tagged bank, vip")
    assert workflow.exception_tag(exception, ["bank"], by=user) is False
    assert workflow.exception_tag(exception, ["vip"], by=user, remove=True) is True
    assert list(exception.tags.values_list("name", flat=True)) == ["bank"]
    assert Tag.objects.filter(name="vip").exists()
    with pytest.raises(WorkflowError, match="longer than 50"):
        workflow.exception_tag(exception, ["x" * 51], by=user)


def test_notes_need_text():
    user = finance()
    exception = exception_for()
    note = workflow.exception_note(exception, "  Called the customer  ", by=user)
    assert (note.body, note.author) == ("Called the customer", user)
    with pytest.raises(WorkflowError, match="needs some text"):
        workflow.exception_note(exception, " ", by=user)


# --- overrides ----------------------------------------------------------------------------------------
def _propose_void(by, exception=None, **extra) -> Override:
    exception = exception or exception_for()
    return workflow.override_propose(
        by=by, action=Override.Action.VOID, reason="duplicate of INV-1", exception=exception, **extra
    )


def test_a_proposal_captures_before_and_after_and_expires_after_the_default_days(settings):
    settings.OVERRIDE_EXPIRY_DAYS = 3
    invoice = InvoiceFactory(total=Decimal("120.00"))
    exception = exception_for(invoice)
    proposer = finance()
    override = workflow.override_propose(
        by=proposer,
        action="set_field",
        reason="the shop export dropped the shipping line",
        exception=exception,
        field_name="total",
        after_value="125.50",
    )
    assert (override.before_value, override.after_value) == ("120.0000", "125.50")
    assert (override.object_type, override.object_id, override.document_number) == (
        "invoice",
        invoice.pk,
        invoice.number,
    )
    assert timedelta(days=3) - (override.expires_at - timezone.now()) < timedelta(minutes=1)
    exception.refresh_from_db()
    assert exception.state == S.IN_REVIEW  # waiting for the decision


@pytest.mark.parametrize(
    ("field_name", "value", "message"),
    [
        ("status", "paid", "field 'status' of a invoice cannot be set"),
        ("total", "12,50", "total '12,50' is not a number"),
        ("total", "12.505", "total"),
        ("due_date", "31/03/2026", "due_date '31/03/2026' is not a date"),
        ("currency", "EURO", "currency 'EURO' is not an ISO 4217 currency code"),
    ],
)
def test_a_set_field_proposal_with_a_bad_field_or_value_names_it(field_name, value, message):
    with pytest.raises(WorkflowError, match=message.replace("(", r"\(")):
        workflow.override_propose(
            by=finance(),
            action="set_field",
            reason="fix",
            exception=exception_for(),
            field_name=field_name,
            after_value=value,
        )
    assert not Override.objects.exists()


def test_a_proposal_needs_a_reason_and_a_known_action():
    with pytest.raises(WorkflowError, match="needs a reason"):
        workflow.override_propose(by=finance(), action="void", reason=" ", exception=exception_for())
    with pytest.raises(WorkflowError, match="action 'delete' is not one of"):
        workflow.override_propose(by=finance(), action="delete", reason="x", exception=exception_for())


def test_nobody_approves_their_own_proposal():
    proposer = accountant()
    override = _propose_void(proposer)
    with pytest.raises(FourEyesError) as refused:
        workflow.override_approve(override, by=proposer, comment="fine")
    assert refused.value.code == "four_eyes"
    assert "proposed override" in str(refused.value)
    with pytest.raises(FourEyesError):
        workflow.override_reject(override, by=proposer, comment="withdrawn")
    override.refresh_from_db()
    assert (override.state, override.decided_by) == (Override.State.PROPOSED, None)


def test_approval_needs_the_approve_permission():
    override = _propose_void(finance())
    with pytest.raises(WorkflowError) as refused:
        workflow.override_approve(override, by=finance())
    assert refused.value.code == "permission"
    assert "reconciliation.approve_override" in str(refused.value)


def test_an_expired_proposal_cannot_be_approved_and_is_marked_expired():
    override = _propose_void(finance())
    approver = accountant()
    with (
        time_machine.travel(timezone.now() + timedelta(days=8)),
        pytest.raises(WorkflowError, match="expired") as refused,
    ):
        workflow.override_approve(override, by=approver)
    assert refused.value.code == "expired"
    override.refresh_from_db()
    assert override.state == Override.State.EXPIRED
    assert Invoice.objects.get(pk=override.object_id).status == "open"


def test_an_expiry_in_the_past_is_refused_and_expiring_marks_old_proposals():
    with pytest.raises(WorkflowError, match="not in the future"):
        _propose_void(finance(), expires_at=timezone.now() - timedelta(minutes=1))
    old = _propose_void(finance())
    fresh = _propose_void(finance())
    Override.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert workflow.overrides_expire() == 1
    assert Override.objects.get(pk=old.pk).state == Override.State.EXPIRED
    assert Override.objects.get(pk=fresh.pk).state == Override.State.PROPOSED


def test_a_decided_override_cannot_be_decided_again():
    override = _propose_void(finance())
    workflow.override_reject(override, by=accountant(), comment="it is not a duplicate")
    with pytest.raises(WorkflowError, match="already rejected") as refused:
        workflow.override_approve(override, by=accountant())
    assert refused.value.code == "already_decided"


def test_rejecting_needs_a_comment_and_sends_the_exception_back():
    clerk = finance()
    exception = exception_for()
    workflow.exception_assign(exception, assignee=clerk, by=clerk)
    override = _propose_void(clerk, exception=exception)
    exception.refresh_from_db()
    assert exception.state == S.IN_REVIEW
    with pytest.raises(WorkflowError, match="needs a comment"):
        workflow.override_reject(override, by=accountant(), comment="")
    workflow.override_reject(override, by=accountant(), comment="INV-1 was credited instead")
    exception.refresh_from_db()
    assert exception.state == S.ASSIGNED
    assert "INV-1 was credited instead" in exception.notes.last().body


def test_approving_applies_it_and_resolves_the_exception():
    proposer, approver = finance(), accountant()
    override = _propose_void(proposer)
    workflow.override_approve(override, by=approver, comment="checked the duplicate")
    override.refresh_from_db()
    assert (override.state, override.decided_by, override.decision_comment) == (
        Override.State.APPLIED,
        approver,
        "checked the duplicate",
    )
    assert override.applied_at is not None and override.apply_error == ""
    invoice = Invoice.objects.get(pk=override.object_id)
    assert (invoice.status, invoice.row_version) == ("void", 2)
    assert invoice.history.first().history_user == approver
    exception = override.exception
    exception.refresh_from_db()
    assert (exception.state, exception.resolved_by) == (S.RESOLVED, approver)
    assert [h.state for h in override.history.all()][:3] == ["applied", "approved", "proposed"]


def test_an_apply_that_fails_leaves_it_approved_with_the_error_and_writes_nothing(monkeypatch):
    override = _propose_void(finance())
    real_void = workflow.corrections.document_void

    def void_then_fail(**kwargs):
        real_void(**kwargs)
        raise workflow.CorrectionError("the ledger refused it")

    monkeypatch.setattr(workflow.corrections, "document_void", void_then_fail)
    workflow.override_approve(override, by=accountant())
    override.refresh_from_db()
    assert override.state == Override.State.APPROVED
    assert override.apply_error == "the ledger refused it"
    assert override.exception.state == S.IN_REVIEW
    invoice = Invoice.objects.get(pk=override.object_id)
    assert (invoice.status, invoice.row_version) == ("open", 1)


def test_a_revert_is_a_new_proposal_that_needs_approval_and_undoes_the_change():
    clerk, approver = finance(), accountant()
    override = _propose_void(clerk)
    workflow.override_approve(override, by=approver)
    revert = workflow.override_revert(override, by=clerk, reason="it was not a duplicate after all")
    assert (revert.state, revert.reverts, revert.action) == (Override.State.PROPOSED, override, "void")
    assert revert.after_value["status"] == "open"
    assert Invoice.objects.get(pk=override.object_id).status == "void"  # nothing until approved
    with pytest.raises(WorkflowError, match="already waiting"):
        workflow.override_revert(override, by=clerk, reason="again")
    workflow.override_approve(revert, by=approver)
    assert Invoice.objects.get(pk=override.object_id).status == "open"
    override.refresh_from_db()
    assert override.state == Override.State.REVERTED


def test_only_an_applied_override_can_be_reverted():
    override = _propose_void(finance())
    with pytest.raises(WorkflowError, match="not applied"):
        workflow.override_revert(override, by=finance(), reason="x")


def test_accept_difference_refuses_a_difference_above_its_limit():
    exception = exception_for(amount_at_risk=Decimal("12.00"))
    with pytest.raises(WorkflowError, match="above the limit") as refused:
        workflow.override_propose(
            by=finance(),
            action="accept_difference",
            reason="rounding",
            exception=exception,
            limit_amount="10",
        )
    assert refused.value.code == "over_limit"
    with pytest.raises(WorkflowError, match="needs the exception"):
        workflow.override_propose(
            by=finance(), action="accept_difference", reason="rounding", limit_amount="10"
        )


def test_accept_difference_resolves_the_exception_and_its_revert_reopens_it():
    exception = exception_for(amount_at_risk=Decimal("0.04"))
    override = workflow.override_propose(
        by=finance(), action="accept_difference", reason="rounding", exception=exception, limit_amount="0.05"
    )
    assert override.limit_amount == Decimal("0.05")
    workflow.override_approve(override, by=accountant())
    exception.refresh_from_db()
    assert exception.state == S.RESOLVED
    revert = workflow.override_revert(override, by=finance(), reason="the customer disputes it")
    workflow.override_approve(revert, by=accountant())
    exception.refresh_from_db()
    assert exception.state == S.OPEN


def test_two_approvals_at_once_apply_it_once():
    override = _propose_void(finance())
    stale = Override.objects.get(pk=override.pk)
    workflow.override_approve(override, by=accountant())
    with pytest.raises(WorkflowError, match="already applied"):
        workflow.override_approve(stale, by=accountant())
    assert Invoice.objects.get(pk=override.object_id).row_version == 2


# --- a proposal is applied only to the document it was made from ---------------------------------------
def test_approving_a_field_the_source_changed_since_the_proposal_is_refused_as_stale():
    invoice = InvoiceFactory(memo="PO 1")
    override = workflow.override_propose(
        by=finance(),
        action="set_field",
        reason="the PO changed",
        object_type="invoice",
        object_id=invoice.pk,
        field_name="memo",
        after_value="PO 2",
    )
    Invoice.objects.filter(pk=invoice.pk).update(memo="PO 3 from the source")

    with pytest.raises(WorkflowError) as refused:
        workflow.override_approve(override, by=accountant())

    assert refused.value.code == "stale"
    assert "memo is now 'PO 3 from the source'" in refused.value.message
    assert "'PO 1'" in refused.value.message and "propose again" in refused.value.message
    override.refresh_from_db()
    assert (override.state, override.decided_by) == (Override.State.PROPOSED, None)
    invoice.refresh_from_db()
    assert (invoice.memo, invoice.row_version) == ("PO 3 from the source", 1)


def test_an_amount_written_differently_is_not_a_change():
    invoice = InvoiceFactory(total=Decimal("120.00"), amount_due=Decimal("120.00"))
    override = workflow.override_propose(
        by=finance(),
        action="set_field",
        reason="shipping",
        object_type="invoice",
        object_id=invoice.pk,
        field_name="total",
        after_value="125.00",
    )
    Override.objects.filter(pk=override.pk).update(before_value="120.00")  # same amount, other places

    workflow.override_approve(override, by=accountant())

    override.refresh_from_db()
    assert override.state == Override.State.APPLIED, override.apply_error


def test_approving_a_void_after_a_payment_arrived_is_refused_as_stale():
    invoice = InvoiceFactory(total=Decimal("100.00"), amount_due=Decimal("100.00"))
    override = _propose_void(finance(), exception=exception_for(invoice))
    Invoice.objects.filter(pk=invoice.pk).update(
        status="partially_paid", amount_paid=Decimal("60.00"), amount_due=Decimal("40.00")
    )

    with pytest.raises(WorkflowError, match="status is now 'partially_paid' \\(was 'open'\\)") as refused:
        workflow.override_approve(override, by=accountant())

    assert refused.value.code == "stale"
    assert "amount_due is now '40.0000' (was '100.0000')" in refused.value.message
    assert Invoice.objects.get(pk=invoice.pk).status == "partially_paid"


def test_a_change_between_approval_and_apply_fails_the_apply_and_writes_nothing(monkeypatch):
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
    real_apply = workflow._apply

    def pulled_meanwhile(override, *, by):
        Invoice.objects.filter(pk=invoice.pk).update(memo="PO 3")
        return real_apply(override, by=by)

    monkeypatch.setattr(workflow, "_apply", pulled_meanwhile)
    workflow.override_approve(override, by=accountant())

    override.refresh_from_db()
    assert override.state == Override.State.APPROVED
    assert "memo is now 'PO 3'" in override.apply_error
    # the stand-in for the pull ran inside the refused apply, so it was rolled back with it
    assert Invoice.objects.get(pk=invoice.pk).memo == "PO 1"


def test_accepting_a_difference_whose_amount_grew_past_the_limit_is_refused():
    exception = exception_for(amount_at_risk=Decimal("0.04"))
    override = workflow.override_propose(
        by=finance(), action="accept_difference", reason="rounding", exception=exception, limit_amount="0.05"
    )
    ReconciliationException.objects.filter(pk=exception.pk).update(amount_at_risk=Decimal("9.00"))

    with pytest.raises(WorkflowError, match="above the limit") as refused:
        workflow.override_approve(override, by=accountant())

    assert refused.value.code == "stale"
    assert Override.objects.get(pk=override.pk).state == Override.State.PROPOSED


# --- trying an apply again ----------------------------------------------------------------------------
def _failed_apply(proposer) -> Override:
    """An approved set-field override whose apply failed (the memo it sets was refused meanwhile)."""
    invoice = InvoiceFactory(memo="PO 1")
    override = workflow.override_propose(
        by=proposer,
        action="set_field",
        reason="x",
        object_type="invoice",
        object_id=invoice.pk,
        field_name="memo",
        after_value="PO 2",
    )
    Override.objects.filter(pk=override.pk).update(
        state=Override.State.APPROVED, decided_by=accountant(), apply_error="the database was down"
    )
    override.refresh_from_db()
    return override


def test_the_proposer_cannot_apply_their_own_override_on_a_retry():
    proposer = accountant()
    override = _failed_apply(proposer)

    with pytest.raises(FourEyesError):
        workflow.override_apply(override, by=proposer)

    override.refresh_from_db()
    assert override.state == Override.State.APPROVED
    assert Invoice.objects.get(pk=override.object_id).memo == "PO 1"
    workflow.override_apply(override, by=accountant())
    assert Invoice.objects.get(pk=override.object_id).memo == "PO 2"


def test_a_retry_after_the_expiry_is_refused():
    override = _failed_apply(finance())

    with (
        time_machine.travel(timezone.now() + timedelta(days=8)),
        pytest.raises(WorkflowError, match="expired") as refused,
    ):
        workflow.override_apply(override, by=accountant())

    assert refused.value.code == "expired"
    assert Invoice.objects.get(pk=override.object_id).memo == "PO 1"


def test_a_retry_on_a_document_that_changed_is_refused_as_stale():
    override = _failed_apply(finance())
    Invoice.objects.filter(pk=override.object_id).update(memo="PO 3")

    with pytest.raises(WorkflowError, match="memo is now 'PO 3'") as refused:
        workflow.override_apply(override, by=accountant())

    assert refused.value.code == "stale"
    assert Invoice.objects.get(pk=override.object_id).memo == "PO 3"


# --- accepting a difference needs an amount ------------------------------------------------------------
def test_accepting_a_difference_on_an_exception_with_no_amount_is_refused():
    exception = exception_for(kind="date_mismatch", amount_at_risk=None)

    with pytest.raises(WorkflowError, match="no amount at risk") as refused:
        workflow.override_propose(
            by=finance(), action="accept_difference", reason="a day", exception=exception, limit_amount="0"
        )

    assert refused.value.code == "invalid_value"
    assert "ignore it" in refused.value.message
    assert not Override.objects.exists()


def _accepted(exception, limit: str) -> Override:
    # as an override accepted before amounts were required: applied, with a limit
    return Override.objects.create(
        exception=exception,
        object_type=exception.object_type,
        object_id=exception.object_id,
        action=Override.Action.ACCEPT_DIFFERENCE,
        state=Override.State.APPLIED,
        limit_amount=Decimal(limit),
        reason="accepted",
        proposed_by=finance(),
        decided_by=accountant(),
        expires_at=timezone.now() + timedelta(days=1),
        applied_at=timezone.now(),
    )


def _date_finding(invoice, ledger_date: str):
    from reconciliation import rules

    doc = rules.Document(
        "invoice",
        invoice.pk,
        {"number": invoice.number, "currency": "GBP", "issue_date": "2026-03-01", "total": "120.00"},
    )
    copy = rules.Copy(
        connection_id=invoice.source_connection_id,
        connection_name="QB",
        values={"issue_date": ledger_date},
        external_id="9",
    )
    finding = rules.dates(doc, copy, rules.Tolerances())
    assert finding is not None and finding.amount_at_risk is None
    return finding


def test_an_accepted_difference_never_covers_a_finding_with_no_amount():
    from reconciliation.services import findings_record

    invoice = InvoiceFactory()
    judged = {(invoice.pk, invoice.source_connection_id): {"date"}}
    findings_record("invoice", [_date_finding(invoice, "2026-03-02")], judged=judged)
    exception = ReconciliationException.objects.get()
    _accepted(exception, "0")
    ReconciliationException.objects.filter(pk=exception.pk).update(state=S.RESOLVED)

    outcome = findings_record("invoice", [_date_finding(invoice, "2025-01-01")], judged=judged)

    exception.refresh_from_db()
    assert exception.state == S.OPEN
    assert (outcome.accepted, outcome.reopened) == (0, 1)


def test_an_accepted_difference_covers_an_amount_within_its_limit_only():
    from reconciliation import rules
    from reconciliation.services import findings_record

    invoice = InvoiceFactory()
    doc = rules.Document(
        "invoice", invoice.pk, {"number": invoice.number, "currency": "GBP", "total": "120.00"}
    )

    def finding(ledger_total: str):
        copy = rules.Copy(
            connection_id=invoice.source_connection_id,
            connection_name="QB",
            values={"total": ledger_total},
            external_id="9",
        )
        found = rules.amount(doc, copy, rules.Tolerances())
        assert found is not None
        return found

    judged = {(invoice.pk, invoice.source_connection_id): {"amount"}}
    findings_record("invoice", [finding("119.96")], judged=judged)
    exception = ReconciliationException.objects.get()
    _accepted(exception, "0.05")
    ReconciliationException.objects.filter(pk=exception.pk).update(state=S.RESOLVED)

    assert findings_record("invoice", [finding("120.05")], judged=judged).accepted == 1
    assert ReconciliationException.objects.get().state == S.RESOLVED
    assert findings_record("invoice", [finding("120.06")], judged=judged).reopened == 1
    assert ReconciliationException.objects.get().state == S.OPEN


# --- bad input is refused naming the field --------------------------------------------------------------
@pytest.mark.parametrize("connection", ["abc", [1], 10**30, -1, 0, True, 1.5, None])
def test_force_match_with_a_bad_connection_names_it(connection):
    with pytest.raises(WorkflowError) as refused:
        workflow.override_propose(
            by=finance(),
            action="force_match",
            reason="x",
            exception=exception_for(),
            after_value={"connection": connection, "external_id": "QB-1"},
        )
    assert refused.value.code == "invalid_value"
    assert "connection" in refused.value.message and repr(connection) in refused.value.message


@pytest.mark.parametrize("destination", ["abc", [1], 10**30, -1, {"id": 1}])
def test_repush_with_a_bad_destination_names_it(destination):
    with pytest.raises(WorkflowError) as refused:
        workflow.override_propose(
            by=finance(),
            action="repush",
            reason="x",
            exception=exception_for(),
            after_value={"destination": destination},
        )
    assert refused.value.code == "invalid_value"
    assert f"destination {destination!r}" in refused.value.message


@pytest.mark.parametrize("object_id", ["abc", 10**30, -3, [1]])
def test_a_bad_document_id_names_it(object_id):
    with pytest.raises(WorkflowError, match="object_id") as refused:
        workflow.override_propose(
            by=finance(), action="void", reason="x", object_type="invoice", object_id=object_id
        )
    assert refused.value.code == "invalid_value"


@pytest.mark.parametrize(
    ("field_name", "value", "message"),
    [
        ("total", "1e999999", "total '1e999999' is too large"),
        ("total", 10**30, "total 1000000000000000000000000000000 is too large"),
        ("subtotal", "1000000000000000", "subtotal '1000000000000000' is too large"),
        ("tax_total", "-1e999999", "tax_total '-1e999999' is too large"),
        ("exchange_rate", "1e999999", "exchange_rate '1e999999' is too large"),
        ("exchange_rate", "1.123456789", "exchange_rate '1.123456789' has more than 8 decimal places"),
    ],
)
def test_an_amount_the_database_cannot_hold_is_refused_at_proposal(field_name, value, message):
    with pytest.raises(WorkflowError, match=message) as refused:
        workflow.override_propose(
            by=finance(),
            action="set_field",
            reason="x",
            exception=exception_for(),
            field_name=field_name,
            after_value=value,
        )
    assert refused.value.code == "invalid_value"


def test_the_largest_amount_the_database_holds_is_accepted():
    override = workflow.override_propose(
        by=finance(),
        action="set_field",
        reason="x",
        exception=exception_for(),
        field_name="total",
        after_value="999999999999999.99",
    )
    assert override.after_value == "999999999999999.99"


# --- reverts --------------------------------------------------------------------------------------------
def test_a_revert_cannot_be_proposed_twice_even_at_the_same_moment():
    override = _propose_void(finance())
    workflow.override_approve(override, by=accountant())
    stale = Override.objects.get(pk=override.pk)
    workflow.override_revert(override, by=finance(), reason="not a duplicate")
    with pytest.raises(WorkflowError, match="already waiting") as refused:
        workflow.override_revert(stale, by=finance(), reason="not a duplicate either")
    assert refused.value.code == "already_proposed"
    assert Override.objects.filter(reverts=override).count() == 1


@pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"],
    reason="needs row locks that wait (PostgreSQL)",
)
@pytest.mark.django_db(transaction=True)
def test_two_revert_proposals_in_parallel_leave_one():
    import threading
    import time

    from django.apps import apps
    from django.db import connections, transaction

    from sync import roles

    roles.apply_roles(apps)  # transactional tests flush the groups the migration made
    override = _propose_void(finance())
    workflow.override_approve(override, by=accountant())
    first_clerk, second_clerk = finance(), finance()
    outcome: list[str] = []

    def second() -> None:
        try:
            workflow.override_revert(Override.objects.get(pk=override.pk), by=second_clerk, reason="second")
            outcome.append("proposed")
        except WorkflowError as exc:
            outcome.append(exc.code)
        finally:
            connections.close_all()

    with transaction.atomic():
        workflow.override_revert(override, by=first_clerk, reason="first")
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)  # let the second proposal reach the original row while the first holds it
    thread.join(timeout=30)

    assert outcome == ["already_proposed"]
    assert Override.objects.filter(reverts=override).count() == 1
