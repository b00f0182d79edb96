"""Benchmark: the bulk invoice endpoint, 10 batches of 1,000 invoices, as a ratio to a bare bulk_create.

Run with `make bench` (or `python tests/bench/bench_api_bulk.py [BATCHES] [PER_BATCH]`). The requests go
through the whole API in-process (token authentication, throttling, validation, JSON both ways, the sync
services' writes with history and bindings, the job row); the floor writes the same customers, invoices
(with their payload) and lines with plain bulk_create in the same run. Uses a throw-away SQLite database
under var/ unless DATABASE_URL is set. Prints the figures; asserts nothing. Target: no worse than 3x.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("API_DEFAULT_THROTTLE_RATE", "100000/minute")
if "DATABASE_URL" not in os.environ:
    bench_db = ROOT / "var" / "bench_api.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{bench_db}{suffix}").unlink(missing_ok=True)
    os.environ["DATABASE_URL"] = f"sqlite:///{bench_db}"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

LINES = 2
CUSTOMERS = 200


def invoice(batch: int, index: int) -> dict:
    n = batch * 100_000 + index
    customer = n % CUSTOMERS
    return {
        "external_id": f"bench-{n}",
        "number": f"B-{n:07d}",
        "customer": {"name": f"Customer {customer}", "email": f"c{customer}@example.com"},
        "issue_date": f"2026-03-{1 + n % 28:02d}",
        "currency": "GBP",
        "lines": [
            {
                "description": f"Item {line}",
                "quantity": str(1 + n % 5),
                "unit_price": f"{10 + n % 90}.50",
                "tax_rate": "20",
                "tax_amount": f"{(1 + n % 5) * (10 + n % 90) * 0.2 + 0.1:.2f}",
            }
            for line in range(LINES)
        ],
    }


def bare_bulk_create(batches: int, per_batch: int) -> float:
    """The floor: the same customers, invoices (with their payload) and lines, plain bulk_create."""
    from sync.models import Customer, Invoice, InvoiceLine

    bodies = [[invoice(batch + 50, i) for i in range(per_batch)] for batch in range(batches)]
    start = time.perf_counter()
    customers = Customer.objects.bulk_create([Customer(name=f"Bare {i}") for i in range(CUSTOMERS)])
    for batch in bodies:
        with transaction.atomic():
            invoices = Invoice.objects.bulk_create(
                [
                    Invoice(
                        number=body["number"],
                        customer=customers[i % CUSTOMERS],
                        issue_date=date(2026, 3, 1),
                        currency="GBP",
                        raw_payload=body,
                    )
                    for i, body in enumerate(batch)
                ],
                batch_size=500,
            )
            InvoiceLine.objects.bulk_create(
                [
                    InvoiceLine(
                        invoice=inv,
                        line_number=line + 1,
                        description="x",
                        quantity=Decimal(1),
                        unit_price=Decimal(1),
                    )
                    for inv in invoices
                    for line in range(LINES)
                ],
                batch_size=500,
            )
    return time.perf_counter() - start


def main() -> None:
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    per_batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    call_command("migrate", verbosity=0)
    from rest_framework.test import APIClient

    from api.services import api_client_create

    _, token = api_client_create(name=f"bench {time.time()}", scopes=["write_documents"])
    http = APIClient(SERVER_NAME="localhost")
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    bodies = [{"documents": [invoice(batch, i) for i in range(per_batch)]} for batch in range(batches)]

    start = time.perf_counter()
    for body in bodies:
        response = http.post("/api/v1/invoices/bulk/", body, format="json")
        assert response.status_code == 200, response.content[:500]
        assert response.json()["created"] == per_batch, response.json()["results"][:3]
    first = time.perf_counter() - start

    start = time.perf_counter()
    for body in bodies:
        response = http.post("/api/v1/invoices/bulk/", body, format="json")
        assert response.json()["unchanged"] == per_batch
    again = time.perf_counter() - start

    floor = bare_bulk_create(batches, per_batch)
    total = batches * per_batch
    print(f"database: {connection.vendor}; {batches} batches of {per_batch:,} invoices ({LINES} lines each)")
    print(f"bulk endpoint, new:       {first:6.2f} s  ({total / first:,.0f} invoices/s)")
    print(f"bulk endpoint, unchanged: {again:6.2f} s  ({total / again:,.0f} invoices/s)")
    print(f"bare bulk_create:         {floor:6.2f} s  ({total / floor:,.0f} invoices/s)")
    print(f"ratio bulk endpoint / bare bulk_create: {first / floor:.1f}x (target: no worse than 3x)")


if __name__ == "__main__":
    main()
