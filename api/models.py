"""API clients (one per external system) and the idempotency keys of their writes."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q
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
        help_text="The person this client acts for, once they confirm it from their own session (a "
        "superuser's link needs no confirmation). Until then the client acts as its service user.",
    )
    # The link counts only while confirmed_person equals person: the database refuses a confirmation that
    # names anyone else, so changing the person on any path drops the confirmation or fails loudly.
    confirmed_person = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        help_text="The linked person, once the link is confirmed.",
    )
    person_confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        help_text="Who confirmed the link: the person themselves or a superuser.",
    )
    person_confirmed_at = models.DateTimeField(null=True, blank=True, editable=False)
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
    configured_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        help_text="Who last changed its settings or issued it a token.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        verbose_name = "API client"
        constraints = [
            models.CheckConstraint(
                condition=Q(confirmed_person__isnull=True)
                | Q(person__isnull=True)  # for a moment while a deleted user's links are cleared
                | Q(confirmed_person=F("person")),
                name="api_client_confirmation_is_for_the_person",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def has_scope(self, scope: str) -> bool:
        return self.active and scope in (self.scopes or [])

    @property
    def person_confirmed(self) -> bool:
        return self.person_id is not None and self.confirmed_person_id == self.person_id

    @property
    def acting_user(self) -> Any:
        """Whose decisions its workflow moves are: the linked person once confirmed, else its service user."""
        return self.person if self.person_confirmed else self.service_user

    def people_ids(self) -> frozenset[int]:
        """Every user the four-eyes rule counts as this client: the person it acts for, its service user,
        and whoever created or last configured it (they hold its tokens or chose what it may do)."""
        ids = {
            self.confirmed_person_id if self.person_confirmed else None,
            self.service_user_id,
            self.created_by_id,
            self.configured_by_id,
        }
        return frozenset(pk for pk in ids if pk is not None)


class OverrideClientStep(models.Model):
    """A step of an override taken through an API client, and the people behind it at that moment.

    The four-eyes rule reads the people of the "proposed" step: nobody among them may decide the override,
    through any client or in the admin.
    """

    class Step(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    override = models.ForeignKey(
        "reconciliation.Override", on_delete=models.CASCADE, related_name="client_steps"
    )
    step = models.CharField(max_length=20, choices=Step.choices)
    client = models.ForeignKey(
        ApiClient, on_delete=models.SET_NULL, null=True, blank=True, related_name="override_steps"
    )
    client_name = models.CharField(max_length=100, help_text="The client's name then (it may be renamed).")
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    people = models.JSONField(
        default=list, help_text="Ids of every user counted as the one who took the step (four eyes)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "override step through an API client"
        constraints = [
            models.UniqueConstraint(fields=["override", "step"], name="override_client_step_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.get_step_display()} through {self.client_name}"


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
