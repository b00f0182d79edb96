"""Jobs: the only way work happens. Our `SyncJob` row is the truth; django-q2 is only its doorbell.

- `job_enqueue` commits the row, then rings (`async_task("sync.tasks.job_run", id)`) once the
  transaction commits. Every trigger (manual, schedule, webhook, payment received, API) goes through it.
- `job_run` claims the row: attempts are counted before any work, a lease (`lease_expires_at`) is taken
  and renewed by every page's heartbeat, and a job whose attempts are used up is failed, even when it
  killed its worker last time. Running it twice is harmless: the second claim finds nothing to do.
- A connection is worked on by one job at a time: a job that touches a connection another running job
  holds (with a live lease) stays queued, and the reaper rings for it again.
- `jobs_reap` (every minute) requeues jobs whose lease ran out (their worker died) and rings again for
  queued jobs nobody picked up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.dispatch import Signal
from django.utils import timezone

from connectors.base import RetryableError
from connectors.models import Connection
from connectors.recording import recording_for
from sync import pull as pulling
from sync import push as pushing
from sync import twoway
from sync.models import ObjectType, PushOperation, SyncAttempt, SyncJob, SyncProfile

log = logging.getLogger(__name__)
Kind = SyncJob.Kind
JobState = SyncJob.State
Trigger = SyncJob.Trigger
ACTIVE = (JobState.QUEUED, JobState.RUNNING)
RUNNABLE = [Kind.PULL, Kind.PUSH, Kind.SYNC, Kind.BACKFILL]

# Job kinds run by other apps (reconciliation, reminders): kind -> handler(job, heartbeat) returning a
# report (or None). Registered from the owning app's AppConfig.ready(), so sync never imports them.
HANDLERS: dict[str, Callable[[SyncJob, Any], Any]] = {}

# Sent once when a job ends failed for good (no attempts left, or an error that retrying cannot fix).
job_failed = Signal()


def handler_register(kind: str, handler: Callable[[SyncJob, Any], Any]) -> None:
    HANDLERS[kind] = handler
    if kind not in RUNNABLE:
        RUNNABLE.append(kind)


def lease_seconds() -> int:
    return int(getattr(settings, "SYNC_JOB_LEASE_SECONDS", 120))


def requeue_after() -> int:
    return int(getattr(settings, "SYNC_JOB_REQUEUE_SECONDS", 120))


class JobCancelled(Exception):
    pass


# --- creating and ringing -----------------------------------------------------------------------------
def _ring(job_id: int) -> None:
    from django_q.tasks import async_task

    SyncJob.objects.filter(pk=job_id).update(enqueued_at=timezone.now())
    async_task("sync.tasks.job_run", job_id, task_name=f"sync-job-{job_id}")


def job_enqueue(
    *,
    kind: str,
    trigger: str,
    profile: SyncProfile | None = None,
    connection: Connection | None = None,
    params: dict[str, Any] | None = None,
    user: Any = None,
    dry_run: bool = False,
) -> SyncJob:
    """Record a job and ring for it once the surrounding transaction commits."""
    # kinds run by other apps may span every connection (a reconciliation of everything)
    if profile is None and connection is None and kind not in HANDLERS:
        raise ValueError("a job needs a profile or a connection")
    job = SyncJob.objects.create(
        kind=kind,
        trigger=trigger,
        profile=profile,
        connection=connection or (profile.source if profile is not None else None),
        params=params or {},
        created_by=user if getattr(user, "pk", None) else None,
        dry_run=dry_run,
    )
    transaction.on_commit(lambda: _ring(job.pk))
    return job


def profile_run(profile: SyncProfile, *, trigger: str = Trigger.MANUAL, user: Any = None) -> SyncJob:
    return job_enqueue(kind=Kind.SYNC, trigger=trigger, profile=profile, user=user)


def backfill_enqueue(profile: SyncProfile, *, start: date, end: date, user: Any = None) -> SyncJob:
    if start > end:
        raise ValueError(f"backfill start {start} is after its end {end}")
    return job_enqueue(
        kind=Kind.BACKFILL,
        trigger=Trigger.MANUAL,
        profile=profile,
        params={"from": start.isoformat(), "to": end.isoformat()},
        user=user,
    )


def profile_scheduled(profile_id: int) -> SyncJob | None:
    """A schedule's tick: one job per profile at a time, so a slow run never piles up behind itself."""
    profile = SyncProfile.objects.filter(pk=profile_id, enabled=True).first()
    if profile is None or profile.jobs.filter(state__in=ACTIVE).exists():
        return None
    with transaction.atomic():
        return profile_run(profile, trigger=Trigger.SCHEDULE)


def webhook_received(connection: Connection, events: Iterable[Any]) -> list[SyncJob]:
    """Verified webhook events: a job per profile fed by the connection re-fetches the records named."""
    events = list(events)
    fetch = [
        [e.object_type, e.external_id] for e in events if e.object_type in ObjectType.values and e.external_id
    ]
    if not fetch:
        return []
    payment = any(e.object_type == ObjectType.PAYMENT for e in events)
    jobs = []
    with transaction.atomic():
        for profile in SyncProfile.objects.filter(source=connection, enabled=True):
            if payment and profile.on_payment:
                trigger = Trigger.PAYMENT
            elif profile.on_webhook:
                trigger = Trigger.WEBHOOK
            else:
                continue
            jobs.append(_fetch_enqueue(kind=Kind.SYNC, trigger=trigger, profile=profile, fetch=fetch))
        if not jobs:
            jobs.append(
                _fetch_enqueue(kind=Kind.PULL, trigger=Trigger.WEBHOOK, connection=connection, fetch=fetch)
            )
    return jobs


def _fetch_enqueue(
    *,
    kind: str,
    trigger: str,
    fetch: list[list[str]],
    profile: SyncProfile | None = None,
    connection: Connection | None = None,
) -> SyncJob:
    """A burst of webhooks becomes one job: records to re-fetch join a job of the same kind and trigger
    that nobody has claimed yet, instead of queueing one job per event behind each other. A job already
    claimed is left alone (its params are read), so what arrives then gets a job of its own."""
    waiting = (
        SyncJob.objects.select_for_update()
        .filter(kind=kind, trigger=trigger, state=JobState.QUEUED, attempts=0, params__has_key="fetch")
        .filter(profile=profile, **({"connection": connection} if profile is None else {}))
        .order_by("pk")
        .first()
    )
    if waiting is None:
        params = {"fetch": fetch}
        return job_enqueue(kind=kind, trigger=trigger, profile=profile, connection=connection, params=params)
    known = {tuple(item) for item in waiting.params["fetch"]}
    waiting.params["fetch"] += [item for item in fetch if tuple(item) not in known]
    waiting.save(update_fields=["params"])
    return waiting


# --- people's actions ---------------------------------------------------------------------------------
def job_cancel(job: SyncJob, *, user: Any = None) -> bool:
    """Stop a queued or running job; a running one stops at its next page."""
    now = timezone.now()
    updated = SyncJob.objects.filter(pk=job.pk, state__in=ACTIVE).update(
        state=JobState.CANCELLED, finished_at=now, error=f"cancelled by {user or 'the system'}"
    )
    return bool(updated)


def job_rerun(job: SyncJob, *, user: Any = None) -> SyncJob:
    params = {k: v for k, v in job.params.items() if k != "backfill_pages"}
    return job_enqueue(
        kind=job.kind,
        trigger=Trigger.MANUAL,
        profile=job.profile,
        connection=job.connection,
        params=params,
        user=user,
        dry_run=job.dry_run,
    )


def operations_retry(job: SyncJob, *, user: Any = None) -> SyncJob | None:
    """Make the job's failed, blocked and uncertain items ready again and push them in a new job."""
    operations = PushOperation.objects.filter(job=job, state__in=[*PushOperation.OPEN_STATES, "failed"])
    if not pushing.operations_reset(operations) or job.profile is None:
        return None
    return job_enqueue(kind=Kind.PUSH, trigger=Trigger.MANUAL, profile=job.profile, user=user)


# --- running ------------------------------------------------------------------------------------------
def _connections_of(job: SyncJob) -> list[int]:
    ids = {job.connection_id}
    if job.profile is not None:
        ids |= {job.profile.source_id, job.profile.destination_id}
    return sorted(i for i in ids if i)


def _claim(job_id: int) -> SyncJob | None:
    """Take the job if it is ours to run and its connections are free. None: nothing to do now."""
    now = timezone.now()
    with transaction.atomic():
        job = SyncJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            return None
        lost = job.state == JobState.RUNNING and (job.lease_expires_at is None or job.lease_expires_at < now)
        if job.state != JobState.QUEUED and not lost:
            return None
        if job.attempts >= job.max_attempts:
            job.state = JobState.FAILED
            job.finished_at = now
            job.error = (job.error + "\n" if job.error else "") + f"stopped after {job.attempts} attempts"
            job.save(update_fields=["state", "finished_at", "error"])
            transaction.on_commit(lambda: job_failed.send(sender=SyncJob, job=job, error=job.error))
            return None
        ids = _connections_of(job)
        list(Connection.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk"))
        busy = (
            SyncJob.objects.filter(state=JobState.RUNNING, lease_expires_at__gt=now)
            .exclude(pk=job.pk)
            .filter(
                Q(connection_id__in=ids) | Q(profile__source_id__in=ids) | Q(profile__destination_id__in=ids)
            )
            .first()
        )
        if busy is not None:
            job.error = f"waiting: job #{busy.pk} is working on the same connection"
            job.save(update_fields=["error"])
            return None
        job.state = JobState.RUNNING
        job.attempts += 1
        job.lease_expires_at = now + timedelta(seconds=lease_seconds())
        job.started_at = job.started_at or now
        job.error = ""
        job.save(update_fields=["state", "attempts", "lease_expires_at", "started_at", "error"])
    return job


class Heartbeat:
    """Renews the job's lease after every page, counts progress, and notices a cancel."""

    def __init__(self, job: SyncJob) -> None:
        self.job = job

    def __call__(self, done: int = 0) -> None:
        updated = SyncJob.objects.filter(pk=self.job.pk, state=JobState.RUNNING).update(
            lease_expires_at=timezone.now() + timedelta(seconds=lease_seconds()),
            progress_done=F("progress_done") + done,
        )
        if not updated:
            raise JobCancelled(f"job #{self.job.pk} was cancelled")


def _add_counts(job: SyncJob, report: Any) -> None:
    SyncJob.objects.filter(pk=job.pk).update(
        seen=F("seen") + report.seen,
        created=F("created") + report.created,
        updated=F("updated") + report.updated,
        skipped=F("skipped") + report.skipped,
        failed=F("failed") + report.failed + getattr(report, "blocked", 0),
    )


def _pull_phase(job: SyncJob, connection: Connection, types: Iterable[str], beat: Heartbeat) -> None:
    fetch = job.params.get("fetch") or []
    if fetch:
        for object_type, external_id in fetch:
            report = pulling.fetch_one(connection, object_type, external_id, job)
            _add_counts(job, report)
            beat(1)
        return
    floor = job.profile.cutover_date if job.profile else None
    for object_type in pulling.supported_types(connection, types):
        report = pulling.pull(connection, object_type, job, floor=floor, heartbeat=beat)
        _add_counts(job, report)


def _documents(job: SyncJob) -> dict[str, list[int]] | None:
    """A push limited to named documents: params {"documents": [[object_type, id], ...]}."""
    if "documents" not in job.params:
        return None
    documents: dict[str, list[int]] = {}
    for object_type, object_id in job.params["documents"] or []:
        documents.setdefault(object_type, []).append(int(object_id))
    return documents


def _push_phase(
    job: SyncJob, beat: Heartbeat, date_range: tuple[date, date] | None = None
) -> pushing.PushReport:
    profile = job.profile
    assert profile is not None
    documents = _documents(job)
    total = sum(
        pushing.candidates(
            profile, t, date_range=date_range, ids=documents.get(t, []) if documents is not None else None
        ).count()
        for t in profile.object_types
        if t in pushing.MODELS
    )
    if profile.posting_mode == SyncProfile.PostingMode.DAILY_SUMMARY:
        from sync.summary import summaries_due_count  # progress counts summaries, not sales

        total = summaries_due_count(profile, date_range=date_range)
    SyncJob.objects.filter(pk=job.pk).update(progress_total=F("progress_done") + total)
    report = pushing.Pusher(profile, job).run(date_range=date_range, progress=beat, documents=documents)
    _add_counts(job, report)
    return report


def _twoway_phase(job: SyncJob, beat: Heartbeat, report: pushing.PushReport) -> pushing.PushReport:
    """Two-way profiles: payments recorded in the destination go back to the source (sync.twoway)."""
    profile = job.profile
    if profile is None or profile.direction != SyncProfile.Direction.TWO_WAY:
        return report
    back = twoway.twoway_run(profile, job, beat)
    _add_counts(job, back)
    report.messages += back.messages
    return report


def _run(job: SyncJob, beat: Heartbeat) -> Any:
    if job.kind in HANDLERS:
        return HANDLERS[job.kind](job, beat)
    profile = job.profile
    if job.kind == Kind.PULL:
        types = job.params.get("object_types") or ObjectType.values
        _pull_phase(job, job.connection, types, beat)  # type: ignore[arg-type]
        return None
    if profile is None:
        raise ValueError(f"a {job.get_kind_display().lower()} job needs a profile")
    if job.kind == Kind.SYNC:
        _pull_phase(job, profile.source, profile.object_types, beat)
        return _twoway_phase(job, beat, _push_phase(job, beat))
    if job.kind == Kind.PUSH:
        return _push_phase(job, beat)
    if job.kind == Kind.BACKFILL:
        date_range = (date.fromisoformat(job.params["from"]), date.fromisoformat(job.params["to"]))
        for object_type in pulling.supported_types(profile.source, profile.object_types):
            report = pulling.backfill(profile.source, object_type, job, date_range=date_range, heartbeat=beat)
            _add_counts(job, report)
        return _push_phase(job, beat, date_range=date_range)
    raise ValueError(f"{job.get_kind_display()} jobs do not run here")


def job_run(job_id: int) -> str:
    """Run a job if it is ours to run. Returns the state it was left in."""
    job = _claim(job_id)
    if job is None:
        return "not claimed"
    attempt = SyncAttempt.objects.create(job=job, number=job.attempts)
    beat = Heartbeat(job)
    try:
        with recording_for(attempt.pk):
            report = _run(job, beat)
    except JobCancelled:
        _attempt_end(attempt, SyncAttempt.Outcome.FAILED, "cancelled")
        return JobState.CANCELLED
    except pushing.PushPaused as exc:
        # the destination asked us to wait: the run ends here; what is left waits for the next run
        _attempt_end(attempt, SyncAttempt.Outcome.RETRYABLE, str(exc))
        _job_end(job, JobState.PARTIAL, f"paused: {exc}")
        return JobState.PARTIAL
    except Exception as exc:
        log.exception("job %s failed", job.pk)
        retryable = isinstance(exc, RetryableError) and job.attempts < job.max_attempts
        _attempt_end(
            attempt, SyncAttempt.Outcome.RETRYABLE if retryable else SyncAttempt.Outcome.FAILED, repr(exc)
        )
        if retryable:
            SyncJob.objects.filter(pk=job.pk, state=JobState.RUNNING).update(
                state=JobState.QUEUED, lease_expires_at=None, error=f"will retry: {exc}"[:2000]
            )
            return JobState.QUEUED
        _job_end(job, JobState.FAILED, f"{type(exc).__name__}: {exc}")
        job_failed.send(sender=SyncJob, job=job, error=f"{type(exc).__name__}: {exc}")
        return JobState.FAILED
    _attempt_end(attempt, SyncAttempt.Outcome.SUCCEEDED, "")
    job.refresh_from_db(fields=["failed"])
    state = JobState.PARTIAL if job.failed else JobState.SUCCEEDED
    messages = "\n".join(getattr(report, "messages", [])[:20])
    _job_end(job, state, messages)
    return state


def _attempt_end(attempt: SyncAttempt, outcome: str, error: str) -> None:
    attempt.outcome = outcome
    attempt.error = error[:4000]
    attempt.finished_at = timezone.now()
    attempt.save(update_fields=["outcome", "error", "finished_at"])


def _job_end(job: SyncJob, state: str, error: str) -> None:
    SyncJob.objects.filter(pk=job.pk, state=JobState.RUNNING).update(
        state=state, error=error[:4000], finished_at=timezone.now(), lease_expires_at=None
    )


def jobs_reap() -> dict[str, int]:
    """Requeue jobs whose worker died (lease ran out) and ring again for jobs nobody picked up."""
    now = timezone.now()
    requeued = failed = rung = 0
    for job in SyncJob.objects.filter(state=JobState.RUNNING, lease_expires_at__lt=now):
        if job.attempts >= job.max_attempts:
            failed += SyncJob.objects.filter(
                pk=job.pk, state=JobState.RUNNING, lease_expires_at__lt=now
            ).update(
                state=JobState.FAILED,
                finished_at=now,
                error=f"its worker stopped answering; stopped after {job.attempts} attempts",
            )
            continue
        if SyncJob.objects.filter(pk=job.pk, state=JobState.RUNNING, lease_expires_at__lt=now).update(
            state=JobState.QUEUED, error="its worker stopped answering; requeued"
        ):
            requeued += 1
            _ring(job.pk)
    stale = now - timedelta(seconds=requeue_after())
    for job_id in (
        SyncJob.objects.filter(state=JobState.QUEUED, kind__in=RUNNABLE)
        .filter(Q(enqueued_at__lt=stale) | Q(enqueued_at__isnull=True, created_at__lt=stale))
        .values_list("pk", flat=True)
    ):
        _ring(job_id)
        rung += 1
    return {"requeued": requeued, "failed": failed, "rung": rung}
