"""Rows of every model, for tests that need a populated database."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from connectors.models import Connection, HttpExchange
from reconciliation.models import Override, ReconciliationException, Tag
from sandbox.models import SandboxFault, SandboxHit, SandboxRecord
from sync.models import (
    Binding,
    CreditAllocation,
    CreditNote,
    CreditNoteLine,
    Customer,
    Invoice,
    InvoiceLine,
    MappingRow,
    MappingSet,
    Payment,
    PaymentAllocation,
    SyncAttempt,
    SyncJob,
    SyncProfile,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = True
    password = factory.django.Password("pw")


class ConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connection

    name = factory.Sequence(lambda n: f"Connection {n}")
    platform = "csv"


class SyncJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncJob

    kind = "pull"
    connection = factory.SubFactory(ConnectionFactory)


class SyncAttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncAttempt

    job = factory.SubFactory(SyncJobFactory)
    number = 1


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.Sequence(lambda n: f"c{n}@example.com")


class InvoiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invoice

    number = factory.Sequence(lambda n: f"INV-{n:05d}")
    customer = factory.SubFactory(CustomerFactory)
    source_connection = factory.SubFactory(ConnectionFactory)
    issue_date = date(2026, 3, 1)
    due_date = date(2026, 3, 31)
    currency = "GBP"
    subtotal = Decimal("100.00")
    tax_total = Decimal("20.00")
    total = Decimal("120.00")
    lines_total = Decimal("120.00")
    amount_due = Decimal("120.00")


class InvoiceLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InvoiceLine

    invoice = factory.SubFactory(InvoiceFactory)
    line_number = factory.Sequence(lambda n: n + 1)
    description = "Olive oil 5L"
    quantity = Decimal(2)
    unit_price = Decimal(50)
    tax_rate = Decimal(20)
    subtotal = Decimal(100)
    tax_amount = Decimal(20)
    total = Decimal(120)


def populate(count: int) -> None:
    """`count` rows of every model, each with its related rows (what list pages display)."""
    user = UserFactory()
    other = UserFactory()
    tag = Tag.objects.get_or_create(name="urgent")[0]
    for index in range(count):
        connection = ConnectionFactory()
        invoice = InvoiceFactory(source_connection=connection)
        InvoiceLineFactory(invoice=invoice, line_number=1)
        payment = Payment.objects.create(
            reference=f"PAY-{index}-{invoice.pk}",
            customer=invoice.customer,
            transaction_date=date(2026, 3, 5),
            currency="GBP",
            amount=Decimal("120.00"),
            source_connection=connection,
        )
        PaymentAllocation.objects.create(payment=payment, invoice=invoice, amount=Decimal("120.00"))
        note = CreditNote.objects.create(
            number=f"CN-{invoice.pk}",
            customer=invoice.customer,
            issue_date=date(2026, 3, 6),
            currency="GBP",
            original_invoice=invoice,
            total=Decimal(12),
        )
        CreditNoteLine.objects.create(
            credit_note=note, description="Damaged", quantity=1, unit_price=10, tax_amount=2, total=12
        )
        CreditAllocation.objects.create(credit_note=note, invoice=invoice, amount=Decimal(12))
        Binding.objects.create(
            connection=connection, object_type="invoice", object_id=invoice.pk, external_id=invoice.number
        )
        mapping = MappingSet.objects.create(name=f"Mapping {invoice.pk}", destination=connection)
        MappingRow.objects.create(
            mapping_set=mapping, kind="tax_code", source_value="20", target_value="TAX20"
        )
        profile = SyncProfile.objects.create(
            name=f"Profile {invoice.pk}", source=connection, destination=connection, mapping_set=mapping
        )
        job = SyncJob.objects.create(kind="import", connection=connection, profile=profile)
        attempt = SyncAttempt.objects.create(job=job, number=1)
        HttpExchange.objects.create(
            connection=connection, attempt=attempt, method="GET", url="https://api.example.com/x", status=200
        )
        SandboxRecord.objects.create(
            platform="xero", account="t", kind="invoice", record_id=str(invoice.pk), updated_at=timezone.now()
        )
        SandboxFault.objects.create(platform="xero", kind="latency", delay_ms=index)
        SandboxHit.objects.create(platform="xero", method="GET", path="x", status=200, at=0)
        exception = ReconciliationException.objects.create(
            kind="invalid_input",
            fingerprint=f"fp-{invoice.pk}",
            title=f"Invoice {invoice.number} rejected",
            connection=connection,
            job=job,
            assignee=user,
            document_number=invoice.number,
            currency="GBP",
            amount_at_risk=Decimal(1),
        )
        exception.tags.add(tag)
        Override.objects.create(
            exception=exception,
            action="mark_paid",
            reason="paid by bank transfer",
            proposed_by=user,
            decided_by=other,
            expires_at=timezone.now() + timedelta(days=3),
        )
