"""Sync profiles, with "Run now", "Reconcile now" and the dry run."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from config.history import HistoryAdmin
from sync import jobs as sync_jobs
from sync import preview
from sync.admin.base import Outcomes, _json, document_admin_url
from sync.models import SyncProfile


@admin.register(SyncProfile)
class SyncProfileAdmin(HistoryAdmin):
    change_form_template = "admin/sync/syncprofile/change_form.html"
    actions = ["run_now", "reconcile_now", "dry_run"]
    list_display = ["name", "source", "destination", "schedule", "posting_mode", "cutover_date", "enabled"]
    list_select_related = ["source", "destination"]
    list_filter = ["enabled", "schedule", "posting_mode", "source", "destination"]
    search_fields = ["name"]

    def has_run_permission(self, request: HttpRequest) -> bool:
        """Starting a job is the job table's change permission (integration admins)."""
        return request.user.has_perm("sync.change_syncjob")

    @admin.action(description="Run now", permissions=["run"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[SyncProfile]) -> None:
        outcomes = Outcomes("Queued")
        outcomes.run(
            queryset,
            lambda profile: sync_jobs.profile_run(profile, user=request.user),
            lambda profile, job: f"{profile.name} as job #{job.pk}" if job is not None else None,
        )
        outcomes.report(self, request, skipped_reason="not queued (already queued or running)")

    @admin.action(description="Reconcile now: compare source and destination", permissions=["run"])
    def reconcile_now(self, request: HttpRequest, queryset: QuerySet[SyncProfile]) -> None:
        from reconciliation.services import reconcile_enqueue  # the screen offers it; sync does not need it

        outcomes = Outcomes("Queued")
        outcomes.run(
            queryset,
            lambda profile: reconcile_enqueue(profile, user=request.user),
            lambda profile, job: f"reconciliation of {profile.name} as job #{job.pk}",
        )
        outcomes.report(self, request)

    @admin.action(description="Dry run: show what would be sent", permissions=["view"])
    def dry_run(self, request: HttpRequest, queryset: QuerySet[SyncProfile]) -> HttpResponse | None:
        return self._dry_run_response(request, list(queryset.select_related("source", "destination")))

    def get_urls(self) -> list[Any]:
        dry_run = path(
            "<path:object_id>/dry-run/",
            self.admin_site.admin_view(self.dry_run_view),
            name="sync_syncprofile_dry_run",
        )
        return [dry_run, *super().get_urls()]

    def dry_run_view(self, request: HttpRequest, object_id: str) -> HttpResponse | None:
        profile = get_object_or_404(SyncProfile.objects.select_related("source", "destination"), pk=object_id)
        if not self.has_view_permission(request, profile):
            raise PermissionDenied
        return self._dry_run_response(request, [profile])

    def _dry_run_response(self, request: HttpRequest, profiles: list[SyncProfile]) -> HttpResponse | None:
        sections = []
        for profile in profiles:
            section: dict[str, Any] = {"profile": profile, "items": [], "error": ""}
            try:
                items = list(preview.profile_preview(profile, limit=50))
            except Exception as exc:  # show the others' previews, and why this one has none
                section["error"] = f"{type(exc).__name__}: {exc}"
                items = []
            section["items"] = [
                {
                    "item": item,
                    "url": document_admin_url(item.object_type, item.object_id),
                    "payload": _json(item.payload),
                }
                for item in items
            ]
            sections.append(section)
        context = {
            **self.admin_site.each_context(request),
            "title": "Dry run",
            "opts": self.model._meta,
            "sections": sections,
        }
        return TemplateResponse(request, "admin/sync/dry_run.html", context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context["dry_run_url"] = reverse("admin:sync_syncprofile_dry_run", args=[obj.pk])
            context["jobs_url"] = reverse("admin:sync_syncjob_changelist") + f"?profile__id__exact={obj.pk}"
        return super().render_change_form(request, context, add, change, form_url, obj)
