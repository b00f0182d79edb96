"""Exactly once, whatever crashes when: a worker killed at random points of the push, over real HTTP to
the QuickBooks and Xero sandboxes, then recovery; every document exists in the destination once.

The kill is a BaseException raised at the outbox's crash points: nothing after it runs, and the open
transaction is rolled back, as when the process dies. The points are before the request leaves, after
the destination wrote but before our binding is committed, and after the commit. A second test does the
same with several batches in flight at once (sync.sending), where kills can strike more than one of them
in a run.
"""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from connectors.registry import connector_class
from sync import push as pushing
from sync.models import Binding, Invoice, Payment, PushOperation
from sync.services import records_write
from tests.sync import engine

pytestmark = pytest.mark.django_db(transaction=True)
CRASHES_PER_PLATFORM = 110
SCALE = 0.01  # the platforms' rate-limit windows, squeezed a hundredfold


POINTS = ("before_request", "after_write", "after_commit")


class WorkerKilled(BaseException):
    pass


KINDS = {
    "quickbooks": {"invoice": ("Invoice", "DocNumber"), "payment": ("Payment", "PaymentRefNum")},
    "xero": {"invoice": ("invoice", "InvoiceNumber"), "payment": ("payment", "Reference")},
}


@pytest.fixture
def squeezed(settings):
    settings.SANDBOX_RATE_PERIOD_SCALE = SCALE


@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_every_document_exists_once_after_random_crashes_and_recovery(live_server, squeezed, platform):
    crash_and_recover(platform, live_server.url, crashes=CRASHES_PER_PLATFORM, at_least=15, each_run=3)


@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_every_document_exists_once_when_batches_in_flight_together_crash(
    live_server, squeezed, platform, settings, monkeypatch
):
    """Batches of two invoices, three batches in flight at once: a kill in one batch leaves the others to
    finish or be killed in turn, and recovery still leaves every document there exactly once."""
    settings.SYNC_PUSH_CONCURRENCY = 3
    monkeypatch.setattr(connector_class(platform), "batch_limit", 2)
    threads: set[str] = set()
    crash_and_recover(platform, live_server.url, crashes=40, at_least=5, each_run=8, threads=threads)
    assert len(threads) > 1, threads  # the batches really went out side by side


@pytest.mark.parametrize("platform", ["quickbooks", "xero"])
def test_a_push_with_batches_side_by_side_counts_every_document_once(
    live_server, platform, settings, monkeypatch
):
    settings.SYNC_PUSH_CONCURRENCY = 4
    monkeypatch.setattr(connector_class(platform), "batch_limit", 3)
    dest = engine.destination(platform, live_server.url)
    source, _ = engine.source_with_invoices(20)
    profile = engine.mapped_profile(source, dest, prefix="LL-")

    report = pushing.push_run(profile)

    ops = PushOperation.objects.filter(profile=profile, object_type="invoice")
    assert sorted(ops.values_list("state", flat=True)) == ["succeeded"] * 20
    customers = PushOperation.objects.filter(
        profile=profile, object_type="customer", state="succeeded"
    ).count()
    assert (report.seen, report.created, report.failed, report.skipped) == (20, 20 + customers, 0, 0), report
    kind, field = KINDS[platform]["invoice"]
    numbers = Counter(r[field] for r in engine.live_records(platform, kind))
    assert all(numbers[f"LL-INV-{i:05d}"] == 1 for i in range(20)), numbers
    assert pushing.push_run(profile).created == 0  # nothing left to do


def crash_and_recover(
    platform: str,
    server_url: str,
    *,
    crashes: int,
    at_least: int,
    each_run: int,
    threads: set[str] | None = None,
) -> None:
    rng = random.Random(f"crash:{platform}:{each_run}")
    dest = engine.destination(platform, server_url, scale=SCALE)
    source, records = engine.source_with_invoices(each_run + 1)
    records_write(connection=source, records=[engine.payment_record(i, r) for i, r in enumerate(records)])
    profile = engine.mapped_profile(source, dest, object_types=("invoice", "payment"), prefix="LL-")
    hits: Counter[str] = Counter()
    next_index = each_run + 1
    lock = threading.Lock()

    def kill(point: str, operation: PushOperation) -> None:
        with lock:  # batches in flight together reach their crash points from several threads
            if threads is not None:
                threads.add(threading.current_thread().name)
            # with threads, the first kill of a run stops the rest of it: the point each kill may strike
            # takes turns, so the later points are reached as often as the first
            turn = POINTS[sum(hits.values()) % len(POINTS)] if threads is not None else point
            if point == turn and sum(hits.values()) < crashes and rng.random() < 0.25:
                hits[point] += 1
                raise WorkerKilled(point)

    pushing.common.CRASH_HOOK = kill
    try:
        while sum(hits.values()) < crashes:
            try:
                pushing.push_run(profile)
            except WorkerKilled:
                continue
            # a run got through: new documents arrive at the source, so the next runs have work to crash in
            new = [engine.invoice_record(i) for i in range(next_index, next_index + each_run)]
            records_write(connection=source, records=new)
            records_write(
                connection=source,
                records=[engine.payment_record(next_index + i, r) for i, r in enumerate(new)],
            )
            next_index += each_run
    finally:
        pushing.common.CRASH_HOOK = None

    recovery = pushing.push_run(profile)  # the worker is back: no crashes now
    assert recovery.failed == 0, recovery

    assert min(hits[p] for p in POINTS) >= at_least, hits
    invoice_kind, invoice_field = KINDS[platform]["invoice"]
    numbers = Counter(r[invoice_field] for r in engine.live_records(platform, invoice_kind))
    invoices = list(Invoice.objects.filter(source_connection=source))
    bound = dict(
        Binding.objects.filter(connection=dest, object_type="invoice").values_list("object_id", "external_id")
    )
    for invoice in invoices:
        assert numbers[f"LL-{invoice.number}"] == 1, (
            f"{invoice.number}: {numbers[f'LL-{invoice.number}']} copies"
        )
        assert invoice.pk in bound
    payment_kind, payment_field = KINDS[platform]["payment"]
    references = Counter(r.get(payment_field) for r in engine.live_records(platform, payment_kind))
    for payment in Payment.objects.filter(source_connection=source):
        reference = f"LL{profile.pk}-P{payment.pk}"
        assert references[reference] == 1, f"payment {payment.reference}: {references[reference]} copies"
    assert not PushOperation.objects.filter(profile=profile, state__in=["in_flight", "uncertain"]).exists()


def test_a_rate_limit_lock_lost_while_held_does_not_fail_the_request(settings):
    """A worker that stalls past the Redis lock's timeout (or finds its lock deleted) still sends its
    request: the limiter's state is written, and failing the push over it would kill the run."""
    if not getattr(settings, "REDIS_URL", ""):
        pytest.skip("the shared limiter uses the database without REDIS_URL")
    from connectors.ratelimit import RedisStore

    store = RedisStore(settings.REDIS_URL)
    key = f"test:lost-lock:{random.Random().random()}"

    def change(state):
        store.redis.delete(f"ledgerlink:ratelimit:{key}:lock")  # the lock expires while we hold it
        return "admitted", {"n": 1}

    assert store.update(key, change) == "admitted"
    assert store.redis.get(f"ledgerlink:ratelimit:{key}") == b'{"n": 1}'
    store.redis.delete(f"ledgerlink:ratelimit:{key}")
