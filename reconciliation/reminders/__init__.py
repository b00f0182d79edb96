"""Payment reminders: which invoices are due a reminder, which must not get one (and why), and the email.

Schedule. A policy gives every invoice fixed reminder dates counted from its due date: `days_before_due`
before it, the due date itself, then every `every_days_after` days after it, at most
`max_overdue_reminders` times. A run on day T looks, per invoice, at the latest of those dates in the
catch-up window (T - REMINDER_CATCH_UP_DAYS, T]. If that date has no `Reminder` row yet, the run sends it
(or records why it skipped it); earlier dates it missed are stale and never sent. So a run that did not
happen is made up once by the next one, with only the latest reminder, and a second run the same day
finds the row and sends nothing.

Exactly once. The row is claimed (inserted, unique per policy, invoice, stage and date) before the email
leaves, so two runs at once cannot both send it. An error reported by the mail backend is recorded as
`failed` and retried by the next run while the date is in the window; a run that died between claiming
and sending leaves the row `failed` as unconfirmed and it is not retried: a customer is never emailed
twice for one reminder.

Which policy. An invoice follows the most specific enabled policy that matches it (profile and customer
group, then group, then profile, then a catch-all; ties by name), so a customer never gets two reminders
for one invoice.

Modules: `templates` (the sandboxed engine, the context, checking and rendering), `planning` (reminder
dates, the governing policy, what a run would do), `suppression` (what stops a reminder), `sending`
(claiming, sending and recording), `jobs` (the job handler and the daily tick), `demo` (the demo policy).
"""

from reconciliation.reminders.demo import DEMO_BODY, DEMO_POLICY, DEMO_SUBJECT, policy_demo_ensure
from reconciliation.reminders.jobs import reminders_enqueue, reminders_job, reminders_scheduled
from reconciliation.reminders.planning import (
    UNCONFIRMED,
    Planned,
    Stage,
    catch_up_days,
    governing_policy,
    next_run_date,
    policy_slots,
    reminders_plan,
    schedule_time,
    slot_due,
)
from reconciliation.reminders.sending import RunReport, policy_test_send, reminders_send
from reconciliation.reminders.suppression import CHUNK, OWED, PENDING_PAYMENT, SETTLED, suppressions
from reconciliation.reminders.templates import (
    SAFE_TAGS,
    TemplateProblemError,
    money_format,
    reminder_context,
    reminder_render,
    template_check,
    template_variables,
)

__all__ = [
    "CHUNK",
    "DEMO_BODY",
    "DEMO_POLICY",
    "DEMO_SUBJECT",
    "OWED",
    "PENDING_PAYMENT",
    "SAFE_TAGS",
    "SETTLED",
    "UNCONFIRMED",
    "Planned",
    "RunReport",
    "Stage",
    "TemplateProblemError",
    "catch_up_days",
    "governing_policy",
    "money_format",
    "next_run_date",
    "policy_demo_ensure",
    "policy_slots",
    "policy_test_send",
    "reminder_context",
    "reminder_render",
    "reminders_enqueue",
    "reminders_job",
    "reminders_plan",
    "reminders_scheduled",
    "reminders_send",
    "schedule_time",
    "slot_due",
    "suppressions",
    "template_check",
    "template_variables",
]
