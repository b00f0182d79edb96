"""The push outbox, read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse

from sync.admin.base import _link, _pretty, document_admin_url
from sync.models import PushOperation


@admin.register(PushOperation)
class PushOperationAdmin(admin.ModelAdmin):
    """The outbox, read-only: operations change state only through the push protocol."""

    list_display = [
        "__str__",
        "state",
        "operation",
        "document",
        "connection",
        "profile",
        "attempts",
        "external_id",
        "reference",
        "job_link",
        "updated_at",
    ]
    list_select_related = ["connection", "profile", "job"]
    list_filter = ["state", "operation", "object_type", "connection", "profile"]
    search_fields = ["=idempotency_key", "reference", "=external_id"]
    fields = [
        "state",
        "operation",
        "document",
        "document_version",
        "connection",
        "profile",
        "job_link",
        "idempotency_key",
        "reference",
        "attempts",
        "next_attempt_at",
        "external_id",
        "remote_version",
        "error",
        "payload_pretty",
        "response_pretty",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields

    @admin.display(description="Document", ordering="object_id")
    def document(self, obj: PushOperation) -> str:
        return _link(document_admin_url(obj.object_type, obj.object_id), f"{obj.object_type} {obj.object_id}")

    @admin.display(description="Job", ordering="job")
    def job_link(self, obj: PushOperation) -> str:
        if obj.job_id is None:
            return "-"
        return _link(reverse("admin:sync_syncjob_change", args=[obj.job_id]), obj.job)

    @admin.display(description="Payload")
    def payload_pretty(self, obj: PushOperation) -> str:
        return _pretty(obj.payload)

    @admin.display(description="Response")
    def response_pretty(self, obj: PushOperation) -> str:
        return _pretty(obj.response)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
