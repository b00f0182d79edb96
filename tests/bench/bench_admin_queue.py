"""Benchmark: the exception queue (admin changelist) at 1,000,000 exceptions against 1,000.

The page must run the same number of queries at both sizes and take no more than 1.5 times as long.
Rows are seeded with raw bulk inserts; the page is rendered with Django's test client, signed in as a
superuser, default view (open work) and the "all states" view. Run with `make bench` (or
`python tests/bench/bench_admin_queue.py [ROWS]`). Uses a throw-away SQLite database under var/ unless
DATABASE_URL is set. Prints both figures and the ratio; exits 1 when a target is missed.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
if "DATABASE_URL" not in os.environ:
    bench_db = ROOT / "var" / "bench_queue.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{bench_db}{suffix}").unlink(missing_ok=True)
    os.environ["DATABASE_URL"] = f"sqlite:///{bench_db}"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

# the page is what is measured, not static files: plain storage needs no collectstatic run
settings.STORAGES = {
    **settings.STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

SMALL = 1_000
TARGET_RATIO = 1.5
REPEATS = 15
CHUNK = 10_000
KINDS = ["amount_mismatch", "missing_in_destination", "duplicate", "tax_mismatch", "status_mismatch"]
# a realistic queue: most findings are closed, a third still need someone
STATES = ["resolved"] * 6 + ["ignored"] + ["open"] * 2 + ["assigned", "in_review"]
COLUMNS = [
    "kind",
    "severity",
    "state",
    "fingerprint",
    "title",
    "message",
    "connection_id",
    "object_type",
    "object_id",
    "document_number",
    "external_id",
    "currency",
    "amount_at_risk",
    "details",
    "assignee_id",
    "occurrences",
    "first_seen_at",
    "last_seen_at",
    "resolved_by_system",
]


def seed(start: int, stop: int, *, connections: list[int], users: list[int]) -> None:
    from reconciliation.models import ReconciliationException

    table = connection.ops.quote_name(ReconciliationException._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in COLUMNS)
    sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    for low in range(start, stop, CHUNK):
        rows = []
        for i in range(low, min(stop, low + CHUNK)):
            state = STATES[i % len(STATES)]
            seen = epoch + timedelta(seconds=i * 17)
            rows.append(
                (
                    KINDS[i % len(KINDS)],
                    "medium",
                    state,
                    f"bench-{i}",
                    f"INV-{i:07d}: total differs",
                    "",
                    connections[i % len(connections)],
                    "invoice",
                    i + 1,
                    f"INV-{i:07d}",
                    f"ext-{i}",
                    "GBP",
                    f"{i % 5000}.25",
                    "{}",
                    users[i % len(users)] if state in ("assigned", "in_review") else None,
                    1,
                    seen - timedelta(days=3),
                    seen,
                    False,
                )
            )
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, rows)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def unseed() -> None:
    """Remove the rows a run seeded (a run against DATABASE_URL leaves the database as it found it)."""
    from reconciliation.models import ReconciliationException

    table = connection.ops.quote_name(ReconciliationException._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE fingerprint LIKE %s", ["bench-%"])


def measure(client: Client, url: str) -> tuple[float, int]:
    """Median seconds for the page and its number of queries."""
    for _ in range(2):
        assert client.get(url).status_code == 200
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        response = client.get(url)
        timings.append(time.perf_counter() - start)
        assert response.status_code == 200
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    return statistics.median(timings), len(queries)


def main() -> int:
    big = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    setup_test_environment()
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    from connectors.models import Connection

    connections = [
        Connection.objects.get_or_create(name=f"Bench {n}", defaults={"platform": "csv"})[0].pk
        for n in range(3)
    ]
    user_model = get_user_model()
    admin_user = user_model.objects.filter(
        username="bench-admin"
    ).first() or user_model.objects.create_superuser("bench-admin", "bench@example.com", "bench-password")
    users = [admin_user.pk]
    client = Client()
    client.force_login(admin_user)
    pages = {
        "open work (default)": "/admin/reconciliation/reconciliationexception/",
        "all states": "?state=all",
    }
    pages["all states"] = pages["open work (default)"] + pages["all states"]

    unseed()
    seed(0, SMALL, connections=connections, users=users)
    small = {name: measure(client, url) for name, url in pages.items()}
    started = time.perf_counter()
    seed(SMALL, big, connections=connections, users=users)
    print(f"seeded {big:,} exceptions in {time.perf_counter() - started:.1f}s ({connection.vendor})")
    large = {name: measure(client, url) for name, url in pages.items()}

    unseed()
    failed = False
    for name in pages:
        (t_small, q_small), (t_large, q_large) = small[name], large[name]
        ratio = t_large / t_small
        ok = q_small == q_large and ratio <= TARGET_RATIO
        failed |= not ok
        print(
            f"{name:22} {SMALL:>9,} rows: {t_small * 1000:7.1f} ms, {q_small} queries | "
            f"{big:>9,} rows: {t_large * 1000:7.1f} ms, {q_large} queries | "
            f"ratio {ratio:.2f} (target <= {TARGET_RATIO}) {'ok' if ok else 'MISSED'}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
