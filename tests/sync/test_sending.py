"""sync.sending.Sender: batches in flight side by side, never more than allowed, failures not lost."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest
from django.db import connection, transaction

from sync.sending import Sender

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="")


class Gauge:
    """How many calls run at once, and the most there ever were."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.most = 0
        self.threads: set[str] = set()

    def call(self, seconds: float = 0.02) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.threads.add(threading.current_thread().name)
        time.sleep(seconds)
        with self.lock:
            self.now -= 1


def test_a_concurrency_of_one_runs_each_call_at_once_in_the_calling_thread():
    gauge, done = Gauge(), []
    sender = Sender(1)
    sender.submit(gauge.call, 0)
    sender.submit(done.append, "second")
    assert done == ["second"]  # ran before submit returned
    assert gauge.threads == {threading.current_thread().name}


def test_it_never_has_more_calls_in_flight_than_its_concurrency():
    gauge = Gauge()
    with Sender(3) as sender:
        for _ in range(12):
            sender.submit(gauge.call)
    assert gauge.now == 0  # leaving the block waited for every call
    assert gauge.most == 3
    assert len(gauge.threads) == 3 and threading.current_thread().name not in gauge.threads


def test_the_first_failure_stops_new_work_and_is_raised():
    ran: list[int] = []

    def work(n: int) -> None:
        if n == 1:
            raise ValueError("batch 1 was refused")
        time.sleep(0.01)
        ran.append(n)

    sender = Sender(2)
    with pytest.raises(ValueError, match="batch 1 was refused"):
        for n in range(50):
            sender.submit(work, n)
        sender.drain()
    sender.close()
    assert len(ran) < 49  # the calls after the failure was seen were never started


def test_a_dying_worker_wins_over_an_ordinary_failure():
    class Killed(BaseException):
        pass

    started = threading.Event()

    def refused() -> None:
        started.wait(5)
        raise ValueError("refused")

    def killed() -> None:
        started.set()
        time.sleep(0.05)
        raise Killed("the process is going down")

    sender = Sender(2)
    sender.submit(refused)
    sender.submit(killed)
    with pytest.raises(Killed):
        sender.drain()
    sender.close()


def test_calls_not_started_when_one_fails_never_start(caplog):
    """A batch refused (or the destination asking us to wait) stops the run: nothing queued behind it is
    sent, and a failure that is not the one raised is logged, not lost."""
    ran: list[str] = []
    gate = threading.Event()

    def first() -> None:
        gate.wait(5)
        raise ValueError("the destination asked us to wait")

    def second() -> None:
        gate.set()
        time.sleep(0.05)
        raise OSError("the database went away as well")

    sender = Sender(2)
    sender.submit(first)
    sender.submit(second)
    with pytest.raises((ValueError, OSError)):
        for n in range(10):
            sender.submit(ran.append, n)
    sender.close()
    assert ran == []
    assert "a batch failed as well" in caplog.text


def test_the_heartbeat_beats_while_the_caller_waits():
    beats: list[float] = []
    with Sender(2, heartbeat=lambda: beats.append(time.monotonic()), beat_seconds=0.02) as sender:
        sender.submit(time.sleep, 0.15)
        sender.submit(time.sleep, 0.15)
        sender.submit(time.sleep, 0.01)  # waits for a free slot: beats meanwhile
    assert len(beats) >= 3


def test_a_heartbeat_that_raises_stops_the_run_after_the_calls_in_flight():
    class Cancelled(Exception):
        pass

    def beat() -> None:
        raise Cancelled("the job was cancelled")

    gauge = Gauge()
    with pytest.raises(Cancelled), Sender(2, heartbeat=beat, beat_seconds=0.01) as sender:
        for _ in range(6):
            sender.submit(gauge.call, 0.05)
    assert gauge.now == 0 and gauge.most == 2  # the two in flight finished; nothing else started


def test_leaving_on_an_error_waits_for_the_calls_in_flight_and_keeps_the_error():
    gauge = Gauge()
    with pytest.raises(RuntimeError, match="the run itself failed"), Sender(2) as sender:
        sender.submit(gauge.call, 0.05)
        sender.submit(gauge.call, 0.05)
        raise RuntimeError("the run itself failed")
    assert gauge.now == 0 and gauge.most == 2


def test_each_call_sees_the_context_it_was_submitted_in():
    seen: list[str] = []
    with Sender(2) as sender:
        for name in ("attempt-1", "attempt-2", "attempt-3"):
            marker.set(name)
            sender.submit(lambda: seen.append(marker.get()))
    assert sorted(seen) == ["attempt-1", "attempt-2", "attempt-3"]


@pytest.mark.django_db
def test_inside_a_transaction_calls_run_in_the_calling_thread():
    """Other connections cannot see the transaction's uncommitted rows, so nothing leaves this thread."""
    gauge = Gauge()
    with transaction.atomic():
        sender = Sender(4)
        assert sender.concurrency == 1
        sender.submit(gauge.call, 0)
    assert gauge.threads == {threading.current_thread().name}


@pytest.mark.django_db(transaction=True)
def test_worker_threads_use_and_close_their_own_database_connections():
    from django.contrib.auth import get_user_model

    get_user_model().objects.count()
    main = connection.connection
    fresh: list[bool] = []
    raw: list[object] = []

    def work() -> None:
        fresh.append(connection.connection is None)  # the previous call on this thread closed it
        get_user_model().objects.count()
        raw.append(connection.connection)

    with Sender(2) as sender:
        for _ in range(6):
            sender.submit(work)
    assert fresh == [True] * 6
    assert main is not None and all(r is not None and r is not main for r in raw)


@pytest.mark.django_db(transaction=True)
def test_on_an_in_memory_database_calls_run_in_the_calling_thread(monkeypatch):
    monkeypatch.setattr(connection, "is_in_memory_db", lambda: True, raising=False)
    gauge = Gauge()
    sender = Sender(4)
    sender.submit(gauge.call, 0)
    assert sender.concurrency == 1 and gauge.threads == {threading.current_thread().name}
