"""Batches of creates kept in flight side by side, up to what the destination allows at once.

A push sends its creates in batches (Xero 50 invoices a call, QuickBooks batch requests of 30). Sent one
after another, a run spends most of its time waiting for answers, and a destination whose per-minute
allowance is large next to its latency (Xero: 60 calls a minute, 5 at once) is left idle. `Sender` keeps
up to `concurrency` batches in flight, each on a worker thread with its own database connection, so
each batch still commits its intents before its request leaves and its bindings straight after its
answer, in its own transactions: the outbox protocol holds per batch, whatever the other batches do.

With a concurrency of 1, or inside an open transaction (whose uncommitted rows other connections
cannot see), each batch runs at once in the calling thread, exactly as a plain call would.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Any

from django.db import connections, transaction


def _in_worker(call: Callable[..., Any], *args: Any) -> Any:
    try:
        return call(*args)
    finally:
        connections.close_all()  # this worker thread's connections, not the caller's


def _worse(current: BaseException | None, new: BaseException) -> BaseException:
    """The failure a run reports: the first one, unless a later one is not an Exception (the process is
    going down: KeyboardInterrupt, SystemExit, a crash test's kill), which wins."""
    if current is None:
        return new
    if isinstance(current, Exception) and not isinstance(new, Exception):
        return new
    return current


class Sender:
    """Runs `submit`ted calls with at most `concurrency` at once. The first failure stops new work:
    the next `submit` or `drain` raises it, after the calls already in flight have been waited for
    by `drain` (and always by `close`, so no call outlives the run that made it)."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = max(1, concurrency)
        if self.concurrency > 1 and transaction.get_connection().in_atomic_block:
            self.concurrency = 1
        self._executor: ThreadPoolExecutor | None = None
        self._pending: set[Future[Any]] = set()
        self._failure: BaseException | None = None

    def submit(self, call: Callable[..., Any], *args: Any) -> None:
        if self.concurrency == 1:
            call(*args)
            return
        self._raise()
        while len(self._pending) >= 2 * self.concurrency:
            done, _ = wait(self._pending, return_when=FIRST_COMPLETED)
            self._collect(done)
        self._raise()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="push-batch")
        context = contextvars.copy_context()  # the sync attempt the exchanges are recorded against
        self._pending.add(self._executor.submit(context.run, _in_worker, call, *args))

    def drain(self) -> None:
        """Wait for every call in flight; raise the first failure among them (or an earlier one)."""
        self._wait_all()
        self._raise()

    def close(self) -> None:
        """Wait for every call in flight and stop the worker threads; raises nothing."""
        self._wait_all()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _wait_all(self) -> None:
        if self._pending:
            done, _ = wait(self._pending)
            self._collect(done)

    def _collect(self, done: set[Future[Any]]) -> None:
        for future in done:
            self._pending.discard(future)
            failure = future.exception()
            if failure is not None:
                self._failure = _worse(self._failure, failure)

    def _raise(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def __enter__(self) -> Sender:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                self.drain()
        finally:
            self.close()
        if value is not None and self._failure is not None and _worse(value, self._failure) is not value:
            failure, self._failure = self._failure, None
            raise failure from value
