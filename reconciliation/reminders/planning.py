"""Reminder planning: each policy's reminder dates, the policy an invoice follows, and what a run would do."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from reconciliation.models import Reminder, ReminderPolicy
from reconciliation.reminders.suppression import OWED, _chunks, suppressions
from reconciliation.reminders.templates import money_format, reminder_context, reminder_render
from sync.models import Invoice

Stage = Reminder.Stage
UNCONFIRMED = "Sending started but was never confirmed; not retried, so the customer is never emailed twice."


# --- schedule -----------------------------------------------------------------------------------------
def policy_slots(policy: ReminderPolicy, due: date) -> list[tuple[str, date]]:
    """Every reminder date the policy gives an invoice due on `due`, in date order."""
    slots = []
    if policy.days_before_due:
        slots.append((Stage.BEFORE_DUE, due - timedelta(days=policy.days_before_due)))
    if policy.on_due_date:
        slots.append((Stage.ON_DUE, due))
    if policy.every_days_after:
        slots += [
            (Stage.OVERDUE, due + timedelta(days=policy.every_days_after * k))
            for k in range(1, policy.max_overdue_reminders + 1)
        ]
    return slots


def slot_due(policy: ReminderPolicy, due: date, run_date: date, window: int) -> tuple[str, date] | None:
    """The latest reminder date in (run_date - window, run_date], or None."""
    eligible = [slot for slot in policy_slots(policy, due) if run_date - timedelta(days=window) < slot[1]]
    eligible = [slot for slot in eligible if slot[1] <= run_date]
    return eligible[-1] if eligible else None


def catch_up_days() -> int:
    return int(getattr(settings, "REMINDER_CATCH_UP_DAYS", 7))


def schedule_time() -> time | None:
    raw = getattr(settings, "REMINDER_SCHEDULE_TIME", "")
    return time.fromisoformat(raw) if raw else None


def next_run_date(now: datetime | None = None) -> date:
    """The day the next scheduled run will handle: today before the schedule time, else tomorrow."""
    local = timezone.localtime(now or timezone.now())
    at = schedule_time()
    if at is None or local.time() < at:
        return local.date()
    return local.date() + timedelta(days=1)


def _specificity(policy: ReminderPolicy) -> tuple[int, int]:
    return (1 if policy.customer_group else 0, 1 if policy.profile_id else 0)


def _matches(policy: ReminderPolicy, invoice: Invoice) -> bool:
    if policy.profile_id and invoice.source_connection_id != policy.profile.source_id:  # type: ignore[union-attr]
        return False
    return not policy.customer_group or invoice.customer.group == policy.customer_group


def governing_policy(invoice: Invoice, policies: list[ReminderPolicy]) -> ReminderPolicy | None:
    """The most specific enabled policy that matches the invoice (policies come ordered by name)."""
    best = None
    for policy in policies:
        if _matches(policy, invoice) and (best is None or _specificity(policy) > _specificity(best)):
            best = policy
    return best


def _candidates(policy: ReminderPolicy, run_date: date, window: int) -> Any:
    """Owed invoices whose due date puts one of the policy's reminder dates in the window."""
    offsets = [-(policy.days_before_due or 0)] if policy.days_before_due else []
    offsets += [0] if policy.on_due_date else []
    if policy.every_days_after and policy.max_overdue_reminders:
        offsets += [policy.every_days_after, policy.every_days_after * policy.max_overdue_reminders]
    if not offsets:
        return Invoice.objects.none()
    queryset = Invoice.objects.filter(
        status__in=OWED,
        amount_due__gt=0,
        due_date__gt=run_date - timedelta(days=window + max(offsets)),
        due_date__lte=run_date - timedelta(days=min(offsets)),
    )
    if policy.profile_id:
        queryset = queryset.filter(source_connection_id=policy.profile.source_id)  # type: ignore[union-attr]
    if policy.customer_group:
        queryset = queryset.filter(customer__group=policy.customer_group)
    return queryset.select_related("customer", "source_connection").order_by("due_date", "pk")


# --- planning and sending -----------------------------------------------------------------------------
@dataclass
class Planned:
    """One reminder the run would handle: send it, or skip it for the reasons given."""

    policy: ReminderPolicy
    invoice: Invoice
    stage: str
    scheduled_for: date
    reasons: list[str] = field(default_factory=list)
    retry: Reminder | None = None
    subject: str = ""
    body: str = ""
    html: str = ""

    @property
    def action(self) -> str:
        return "skip" if self.reasons else "send"

    @property
    def recipient(self) -> str:
        return self.invoice.customer.email

    @property
    def stage_label(self) -> str:
        return Stage(self.stage).label

    @property
    def amount_due(self) -> str:
        return money_format(self.invoice.amount_due, self.invoice.currency)


STAGE_NAMES = {Stage.BEFORE_DUE: "before-due", Stage.ON_DUE: "due-date", Stage.OVERDUE: "overdue"}


def _went_out(row: Reminder) -> bool:
    """Sent, or claimed and never confirmed (it may have reached the customer)."""
    if row.state == Reminder.State.FAILED:
        return row.reason == UNCONFIRMED
    return row.state == Reminder.State.SENT


def _repeat(item: Planned, earlier: list[Reminder], window: int) -> list[str]:
    """Why `item` would repeat a reminder the customer already had: one of the same stage for the invoice,
    under any policy, within the spacing of that stage (every N days once overdue; the catch-up window for
    the one-off stages). Empty when it would not."""
    gap = item.policy.every_days_after if item.stage == Stage.OVERDUE else window
    after = item.scheduled_for - timedelta(days=gap or window)
    close = sorted(
        (row for row in earlier if row.scheduled_for > after), key=lambda row: (row.scheduled_for, row.pk)
    )
    if not close:
        return []
    last = close[-1]
    reason = (
        f"the {STAGE_NAMES[item.stage]} reminder of {last.scheduled_for.isoformat()} "
        f"(policy {last.policy.name}) already went out"
    )
    if item.stage == Stage.OVERDUE:
        reason += f"; the next overdue reminder waits until {gap} days after it"
    return [reason]


def reminders_plan(*, run_date: date, policies: Iterable[ReminderPolicy] | None = None) -> list[Planned]:
    """What a run on `run_date` would send and skip, and why. Reads only; the preview shows this."""
    window = catch_up_days()
    enabled = list(ReminderPolicy.objects.filter(enabled=True).select_related("profile").order_by("name"))
    wanted = enabled if policies is None else [p for p in enabled if p.pk in {q.pk for q in policies}]
    planned: list[Planned] = []
    for policy in wanted:
        due: list[Planned] = []
        for invoice in _candidates(policy, run_date, window):
            slot = slot_due(policy, invoice.due_date, run_date, window)
            if slot is None or governing_policy(invoice, enabled) != policy:
                continue
            due.append(Planned(policy=policy, invoice=invoice, stage=slot[0], scheduled_for=slot[1]))
        recorded: dict[tuple[int, str, date], Reminder] = {}
        went_out: dict[tuple[int, str], list[Reminder]] = {}
        since = run_date - timedelta(days=window + max(window, policy.every_days_after or 0))
        for chunk in _chunks([item.invoice.pk for item in due]):
            # every policy's rows: a reminder sent under another policy (or this one before an edit)
            # still counts for the customer
            rows = Reminder.objects.filter(invoice_id__in=chunk, scheduled_for__gt=since).select_related(
                "policy"
            )
            for row in rows:
                if row.policy_id == policy.pk and row.scheduled_for > run_date - timedelta(days=window):
                    recorded[(row.invoice_id, row.stage, row.scheduled_for)] = row
                if _went_out(row):
                    went_out.setdefault((row.invoice_id, row.stage), []).append(row)
        for item in due:
            row = recorded.get((item.invoice.pk, item.stage, item.scheduled_for))
            if row is None:
                item.reasons = _repeat(item, went_out.get((item.invoice.pk, item.stage), []), window)
                planned.append(item)
            elif row.state == Reminder.State.FAILED and row.reason != UNCONFIRMED:
                item.retry = row
                planned.append(item)
    why = suppressions([item.invoice for item in planned])
    for item in planned:
        item.reasons = [*item.reasons, *why[item.invoice.pk]]
        if item.action == "send":
            context = reminder_context(item.invoice, stage=item.stage, run_date=run_date)
            try:
                item.subject, item.body, item.html = reminder_render(item.policy, context)
            except Exception as exc:  # a template broken outside the admin form: this one fails, not the run
                item.reasons = [f"the policy's template does not render: {type(exc).__name__}: {exc}"]
    return planned
