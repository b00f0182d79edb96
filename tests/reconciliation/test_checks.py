"""The reconciliation run: findings become exceptions with stable fingerprints, re-runs update them,
clean re-checks resolve them, overrides and ignored states are respected, and it runs as a job, on a
schedule and from the command line."""

from __future__ import annotations

import sys
import types
from datetime import date, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reconciliation import checks, rules
from reconciliation.checks import reconcile
from reconciliation.models import Override, ReconciliationException
from reconciliation.services import exception_fingerprint, exception_record, recheck, reconcile_enqueue
from sync import jobs, snapshots
from sync.models import Binding, Invoice, Payment, PaymentAllocation, PushOperation, SyncJob, SyncProfile
from tests.factories import ConnectionFactory, InvoiceFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.RECONCILIATION_MISSING_AFTER_MINUTES = 0
    settings.BASE_CURRENCY = "GBP"


@pytest.fixture(autouse=True)
def mirror(monkeypatch):
    """A stand-in for sync.mirror: records what it was asked to re-read, reports `duplicates`."""
    fake = types.ModuleType("sync.mirror")
    fake.calls = []
    fake.duplicates = []
    fake.error = None

    def copies_refresh(connection, object_types=None, *, job=None, heartbeat=None, full=False):
        fake.calls.append((connection.pk, tuple(object_types or ()), full))
        if fake.error is not None:
            raise fake.error
        return types.SimpleNamespace(duplicates=list(fake.duplicates), skipped_types=[], failed=0)

    fake.copies_refresh = copies_refresh
    monkeypatch.setitem(sys.modules, "sync.mirror", fake)
    return fake


@pytest.fixture
def rung(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(jobs, "_ring", calls.append)
    return calls


@pytest.fixture
def world():
    source = ConnectionFactory(name="Shop", platform="csv")
    ledger = ConnectionFactory(name="Ledger", platform="csv")
    profile = SyncProfile.objects.create(
        name="Shop to ledger",
        source=source,
        destination=ledger,
        object_types=["customer", "invoice", "payment", "credit_note"],
    )
    return types.SimpleNamespace(source=source, ledger=ledger, profile=profile)


def bound_invoice(world, destination=None, *, bind=True, **copy_values) -> Invoice:
    """An invoice from the world's source with its origin binding and, unless `bind` is False, a copy on
    `destination` (the ledger) whose snapshot is the invoice's own values with `copy_values` on top."""
    invoice = InvoiceFactory(source_connection=world.source)
    Binding.objects.create(
        connection=world.source,
        object_type="invoice",
        object_id=invoice.pk,
        external_id=f"s{invoice.pk}",
        is_origin=True,
    )
    if bind:
        Binding.objects.create(
            connection=destination or world.ledger,
            object_type="invoice",
            object_id=invoice.pk,
            external_id=f"d{invoice.pk}",
            snapshot={**snapshots.invoice_snapshot(invoice), **copy_values},
        )
    return invoice


def set_copy(invoice, destination=None, **values) -> None:
    binding = Binding.objects.get(
        object_type="invoice",
        object_id=invoice.pk,
        is_origin=False,
        **({"connection": destination} if destination else {}),
    )
    binding.snapshot = {**snapshots.invoice_snapshot(invoice), **values}
    binding.save()


def open_exceptions(**filters):
    return ReconciliationException.objects.filter(state__in=ReconciliationException.OPEN_STATES, **filters)


# --- findings become exceptions -----------------------------------------------------------------------
def test_findings_become_exceptions_with_amounts_details_and_a_stable_fingerprint(world, mirror):
    clean = bound_invoice(world)
    wrong = bound_invoice(world, total="110.00")

    report = reconcile()

    assert (report.checked, report.found, report.opened) == (2, 1, 1)
    exception = ReconciliationException.objects.get()
    assert exception.kind == "amount_mismatch" and exception.state == "open"
    assert (exception.object_type, exception.object_id, exception.connection) == (
        "invoice",
        wrong.pk,
        world.ledger,
    )
    assert exception.amount_at_risk == Decimal("10.00") and exception.amount_at_risk_base == Decimal("10.00")
    assert exception.currency == "GBP" and exception.document_number == wrong.number
    assert exception.external_id == f"d{wrong.pk}"
    assert exception.details["fields"]["total"] == {"canonical": "120.00", "copies": {"Ledger": "110.00"}}
    assert exception.fingerprint == exception_fingerprint(
        "amount_mismatch", "invoice", wrong.pk, world.ledger.pk
    )
    assert exception.history.get().history_change_reason == "found by reconciliation"
    assert not ReconciliationException.objects.filter(object_id=clean.pk).exists()
    assert mirror.calls == [(world.ledger.pk, ("invoice", "credit_note", "payment"), False)]


def test_a_document_in_a_foreign_currency_carries_its_amount_at_risk_in_the_base_currency(world):
    invoice = bound_invoice(world, tax_total="26.00")
    Invoice.objects.filter(pk=invoice.pk).update(currency="USD", exchange_rate=Decimal("0.8"))
    set_copy(Invoice.objects.get(pk=invoice.pk), tax_total="26.00")

    reconcile()

    exception = ReconciliationException.objects.get(kind="tax_mismatch")
    assert (exception.currency, exception.amount_at_risk, exception.amount_at_risk_base) == (
        "USD",
        Decimal("6.0000"),
        Decimal("4.8000"),
    )


def test_missing_in_the_destination_a_profile_sends_to(world, settings):
    invoice = bound_invoice(world, bind=False)
    InvoiceFactory(source_connection=world.source, status="void")  # void and never sent: owed nowhere

    reconcile()

    exception = ReconciliationException.objects.get()
    assert (exception.kind, exception.object_id, exception.connection) == (
        "missing_in_destination",
        invoice.pk,
        world.ledger,
    )
    assert exception.severity == "high" and exception.amount_at_risk == Decimal("120.00")


def test_a_document_younger_than_the_grace_period_or_before_the_cut_over_is_not_missing(world, settings):
    settings.RECONCILIATION_MISSING_AFTER_MINUTES = 60
    bound_invoice(world, bind=False)
    settings_free = bound_invoice(world, bind=False)
    Invoice.objects.filter(pk=settings_free.pk).update(created_at=timezone.now() - timedelta(hours=2))
    world.profile.cutover_date = date(2026, 4, 1)  # the factory's invoices are from March
    world.profile.save()

    assert reconcile().found == 0

    world.profile.cutover_date = None
    world.profile.save()
    reconcile()
    assert list(ReconciliationException.objects.values_list("object_id", flat=True)) == [settings_free.pk]


# --- re-runs ------------------------------------------------------------------------------------------
def test_a_re_run_updates_the_same_exception_rather_than_opening_a_twin(world):
    invoice = bound_invoice(world, total="110.00")
    reconcile()
    second = reconcile()

    exception = ReconciliationException.objects.get()
    assert (second.opened, second.updated) == (0, 1)
    assert exception.occurrences == 2
    assert exception.history.count() == 1  # seen again, nothing new to show: no history row per run

    set_copy(invoice, total="100.00")
    reconcile()

    exception.refresh_from_db()
    assert ReconciliationException.objects.count() == 1
    assert exception.amount_at_risk == Decimal("20.0000") and exception.occurrences == 3
    assert exception.history.first().history_change_reason == "seen again by reconciliation"


def test_a_clean_re_check_resolves_by_system_with_a_reason(world):
    invoice = bound_invoice(world, status="paid", amount_due="0.00", amount_paid="120.00")
    reconcile()
    assert open_exceptions(kind="status_mismatch").count() == 1

    set_copy(invoice)
    report = reconcile()

    exception = ReconciliationException.objects.get()
    assert report.resolved == 1
    assert exception.state == "resolved" and exception.resolved_by_system and exception.resolved_at
    assert exception.history.first().history_change_reason == "resolved by reconciliation: no longer found"


def test_a_resolved_finding_that_comes_back_reopens(world):
    invoice = bound_invoice(world, total="110.00")
    reconcile()
    set_copy(invoice)
    reconcile()
    set_copy(invoice, total="110.00")

    report = reconcile()

    exception = ReconciliationException.objects.get()
    assert report.reopened == 1 and exception.state == "open" and not exception.resolved_by_system
    assert exception.history.first().history_change_reason == "found again by reconciliation"


def test_an_ignored_exception_stays_ignored(world):
    invoice = bound_invoice(world, total="110.00")
    reconcile()
    ReconciliationException.objects.update(state="ignored")

    reconcile()
    set_copy(invoice)
    reconcile()

    assert ReconciliationException.objects.get().state == "ignored"


def test_a_copy_whose_values_became_unknown_does_not_resolve_what_was_found_on_it(world):
    invoice = bound_invoice(world, total="110.00")
    reconcile()
    Binding.objects.filter(object_id=invoice.pk, connection=world.ledger).update(snapshot={})

    reconcile()

    assert open_exceptions(kind="amount_mismatch").count() == 1


# --- overrides ----------------------------------------------------------------------------------------
def _accept(exception, limit: str) -> Override:
    proposer, approver = UserFactory(), UserFactory()
    exception.state = "resolved"
    exception.save()
    return Override.objects.create(
        exception=exception,
        action="accept_difference",
        limit_amount=Decimal(limit),
        reason="rounding in the ledger",
        state="applied",
        proposed_by=proposer,
        decided_by=approver,
        applied_at=timezone.now(),
        expires_at=timezone.now() + timedelta(days=3),
    )


def test_an_accepted_difference_within_its_limit_stays_resolved_and_above_it_reopens(world):
    invoice = bound_invoice(world, total="119.00")
    reconcile()
    exception = ReconciliationException.objects.get()
    override = _accept(exception, "2.00")

    within = reconcile()
    exception.refresh_from_db()
    assert (within.accepted, within.reopened, exception.state) == (1, 0, "resolved")

    set_copy(invoice, total="115.00")
    above = reconcile()

    exception.refresh_from_db()
    assert (above.accepted, above.reopened, exception.state) == (0, 1, "open")
    assert f"above the difference accepted by override #{override.pk}" in (
        exception.history.first().history_change_reason
    )


def test_an_open_exception_covered_by_an_applied_override_is_resolved(world):
    bound_invoice(world, total="119.50")
    reconcile()
    exception = ReconciliationException.objects.get()
    override = _accept(exception, "1.00")
    ReconciliationException.objects.filter(pk=exception.pk).update(state="open")

    reconcile()

    exception.refresh_from_db()
    assert exception.state == "resolved" and exception.resolved_by_system
    assert exception.history.first().history_change_reason == (
        f"within the difference accepted by override #{override.pk}"
    )


# --- what the run owns --------------------------------------------------------------------------------
def test_only_the_kinds_the_run_produces_are_resolved(world):
    invoice = bound_invoice(world)
    for kind in ("mapping_missing", "sync_failure", "duplicate"):
        exception_record(
            kind=kind,
            fingerprint=exception_fingerprint(kind, world.profile.pk, "invoice", invoice.pk),
            title=f"{kind} from the sync engine",
            connection=world.ledger,
            object_type="invoice",
            object_id=invoice.pk,
        )

    report = reconcile()

    assert report.resolved == 0
    assert open_exceptions().count() == 3


def test_the_sync_engine_s_unmatched_payment_is_taken_over_not_twinned_then_resolved(world):
    payment = Payment.objects.create(
        reference="PAY-1",
        source_connection=world.source,
        transaction_date=date(2026, 3, 5),
        currency="GBP",
        amount=Decimal("120.00"),
    )
    pushed, _ = exception_record(
        kind="unmatched_payment",
        fingerprint=exception_fingerprint("unmatched_payment", world.profile.pk, "payment", payment.pk),
        title="Payment PAY-1 matches no invoice; not pushed",
        connection=world.source,
        object_type="payment",
        object_id=payment.pk,
    )

    reconcile()
    assert ReconciliationException.objects.count() == 1  # no missing_in_destination: unmatched says why
    pushed.refresh_from_db()
    assert pushed.occurrences == 2 and pushed.details["rule"] == "unmatched_payment"

    invoice = bound_invoice(world)
    PaymentAllocation.objects.create(payment=payment, invoice=invoice, amount=Decimal("120.00"))
    reconcile()

    pushed.refresh_from_db()
    assert pushed.state == "resolved"
    assert open_exceptions(kind="missing_in_destination", object_id=payment.pk).count() == 1


def test_a_payment_applied_to_no_invoice_in_the_ledger(world):
    invoice = bound_invoice(world)
    payment = Payment.objects.create(
        reference="PAY-2",
        source_connection=world.source,
        transaction_date=date(2026, 3, 5),
        currency="GBP",
        amount=Decimal("120.00"),
    )
    PaymentAllocation.objects.create(payment=payment, invoice=invoice, amount=Decimal("120.00"))
    payment.refresh_from_db()
    Binding.objects.create(
        connection=world.ledger,
        object_type="payment",
        object_id=payment.pk,
        external_id="P1",
        snapshot=snapshots.payment_snapshot(payment, []),
    )

    reconcile(object_types=["payment"])

    exception = ReconciliationException.objects.get()
    assert (exception.kind, exception.connection, exception.object_id) == (
        "unmatched_payment",
        world.ledger,
        payment.pk,
    )


def test_two_documents_with_one_number_from_one_source(world):
    first = bound_invoice(world)
    second = bound_invoice(world)
    Invoice.objects.filter(pk=second.pk).update(number=first.number)
    set_copy(Invoice.objects.get(pk=second.pk))

    reconcile()

    exception = ReconciliationException.objects.get()
    assert (exception.kind, exception.object_id, exception.connection) == (
        "duplicate",
        second.pk,
        world.source,
    )
    assert exception.details["duplicate_of"] == [first.pk]


def _payment(world, reference: str, transaction_id: str, **values) -> Payment:
    payment = Payment.objects.create(
        reference=reference,
        processor_transaction_id=transaction_id,
        source_connection=world.source,
        transaction_date=date(2026, 3, 5),
        currency="GBP",
        amount=Decimal("120.00"),
        **values,
    )
    PaymentAllocation.objects.create(payment=payment, invoice=bound_invoice(world), amount=Decimal("120.00"))
    Binding.objects.create(
        connection=world.ledger,
        object_type="payment",
        object_id=payment.pk,
        external_id=f"P{payment.pk}",
        snapshot={},
    )
    return payment


def test_one_processor_transaction_twice_from_one_source_is_a_duplicate_payment(world):
    first = _payment(world, "pi_1", "ch_1")
    second = _payment(world, "pi_1", "ch_1")
    _payment(world, "pi_1", "ch_2")  # a retried charge of the same payment intent: another payment

    reconcile(object_types=["payment"])

    exception = ReconciliationException.objects.get()
    assert (exception.kind, exception.object_id, exception.connection) == (
        "duplicate",
        second.pk,
        world.source,
    )
    assert exception.details["duplicate_of"] == [first.pk]
    assert exception.details["processor_transaction_id"] == "ch_1"
    assert "transaction ch_1 came twice from Shop" in exception.title

    Payment.objects.filter(pk=second.pk).update(status="void")  # the duplicate voided at the source
    reconcile(object_types=["payment"])
    assert open_exceptions().count() == 0


def test_payments_without_a_processor_transaction_id_are_never_duplicates_of_each_other(world):
    _payment(world, "cheque 1", "")
    _payment(world, "cheque 1", "")

    assert reconcile(object_types=["payment"]).found == 0


def test_missing_names_the_blocked_outbox_operation(world):
    invoice = bound_invoice(world, bind=False)
    PushOperation.objects.create(
        profile=world.profile,
        connection=world.ledger,
        object_type="invoice",
        object_id=invoice.pk,
        document_version=1,
        operation="create",
        idempotency_key="k-old",
        state="failed",
        error="an old failure, since retried",
    )
    op = PushOperation.objects.create(
        profile=world.profile,
        connection=world.ledger,
        object_type="invoice",
        object_id=invoice.pk,
        document_version=1,
        operation="create",
        idempotency_key="k-now",
        state="uncertain",
        error="timeout after the request left",
    )

    reconcile()

    exception = open_exceptions(kind="missing_in_destination").get()
    assert exception.details["held_by"] == [
        {"operation": op.pk, "state": "uncertain", "text": "timeout after the request left"}
    ]
    assert f"outbox operation #{op.pk} uncertain: timeout after the request left" in exception.message
    assert f"held back by outbox operation #{op.pk} uncertain" in exception.title


def test_missing_names_the_open_mapping_exception_and_forgets_it_once_resolved(world):
    invoice = bound_invoice(world, bind=False)
    held, _ = exception_record(
        kind="mapping_missing",
        fingerprint=exception_fingerprint("mapping_missing", world.profile.pk, "invoice", invoice.pk),
        title="No tax code mapped for rate 7.7",
        connection=world.ledger,
        object_type="invoice",
        object_id=invoice.pk,
    )
    succeeded = bound_invoice(world, bind=False)
    PushOperation.objects.create(
        profile=world.profile,
        connection=world.ledger,
        object_type="invoice",
        object_id=succeeded.pk,
        document_version=1,
        operation="create",
        idempotency_key="k-gone",
        state="succeeded",
    )

    reconcile()

    exception = open_exceptions(kind="missing_in_destination", object_id=invoice.pk).get()
    assert exception.details["held_by"] == [
        {"exception": held.pk, "kind": "mapping_missing", "text": "No tax code mapped for rate 7.7"}
    ]
    assert f"mapping missing (exception #{held.pk})" in exception.message
    other = open_exceptions(kind="missing_in_destination", object_id=succeeded.pk).get()
    assert "held_by" not in other.details  # written and deleted since: nothing holds it back

    held.state = "resolved"
    held.save()
    reconcile()
    exception.refresh_from_db()
    assert "held_by" not in exception.details


def test_a_destination_record_duplicating_a_bound_copy_and_its_resolution_by_a_full_read(world, mirror):
    invoice = bound_invoice(world)
    mirror.duplicates = [
        types.SimpleNamespace(
            object_type="invoice",
            object_id=invoice.pk,
            external_id="X9",
            number=invoice.number,
            bound_external_id=f"d{invoice.pk}",
            snapshot={"total": "120.00"},
        )
    ]
    reconcile()
    exception = ReconciliationException.objects.get()
    assert (exception.kind, exception.connection) == ("duplicate", world.ledger)
    assert exception.details["duplicate"]["external_id"] == "X9"

    mirror.duplicates = []
    reconcile()  # an incremental read says nothing about records that did not change
    assert open_exceptions().count() == 1

    reconcile(full=True)
    assert open_exceptions().count() == 0
    assert mirror.calls[-1][2] is True


def test_a_destination_that_cannot_be_read_is_compared_as_last_known(world, mirror):
    bound_invoice(world, total="110.00")
    mirror.error = RuntimeError("ledger is down")

    report = reconcile()

    assert report.opened == 1
    assert any("Ledger: copies not re-read (RuntimeError: ledger is down)" in m for m in report.messages)


# --- scope --------------------------------------------------------------------------------------------
def test_a_profile_run_checks_only_its_source_and_destination(world):
    other = ConnectionFactory(name="Second ledger", platform="csv")
    invoice = bound_invoice(world, total="110.00")
    Binding.objects.create(
        connection=other,
        object_type="invoice",
        object_id=invoice.pk,
        external_id="o1",
        snapshot={**snapshots.invoice_snapshot(invoice), "tax_total": "1.00"},
    )
    elsewhere = InvoiceFactory()  # another source, no profile
    Binding.objects.create(
        connection=other,
        object_type="invoice",
        object_id=elsewhere.pk,
        external_id="o2",
        snapshot={**snapshots.invoice_snapshot(elsewhere), "total": "1.00"},
    )

    report = reconcile(profile=world.profile)

    assert report.checked == 1
    assert list(ReconciliationException.objects.values_list("kind", "connection__name")) == [
        ("amount_mismatch", "Ledger")
    ]
    reconcile()  # everything: every copy on every connection
    assert ReconciliationException.objects.count() == 3

    set_copy(invoice, destination=world.ledger)
    Binding.objects.filter(connection=other, object_id=invoice.pk).update(
        snapshot=snapshots.invoice_snapshot(invoice)
    )
    Binding.objects.filter(connection=other, object_id=elsewhere.pk).update(snapshot={})
    reconcile(profile=world.profile)
    # the profile's run resolves its own copy's finding only
    assert set(open_exceptions().values_list("kind", "connection__name", "object_id")) == {
        ("tax_mismatch", "Second ledger", invoice.pk),
        ("amount_mismatch", "Second ledger", elsewhere.pk),
    }


def test_a_one_document_re_check_looks_at_that_document_alone(world):
    first = bound_invoice(world, total="110.00")
    second = bound_invoice(world, total="110.00")

    report = reconcile(document=("invoice", first.pk))

    assert report.checked == 1
    assert list(ReconciliationException.objects.values_list("object_id", flat=True)) == [first.pk]
    assert second.pk


def test_bad_scope_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="object_types: \\['customer'\\]"):
        reconcile(object_types=["customer"])
    with pytest.raises(ValueError, match="document: no invoice with id 999"):
        reconcile(document=("invoice", 999))


def test_one_document_that_cannot_be_checked_never_sinks_the_page(world, monkeypatch):
    bad = bound_invoice(world, total="110.00")
    good = bound_invoice(world, total="110.00")
    real = rules.document_check

    def broken(doc, *args, **kwargs):
        if doc.object_id == bad.pk:
            raise ArithmeticError("boom")
        return real(doc, *args, **kwargs)

    monkeypatch.setattr(rules, "document_check", broken)
    report = reconcile()

    assert (report.checked, report.failed, report.opened) == (1, 1, 1)
    assert ReconciliationException.objects.get().object_id == good.pk
    assert f"invoice {bad.pk}: not checked (ArithmeticError: boom)" in report.messages


def test_queries_per_page_do_not_grow_with_the_number_of_documents(world, settings):
    settings.RECONCILIATION_PAGE_SIZE = 500

    def queries(count: int) -> int:
        ReconciliationException.objects.all().delete()
        for _ in range(count):
            bound_invoice(world, total="110.00")
        reconcile()  # the first run opens; the second one is measured (finds, updates)
        with CaptureQueriesContext(db_connection) as captured:
            reconcile(object_types=["invoice"])
        return len(captured)

    assert queries(3) == queries(30)


def test_pages_are_keyed_on_id_and_cover_every_document(world, settings):
    settings.RECONCILIATION_PAGE_SIZE = 2
    for _ in range(5):
        bound_invoice(world, total="110.00")

    report = reconcile()

    assert (report.checked, report.opened) == (5, 5)


# --- jobs, schedule, command --------------------------------------------------------------------------
def test_a_profile_job_runs_through_job_run_and_counts(world, rung):
    bound_invoice(world, total="110.00")
    bound_invoice(world)

    job = reconcile_enqueue(world.profile, user=UserFactory())

    assert jobs.job_run(job.pk) == "succeeded"
    job.refresh_from_db()
    assert (job.kind, job.seen, job.created, job.progress_total, job.progress_done) == (
        "reconcile",
        2,
        1,
        2,
        2,
    )
    assert ReconciliationException.objects.get().job == job
    assert jobs.job_run(job.pk) == "not claimed"  # rung twice: runs once


def test_a_job_of_everything_needs_no_profile(world, rung):
    bound_invoice(world, total="110.00")

    job = reconcile_enqueue()

    assert (job.profile, job.connection) == (None, None)
    assert jobs.job_run(job.pk) == "succeeded"
    assert ReconciliationException.objects.count() == 1


def test_recheck_runs_one_document_again_and_resolves_it_when_clean(world, rung):
    invoice = bound_invoice(world, total="110.00")
    other = bound_invoice(world, total="110.00")
    reconcile()
    exception = ReconciliationException.objects.get(object_id=invoice.pk)
    set_copy(invoice)
    set_copy(other)

    job = recheck(exception, user=UserFactory())

    assert job.params == {"document": ["invoice", invoice.pk]}
    assert jobs.job_run(job.pk) == "succeeded"
    exception.refresh_from_db()
    assert exception.state == "resolved"
    assert open_exceptions(object_id=other.pk).count() == 1  # not re-checked


def test_recheck_refuses_an_exception_without_a_document():
    exception, _ = exception_record(kind="sync_failure", fingerprint="x", title="no document")

    with pytest.raises(ValueError, match="names no document"):
        recheck(exception)


def test_a_failing_document_leaves_the_job_partial(world, rung, monkeypatch):
    bound_invoice(world, total="110.00")
    monkeypatch.setattr(rules, "document_check", lambda *a, **k: 1 / 0)

    job = reconcile_enqueue(world.profile)

    assert jobs.job_run(job.pk) == "partial"
    job.refresh_from_db()
    assert job.failed == 1 and "not checked (ZeroDivisionError" in job.error


def test_the_schedule_reconciles_everything_hourly_unless_disabled(settings, rung):
    from reconciliation.services import reconcile_scheduled
    from sync.schedules import declared

    item = next(d for d in declared() if d.name == "ledgerlink:reconcile everything")
    assert (item.func, item.schedule_type, item.minutes) == (
        "reconciliation.services.reconcile_scheduled",
        "I",
        60,
    )
    first = reconcile_scheduled()
    assert first is not None and reconcile_scheduled() is None  # never piles up behind itself
    assert SyncJob.objects.get(pk=first).trigger == "schedule"

    settings.RECONCILIATION_SCHEDULE_MINUTES = 0
    assert not any(d.name == "ledgerlink:reconcile everything" for d in declared())


def test_the_command_runs_inline_by_default(world):
    bound_invoice(world, total="110.00")
    out = StringIO()

    call_command("reconcile", "--profile", str(world.profile.pk), stdout=out, stderr=StringIO())

    assert "checked=1 found=1 opened=1" in out.getvalue()
    assert ReconciliationException.objects.count() == 1


def test_the_command_enqueues_a_job_when_asked(world, rung):
    out = StringIO()

    call_command("reconcile", "--enqueue", "--document", "invoice:1", stdout=out)

    job = SyncJob.objects.get(kind="reconcile")
    assert out.getvalue().strip() == f"queued job #{job.pk}"
    assert (job.trigger, job.params) == ("command", {"document": ["invoice", 1]})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "999"], "--profile: no sync profile with id 999"),
        (["--document", "customer:1"], "--document 'customer:1'"),
        (["--document", "invoice:5"], "document: no invoice with id 5"),
    ],
)
def test_the_command_names_a_bad_argument(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("reconcile", *args, stdout=StringIO(), stderr=StringIO())


def test_the_report_names_job_counts():
    report = checks.ReconcileReport(checked=3, opened=2)

    assert (report.seen, report.created, report.skipped) == (3, 2, 0)


def test_reconcile_now_on_a_profile_in_the_admin_queues_a_job(admin_client, world, rung):
    from django.contrib.messages import get_messages
    from django.urls import reverse

    response = admin_client.post(
        reverse("admin:sync_syncprofile_changelist"),
        {"action": "reconcile_now", "_selected_action": [world.profile.pk]},
        follow=True,
    )

    job = SyncJob.objects.get(kind="reconcile")
    assert (job.profile, job.created_by.username) == (world.profile, "admin")
    assert f"Queued: 1 (reconciliation of Shop to ledger as job #{job.pk})" in [
        str(message) for message in get_messages(response.wsgi_request)
    ]
