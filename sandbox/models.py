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
