"""A rate limiter shared by every worker and process that talks to one connection.

Each platform documents its limits (`Connector.rate_limits`): so many requests per period, and so many in
flight at once. Before a request leaves, `RateLimiter.acquire` admits it against every limit of the
connection or says how long to wait; after the answer, `release` frees its concurrency slot. A 429 from
the platform blocks the whole key until its `Retry-After` has passed (`penalise`).

The state lives in Redis when `REDIS_URL` is set (under a Redis lock) and otherwise in the database (under
a row lock), so two gunicorn workers and four qcluster workers see the same counts. Requests are counted
in buckets of 1/60th of each period and a request is admitted only if the buckets that could overlap the
last period hold fewer than the limit: conservative, so no sliding window ever holds more than the limit.
Each period is also counted 5% + 100 ms longer, so uneven latency on the way to the platform cannot push
one request too many into the platform's own window.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import transaction

from connectors.base import RateLimit, RetryableError

log = logging.getLogger(__name__)
BUCKETS_PER_PERIOD = 60
# Requests reach the platform a little after they are admitted, and not all equally late: each period is
# counted this much longer so that uneven latency cannot squeeze one more request into the platform's window.
GUARD_FACTOR = 1.05
GUARD_SECONDS = 0.1
CONCURRENCY_POLL = 0.05  # seconds between looks for a free concurrency slot


def admit(
    state: dict[str, Any],
    limits: Sequence[RateLimit],
    *,
    now: float,
    token: str,
    lease: float,
    guard: bool = True,
    resolution: int = BUCKETS_PER_PERIOD,
) -> tuple[float, dict[str, Any]]:
    """Admit one request at `now`: (0, new state) when it may go, else (seconds to wait, pruned state).

    Pure: the stores call it under their lock. `guard=False` counts the exact periods (what a platform
    enforcing its own limit does); a higher `resolution` (buckets per period) counts closer to an exact
    sliding window.
    """
    buckets: dict[str, dict[str, int]] = state.get("buckets", {})
    inflight: dict[str, float] = {t: exp for t, exp in state.get("inflight", {}).items() if exp > now}
    blocked_until = float(state.get("blocked_until", 0))
    new_state: dict[str, Any] = {"buckets": {}, "inflight": inflight, "blocked_until": blocked_until}
    wait = max(0.0, blocked_until - now)

    if guard:
        limits = tuple(_guarded(limit) for limit in limits)
    for limit in limits:
        if limit.concurrent:
            if len(inflight) >= limit.limit:
                # slots free up as requests finish (or their lease runs out): look again shortly
                wait = max(wait, min(CONCURRENCY_POLL, min(inflight.values()) - now))
            continue
        width = limit.period / resolution
        current = math.floor(now / width)
        oldest = current - math.ceil(limit.period / width)  # the bucket the window's start falls in
        kept = {int(i): n for i, n in buckets.get(limit.name, {}).items() if int(i) >= oldest}
        new_state["buckets"][limit.name] = kept
        used = sum(kept.values())
        if used >= limit.limit:
            # wait until enough old buckets fall out of the window
            excess = used - limit.limit + 1
            for index in sorted(kept):
                excess -= kept[index]
                if excess <= 0:
                    wait = max(wait, (index + 1) * width + limit.period - now)
                    break

    if wait > 0:
        return wait, new_state
    for limit in limits:
        if limit.concurrent:
            inflight[token] = now + lease
            continue
        width = limit.period / resolution
        current = math.floor(now / width)
        kept = new_state["buckets"][limit.name]
        kept[current] = kept.get(current, 0) + 1
    new_state["buckets"] = {
        name: {str(i): n for i, n in kept.items()} for name, kept in new_state["buckets"].items()
    }
    return 0.0, new_state


def _guarded(limit: RateLimit) -> RateLimit:
    if limit.concurrent:
        return limit
    return RateLimit(limit.name, limit.limit, limit.period * GUARD_FACTOR + GUARD_SECONDS)


class DatabaseStore:
    """State in a `RateLimitState` row, changed under a row lock (IMMEDIATE transactions on SQLite)."""

    def update(self, key: str, change: Callable[[dict[str, Any]], tuple[Any, dict[str, Any]]]) -> Any:
        from connectors.models import RateLimitState

        with transaction.atomic():
            RateLimitState.objects.get_or_create(key=key)
            row = RateLimitState.objects.select_for_update().get(key=key)
            result, row.state = change(row.state or {})
            row.save(update_fields=["state", "updated_at"])
        return result


class RedisStore:
    """State as a JSON value in Redis, changed under a Redis lock."""

    def __init__(self, url: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(url)

    def update(self, key: str, change: Callable[[dict[str, Any]], tuple[Any, dict[str, Any]]]) -> Any:
        from redis.exceptions import LockNotOwnedError

        name = f"ledgerlink:ratelimit:{key}"
        lock = self.redis.lock(f"{name}:lock", timeout=10, blocking_timeout=30)
        if not lock.acquire():
            raise RetryableError(f"the rate-limit state of {key} stayed locked for 30 s", retry_after=1.0)
        try:
            raw = self.redis.get(name)
            result, state = change(json.loads(raw) if raw else {})
            self.redis.set(name, json.dumps(state), ex=2 * 86400)
        finally:
            try:
                lock.release()
            except LockNotOwnedError:
                # The lock went while held: it timed out (this process stalled past 10 s) or was
                # deleted. The state is written; at worst one request more than the limit went out, which
                # the platform answers with a 429 we honour. Failing the request would be worse.
                log.warning("rate-limit lock of %s was lost before its release", key)
        return result


def default_store() -> DatabaseStore | RedisStore:
    url = getattr(settings, "REDIS_URL", "")
    return RedisStore(url) if url else DatabaseStore()


class RateLimiter:
    def __init__(
        self,
        key: str,
        limits: Sequence[RateLimit],
        *,
        store: DatabaseStore | RedisStore | None = None,
        max_wait: float = 120.0,
        lease: float = 120.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.key = key
        self.limits = tuple(limits)
        self.store = store or default_store()
        self.max_wait = max_wait
        self.lease = lease
        self.clock = clock
        self.sleep = sleep

    def acquire(self) -> str:
        """Block until a request may go and return its slot token; RetryableError if that is too far off."""
        token = uuid.uuid4().hex
        if not self.limits:
            return token
        waited = 0.0
        while True:
            now = self.clock()
            wait = self.store.update(
                self.key,
                lambda state, now=now: admit(state, self.limits, now=now, token=token, lease=self.lease),
            )
            if wait <= 0:
                return token
            if waited + wait > self.max_wait:
                raise RetryableError(
                    f"rate limit of {self.key} reached; next request possible in {wait:.0f} s",
                    retry_after=wait,
                )
            self.sleep(wait)
            waited += wait

    def release(self, token: str) -> None:
        if not any(limit.concurrent for limit in self.limits):
            return

        def change(state: dict[str, Any]) -> tuple[None, dict[str, Any]]:
            state.get("inflight", {}).pop(token, None)
            return None, state

        self.store.update(self.key, change)

    def penalise(self, seconds: float) -> None:
        """The platform said 429: nobody on this key sends anything for `seconds`."""
        until = self.clock() + seconds

        def change(state: dict[str, Any]) -> tuple[None, dict[str, Any]]:
            state["blocked_until"] = max(float(state.get("blocked_until", 0)), until)
            return None, state

        self.store.update(self.key, change)
