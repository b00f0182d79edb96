"""manage.py reconcile [--profile ID] [--type TYPE ...] [--document TYPE:ID] [--full] [--enqueue]"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from reconciliation.checks import reconcile
from reconciliation.rules import OBJECT_TYPES
from reconciliation.services import reconcile_enqueue
from sync.models import SummaryPosting, SyncJob, SyncProfile

# one document, or one daily summary (its kind, e.g. summary_invoice:7)
DOCUMENT_TYPES = (*OBJECT_TYPES, *SummaryPosting.Kind.values)


class Command(BaseCommand):
    help = (
        "Compare canonical documents with their copies on every connection and record the findings as "
        "exceptions (docs/reconciliation.md). Runs here unless --enqueue."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--profile", type=int, help="only this sync profile's source and destination (id)"
        )
        parser.add_argument(
            "--type", dest="object_types", action="append", choices=OBJECT_TYPES, help="repeatable"
        )
        parser.add_argument(
            "--document", help="one document or daily summary as TYPE:ID (invoice:42, summary_invoice:7)"
        )
        parser.add_argument("--no-refresh", action="store_true", help="do not re-read the destinations first")
        parser.add_argument(
            "--full", action="store_true", help="re-read every record of the destinations, not only changes"
        )
        parser.add_argument("--enqueue", action="store_true", help="queue a job for the workers instead")

    def handle(self, *args: Any, **options: Any) -> None:
        profile = None
        if options["profile"] is not None:
            profile = SyncProfile.objects.filter(pk=options["profile"]).first()
            if profile is None:
                raise CommandError(f"--profile: no sync profile with id {options['profile']}", returncode=2)
        document = None
        if options["document"]:
            object_type, _, raw_id = options["document"].partition(":")
            if object_type not in DOCUMENT_TYPES or not raw_id.isdigit():
                types = ", ".join(DOCUMENT_TYPES)
                raise CommandError(
                    f"--document {options['document']!r}: use TYPE:ID, TYPE one of {types}",
                    returncode=2,
                )
            document = (object_type, int(raw_id))
        if options["enqueue"]:
            if options["object_types"] or options["no_refresh"]:
                raise CommandError(
                    "--type and --no-refresh apply to a run here, not to --enqueue", returncode=2
                )
            job = reconcile_enqueue(
                profile, trigger=SyncJob.Trigger.COMMAND, document=document, full=options["full"]
            )
            self.stdout.write(f"queued job #{job.pk}")
            return
        try:
            report = reconcile(
                profile=profile,
                object_types=options["object_types"],
                document=document,
                refresh=not options["no_refresh"],
                full=options["full"],
            )
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from None
        for message in report.messages:
            self.stderr.write(message)
        self.stdout.write(" ".join(f"{name}={value}" for name, value in report.as_dict().items()))
        if report.failed:
            raise CommandError(f"{report.failed} documents could not be checked", returncode=1)
