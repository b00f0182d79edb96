"""The shared rate limiter: no window ever holds more than the limit, across threads and stores."""

from __future__ import annotations

import threading
import time

import pytest
from django.conf import settings
from django.db import connection as db_connection
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from connectors.base import RateLimit, RetryableError
from connectors.ratelimit import DatabaseStore, RateLimiter, RedisStore, admit


def window_max(times: list[float], period: float) -> int:
    """The most requests any half-open window (t - period, t] holds."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - period:
            start += 1
        most = max(most, end - start + 1)
    return most


def run_admissions(arrivals: list[float], limits: tuple[RateLimit, ...]) -> list[float]:
    """Feed arrival times through `admit`, each request waiting until it is admitted; admitted times."""
    state: dict = {}
    admitted = []
    for index, arrival in enumerate(sorted(arrivals)):
        now = max(arrival, admitted[-1] if admitted else arrival)
        while True:
            wait, state = admit(state, limits, now=now, token=str(index), lease=1.0)
            if wait <= 0:
                admitted.append(now)
                break
            now += wait
    return admitted


@hypothesis_settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=30, allow_nan=False), min_size=1, max_size=250),
    st.integers(min_value=1, max_value=40),
    st.sampled_from([1.0, 2.5, 60.0]),
)
def test_no_window_ever_holds_more_than_the_limit(arrivals, limit, period):
    admitted = run_admissions(arrivals, (RateLimit("r", limit, period),))
    assert window_max(admitted, period) <= limit


def test_the_limiter_uses_the_allowance_rather_than_starving():
    # 500/min with requests arriving 20/s: in the first minute nearly all 500 get through
    arrivals = [i / 20 for i in range(1200)]
    admitted = run_admissions(arrivals, (RateLimit("minute", 500, 60.0),))
    assert sum(1 for at in admitted if at < 60) >= 490
    assert window_max(admitted, 60.0) <= 500


def test_every_limit_of_a_connection_applies_at_once():
    limits = (RateLimit("minute", 60, 60.0), RateLimit("day", 100, 86400.0))
    admitted = run_admissions([i * 0.1 for i in range(150)], limits)
    assert window_max(admitted, 60.0) <= 60
    assert window_max(admitted, 86400.0) <= 100


def test_concurrency_slots_are_held_until_released_or_expired():
    limits = (RateLimit("concurrent", 2, concurrent=True),)
    wait, state = admit({}, limits, now=0, token="a", lease=10)
    wait, state = admit(state, limits, now=0, token="b", lease=10)
    assert wait == 0
    wait, state = admit(state, limits, now=1, token="c", lease=10)
    assert wait > 0
    state["inflight"].pop("a")
    wait, state = admit(state, limits, now=1, token="c", lease=10)
    assert wait == 0
    # a slot whose holder died is freed when its lease runs out
    wait, state = admit(state, limits, now=11, token="d", lease=10)
    assert wait == 0


def test_a_penalty_blocks_the_key_until_it_has_passed(db):
    clock = [1000.0]
    slept = []
    limiter = RateLimiter(
        "test:penalty",
        (RateLimit("s", 100, 1.0),),
        store=DatabaseStore(),
        clock=lambda: clock[0],
        sleep=lambda s: (slept.append(s), clock.__setitem__(0, clock[0] + s)),
    )
    limiter.penalise(5)
    limiter.acquire()
    assert slept and sum(slept) >= 5


def test_a_wait_beyond_max_wait_raises_retryable_with_retry_after(db):
    limiter = RateLimiter("test:day", (RateLimit("day", 1, 86400.0),), store=DatabaseStore(), max_wait=60)
    limiter.acquire()
    with pytest.raises(RetryableError) as caught:
        limiter.acquire()
    assert caught.value.retry_after > 3600


def _hammer(limiter_factory, threads: int, per_thread: int) -> list[float]:
    admitted: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work():
        limiter = limiter_factory()
        try:
            for _ in range(per_thread):
                token = limiter.acquire()
                with lock:
                    admitted.append(time.time())
                limiter.release(token)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            db_connection.close()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors
    return admitted


@pytest.mark.django_db(transaction=True)
def test_workers_sharing_the_database_store_never_exceed_the_limit():
    limits = (RateLimit("burst", 5, 0.5),)
    admitted = _hammer(lambda: RateLimiter("test:threads", limits, store=DatabaseStore()), 4, 5)
    assert len(admitted) == 20
    assert window_max(admitted, 0.5) <= 5


def test_workers_sharing_the_redis_store_never_exceed_the_limit():
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        pytest.skip("REDIS_URL is not set")
    store = RedisStore(url)
    store.redis.delete("ledgerlink:ratelimit:test:redis")
    limits = (RateLimit("burst", 5, 0.5), RateLimit("concurrent", 2, concurrent=True))
    admitted = _hammer(lambda: RateLimiter("test:redis", limits, store=RedisStore(url)), 4, 5)
    assert len(admitted) == 20
    assert window_max(admitted, 0.5) <= 5
