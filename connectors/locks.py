"""Named leases: "only one worker does this at a time", across processes and machines.

A lease is claimed in a short transaction and held without one, so the work under it (an HTTP call to a
token endpoint, a sync run) never keeps a database transaction open; on SQLite that would hold the whole
database's write lock for the length of a network call. A lease expires after `ttl` seconds, so a worker
that dies holding one blocks the others only until then. With `REDIS_URL` set the lease is a Redis lock.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from connectors.base import RetryableError


class LeaseBusyError(RetryableError):
    """Someone else holds the lease and did not let go in time."""


def _claim(key: str, holder: str, ttl: float) -> bool:
    from connectors.models import Lease

    now = timezone.now()
    try:
        with transaction.atomic():
            lease = Lease.objects.select_for_update().filter(key=key).first()
            if lease is None:
                Lease.objects.create(key=key, holder=holder, expires_at=now + timedelta(seconds=ttl))
                return True
            if lease.expires_at > now:
                return False
            lease.holder = holder
            lease.expires_at = now + timedelta(seconds=ttl)
            lease.save(update_fields=["holder", "expires_at"])
            return True
    except IntegrityError:  # another worker created it first
        return False


def _let_go(key: str, holder: str) -> None:
    from connectors.models import Lease

    Lease.objects.filter(key=key, holder=holder).delete()


@contextlib.contextmanager
def lease(key: str, *, ttl: float = 60, wait: float = 45, poll: float = 0.1) -> Iterator[None]:
    """Hold `key` for the block; LeaseBusyError if it cannot be had within `wait` seconds."""
    url = getattr(settings, "REDIS_URL", "")
    if url:
        import redis

        lock = redis.Redis.from_url(url).lock(f"ledgerlink:lease:{key}", timeout=ttl, blocking_timeout=wait)
        if not lock.acquire():
            raise LeaseBusyError(f"{key} is busy; try again shortly", retry_after=poll * 10)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # expired meanwhile: someone else may hold it now
                lock.release()
        return

    holder = uuid.uuid4().hex
    deadline = time.monotonic() + wait
    while not _claim(key, holder, ttl):
        if time.monotonic() > deadline:
            raise LeaseBusyError(f"{key} is busy; try again shortly", retry_after=poll * 10)
        time.sleep(poll)
    try:
        yield
    finally:
        _let_go(key, holder)
