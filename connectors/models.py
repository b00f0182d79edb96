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
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(excluded_fields=["credentials"])

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
