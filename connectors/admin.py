from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from config.history import HistoryAdmin
from connectors.models import Connection, HttpExchange, WebhookDelivery
from connectors.registry import connector_class, platform_choices
from connectors.services import connection_check


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
class ConnectionAdmin(HistoryAdmin):
    form = ConnectionForm
    change_form_template = "admin/connectors/connection/change_form.html"
    actions = ["test_connection"]
    list_display = ["name", "platform", "role", "health", "last_checked_at", "updated_at"]
    list_filter = ["platform", "role", "health"]
    search_fields = ["name", "base_url"]
    readonly_fields = [
        "health",
        "last_error",
        "last_checked_at",
        "last_webhook_at",
        "stored_credentials",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["name", "platform", "role", "base_url", "options"]}),
        ("Credentials", {"fields": ["stored_credentials", "new_credentials"]}),
        (
            "Health",
            {
                "fields": [
                    "health",
                    "last_error",
                    "last_checked_at",
                    "last_webhook_at",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
    ]

    @admin.display(description="Stored credentials")
    def stored_credentials(self, obj: Connection) -> str:
        if not obj.pk or not obj.credentials:
            return "none"
        return json.dumps({key: "••••" for key in sorted(obj.credentials)})

    @admin.action(description="Test connection", permissions=["change"])
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        results: dict[str, list[str]] = {}
        for connection in queryset:
            health = connection_check(connection=connection)
            results.setdefault(Connection.Health(health).label, []).append(connection.name)
        for label, names in sorted(results.items()):
            level = messages.SUCCESS if label == Connection.Health.HEALTHY.label else messages.WARNING
            self.message_user(request, f"{len(names)} {label.lower()}: {', '.join(names)}", level)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            try:
                uses_oauth = connector_class(obj.platform).uses_oauth
            except KeyError:
                uses_oauth = False
            context["oauth_connect_url"] = (
                reverse("connectors:oauth_start", args=[obj.pk]) if uses_oauth else ""
            )
            context["recent_exchanges_url"] = (
                reverse("admin:connectors_httpexchange_changelist") + f"?connection__id__exact={obj.pk}"
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def response_change(self, request, obj):
        if "_test_connection" in request.POST:
            health = connection_check(connection=obj)
            level = messages.SUCCESS if health == Connection.Health.HEALTHY else messages.WARNING
            detail = f": {obj.last_error}" if obj.last_error else ""
            self.message_user(request, f"{obj.name}: {Connection.Health(health).label}{detail}", level)
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)


@admin.register(HttpExchange)
class HttpExchangeAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "connection",
        "method",
        "short_url",
        "status_badge",
        "retry",
        "duration_ms",
        "attempt",
    ]
    list_filter = ["connection", "method", "status"]
    list_select_related = ["connection", "attempt"]
    search_fields = ["url"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "connection",
        "attempt",
        "method",
        "url",
        "request_headers",
        "request_body",
        "status",
        "response_headers",
        "response_body",
        "error",
        "retry",
        "duration_ms",
        "created_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: HttpExchange | None = None) -> bool:
        return False

    @admin.display(description="URL")
    def short_url(self, obj: HttpExchange) -> str:
        return obj.url if len(obj.url) < 90 else obj.url[:87] + "..."

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: HttpExchange) -> str:
        if obj.status is None:
            return format_html('<span style="color:#b00">{}</span>', obj.error[:60] or "no answer")
        colour = "#2c7a3f" if obj.status < 400 else "#b00"
        return format_html('<span style="color:{}">{}</span>', colour, obj.status)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """What the platforms sent, read-only: processed, duplicate, rejected, routed to the connection of its
    account or ignored, with the jobs it started."""

    list_display = [
        "received_at",
        "connection",
        "outcome",
        "object_type",
        "external_id",
        "action",
        "jobs",
        "status",
        "remote_addr",
    ]
    list_filter = ["outcome", "connection", "object_type", "status"]
    list_select_related = ["connection"]
    search_fields = ["event_id", "external_id", "reason"]
    date_hierarchy = "received_at"
    fields = [
        "connection",
        "received_at",
        "outcome",
        "reason",
        "status",
        "event_id",
        "object_type",
        "external_id",
        "action",
        "account",
        "occurred_at",
        "jobs",
        "remote_addr",
        "same_request",
        "request_body",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookDelivery]:
        # bodies reach 1 MiB: the list never loads them, the detail page reads its request's once
        return super().get_queryset(request).defer("body")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: WebhookDelivery | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: WebhookDelivery | None = None) -> bool:
        return False  # the retention schedule deletes them; people only read

    @admin.display(description="Jobs")
    def jobs(self, obj: WebhookDelivery) -> str:
        if not obj.job_ids:
            return "-"
        return format_html_join(
            ", ",
            '<a href="{}">#{}</a>',
            ((reverse("admin:sync_syncjob_change", args=[pk]), pk) for pk in obj.job_ids),
        )

    @admin.display(description="Events of the same request")
    def same_request(self, obj: WebhookDelivery) -> str:
        url = reverse("admin:connectors_webhookdelivery_changelist") + f"?request_id={obj.request_id}"
        return format_html('<a href="{}">{}</a>', url, obj.request_id)

    @admin.display(description="Body")
    def request_body(self, obj: WebhookDelivery) -> str:
        if obj.outcome == WebhookDelivery.Outcome.REJECTED:
            return "not kept for refused requests"
        body = (
            WebhookDelivery.objects.filter(request_id=obj.request_id)
            .exclude(body="")
            .values_list("body", flat=True)
            .first()
        )
        if not body:
            return "-"
        shown = body if len(body) <= 20_000 else body[:20_000] + "\n... (truncated)"
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', shown)
