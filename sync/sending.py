"""Batches of creates kept in flight side by side, up to what the destination allows at once.

A push sends its creates in batches (Xero 50 invoices a call, QuickBooks batch requests of 30). Sent one
after another, a run spends most of its time waiting for answers, and a destination whose per-minute
allowance is large next to its latency (Xero: 60 calls a minute, 5 at once) is left idle. `Sender` keeps
up to `concurrency` batches in flight, each on a worker thread with its own database connection, so
each batch still commits its intents before its request leaves and its bindings straight after its
answer, in its own transactions: the outbox protocol holds per batch, whatever the other batches do.

With a concurrency of 1, inside an open transaction (whose uncommitted rows other connections cannot
see), or on an in-memory SQLite database, each batch runs at once in the calling thread, exactly as a
plain call would.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Any

from django.db import connections, transaction

log = logging.getLogger(__name__)


def _in_worker(call: Callable[..., Any], *args: Any) -> Any:
    try:
        return call(*args)
    finally:
        connections.close_all()  # this worker thread's connections, not the caller's


def _in_memory(connection: Any) -> bool:
    """An in-memory SQLite database: other threads' connections share it only through SQLite's shared
    cache, whose table locks fail at once instead of waiting, so its work stays in the calling thread."""
    check = getattr(connection, "is_in_memory_db", None)
    return bool(check and check())


def _worse(current: BaseException | None, new: BaseException) -> BaseException:
    """The failure a run reports: the first one, unless a later one is not an Exception (the process is
    going down: KeyboardInterrupt, SystemExit, a crash test's kill), which wins."""
    if current is None:
        return new
    if isinstance(current, Exception) and not isinstance(new, Exception):
        return new
    return current


class Sender:
    """Runs `submit`ted calls with at most `concurrency` at once.

    The first failure stops new work: calls not yet started are cancelled, and the next `submit`,
    `check` or `drain` raises it once the calls already running have been waited for (`close` always
    waits, so no call outlives the run that made it). Failures that are not raised are logged.
    `heartbeat` is called every `beat_seconds` while the caller waits, so a job's lease stays renewed
    (and a cancel is noticed) however long the destination keeps the batches waiting.
    """

    def __init__(
        self,
        concurrency: int,
        *,
        heartbeat: Callable[[], None] | None = None,
        beat_seconds: float = 10.0,
    ) -> None:
        self.concurrency = max(1, concurrency)
        connection = transaction.get_connection()
        if self.concurrency > 1 and (connection.in_atomic_block or _in_memory(connection)):
            self.concurrency = 1
        self.heartbeat = heartbeat
        self.beat_seconds = beat_seconds
        self._executor: ThreadPoolExecutor | None = None
        self._pending: set[Future[Any]] = set()
        self._failure: BaseException | None = None

    def submit(self, call: Callable[..., Any], *args: Any) -> None:
        if self.concurrency == 1:
            call(*args)
            return
        self.check()
        while len(self._pending) >= self.concurrency:
            self._wait(FIRST_COMPLETED)
        self.check()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="push-batch")
        context = contextvars.copy_context()  # the sync attempt the exchanges are recorded against
        self._pending.add(self._executor.submit(context.run, _in_worker, call, *args))

    def check(self) -> None:
        """Raise the first failure of a call that has finished, if any (after waiting for the calls
        still running); nothing otherwise."""
        self._collect({future for future in self._pending if future.done()})
        if self._failure is not None:
            self._wait_all()
            failure, self._failure = self._failure, None
            raise failure

    def drain(self) -> None:
        """Wait for every call in flight; raise the first failure among them (or an earlier one)."""
        self._wait_all()
        self.check()

    def close(self) -> None:
        """Wait for every call in flight and stop the worker threads; raises nothing (a failure not
        raised by then is logged)."""
        self._settle()
        if self._failure is not None:
            log.error("a batch failed while the run was stopping", exc_info=self._failure)
            self._failure = None
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _wait(self, return_when: str) -> None:
        done, _ = wait(self._pending, timeout=self.beat_seconds, return_when=return_when)
        self._collect(done)
        if not done and self.heartbeat is not None:
            self.heartbeat()

    def _wait_all(self) -> None:
        while self._pending:
            self._wait(FIRST_COMPLETED)

    def _settle(self) -> None:
        """Wait for the calls in flight without a heartbeat (the run is ending anyway)."""
        if self._pending:
            done, _ = wait(self._pending)
            self._collect(done)

    def _collect(self, done: set[Future[Any]]) -> None:
        for future in done:
            self._pending.discard(future)
            if future.cancelled():
                continue
            failure = future.exception()
            if failure is None:
                continue
            kept = _worse(self._failure, failure)
            dropped = self._failure if kept is failure else failure
            if dropped is not None:
                log.error("a batch failed as well, and another failure stopped the run", exc_info=dropped)
            self._failure = kept
            for other in self._pending:  # nothing new starts once a call has failed
                other.cancel()

    def __enter__(self) -> Sender:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        if value is None:
            try:
                self.drain()
            finally:
                self.close()
            return
        self._settle()
        if self._failure is not None and _worse(value, self._failure) is not value:
            failure, self._failure = self._failure, None
            self.close()
            raise failure from value
        self.close()
