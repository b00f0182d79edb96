"""Benchmark: the sync engine's pull and push, as ratios and percentages of their ceilings.

Run it with `make bench` (it runs the CSV benchmark too), or alone:

    .venv/bin/python tests/bench/bench_sync.py [ROWS] [PUSH]      # or ROWS=... PUSH=... in the environment
    make bench ROWS=10000 PUSH=1000                               # a quicker, smaller run

ROWS (default 100,000) is the number of invoices pulled, PUSH (default 5,000) the number pushed to each
sandbox. Every figure comes from one run on this machine and nothing is asserted. Each part uses its own
throw-away SQLite database under var/ (WAL mode, as configured in config/settings.py) unless DATABASE_URL
is set.

(a) pull: ROWS QuickBooks Online invoices, generated as the API sends them (a `QueryResponse` page of
    1,000 `Invoice` objects, JSON text; generating it is not timed), then timed: the JSON decoded, each
    invoice parsed by the QuickBooks connector's `parse` into a canonical record, and each page written
    by `sync.pull.changes_write` in one transaction (customers matched or created, content-hash dedupe,
    bindings, history rows, exceptions checked). The figure is its time as a ratio to a bare
    `bulk_create` of the same rows (customers, invoices with their raw payload, lines) in the same run,
    in the same pages: 1.0x would be no overhead at all; the target is no worse than 2x. It also prints
    the second pull of the same pages (everything unchanged: the dedupe path).
(b) push: PUSH invoices to the QuickBooks and to the Xero sandboxes over real HTTP (a gunicorn process
    serving /sandbox/ on a free port, sharing the database file), both sides enforcing the platforms'
    real limits with their periods squeezed by SCALE (SANDBOX_RATE_PERIOD_SCALE for the sandbox, the
    connection option `rate_limit_period_scale` for our limiter), chosen so the run takes about a minute.
    The ceiling is what the binding limit allows: QuickBooks 40 batch requests a minute of 30 invoices
    (its 500 requests a minute do not bind for batches), Xero 60 calls a minute of 50 invoices, each
    minute squeezed by SCALE. The figure is invoices created / elapsed as a percentage of that ceiling
    (target 90%); a run shorter than a few windows can pass 100% because the first window's allowance is
    spent at once, so it also prints the client's unhindered pace (its first requests, before the limit
    held it back) as a share of the ceiling: above 100%, the limit binds and not the client. Batches go
    SYNC_PUSH_CONCURRENCY at a time (capped by the platform's own limit on requests at once). Then the
    sandbox's stored invoices are counted per document number: missing and duplicated must both be 0, and
    failed operations too. LATENCY_MS (environment, default 0) makes the sandboxes answer every request
    that much later, as a distant platform does: compare SYNC_PUSH_CONCURRENCY=1 with the default to see
    what keeping batches in flight side by side is worth when latency, not CPU, bounds the client.
(c) memory: the worker's peak RSS during (a), in child processes pulling ROWS/10 and ROWS invoices: the
    same figure for both means memory does not grow with the number of invoices (pages are generated,
    parsed and written one at a time, as a real pull reads them).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
PAGE = 1_000  # invoices per pulled page (QuickBooks' query maximum), one transaction each
CUSTOMERS = 1_000
LINES = 3  # item lines per invoice (plus QuickBooks' own sub-total line)


# --- the database --------------------------------------------------------------------------------------
def fresh_database(name: str) -> None:
    """Point DATABASE_URL at a new SQLite file under var/ (unless one is given) and set Django up."""
    if "DATABASE_URL" not in os.environ:
        path = ROOT / "var" / f"{name}.sqlite3"
        path.parent.mkdir(exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


# --- (a) pull ------------------------------------------------------------------------------------------
def _money(value: Decimal) -> float:
    return float(value)


def qbo_invoice(index: int) -> dict:
    """One invoice as QuickBooks Online's API returns it (see tests/fixtures/quickbooks)."""
    customer = index % CUSTOMERS
    day = date(2026, 1, 1) + timedelta(days=index % 90)
    lines, net = [], Decimal(0)
    for n in range(LINES):
        qty, price = Decimal(1 + (index + n) % 5), Decimal(10 + (index * 7 + n) % 90) + Decimal("0.25")
        amount = qty * price
        net += amount
        lines.append(
            {
                "Id": str(n + 1),
                "LineNum": n + 1,
                "Description": f"Item {n} for order {index}",
                "Amount": _money(amount),
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": str(n + 1), "name": f"Item {n}"},
                    "Qty": int(qty),
                    "UnitPrice": _money(price),
                    "TaxCodeRef": {"value": "2"},
                },
            }
        )
    lines.append({"Amount": _money(net), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
    tax = (net * Decimal("0.2")).quantize(Decimal("0.01"))
    stamp = f"{day.isoformat()}T10:{index % 60:02d}:{index // 60 % 60:02d}-08:00"
    return {
        "Id": str(index + 1),
        "SyncToken": "0",
        "domain": "QBO",
        "sparse": False,
        "MetaData": {"CreateTime": stamp, "LastUpdatedTime": stamp},
        "DocNumber": f"B{index:07d}",
        "TxnDate": day.isoformat(),
        "DueDate": (day + timedelta(days=30)).isoformat(),
        "CurrencyRef": {"value": "GBP", "name": "British Pound Sterling"},
        "CustomerRef": {"value": str(customer + 1), "name": f"Customer {customer}"},
        "BillEmail": {"Address": f"accounts{customer}@example.com"},
        "GlobalTaxCalculation": "TaxExcluded",
        "Line": lines,
        "TxnTaxDetail": {
            "TotalTax": _money(tax),
            "TaxLine": [
                {
                    "Amount": _money(tax),
                    "DetailType": "TaxLineDetail",
                    "TaxLineDetail": {
                        "TaxRateRef": {"value": "4"},
                        "PercentBased": True,
                        "TaxPercent": 20,
                        "NetAmountTaxable": _money(net),
                    },
                }
            ],
        },
        "TotalAmt": _money(net + tax),
        "Balance": _money(net + tax),
        "EmailStatus": "NotSet",
        "PrintStatus": "NeedToPrint",
    }


def qbo_page(start: int, count: int) -> bytes:
    """A query answer's body, as it comes off the wire."""
    body = {
        "QueryResponse": {
            "Invoice": [qbo_invoice(i) for i in range(start, start + count)],
            "startPosition": start + 1,
            "maxResults": count,
        },
        "time": "2026-04-01T09:00:00.000-07:00",
    }
    return json.dumps(body).encode()


def pull_pages(rows: int) -> float:
    """Pull `rows` invoices page by page through the connector and changes_write; seconds spent parsing
    and writing (generating the pages is not counted)."""
    from django.db import transaction

    from connectors.models import Connection
    from sync.pull import PullReport, changes_write

    connection, _ = Connection.objects.get_or_create(
        name="QuickBooks (bench)",
        defaults={"platform": "quickbooks", "role": "source", "options": {"home_currency": "GBP"}},
    )
    connector = connection.connector()
    report = PullReport()
    spent = 0.0
    for start in range(0, rows, PAGE):
        body = qbo_page(start, min(PAGE, rows - start))
        began = time.perf_counter()
        invoices = json.loads(body)["QueryResponse"]["Invoice"]
        changes = connector._changes("invoice", invoices)  # what list_changes returns: parse() per row
        with transaction.atomic():
            changes_write(connection, None, "invoice", changes, report)
        spent += time.perf_counter() - began
    if report.failed:
        raise SystemExit(f"the pull failed {report.failed} invoices: {report}")
    return spent


def bare_bulk_create(rows: int) -> float:
    """The floor: the same customers, invoices (with their raw payload) and lines, plain bulk_create in
    the same pages, no parsing, no hashing, no bindings, no history."""
    from django.db import transaction

    from sync.models import Customer, Invoice, InvoiceLine

    spent = 0.0
    began = time.perf_counter()
    customers = Customer.objects.bulk_create(
        [Customer(name=f"Bare {c}", email=f"bare{c}@example.com") for c in range(CUSTOMERS)]
    )
    spent += time.perf_counter() - began
    for start in range(0, rows, PAGE):
        raws = [qbo_invoice(i) for i in range(start, min(rows, start + PAGE))]
        began = time.perf_counter()
        with transaction.atomic():
            invoices = Invoice.objects.bulk_create(
                [
                    Invoice(
                        number=f"X{raw['DocNumber']}",
                        customer=customers[(start + n) % CUSTOMERS],
                        issue_date=date.fromisoformat(raw["TxnDate"]),
                        due_date=date.fromisoformat(raw["DueDate"]),
                        currency="GBP",
                        total=Decimal(str(raw["TotalAmt"])),
                        amount_due=Decimal(str(raw["Balance"])),
                        raw_payload=raw,
                    )
                    for n, raw in enumerate(raws)
                ],
                batch_size=500,
            )
            InvoiceLine.objects.bulk_create(
                [
                    InvoiceLine(
                        invoice=invoice,
                        line_number=n + 1,
                        description=line["Description"],
                        quantity=Decimal(line["SalesItemLineDetail"]["Qty"]),
                        unit_price=Decimal(str(line["SalesItemLineDetail"]["UnitPrice"])),
                        subtotal=Decimal(str(line["Amount"])),
                    )
                    for invoice, raw in zip(invoices, raws, strict=True)
                    for n, line in enumerate(raw["Line"][:LINES])
                ],
                batch_size=500,
            )
        spent += time.perf_counter() - began
    return spent


def child_pull(rows: int, with_floor: bool) -> None:
    """One pull in a process of its own: prints a JSON line of figures for the parent."""
    fresh_database(f"bench_sync_pull_{rows}")
    from sync.models import Binding, Customer, Invoice, InvoiceLine

    pull_pages(min(rows, PAGE))  # warm up imports and caches on one page, then start again
    for model in (InvoiceLine, Invoice, Binding, Customer):
        model.objects.all().delete()
    for model in (InvoiceLine, Invoice, Customer):
        model.history.all().delete()
    baseline = peak_rss_mib()
    first = pull_pages(rows)
    peak = peak_rss_mib()
    counts = {
        "invoices": Invoice.objects.count(),
        "lines": InvoiceLine.objects.count(),
        "customers": Customer.objects.count(),
        "bindings": Binding.objects.count(),
        "history": Invoice.history.count() + InvoiceLine.history.count(),
    }
    again = pull_pages(rows)
    floor = bare_bulk_create(rows) if with_floor else None
    figures = {"first": first, "again": again, "floor": floor, "baseline": baseline, "peak": peak}
    print(json.dumps({**figures, "counts": counts}))


# --- (b) push ------------------------------------------------------------------------------------------
# per platform: (requests allowed per window, window in seconds, documents per request, what binds)
CEILINGS = {
    "quickbooks": (40, 60.0, 30, "40 batch requests a minute per realm x 30 invoices a batch"),
    "xero": (60, 60.0, 50, "60 calls a minute per tenant x 50 invoices a call"),
}
NUMBER_FIELDS = {"quickbooks": ("Invoice", "DocNumber"), "xero": ("invoice", "InvoiceNumber")}


def default_scale(push: int) -> float:
    """The squeeze that makes both pushes take about a minute at their ceilings."""
    unscaled = sum(-(-push // per) / allowed * window for allowed, window, per, _ in CEILINGS.values())
    return round(min(1.0, 60.0 / unscaled), 3)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sandbox_server(port: int) -> subprocess.Popen:
    """gunicorn serving the app (and so /sandbox/) on `port`, against the bench's database file."""
    import socket

    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, "SANDBOX_ENABLED": "1"},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the sandbox server did not start")


class Timings:
    """Where a push's time goes, measured on our side: waiting for our rate limiter (its database
    state and its sleeps), in HTTP (the request on the wire and the sandbox's own processing), the rest
    (our database work, rendering, recording the exchanges)."""

    def __init__(self) -> None:
        self.limiter = self.http = 0.0
        self.requests = 0
        self.durations: list[float] = []
        self.starts: list[float] = []

    def install(self) -> None:
        import requests

        from connectors.ratelimit import RateLimiter

        acquire, send = RateLimiter.acquire, requests.Session.send

        def timed_acquire(limiter, *args, **kwargs):  # type: ignore[no-untyped-def]
            began = time.perf_counter()
            try:
                return acquire(limiter, *args, **kwargs)
            finally:
                self.limiter += time.perf_counter() - began

        def timed_send(session, *args, **kwargs):  # type: ignore[no-untyped-def]
            began = time.perf_counter()
            self.starts.append(began)
            try:
                return send(session, *args, **kwargs)
            finally:
                self.durations.append(time.perf_counter() - began)
                self.http += self.durations[-1]
                self.requests += 1

        RateLimiter.acquire = timed_acquire  # type: ignore[method-assign]
        requests.Session.send = timed_send  # type: ignore[method-assign]

    def reset(self) -> None:
        self.limiter = self.http = 0.0
        self.requests = 0
        self.durations = []
        self.starts = []


def push_one(platform: str, source, server_url: str, scale: float, push: int, timings: Timings) -> dict:
    from collections import Counter

    from sandbox.models import SandboxHit
    from sync import push as pushing
    from sync.models import PushOperation
    from tests.sync import engine

    dest = engine.destination(platform, server_url, scale=scale)
    profile = engine.mapped_profile(source, dest, prefix="LL-")
    in_flight = pushing.Pusher(profile).concurrency()
    since = time.time()
    timings.reset()
    began = time.perf_counter()
    report = pushing.push_run(profile)
    elapsed = time.perf_counter() - began
    spent = {"limiter": timings.limiter, "http": timings.http, "requests": timings.requests}
    slow = sorted(timings.durations)
    spent["http_first10"] = sum(timings.durations[:10]) / 10
    spent["http_last10"] = sum(timings.durations[-10:]) / 10
    spent["http_median"] = slow[len(slow) // 2]
    kind, field = NUMBER_FIELDS[platform]
    stored = Counter(record.get(field) for record in engine.live_records(platform, kind))
    wanted = {f"LL-{engine.invoice_record(i).number}" for i in range(push)}
    hits = SandboxHit.objects.filter(platform=platform, at__gte=since)
    allowed, window, per, binds = CEILINGS[platform]
    created = PushOperation.objects.filter(
        profile=profile, object_type="invoice", operation="create", state="succeeded"
    ).count()
    requests_ = -(-push // per)
    # the client's own pace, before the limit holds it back: the first 90% of one window's allowance
    first = int(0.9 * allowed)
    pace = first * per / (timings.starts[first] - timings.starts[0]) if len(timings.starts) > first else None
    return {
        "platform": platform,
        "elapsed": elapsed,
        "created": created,
        "report_created": report.created,
        "failed": report.failed + report.blocked,
        "failed_ops": PushOperation.objects.filter(profile=profile, state__in=["failed", "blocked"]).count(),
        "unsettled": PushOperation.objects.filter(
            profile=profile, state__in=["in_flight", "uncertain", "retry_scheduled"]
        ).count(),
        "stored": sum(stored[n] for n in wanted),
        "missing": sum(1 for n in wanted if stored[n] == 0),
        "duplicated": sum(stored[n] - 1 for n in wanted if stored[n] > 1),
        "refused_429": hits.filter(status=429).count(),
        "hits": hits.count(),
        "ceiling": allowed * per / (window * scale),
        "window": window * scale,
        "binds": binds,
        # a client with no overhead at all, from an empty window: the first window's allowance at once,
        # then one window's allowance per window
        "perfect": (-(-requests_ // allowed) - 1) * window * scale,
        "pace": pace,
        "in_flight": in_flight,
        "pace_requests": first,
        **spent,
    }


def push_part(push: int, scale: float) -> list[dict]:
    """(b): both pushes over HTTP to a gunicorn-served sandbox sharing the bench database."""
    os.environ["SANDBOX_ENABLED"] = "1"
    os.environ["SANDBOX_RATE_PERIOD_SCALE"] = str(scale)
    fresh_database("bench_sync_push")
    from tests.sync import engine

    source, _ = engine.source_with_invoices(0)
    from sync.services import records_write

    for start in range(0, push, PAGE):
        records_write(
            connection=source,
            records=[engine.invoice_record(i) for i in range(start, min(push, start + PAGE))],
        )
    latency = int(os.environ.get("LATENCY_MS") or 0)
    if latency:  # every sandbox answer this much later, as a distant platform's would be
        from sandbox import core

        for platform in CEILINGS:
            core.fault_add(platform, "latency", delay_ms=latency, times=None)
    port = free_port()
    server = start_sandbox_server(port)
    timings = Timings()
    timings.install()
    try:
        return [
            push_one(platform, source, f"http://127.0.0.1:{port}", scale, push, timings)
            for platform in ("quickbooks", "xero")
        ]
    finally:
        server.terminate()
        server.wait(timeout=20)


def run_child(*args: str) -> dict | list:
    env = {k: v for k, v in os.environ.items()}
    answer = subprocess.run(
        [sys.executable, __file__, *args], env=env, capture_output=True, text=True, check=False
    )
    if answer.returncode:
        raise SystemExit(f"child {args} failed:\n{answer.stdout}\n{answer.stderr}")
    return json.loads(answer.stdout.strip().splitlines()[-1])


def report_pull(rows: int, small_rows: int, small: dict, big: dict) -> None:
    floor, first, again = big["floor"], big["first"], big["again"]
    print(f"(a) pull of {rows:,} QuickBooks invoices (pages of {PAGE:,}, one transaction each)")
    print(f"    first pull       {first:8.1f} s {rows / first:8,.0f}/s  {first / floor:5.2f}x bulk_create")
    print(f"    again, unchanged {again:8.1f} s {rows / again:8,.0f}/s  {again / floor:5.2f}x bulk_create")
    print(f"    bare bulk_create {floor:8.1f} s {rows / floor:8,.0f}/s  (target: first pull at most 2x)")
    print(f"    wrote {big['counts']}")
    grown = (small["peak"] - small["baseline"], big["peak"] - big["baseline"])
    print(
        f"(c) peak RSS while pulling: {small_rows:,} invoices {small['peak']:.0f} MiB (+{grown[0]:.0f}), "
        f"{rows:,} invoices {big['peak']:.0f} MiB (+{grown[1]:.0f})"
    )


def report_push(push: int, results: list[dict]) -> None:
    print(f"(b) push of {push:,} invoices to each sandbox over HTTP, limits squeezed by SCALE")
    for r in results:
        rate = r["created"] / r["elapsed"]
        share = 100 * rate / r["ceiling"]
        perfect = 100 * (push / r["perfect"]) / r["ceiling"] if r["perfect"] else float("nan")
        print(
            f"    {r['platform']:10} {r['elapsed']:6.1f} s {rate:7.1f}/s = {share:5.1f}% of the ceiling "
            f"({r['ceiling']:.1f}/s: {r['binds']}, window {r['window']:.1f} s; "
            f"no-overhead client {perfect:.0f}%)"
        )
        print(
            f"        created {r['created']}, failed {r['failed']} (ops {r['failed_ops']}), unsettled "
            f"{r['unsettled']}, missing {r['missing']}, duplicated {r['duplicated']}, 429s {r['refused_429']}"
        )
        print(
            f"        {r['requests']} requests, up to {r['in_flight']} in flight; summed over them: limiter "
            f"{r['limiter']:.1f} s, HTTP {r['http']:.1f} s (median {1000 * r['http_median']:.0f} ms, "
            f"first ten {1000 * r['http_first10']:.0f} ms, last ten {1000 * r['http_last10']:.0f} ms)"
        )
        if r["pace"]:
            print(
                f"        unhindered pace: the first {r['pace_requests']} requests at {r['pace']:.0f} "
                f"invoices/s = {100 * r['pace'] / r['ceiling']:.0f}% of the ceiling "
                "(above 100%: the limit binds, not the client)"
            )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--pull":
        child_pull(int(sys.argv[2]), with_floor=sys.argv[3] == "floor")
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--push":
        push = int(sys.argv[2])
        scale = float(os.environ.get("SCALE") or default_scale(push))
        print(json.dumps(push_part(push, scale)))
        return
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("ROWS") or 100_000)
    push = int(sys.argv[2]) if len(sys.argv) > 2 else int(os.environ.get("PUSH") or 5_000)
    small_rows = max(PAGE, rows // 10)
    small = run_child("--pull", str(small_rows), "none")
    big = run_child("--pull", str(rows), "floor")
    report_pull(rows, small_rows, small, big)  # type: ignore[arg-type]
    if push:
        report_push(push, run_child("--push", str(push)))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
