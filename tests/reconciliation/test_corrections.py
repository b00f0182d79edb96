"""Approved overrides applied through the sync services in sync/corrections.py."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from reconciliation import workflow
from reconciliation.models import Override
from sync import corrections
from sync.corrections import CorrectionError
from sync.models import Binding, Invoice, Payment, PaymentAllocation, PushOperation, SyncJob
from tests.factories import ConnectionFactory, InvoiceFactory, InvoiceLineFactory
from tests.reconciliation.helpers import accountant, exception_for, finance
from tests.sync import engine


def _approved(**proposal) -> Override:
    override = workflow.override_propose(by=finance(), reason="agreed with the customer", **proposal)
    workflow.override_approve(override, by=accountant(), comment="ok")
    override.refresh_from_db()
    return override


@pytest.mark.django_db
class TestSetField:
    def test_sets_a_whitelisted_field_bumps_the_version_and_keeps_who_and_why(self):
        invoice = InvoiceFactory(total=Decimal("120.00"), amount_due=Decimal("120.00"))
        override = _approved(
            action="set_field", exception=exception_for(invoice), field_name="total", after_value="125.50"
        )
        assert override.state == Override.State.APPLIED, override.apply_error
        invoice.refresh_from_db()
        assert (invoice.total, invoice.amount_due, invoice.row_version) == (
            Decimal("125.50"),
            Decimal("125.50"),
            2,
        )
        latest = invoice.history.first()
        assert latest.history_user == override.decided_by
        assert latest.history_change_reason.startswith(f"override #{override.pk}: agreed")

    def test_a_date_field(self):
        invoice = InvoiceFactory()
        corrections.document_field_set(
            object_type="invoice",
            object_id=invoice.pk,
            field_name="due_date",
            value="2026-04-30",
            by=finance(),
            reason="terms",
        )
        invoice.refresh_from_db()
        assert invoice.due_date == date(2026, 4, 30)

    @pytest.mark.parametrize(
        ("object_type", "field_name", "value", "message"),
        [
            ("invoice", "amount_paid", "0", "field 'amount_paid' of a invoice cannot be set"),
            ("invoice", "total", "-5", "total '-5' is negative"),
            ("invoice", "issue_date", "2026-13-01", "issue_date '2026-13-01' is not a date"),
            ("invoice", "number", "", "number cannot be empty"),
            ("customer", "name", "x", "object_type 'customer' has no fields an override may set"),
        ],
    )
    def test_refuses_a_field_or_value_naming_both(self, object_type, field_name, value, message):
        invoice = InvoiceFactory()
        with pytest.raises(CorrectionError, match=message) as refused:
            corrections.document_field_set(
                object_type=object_type,
                object_id=invoice.pk,
                field_name=field_name,
                value=value,
                by=finance(),
                reason="x",
            )
        assert refused.value.field in {field_name, "field_name", "object_type"}
        invoice.refresh_from_db()
        assert invoice.row_version == 1

    def test_revert_puts_the_value_back(self):
        invoice = InvoiceFactory(memo="")
        override = _approved(
            action="set_field",
            object_type="invoice",
            object_id=invoice.pk,
            field_name="memo",
            after_value="PO 77",
        )
        revert = workflow.override_revert(override, by=finance(), reason="wrong PO")
        workflow.override_approve(revert, by=accountant())
        invoice.refresh_from_db()
        assert (invoice.memo, invoice.row_version) == ("", 3)


@pytest.mark.django_db
class TestVoidAndMarkPaid:
    def test_void_sets_the_canonical_status(self):
        invoice = InvoiceFactory()
        override = _approved(action="void", object_type="invoice", object_id=invoice.pk)
        invoice.refresh_from_db()
        assert (invoice.status, invoice.row_version) == ("void", 2)
        assert override.before_value["status"] == "open"

    def test_mark_paid_settles_by_hand_without_touching_payments(self):
        invoice = InvoiceFactory(amount_paid=Decimal("20.00"), amount_due=Decimal("100.00"))
        payment = Payment.objects.create(
            reference="PAY-1",
            customer=invoice.customer,
            transaction_date=date(2026, 3, 5),
            currency="GBP",
            amount=Decimal("20.00"),
            source_connection=invoice.source_connection,
        )
        PaymentAllocation.objects.create(payment=payment, invoice=invoice, amount=Decimal("20.00"))
        override = _approved(action="mark_paid", exception=exception_for(invoice))
        invoice.refresh_from_db()
        assert (invoice.status, invoice.amount_due, invoice.amount_paid) == (
            "paid",
            Decimal(0),
            Decimal("20.00"),
        )
        assert invoice.paid_on_date is not None
        assert override.after_value["settled_manually"] == "100.0000"
        assert Payment.objects.count() == 1 and PaymentAllocation.objects.get().amount == Decimal("20.00")
        payment.refresh_from_db()
        assert payment.row_version == 1

    def test_mark_paid_refuses_a_paid_or_void_invoice_and_a_payment(self):
        paid = InvoiceFactory(status="paid")
        with pytest.raises(workflow.WorkflowError, match="is paid"):
            workflow.override_propose(
                by=finance(), action="mark_paid", reason="x", object_type="invoice", object_id=paid.pk
            )
        with pytest.raises(CorrectionError, match="cannot be marked paid"):
            corrections.invoice_mark_paid(invoice_id=InvoiceFactory(status="void").pk, by=None, reason="x")

    def test_revert_of_mark_paid_restores_status_and_amount_due(self):
        invoice = InvoiceFactory(amount_due=Decimal("120.00"))
        override = _approved(action="mark_paid", object_type="invoice", object_id=invoice.pk)
        revert = workflow.override_revert(override, by=finance(), reason="the transfer bounced")
        workflow.override_approve(revert, by=accountant())
        invoice.refresh_from_db()
        assert (invoice.status, invoice.amount_due, invoice.paid_on_date) == ("open", Decimal("120.00"), None)


@pytest.mark.django_db
class TestForceMatch:
    def test_binds_the_document_to_the_named_external_id(self):
        invoice = InvoiceFactory()
        books = ConnectionFactory(role="destination")
        override = _approved(
            action="force_match",
            exception=exception_for(invoice),
            after_value={"connection": books.pk, "external_id": "QB-1047"},
        )
        assert override.state == Override.State.APPLIED, override.apply_error
        binding = Binding.objects.get(connection=books, object_type="invoice", object_id=invoice.pk)
        assert (binding.external_id, binding.document_version, binding.is_origin) == ("QB-1047", 1, False)

    def test_refuses_an_external_id_bound_to_another_document(self):
        books = ConnectionFactory(role="destination")
        other = InvoiceFactory()
        Binding.objects.create(
            connection=books, object_type="invoice", object_id=other.pk, external_id="QB-1"
        )
        with pytest.raises(workflow.WorkflowError, match=f"already bound to invoice {other.pk}"):
            workflow.override_propose(
                by=finance(),
                action="force_match",
                reason="x",
                exception=exception_for(),
                after_value={"connection": books.pk, "external_id": "QB-1"},
            )

    def test_bound_elsewhere_between_proposal_and_approval_fails_the_apply_cleanly(self):
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
        other = InvoiceFactory()
        Binding.objects.create(
            connection=books, object_type="invoice", object_id=other.pk, external_id="QB-9"
        )
        workflow.override_approve(override, by=accountant())
        override.refresh_from_db()
        assert override.state == Override.State.APPROVED
        assert "already bound" in override.apply_error
        assert not Binding.objects.filter(object_id=invoice.pk).exists()

    def test_revert_removes_the_binding(self):
        books = ConnectionFactory(role="destination")
        invoice = InvoiceFactory()
        override = _approved(
            action="force_match",
            object_type="invoice",
            object_id=invoice.pk,
            after_value={"connection": books.pk, "external_id": "QB-5"},
        )
        revert = workflow.override_revert(override, by=finance(), reason="wrong record")
        workflow.override_approve(revert, by=accountant())
        assert not Binding.objects.filter(connection=books, object_id=invoice.pk).exists()


@pytest.mark.django_db
def test_repush_without_a_profile_is_refused_at_proposal():
    with pytest.raises(workflow.WorkflowError, match="no enabled sync profile sends invoices"):
        workflow.override_propose(by=finance(), action="repush", reason="x", exception=exception_for())


@pytest.mark.django_db
def test_a_repush_cannot_be_reverted():
    dest = ConnectionFactory(role="destination")
    invoice = InvoiceFactory()
    from sync.models import SyncProfile

    SyncProfile.objects.create(
        name="p", source=invoice.source_connection, destination=dest, object_types=["invoice"]
    )
    override = Override.objects.create(
        action="repush",
        reason="x",
        state="applied",
        object_type="invoice",
        object_id=invoice.pk,
        proposed_by=finance(),
        expires_at="2099-01-01T00:00:00Z",
    )
    with pytest.raises(workflow.WorkflowError, match="cannot be undone"):
        workflow.override_revert(override, by=finance(), reason="x")


@pytest.mark.django_db(transaction=True)
def test_repush_sends_that_one_document_once_through_the_outbox(live_server):
    from django.apps import apps

    from sync import roles

    roles.apply_roles(apps)  # transactional tests flush the groups the migration made
    dest = engine.destination("quickbooks", live_server.url)
    source, _ = engine.source_with_invoices(3)
    profile = engine.mapped_profile(source, dest)
    from sync import push as pushing

    pushing.push_run(profile)
    first, second = Invoice.objects.order_by("pk")[:2]
    for invoice in (first, second):  # both changed at the source: only the first is re-pushed now
        invoice.memo = "changed"
        invoice.row_version += 1
        invoice.save()

    jobs = corrections.document_push(object_type="invoice", object_id=first.pk, by=finance())

    assert [job.params for job in jobs] == [{"documents": [["invoice", first.pk]]}]
    job = SyncJob.objects.get(pk=jobs[0].pk)
    assert job.state == SyncJob.State.SUCCEEDED, job.error
    updates = PushOperation.objects.filter(profile=profile, operation="update")
    assert list(updates.values_list("object_id", "state")) == [(first.pk, "succeeded")]

    # forced again: a new version goes out once; running the same job again sends nothing more
    override = _approved(action="repush", object_type="invoice", object_id=first.pk)
    assert override.state == Override.State.APPLIED, override.apply_error
    first.refresh_from_db()
    assert first.row_version == 3
    assert updates.filter(object_id=first.pk, state="succeeded").count() == 2
    from sync.jobs import job_rerun

    job_rerun(SyncJob.objects.filter(kind="push").latest("pk"))
    assert updates.filter(object_id=first.pk).count() == 2
    assert not updates.filter(object_id=second.pk).exists()


# --- reverts work from the document as it is now ---------------------------------------------------------
def _paid_by(invoice, amount: str, *, status: str = "completed") -> Payment:
    payment = Payment.objects.create(
        reference=f"PAY-{Payment.objects.count() + 1}",
        customer=invoice.customer,
        transaction_date=date(2026, 4, 2),
        currency=invoice.currency,
        amount=Decimal(amount),
        status=status,
        source_connection=invoice.source_connection,
    )
    PaymentAllocation.objects.create(
        payment=payment, invoice=invoice, amount=Decimal(amount), allocated_on=date(2026, 4, 2)
    )
    return payment


def _reverted(override: Override) -> Override:
    revert = workflow.override_revert(override, by=finance(), reason="undo")
    workflow.override_approve(revert, by=accountant())
    revert.refresh_from_db()
    return revert


@pytest.mark.django_db
class TestRevertFromNow:
    def test_a_payment_since_mark_paid_leaves_the_rest_due(self):
        invoice = InvoiceFactory(total=Decimal("100.00"), amount_due=Decimal("100.00"))
        override = _approved(action="mark_paid", object_type="invoice", object_id=invoice.pk)
        _paid_by(invoice, "60.00")  # a real payment lands after the invoice was marked paid

        revert = _reverted(override)

        assert revert.state == Override.State.APPLIED, revert.apply_error
        invoice.refresh_from_db()
        assert (invoice.status, invoice.amount_due, invoice.paid_on_date) == (
            "partially_paid",
            Decimal("40.00"),
            None,
        )
        assert revert.after_value == {
            "status": "partially_paid",
            "amount_due": "40.0000",
            "paid_on_date": None,
        }

    def test_a_paid_amount_the_source_reports_counts_too(self):
        invoice = InvoiceFactory(total=Decimal("100.00"), amount_due=Decimal("100.00"))
        override = _approved(action="mark_paid", object_type="invoice", object_id=invoice.pk)
        Invoice.objects.filter(pk=invoice.pk).update(amount_paid=Decimal("100.00"))

        _reverted(override)

        invoice.refresh_from_db()
        assert (invoice.status, invoice.amount_due) == ("paid", Decimal(0))
        assert invoice.paid_on_date is not None

    def test_pending_payments_and_void_credit_notes_do_not_count(self):
        from sync.models import CreditAllocation, CreditNote

        invoice = InvoiceFactory(total=Decimal("100.00"), amount_due=Decimal("100.00"))
        override = _approved(action="void", object_type="invoice", object_id=invoice.pk)
        _paid_by(invoice, "30.00", status="pending")
        for status, amount in (("void", "50.00"), ("open", "25.00")):
            note = CreditNote.objects.create(
                number=f"CN-{status}",
                customer=invoice.customer,
                issue_date=date(2026, 4, 1),
                currency="GBP",
                total=Decimal(amount),
                status=status,
                source_connection=invoice.source_connection,
            )
            CreditAllocation.objects.create(credit_note=note, invoice=invoice, amount=Decimal(amount))

        _reverted(override)

        invoice.refresh_from_db()
        assert (invoice.status, invoice.amount_due) == ("partially_paid", Decimal("75.00"))

    def test_a_voided_draft_goes_back_to_draft(self):
        invoice = InvoiceFactory(status="draft")
        override = _approved(action="void", object_type="invoice", object_id=invoice.pk)

        _reverted(override)

        assert Invoice.objects.get(pk=invoice.pk).status == "draft"

    def test_a_revert_is_refused_once_the_source_changed_the_status_again(self):
        invoice = InvoiceFactory()
        override = _approved(action="void", object_type="invoice", object_id=invoice.pk)
        Invoice.objects.filter(pk=invoice.pk).update(status="deleted")

        with pytest.raises(workflow.WorkflowError, match="is now deleted, not void") as refused:
            workflow.override_revert(override, by=finance(), reason="undo")

        assert refused.value.code == "stale"

    def test_a_payment_voided_by_hand_gets_its_status_back(self):
        invoice = InvoiceFactory()
        payment = _paid_by(invoice, "20.00")
        override = _approved(action="void", object_type="payment", object_id=payment.pk)
        assert Payment.objects.get(pk=payment.pk).status == "void"

        _reverted(override)

        assert Payment.objects.get(pk=payment.pk).status == "completed"


# --- fields that other values follow --------------------------------------------------------------------
@pytest.mark.django_db
class TestDependentValues:
    def test_a_currency_whose_minor_unit_the_amounts_do_not_fit_is_refused_at_proposal(self):
        invoice = InvoiceFactory(total=Decimal("120.50"), amount_due=Decimal("120.50"))

        with pytest.raises(workflow.WorkflowError, match="JPY has 0 decimal places") as refused:
            workflow.override_propose(
                by=finance(),
                action="set_field",
                reason="x",
                object_type="invoice",
                object_id=invoice.pk,
                field_name="currency",
                after_value="JPY",
            )
        assert "120.50" in refused.value.message and "total" in refused.value.message

    def test_a_currency_change_is_checked_again_when_applied(self):
        invoice = InvoiceFactory(total=Decimal("120.00"), amount_due=Decimal("120.00"))
        InvoiceLineFactory(
            invoice=invoice,
            line_number=1,
            quantity=Decimal("0.5"),
            unit_price=Decimal("1.5"),
            total=Decimal("0.75"),
        )
        with pytest.raises(CorrectionError, match=r"line 1 total 0\.75") as refused:
            corrections.document_field_set(
                object_type="invoice",
                object_id=invoice.pk,
                field_name="currency",
                value="JPY",
                by=finance(),
                reason="x",
            )
        assert refused.value.field == "currency"
        invoice.refresh_from_db()
        assert (invoice.currency, invoice.row_version) == ("GBP", 1)

    def test_a_currency_the_amounts_fit_is_set(self):
        invoice = InvoiceFactory(total=Decimal("120.00"), amount_due=Decimal("120.00"))
        InvoiceLineFactory(invoice=invoice, line_number=1)
        corrections.document_field_set(
            object_type="invoice",
            object_id=invoice.pk,
            field_name="currency",
            value="jpy",
            by=None,
            reason="x",
        )
        assert Invoice.objects.get(pk=invoice.pk).currency == "JPY"

    @pytest.mark.parametrize(
        ("status", "paid", "total", "expected"),
        [
            ("paid", "100.00", "150.00", ("partially_paid", "50.00", False)),
            ("open", "0", "80.00", ("open", "80.00", False)),
            ("partially_paid", "60.00", "60.00", ("paid", "0", True)),
            ("void", "0", "80.00", ("void", "80.00", False)),
        ],
    )
    def test_a_new_total_keeps_status_and_amount_due_in_step(self, status, paid, total, expected):
        invoice = InvoiceFactory(
            status=status,
            total=Decimal("100.00"),
            amount_paid=Decimal(paid),
            amount_due=Decimal("100.00") - Decimal(paid),
            paid_on_date=date(2026, 3, 30) if status == "paid" else None,
        )
        corrections.document_field_set(
            object_type="invoice", object_id=invoice.pk, field_name="total", value=total, by=None, reason="x"
        )
        invoice.refresh_from_db()
        assert (invoice.status, invoice.amount_due, invoice.paid_on_date is not None) == (
            expected[0],
            Decimal(expected[1]),
            expected[2],
        )

    def test_amount_parsing_refuses_what_the_database_cannot_hold(self):
        from connectors.base import ValidationError
        from connectors.money import amount

        for raw in ("1e999999", 10**30, "1000000000000000", "-1000000000000000"):
            with pytest.raises(ValidationError, match="too large") as refused:
                amount(raw, "GBP", field="total")
            assert refused.value.field == "total"
        assert amount("999999999999999.99", "GBP", field="total") == Decimal("999999999999999.99")
        assert amount("999999999999999", "JPY", field="total") == Decimal("999999999999999")
