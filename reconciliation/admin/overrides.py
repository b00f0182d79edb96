"""Overrides: proposing one, the approval queue, and deciding (four eyes: nobody approves their own)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from rangefilter.filters import DateRangeFilterBuilder

from config.history import HistoryAdmin
from reconciliation import workflow
from reconciliation.admin.base import BULK_LIMIT, _rows_refused
from reconciliation.forms import DecisionForm, OverrideProposeForm
from reconciliation.models import Override, ReconciliationException
from reconciliation.workflow import WorkflowError
from sync.admin import Outcomes, document_admin_url
from sync.corrections import CorrectionError


class ApprovalFilter(admin.SimpleListFilter):
    title = "approval"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("waiting", "Waiting for a decision"),
            ("for_me", "Waiting for me (not mine)"),
            ("mine", "Proposed by me"),
            ("failed", "Approved, apply failed"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        live = {"state": Override.State.PROPOSED, "expires_at__gt": timezone.now()}
        if value == "waiting":
            return queryset.filter(**live)
        if value == "for_me":
            return queryset.filter(**live).exclude(proposed_by=request.user)
        if value == "mine":
            return queryset.filter(proposed_by=request.user)
        if value == "failed":
            return queryset.filter(state=Override.State.APPROVED).exclude(apply_error="")
        return queryset


def _can_retry(request: HttpRequest, override: Override) -> bool:
    """The "try applying it again" button: the approval's checks hold for a retry too."""
    return (
        override.state == Override.State.APPROVED
        and bool(override.apply_error)
        and override.proposed_by_id != request.user.pk
        and override.expires_at > timezone.now()
        and request.user.has_perm(workflow.APPROVE)
    )


def _now_and_stale(override: Override) -> tuple[str, str]:
    """The target's value now (as JSON text) and why the override no longer fits it ("" when it does),
    for an override still to be applied; ("", "") otherwise."""
    if override.state not in (Override.State.PROPOSED, Override.State.APPROVED):
        return "", ""
    try:
        now = workflow.override_now(override)
    except CorrectionError as exc:
        return "-", str(exc)
    if now is None:
        return "", ""
    return json.dumps(now, indent=2, default=str), workflow.override_stale_error(override, now)


def _can_decide_at_a_glance(request: HttpRequest, override: Override) -> str:
    """Why this user cannot decide it now ("" when they may), from the row alone (no query per row)."""
    if override.state != Override.State.PROPOSED:
        return f"already {override.get_state_display().lower()}"
    if override.proposed_by_id == request.user.pk:
        return "you proposed it: another person must decide"
    if override.expires_at <= timezone.now():
        return "expired: propose it again"
    if not request.user.has_perm(workflow.APPROVE):
        return "only accountants approve or reject"
    return ""


def _can_decide(request: HttpRequest, override: Override) -> str:
    """Why this user cannot decide it now ("" when they can), including people who stood behind the
    proposal through an API client (the same rule the workflow enforces)."""
    reason = _can_decide_at_a_glance(request, override)
    if reason:
        return reason
    if workflow.four_eyes_people(request.user) & workflow.override_proposal_people(override):
        return "you stood behind its proposal (through an API client): another person must decide"
    return ""


@admin.register(Override)
class OverrideAdmin(HistoryAdmin):
    change_form_template = "admin/reconciliation/override/change_form.html"
    actions = ["approve_selected", "reject_selected"]
    list_display = [
        "__str__",
        "document",
        "change",
        "state",
        "proposed_by",
        "proposed_at",
        "expires_at",
        "decided_by",
        "decide",
    ]
    list_select_related = ["proposed_by", "decided_by", "exception"]
    list_filter = [ApprovalFilter, "state", "action", ("proposed_at", DateRangeFilterBuilder())]
    search_fields = ["document_number", "reason", "field_name"]
    fields = [
        "action",
        "state",
        "exception",
        "object_type",
        "object_id",
        "document_number",
        "field_name",
        "before_pretty",
        "after_pretty",
        "limit_amount",
        "reason",
        "proposed_by",
        "proposed_at",
        "expires_at",
        "decided_by",
        "decided_at",
        "decision_comment",
        "applied_at",
        "apply_error",
        "reverts",
    ]
    readonly_fields = fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a proposal is never edited: it is decided, or reverted by a new one

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(workflow.APPROVE)

    @admin.display(description="document")
    def document(self, obj: Override) -> str:
        url = document_admin_url(obj.object_type, obj.object_id)
        text = obj.document_number or (f"{obj.object_type} {obj.object_id}" if obj.object_id else "-")
        return format_html('<a href="{}">{}</a>', url, text) if url else text

    @admin.display(description="change")
    def change(self, obj: Override) -> str:
        before, after = obj.before_value, obj.after_value
        if obj.action == Override.Action.SET_FIELD:
            return f"{obj.field_name}: {before} -> {after}"
        if obj.action == Override.Action.ACCEPT_DIFFERENCE:
            return f"accept up to {obj.limit_amount}"
        if obj.reverts_id:
            return f"revert #{obj.reverts_id}"
        return json.dumps(after, default=str) if after else "-"

    @admin.display(description="decide")
    def decide(self, obj: Override) -> str:
        # what get_list_display puts in its place knows who is looking; this is only the column's name
        return "-"

    def get_list_display(self, request: HttpRequest) -> Any:
        # the decide column depends on who is looking: no button on one's own proposal, nor for
        # people who cannot approve at all (the decision page and the workflow refuse them anyway)
        def decide(obj: Override) -> str:
            if obj.state != Override.State.PROPOSED:
                return format_html('<span class="errornote">apply failed</span>') if obj.apply_error else "-"
            reason = _can_decide_at_a_glance(request, obj)
            if reason:
                return format_html('<span class="quiet">{}</span>', reason)
            url = reverse("admin:reconciliation_override_change", args=[obj.pk])
            return format_html('<a class="button" href="{}#decision">Approve / reject</a>', url)

        decide.short_description = "decide"  # type: ignore[attr-defined]
        return [decide if name == "decide" else name for name in super().get_list_display(request)]

    @admin.display(description="before")
    def before_pretty(self, obj: Override) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.before_value, indent=2, default=str))

    @admin.display(description="after")
    def after_pretty(self, obj: Override) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.after_value, indent=2, default=str))

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("propose/", view(self.propose_view), name="reconciliation_override_propose"),
            path("<int:pk>/approve/", view(self.approve_view), name="reconciliation_override_approve"),
            path("<int:pk>/reject/", view(self.reject_view), name="reconciliation_override_reject"),
            path("<int:pk>/revert/", view(self.revert_view), name="reconciliation_override_revert"),
            path("<int:pk>/apply/", view(self.apply_view), name="reconciliation_override_apply"),
            *super().get_urls(),
        ]

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        return HttpResponseRedirect(
            reverse("admin:reconciliation_override_propose")
            + (f"?{request.GET.urlencode()}" if request.GET else "")
        )

    def propose_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm(workflow.PROPOSE):
            raise PermissionDenied
        exception_id = request.GET.get("exception") or request.POST.get("exception")
        exception = (
            get_object_or_404(ReconciliationException, pk=exception_id)
            if exception_id and str(exception_id).isdigit()
            else None
        )
        initial = {
            "action": request.GET.get("action", ""),
            "object_type": request.GET.get("object_type", "invoice"),
            "object_id": request.GET.get("object_id"),
        }
        form = OverrideProposeForm(request.POST or None, initial=initial)
        error = ""
        if request.method == "POST" and form.is_valid():
            proposal = form.proposal()
            if exception is not None:
                proposal.pop("object_type")
                proposal.pop("object_id")
            try:
                override = workflow.override_propose(by=request.user, exception=exception, **proposal)
            except WorkflowError as exc:
                error = exc.message
            else:
                self.message_user(
                    request,
                    f"Override #{override.pk} proposed; an accountant other than you must approve it.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:reconciliation_override_change", args=[override.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "Propose an override",
            "opts": self.model._meta,
            "form": form,
            "exception": exception,
            "error": error,
            "expiry_days": workflow.override_expiry_days(),
        }
        return TemplateResponse(request, "admin/reconciliation/override/propose.html", context)

    def _decision_target(self, request: HttpRequest, pk: int) -> Override:
        if request.method != "POST":
            raise PermissionDenied("decisions are made with the form on the override's page")
        return get_object_or_404(Override, pk=pk)

    def _after(self, override: Override) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:reconciliation_override_change", args=[override.pk]))

    def _report(self, request: HttpRequest, override: Override, done: str) -> None:
        if override.apply_error:
            self.message_user(
                request,
                f"Override #{override.pk} approved, but applying it failed (nothing of it was written): "
                f"{override.apply_error}",
                messages.ERROR,
            )
        else:
            self.message_user(request, done, messages.SUCCESS)

    def approve_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        override = self._decision_target(request, pk)
        try:
            workflow.override_approve(override, by=request.user, comment=request.POST.get("comment", ""))
        except WorkflowError as exc:
            self.message_user(request, f"Not approved: {exc.message}", messages.ERROR)
        else:
            self._report(request, override, f"Override #{override.pk} approved and applied.")
        return self._after(override)

    def reject_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        override = self._decision_target(request, pk)
        try:
            workflow.override_reject(override, by=request.user, comment=request.POST.get("comment", ""))
        except WorkflowError as exc:
            self.message_user(request, f"Not rejected: {exc.message}", messages.ERROR)
        else:
            self.message_user(request, f"Override #{override.pk} rejected.", messages.SUCCESS)
        return self._after(override)

    def revert_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        override = self._decision_target(request, pk)
        try:
            revert = workflow.override_revert(
                override, by=request.user, reason=request.POST.get("reason", "")
            )
        except WorkflowError as exc:
            self.message_user(request, f"Not proposed: {exc.message}", messages.ERROR)
            return self._after(override)
        self.message_user(
            request, f"Revert proposed as override #{revert.pk}; it needs approval.", messages.SUCCESS
        )
        return self._after(revert)

    def apply_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        override = self._decision_target(request, pk)
        try:
            workflow.override_apply(override, by=request.user)
        except WorkflowError as exc:
            self.message_user(request, f"Not applied: {exc.message}", messages.ERROR)
        else:
            self._report(request, override, f"Override #{override.pk} applied.")
        return self._after(override)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            current, stale = _now_and_stale(obj)
            context.update(
                {
                    "current_value": current,
                    "stale": stale,
                    "before_json": json.dumps(obj.before_value, indent=2, default=str),
                    "after_json": json.dumps(obj.after_value, indent=2, default=str),
                    "cannot_decide": _can_decide(request, obj),
                    "decision_form": DecisionForm(),
                    "can_revert": obj.state == Override.State.APPLIED
                    and obj.action != Override.Action.REPUSH
                    and request.user.has_perm(workflow.PROPOSE),
                    "can_retry": _can_retry(request, obj),
                    "exception_url": reverse(
                        "admin:reconciliation_reconciliationexception_change", args=[obj.exception_id]
                    )
                    if obj.exception_id
                    else "",
                    "document_url": document_admin_url(obj.object_type, obj.object_id),
                }
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _decide_many(self, request: HttpRequest, queryset: QuerySet, *, approve: bool) -> HttpResponse | None:
        rows = list(queryset.select_related("proposed_by").order_by("pk")[: BULK_LIMIT + 1])
        if len(rows) > BULK_LIMIT:
            self.message_user(
                request, f"Nothing done: at most {BULK_LIMIT} overrides at once.", messages.ERROR
            )
            return None
        form = DecisionForm(request.POST if request.POST.get("confirmed") == "yes" else None)
        if form.is_valid():
            comment = form.cleaned_data["comment"]
            outcomes = Outcomes("Approved" if approve else "Rejected")

            def decide(override: Override) -> Override:
                if approve:
                    return workflow.override_approve(override, by=request.user, comment=comment)
                return workflow.override_reject(override, by=request.user, comment=comment)

            def decided(override: Override) -> Override:
                result = decide(override)
                if result.apply_error:
                    raise WorkflowError(
                        "apply_failed", f"approved, but applying it failed: {result.apply_error}"
                    )
                return result

            outcomes.run(rows, decided, lambda override, result: f"#{override.pk}")
            outcomes.report(self, request)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Approve overrides" if approve else "Reject overrides",
            "what": "Each override below is approved and applied at once."
            if approve
            else "Each override below is rejected with your comment (required).",
            "opts": self.model._meta,
            "action": "approve_selected" if approve else "reject_selected",
            "form": form,
            "rows": _rows_refused(rows, lambda row: _can_decide(request, row)),
            "refused_count": sum(1 for row in rows if _can_decide(request, row)),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "select_across": request.POST.get("select_across", "0"),
        }
        return TemplateResponse(
            request, "admin/reconciliation/reconciliationexception/confirm_action.html", context
        )

    @admin.action(description="Approve and apply", permissions=["approve"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._decide_many(request, queryset, approve=True)

    @admin.action(description="Reject (with a comment)", permissions=["approve"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._decide_many(request, queryset, approve=False)
