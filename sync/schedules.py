"""Schedules are declared here, in code, and upserted into django-q2 by `manage.py sync_schedules`
(which `make run` calls). Every schedule this project owns is named `ledgerlink:...`; one that is no
longer declared (a profile switched to manual, deleted or disabled) is removed.

- system schedules: the job reaper every minute, the webhook delivery purge daily, payment reminders
  daily and the alert digest (settings REMINDER_SCHEDULE_TIME, ALERT_DIGEST_MINUTES), override and
  Idempotency-Key expiry hourly, and a reconciliation of everything (RECONCILIATION_SCHEDULE_MINUTES);
- one per enabled profile with a schedule: every N minutes, hourly, daily at a time, or the end-of-day
  batch (daily at the profile's time, 23:30 server time when none is set).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sync.models import SyncProfile

PREFIX = "ledgerlink:"
END_OF_DAY = time(23, 30)


@dataclass(frozen=True)
class Declared:
    name: str
    func: str
    schedule_type: str  # django-q2's Schedule.MINUTES / HOURLY / DAILY
    minutes: int | None = None
    args: str = ""
    at: time | None = None


def _reminder_and_alert_schedules() -> tuple[Declared, ...]:
    """Payment reminders daily at REMINDER_SCHEDULE_TIME (none when empty) and the alert digest every
    ALERT_DIGEST_MINUTES (docs/reminders.md)."""
    items = [
        Declared(
            f"{PREFIX}alerts digest",
            "reconciliation.alerts.alerts_scheduled",
            "I",
            minutes=int(getattr(settings, "ALERT_DIGEST_MINUTES", 60)),
        )
    ]
    if getattr(settings, "REMINDER_SCHEDULE_TIME", ""):
        at = time.fromisoformat(settings.REMINDER_SCHEDULE_TIME)
        items.append(
            Declared(f"{PREFIX}payment reminders", "reconciliation.reminders.reminders_scheduled", "D", at=at)
        )
    return tuple(items)


SYSTEM = (
    Declared(f"{PREFIX}reap jobs", "sync.tasks.jobs_reap", "I", minutes=1),
    *_reminder_and_alert_schedules(),
    # deliveries older than WEBHOOK_RETENTION_DAYS (docs/webhooks.md)
    Declared(f"{PREFIX}purge webhook deliveries", "connectors.inbound.deliveries_purge", "D", at=time(3, 40)),
    # override proposals nobody decided before their expiry (OVERRIDE_EXPIRY_DAYS, docs/triage.md)
    Declared(f"{PREFIX}expire overrides", "reconciliation.workflow.overrides_expire", "H"),
    # API Idempotency-Key records older than API_IDEMPOTENCY_TTL_HOURS (docs/api.md)
    Declared(f"{PREFIX}expire idempotency keys", "api.tasks.idempotency_keys_expire", "H"),
)


def _profile_schedule(profile: SyncProfile) -> Declared | None:
    name = f"{PREFIX}profile {profile.pk}"
    func, args = "sync.tasks.profile_scheduled", str(profile.pk)
    kind = profile.schedule
    if kind == SyncProfile.Schedule.EVERY_N_MINUTES:
        return Declared(name, func, "I", minutes=max(1, profile.schedule_minutes or 15), args=args)
    if kind == SyncProfile.Schedule.HOURLY:
        return Declared(name, func, "H", args=args)
    if kind == SyncProfile.Schedule.DAILY:
        return Declared(name, func, "D", args=args, at=profile.schedule_time or time(6, 0))
    if kind == SyncProfile.Schedule.END_OF_DAY:
        return Declared(name, func, "D", args=args, at=profile.schedule_time or END_OF_DAY)
    return None


def _reconciliation_schedule() -> list[Declared]:
    """A reconciliation of everything every RECONCILIATION_SCHEDULE_MINUTES (0: none)."""
    minutes = int(getattr(settings, "RECONCILIATION_SCHEDULE_MINUTES", 60))
    if minutes <= 0:
        return []
    func = "reconciliation.services.reconcile_scheduled"
    return [Declared(f"{PREFIX}reconcile everything", func, "I", minutes=minutes)]


def declared() -> list[Declared]:
    items = [*SYSTEM, *_reconciliation_schedule()]
    for profile in SyncProfile.objects.filter(enabled=True).exclude(schedule=SyncProfile.Schedule.MANUAL):
        item = _profile_schedule(profile)
        if item is not None:
            items.append(item)
    return items


def _next_run(item: Declared, now: datetime) -> datetime:
    if item.at is None:
        return now
    local = timezone.localtime(now)
    run = local.replace(hour=item.at.hour, minute=item.at.minute, second=0, microsecond=0)
    return run if run > local else run + timedelta(days=1)


def schedules_sync() -> dict[str, Any]:
    """Upsert what is declared, delete what no longer is. Returns the names created/updated/removed."""
    from django_q.models import Schedule

    now = timezone.now()
    items = declared()
    result: dict[str, list[str]] = {"created": [], "updated": [], "removed": []}
    with transaction.atomic():
        existing = {s.name: s for s in Schedule.objects.filter(name__startswith=PREFIX)}
        for item in items:
            values = {
                "func": item.func,
                "args": item.args or None,
                "schedule_type": item.schedule_type,
                "minutes": item.minutes,
                "repeats": -1,
            }
            schedule = existing.pop(item.name, None)
            if schedule is None:
                Schedule.objects.create(name=item.name, next_run=_next_run(item, now), **values)
                result["created"].append(item.name)
                continue
            changed = any(getattr(schedule, key) != value for key, value in values.items())
            if item.at is not None:
                wanted = timezone.localtime(_next_run(item, now)).time().replace(second=0)
                current = timezone.localtime(schedule.next_run).time().replace(second=0, microsecond=0)
                changed = changed or wanted != current
            if changed:
                for key, value in values.items():
                    setattr(schedule, key, value)
                schedule.next_run = _next_run(item, now)
                schedule.save()
                result["updated"].append(item.name)
        for name, schedule in existing.items():
            schedule.delete()
            result["removed"].append(name)
    return result


def profile_saved(sender: Any, instance: SyncProfile, **kwargs: Any) -> None:
    """A profile's schedule follows its form at once, not at the next start."""
    transaction.on_commit(schedules_sync)
