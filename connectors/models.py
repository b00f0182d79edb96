from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from simple_history.models import HistoricalRecords

from connectors.fields import EncryptedJSONField
from connectors.registry import PLATFORMS, UnknownPlatformError, connector_class


def validate_platform(value: str) -> None:
    if value not in PLATFORMS:
        known = ", ".join(sorted(PLATFORMS))
        raise ValidationError(f"{value!r} is not a registered platform (known: {known})")


class Connection(models.Model):
    """One account on one platform: a source of documents, a destination, or both."""

    class Role(models.TextChoices):
        SOURCE = "source", "Source"
        DESTINATION = "destination", "Destination"
        BOTH = "both", "Source and destination"

    class Health(models.TextChoices):
        HEALTHY = "healthy", "Healthy"
        NEEDS_REAUTH = "needs_reauth", "Needs re-authorisation"
        DEGRADED = "degraded", "Degraded"
        DISABLED = "disabled", "Disabled"
        UNKNOWN = "unknown", "Not checked yet"

    name = models.CharField(max_length=100, unique=True)
    platform = models.CharField(max_length=40, validators=[validate_platform], db_index=True)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.SOURCE)
    base_url = models.URLField(blank=True, help_text="API root; empty for the platform's production URL.")
    credentials = EncryptedJSONField(blank=True, default=dict, help_text="Encrypted at rest.")
    options = models.JSONField(
        blank=True,
        default=dict,
        help_text='Platform options, e.g. for CSV {"date_order": "DMY", "decimal_mark": ",", '
        '"currency": "EUR"}.',
    )
    health = models.CharField(max_length=20, choices=Health.choices, default=Health.UNKNOWN, db_index=True)
    last_error = models.TextField(blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_webhook_at = models.DateTimeField(
        null=True, blank=True, help_text="When the platform last sent a webhook that passed verification."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # last_webhook_at is a stamp, not a change anyone made: keeping it out of history spares a row per webhook
    history = HistoricalRecords(excluded_fields=["credentials", "last_webhook_at"])

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.platform})"

    @property
    def platform_label(self) -> str:
        try:
            return connector_class(self.platform).label
        except UnknownPlatformError:
            return self.platform

    def connector(self) -> Any:
        return connector_class(self.platform)(self)


class HttpExchange(models.Model):
    """One request and its answer (or failure), secrets redacted, against the sync attempt that made it."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="exchanges")
    attempt = models.ForeignKey(
        "sync.SyncAttempt", null=True, blank=True, on_delete=models.CASCADE, related_name="exchanges"
    )
    method = models.CharField(max_length=10)
    url = models.TextField()
    request_headers = models.JSONField(default=dict, blank=True)
    request_body = models.TextField(blank=True)
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True)
    retry = models.PositiveSmallIntegerField(default=0, help_text="0 for the first try of a request.")
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "HTTP exchange"

    def __str__(self) -> str:
        return f"{self.method} {self.url} -> {self.status or self.error[:40]}"


class RateLimitState(models.Model):
    """Shared rate-limiter state for one key when no Redis is configured (see connectors.ratelimit)."""

    key = models.CharField(max_length=200, unique=True)
    state = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.key


class Lease(models.Model):
    """A named lock with an expiry, for work that must not run twice at once (see connectors.locks)."""

    key = models.CharField(max_length=200, unique=True)
    holder = models.CharField(max_length=64)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.key} held by {self.holder} until {self.expires_at:%H:%M:%S}"


class WebhookDelivery(models.Model):
    """One event a platform sent to /webhooks/<connection id>/, or one request refused before its events
    could be read.

    An event is processed once per connection: the partial unique index on (connection, event id) is what
    makes a replay a duplicate, even when two copies arrive at the same moment. Refused requests keep no
    body and no event id; the body of a verified request is kept once, on the first row of its request.
    """

    class Outcome(models.TextChoices):
        PROCESSED = "processed", "Processed"
        DUPLICATE = "duplicate", "Duplicate (seen before)"
        REJECTED = "rejected", "Rejected"
        ROUTED = "routed", "Passed to the connection of its account"
        IGNORED = "ignored", "Ignored (names another account)"

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="webhook_deliveries")
    request_id = models.UUIDField(db_index=True, help_text="The same for every event of one request.")
    event_id = models.CharField(max_length=255, blank=True)
    object_type = models.CharField(max_length=60, blank=True)
    external_id = models.CharField(max_length=255, blank=True)
    action = models.CharField(max_length=40, blank=True)
    account = models.CharField(max_length=255, blank=True, help_text="Realm, tenant or account named.")
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(db_index=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    reason = models.TextField(blank=True)
    status = models.PositiveSmallIntegerField(help_text="The HTTP status answered.")
    job_ids = models.JSONField(default=list, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    body = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "event_id"],
                condition=models.Q(outcome="processed") & ~models.Q(event_id=""),
                name="webhook_event_processed_once",
            )
        ]
        indexes = [models.Index(fields=["connection", "-received_at"], name="webhook_by_connection")]

    def __str__(self) -> str:
        what = f"{self.object_type} {self.external_id}".strip() or "request"
        return f"{what} from {self.connection_id}: {self.outcome}"
