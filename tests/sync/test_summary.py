"""Daily-summary posting: one document per closed day and currency in the QuickBooks and Xero sandboxes,
over real HTTP, through the same outbox as single documents."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from connectors.base import AllocationRecord, CreditNoteRecord, InvoiceRecord, LineRecord, PaymentRecord
from reconciliation.models import ReconciliationException
from sync import push as pushing
from sync import summary
from sync.models import (
    Binding,
    Invoice,
    MappingRow,
    PushOperation,
    ReferenceData,
    SummaryMember,
    SummaryPosting,
    SyncProfile,
)
from sync.preview import profile_preview
from sync.services import records_write
from tests.sync import engine

DAY = date(2026, 10, 5)
NEXT_DAY = date(2026, 10, 6)
# what the destination calls its summary documents, and the field holding their number
DOCUMENTS = {
    "quickbooks": {
        "invoice": ("Invoice", "DocNumber", "TotalAmt"),
        "credit_note": ("CreditMemo", "DocNumber", "TotalAmt"),
    },
    "xero": {
        "invoice": ("invoice", "InvoiceNumber", "Total"),
        "credit_note": ("creditnote", "CreditNoteNumber", "Total"),
    },
}
# second revenue placement: QuickBooks books by item, Xero by account
SERVICE = {"quickbooks": ("item", "Services"), "xero": ("revenue_account", "260")}
CUSTOMER_OF = {
    "quickbooks": {"GBP": "Amy's Bird Sanctuary", "EUR": "Diego Rodriguez"},
    "xero": {"GBP": "Trattoria Bella", "EUR": "Café du Marché"},
}


def line(code: str, quantity: str, price: str, rate: str | None, currency: str = "GBP") -> LineRecord:
    subtotal = (Decimal(quantity) * Decimal(price)).quantize(Decimal("0.01"))
    tax = (subtotal * Decimal(rate or 0) / 100).quantize(Decimal("0.01"))
    return LineRecord(
        description=f"{code} x {quantity}",
        quantity=Decimal(quantity),
        unit_price=Decimal(price),
        subtotal=subtotal,
        tax_amount=tax,
        total=subtotal + tax,
        tax_rate=Decimal(rate) if rate is not None else None,
        item_code=code,
    )


def invoice(
    number: str, day: date, *lines: LineRecord, currency: str = "GBP", status: str = "open"
) -> InvoiceRecord:
    lines = tuple(replace(x, line_number=n) for n, x in enumerate(lines, start=1))
    subtotal = sum((x.subtotal for x in lines), Decimal(0))
    tax = sum((x.tax_amount for x in lines), Decimal(0))
    return InvoiceRecord(
        external_id=number,
        number=number,
        customer=engine.CUSTOMERS[len(number) % len(engine.CUSTOMERS)],
        issue_date=day,
        due_date=day + timedelta(days=30),
        currency=currency,
        status=status,
        lines=tuple(lines),
        subtotal=subtotal,
        tax_total=tax,
        total=subtotal + tax,
        amount_paid=Decimal(0),
        amount_due=subtotal + tax,
    )


def credit_note(number: str, day: date, *lines: LineRecord, currency: str = "GBP") -> CreditNoteRecord:
    lines = tuple(replace(x, line_number=n) for n, x in enumerate(lines, start=1))
    subtotal = sum((x.subtotal for x in lines), Decimal(0))
    tax = sum((x.tax_amount for x in lines), Decimal(0))
    return CreditNoteRecord(
        external_id=number,
        number=number,
        customer=engine.CUSTOMERS[0],
        issue_date=day,
        currency=currency,
        status="open",
        lines=tuple(lines),
        subtotal=subtotal,
        tax_total=tax,
        total=subtotal + tax,
        remaining_credit=subtotal + tax,
    )


def payment(reference: str, paid: InvoiceRecord, day: date, *, method: str = "card") -> PaymentRecord:
    return PaymentRecord(
        external_id=reference,
        reference=reference,
        customer=paid.customer,
        transaction_date=day,
        currency=paid.currency,
        amount=paid.total,
        allocations=(AllocationRecord(invoice_number=paid.number, amount=paid.total),),
        method=method,
    )


def summary_profile(
    platform: str, dest, source, *, object_types=("invoice",), customer: bool = True
) -> SyncProfile:
    profile = engine.mapped_profile(
        source,
        dest,
        object_types=object_types,
        prefix="LL-",
        posting_mode=SyncProfile.PostingMode.DAILY_SUMMARY,
    )
    kind, value = SERVICE[platform]
    if kind == "item":
        value = ReferenceData.objects.get(connection=dest, kind="item", name=value).code
    MappingRow.objects.create(
        mapping_set=profile.mapping_set, kind=kind, source_value="SVC", target_value=value
    )
    if platform == "quickbooks":
        # QuickBooks takes card money into Undeposited Funds unless told otherwise; map one method to a bank
        MappingRow.objects.create(
            mapping_set=profile.mapping_set,
            kind="payment_method",
            source_value="bank_transfer",
            target_value="3",
        )
    if customer:
        for currency, name in CUSTOMER_OF[platform].items():
            code = ReferenceData.objects.get(connection=dest, kind="customer", name=name).code
            source_value = "*summary*" if currency == "GBP" else f"*summary*:{currency}"
            MappingRow.objects.create(
                mapping_set=profile.mapping_set, kind="customer", source_value=source_value, target_value=code
            )
    return profile


def held(platform: str, object_type: str = "invoice") -> dict[str, list[dict]]:
    kind, number_field, _ = DOCUMENTS[platform][object_type]
    found: dict[str, list[dict]] = {}
    for record in engine.live_records(platform, kind):
        found.setdefault(record.get(number_field), []).append(record)
    return found


def members_total(numbers: list[str]) -> Decimal:
    return sum((i.total for i in Invoice.objects.filter(number__in=numbers)), Decimal(0))


# --- which day is closed ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("zone", "grace", "now", "closed"),
    [
        ("UTC", 60, datetime(2026, 11, 21, 0, 59, tzinfo=UTC), date(2026, 11, 19)),
        ("UTC", 60, datetime(2026, 11, 21, 1, 0, tzinfo=UTC), date(2026, 11, 20)),
        ("UTC", 0, datetime(2026, 11, 21, 0, 0, tzinfo=UTC), date(2026, 11, 20)),
        # 04:30 UTC is 23:30 the day before in New York: the 20th is still trading there
        ("America/New_York", 30, datetime(2026, 11, 21, 4, 30, tzinfo=UTC), date(2026, 11, 19)),
        ("America/New_York", 30, datetime(2026, 11, 21, 5, 30, tzinfo=UTC), date(2026, 11, 20)),
        ("Asia/Tokyo", 60, datetime(2026, 11, 20, 16, 0, tzinfo=UTC), date(2026, 11, 20)),
    ],
)
def test_a_day_closes_after_midnight_in_the_configured_time_zone_plus_the_grace_period(
    settings, zone, grace, now, closed
):
    settings.TIME_ZONE = zone
    settings.SYNC_SUMMARY_GRACE_MINUTES = grace

    assert summary.summary_last_closed_day(now) == closed


def test_the_summary_number_is_deterministic_and_carries_prefix_suffix_and_deposit_account():
    from sync.mapping import MappingTable

    table = MappingTable(number_prefix="LL-", number_suffix="/S")
    assert summary.summary_number("summary_invoice", DAY, "USD", "", table) == "LL-DS-2026-10-05-USD/S"
    assert (
        summary.summary_number("summary_payment", DAY, "EUR", "091", table) == "LL-DSP-2026-10-05-EUR-091/S"
    )


# --- over HTTP ----------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_a_day_becomes_one_invoice_per_currency_grouped_by_placement_and_tax_to_the_minor_unit(
    live_server, platform
):
    dest = engine.destination(platform, live_server.url)
    source = engine.ConnectionFactory(name="Shop export", platform="csv", role="source")
    gbp = [
        invoice("G-1", DAY, line("OIL-5L", "3", "12.35", "20"), line("SVC", "1", "45.55", "20")),
        invoice("G-2", DAY, line("OIL-5L", "1", "7.15", "20"), line("OIL-5L", "2", "3.10", "0")),
        invoice("G-3", DAY, line("SVC", "2", "19.95", "20"), line("OIL-5L", "1", "0.05", "20")),
    ]
    eur = [invoice("E-1", DAY, line("OIL-5L", "4", "9.90", "20"), currency="EUR")]
    later = [invoice("G-4", NEXT_DAY, line("OIL-5L", "1", "10.00", "20"))]
    today = [invoice("G-5", timezone.localdate(), line("OIL-5L", "1", "99.00", "20"))]
    records_write(connection=source, records=gbp + eur + later + today)
    profile = summary_profile(platform, dest, source)

    report = pushing.push_run(profile)

    assert (report.failed, report.blocked, report.created) == (0, 0, 3), report
    found = held(platform)
    total_field = DOCUMENTS[platform]["invoice"][2]
    assert {n: len(copies) for n, copies in found.items() if n and n.startswith("LL-DS")} == {
        "LL-DS-2026-10-05-GBP": 1,
        "LL-DS-2026-10-05-EUR": 1,
        "LL-DS-2026-10-06-GBP": 1,
    }
    # the day that has not closed yet stays out, and no sale went over one by one
    assert not any(n and n.startswith(("G-", "E-", "LL-G", "LL-E")) for n in found)
    assert not any(n and str(timezone.localdate()) in n for n in found)
    day_gbp = found["LL-DS-2026-10-05-GBP"][0]
    assert Decimal(str(day_gbp[total_field])) == members_total(["G-1", "G-2", "G-3"]) == Decimal("161.84")
    assert Decimal(str(found["LL-DS-2026-10-05-EUR"][0][total_field])) == members_total(["E-1"])
    # three placements: oil at 20%, oil at 0%, services at 20%
    lines = day_gbp["Line"] if platform == "quickbooks" else day_gbp["LineItems"]
    sales_lines = [x for x in lines if platform == "xero" or x.get("DetailType") == "SalesItemLineDetail"]
    assert len(sales_lines) == 3
    posting = SummaryPosting.objects.get(profile=profile, number="LL-DS-2026-10-05-GBP")
    assert (posting.member_count, posting.total) == (3, Decimal("161.84"))
    assert Binding.objects.get(
        connection=dest, object_type="summary_invoice", object_id=posting.pk
    ).external_id
    assert SummaryMember.objects.filter(profile=profile).count() == 5

    again = pushing.push_run(profile)

    assert (again.seen, again.created, again.updated) == (0, 0, 0), again


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_a_member_changed_after_posting_reposts_its_summary_as_an_update(live_server, platform):
    dest = engine.destination(platform, live_server.url)
    source = engine.ConnectionFactory(name="Shop export", platform="csv", role="source")
    first, second = (
        invoice("G-1", DAY, line("OIL-5L", "1", "10.00", "20")),
        invoice("G-2", DAY, line("SVC", "1", "5.00", "20")),
    )
    records_write(connection=source, records=[first, second])
    profile = summary_profile(platform, dest, source)
    pushing.push_run(profile)
    posting = SummaryPosting.objects.get(profile=profile)
    external_id = Binding.objects.get(object_type="summary_invoice", object_id=posting.pk).external_id

    # a late refund at the source: the second sale is voided, the first corrected
    records_write(
        connection=source,
        records=[invoice("G-1", DAY, line("OIL-5L", "2", "10.00", "20")), replace(second, status="void")],
    )
    report = pushing.push_run(profile)

    assert (report.updated, report.created, report.failed) == (1, 0, 0), report
    posting.refresh_from_db()
    assert (posting.row_version, posting.member_count, posting.total) == (2, 1, Decimal("24.00"))
    copies = held(platform)["LL-DS-2026-10-05-GBP"]
    total_field = DOCUMENTS[platform]["invoice"][2]
    assert len(copies) == 1 and Decimal(str(copies[0][total_field])) == Decimal("24.00")
    binding = Binding.objects.get(object_type="summary_invoice", object_id=posting.pk)
    assert (binding.external_id, binding.document_version) == (external_id, 2)
    assert (
        PushOperation.objects.get(
            object_id=posting.pk, object_type="summary_invoice", document_version=2
        ).operation
        == "update"
    )

    # someone edits the summary in the destination; a later change there is not overwritten
    connector = dest.connector()
    current = connector.fetch("invoice", external_id)
    memo = (
        {"PrivateNote": "checked by the accountant"} if platform == "quickbooks" else {"Reference": "checked"}
    )
    connector.update(
        "invoice", external_id, memo, remote_version=current.remote_version, idempotency_key="edit-1"
    )
    records_write(connection=source, records=[invoice("G-1", DAY, line("OIL-5L", "3", "10.00", "20"))])

    conflicted = pushing.push_run(profile)

    assert conflicted.failed == 1, conflicted
    exception = ReconciliationException.objects.get(kind="conflict")
    assert "LL-DS-2026-10-05-GBP" in exception.title
    assert Decimal(str(held(platform)["LL-DS-2026-10-05-GBP"][0][total_field])) == Decimal("24.00")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_an_unmapped_member_holds_back_its_summary_only_and_names_the_member_and_value(live_server, platform):
    dest = engine.destination(platform, live_server.url)
    source = engine.ConnectionFactory(name="Shop export", platform="csv", role="source")
    records_write(
        connection=source,
        records=[
            invoice("G-1", DAY, line("OIL-5L", "1", "10.00", "20")),
            invoice("G-ODD", DAY, line("OIL-5L", "1", "10.00", "5")),
            invoice("G-2", NEXT_DAY, line("OIL-5L", "1", "10.00", "20")),
        ],
    )
    profile = summary_profile(platform, dest, source)

    report = pushing.push_run(profile)

    assert (report.created, report.blocked) == (1, 1), report
    assert set(held(platform)) & {"LL-DS-2026-10-05-GBP", "LL-DS-2026-10-06-GBP"} == {"LL-DS-2026-10-06-GBP"}
    exception = ReconciliationException.objects.get(kind="mapping_missing")
    assert (
        "G-ODD" in exception.title
        and "tax code mapping for 5 " in exception.title
        and "LL-DS-2026-10-05-GBP" in exception.title
    )
    assert (
        exception.object_type == "invoice" and exception.object_id == Invoice.objects.get(number="G-ODD").pk
    )
    assert exception.details["mapping_url"].startswith("/admin/sync/mappingset/")
    target = "5" if platform == "quickbooks" else "RROUTPUT"
    MappingRow.objects.create(
        mapping_set=profile.mapping_set, kind="tax_code", source_value="5", target_value=target
    )

    second = pushing.push_run(profile)

    assert (second.created, second.blocked) == (1, 0), second
    total_field = DOCUMENTS[platform]["invoice"][2]
    assert Decimal(str(held(platform)["LL-DS-2026-10-05-GBP"][0][total_field])) == members_total(
        ["G-1", "G-ODD"]
    )
    exception.refresh_from_db()
    assert exception.state == "resolved"


@pytest.mark.django_db(transaction=True)
def test_without_a_summary_customer_nothing_is_posted_and_the_exception_says_where_to_set_it(live_server):
    dest = engine.destination("xero", live_server.url)
    source = engine.ConnectionFactory(name="Shop export", platform="csv", role="source")
    records_write(connection=source, records=[invoice("G-1", DAY, line("OIL-5L", "1", "10.00", "20"))])
    profile = summary_profile("xero", dest, source, customer=False)

    report = pushing.push_run(profile)

    assert (report.created, report.blocked) == (0, 1)
    exception = ReconciliationException.objects.get(kind="mapping_missing")
    assert (
        "*summary*" in exception.message
        and f"/admin/sync/mappingset/{profile.mapping_set_id}/" in exception.message
    )
    assert "LL-DS-2026-10-05-GBP" not in held("xero")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_payments_and_credit_notes_of_a_day_are_one_summary_each_applied_to_the_summary_invoice(
    live_server, platform
):
    dest = engine.destination(platform, live_server.url)
    source = engine.ConnectionFactory(name="Shop export", platform="csv", role="source")
    sales = [
        invoice("G-1", DAY, line("OIL-5L", "1", "10.00", "20")),
        invoice("G-2", DAY, line("OIL-5L", "2", "10.00", "20")),
        invoice("G-3", NEXT_DAY, line("SVC", "1", "30.00", "20")),
    ]
    records_write(connection=source, records=sales)
    records_write(
        connection=source, records=[credit_note("C-1", NEXT_DAY, line("OIL-5L", "1", "5.00", "20"))]
    )
    records_write(
        connection=source,
        records=[
            payment("P-1", sales[0], NEXT_DAY),
            payment("P-2", sales[1], NEXT_DAY),
            payment("P-3", sales[2], NEXT_DAY),
        ],
    )
    profile = summary_profile(platform, dest, source, object_types=("invoice", "credit_note", "payment"))

    report = pushing.push_run(profile)

    assert (report.failed, report.blocked) == (0, 0), report
    assert report.created == 2 + 1 + 1, report  # two summary invoices, a summary credit note, a payment
    notes = held(platform, "credit_note")
    assert len(notes["LL-DSC-2026-10-06-GBP"]) == 1
    deposit = "" if platform == "quickbooks" else "-090"
    number = f"LL-DSP-2026-10-06-GBP{deposit}"
    posting = SummaryPosting.objects.get(profile=profile, kind="summary_payment")
    assert (posting.number, posting.member_count, posting.total) == (number, 3, Decimal("72.00"))
    kind, field = ("Payment", "PaymentRefNum") if platform == "quickbooks" else ("payment", "Reference")
    paid = [p for p in engine.live_records(platform, kind) if p.get(field) == number]
    invoices = {
        b.object_id: b.external_id
        for b in Binding.objects.filter(connection=dest, object_type="summary_invoice")
    }
    if platform == "quickbooks":
        assert len(paid) == 1 and Decimal(str(paid[0]["TotalAmt"])) == Decimal("72.00")
        linked = {line["LinkedTxn"][0]["TxnId"]: Decimal(str(line["Amount"])) for line in paid[0]["Line"]}
    else:  # one Xero payment per invoice it pays
        assert len(paid) == 2
        linked = {p["InvoiceID"]: Decimal(str(p["Amount"])) for p in paid}
    by_day = {p.day: invoices[p.pk] for p in SummaryPosting.objects.filter(kind="summary_invoice")}
    assert linked == {by_day[DAY]: Decimal("36.00"), by_day[NEXT_DAY]: Decimal("36.00")}

    assert pushing.push_run(profile).seen == 0


@pytest.mark.django_db(transaction=True)
def test_the_dry_run_shows_the_summary_payloads_and_writes_nothing(live_server):
    dest = engine.destination("xero", live_server.url)
    source = engine.ConnectionFactory(name="Shop export", platform="csv", role="source")
    records_write(
        connection=source,
        records=[
            invoice("G-1", DAY, line("OIL-5L", "1", "10.00", "20"), line("SVC", "1", "2.50", "20")),
            invoice("G-2", DAY, line("OIL-5L", "1", "10.00", "20")),
        ],
    )
    profile = summary_profile("xero", dest, source)

    items = profile_preview(profile)

    assert [(i.object_type, i.operation) for i in items] == [("summary_invoice", "create")]
    payload = items[0].payload
    assert payload["InvoiceNumber"] == "LL-DS-2026-10-05-GBP"
    assert sorted((x["AccountCode"], x["LineAmount"], x["TaxAmount"]) for x in payload["LineItems"]) == [
        ("200", 20, 4),
        ("260", 2.5, 0.5),
    ]
    assert items[0].members == ["Invoice G-1", "Invoice G-2"]
    assert not SummaryPosting.objects.exists() and not PushOperation.objects.exists()


# --- exactly once, whatever crashes when ---------------------------------------------------------------
class WorkerKilled(BaseException):
    pass


CRASHES = 45


@pytest.mark.django_db(transaction=True)
def test_every_summary_exists_once_after_random_crashes_and_recovery(live_server, settings):
    settings.SANDBOX_RATE_PERIOD_SCALE = 0.01
    rng = random.Random("summary-crash")
    dest = engine.destination("quickbooks", live_server.url, scale=0.01)
    source = engine.ConnectionFactory(name="Shop export", platform="csv", role="source")
    profile = summary_profile("quickbooks", dest, source, object_types=("invoice", "payment"))
    hits: Counter[str] = Counter()
    serial = 0

    def sales(day: date) -> None:
        nonlocal serial
        made = []
        for currency in ("GBP", "EUR"):
            serial += 1
            made.append(
                invoice(f"S-{serial}", day, line("OIL-5L", "1", f"{serial}.00", "20"), currency=currency)
            )
        records_write(connection=source, records=made)
        records_write(connection=source, records=[payment(f"P-{i.number}", i, day) for i in made])

    def kill(point: str, operation: PushOperation) -> None:
        if sum(hits.values()) < CRASHES and rng.random() < 0.3:
            hits[point] += 1
            raise WorkerKilled(point)

    day = date(2026, 9, 1)
    sales(day)
    pushing.common.CRASH_HOOK = kill
    try:
        while sum(hits.values()) < CRASHES:
            try:
                pushing.push_run(profile)
            except WorkerKilled:
                continue
            # a run got through: a new day of sales, and a late change to an old one (an update; upwards,
            # as the destination refuses to take a paid invoice below what was applied to it)
            day += timedelta(days=1)
            sales(day)
            late = rng.choice(list(Invoice.objects.filter(source_connection=source)))
            records_write(
                connection=source,
                records=[
                    invoice(
                        late.number,
                        late.issue_date,
                        line("OIL-5L", "1", str(late.subtotal + 60), "20"),
                        currency=late.currency,
                    )
                ],
            )
    finally:
        pushing.common.CRASH_HOOK = None

    recovery = pushing.push_run(profile)
    assert recovery.failed == 0, recovery

    assert min(hits[p] for p in ("before_request", "after_write", "after_commit")) >= 8, hits
    invoices = Counter(r["DocNumber"] for r in engine.live_records("quickbooks", "Invoice"))
    payments = Counter(r.get("PaymentRefNum") for r in engine.live_records("quickbooks", "Payment"))
    postings = list(SummaryPosting.objects.filter(profile=profile))
    assert len(postings) >= 6
    for posting in postings:
        copies = invoices if posting.kind == "summary_invoice" else payments
        assert copies[posting.number] == 1, f"{posting.number}: {copies[posting.number]} copies"
        binding = Binding.objects.get(connection=dest, object_type=posting.kind, object_id=posting.pk)
        assert binding.document_version == posting.row_version
    for posting in (p for p in postings if p.kind == "summary_invoice"):
        record = next(
            r for r in engine.live_records("quickbooks", "Invoice") if r["DocNumber"] == posting.number
        )
        assert Decimal(str(record["TotalAmt"])) == posting.total, posting.number
    assert not PushOperation.objects.filter(profile=profile, state__in=["in_flight", "uncertain"]).exists()


# --- admin --------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_summary_list_page_stays_within_a_fixed_number_of_queries_and_shows_members(client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from tests.factories import ConnectionFactory, UserFactory

    client.force_login(UserFactory(is_superuser=True))
    source = ConnectionFactory(name="Shop export", platform="csv", role="source")
    dest = ConnectionFactory(name="Books", platform="xero", role="destination")
    profile = SyncProfile.objects.create(
        name="Daily", source=source, destination=dest, posting_mode="daily_summary"
    )
    records_write(
        connection=source,
        records=[invoice(f"G-{i}", DAY, line("OIL-5L", "1", "1.00", "20")) for i in range(9)],
    )
    documents = list(Invoice.objects.order_by("pk"))

    def add(count: int) -> None:
        for _ in range(count):
            index = SummaryPosting.objects.count()
            posting = SummaryPosting.objects.create(
                profile=profile,
                kind="summary_invoice",
                day=DAY + timedelta(days=index),
                currency="GBP",
                number=f"DS-{index}",
            )
            SummaryMember.objects.create(
                summary=posting,
                profile=profile,
                object_type="invoice",
                object_id=documents[index].pk,
                document_version=1,
            )
            Binding.objects.create(
                connection=dest,
                object_type="summary_invoice",
                object_id=posting.pk,
                external_id=f"x-{index}",
                document_version=1,
            )

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("admin:sync_summaryposting_changelist")).status_code == 200
        return len(captured)

    add(2)
    few = queries()
    add(6)
    assert queries() == few
    posting = SummaryPosting.objects.get(number="DS-3")
    page = client.get(reverse("admin:sync_summaryposting_change", args=[posting.pk])).content.decode()
    assert f"/admin/sync/invoice/{documents[3].pk}/change/" in page
    listing = client.get(reverse("admin:sync_summaryposting_changelist")).content.decode()
    assert "x-3" in listing
