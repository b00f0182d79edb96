"""Benchmark: the bulk invoice endpoint, 10 batches of 1,000 invoices, as a ratio to a bare bulk_create.

Run with `make bench` (or `python tests/bench/bench_api_bulk.py [BATCHES] [PER_BATCH]`). Uses a throw-away
SQLite database under var/ unless DATABASE_URL is set (then that database itself, not a test one). Prints
the figures; asserts nothing but that every batch was written. Target: no worse than 3x.

- The endpoint side: each batch is a POST of pre-encoded JSON through the whole API in-process (token
  authentication, throttling, parsing, validation, the sync services' writes with history rows, content
  hashes and bindings, the job row, the JSON answer). Encoding the request and decoding the answer are the
  caller's work and are not timed.
- The floor: right after each batch, and outside the timing, the rows the endpoint wrote are read back
  (the customers it created, its invoices with their payload, their lines); then the same rows are written
  again with plain `bulk_create` in one transaction, timed. So both sides write the same rows, the floor
  without history, hashes or bindings, and the two alternate batch by batch: a machine that gets busier
  halfway through slows both alike.
- The ratio is total endpoint time / total floor time; the median of the per-batch ratios is printed next
  to it as a check on noise (the two agree on a quiet machine). On SQLite, where all the work happens in
  this process, the ratio of CPU times is printed too: it moves least with the machine's load.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

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
URL = "/api/v1/invoices/bulk/"


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


def written_rows(ids: list[int], customers_before: int) -> dict[str, list[dict[str, Any]]]:
    """What one batch wrote, as field values: the customers it created, its invoices and their lines."""
    from sync.models import Customer, Invoice, InvoiceLine

    return {
        "customers": list(Customer.objects.filter(pk__gt=customers_before).values()),
        "invoices": list(Invoice.objects.filter(pk__in=ids).order_by("pk").values()),
        "lines": list(InvoiceLine.objects.filter(invoice_id__in=ids).order_by("pk").values()),
    }


def bare_bulk_create(rows: dict[str, list[dict[str, Any]]]) -> tuple[float, float]:
    """The floor: the same customers, invoices (with their payload) and lines, plain bulk_create."""
    from sync.models import Customer, Invoice, InvoiceLine

    def fields(row: dict[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in row.items() if name not in ("id", "invoice_id")}

    start, cpu = time.perf_counter(), time.process_time()
    with transaction.atomic():
        Customer.objects.bulk_create([Customer(**fields(row)) for row in rows["customers"]])
        invoices = Invoice.objects.bulk_create(
            [Invoice(**fields(row)) for row in rows["invoices"]], batch_size=500
        )
        copies = {row["id"]: copy.pk for row, copy in zip(rows["invoices"], invoices, strict=True)}
        lines = [InvoiceLine(**fields(row), invoice_id=copies[row["invoice_id"]]) for row in rows["lines"]]
        InvoiceLine.objects.bulk_create(lines, batch_size=500)
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    per_batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    call_command("migrate", verbosity=0)
    from rest_framework.test import APIClient

    from api.services import api_client_create
    from sync.models import Customer

    _, token = api_client_create(name=f"bench {time.time()}", scopes=["write_documents"])
    http = APIClient(SERVER_NAME="localhost")
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    bodies = [
        json.dumps({"documents": [invoice(batch, i) for i in range(per_batch)]}) for batch in range(batches)
    ]

    endpoint, floor, endpoint_cpu, floor_cpu = [], [], 0.0, 0.0
    for body in bodies:
        customers_before = Customer.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        start, cpu = time.perf_counter(), time.process_time()
        response = http.post(URL, body, content_type="application/json")
        endpoint.append(time.perf_counter() - start)
        endpoint_cpu += time.process_time() - cpu
        answer = response.json()
        assert response.status_code == 200, response.content[:500]
        assert answer["created"] == per_batch, answer["results"][:3]
        spent, cpu = bare_bulk_create(written_rows([r["id"] for r in answer["results"]], customers_before))
        floor.append(spent)
        floor_cpu += cpu

    start = time.perf_counter()
    answers = [http.post(URL, body, content_type="application/json") for body in bodies]
    again = time.perf_counter() - start
    assert all(answer.json()["unchanged"] == per_batch for answer in answers)

    first, bare, total = sum(endpoint), sum(floor), batches * per_batch
    median = statistics.median(e / f for e, f in zip(endpoint, floor, strict=True))
    print(f"database: {connection.vendor}; {batches} batches of {per_batch:,} invoices ({LINES} lines each)")
    print(f"bulk endpoint, new:       {first:6.2f} s  ({total / first:,.0f} invoices/s)")
    print(f"bulk endpoint, unchanged: {again:6.2f} s  ({total / again:,.0f} invoices/s)")
    print(f"bare bulk_create:         {bare:6.2f} s  ({total / bare:,.0f} invoices/s)")
    print(
        f"ratio bulk endpoint / bare bulk_create: {first / bare:.1f}x (median of batches {median:.1f}x; "
        "target: no worse than 3x)"
    )
    if connection.vendor == "sqlite":  # in-process: CPU time is all of the work
        print(f"ratio of CPU time (this process): {endpoint_cpu / floor_cpu:.1f}x")


if __name__ == "__main__":
    main()
