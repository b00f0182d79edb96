"""API clients (one per external system) and the idempotency keys of their writes."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from simple_history.models import HistoricalRecords

RATE_PATTERN = r"^\d+/(s|sec|second|m|min|minute|h|hour|d|day)$"


class Scope(models.TextChoices):
    READ = "read", "Read documents, sync status, bindings, connections, exceptions and overrides"
    WRITE_DOCUMENTS = "write_documents", "Create, update and void invoices, payments and credit notes"
    RUN_SYNCS = "run_syncs", "Run sync profiles, dry runs and connection tests"
    WORK_EXCEPTIONS = "work_exceptions", "Assign, tag, resolve, ignore and note exceptions; propose overrides"
    APPROVE_OVERRIDES = "approve_overrides", "Approve or reject overrides (with the acting user's permission)"


def validate_scopes(value: object) -> None:
    if not isinstance(value, list):
        raise ValidationError(f"scopes must be a list, not {value!r}")
    unknown = [scope for scope in value if scope not in Scope.values]
    if unknown:
        raise ValidationError(f"unknown scopes {unknown!r}; known: {', '.join(Scope.values)}")


class ApiClient(models.Model):
    """One external system (a shop, a CRM, Zapier) calling the API.

    It authenticates as its own service user (tokens are knox tokens of that user, stored hashed) and
    writes documents through its own connection (platform "api"), so everything it sends has an origin
    binding and a later write with the same external id updates rather than duplicates.
    """

    name = models.CharField(max_length=100, unique=True)
    scopes = models.JSONField(default=list, blank=True, validators=[validate_scopes])
    service_user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_client", editable=False
    )
    connection = models.OneToOneField(
        "connectors.Connection", on_delete=models.PROTECT, related_name="api_client", editable=False
    )
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="api_clients",
        help_text="The person this client acts for. Workflow decisions (and the four-eyes rule) are "
        "theirs; without one, the client's service user acts.",
    )
    throttle_rate = models.CharField(
        max_length=20,
        blank=True,
        validators=[
            RegexValidator(RATE_PATTERN, "Enter a rate like 600/minute (per second, minute, hour or day).")
        ],
        help_text="e.g. 600/minute; empty for the default (API_DEFAULT_THROTTLE_RATE).",
    )
    active = models.BooleanField(default=True, help_text="An inactive client's tokens are refused.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        verbose_name = "API client"

    def __str__(self) -> str:
        return self.name

    def has_scope(self, scope: str) -> bool:
        return self.active and scope in (self.scopes or [])

    @property
    def acting_user(self) -> object:
        return self.person if self.person_id else self.service_user


class IdempotencyKey(models.Model):
    """A write's `Idempotency-Key`, reserved before the write runs and holding its answer afterwards.

    Unique per caller (a client's service user, or a staff user) and key: a concurrent retry cannot
    reserve it a second time. The answer is stored in the same transaction as the write it describes.
    """

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)
    state = models.CharField(max_length=20, choices=State.choices, default=State.IN_PROGRESS)
    owner = models.CharField(max_length=32, help_text="Which run holds the reservation.")
    locked_at = models.DateTimeField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(
        blank=True, help_text="The answer as JSON text (kept as text: any string the caller sent survives)."
    )
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique")]

    def __str__(self) -> str:
        return f"{self.key} ({self.get_state_display()})"
