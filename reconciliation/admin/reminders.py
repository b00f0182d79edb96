"""Reminder policies, the reminders sent or skipped, and alerts, in the admin.

Policies are edited in a form that refuses a template that does not compile or reads an unknown variable;
"Preview next run" (per policy, and for all) shows what the next run would send and skip, and why,
without sending or recording anything. Reminders and alerts are read-only records.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from rangefilter.filters import DateRangeFilterBuilder

from config.history import HistoryAdmin
from reconciliation import reminders
from reconciliation.models import Alert, Reminder, ReminderPolicy

TEMPLATE_FIELDS = ("subject_template", "body_template")


class ReminderPolicyForm(forms.ModelForm):
    class Meta:
        model = ReminderPolicy
        fields = [
            "name",
            "enabled",
            "profile",
            "customer_group",
            "days_before_due",
            "on_due_date",
            "every_days_after",
            "max_overdue_reminders",
            "from_email",
            "reply_to",
            "subject_template",
            "body_template",
        ]
        widgets = {"body_template": forms.Textarea(attrs={"rows": 16, "cols": 100})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = ", ".join(f"{{{{ {name} }}}}" for name in reminders.template_variables())
        help_text = (
            f"A Django template; amounts come formatted in the invoice's currency. Variables: {names}."
        )
        for name in TEMPLATE_FIELDS:
            if name in self.fields:
                self.fields[name].help_text = help_text

    def _template(self, name: str) -> str:
        text = self.cleaned_data.get(name) or ""
        try:
            reminders.template_check(text)
        except reminders.TemplateProblemError as exc:
            raise ValidationError(f"{self.fields[name].label}: {exc}") from None
        return text

    def clean_subject_template(self) -> str:
        return self._template("subject_template")

    def clean_body_template(self) -> str:
        return self._template("body_template")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not (data.get("days_before_due") or data.get("on_due_date") or data.get("every_days_after")):
            raise ValidationError(
                "The policy never reminds: set days before due, on the due date, or every N days after."
            )
        if data.get("every_days_after") and not data.get("max_overdue_reminders"):
            self.add_error(
                "max_overdue_reminders", "Max overdue reminders is 0, so every N days after never sends."
            )
        return data


@admin.register(ReminderPolicy)
class ReminderPolicyAdmin(HistoryAdmin):
    form = ReminderPolicyForm
    change_form_template = "admin/reconciliation/reminderpolicy/change_form.html"
    change_list_template = "admin/reconciliation/reminderpolicy/change_list.html"
    list_display = ["name", "enabled", "profile", "customer_group", "when", "updated_at"]
    list_select_related = ["profile"]
    list_filter = ["enabled", "profile"]
    search_fields = ["name", "customer_group"]
    actions = ["send_test_email"]
    fieldsets = [
        (None, {"fields": ["name", "enabled"]}),
        ("Which invoices", {"fields": ["profile", "customer_group"]}),
        (
            "When",
            {"fields": ["days_before_due", "on_due_date", "every_days_after", "max_overdue_reminders"]},
        ),
        ("Email", {"fields": ["from_email", "reply_to", "subject_template", "body_template"]}),
    ]

    @admin.display(description="when")
    def when(self, obj: ReminderPolicy) -> str:
        parts = []
        if obj.days_before_due:
            parts.append(f"{obj.days_before_due} days before due")
        if obj.on_due_date:
            parts.append("on the due date")
        if obj.every_days_after and obj.max_overdue_reminders:
            parts.append(
                f"every {obj.every_days_after} days after, at most {obj.max_overdue_reminders} times"
            )
        return "; ".join(parts) or "never"

    @admin.action(description="Send a test email to me", permissions=["view"])
    def send_test_email(self, request: HttpRequest, queryset: QuerySet[ReminderPolicy]) -> None:
        to = getattr(request.user, "email", "")
        for policy in queryset.select_related("profile"):
            try:
                label = reminders.policy_test_send(policy, to=to)
            except Exception as exc:  # one policy's problem must not hide the others' results
                self.message_user(request, f"{policy.name}: not sent: {exc}", messages.ERROR)
                continue
            self.message_user(
                request, f"{policy.name}: test email for {label} sent to {to}", messages.SUCCESS
            )

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("preview/", wrap(self.preview_view), name="reconciliation_reminderpolicy_preview_all"),
            path(
                "<path:object_id>/preview/",
                wrap(self.preview_view),
                name="reconciliation_reminderpolicy_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest, object_id: str | None = None) -> HttpResponse:
        policy = get_object_or_404(ReminderPolicy, pk=object_id) if object_id else None
        if not self.has_view_permission(request, policy):
            raise PermissionDenied
        run_date = reminders.next_run_date()
        error = ""
        if request.GET.get("date"):
            try:
                run_date = date.fromisoformat(request.GET["date"])
            except ValueError:
                error = f"date {request.GET['date']!r} is not a date (YYYY-MM-DD); showing {run_date}"
        plan = reminders.reminders_plan(run_date=run_date, policies=[policy] if policy else None)
        rows = [
            {"item": item, "url": reverse("admin:sync_invoice_change", args=[item.invoice.pk])}
            for item in plan
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Preview next run: {policy.name}" if policy else "Preview next run: all policies",
            "opts": self.model._meta,
            "policy": policy,
            "run_date": run_date,
            "error": error,
            "rows": rows,
            "to_send": sum(1 for item in plan if item.action == "send"),
            "to_skip": sum(1 for item in plan if item.action == "skip"),
            "catch_up_days": reminders.catch_up_days(),
        }
        return TemplateResponse(request, "admin/reconciliation/reminderpolicy/preview.html", context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context["preview_url"] = reverse("admin:reconciliation_reminderpolicy_preview", args=[obj.pk])
            context["reminders_url"] = (
                reverse("admin:reconciliation_reminder_changelist") + f"?policy__id__exact={obj.pk}"
            )
        return super().render_change_form(request, context, add, change, form_url, obj)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records the system writes: people read them, nobody types or edits them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Reminder)
class ReminderAdmin(ReadOnlyAdmin):
    list_display = [
        "invoice_number",
        "customer",
        "stage",
        "scheduled_for",
        "state",
        "reason_text",
        "recipient",
        "sent_at",
        "policy",
    ]
    list_select_related = ["invoice__customer", "policy"]
    list_filter = ["state", "stage", "policy", ("scheduled_for", DateRangeFilterBuilder())]
    search_fields = ["invoice__number", "recipient"]
    fields = [
        "invoice",
        "policy",
        "stage",
        "scheduled_for",
        "state",
        "reason",
        "recipient",
        "subject",
        "body",
        "job",
        "created_at",
        "sent_at",
    ]
    readonly_fields = fields

    @admin.display(description="invoice", ordering="invoice__number")
    def invoice_number(self, obj: Reminder) -> str:
        url = reverse("admin:sync_invoice_change", args=[obj.invoice_id])
        return format_html('<a href="{}">{}</a>', url, obj.invoice.number)

    @admin.display(description="customer", ordering="invoice__customer__name")
    def customer(self, obj: Reminder) -> str:
        return obj.invoice.customer.name

    @admin.display(description="reason")
    def reason_text(self, obj: Reminder) -> str:
        return obj.reason if len(obj.reason) <= 160 else obj.reason[:157] + "..."


class PendingFilter(admin.SimpleListFilter):
    title = "digest"
    parameter_name = "pending"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Waiting for the next digest"), ("no", "Sent")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(sent_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(sent_at__isnull=False)
        return queryset


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["subject", "kind", "occurrences", "first_seen_at", "last_seen_at", "sent_at"]
    list_filter = ["kind", PendingFilter, ("last_seen_at", DateRangeFilterBuilder())]
    search_fields = ["subject", "key", "message"]
    fields = [
        "kind",
        "key",
        "subject",
        "message",
        "connection",
        "job",
        "occurrences",
        "first_seen_at",
        "last_seen_at",
        "sent_at",
    ]
    readonly_fields = fields
