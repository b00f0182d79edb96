"""Jobs with their progress, attempts and HTTP exchanges, the actions on them, and the pull cursors."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from rangefilter.filters import DateRangeFilterBuilder

from connectors.models import HttpExchange
from sync import jobs as sync_jobs
from sync.admin.base import Outcomes, ReadOnlyInline, _link, document_admin_url
from sync.models import SyncAttempt, SyncCursor, SyncJob


class SyncAttemptInline(ReadOnlyInline):
    model = SyncAttempt
    fields = ["number", "outcome", "started_at", "finished_at", "error", "log"]
    readonly_fields = fields


@admin.register(SyncJob)
class SyncJobAdmin(admin.ModelAdmin):
    actions = ["run_again", "cancel", "retry_failed"]
    list_display = [
        "__str__",
        "kind",
        "state",
        "progress",
        "trigger",
        "profile",
        "connection",
        "seen",
        "created",
        "updated",
        "skipped",
        "failed",
        "attempts",
        "created_at",
        "started_at",
        "finished_at",
    ]
    list_select_related = ["connection", "profile"]
    list_filter = [
        "state",
        "kind",
        "trigger",
        "dry_run",
        "profile",
        "connection",
        ("created_at", DateRangeFilterBuilder()),
    ]
    search_fields = ["=id", "params"]
    inlines = [SyncAttemptInline]
    readonly_fields = [*(f.name for f in SyncJob._meta.fields), "push_operations"]

    RECENT_OPERATIONS = 50

    @admin.display(description="Progress")
    def progress(self, obj: SyncJob) -> str:
        percent = obj.progress_percent
        return format_html(
            '<progress max="100" value="{}" title="{} of {}">{}%</progress> {}%',
            percent,
            obj.progress_done,
            obj.progress_total,
            percent,
            percent,
        )

    @admin.display(description="Push operations (newest first)")
    def push_operations(self, obj: SyncJob) -> str:
        if not obj.pk:
            return "-"
        operations = list(
            obj.operations.select_related("connection").order_by("-updated_at", "-id")[
                : self.RECENT_OPERATIONS
            ]
        )
        if not operations:
            return "none"
        all_url = reverse("admin:sync_pushoperation_changelist") + f"?job__id__exact={obj.pk}"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            (
                (
                    _link(
                        reverse("admin:sync_pushoperation_change", args=[op.pk]), op.get_operation_display()
                    ),
                    _link(
                        document_admin_url(op.object_type, op.object_id), f"{op.object_type} {op.object_id}"
                    ),
                    op.connection.name,
                    op.get_state_display(),
                    op.attempts,
                    op.external_id or "-",
                    op.error[:200] or "",
                )
                for op in operations
            ),
        )
        return format_html(
            "<table><thead><tr><th>Operation</th><th>Document</th><th>Destination</th><th>State</th>"
            "<th>Attempts</th><th>Destination id</th><th>Error</th></tr></thead><tbody>{}</tbody></table>"
            '<p><a href="{}">All push operations of this job</a></p>',
            rows,
            all_url,
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Run again now", permissions=["change"])
    def run_again(self, request: HttpRequest, queryset: QuerySet[SyncJob]) -> None:
        outcomes = Outcomes("Queued again")
        outcomes.run(
            queryset,
            lambda job: sync_jobs.job_rerun(job, user=request.user),
            lambda job, new: f"#{job.pk} as #{new.pk}" if new is not None else None,
        )
        outcomes.report(self, request, skipped_reason="not queued again")

    @admin.action(description="Cancel", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[SyncJob]) -> None:
        outcomes = Outcomes("Cancelled")
        outcomes.run(
            queryset,
            lambda job: sync_jobs.job_cancel(job, user=request.user),
            lambda job, cancelled: f"#{job.pk}" if cancelled else None,
        )
        outcomes.report(self, request, skipped_reason="not cancelled (already finished)")

    @admin.action(description="Retry failed items", permissions=["change"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[SyncJob]) -> None:
        outcomes = Outcomes("Retrying")
        outcomes.run(
            queryset,
            lambda job: sync_jobs.operations_retry(job, user=request.user),
            lambda job, new: f"failed items of #{job.pk} as #{new.pk}" if new is not None else None,
        )
        outcomes.report(self, request, skipped_reason="with nothing to retry")


class HttpExchangeInline(admin.TabularInline):
    """The attempt's requests and answers, secrets already redacted when they were stored."""

    model = HttpExchange
    fields = [
        "created_at",
        "method",
        "url",
        "status",
        "retry",
        "duration_ms",
        "error",
        "request_body",
        "response_body",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(SyncAttempt)
class SyncAttemptAdmin(admin.ModelAdmin):
    list_display = ["__str__", "job", "outcome", "started_at", "finished_at"]
    list_select_related = ["job"]
    list_filter = ["outcome"]
    search_fields = ["=job__id", "error"]
    readonly_fields = [f.name for f in SyncAttempt._meta.fields]
    inlines = [HttpExchangeInline]

    def has_add_permission(self, request: Any) -> bool:
        return False


@admin.register(SyncCursor)
class SyncCursorAdmin(admin.ModelAdmin):
    list_display = [
        "connection",
        "object_type",
        "since",
        "pulled_at",
        "run_started",
        "run_page",
        "updated_at",
    ]
    list_select_related = ["connection"]
    list_filter = ["connection", "object_type", "run_started"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
