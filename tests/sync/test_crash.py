"""Exactly once, whatever crashes when: a worker killed at random points of the push, over real HTTP to
the QuickBooks and Xero sandboxes, then recovery; every document exists in the destination once.

The kill is a BaseException raised at the outbox's crash points: nothing after it runs, and the open
transaction is rolled back, as when the process dies. The points are before the request leaves, after
the destination wrote but before our binding is committed, and after the commit.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from sync import push as pushing
from sync.models import Binding, Invoice, Payment, PushOperation
from sync.services import records_write
from tests.sync import engine

pytestmark = pytest.mark.django_db(transaction=True)
CRASHES_PER_PLATFORM = 110
SCALE = 0.01  # the platforms' rate-limit windows, squeezed a hundredfold


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
    rng = random.Random(f"crash:{platform}")
    dest = engine.destination(platform, live_server.url, scale=SCALE)
    source, records = engine.source_with_invoices(4)
    records_write(connection=source, records=[engine.payment_record(i, r) for i, r in enumerate(records)])
    profile = engine.mapped_profile(source, dest, object_types=("invoice", "payment"), prefix="LL-")
    hits: Counter[str] = Counter()
    next_index = 4

    def kill(point: str, operation: PushOperation) -> None:
        if sum(hits.values()) < CRASHES_PER_PLATFORM and rng.random() < 0.25:
            hits[point] += 1
            raise WorkerKilled(point)

    pushing.CRASH_HOOK = kill
    try:
        while sum(hits.values()) < CRASHES_PER_PLATFORM:
            try:
                pushing.push_run(profile)
            except WorkerKilled:
                continue
            # a run got through: new documents arrive at the source, so the next runs have work to crash in
            new = [engine.invoice_record(i) for i in range(next_index, next_index + 3)]
            records_write(connection=source, records=new)
            records_write(
                connection=source,
                records=[engine.payment_record(next_index + i, r) for i, r in enumerate(new)],
            )
            next_index += 3
    finally:
        pushing.CRASH_HOOK = None

    recovery = pushing.push_run(profile)  # the worker is back: no crashes now
    assert recovery.failed == 0, recovery

    assert min(hits[p] for p in ("before_request", "after_write", "after_commit")) >= 15, hits
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
