"""Load the demo: a wholesale business's CSV exports and one user per role. Idempotent."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from connectors.models import Connection
from reconciliation.models import Override, ReconciliationException
from sync import roles
from sync.imports import file_import
from sync.models import SyncJob

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
DEMO_CONNECTION = "Northwind wholesale CSV"
# In dependency order: credit notes and payments name invoices.
DEMO_FILES = ["wholesale_invoices.csv", "wholesale_credit_notes.csv", "wholesale_payments.csv"]
DEMO_USERS = [
    ("admin", None, True),
    ("integrator", roles.INTEGRATION_ADMINS, False),
    ("finance", roles.FINANCE_STAFF, False),
    ("accountant", roles.ACCOUNTANTS, False),
]


class Command(BaseCommand):
    help = "Load demo documents (idempotent) and create demo users, one per role plus a superuser."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--password", default=None, help="password for new demo users (default: DEMO_PASSWORD)"
        )
        parser.add_argument("--no-users", action="store_true", help="load documents only")

    def handle(self, *args: Any, **options: Any) -> None:
        connection, _ = Connection.objects.get_or_create(
            name=DEMO_CONNECTION,
            defaults={"platform": "csv", "role": Connection.Role.SOURCE, "health": Connection.Health.HEALTHY},
        )
        loaded = dict(connection.options.get("demo_files", {}))
        for name in DEMO_FILES:
            data = (DEMO_DIR / name).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if loaded.get(name) == digest:
                self.stdout.write(f"{name}: already loaded")
                continue
            report = file_import(
                connection=connection, data=data, filename=name, trigger=SyncJob.Trigger.COMMAND
            )
            loaded[name] = digest
            self.stdout.write(f"{name}: imported {report.imported_rows}, rejected {report.rejected_rows}")
        if connection.options.get("demo_files") != loaded:
            connection.options = {**connection.options, "demo_files": loaded}
            connection.save()
        if settings.SANDBOX_ENABLED:
            from sandbox.demo import demo_connections

            for sandbox_connection, seeded in demo_connections(settings.SANDBOX_BASE_URL):
                state = "seeded with demo data" if seeded else "already there"
                self.stdout.write(f"{sandbox_connection.name}: {state}")
            from sandbox.demo import demo_profile

            profile = demo_profile(connection)
            if profile is not None:
                self.stdout.write(f"sync profile: {profile.name} (Dry run or Run now in the admin)")
            from sandbox.demo import demo_stripe_profile, demo_stripe_webhook

            hook, made = demo_stripe_webhook(settings.SANDBOX_BASE_URL)
            if hook is not None:
                state = "subscribed now" if made else "already subscribed"
                self.stdout.write(f"Stripe sandbox webhooks to {hook.url}: {state}")
            stripe_profile = demo_stripe_profile()
            if stripe_profile is not None:
                note = "runs on the Stripe sandbox's webhooks"
                self.stdout.write(f"sync profile: {stripe_profile.name} ({note})")
        else:
            self.stdout.write("sandbox platforms are off (SANDBOX_ENABLED): no sandbox connections")
        from reconciliation.reminders import policy_demo_ensure

        policy, created = policy_demo_ensure()
        self.stdout.write(f"reminder policy: {policy.name}{' (created)' if created else ''}")
        if not options["no_users"]:
            password = options["password"] or settings.DEMO_PASSWORD
            self._users(password)
            self._pending_override()

    @transaction.atomic
    def _users(self, password: str) -> None:
        user_model = get_user_model()
        for username, group_name, superuser in DEMO_USERS:
            user, created = user_model.objects.get_or_create(
                username=username,
                defaults={"is_staff": True, "is_superuser": superuser, "email": f"{username}@example.com"},
            )
            if created:
                user.set_password(password)
                user.save()
            if group_name:
                user.groups.add(Group.objects.get(name=group_name))
        self.stdout.write("demo logins (password for new users: see DEMO_PASSWORD in README):")
        for username, group_name, _ in DEMO_USERS:
            self.stdout.write(f"  {username:<11} {group_name or 'superuser'}")

    def _pending_override(self) -> None:
        """One proposal waiting for an accountant, so the four-eyes queue is not empty."""
        exception = ReconciliationException.objects.filter(
            kind=ReconciliationException.Kind.TOTAL_MISMATCH
        ).first()
        if exception is None or Override.objects.filter(exception=exception).exists():
            return
        Override.objects.create(
            exception=exception,
            object_type=exception.object_type,
            object_id=exception.object_id,
            document_number=exception.document_number,
            action=Override.Action.ACCEPT_DIFFERENCE,
            limit_amount=exception.amount_at_risk,
            before_value=exception.details,
            after_value={"accepted_difference": str(exception.amount_at_risk)},
            reason="Rounding on the customer's purchase order; agreed with the customer by phone.",
            proposed_by=get_user_model().objects.get(username="finance"),
            expires_at=timezone.now() + timedelta(days=14),
        )
