"""Bulk actions on the exception queue: a confirmation page that says what will happen to each row, then a
counted report of what succeeded and what failed and why."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from reconciliation import services, workflow
from reconciliation.admin.base import BULK_LIMIT, State, _rows_refused
from reconciliation.forms import AssignForm, ReasonForm, TagForm
from reconciliation.models import ReconciliationException
from sync.admin import Outcomes


class ExceptionBulkActions(admin.ModelAdmin):
    """The exception admin's bulk actions, each behind a confirmation page."""

    def _confirm(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        *,
        action: str,
        title: str,
        what: str,
        form: Any,
        preview: Callable[[Any], str],
        run: Callable[[Any, dict[str, Any]], Any],
        describe: Callable[[Any, Any], str | None],
        verb: str,
        unchanged: str,
    ) -> HttpResponse | None:
        rows = list(queryset.select_related("assignee").order_by("pk")[: BULK_LIMIT + 1])
        if len(rows) > BULK_LIMIT:
            self.message_user(
                request,
                f"Nothing done: {title.lower()} works on at most {BULK_LIMIT} exceptions at once; "
                "narrow the list with the filters first.",
                messages.ERROR,
            )
            return None
        if request.POST.get("confirmed") == "yes" and form.is_valid():
            outcomes = Outcomes(verb)
            outcomes.run(rows, lambda row: run(row, form.cleaned_data), describe)
            outcomes.report(self, request, skipped_reason=unchanged)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "what": what,
            "opts": self.model._meta,
            "action": action,
            "form": form,
            "rows": _rows_refused(rows, preview),
            "refused_count": sum(1 for row in rows if preview(row)),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "select_across": request.POST.get("select_across", "0"),
        }
        return TemplateResponse(
            request, "admin/reconciliation/reconciliationexception/confirm_action.html", context
        )

    def _bound(self, request: HttpRequest, form_class: Any, **kwargs: Any) -> Any:
        return form_class(request.POST if request.POST.get("confirmed") == "yes" else None, **kwargs)

    @admin.action(description="Assign to me", permissions=["change"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        me = request.user

        def preview(row: ReconciliationException) -> str:
            if not row.is_open:
                return f"{row.get_state_display().lower()}: reopen it before assigning it"
            return ""

        return self._confirm(
            request,
            queryset,
            action="assign_to_me",
            title="Assign to me",
            what=f"Each exception below is assigned to {me.get_username()}; open ones become assigned.",
            form=self._bound(request, ReasonForm),
            preview=preview,
            run=lambda row, data: workflow.exception_assign(row, assignee=me, by=me),
            describe=lambda row, changed: f"#{row.pk}" if changed else None,
            verb="Assigned to you",
            unchanged="already yours",
        )

    @admin.action(description="Assign to someone", permissions=["change"])
    def assign(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        form = self._bound(request, AssignForm)

        def preview(row: ReconciliationException) -> str:
            if not row.is_open:
                return f"{row.get_state_display().lower()}: reopen it before assigning it"
            return ""

        return self._confirm(
            request,
            queryset,
            action="assign",
            title="Assign exceptions",
            what="Each exception below is given to the person you choose (open ones become assigned); "
            "choosing nobody puts assigned ones back in the open queue.",
            form=form,
            preview=preview,
            run=lambda row, data: workflow.exception_assign(row, assignee=data["assignee"], by=request.user),
            describe=lambda row, changed: f"#{row.pk}" if changed else None,
            verb="Assigned",
            unchanged="unchanged (already so)",
        )

    @admin.action(description="Tag", permissions=["change"])
    def tag(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._confirm(
            request,
            queryset,
            action="tag",
            title="Tag exceptions",
            what="The tags you name are added to (or removed from) each exception below.",
            form=self._bound(request, TagForm),
            preview=lambda row: "",
            run=lambda row, data: workflow.exception_tag(
                row, workflow.tag_names_clean(data["names"]), by=request.user, remove=data["remove"]
            ),
            describe=lambda row, changed: f"#{row.pk}" if changed else None,
            verb="Tags changed",
            unchanged="unchanged (tags already so)",
        )

    def _move_action(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        to_state: str,
        *,
        action: str,
        title: str,
        required: bool,
    ) -> HttpResponse | None:
        form = self._bound(request, ReasonForm, required=required)
        label = State(to_state).label.lower()

        def preview(row: ReconciliationException) -> str:
            error = workflow.exception_move_error(row, to_state, reason="reason given")
            if error:
                return error
            return "" if row.state != to_state else f"already {label}: left as it is"

        def run(row: ReconciliationException, data: dict[str, Any]) -> bool:
            return workflow.exception_move(row, to_state, by=request.user, reason=data["reason"])

        return self._confirm(
            request,
            queryset,
            action=action,
            title=title,
            what=f"Each exception below moves from its state to {label}"
            + (
                " with the reason you give (required)."
                if required
                else "; the reason is kept in its history."
            ),
            form=form,
            preview=preview,
            run=run,
            describe=lambda row, moved: f"#{row.pk}" if moved else None,
            verb=f"Moved to {label}",
            unchanged=f"already {label}",
        )

    @admin.action(description="Resolve", permissions=["change"])
    def resolve(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._move_action(
            request, queryset, State.RESOLVED, action="resolve", title="Resolve exceptions", required=False
        )

    @admin.action(description="Ignore (with a reason)", permissions=["change"])
    def ignore(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._move_action(
            request, queryset, State.IGNORED, action="ignore", title="Ignore exceptions", required=True
        )

    @admin.action(description="Re-run the check", permissions=["change"])
    def recheck(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._confirm(
            request,
            queryset,
            action="recheck",
            title="Re-run the check",
            what="A check of each exception's document is queued; a clean result resolves the exception.",
            form=self._bound(request, ReasonForm),
            preview=lambda row: "" if row.object_id or row.external_id else "names no document to check",
            run=lambda row, data: services.recheck(row, user=request.user),
            describe=lambda row, job: f"#{row.pk} as job #{job.pk}" if job is not None else None,
            verb="Re-check queued",
            unchanged="not queued",
        )
