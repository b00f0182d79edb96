"""Mapping sets and their rows, whose target values are offered from the destination's reference data."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from config.history import HistoryAdmin
from sync import reference
from sync.admin.base import Outcomes
from sync.models import MappingRow, MappingSet, ReferenceData
from sync.selectors import reference_data_by_kind

# Which of the destination's reference data a mapping row of each kind points at.
REFERENCE_KIND = {
    MappingRow.Kind.REVENUE_ACCOUNT.value: ReferenceData.Kind.ACCOUNT.value,
    MappingRow.Kind.TAX_CODE.value: ReferenceData.Kind.TAX_CODE.value,
    MappingRow.Kind.ITEM.value: ReferenceData.Kind.ITEM.value,
    MappingRow.Kind.CUSTOMER.value: ReferenceData.Kind.CUSTOMER.value,
    MappingRow.Kind.PAYMENT_METHOD.value: ReferenceData.Kind.ACCOUNT.value,
}


def _reference_label(ref: ReferenceData) -> str:
    return f"{ref.name} ({ref.code})" if ref.name else ref.code


class ReferenceSuggestInput(forms.TextInput):
    """Free text with the destination's values suggested: for a new row, whose kind is not chosen yet."""

    def __init__(self, suggestions: list[tuple[str, str]], attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.suggestions = suggestions

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> str:
        attrs = dict(attrs or {})
        list_id = f"{attrs.get('id') or name}_choices"
        attrs["list"] = list_id
        options = format_html_join(
            "", '<option value="{}">{}</option>', ((code, label) for code, label in self.suggestions)
        )
        return format_html(
            '{}<datalist id="{}">{}</datalist>',
            super().render(name, value, attrs, renderer),
            list_id,
            options,
        )


class MappingRowForm(forms.ModelForm):
    """`target_value` offers the destination's reference data, and must be one of them when there is any.

    Rows of a kind whose reference data has not been fetched keep a free text input. An unchanged row is
    not re-checked, so a value that disappeared from the destination does not block editing other rows;
    its option is marked instead.
    """

    class Meta:
        model = MappingRow
        fields = ["kind", "source_value", "target_value", "target_label"]

    def __init__(
        self,
        *args: Any,
        reference: dict[str, dict[str, ReferenceData]] | None = None,
        mapping_set: MappingSet | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if mapping_set is None and self.instance.mapping_set_id:
            mapping_set = self.instance.mapping_set
        self.mapping_set = mapping_set
        if reference is None:
            reference = reference_data_by_kind(
                connection_id=mapping_set.destination_id if mapping_set else None
            )
        self.reference = reference
        self._offer_choices()

    def _row_kind(self) -> str:
        if self.is_bound:
            return self.data.get(self.add_prefix("kind"), "")
        return self.initial.get("kind") or self.instance.kind or ""

    def _offer_choices(self) -> None:
        field = self.fields["target_value"]
        ref_kind = REFERENCE_KIND.get(self._row_kind())
        known = self.reference.get(ref_kind, {}) if ref_kind else {}
        if known:
            choices = [("", "---------")]
            choices += [(code, _reference_label(ref)) for code, ref in known.items() if ref.active]
            current = self.initial.get("target_value") or ""
            if current and (current not in known or not known[current].active):
                note = "inactive" if current in known else "not in the destination's reference data"
                choices.append((current, f"{current} ({note})"))
            field.widget = forms.Select(choices=choices)
        elif not ref_kind and self.reference:
            suggestions = [
                (code, f"{ReferenceData.Kind(kind).label}: {_reference_label(ref)}")
                for kind, refs in self.reference.items()
                for code, ref in refs.items()
                if ref.active
            ]
            field.widget = ReferenceSuggestInput(suggestions, attrs={"size": 30})

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind, value = cleaned.get("kind"), cleaned.get("target_value")
        mapping_set = cleaned.get("mapping_set") or self.mapping_set
        reference = self.reference
        if mapping_set is not self.mapping_set:  # the stand-alone row form, moved to another set
            reference = reference_data_by_kind(
                connection_id=mapping_set.destination_id if mapping_set else None
            )
        ref_kind = REFERENCE_KIND.get(kind or "")
        known = reference.get(ref_kind, {}) if ref_kind else {}
        if not known or not value:
            return cleaned
        if self.instance.pk and not {"kind", "target_value", "mapping_set"} & set(self.changed_data):
            return cleaned
        ref = known.get(value)
        destination = (
            mapping_set.destination if mapping_set and mapping_set.destination_id else "the destination"
        )
        kind_label = ReferenceData.Kind(ref_kind).label.lower()
        if ref is None:
            self.add_error(
                "target_value",
                f"Target value {value!r} is not a known {kind_label} of {destination} "
                f"({len(known)} fetched). Pick one from the list, or refresh the reference data.",
            )
        elif not ref.active:
            self.add_error(
                "target_value", f"Target value {value!r}: the {kind_label} is inactive in {destination}."
            )
        elif not cleaned.get("target_label"):
            cleaned["target_label"] = ref.name
        return cleaned


class MappingRowFormSet(forms.BaseInlineFormSet):
    """Loads the destination's reference data once for every row (a fixed number of queries)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reference = reference_data_by_kind(connection_id=self.instance.destination_id)

    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        return {**super().get_form_kwargs(index), "reference": self.reference, "mapping_set": self.instance}


class MappingRowInline(admin.TabularInline):
    model = MappingRow
    form = MappingRowForm
    formset = MappingRowFormSet
    extra = 1
    fields = ["kind", "source_value", "target_value", "target_label"]


def _refresh_summary(counts: dict[str, Any]) -> str:
    labels = dict(ReferenceData.Kind.choices)
    return (
        ", ".join(f"{labels.get(kind, kind)}: {count}" for kind, count in sorted(counts.items())) or "nothing"
    )


@admin.register(MappingSet)
class MappingSetAdmin(HistoryAdmin):
    change_form_template = "admin/sync/mappingset/change_form.html"
    actions = ["refresh_reference_data"]
    list_display = ["name", "destination", "number_prefix", "number_suffix", "updated_at"]
    list_select_related = ["destination"]
    list_filter = ["destination"]
    search_fields = ["name"]
    inlines = [MappingRowInline]

    def get_urls(self) -> list[Any]:
        refresh = path(
            "<path:object_id>/refresh-reference/",
            self.admin_site.admin_view(self.refresh_view),
            name="sync_mappingset_refresh_reference",
        )
        return [refresh, *super().get_urls()]

    def _refresh(self, request: HttpRequest, mapping_sets: Iterable[MappingSet]) -> None:
        connections = {m.destination_id: m.destination for m in mapping_sets if m.destination_id}
        outcomes = Outcomes("Reference data refreshed")
        outcomes.run(
            connections.values(),
            lambda connection: reference.reference_data_refresh(connection),
            lambda connection, counts: f"{connection.name}: {_refresh_summary(counts or {})}",
        )
        if not connections:
            self.message_user(request, "No destination set: nothing to refresh.", messages.WARNING)
        outcomes.report(self, request)

    @admin.action(description="Refresh reference data from the destination", permissions=["change"])
    def refresh_reference_data(self, request: HttpRequest, queryset: QuerySet[MappingSet]) -> None:
        self._refresh(request, queryset.select_related("destination"))

    def refresh_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        mapping_set = get_object_or_404(MappingSet.objects.select_related("destination"), pk=object_id)
        if not self.has_change_permission(request, mapping_set):
            raise PermissionDenied
        self._refresh(request, [mapping_set])
        return HttpResponseRedirect(reverse("admin:sync_mappingset_change", args=[mapping_set.pk]))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk and obj.destination_id and self.has_change_permission(request, obj):
            context["refresh_reference_url"] = reverse(
                "admin:sync_mappingset_refresh_reference", args=[obj.pk]
            )
        return super().render_change_form(request, context, add, change, form_url, obj)


@admin.register(MappingRow)
class MappingRowAdmin(HistoryAdmin):
    form = MappingRowForm
    fields = ["mapping_set", "kind", "source_value", "target_value", "target_label"]
    list_display = ["mapping_set", "kind", "source_value", "target_value", "target_label"]
    list_select_related = ["mapping_set"]
    list_filter = ["kind", "mapping_set"]
    search_fields = ["source_value", "target_value", "target_label"]


@admin.register(ReferenceData)
class ReferenceDataAdmin(admin.ModelAdmin):
    """What the destination offers as mapping targets; fetched by "Refresh reference data", never typed."""

    list_display = ["code", "name", "kind", "connection", "email", "tax_number", "active", "fetched_at"]
    list_select_related = ["connection"]
    list_filter = ["connection", "kind", "active"]
    search_fields = ["code", "name", "email", "tax_number"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
