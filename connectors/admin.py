from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from connectors.models import Connection
from connectors.registry import platform_choices


class ConnectionForm(forms.ModelForm):
    platform = forms.ChoiceField(choices=platform_choices)
    base_url = forms.URLField(
        required=False, assume_scheme="https", help_text="API root; empty for the platform's production URL."
    )
    new_credentials = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off"}),
        help_text="Write-only: a JSON object replaces the stored credentials. Leave empty to keep them.",
    )

    class Meta:
        model = Connection
        fields = ["name", "platform", "role", "base_url", "options"]

    def clean_new_credentials(self) -> Any:
        value = self.cleaned_data.get("new_credentials")
        if value not in (None, "") and not isinstance(value, dict):
            raise forms.ValidationError('credentials must be a JSON object, e.g. {"api_key": "..."}')
        return value

    def save(self, commit: bool = True) -> Connection:
        if self.cleaned_data.get("new_credentials"):
            self.instance.credentials = self.cleaned_data["new_credentials"]
        return super().save(commit)


@admin.register(Connection)
class ConnectionAdmin(SimpleHistoryAdmin):
    form = ConnectionForm
    list_display = ["name", "platform", "role", "health", "last_checked_at", "updated_at"]
    list_filter = ["platform", "role", "health"]
    search_fields = ["name", "base_url"]
    readonly_fields = [
        "health",
        "last_error",
        "last_checked_at",
        "stored_credentials",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["name", "platform", "role", "base_url", "options"]}),
        ("Credentials", {"fields": ["stored_credentials", "new_credentials"]}),
        ("Health", {"fields": ["health", "last_error", "last_checked_at", "created_at", "updated_at"]}),
    ]

    @admin.display(description="Stored credentials")
    def stored_credentials(self, obj: Connection) -> str:
        if not obj.pk or not obj.credentials:
            return "none"
        return json.dumps({key: "••••" for key in sorted(obj.credentials)})
