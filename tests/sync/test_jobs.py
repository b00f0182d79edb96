"""Jobs: claimed once, attempts counted before work, one job per connection at a time, a reaper for lost
workers, cancel, retry of failed items, and every trigger ending in a job."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from connectors.models import HttpExchange
from reconciliation.models import ReconciliationException
from sync import jobs
from sync.models import PushOperation, ReferenceData, SyncAttempt, SyncJob, SyncProfile
from tests.factories import ConnectionFactory, SyncJobFactory
from tests.sync import engine


@pytest.fixture
def rung(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(jobs, "_ring", calls.append)
    return calls


def _profile(**extra) -> SyncProfile:
    source = ConnectionFactory(platform="csv")
    dest = ConnectionFactory(platform="xero")
    return SyncProfile.objects.create(
        name=f"p{source.pk}", source=source, destination=dest, object_types=["invoice"], **extra
    )


@pytest.mark.django_db
def test_a_job_is_claimed_once_and_its_attempt_is_counted_before_work(monkeypatch):
    seen = []
    monkeypatch.setattr(jobs, "_run", lambda job, beat: seen.append(SyncJob.objects.get(pk=job.pk).attempts))
    job = SyncJobFactory(kind="push", profile=_profile())

    assert jobs.job_run(job.pk) == "succeeded"
    assert jobs.job_run(job.pk) == "not claimed"  # a second ring of the same doorbell does nothing

    assert seen == [1]
    job.refresh_from_db()
    assert (job.state, job.attempts, job.lease_expires_at) == ("succeeded", 1, None)
    assert SyncAttempt.objects.get(job=job).outcome == "succeeded"


@pytest.mark.django_db
def test_a_job_that_used_up_its_attempts_is_failed_even_when_it_killed_its_worker():
    job = SyncJobFactory(
        kind="push",
        profile=_profile(),
        state="running",
        attempts=3,
        max_attempts=3,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )

    assert jobs.job_run(job.pk) == "not claimed"

    job.refresh_from_db()
    assert job.state == "failed" and "stopped after 3 attempts" in job.error


@pytest.mark.django_db
def test_a_connection_is_worked_on_by_one_job_at_a_time(monkeypatch):
    monkeypatch.setattr(jobs, "_run", lambda job, beat: None)
    profile = _profile()
    SyncJobFactory(
        kind="sync", profile=profile, state="running", lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    other_profile = SyncProfile.objects.create(
        name="same destination", source=ConnectionFactory(platform="csv"), destination=profile.destination
    )
    waiting = SyncJobFactory(kind="push", profile=other_profile)

    assert jobs.job_run(waiting.pk) == "not claimed"
    waiting.refresh_from_db()
    assert waiting.state == "queued" and "waiting" in waiting.error and waiting.attempts == 0

    unrelated = SyncJobFactory(kind="push", profile=_profile())
    assert jobs.job_run(unrelated.pk) == "succeeded"


@pytest.mark.django_db
def test_the_reaper_requeues_a_job_whose_worker_died_and_rings_for_forgotten_ones(rung):
    now = timezone.now()
    lost = SyncJobFactory(
        kind="sync",
        profile=_profile(),
        state="running",
        attempts=1,
        lease_expires_at=now - timedelta(seconds=5),
    )
    spent = SyncJobFactory(
        kind="sync",
        profile=_profile(),
        state="running",
        attempts=3,
        max_attempts=3,
        lease_expires_at=now - timedelta(seconds=5),
    )
    alive = SyncJobFactory(
        kind="sync",
        profile=_profile(),
        state="running",
        attempts=1,
        lease_expires_at=now + timedelta(minutes=1),
    )
    forgotten = SyncJobFactory(kind="push", profile=_profile(), enqueued_at=now - timedelta(hours=1))
    fresh = SyncJobFactory(kind="push", profile=_profile(), enqueued_at=now)

    result = jobs.jobs_reap()

    assert result == {"requeued": 1, "failed": 1, "rung": 1}  # the requeued one is rung as it is requeued
    assert sorted(rung) == sorted([lost.pk, forgotten.pk])
    states = dict(SyncJob.objects.values_list("pk", "state"))
    assert states[lost.pk] == "queued" and states[spent.pk] == "failed"
    assert states[alive.pk] == "running" and states[fresh.pk] == "queued"


@pytest.mark.django_db
def test_a_cancelled_job_stops_at_its_next_page(monkeypatch):
    def run(job, beat):
        jobs.job_cancel(job, user="finance")
        beat(10)  # the next page's heartbeat notices
        raise AssertionError("not reached")

    monkeypatch.setattr(jobs, "_run", run)
    job = SyncJobFactory(kind="push", profile=_profile())

    assert jobs.job_run(job.pk) == "cancelled"
    job.refresh_from_db()
    assert job.state == "cancelled" and "finance" in job.error


@pytest.mark.django_db
def test_a_retryable_failure_goes_back_to_the_queue_and_a_permanent_one_fails(monkeypatch):
    from connectors.base import PermanentError, RetryableError

    profile = _profile()
    monkeypatch.setattr(
        jobs, "_run", lambda job, beat: (_ for _ in ()).throw(RetryableError("503 from Xero"))
    )
    job = SyncJobFactory(kind="push", profile=profile)
    assert jobs.job_run(job.pk) == "queued"
    monkeypatch.setattr(
        jobs, "_run", lambda job, beat: (_ for _ in ()).throw(PermanentError("bad credentials"))
    )
    assert jobs.job_run(job.pk) == "failed"
    job.refresh_from_db()
    assert job.attempts == 2 and "bad credentials" in job.error
    assert list(job.attempt_set.values_list("outcome", flat=True)) == ["retryable", "failed"]


@pytest.mark.django_db
def test_webhooks_and_payments_received_trigger_jobs_that_refetch_the_records(rung):
    profile = _profile()
    quiet = SyncProfile.objects.create(
        name="no payments",
        source=profile.source,
        destination=ConnectionFactory(platform="quickbooks"),
        on_payment=False,
        on_webhook=False,
    )
    events = [
        SimpleNamespace(object_type="payment", external_id="ch_1"),
        SimpleNamespace(object_type="invoice", external_id="in_1"),
    ]

    made = jobs.webhook_received(profile.source, events)

    assert [(j.profile_id, j.trigger, j.kind) for j in made] == [(profile.pk, "payment", "sync")]
    assert made[0].params["fetch"] == [["payment", "ch_1"], ["invoice", "in_1"]]
    assert not quiet.jobs.exists()


@pytest.mark.django_db
def test_a_burst_of_webhooks_joins_the_job_nobody_has_claimed_yet(rung):
    profile = _profile()
    invoice = [SimpleNamespace(object_type="invoice", external_id="in_1")]
    first = jobs.webhook_received(profile.source, invoice)
    again = jobs.webhook_received(
        profile.source, [*invoice, SimpleNamespace(object_type="invoice", external_id="in_2")]
    )

    assert [j.pk for j in again] == [j.pk for j in first]
    first[0].refresh_from_db()
    assert first[0].params["fetch"] == [["invoice", "in_1"], ["invoice", "in_2"]]

    SyncJob.objects.filter(pk=first[0].pk).update(state="running", attempts=1)  # claimed: params are read
    third = SimpleNamespace(object_type="invoice", external_id="in_3")
    later = jobs.webhook_received(profile.source, [third])
    assert later[0].pk != first[0].pk and later[0].params["fetch"] == [["invoice", "in_3"]]


@pytest.mark.django_db
def test_a_scheduled_tick_does_not_pile_up_behind_a_running_job(rung):
    profile = _profile(schedule="minutes", schedule_minutes=5)
    first = jobs.profile_scheduled(profile.pk)
    assert first is not None and first.trigger == "schedule"
    assert jobs.profile_scheduled(profile.pk) is None


@pytest.mark.django_db(transaction=True)
def test_a_sync_job_runs_through_django_q_and_records_its_http(
    live_server, django_capture_on_commit_callbacks
):
    dest = engine.destination("xero", live_server.url)
    source, _ = engine.source_with_invoices(4)
    profile = engine.mapped_profile(source, dest)

    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.profile_run(profile)  # Q_CLUSTER sync=True in tests: the task runs at once

    job.refresh_from_db()
    assert job.state == "succeeded", job.error
    assert (job.seen, job.failed, job.progress_done, job.progress_total) == (4, 0, 4, 4)
    attempt = SyncAttempt.objects.get(job=job)
    assert HttpExchange.objects.filter(attempt=attempt, method="PUT").exists()
    assert PushOperation.objects.filter(job=job, state="succeeded", object_type="invoice").count() == 4


@pytest.mark.django_db(transaction=True)
def test_retry_failed_items_sends_them_again_after_the_cause_is_fixed(live_server, rung):
    dest = engine.destination("xero", live_server.url)
    source, _ = engine.source_with_invoices(2)
    profile = engine.mapped_profile(source, dest)
    # an account Xero does not have, with no reference data to catch it first: Xero refuses the invoices
    ReferenceData.objects.filter(connection=dest, kind="account").delete()
    profile.mapping_set.rows.filter(kind="revenue_account").update(target_value="999")
    job = jobs.job_enqueue(kind="push", trigger="manual", profile=profile)
    jobs.job_run(job.pk)
    assert PushOperation.objects.filter(job=job, object_type="invoice", state="failed").count() == 2
    refused = ReconciliationException.objects.filter(kind="sync_failure", state="open")
    assert refused.count() == 2 and "999" in str(refused.first().details)

    profile.mapping_set.rows.filter(kind="revenue_account").update(target_value="200")
    retry = jobs.operations_retry(job, user=None)
    assert retry is not None and retry.kind == "push"
    jobs.job_run(retry.pk)

    assert (
        PushOperation.objects.filter(profile=profile, object_type="invoice", state="succeeded").count() == 2
    )
