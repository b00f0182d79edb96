"""Benchmark: importing a 100,000-row CSV, as a ratio to a bare bulk_create of the same rows.

Run with `make bench` (or `python tests/bench/bench_csv_import.py [ROWS]`). Uses a throw-away SQLite
database under var/ unless DATABASE_URL is set. Prints the figures; asserts nothing.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
if "DATABASE_URL" not in os.environ:
    bench_db = ROOT / "var" / "bench.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{bench_db}{suffix}").unlink(missing_ok=True)
    os.environ["DATABASE_URL"] = f"sqlite:///{bench_db}"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

LINES_PER_INVOICE = 5


def make_csv(rows: int) -> bytes:
    out = [
        "invoice_number,customer_name,customer_email,issue_date,currency,description,quantity,unit_price,tax_rate"
    ]
    for index in range(rows):
        number = index // LINES_PER_INVOICE
        customer = number % 500
        out.append(
            f"B-{number:07d},Customer {customer},c{customer}@example.com,2026-03-{1 + number % 28:02d},GBP,"
            f"Item {index % LINES_PER_INVOICE},{1 + index % 7},{10 + index % 90}.{index % 100:02d},20"
        )
    return ("\n".join(out) + "\n").encode()


def bare_bulk_create(rows: int) -> float:
    """The floor: the same invoices and lines written with plain bulk_create, no parsing, no history."""
    from sync.models import Customer, Invoice, InvoiceLine

    start = time.perf_counter()
    with transaction.atomic():
        customers = Customer.objects.bulk_create([Customer(name=f"Bare {i}") for i in range(500)])
        invoices = Invoice.objects.bulk_create(
            [
                Invoice(
                    number=f"X-{n}", customer=customers[n % 500], issue_date=date(2026, 3, 1), currency="GBP"
                )
                for n in range(rows // LINES_PER_INVOICE)
            ],
            batch_size=500,
        )
        InvoiceLine.objects.bulk_create(
            [
                InvoiceLine(
                    invoice=invoices[i // LINES_PER_INVOICE],
                    line_number=i % LINES_PER_INVOICE + 1,
                    description="x",
                    quantity=Decimal(1),
                    unit_price=Decimal(1),
                )
                for i in range(rows)
            ],
            batch_size=500,
        )
    return time.perf_counter() - start


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    call_command("migrate", verbosity=0)
    data = make_csv(rows)
    with tempfile.NamedTemporaryFile(suffix=".csv", delete=False) as handle:
        handle.write(data)
    start = time.perf_counter()
    call_command("csv_import", handle.name, connection="bench", verbosity=0)
    first = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    start = time.perf_counter()
    call_command("csv_import", handle.name, connection="bench", verbosity=0)
    again = time.perf_counter() - start
    floor = bare_bulk_create(rows)
    os.unlink(handle.name)
    print(f"database: {connection.vendor}; {rows:,} rows, {rows // LINES_PER_INVOICE:,} invoices")
    print(
        f"csv_import, first time: {first:6.2f} s  ({rows / first:,.0f} rows/s), "
        f"peak RSS {peak / 2**20:.0f} MiB"
    )
    print(f"csv_import, unchanged:  {again:6.2f} s  ({rows / again:,.0f} rows/s)")
    print(f"bare bulk_create:       {floor:6.2f} s  ({rows / floor:,.0f} rows/s)")
    print(f"ratio import / bare bulk_create: {first / floor:.1f}x")


if __name__ == "__main__":
    main()
