"""Benchmark: the reconciliation run, as a ratio to reading the same rows, and its peak memory.

Run it with `make bench` (RECON=... sets the size), or alone:

    .venv/bin/python tests/bench/bench_reconcile.py [INVOICES]     # default 1,000,000

For each of INVOICES/10 and INVOICES, in a throw-away SQLite database under var/ (unless DATABASE_URL is
set), it seeds canonical invoices, each with an origin binding and a destination binding whose snapshot
is the invoice's own values, with 0.1% of the copies disagreeing (total, tax, status or due date). Rows
are written with raw `executemany` inserts while the tables' secondary indexes are dropped (built once
afterwards: per-row B-tree inserts into four binding indexes were most of the seeding time at 1,000,000),
and seeding is not timed against anything. Then, each in a
process of its own:

(a) read: the same rows read back as the run reads them: invoices in keyset pages of
    RECONCILIATION_PAGE_SIZE plain rows, with their copies' bindings (one query per page; the origin
    bindings are not read by either). The floor.
(b) run: `reconcile()` of everything (the mirror not asked to re-read: there is no remote system here),
    which also writes the findings.

It prints (b) as a ratio to (a) at INVOICES (target at most 3x) and the peak RSS of (b) at both sizes:
the same figure for both means memory does not grow with the number of invoices. Nothing is asserted.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
CUSTOMERS = 1_000
CHUNK = 20_000  # rows per executemany while seeding
DISAGREE_EVERY = 1_000  # 0.1% of copies disagree


def setup(name: str, *, fresh: bool) -> None:
    if "DATABASE_URL" not in os.environ:
        path = ROOT / "var" / f"{name}.sqlite3"
        path.parent.mkdir(exist_ok=True)
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    if fresh:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


# --- seeding ------------------------------------------------------------------------------------------
def _insert(table_model, columns: list[str], rows) -> None:
    """Raw multi-row inserts of `rows` (an iterable of tuples), CHUNK at a time."""
    from django.db import connection, transaction

    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(table_model._meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    batch: list[tuple] = []
    with connection.cursor() as cursor:
        for row in rows:
            batch.append(row)
            if len(batch) >= CHUNK:
                with transaction.atomic():
                    cursor.executemany(sql, batch)
                batch = []
        if batch:
            with transaction.atomic():
                cursor.executemany(sql, batch)


class _IndexesDropped:
    """The table's secondary indexes (unique ones included) dropped while rows are inserted and built
    once afterwards: one sort per index instead of a B-tree insert per row, and no index pages left
    half-full. The definitions come from the database itself, so they are recreated exactly."""

    def __init__(self, model) -> None:
        self.table = model._meta.db_table
        self.recreate: list[str] = []

    def __enter__(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s "
                    "AND sql IS NOT NULL",
                    [self.table],
                )
                for name, sql in cursor.fetchall():
                    self.recreate.append(sql)
                    cursor.execute(f'DROP INDEX "{name}"')
                return
            cursor.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype = 'u'",
                [self.table],
            )
            constraints = cursor.fetchall()
            for name, definition in constraints:
                self.recreate.append(f'ALTER TABLE "{self.table}" ADD CONSTRAINT "{name}" {definition}')
                cursor.execute(f'ALTER TABLE "{self.table}" DROP CONSTRAINT "{name}"')
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT LIKE %s",
                [self.table, "%_pkey"],
            )
            for name, definition in cursor.fetchall():
                self.recreate.append(definition)
                cursor.execute(f'DROP INDEX "{name}"')

    def __exit__(self, *exc) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            for sql in self.recreate:
                cursor.execute(sql)


def seed(invoices: int) -> dict:
    from django.db import connection

    from connectors.models import Connection
    from sync.models import Binding, Customer, Invoice

    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous=OFF")
    source = Connection.objects.create(name="Shop (bench)", platform="csv")
    ledger = Connection.objects.create(name="Ledger (bench)", platform="csv")
    customers = Customer.objects.bulk_create(
        [Customer(name=f"Customer {c}", email=f"c{c}@example.com") for c in range(CUSTOMERS)]
    )
    first_customer = customers[0].pk
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    if connection.vendor == "sqlite":
        stamp = stamp.isoformat(sep=" ")  # type: ignore[assignment]
    start = date(2026, 1, 1)

    def invoice_rows():
        for i in range(1, invoices + 1):
            net = Decimal(100 + i % 900)
            tax = net / 5
            issue = start + timedelta(days=i % 90)
            yield (
                i,
                source.pk,
                "GBP",
                "{}",
                "",
                1,
                stamp,
                stamp,
                f"B{i:08d}",
                first_customer + i % CUSTOMERS,
                issue.isoformat(),
                (issue + timedelta(days=30)).isoformat(),
                None,
                "open",
                None,
                False,
                str(net),
                str(tax),
                str(net + tax),
                str(net + tax),
                "0",
                str(net + tax),
                "",
            )

    columns = [
        "id",
        "source_connection_id",
        "currency",
        "raw_payload",
        "content_hash",
        "row_version",
        "created_at",
        "updated_at",
        "number",
        "customer_id",
        "issue_date",
        "due_date",
        "paid_on_date",
        "status",
        "exchange_rate",
        "tax_inclusive",
        "subtotal",
        "tax_total",
        "total",
        "lines_total",
        "amount_paid",
        "amount_due",
        "memo",
    ]
    began = time.perf_counter()
    with _IndexesDropped(Invoice):
        _insert(Invoice, columns, invoice_rows())

    def snapshot(i: int) -> str:
        net = 100 + i % 900
        total, tax = f"{net * 1.2:.2f}", f"{net * 0.2:.2f}"
        issue = start + timedelta(days=i % 90)
        due = (issue + timedelta(days=30)).isoformat()
        status = "open"
        if i % DISAGREE_EVERY == 0:  # 0.1% disagree, each in one of four ways
            way = (i // DISAGREE_EVERY) % 4
            if way == 0:
                total = f"{net * 1.2 - 5:.2f}"
            elif way == 1:
                tax = f"{net * 0.2 + 1:.2f}"
            elif way == 2:
                status = "paid"
            else:
                due = (issue + timedelta(days=45)).isoformat()
        customer = f"c{i % CUSTOMERS}@example.com"
        return (
            f'{{"number": "LL-B{i:08d}", "currency": "GBP", "total": "{total}", "tax_total": "{tax}", '
            f'"amount_paid": "0.00", "amount_due": "{total if status == "open" else "0.00"}", '
            f'"status": "{status}", "issue_date": "{issue.isoformat()}", "due_date": "{due}", '
            f'"customer": "{customer}", "exchange_rate": null}}'
        )

    def binding_rows():
        for i in range(1, invoices + 1):
            yield (
                source.pk,
                "invoice",
                i,
                f"s{i}",
                "",
                True,
                "",
                "",
                "{}",
                False,
                None,
                "{}",
                None,
                stamp,
                stamp,
            )
            yield (
                ledger.pk,
                "invoice",
                i,
                f"d{i}",
                f"LL-B{i:08d}",
                False,
                "1",
                "",
                "{}",
                False,
                1,
                snapshot(i),
                stamp,
                stamp,
                stamp,
            )

    dropped = _IndexesDropped(Binding)
    dropped.__enter__()
    _insert(
        Binding,
        [
            "connection_id",
            "object_type",
            "object_id",
            "external_id",
            "external_number",
            "is_origin",
            "remote_version",
            "content_hash",
            "raw_payload",
            "remote_deleted",
            "document_version",
            "snapshot",
            "snapshot_at",
            "first_seen_at",
            "last_synced_at",
        ],
        binding_rows(),
    )
    dropped.__exit__()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT setval(pg_get_serial_sequence('sync_invoice', 'id'), %s)", [invoices])
            cursor.execute("ANALYZE")
    else:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return {"seconds": time.perf_counter() - began, "invoices": Invoice.objects.count()}


# --- (a) and (b) --------------------------------------------------------------------------------------
def read_rows() -> dict:
    """(a): the run's reads, and nothing else: keyset pages of invoices and their bindings."""
    from reconciliation import checks
    from sync.models import Binding, Invoice

    size = checks.page_size()
    fields = checks.FIELDS["invoice"]
    began = time.perf_counter()
    last, rows, bindings = 0, 0, 0
    while True:
        page = list(Invoice.objects.filter(pk__gt=last).order_by("pk").values(*fields)[:size])
        if not page:
            break
        ids = [row["id"] for row in page]
        bindings += len(
            list(
                Binding.objects.filter(
                    object_type="invoice", object_id__gte=ids[0], object_id__lte=ids[-1], is_origin=False
                ).values_list(
                    "object_id", "connection_id", "external_id", "snapshot", "remote_deleted", "is_origin"
                )
            )
        )
        rows += len(page)
        last = page[-1]["id"]
    return {
        "seconds": time.perf_counter() - began,
        "rows": rows,
        "bindings": bindings,
        "peak": peak_rss_mib(),
    }


def run_reconcile() -> dict:
    """(b): the run of everything, opening the 0.1% of findings."""
    from reconciliation.checks import reconcile

    baseline = peak_rss_mib()
    began = time.perf_counter()
    first = reconcile(refresh=False, object_types=["invoice"])
    return {
        "seconds": time.perf_counter() - began,
        "first": first.as_dict(),
        "baseline": baseline,
        "peak": peak_rss_mib(),
    }


# --- the parent ---------------------------------------------------------------------------------------
def child(step: str, invoices: int) -> dict:
    env = dict(os.environ)
    answer = subprocess.run(
        [sys.executable, __file__, "--child", step, str(invoices)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if answer.returncode:
        raise SystemExit(f"{step} at {invoices} failed:\n{answer.stdout}\n{answer.stderr}")
    return json.loads(answer.stdout.strip().splitlines()[-1])


def main(invoices: int) -> None:
    results = {}
    for size in (max(1, invoices // 10), invoices):
        seeded = child("seed", size)
        read = child("read", size)
        run = child("run", size)
        results[size] = (seeded, read, run)
        print(
            f"{size:>10,} invoices: seeded in {seeded['seconds']:.1f}s; (a) read {read['seconds']:.1f}s "
            f"({read['rows']:,} invoices, {read['bindings']:,} bindings); (b) run {run['seconds']:.1f}s "
            f"({run['first']['checked']:,} checked, {run['first']['opened']:,} exceptions opened); "
            f"peak RSS (b) {run['peak']:.0f} MiB"
        )
    small, large = results[max(1, invoices // 10)], results[invoices]
    ratio = large[2]["seconds"] / large[1]["seconds"]
    print(f"reconciliation / read ratio at {invoices:,}: {ratio:.2f}x (target at most 3x)")
    print(
        f"peak RSS of the run: {small[2]['peak']:.0f} MiB at {max(1, invoices // 10):,}, "
        f"{large[2]['peak']:.0f} MiB at {invoices:,} (growth {large[2]['peak'] - small[2]['peak']:+.0f} MiB)"
    )
    rate = invoices / large[2]["seconds"]
    print(f"throughput: {rate:,.0f} invoices/s checked and written")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        step, count = sys.argv[2], int(sys.argv[3])
        setup(f"bench_reconcile_{count}", fresh=step == "seed")
        work = {"seed": lambda: seed(count), "read": read_rows, "run": run_reconcile}[step]
        print(json.dumps(work()))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
