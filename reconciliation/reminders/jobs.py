"""Reminder runs as jobs: the "remind" job handler, queueing a run, and the daily schedule's tick."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from django.db import transaction
from django.utils import timezone

from reconciliation.reminders.sending import RunReport, reminders_send
from sync.jobs import job_enqueue
from sync.models import SyncJob


def reminders_job(job: SyncJob, heartbeat: Callable[[int], None]) -> RunReport:
    """The handler of "remind" jobs: the run date is fixed when the job is queued, so a retry keeps it."""
    raw = (job.params or {}).get("date")
    run_date = date.fromisoformat(raw) if raw else timezone.localdate()
    report = reminders_send(run_date=run_date, job=job, heartbeat=heartbeat)
    SyncJob.objects.filter(pk=job.pk).update(
        seen=report.seen, created=report.sent, skipped=report.skipped, failed=report.failed
    )
    return report


def reminders_enqueue(*, trigger: str, run_date: date | None = None, user: Any = None) -> SyncJob | None:
    """Queue a reminder run; None while one is already queued or running."""
    with transaction.atomic():
        active = (SyncJob.State.QUEUED, SyncJob.State.RUNNING)
        if SyncJob.objects.filter(kind=SyncJob.Kind.REMIND, state__in=active).exists():
            return None
        job = job_enqueue(
            kind=SyncJob.Kind.REMIND,
            trigger=trigger,
            params={"date": (run_date or timezone.localdate()).isoformat()},
            user=user,
        )
    return job


def reminders_scheduled() -> int | None:
    """The daily schedule's tick (django-q2 task)."""
    job = reminders_enqueue(trigger=SyncJob.Trigger.SCHEDULE)
    return job.pk if job else None
