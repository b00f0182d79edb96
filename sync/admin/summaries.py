"""Daily summary postings, read-only, with their members."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from rangefilter.filters import DateRangeFilterBuilder

from sync.admin.base import _link, document_admin_url
from sync.models import Binding, SummaryMember, SummaryPosting


class SummaryMemberInline(admin.TabularInline):
    model = SummaryMember
    fields = ["document", "document_version"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="Document")
    def document(self, obj: SummaryMember) -> str:
        return _link(document_admin_url(obj.object_type, obj.object_id), f"{obj.object_type} {obj.object_id}")

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(SummaryPosting)
class SummaryPostingAdmin(admin.ModelAdmin):
    """Daily summaries are written by the push alone: read-only here, with their members."""

    list_display = [
        "number",
        "kind",
        "day",
        "currency",
        "member_count",
        "total",
        "row_version",
        "posted_version",
        "destination_id",
        "profile",
    ]
    list_select_related = ["profile"]
    list_filter = ["kind", "currency", "profile", ("day", DateRangeFilterBuilder())]
    search_fields = ["number"]
    date_hierarchy = "day"
    readonly_fields = [f.name for f in SummaryPosting._meta.fields]
    inlines = [SummaryMemberInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SummaryPosting]:
        from django.db.models import OuterRef, Subquery

        bound = Binding.objects.filter(
            connection_id=OuterRef("profile__destination_id"),
            object_type=OuterRef("kind"),
            object_id=OuterRef("pk"),
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                bound_external_id=Subquery(bound.values("external_id")[:1]),
                bound_version=Subquery(bound.values("document_version")[:1]),
            )
        )

    @admin.display(description="Posted version", ordering="bound_version")
    def posted_version(self, obj: Any) -> Any:
        return obj.bound_version if obj.bound_version is not None else "-"

    @admin.display(description="Destination id", ordering="bound_external_id")
    def destination_id(self, obj: Any) -> str:
        return obj.bound_external_id or "-"

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
