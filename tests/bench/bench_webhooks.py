"""Benchmark: answering a signed webhook, against the platforms' deadlines (QuickBooks 3 s, Xero 5 s) and
against the bare signature check of the same body.

Run with `python tests/bench/bench_webhooks.py [REQUESTS] [EVENTS_PER_REQUEST]`. Uses a throw-away SQLite
database under var/ unless DATABASE_URL is set; the production settings, so each job's doorbell is a real
ORM-broker row. Prints the figures; asserts nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
if "DATABASE_URL" not in os.environ:
    bench_db = ROOT / "var" / "bench-webhooks.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{bench_db}{suffix}").unlink(missing_ok=True)
    os.environ["DATABASE_URL"] = f"sqlite:///{bench_db}"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

TOKEN = "bench-verifier-token"
DEADLINE = 3.0  # QuickBooks, the tightest of the platforms here


def body_for(request: int, events: int) -> bytes:
    entities = [
        {
            "name": "Invoice",
            "id": f"{request}-{n}",
            "operation": "Update",
            "lastUpdated": "2026-03-01T10:00:00Z",
        }
        for n in range(events)
    ]
    document = {"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": entities}}]}
    return json.dumps(document).encode()


def sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(TOKEN.encode(), body, hashlib.sha256).digest()).decode()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    events = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    call_command("migrate", verbosity=0)

    from connectors.models import Connection, WebhookDelivery
    from sync.models import SyncJob, SyncProfile

    source = Connection.objects.create(
        name=f"bench qbo {time.time_ns()}",
        platform="quickbooks",
        credentials={"webhook_verifier_token": TOKEN},
    )
    destination = Connection.objects.create(name=f"bench xero {time.time_ns()}", platform="xero")
    SyncProfile.objects.create(name=f"bench {source.pk}", source=source, destination=destination)
    client = Client(HTTP_HOST="127.0.0.1")
    url = f"/webhooks/{source.pk}/"
    bodies = [body_for(n, events) for n in range(requests)]
    connector = source.connector()

    def timed_posts() -> list[float]:
        took = []
        for body in bodies:
            start = time.perf_counter()
            response = client.post(
                url, data=body, content_type="application/json", HTTP_INTUIT_SIGNATURE=sign(body)
            )
            took.append(time.perf_counter() - start)
            assert response.status_code == 200, response.content
        return took

    verify = []
    for body in bodies:
        start = time.perf_counter()
        connector.verify_webhook({"intuit-signature": sign(body)}, body)
        verify.append(time.perf_counter() - start)
    fresh = timed_posts()
    replays = timed_posts()

    print(f"database: {connection.vendor}; {requests} requests of {events} events each")
    print(
        f"processed: {WebhookDelivery.objects.filter(outcome='processed').count():,} events, "
        f"{SyncJob.objects.count():,} jobs"
    )
    for label, values in (("new events", fresh), ("replays", replays), ("signature check only", verify)):
        print(
            f"{label:22} median {statistics.median(values) * 1000:7.2f} ms   "
            f"p95 {percentile(values, 0.95) * 1000:7.2f} ms   max {max(values) * 1000:7.2f} ms"
        )
    ratio = statistics.median(fresh) / statistics.median(verify)
    share = percentile(fresh, 0.95) / DEADLINE
    print(f"ratio new-event answer / signature check (median): {ratio:.0f}x")
    print(f"p95 answer as a share of QuickBooks' {DEADLINE:.0f} s deadline: {share:.2%}")


if __name__ == "__main__":
    main()
