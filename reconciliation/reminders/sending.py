"""Sending reminders: claim each one before the email leaves, send, record the outcome; the test email."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import IntegrityError, transaction
from django.utils import timezone

from reconciliation.models import Reminder, ReminderPolicy
from reconciliation.reminders.planning import (
    UNCONFIRMED,
    Planned,
    Stage,
    _candidates,
    governing_policy,
    reminders_plan,
)
from reconciliation.reminders.templates import _sample_context, reminder_context, reminder_render
from sync.models import Invoice, SyncJob

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    seen: int = 0
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    messages: list[str] = field(default_factory=list)


def _claim(item: Planned, job: SyncJob | None, state: str, reason: str) -> Reminder | None:
    """Record the reminder before anything leaves; None when another run got there first."""
    values = {
        "state": state,
        "reason": reason,
        "recipient": item.recipient,
        "subject": item.subject,
        "body": item.body,
        "job": job,
    }
    if item.retry is not None:
        claimed = (
            Reminder.objects.filter(pk=item.retry.pk, state=Reminder.State.FAILED)
            .exclude(reason=UNCONFIRMED)
            .update(**values)
        )
        return Reminder.objects.get(pk=item.retry.pk) if claimed else None
    try:
        with transaction.atomic():
            return Reminder.objects.create(
                policy=item.policy,
                invoice=item.invoice,
                stage=item.stage,
                scheduled_for=item.scheduled_for,
                **values,
            )
    except IntegrityError:
        return None


def _send(item: Planned, connection: Any, *, to: str = "") -> None:
    policy = item.policy
    message = EmailMultiAlternatives(
        subject=item.subject,
        body=item.body,
        from_email=policy.from_email or settings.DEFAULT_FROM_EMAIL,
        to=[to or item.recipient],
        reply_to=[policy.reply_to] if policy.reply_to else None,
        connection=connection,
    )
    message.attach_alternative(item.html, "text/html")
    message.send(fail_silently=False)


def reminders_send(
    *,
    run_date: date,
    job: SyncJob | None = None,
    heartbeat: Callable[[int], None] | None = None,
) -> RunReport:
    """Send what `reminders_plan` lists and record each one: sent, skipped with its reasons, or failed.

    A problem with one reminder is recorded on it; the others go on.
    """
    report = RunReport()
    plan = reminders_plan(run_date=run_date)
    if job is not None:
        SyncJob.objects.filter(pk=job.pk).update(progress_total=len(plan))
    connection = get_connection()
    try:
        connection.open()
    except Exception:  # each send retries the connection and records its own error
        log.warning("could not open the mail connection", exc_info=True)
    try:
        for item in plan:
            report.seen += 1
            _handle(item, job, connection, report)
            if heartbeat is not None:
                heartbeat(1)
    finally:
        connection.close()
    report.messages.insert(
        0, f"{run_date}: {report.sent} sent, {report.skipped} skipped, {report.failed} failed"
    )
    return report


def _handle(item: Planned, job: SyncJob | None, connection: Any, report: RunReport) -> None:
    label = f"invoice {item.invoice.number} ({item.stage_label.lower()} {item.scheduled_for})"
    if item.reasons:
        if _claim(item, job, Reminder.State.SKIPPED, "; ".join(item.reasons)) is not None:
            report.skipped += 1
        return
    reminder = _claim(item, job, Reminder.State.FAILED, UNCONFIRMED)
    if reminder is None:
        return  # another run is handling it
    try:
        _send(item, connection)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        Reminder.objects.filter(pk=reminder.pk).update(state=Reminder.State.FAILED, reason=error)
        report.failed += 1
        report.messages.append(f"{label}: {error}")
        return
    Reminder.objects.filter(pk=reminder.pk).update(
        state=Reminder.State.SENT, reason="", sent_at=timezone.now()
    )
    report.sent += 1


def policy_test_send(policy: ReminderPolicy, *, to: str) -> str:
    """Email the policy's reminder to `to` (not the customer), rendered for the next invoice it would remind
    about, or for a sample invoice. Records nothing. Returns what it was rendered for."""
    if not to:
        raise ValueError("your user has no email address: add one to receive a test email")
    run_date = timezone.localdate()
    enabled = list(ReminderPolicy.objects.filter(enabled=True).select_related("profile"))
    invoice = next(
        (
            invoice
            for invoice in _candidates(policy, run_date + timedelta(days=365), 730)
            if governing_policy(invoice, enabled) in (policy, None)
        ),
        None,
    )
    if invoice is None:
        context, label = _sample_context(), "a sample invoice"
    else:
        stage = Stage.OVERDUE if invoice.due_date < run_date else Stage.ON_DUE  # type: ignore[operator]
        context = reminder_context(invoice, stage=stage, run_date=run_date)
        label = f"invoice {invoice.number}"
    subject, body, html = reminder_render(policy, context)
    item = Planned(policy=policy, invoice=Invoice(), stage=context["stage"], scheduled_for=run_date)
    item.subject, item.body, item.html = f"[Test] {subject}"[:255], body, html
    _send(item, None, to=to)
    return label
