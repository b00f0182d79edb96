"""The exception queue and one exception's page with its buttons; tags."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from rangefilter.filters import DateRangeFilterBuilder

from config.history import HistoryAdmin
from reconciliation import services, workflow
from reconciliation.admin.actions import ExceptionBulkActions
from reconciliation.admin.base import CappedPaginator, State
from reconciliation.admin.filters import AgeFilter, AmountAtRiskFilter, AssigneeFilter, QueueStateFilter
from reconciliation.forms import NoteForm
from reconciliation.models import ReconciliationException, Tag
from reconciliation.selectors import exception_fixes
from reconciliation.workflow import WorkflowError
from sync.admin import document_admin_url
from sync.money import money_str

PUSH_NOW = "sync.change_syncjob"  # run, retry and cancel jobs: what a direct re-push amounts to


@admin.register(ReconciliationException)
class ReconciliationExceptionAdmin(ExceptionBulkActions, HistoryAdmin):
    change_form_template = "admin/reconciliation/reconciliationexception/change_form.html"
    list_display = [
        "title",
        "kind",
        "severity",
        "state",
        "at_risk",
        "document_number",
        "connection",
        "assignee",
        "tag_list",
        "first_seen_at",
    ]
    list_select_related = ["connection", "assignee"]
    list_filter = [
        QueueStateFilter,
        "kind",
        "severity",
        AgeFilter,
        AmountAtRiskFilter,
        "connection",
        AssigneeFilter,
        "tags",
        ("first_seen_at", DateRangeFilterBuilder()),
    ]
    search_help_text = "Document number (or its start), external id, or exception number."
    search_fields = ["document_number"]  # the search itself is get_search_results: exact, indexed
    list_per_page = 100
    show_full_result_count = False
    paginator = CappedPaginator
    actions = ["assign_to_me", "assign", "tag", "resolve", "ignore", "recheck"]
    fields = [
        "title",
        "kind",
        "severity",
        "state",
        "assignee",
        "tag_list",
        "message",
        "details_pretty",
        "document_number",
        "external_id",
        "object_type",
        "object_id",
        "connection",
        "job",
        "currency",
        "amount_at_risk",
        "amount_at_risk_base",
        "occurrences",
        "first_seen_at",
        "last_seen_at",
        "resolved_at",
        "resolved_by",
        "resolved_by_system",
        "fingerprint",
    ]
    # States, assignees and tags change through the workflow (buttons on the page), never the form.
    readonly_fields = [name for name in fields if name != "severity"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("tags")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> Any:
        from django.db.models import Q

        term = search_term.strip()
        if not term:
            return queryset, False
        match = (
            Q(document_number__startswith=term)
            | Q(document_number__startswith=term.upper())
            | Q(external_id=term)
            | Q(fingerprint=term)
        )
        if term.lstrip("#").isdigit():
            match |= Q(pk=int(term.lstrip("#")))
        return queryset.filter(match), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # findings are raised by checks and imports, not typed in

    @admin.display(description="amount at risk", ordering="amount_at_risk")
    def at_risk(self, obj: ReconciliationException) -> str:
        if obj.amount_at_risk is None or not obj.currency:
            return "-"
        return f"{obj.currency} {money_str(obj.amount_at_risk, obj.currency)}"

    @admin.display(description="tags")
    def tag_list(self, obj: ReconciliationException) -> str:
        return ", ".join(tag.name for tag in obj.tags.all()) or "-"

    @admin.display(description="details")
    def details_pretty(self, obj: ReconciliationException) -> str:
        return format_html(
            "<pre style='white-space:pre-wrap'>{}</pre>",
            json.dumps(obj.details, indent=2, ensure_ascii=False),
        )

    # --- one exception: its page and the buttons on it
    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/move/", view(self.move_view), name="reconciliation_exception_move"),
            path("<int:pk>/assign-me/", view(self.assign_me_view), name="reconciliation_exception_assign_me"),
            path("<int:pk>/note/", view(self.note_view), name="reconciliation_exception_note"),
            path("<int:pk>/tag/", view(self.tag_view), name="reconciliation_exception_tag"),
            path("<int:pk>/repull/", view(self.repull_view), name="reconciliation_exception_repull"),
            path("<int:pk>/repush/", view(self.repush_view), name="reconciliation_exception_repush"),
            path("<int:pk>/recheck/", view(self.recheck_view), name="reconciliation_exception_recheck"),
            *super().get_urls(),
        ]

    def _post_target(self, request: HttpRequest, pk: int) -> ReconciliationException:
        if request.method != "POST":
            raise PermissionDenied("use the buttons on the exception's page")
        exception = get_object_or_404(ReconciliationException, pk=pk)
        if not self.has_change_permission(request, exception):
            raise PermissionDenied
        return exception

    def _back(self, exception: ReconciliationException) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse("admin:reconciliation_reconciliationexception_change", args=[exception.pk])
        )

    def _attempt(self, request: HttpRequest, call: Callable[[], Any], done: str, unchanged: str = "") -> None:
        try:
            result = call()
        except WorkflowError as exc:
            self.message_user(request, f"Not done: {exc.message}", messages.ERROR)
            return
        except (
            Exception
        ) as exc:  # a service's own refusal (CorrectionError, ValueError): say it, do not crash
            self.message_user(request, f"Not done: {exc}", messages.ERROR)
            return
        if result is False and unchanged:
            self.message_user(request, unchanged, messages.WARNING)
        else:
            self.message_user(request, done, messages.SUCCESS)

    def move_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        exception = self._post_target(request, pk)
        to_state = request.POST.get("to", "")
        reason = request.POST.get("reason", "")
        label = dict(State.choices).get(to_state, to_state)
        self._attempt(
            request,
            lambda: workflow.exception_move(exception, to_state, by=request.user, reason=reason),
            f"Exception #{exception.pk} is now {str(label).lower()}.",
            f"Exception #{exception.pk} was already {str(label).lower()}.",
        )
        return self._back(exception)

    def assign_me_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        exception = self._post_target(request, pk)
        self._attempt(
            request,
            lambda: workflow.exception_assign(exception, assignee=request.user, by=request.user),
            f"Exception #{exception.pk} is assigned to you.",
            f"Exception #{exception.pk} was already yours.",
        )
        return self._back(exception)

    def note_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        exception = get_object_or_404(ReconciliationException, pk=pk)
        if not request.user.has_perm("reconciliation.add_exceptionnote"):
            raise PermissionDenied
        form = NoteForm(request.POST)
        body = form.data.get("body", "")
        self._attempt(
            request, lambda: workflow.exception_note(exception, body, by=request.user), "Note added."
        )
        return self._back(exception)

    def tag_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        exception = self._post_target(request, pk)
        names = request.POST.get("names", "")
        remove = request.POST.get("remove") == "1"
        self._attempt(
            request,
            lambda: workflow.exception_tag(
                exception, workflow.tag_names_clean(names), by=request.user, remove=remove
            ),
            "Tags changed.",
            "Tags were already so.",
        )
        return self._back(exception)

    def repull_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        exception = self._post_target(request, pk)
        fixes = exception_fixes(exception)
        if not fixes.repull:
            self.message_user(request, "Not done: nothing names where to re-pull this from.", messages.ERROR)
            return self._back(exception)
        from sync.corrections import document_repull

        connection, object_type, external_id = fixes.repull
        self._attempt(
            request,
            lambda: document_repull(
                connection=connection, object_type=object_type, external_id=external_id, by=request.user
            ),
            f"Re-pull of {object_type.replace('_', ' ')} {external_id} from {connection.name} queued.",
        )
        return self._back(exception)

    def repush_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        # Pushing at once is a job-level power (integration admins); finance staff propose a re-push as
        # an override, which an accountant approves.
        if request.method != "POST":
            raise PermissionDenied("use the buttons on the exception's page")
        if not request.user.has_perm(PUSH_NOW):
            raise PermissionDenied(f"pushing at once needs {PUSH_NOW}: propose a re-push instead")
        exception = get_object_or_404(ReconciliationException, pk=pk)
        if not exception.object_id or exception.object_type not in ("invoice", "credit_note", "payment"):
            self.message_user(request, "Not done: this exception names no document to push.", messages.ERROR)
            return self._back(exception)
        from sync.corrections import document_push

        def push() -> Any:
            jobs = document_push(
                object_type=exception.object_type, object_id=exception.object_id, by=request.user
            )
            return ", ".join(f"#{job.pk}" for job in jobs)

        self._attempt(request, push, f"Push of {exception.document_number or 'the document'} queued.")
        return self._back(exception)

    def recheck_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        exception = self._post_target(request, pk)
        self._attempt(request, lambda: services.recheck(exception, user=request.user), "Re-check queued.")
        return self._back(exception)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            fixes = exception_fixes(obj)
            can_work = self.has_change_permission(request, obj)
            context.update(
                {
                    "fixes": fixes,
                    "can_work": can_work,
                    "can_push": request.user.has_perm(PUSH_NOW),
                    "can_note": request.user.has_perm("reconciliation.add_exceptionnote"),
                    "can_propose": request.user.has_perm("reconciliation.add_override"),
                    "moves": [
                        (state, label)
                        for state, label in State.choices
                        if state in workflow.TRANSITIONS[obj.state] and state != State.ASSIGNED
                    ],
                    "notes": list(obj.notes.select_related("author")),
                    "overrides": list(obj.overrides.select_related("proposed_by", "decided_by")),
                    "propose_url": reverse("admin:reconciliation_override_propose") + f"?exception={obj.pk}",
                    "propose_repush_url": reverse("admin:reconciliation_override_propose")
                    + f"?exception={obj.pk}&action=repush",
                    "document_url": document_admin_url(obj.object_type, obj.object_id),
                }
            )
        return super().render_change_form(request, context, add, change, form_url, obj)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name"]
    search_fields = ["name"]
