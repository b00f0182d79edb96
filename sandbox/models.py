"""State of the built-in platform emulators: their records, tokens, idempotency keys and injected faults."""

from __future__ import annotations

from django.db import models


class SandboxRecord(models.Model):
    platform = models.CharField(max_length=40)
    account = models.CharField(max_length=100)
    kind = models.CharField(max_length=40)
    record_id = models.CharField(max_length=100)
    data = models.JSONField(default=dict)
    version = models.PositiveIntegerField(default=0)
    deleted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["updated_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "account", "kind", "record_id"], name="sandbox_record_unique"
            )
        ]
        indexes = [models.Index(fields=["platform", "account", "kind", "updated_at"])]

    def __str__(self) -> str:
        return f"{self.platform}/{self.account}/{self.kind}/{self.record_id}"


class SandboxCounter(models.Model):
    platform = models.CharField(max_length=40)
    account = models.CharField(max_length=100)
    name = models.CharField(max_length=40)
    value = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["platform", "account", "name"], name="sandbox_counter_unique")
        ]

    def __str__(self) -> str:
        return f"{self.platform}/{self.account}/{self.name} = {self.value}"


class SandboxIdempotencyKey(models.Model):
    platform = models.CharField(max_length=40)
    account = models.CharField(max_length=100)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField()
    body = models.BinaryField()
    content_type = models.CharField(max_length=100, default="application/json")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["platform", "account", "key"], name="sandbox_idempotency_unique")
        ]

    def __str__(self) -> str:
        return f"{self.platform}/{self.account} key {self.key}"


class SandboxToken(models.Model):
    """OAuth codes and tokens the sandbox issued; a refresh token is single-use (rotation)."""

    class Kind(models.TextChoices):
        CODE = "code", "Authorisation code"
        ACCESS = "access", "Access token"
        REFRESH = "refresh", "Refresh token"

    platform = models.CharField(max_length=40)
    account = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    value = models.CharField(max_length=100, unique=True)
    client_id = models.CharField(max_length=200)
    redirect_uri = models.TextField(blank=True)
    expires_at = models.DateTimeField()
    used = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.platform} {self.kind} for {self.account}"


class SandboxFault(models.Model):
    """A fault the sandbox injects into matching requests, for demos and crash tests."""

    class Kind(models.TextChoices):
        LATENCY = "latency", "Answer late"
        SERVER_ERROR = "server_error", "Answer 5xx without doing the work"
        LOST_RESPONSE = "lost_response", "Do the work, then answer too late (timeout after the write)"

    platform = models.CharField(max_length=40)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    method = models.CharField(max_length=10, blank=True, help_text="Empty: any method.")
    path_pattern = models.CharField(
        max_length=200, blank=True, help_text="Regular expression; empty: any path."
    )
    delay_ms = models.PositiveIntegerField(default=0)
    probability = models.FloatField(default=1.0, help_text="Chance (0-1) that a matching request is hit.")
    remaining = models.IntegerField(null=True, blank=True, help_text="Hits left; empty: unlimited.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.platform} {self.method} {self.path_pattern}"


class SandboxHit(models.Model):
    """Every request the sandbox answered (or refused), so tests can check what reached the platform."""

    platform = models.CharField(max_length=40)
    account = models.CharField(max_length=100, blank=True)
    method = models.CharField(max_length=10)
    path = models.TextField()
    status = models.PositiveSmallIntegerField()
    at = models.FloatField(help_text="Unix time the request arrived, to the microsecond.")

    class Meta:
        indexes = [models.Index(fields=["platform", "at"])]

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


class SandboxWebhook(models.Model):
    """A webhook subscription on one sandbox account: where its changes are sent, signed with `secret`.

    Stripe's are webhook endpoints made through its API; QuickBooks' and Xero's are set in their developer
    portals, here the sandbox's developer route or the admin."""

    class Status(models.TextChoices):
        ENABLED = "enabled", "Enabled"
        INTENT_REQUIRED = "intent_required", "Intent to receive required (Xero)"
        DISABLED = "disabled", "Disabled"

    class Format(models.TextChoices):
        NATIVE = "", "The platform's only format"
        LEGACY = "legacy", "QuickBooks eventNotifications"
        CLOUDEVENTS = "cloudevents", "QuickBooks CloudEvents"

    public_id = models.CharField(max_length=60, unique=True)
    platform = models.CharField(max_length=40)
    account = models.CharField(max_length=100)
    url = models.URLField(max_length=2000)
    secret = models.CharField(
        max_length=200, help_text="Signing secret: whsec_..., verifier token, webhook key."
    )
    events = models.JSONField(
        default=list,
        blank=True,
        help_text='Stripe event types or "*"; QuickBooks entities; Xero categories. Empty: all of them.',
    )
    payload_format = models.CharField(max_length=20, choices=Format.choices, default="", blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ENABLED)
    status_reason = models.CharField(max_length=500, blank=True)
    description = models.CharField(max_length=500, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    client_id = models.CharField(
        max_length=200, blank=True, help_text="The app that set it (developer route)."
    )
    sequence = models.PositiveBigIntegerField(default=0, help_text="Last Xero event sequence number sent.")
    confirmed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["platform", "account", "status"])]

    def __str__(self) -> str:
        return f"{self.platform}/{self.account} -> {self.url}"


class SandboxWebhookDelivery(models.Model):
    """One request the sandbox sends (and resends on failure) to a subscription: its body is fixed when the
    change commits; the signature is made at each attempt (Stripe's carries the time it was sent)."""

    class Kind(models.TextChoices):
        EVENTS = "events", "Events"
        INTENT = "intent", "Intent to receive (Xero)"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (retries used up)"

    webhook = models.ForeignKey(SandboxWebhook, on_delete=models.CASCADE, related_name="deliveries")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.EVENTS)
    event_ids = models.JSONField(default=list, blank=True)
    body = models.TextField(blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    log = models.JSONField(
        default=list, blank=True, help_text="Every attempt: when, status, error, next try."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.webhook_id}: {self.state}"
