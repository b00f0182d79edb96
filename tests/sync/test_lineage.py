"""The lookup: any id or number -> every matching document and its whole lineage, in bounded queries."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from connectors.models import HttpExchange
from reconciliation.models import ReconciliationException
from sync import roles
from sync.models import Binding, Payment, PushOperation, SyncAttempt, SyncJob, SyncProfile
from sync.selectors import document_lineage
from tests.factories import ConnectionFactory, CustomerFactory, InvoiceFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    """A source, a destination and a profile between them."""
    source = ConnectionFactory(name="Shop", platform="stripe")
    destination = ConnectionFactory(name="Books", platform="quickbooks")
    profile = SyncProfile.objects.create(name="Shop to books", source=source, destination=destination)
    return source, destination, profile


def synced_invoice(world, index: int, number: str | None = None):
    """An invoice pulled from the source, pushed to the destination, with an attempt and an open exception."""
    source, destination, profile = world
    invoice = InvoiceFactory(number=number or f"INV-{index}", source_connection=source, row_version=2)
    Binding.objects.create(
        connection=source,
        object_type="invoice",
        object_id=invoice.pk,
        external_id=f"in_src_{index}",
        is_origin=True,
        raw_payload={"id": f"in_src_{index}", "amount_due": 12000},
    )
    Binding.objects.create(
        connection=destination,
        object_type="invoice",
        object_id=invoice.pk,
        external_id=f"QB-{index}",
        external_number=f"BK-{index}",
        remote_version="3",
        document_version=1,
    )
    job = SyncJob.objects.create(kind="push", profile=profile, connection=destination)
    attempt = SyncAttempt.objects.create(job=job, number=1, outcome="succeeded")
    HttpExchange.objects.create(
        connection=destination, attempt=attempt, method="POST", url="https://qb.example/invoice", status=200
    )
    PushOperation.objects.create(
        profile=profile,
        connection=destination,
        object_type="invoice",
        object_id=invoice.pk,
        document_version=1,
        operation="create",
        idempotency_key=f"key-{index}-create",
        reference=f"BK-{index}",
        state="succeeded",
        attempts=1,
        external_id=f"QB-{index}",
        payload={"DocNumber": f"BK-{index}"},
        response={"Invoice": {"Id": f"QB-{index}"}},
        job=job,
    )
    ReconciliationException.objects.create(
        kind="amount_mismatch",
        fingerprint=f"fp-{index}",
        title=f"Amount differs on {invoice.number}",
        object_type="invoice",
        object_id=invoice.pk,
    )
    ReconciliationException.objects.create(
        kind="date_mismatch",
        fingerprint=f"fp-resolved-{index}",
        title=f"Old finding on {invoice.number}",
        object_type="invoice",
        object_id=invoice.pk,
        state="resolved",
    )
    return invoice


def test_lineage_found_by_source_id(world):
    invoice = synced_invoice(world, 1)

    [lineage] = document_lineage("in_src_1")

    assert lineage.document == invoice
    assert lineage.object_type == "invoice"
    assert lineage.source.external_id == "in_src_1"
    assert [b.external_id for b in lineage.destinations] == ["QB-1"]
    assert [op.idempotency_key for op in lineage.operations] == ["key-1-create"]
    assert [a.exchange_count for a in lineage.attempts] == [1]
    assert [e.title for e in lineage.exceptions] == ["Amount differs on INV-1"]  # open ones only


def test_lineage_found_by_destination_id_and_destination_number(world):
    invoice = synced_invoice(world, 1)
    synced_invoice(world, 2)

    assert [lineage.document for lineage in document_lineage("QB-1")] == [invoice]
    assert [lineage.document for lineage in document_lineage(" BK-1 ")] == [invoice]


def test_lineage_found_by_document_number(world):
    invoice = synced_invoice(world, 1)

    assert [lineage.document for lineage in document_lineage("INV-1")] == [invoice]


def test_payment_found_by_reference_and_processor_transaction_id(world):
    payment = Payment.objects.create(
        reference="PAY-9",
        processor_transaction_id="ch_3Px",
        customer=CustomerFactory(),
        transaction_date=date(2026, 3, 5),
        currency="GBP",
        amount=Decimal("10.00"),
    )

    assert [lineage.document for lineage in document_lineage("PAY-9")] == [payment]
    assert [lineage.document for lineage in document_lineage("ch_3Px")] == [payment]


def test_unknown_or_empty_query_finds_nothing(world):
    synced_invoice(world, 1)

    assert document_lineage("nope") == []
    assert document_lineage("   ") == []


def test_binding_whose_document_is_gone_is_still_shown(world):
    source, _, _ = world
    Binding.objects.create(
        connection=source, object_type="invoice", object_id=999_999, external_id="orphan", is_origin=True
    )

    [lineage] = document_lineage("orphan")

    assert lineage.document is None
    assert lineage.source.external_id == "orphan"


def _selector_queries(query: str) -> int:
    with CaptureQueriesContext(db_connection) as queries:
        lineages = document_lineage(query)
        for lineage in lineages:  # everything the page reads
            for binding in lineage.bindings:
                str(binding.connection)
            for op in lineage.operations:
                str(op.connection), str(op.job)
            str(lineage.document.customer), str(lineage.document.source_connection)
    return len(queries)


def test_selector_queries_do_not_grow_with_documents(world):
    synced_invoice(world, 0, number="DUP-1")
    one = _selector_queries("DUP-1")
    for index in range(1, 20):
        synced_invoice(world, index, number="DUP-1")
    assert len(document_lineage("DUP-1")) == 20
    assert _selector_queries("DUP-1") == one <= 8


# --- the page ---------------------------------------------------------------------------------------------


def lookup(client, query: str):
    return client.get(reverse("admin:sync_lookup"), {"q": query})


def test_lookup_page_shows_the_whole_lineage(admin_client, world):
    invoice = synced_invoice(world, 1)
    attempt = SyncAttempt.objects.get()

    page = lookup(admin_client, "in_src_1").content.decode()

    assert reverse("admin:sync_invoice_change", args=[invoice.pk]) in page
    assert "in_src_1" in page and "amount_due" in page  # source binding and its payload
    assert "QB-1" in page and "BK-1" in page  # destination id and number
    assert "behind (now v2)" in page  # written at version 1, the document is at 2
    assert "key-1-create" in page and "DocNumber" in page
    assert f"?attempt__id__exact={attempt.pk}" in page
    assert "Amount differs on INV-1" in page
    assert "Old finding" not in page


def test_lookup_page_without_a_match_says_so(admin_client, world):
    page = lookup(admin_client, "nothing-here").content.decode()

    assert 'id="lookup-empty"' in page


def test_lookup_page_lists_exceptions_that_name_the_query_but_no_document(admin_client, world):
    ReconciliationException.objects.create(
        kind="invalid_input", fingerprint="fp-row-7", title="Row 7 rejected", document_number="INV-404"
    )

    page = lookup(admin_client, "INV-404").content.decode()

    assert "Row 7 rejected" in page


def test_http_exchange_link_lists_the_attempts_requests(admin_client, world):
    synced_invoice(world, 1)
    synced_invoice(world, 2)
    attempt = SyncAttempt.objects.order_by("pk").first()

    response = admin_client.get(
        reverse("admin:connectors_httpexchange_changelist"), {"attempt__id__exact": attempt.pk}
    )

    assert response.status_code == 200
    assert list(response.context["cl"].queryset) == list(attempt.exchanges.all())


def test_lookup_page_queries_do_not_grow_with_documents(admin_client, world, django_assert_max_num_queries):
    synced_invoice(world, 0, number="DUP-1")
    with CaptureQueriesContext(db_connection) as one:
        assert lookup(admin_client, "DUP-1").status_code == 200
    for index in range(1, 20):
        synced_invoice(world, index, number="DUP-1")

    with django_assert_max_num_queries(len(one)):
        page = lookup(admin_client, "DUP-1").content.decode()

    assert page.count('class="ll-doc"') == 20


def member(group_name: str):
    user = UserFactory()
    user.groups.add(Group.objects.get(name=group_name))
    return user


@pytest.mark.parametrize("group_name", [roles.FINANCE_STAFF, roles.ACCOUNTANTS, roles.INTEGRATION_ADMINS])
def test_every_role_can_use_the_lookup(client, world, group_name):
    synced_invoice(world, 1)
    client.force_login(member(group_name))

    response = lookup(client, "QB-1")

    assert response.status_code == 200
    assert "key-1-create" in response.content.decode()


def test_staff_without_a_role_cannot_use_the_lookup(client):
    client.force_login(UserFactory())

    assert lookup(client, "QB-1").status_code == 403


def test_finance_reach_the_lookup_from_the_invoice_list(client):
    client.force_login(member(roles.FINANCE_STAFF))

    page = client.get(reverse("admin:sync_invoice_changelist")).content.decode()

    assert reverse("admin:sync_lookup") in page
