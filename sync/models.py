"""Canonical documents, bindings, profiles, mappings and jobs.

Money is Decimal with an ISO 4217 currency on the document; amounts are stored quantized to the currency's
minor unit (JPY 0, USD 2, KWD 3). Where a document came from, and every copy of it elsewhere, is a
`Binding`: the documents themselves hold no foreign ids.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

MONEY = {"max_digits": 19, "decimal_places": 4}
RATE = {"max_digits": 9, "decimal_places": 4}
QUANTITY = {"max_digits": 19, "decimal_places": 6}
# History keeps every value a person reads; the source payload stays on the document (current) and binding.
DOCUMENT_HISTORY_EXCLUDED = ["raw_payload", "content_hash"]


class ObjectType(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    INVOICE = "invoice", "Invoice"
    PAYMENT = "payment", "Payment"
    CREDIT_NOTE = "credit_note", "Credit note"


class Customer(models.Model):
    name = models.CharField(max_length=255, db_index=True)
    email = models.EmailField(blank=True, db_index=True)
    tax_number = models.CharField(max_length=64, blank=True)
    phone = models.CharField(max_length=64, blank=True)
    currency = models.CharField(max_length=3, blank=True, help_text="Default billing currency.")
    group = models.CharField(
        max_length=50, blank=True, db_index=True, help_text="Customer group, e.g. for reminder policies."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Document(models.Model):
    """What invoices, payments and credit notes share: origin, raw payload, version."""

    source_connection = models.ForeignKey(
        "connectors.Connection", on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    currency = models.CharField(max_length=3)
    raw_payload = models.JSONField(default=dict, blank=True, help_text="The source record it was built from.")
    content_hash = models.CharField(max_length=64, blank=True)
    row_version = models.PositiveIntegerField(default=1, help_text="Bumped on every change of content.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Invoice(Document):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"
        PARTIALLY_PAID = "partially_paid", "Partially paid"
        PAID = "paid", "Paid"
        VOID = "void", "Void"
        DELETED = "deleted", "Deleted"

    number = models.CharField(max_length=64, db_index=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    issue_date = models.DateField(db_index=True)
    due_date = models.DateField(null=True, blank=True, db_index=True)
    paid_on_date = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN, db_index=True)
    exchange_rate = models.DecimalField(max_digits=19, decimal_places=8, null=True, blank=True)
    tax_inclusive = models.BooleanField(default=False)
    subtotal = models.DecimalField(**MONEY, default=0)
    tax_total = models.DecimalField(**MONEY, default=0)
    total = models.DecimalField(**MONEY, default=0, help_text="The total as the source states it.")
    lines_total = models.DecimalField(**MONEY, default=0, help_text="Sum of the lines, with tax.")
    amount_paid = models.DecimalField(**MONEY, default=0)
    amount_due = models.DecimalField(**MONEY, default=0)
    memo = models.TextField(blank=True)

    history = HistoricalRecords(excluded_fields=DOCUMENT_HISTORY_EXCLUDED)

    class Meta:
        ordering = ["-issue_date", "-id"]

    def __str__(self) -> str:
        return f"Invoice {self.number}"


class LineBase(models.Model):
    line_number = models.PositiveIntegerField(default=1)
    description = models.CharField(max_length=500)
    item_code = models.CharField(max_length=100, blank=True)
    quantity = models.DecimalField(**QUANTITY)
    unit_price = models.DecimalField(**QUANTITY)
    tax_rate = models.DecimalField(**RATE, null=True, blank=True, help_text="Percent.")
    subtotal = models.DecimalField(**MONEY, default=0)
    tax_amount = models.DecimalField(**MONEY, default=0)
    total = models.DecimalField(**MONEY, default=0)

    class Meta:
        abstract = True
        ordering = ["line_number"]

    def __str__(self) -> str:
        return f"{self.line_number}. {self.description}"


class InvoiceLine(LineBase):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")

    history = HistoricalRecords()

    class Meta(LineBase.Meta):
        constraints = [models.UniqueConstraint(fields=["invoice", "line_number"], name="invoice_line_unique")]


class Payment(Document):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        VOID = "void", "Void"

    reference = models.CharField(max_length=100, db_index=True)
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="payments", null=True, blank=True
    )
    transaction_date = models.DateField(db_index=True)
    amount = models.DecimalField(**MONEY)
    unapplied_amount = models.DecimalField(**MONEY, default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.COMPLETED, db_index=True)
    method = models.CharField(max_length=40, blank=True)
    processor_transaction_id = models.CharField(max_length=100, blank=True, db_index=True)
    fee = models.DecimalField(**MONEY, null=True, blank=True)
    payout_id = models.CharField(max_length=100, blank=True, db_index=True)
    memo = models.TextField(blank=True)

    history = HistoricalRecords(excluded_fields=DOCUMENT_HISTORY_EXCLUDED)

    class Meta:
        ordering = ["-transaction_date", "-id"]

    def __str__(self) -> str:
        return f"Payment {self.reference}"


class PaymentAllocation(models.Model):
    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="allocations")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payment_allocations")
    amount = models.DecimalField(**MONEY)
    allocated_on = models.DateField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["payment", "invoice"], name="payment_allocation_unique")
        ]

    def __str__(self) -> str:
        return f"{self.amount} of {self.payment_id} to {self.invoice_id}"


class CreditNote(Document):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"
        PARTIALLY_APPLIED = "partially_applied", "Partially applied"
        APPLIED = "applied", "Applied"
        VOID = "void", "Void"
        DELETED = "deleted", "Deleted"

    number = models.CharField(max_length=64, db_index=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="credit_notes")
    issue_date = models.DateField(db_index=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN, db_index=True)
    original_invoice = models.ForeignKey(
        Invoice, on_delete=models.SET_NULL, null=True, blank=True, related_name="credit_notes"
    )
    subtotal = models.DecimalField(**MONEY, default=0)
    tax_total = models.DecimalField(**MONEY, default=0)
    total = models.DecimalField(**MONEY, default=0)
    lines_total = models.DecimalField(**MONEY, default=0)
    remaining_credit = models.DecimalField(**MONEY, default=0)
    memo = models.TextField(blank=True)

    history = HistoricalRecords(excluded_fields=DOCUMENT_HISTORY_EXCLUDED)

    class Meta:
        ordering = ["-issue_date", "-id"]

    def __str__(self) -> str:
        return f"Credit note {self.number}"


class CreditNoteLine(LineBase):
    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, related_name="lines")

    history = HistoricalRecords()

    class Meta(LineBase.Meta):
        constraints = [
            models.UniqueConstraint(fields=["credit_note", "line_number"], name="credit_note_line_unique")
        ]


class CreditAllocation(models.Model):
    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, related_name="allocations")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_allocations")
    amount = models.DecimalField(**MONEY)
    allocated_on = models.DateField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["credit_note", "invoice"], name="credit_allocation_unique")
        ]

    def __str__(self) -> str:
        return f"{self.amount} of {self.credit_note_id} to {self.invoice_id}"


class Binding(models.Model):
    """A canonical document's copy on one connection: external id <-> canonical id, and its version."""

    connection = models.ForeignKey("connectors.Connection", on_delete=models.PROTECT, related_name="bindings")
    object_type = models.CharField(max_length=20, choices=ObjectType.choices)
    object_id = models.BigIntegerField()
    external_id = models.CharField(max_length=255)
    external_number = models.CharField(max_length=100, blank=True, help_text="Number as shown there.")
    is_origin = models.BooleanField(default=False, help_text="The document came from this connection.")
    remote_version = models.CharField(max_length=100, blank=True, help_text="e.g. QuickBooks SyncToken.")
    content_hash = models.CharField(max_length=64, blank=True)
    raw_payload = models.JSONField(default=dict, blank=True)
    remote_deleted = models.BooleanField(default=False)
    document_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="The document's row version last written to a destination."
    )
    snapshot = models.JSONField(
        default=dict,
        blank=True,
        help_text="The copy's values in canonical terms (total, tax, currency, status, dates, customer), "
        "as last read from or written to the connection; what reconciliation compares.",
    )
    snapshot_at = models.DateTimeField(null=True, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_synced_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "object_type", "external_id"], name="binding_external_unique"
            ),
            models.UniqueConstraint(
                fields=["connection", "object_type", "object_id"], name="binding_local_unique"
            ),
        ]
        indexes = [models.Index(fields=["object_type", "object_id"], name="binding_object_idx")]

    def __str__(self) -> str:
        return f"{self.object_type} {self.object_id} <-> {self.external_id}"


class MappingSet(models.Model):
    """How canonical values become a destination's values: edited in the admin, applied by pure functions."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    destination = models.ForeignKey(
        "connectors.Connection", on_delete=models.PROTECT, null=True, blank=True, related_name="mapping_sets"
    )
    number_prefix = models.CharField(max_length=20, blank=True, help_text="Prepended to document numbers.")
    number_suffix = models.CharField(max_length=20, blank=True, help_text="Appended to document numbers.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MappingRow(models.Model):
    class Kind(models.TextChoices):
        REVENUE_ACCOUNT = "revenue_account", "Revenue account (per item or category)"
        TAX_CODE = "tax_code", "Tax code (per source tax rate)"
        ITEM = "item", "Item"
        CUSTOMER = "customer", "Customer"
        PAYMENT_METHOD = "payment_method", "Deposit account (per payment method)"

    mapping_set = models.ForeignKey(MappingSet, on_delete=models.CASCADE, related_name="rows")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    source_value = models.CharField(max_length=255)
    target_value = models.CharField(max_length=255, help_text="The destination's id or code.")
    target_label = models.CharField(max_length=255, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["kind", "source_value"]
        constraints = [
            models.UniqueConstraint(fields=["mapping_set", "kind", "source_value"], name="mapping_row_unique")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.source_value} -> {self.target_value}"


class SyncProfile(models.Model):
    class Direction(models.TextChoices):
        ONE_WAY = "one_way", "Source to destination"
        TWO_WAY = "two_way", "Both ways (payments back to the source)"

    class PostingMode(models.TextChoices):
        PER_DOCUMENT = "per_document", "One document per document"
        DAILY_SUMMARY = "daily_summary", "Daily summary per currency"

    class Schedule(models.TextChoices):
        MANUAL = "manual", "Manual only"
        EVERY_N_MINUTES = "minutes", "Every N minutes"
        HOURLY = "hourly", "Hourly"
        DAILY = "daily", "Daily at a time"
        END_OF_DAY = "end_of_day", "End-of-day batch"

    name = models.CharField(max_length=100, unique=True)
    source = models.ForeignKey("connectors.Connection", on_delete=models.PROTECT, related_name="+")
    destination = models.ForeignKey("connectors.Connection", on_delete=models.PROTECT, related_name="+")
    object_types = models.JSONField(default=list, help_text='e.g. ["customer", "invoice", "payment"]')
    direction = models.CharField(max_length=20, choices=Direction.choices, default=Direction.ONE_WAY)
    cutover_date = models.DateField(null=True, blank=True, help_text="Nothing older is touched.")
    posting_mode = models.CharField(
        max_length=20, choices=PostingMode.choices, default=PostingMode.PER_DOCUMENT
    )
    mapping_set = models.ForeignKey(MappingSet, on_delete=models.PROTECT, null=True, blank=True)
    schedule = models.CharField(max_length=20, choices=Schedule.choices, default=Schedule.MANUAL)
    schedule_minutes = models.PositiveIntegerField(null=True, blank=True)
    schedule_time = models.TimeField(null=True, blank=True, help_text="For daily runs (server time zone).")
    on_webhook = models.BooleanField(default=True, help_text="Run when the source sends a verified webhook.")
    on_payment = models.BooleanField(
        default=True, help_text="Run when the source reports a payment received."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SyncJob(models.Model):
    """One run of work. The source of truth for jobs: the django-q2 broker is only its doorbell."""

    class Kind(models.TextChoices):
        IMPORT = "import", "File import"
        PULL = "pull", "Pull"
        PUSH = "push", "Push"
        BACKFILL = "backfill", "Backfill"
        SYNC = "sync", "Pull and push"
        RECONCILE = "reconcile", "Reconciliation"
        REMIND = "remind", "Payment reminders"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual"
        SCHEDULE = "schedule", "Schedule"
        WEBHOOK = "webhook", "Webhook"
        PAYMENT = "payment", "Payment received"
        API = "api", "API"
        COMMAND = "command", "Command line"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Finished with rejected items"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.MANUAL)
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED, db_index=True)
    profile = models.ForeignKey(
        SyncProfile, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs"
    )
    connection = models.ForeignKey(
        "connectors.Connection", on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs"
    )
    params = models.JSONField(default=dict, blank=True)
    seen = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    progress_done = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="When the doorbell last rang.")
    dry_run = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def progress_percent(self) -> int:
        if not self.progress_total:
            return 100 if self.finished_at else 0
        return min(100, round(100 * self.progress_done / self.progress_total))


class SyncAttempt(models.Model):
    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        RETRYABLE = "retryable", "Failed, will retry"

    job = models.ForeignKey(SyncJob, on_delete=models.CASCADE, related_name="attempt_set")
    number = models.PositiveIntegerField()
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    log = models.JSONField(default=list, blank=True, help_text="Redacted HTTP exchanges and messages.")

    class Meta:
        ordering = ["job", "number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="sync_attempt_unique")]

    def __str__(self) -> str:
        return f"Attempt {self.number} of job {self.job_id}"


class SyncCursor(models.Model):
    """Where the incremental pull of one (connection, object type) stands.

    `since` is the newest change time of the last complete pull; the next pull reads from `since` minus
    the overlap window, inclusive. While a pull is under way, `run_since`, `run_page` and `run_high_water`
    hold its progress, so a pull cut off by a crash resumes at its last committed page.
    """

    connection = models.ForeignKey("connectors.Connection", on_delete=models.CASCADE, related_name="cursors")
    object_type = models.CharField(max_length=20, choices=ObjectType.choices)
    since = models.DateTimeField(null=True, blank=True)
    run_since = models.DateTimeField(null=True, blank=True)
    run_page = models.TextField(blank=True)
    run_high_water = models.DateTimeField(null=True, blank=True)
    run_started = models.BooleanField(default=False)
    pulled_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "object_type"], name="sync_cursor_unique")
        ]

    def __str__(self) -> str:
        return f"{self.connection} {self.object_type} since {self.since}"


class ReferenceData(models.Model):
    """A destination's accounts, tax codes, items and customers, pulled to offer as mapping choices."""

    class Kind(models.TextChoices):
        ACCOUNT = "account", "Account"
        TAX_CODE = "tax_code", "Tax code"
        ITEM = "item", "Item"
        CUSTOMER = "customer", "Customer"

    connection = models.ForeignKey(
        "connectors.Connection", on_delete=models.CASCADE, related_name="reference_data"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    code = models.CharField(max_length=255, help_text="What a mapping stores: the destination's id or code.")
    name = models.CharField(max_length=255, blank=True)
    email = models.CharField(max_length=255, blank=True)
    tax_number = models.CharField(max_length=64, blank=True)
    active = models.BooleanField(default=True)
    extra = models.JSONField(default=dict, blank=True)
    fetched_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "name", "code"]
        verbose_name_plural = "reference data"
        constraints = [
            models.UniqueConstraint(fields=["connection", "kind", "code"], name="reference_data_unique")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})" if self.name and self.name != self.code else self.code


class PushOperation(models.Model):
    """One write to a destination: the outbox row that makes a push exactly-once.

    Its idempotency key is derived from (profile, document, document version, operation), so planning the
    same work twice finds the same row. The row is committed `in_flight` before the request leaves; a
    create that follows an operation that was ever sent looks the document up by `reference` first.
    """

    class Operation(models.TextChoices):
        CREATE = "create", "Create"
        UPDATE = "update", "Update"
        VOID = "void", "Void"
        DELETE = "delete", "Delete"
        ALLOCATE = "allocate", "Apply credit"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_FLIGHT = "in_flight", "In flight"
        SUCCEEDED = "succeeded", "Succeeded"
        RETRY_SCHEDULED = "retry_scheduled", "Retry scheduled"
        FAILED = "failed", "Failed"
        UNCERTAIN = "uncertain", "Uncertain (verified before any retry)"
        BLOCKED = "blocked", "Blocked (mapping or dependency missing)"
        SUPERSEDED = "superseded", "Superseded by a newer version"

    OPEN_STATES = (State.PENDING, State.IN_FLIGHT, State.RETRY_SCHEDULED, State.UNCERTAIN, State.BLOCKED)

    profile = models.ForeignKey(SyncProfile, on_delete=models.CASCADE, related_name="operations")
    connection = models.ForeignKey("connectors.Connection", on_delete=models.PROTECT, related_name="+")
    object_type = models.CharField(max_length=20, choices=ObjectType.choices)
    object_id = models.BigIntegerField()
    document_version = models.PositiveIntegerField()
    operation = models.CharField(max_length=20, choices=Operation.choices)
    idempotency_key = models.CharField(max_length=64, unique=True)
    reference = models.CharField(max_length=100, blank=True, help_text="What a lookup finds it by.")
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Requests sent (counted before sending).")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    external_id = models.CharField(max_length=255, blank=True)
    remote_version = models.CharField(max_length=100, blank=True)
    payload = models.JSONField(null=True, blank=True, help_text="What was (or would be) sent.")
    response = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    job = models.ForeignKey(
        SyncJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="operations"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [
            models.Index(fields=["profile", "object_type", "object_id"], name="push_op_document_idx"),
            models.Index(fields=["profile", "state"], name="push_op_state_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_operation_display()} {self.object_type} {self.object_id} v{self.document_version}"


class SummaryPosting(models.Model):
    """One document a daily-summary profile posts: a day's sales (or credits, or payments into one deposit
    account) in one currency, as one destination document. Its copy there is a `Binding` whose object type
    is the summary's kind; `row_version` moves whenever its members or one of their versions change, so
    a late change is re-posted as an update like any document's."""

    class Kind(models.TextChoices):
        INVOICE = "summary_invoice", "Summary invoice"
        CREDIT_NOTE = "summary_credit_note", "Summary credit note"
        PAYMENT = "summary_payment", "Summary payment"

    profile = models.ForeignKey(SyncProfile, on_delete=models.CASCADE, related_name="summaries")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    day = models.DateField(help_text="Issue date (payments: transaction date) of every member.")
    currency = models.CharField(max_length=3)
    deposit_account = models.CharField(
        max_length=255, blank=True, help_text="Payments: the destination account they were paid into."
    )
    number = models.CharField(max_length=100, help_text="Its number there, and what a lookup finds it by.")
    row_version = models.PositiveIntegerField(default=1, help_text="Bumped whenever its members change.")
    members_hash = models.CharField(max_length=64, blank=True)
    member_count = models.PositiveIntegerField(default=0)
    subtotal = models.DecimalField(**MONEY, default=0)
    tax_total = models.DecimalField(**MONEY, default=0)
    total = models.DecimalField(**MONEY, default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-day", "kind", "currency", "deposit_account"]
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "kind", "day", "currency", "deposit_account"],
                name="summary_posting_unique",
            )
        ]
        indexes = [models.Index(fields=["profile", "kind", "day"], name="summary_posting_day_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.number}"


class SummaryMember(models.Model):
    """A canonical document counted in a summary: in at most one summary per profile, at the version
    that summary was composed from."""

    summary = models.ForeignKey(SummaryPosting, on_delete=models.CASCADE, related_name="members")
    profile = models.ForeignKey(SyncProfile, on_delete=models.CASCADE, related_name="+")
    object_type = models.CharField(max_length=20, choices=ObjectType.choices)
    object_id = models.BigIntegerField()
    document_version = models.PositiveIntegerField()

    class Meta:
        ordering = ["summary", "object_type", "object_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "object_type", "object_id"], name="summary_member_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.object_type} {self.object_id} in {self.summary_id}"
