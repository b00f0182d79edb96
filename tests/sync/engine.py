"""Shared set-up for sync engine tests: canonical documents from a CSV source, and QuickBooks and Xero
sandbox destinations reached over real HTTP (pytest-django's live_server)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from connectors.base import AllocationRecord, CustomerRecord, InvoiceRecord, LineRecord, PaymentRecord
from connectors.models import Connection
from sandbox import core
from sync.models import MappingRow, MappingSet, ReferenceData, SyncProfile
from sync.reference import reference_data_refresh
from sync.services import records_write
from tests.factories import ConnectionFactory

REALM = "4620816365257778210"
TENANT = "0a8f3b6e-1c2d-4e5f-8a9b-7c6d5e4f3a2b"
CUSTOMERS = (
    CustomerRecord(name="Trattoria Bella", email="orders@bella.example", currency="GBP"),
    CustomerRecord(name="Northwind Foods", email="ap@northwind.example", currency="GBP"),
    CustomerRecord(name="Harbour Street Deli", email="accounts@harbour.example", currency="GBP"),
)


def destination(platform: str, server_url: str, *, seed: bool = True, scale: float = 1) -> Connection:
    account = REALM if platform == "quickbooks" else TENANT
    if seed:
        core.seed(platform, account)
    token = core.tokens_issue(platform, account, "ledgerlink-test")
    if platform == "quickbooks":
        return ConnectionFactory(
            name=f"QuickBooks {account}",
            platform="quickbooks",
            role=Connection.Role.DESTINATION,
            base_url=f"{server_url}/sandbox/quickbooks/v3",
            credentials={"token": token, "client_id": "a", "client_secret": "b"},
            options={"realmId": account, "home_currency": "GBP", "rate_limit_period_scale": scale},
        )
    return ConnectionFactory(
        name=f"Xero {account}",
        platform="xero",
        role=Connection.Role.DESTINATION,
        base_url=f"{server_url}/sandbox/xero/api.xro/2.0",
        credentials={"token": token, "client_id": "a", "client_secret": "b"},
        options={"tenant_id": account, "rate_limit_period_scale": scale},
    )


def invoice_record(index: int, *, tax_rate: Decimal | None = Decimal(20), number: str = "") -> InvoiceRecord:
    quantity, price = Decimal(index % 3 + 1), Decimal("40.00") + index
    subtotal = quantity * price
    tax = (subtotal * (tax_rate or 0) / 100).quantize(Decimal("0.01"))
    line = LineRecord(
        description=f"Olive oil 5L, lot {index}",
        quantity=quantity,
        unit_price=price,
        subtotal=subtotal,
        tax_amount=tax,
        total=subtotal + tax,
        tax_rate=tax_rate,
        item_code="OIL-5L",
    )
    return InvoiceRecord(
        external_id=number or f"INV-{index:05d}",
        number=number or f"INV-{index:05d}",
        customer=CUSTOMERS[index % len(CUSTOMERS)],
        issue_date=date(2026, 10, 1) + timedelta(days=index % 28),
        due_date=date(2026, 11, 1) + timedelta(days=index % 28),
        currency="GBP",
        status="open",
        lines=(line,),
        subtotal=subtotal,
        tax_total=tax,
        total=subtotal + tax,
        amount_paid=Decimal(0),
        amount_due=subtotal + tax,
    )


def payment_record(index: int, invoice: InvoiceRecord, *, method: str = "bank_transfer") -> PaymentRecord:
    return PaymentRecord(
        external_id=f"PAY-{index:05d}",
        reference=f"PAY-{index:05d}",
        customer=invoice.customer,
        transaction_date=invoice.issue_date + timedelta(days=3),
        currency=invoice.currency,
        amount=invoice.total,
        allocations=(AllocationRecord(invoice_number=invoice.number, amount=invoice.total),),
        method=method,
    )


def source_with_invoices(count: int, *, start: int = 0) -> tuple[Connection, list[InvoiceRecord]]:
    source = ConnectionFactory(name="Shop export", platform="csv", role=Connection.Role.SOURCE)
    records = [invoice_record(i) for i in range(start, start + count)]
    records_write(connection=source, records=records)
    return source, records


def mapped_profile(
    source: Connection, dest: Connection, *, object_types=("invoice",), prefix: str = "", **extra
) -> SyncProfile:
    """A profile with a mapping set that maps everything the test documents use."""
    reference_data_refresh(dest)
    mapping = MappingSet.objects.create(
        name=f"Mapping to {dest.name}", destination=dest, number_prefix=prefix
    )

    def code(kind: str, **lookup) -> str:
        return ReferenceData.objects.get(connection=dest, kind=kind, **lookup).code

    rows: list[tuple[str, str, str]]
    if dest.platform == "quickbooks":
        rows = [
            (MappingRow.Kind.ITEM, "*", code("item", name="Olive oil 5L")),
            (MappingRow.Kind.TAX_CODE, "20", "2"),
            (MappingRow.Kind.TAX_CODE, "0", "3"),
        ]
    else:
        rows = [
            (MappingRow.Kind.REVENUE_ACCOUNT, "*", "200"),
            (MappingRow.Kind.TAX_CODE, "20", "OUTPUT2"),
            (MappingRow.Kind.TAX_CODE, "0", "ZERORATEDOUTPUT"),
            (MappingRow.Kind.PAYMENT_METHOD, "*", "090"),
        ]
    for kind, source_value, target in rows:
        MappingRow.objects.create(
            mapping_set=mapping, kind=kind, source_value=source_value, target_value=target
        )
    return SyncProfile.objects.create(
        name=f"{source.name} to {dest.name}",
        source=source,
        destination=dest,
        object_types=list(object_types),
        mapping_set=mapping,
        **extra,
    )


def live_records(platform: str, kind: str) -> list[dict]:
    """What the sandbox destination holds of one kind, deleted records left out."""
    from sandbox.models import SandboxRecord

    account = REALM if platform == "quickbooks" else TENANT
    rows = SandboxRecord.objects.filter(platform=platform, account=account, kind=kind, deleted=False)
    return [row.data for row in rows]
