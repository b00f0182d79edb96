"""Findings the finance team works (exceptions) and the corrections they agree on (overrides)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from sync.models import MONEY, ObjectType


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ReconciliationException(models.Model):
    class Kind(models.TextChoices):
        INVALID_INPUT = "invalid_input", "Invalid input"
        TOTAL_MISMATCH = "total_mismatch", "Stated total differs from lines"
        MISSING_IN_DESTINATION = "missing_in_destination", "Missing in destination"
        DUPLICATE = "duplicate", "Duplicate"
        AMOUNT_MISMATCH = "amount_mismatch", "Amount differs"
        TAX_MISMATCH = "tax_mismatch", "Tax differs"
        CURRENCY_MISMATCH = "currency_mismatch", "Currency differs"
        STATUS_MISMATCH = "status_mismatch", "Status differs"
        DATE_MISMATCH = "date_mismatch", "Date differs"
        CUSTOMER_MISMATCH = "customer_mismatch", "Customer differs"
        UNMATCHED_PAYMENT = "unmatched_payment", "Payment matches no invoice"
        MAPPING_MISSING = "mapping_missing", "Mapping missing"
        CONFLICT = "conflict", "Changed in destination"
        SYNC_FAILURE = "sync_failure", "Sync failed"

    class Severity(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"
        CRITICAL = "critical", "Critical"

    class State(models.TextChoices):
        OPEN = "open", "Open"
        ASSIGNED = "assigned", "Assigned"
        IN_REVIEW = "in_review", "In review"
        RESOLVED = "resolved", "Resolved"
        IGNORED = "ignored", "Ignored"

    OPEN_STATES = (State.OPEN, State.ASSIGNED, State.IN_REVIEW)

    kind = models.CharField(max_length=40, choices=Kind.choices, db_index=True)
    severity = models.CharField(
        max_length=10, choices=Severity.choices, default=Severity.MEDIUM, db_index=True
    )
    state = models.CharField(max_length=20, choices=State.choices, default=State.OPEN, db_index=True)
    fingerprint = models.CharField(
        max_length=64, unique=True, help_text="Stable identity: a re-run updates this row, never a twin."
    )
    title = models.CharField(max_length=255)
    message = models.TextField(blank=True)
    connection = models.ForeignKey(
        "connectors.Connection", on_delete=models.SET_NULL, null=True, blank=True, related_name="exceptions"
    )
    job = models.ForeignKey(
        "sync.SyncJob", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    object_type = models.CharField(max_length=20, choices=ObjectType.choices, blank=True)
    object_id = models.BigIntegerField(null=True, blank=True)
    document_number = models.CharField(max_length=100, blank=True, db_index=True)
    external_id = models.CharField(max_length=255, blank=True, db_index=True)
    currency = models.CharField(max_length=3, blank=True)
    amount_at_risk = models.DecimalField(**MONEY, null=True, blank=True)
    amount_at_risk_base = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="In the company's base currency."
    )
    details = models.JSONField(
        default=dict, blank=True, help_text="Systems and values that disagree; row, column and raw value."
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="exceptions")
    occurrences = models.PositiveIntegerField(default=1)
    first_seen_at = models.DateTimeField(auto_now_add=True, db_index=True)
    last_seen_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_by_system = models.BooleanField(default=False)

    history = HistoricalRecords(m2m_fields=[tags])

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="exception_object_idx"),
            # the triage queue's default order, whole and per state, without sorting a million rows
            models.Index(fields=["-last_seen_at", "-id"], name="exception_queue_idx"),
            models.Index(fields=["state", "-last_seen_at", "-id"], name="exception_state_queue_idx"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES


class Override(models.Model):
    """A proposed correction. Only an approved one is applied, and never approved by its proposer."""

    class Action(models.TextChoices):
        SET_FIELD = "set_field", "Set a field"
        ACCEPT_DIFFERENCE = "accept_difference", "Accept a difference within a limit"
        FORCE_MATCH = "force_match", "Force a match between two documents"
        REPUSH = "repush", "Re-push"
        VOID = "void", "Void"
        MARK_PAID = "mark_paid", "Mark paid"

    class State(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        APPLIED = "applied", "Applied"
        EXPIRED = "expired", "Expired"
        REVERTED = "reverted", "Reverted"

    exception = models.ForeignKey(
        ReconciliationException, on_delete=models.PROTECT, null=True, blank=True, related_name="overrides"
    )
    object_type = models.CharField(max_length=20, choices=ObjectType.choices, blank=True)
    object_id = models.BigIntegerField(null=True, blank=True)
    document_number = models.CharField(max_length=100, blank=True)
    action = models.CharField(max_length=30, choices=Action.choices)
    field_name = models.CharField(max_length=100, blank=True)
    before_value = models.JSONField(null=True, blank=True)
    after_value = models.JSONField(null=True, blank=True)
    limit_amount = models.DecimalField(**MONEY, null=True, blank=True)
    reason = models.TextField()
    state = models.CharField(max_length=20, choices=State.choices, default=State.PROPOSED, db_index=True)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    apply_error = models.TextField(
        blank=True, help_text="Why applying it failed; it stays approved and nothing of it was written."
    )
    reverts = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    history = HistoricalRecords()

    class Meta:
        ordering = ["-proposed_at", "-id"]
        permissions = [("approve_override", "Can approve or reject overrides")]
        constraints = [
            # Four eyes, enforced by the database whatever path writes the row.
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("proposed_by")),
                name="override_not_decided_by_proposer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} ({self.get_state_display()})"


class ExceptionNote(models.Model):
    """A note someone left on an exception while working it."""

    exception = models.ForeignKey(ReconciliationException, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.body[:60]


class ReminderPolicy(models.Model):
    """When to remind customers about an invoice, and what the email says."""

    name = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    profile = models.ForeignKey(
        "sync.SyncProfile",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="reminder_policies",
        help_text="Only invoices this profile syncs; empty for every invoice.",
    )
    customer_group = models.CharField(
        max_length=50, blank=True, help_text="Only customers in this group; empty for every customer."
    )
    days_before_due = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Remind this many days before the due date; empty for never."
    )
    on_due_date = models.BooleanField(default=True, help_text="Remind on the due date.")
    every_days_after = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Once overdue, remind every this many days; empty for never."
    )
    max_overdue_reminders = models.PositiveSmallIntegerField(
        default=3, help_text="Stop after this many overdue reminders for one invoice."
    )
    subject_template = models.CharField(max_length=255)
    body_template = models.TextField()
    from_email = models.EmailField(blank=True, help_text="Empty for DEFAULT_FROM_EMAIL.")
    reply_to = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "reminder policies"

    def __str__(self) -> str:
        return self.name


class Reminder(models.Model):
    """A reminder sent, or one that was due and skipped, with the reason."""

    class Stage(models.TextChoices):
        BEFORE_DUE = "before_due", "Before due"
        ON_DUE = "on_due", "On the due date"
        OVERDUE = "overdue", "Overdue"

    class State(models.TextChoices):
        SENT = "sent", "Sent"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed to send"

    policy = models.ForeignKey(ReminderPolicy, on_delete=models.CASCADE, related_name="reminders")
    invoice = models.ForeignKey("sync.Invoice", on_delete=models.CASCADE, related_name="reminders")
    stage = models.CharField(max_length=20, choices=Stage.choices)
    scheduled_for = models.DateField(help_text="The day this reminder was due.")
    state = models.CharField(max_length=20, choices=State.choices, db_index=True)
    reason = models.TextField(blank=True, help_text="Why it was skipped or failed.")
    recipient = models.CharField(max_length=255, blank=True)
    subject = models.CharField(max_length=255, blank=True)
    body = models.TextField(blank=True)
    job = models.ForeignKey(
        "sync.SyncJob", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One row per due reminder: a second run on the same day never sends it twice.
            models.UniqueConstraint(
                fields=["policy", "invoice", "stage", "scheduled_for"], name="reminder_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_stage_display()} reminder for invoice {self.invoice_id} ({self.state})"


class Alert(models.Model):
    """Something an integration admin must hear about; gathered into one digest email per period."""

    class Kind(models.TextChoices):
        REAUTHORISE = "reauthorise", "Connection needs re-authorisation"
        JOB_FAILED = "job_failed", "Job failed permanently"
        EXCEPTION_THRESHOLD = "exception_threshold", "Open exceptions above the threshold"

    kind = models.CharField(max_length=30, choices=Kind.choices)
    key = models.CharField(max_length=100, help_text="What the alert is about, so repeats fold into one.")
    subject = models.CharField(max_length=255)
    message = models.TextField(blank=True)
    connection = models.ForeignKey(
        "connectors.Connection", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    job = models.ForeignKey(
        "sync.SyncJob", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    occurrences = models.PositiveIntegerField(default=1)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="When its digest went out."
    )

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "key"], condition=Q(sent_at__isnull=True), name="alert_pending_once"
            ),
        ]

    def __str__(self) -> str:
        return self.subject
