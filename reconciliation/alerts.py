"""Alerts for integration admins: recorded as they happen, folded by what they are about, mailed as one
digest per period (ALERT_DIGEST_MINUTES) rather than one email each.

- a connection that becomes "needs re-authorisation" (noticed when its health is saved);
- a job that fails for good (the `sync.jobs.job_failed` signal);
- open exceptions at or above ALERT_EXCEPTION_THRESHOLD (checked before each digest; while it stays above,
  said again at most once a day).

A pending alert (not yet in a digest) is unique per kind and key: a repeat adds to its occurrences. A
digest marks what it sent only after the mail backend accepted it, so a failed digest leaves every alert
pending for the next one.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.template.loader import render_to_string
from django.utils import timezone

from connectors.locks import LeaseBusyError, lease
from connectors.models import Connection
from reconciliation.models import Alert, ReconciliationException
from sync.models import SyncJob
from sync.roles import INTEGRATION_ADMINS

log = logging.getLogger(__name__)
Kind = Alert.Kind
THRESHOLD_KEY = "open exceptions"
THRESHOLD_REPEAT = timedelta(days=1)
MARK_CHUNK = 100  # rows matched per UPDATE when a digest marks what it sent (a short OR list)


def alert_record(
    *,
    kind: str,
    key: str,
    subject: str,
    message: str = "",
    connection: Connection | None = None,
    job: SyncJob | None = None,
) -> Alert:
    """Open a pending alert, or fold this repeat into the pending one for the same kind and key."""
    key = key[:100]
    for _ in range(3):
        try:
            with transaction.atomic():
                alert = Alert.objects.select_for_update().filter(kind=kind, key=key, sent_at=None).first()
                if alert is None:
                    return Alert.objects.create(
                        kind=kind,
                        key=key,
                        subject=subject[:255],
                        message=message,
                        connection=connection,
                        job=job,
                    )
                alert.occurrences += 1
                alert.subject = subject[:255]
                alert.message = message
                alert.connection = connection or alert.connection
                alert.job = job or alert.job
                alert.save()
                return alert
        except IntegrityError:  # another process opened it first: fold into theirs
            continue
    raise RuntimeError(f"could not record the {kind} alert {key!r}")


def recipients() -> list[str]:
    """Active integration admins with an email address."""
    users = get_user_model().objects.filter(is_active=True, groups__name=INTEGRATION_ADMINS).exclude(email="")
    return sorted(set(users.values_list("email", flat=True)))


# --- what raises them ---------------------------------------------------------------------------------
def connection_reauth_alert(connection: Connection) -> Alert:
    return alert_record(
        kind=Kind.REAUTHORISE,
        key=f"connection {connection.pk}",
        subject=f"{connection.name} needs re-authorisation",
        message=(
            f"{connection.platform_label} connection {connection.name!r} refused its credentials: "
            f"{connection.last_error or 'no detail given'}. Nothing syncs through it until someone opens the "
            "connection in the admin and uses Connect."
        ),
        connection=connection,
    )


def job_failed_alert(job: SyncJob, error: str) -> Alert:
    if job.profile_id:
        scope, what = f"profile {job.profile_id}", job.profile.name  # type: ignore[union-attr]
    elif job.connection_id:
        scope, what = f"connection {job.connection_id}", job.connection.name  # type: ignore[union-attr]
    else:
        scope, what = "system", job.get_kind_display()
    return alert_record(
        kind=Kind.JOB_FAILED,
        key=f"{job.kind} {scope}",
        subject=f"{job.get_kind_display()} job failed: {what}",
        message=f"Job #{job.pk} ({job.get_trigger_display().lower()}) failed after {job.attempts} "
        f"attempt(s): {error}",
        connection=job.connection,
        job=job,
    )


def exceptions_threshold_check(*, now: datetime | None = None) -> Alert | None:
    """Alert when open exceptions reach the threshold; once a day at most while they stay there."""
    threshold = int(getattr(settings, "ALERT_EXCEPTION_THRESHOLD", 0))
    if not threshold:
        return None
    now = now or timezone.now()
    open_exceptions = ReconciliationException.objects.filter(state__in=ReconciliationException.OPEN_STATES)
    count = open_exceptions.count()
    if count < threshold:
        return None
    last_sent = (
        Alert.objects.filter(kind=Kind.EXCEPTION_THRESHOLD, key=THRESHOLD_KEY, sent_at__isnull=False)
        .order_by("-sent_at")
        .values_list("sent_at", flat=True)
        .first()
    )
    pending = Alert.objects.filter(kind=Kind.EXCEPTION_THRESHOLD, key=THRESHOLD_KEY, sent_at=None).exists()
    if not pending and last_sent is not None and last_sent > now - THRESHOLD_REPEAT:
        return None
    labels = dict(ReconciliationException.Kind.choices)
    by_kind = open_exceptions.values("kind").annotate(n=Count("pk")).order_by("-n", "kind")
    lines = [f"- {labels.get(row['kind'], row['kind'])}: {row['n']}" for row in by_kind]
    return alert_record(
        kind=Kind.EXCEPTION_THRESHOLD,
        key=THRESHOLD_KEY,
        subject=f"{count} open exceptions (alert threshold {threshold})",
        message="Open exceptions by kind:\n" + "\n".join(lines),
    )


# --- signal receivers (connected in ReconciliationConfig.ready) ---------------------------------------
def on_job_failed(sender: Any, job: SyncJob, error: str = "", **kwargs: Any) -> None:
    try:
        job_failed_alert(job, error)
    except Exception:  # an alert must never change how the job ends
        log.exception("could not record the alert for failed job %s", job.pk)


def on_connection_pre_save(sender: Any, instance: Connection, raw: bool = False, **kwargs: Any) -> None:
    """Remember the health the row had, when this save may change it."""
    update_fields = kwargs.get("update_fields")
    if raw or instance.pk is None or (update_fields is not None and "health" not in update_fields):
        return
    before = sender.objects.filter(pk=instance.pk).values_list("health", flat=True).first()
    instance._health_before = before  # type: ignore[attr-defined]


def on_connection_post_save(sender: Any, instance: Connection, created: bool = False, **kwargs: Any) -> None:
    """Alert once when a connection becomes "needs re-authorisation", not on every save while it is."""
    before = instance.__dict__.pop("_health_before", None)
    if instance.health != Connection.Health.NEEDS_REAUTH or kwargs.get("raw"):
        return
    if before == Connection.Health.NEEDS_REAUTH or (before is None and not created):
        return
    try:
        connection_reauth_alert(instance)
    except Exception:
        log.exception("could not record the re-authorisation alert for connection %s", instance.pk)


# --- the digest ---------------------------------------------------------------------------------------
SUMMARY = {
    Kind.JOB_FAILED: ("failed job", "failed jobs"),
    Kind.REAUTHORISE: ("connection needs re-authorisation", "connections need re-authorisation"),
    Kind.EXCEPTION_THRESHOLD: ("exception threshold passed", "exception threshold passed"),
}


def _summary(pending: list[Alert]) -> str:
    counts: dict[str, int] = {}
    for alert in pending:
        counts[alert.kind] = counts.get(alert.kind, 0) + 1
    parts = []
    for kind, count in counts.items():
        one, many = SUMMARY.get(kind, (kind, kind))
        parts.append(f"{count} {one if count == 1 else many}")
    return ", ".join(parts)


def alerts_digest_send(*, now: datetime | None = None) -> int:
    """Email every pending alert to the integration admins in one message. Returns how many it sent.

    Raises if the mail backend fails; the alerts then stay pending for the next digest.
    """
    to = recipients()
    pending = list(
        Alert.objects.filter(sent_at=None)
        .select_related("connection", "job")
        .order_by("kind", "first_seen_at")
    )
    if not pending:
        return 0
    if not to:
        log.warning(
            "%d alerts are pending but no active integration admin has an email address", len(pending)
        )
        return 0
    summary = _summary(pending)
    context = {"alerts": pending, "summary": summary, "company_name": settings.COMPANY_NAME}
    message = EmailMessage(
        subject=f"[Ledgerlink] {len(pending)} alert{'s' if len(pending) != 1 else ''}: {summary}"[:255],
        body=render_to_string("reconciliation/alert_digest.txt", context),
        to=to,
        headers={"Auto-Submitted": "auto-generated"},
    )
    message.send(fail_silently=False)
    # Each row is marked sent only if it still holds what this email said: one folded again since it was
    # read stays pending (its news was not in it), and one read with its latest news is never sent twice.
    sent_at = now or timezone.now()
    marked = 0
    for start in range(0, len(pending), MARK_CHUNK):
        as_read = Q()
        for alert in pending[start : start + MARK_CHUNK]:
            as_read |= Q(pk=alert.pk, last_seen_at=alert.last_seen_at, occurrences=alert.occurrences)
        marked += Alert.objects.filter(as_read, sent_at=None).update(sent_at=sent_at)
    return marked


def alerts_scheduled() -> dict[str, Any]:
    """The digest schedule's tick (django-q2 task): check the threshold, then send what is pending."""
    exceptions_threshold_check()
    try:
        with lease("alerts-digest", ttl=300, wait=0):
            return {"sent": alerts_digest_send()}
    except LeaseBusyError:
        return {"sent": 0, "note": "another digest is being sent"}
