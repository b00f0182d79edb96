"""Send the payment reminders due today (or on --date), or list them with --dry-run."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from reconciliation import reminders
from sync import jobs
from sync.models import SyncJob


def _date(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"--date {raw!r} is not a date; use YYYY-MM-DD") from None


class Command(BaseCommand):
    help = (
        "Send the payment reminders due on a day (default today) and record each one; with --dry-run, "
        "list what would be sent and skipped, and why, without sending or recording anything."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="show what would happen; send nothing")
        parser.add_argument("--date", type=str, default=None, help="the run date, YYYY-MM-DD (default today)")

    def handle(self, *args: Any, **options: Any) -> None:
        run_date = _date(options["date"]) if options["date"] else timezone.localdate()
        if options["dry_run"]:
            plan = reminders.reminders_plan(run_date=run_date)
            sends = [item for item in plan if item.action == "send"]
            skips = [item for item in plan if item.action == "skip"]
            self.stdout.write(
                f"{run_date}: would send {len(sends)}, skip {len(skips)} (dry run, nothing sent)"
            )
            for item in sends:
                self.stdout.write(
                    f"send  {item.invoice.number}  {item.stage_label.lower()} of {item.scheduled_for}  "
                    f"to {item.recipient}  [{item.policy.name}]  {item.subject}"
                )
            for item in skips:
                self.stdout.write(
                    f"skip  {item.invoice.number}  {item.stage_label.lower()} of {item.scheduled_for}  "
                    f"[{item.policy.name}]  {'; '.join(item.reasons)}"
                )
            return
        # Through a job like the schedule's, so the run is listed with the others in Sync > Sync jobs.
        job = SyncJob.objects.create(
            kind=SyncJob.Kind.REMIND, trigger=SyncJob.Trigger.COMMAND, params={"date": run_date.isoformat()}
        )
        state = jobs.job_run(job.pk)
        job.refresh_from_db()
        self.stdout.write(
            f"job #{job.pk} {state}: {job.created} sent, {job.skipped} skipped, {job.failed} failed"
        )
        if job.error:
            self.stdout.write(job.error)
        if state not in (SyncJob.State.SUCCEEDED,):
            raise CommandError(
                f"job #{job.pk} ended {state}; failed reminders are listed in Reconciliation > Reminders"
            )
