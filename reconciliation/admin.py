"""Triage in the admin: the exception queue, each exception's fixes, and the override approval queue.

Every change goes through `reconciliation.workflow` (and, for documents, `sync.corrections`), one row at a
time, so the rules hold here as on the API. Bulk actions show a confirmation page that says what will
happen to each row, then report how many succeeded and which failed and why.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from rangefilter.filters import DateRangeFilterBuilder
from simple_history.admin import SimpleHistoryAdmin

from reconciliation import workflow
from reconciliation.forms import (
    AssignForm,
    DecisionForm,
    NoteForm,
    OverrideProposeForm,
    ReasonForm,
    TagForm,
    workers,
)
from reconciliation.models import Override, ReconciliationException, Tag
from reconciliation.selectors import exception_fixes
from reconciliation.workflow import WorkflowError
from sync.admin import Outcomes, document_admin_url
from sync.money import money_str

State = ReconciliationException.State
OPEN_WORK = "work"
# Bulk actions act on at most this many rows at once: the confirmation page lists each one.
BULK_LIMIT = 500
# The queue never counts more than this: "more than 10,000" is as useful as the exact figure, and
# counting a million rows on every page view is what makes a big queue slow.
COUNT_CAP = 10_000


class CappedPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows (a LIMITed subquery), whatever the table holds."""

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        return self.object_list.order_by()[: COUNT_CAP + 1].count()  # no sort needed to count


def _service(dotted: str) -> Callable[..., Any] | None:
    module_name, _, name = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return None
    return getattr(module, name, None)


def recheck_service() -> Callable[..., Any] | None:
    """`recheck(exception, *, user)`, imported when used (the checks may live in either module)."""
    return _service("reconciliation.checks.recheck") or _service("reconciliation.services.recheck")


# --- filters ------------------------------------------------------------------------------------------
class QueueStateFilter(admin.SimpleListFilter):
    """Open work by default: what still needs someone."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(OPEN_WORK, "Open work (open, assigned, in review)"), *State.choices, ("all", "All")]

    def choices(self, changelist: Any) -> Any:
        current = self.value() or OPEN_WORK
        for value, label in self.lookup_choices:
            yield {
                "selected": current == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value() or OPEN_WORK
        if value == OPEN_WORK:
            return queryset.filter(state__in=ReconciliationException.OPEN_STATES)
        if value in State.values:
            return queryset.filter(state=value)
        return queryset


class AgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"
    BUCKETS = {"1d": (None, 1), "7d": (1, 7), "30d": (7, 30), "older": (30, None)}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("1d", "Under a day"), ("7d", "1-7 days"), ("30d", "7-30 days"), ("older", "Over 30 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() not in self.BUCKETS:
            return queryset
        low, high = self.BUCKETS[self.value()]  # type: ignore[index]
        now = timezone.now()
        if low is not None:
            queryset = queryset.filter(first_seen_at__lte=now - timedelta(days=low))
        if high is not None:
            queryset = queryset.filter(first_seen_at__gt=now - timedelta(days=high))
        return queryset


class AmountAtRiskFilter(admin.SimpleListFilter):
    title = "amount at risk (document currency)"
    parameter_name = "at_risk"
    BUCKETS = {
        "none": None,
        "lt100": (0, 100),
        "lt1k": (100, 1000),
        "lt10k": (1000, 10000),
        "10k": (10000, None),
    }

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("none", "Not known"),
            ("lt100", "Under 100"),
            ("lt1k", "100 - 1,000"),
            ("lt10k", "1,000 - 10,000"),
            ("10k", "10,000 and over"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value not in self.BUCKETS:
            return queryset
        if value == "none":
            return queryset.filter(amount_at_risk__isnull=True)
        low, high = self.BUCKETS[value]  # type: ignore[misc]
        queryset = queryset.filter(amount_at_risk__gte=low)
        return queryset.filter(amount_at_risk__lt=high) if high is not None else queryset


class AssigneeFilter(admin.SimpleListFilter):
    title = "assignee"
    parameter_name = "assignee"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        people = [(str(user.pk), user.get_username()) for user in workers()]
        return [("me", "Assigned to me"), ("none", "Nobody"), *people]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "me":
            return queryset.filter(assignee=request.user)
        if value == "none":
            return queryset.filter(assignee__isnull=True)
        if value and value.isdigit():
            return queryset.filter(assignee_id=int(value))
        return queryset


# --- the exception queue ------------------------------------------------------------------------------
def _rows_refused(rows: list[Any], check: Callable[[Any], str]) -> list[dict[str, Any]]:
    return [{"row": row, "refused": check(row)} for row in rows]


@admin.register(ReconciliationException)
class ReconciliationExceptionAdmin(SimpleHistoryAdmin):
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

    # --- bulk actions behind a confirmation page
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
        service = recheck_service()
        if service is None:
            self.message_user(
                request, "Nothing done: re-checking is not installed in this version.", messages.ERROR
            )
            return None
        return self._confirm(
            request,
            queryset,
            action="recheck",
            title="Re-run the check",
            what="A check of each exception's document is queued; a clean result resolves the exception.",
            form=self._bound(request, ReasonForm),
            preview=lambda row: "" if row.object_id or row.external_id else "names no document to check",
            run=lambda row, data: service(row, user=request.user),
            describe=lambda row, job: f"#{row.pk} as job #{job.pk}" if job is not None else None,
            verb="Re-check queued",
            unchanged="not queued",
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
        exception = self._post_target(request, pk)
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
        service = recheck_service()
        if service is None:
            self.message_user(
                request, "Not done: re-checking is not installed in this version.", messages.ERROR
            )
            return self._back(exception)
        self._attempt(request, lambda: service(exception, user=request.user), "Re-check queued.")
        return self._back(exception)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            fixes = exception_fixes(obj)
            can_work = self.has_change_permission(request, obj)
            context.update(
                {
                    "fixes": fixes,
                    "can_work": can_work,
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
                    "document_url": document_admin_url(obj.object_type, obj.object_id),
                }
            )
        return super().render_change_form(request, context, add, change, form_url, obj)


# --- overrides: proposing and the approval queue ------------------------------------------------------
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


def _can_decide(request: HttpRequest, override: Override) -> str:
    """Why this user cannot decide it now ("" when they can)."""
    if override.state != Override.State.PROPOSED:
        return f"already {override.get_state_display().lower()}"
    if override.proposed_by_id == request.user.pk:
        return "you proposed it: another person must decide"
    if override.expires_at <= timezone.now():
        return "expired: propose it again"
    if not request.user.has_perm(workflow.APPROVE):
        return "only accountants approve or reject"
    return ""


@admin.register(Override)
class OverrideAdmin(SimpleHistoryAdmin):
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
        if obj.state != Override.State.PROPOSED:
            return format_html('<span class="errornote">apply failed</span>') if obj.apply_error else "-"
        url = reverse("admin:reconciliation_override_change", args=[obj.pk])
        return format_html('<a class="button" href="{}#decision">Approve / reject</a>', url)

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
            context.update(
                {
                    "cannot_decide": _can_decide(request, obj),
                    "decision_form": DecisionForm(),
                    "can_revert": obj.state == Override.State.APPLIED
                    and obj.action != Override.Action.REPUSH
                    and request.user.has_perm(workflow.PROPOSE),
                    "can_retry": obj.state == Override.State.APPROVED
                    and bool(obj.apply_error)
                    and request.user.has_perm(workflow.APPROVE),
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


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name"]
    search_fields = ["name"]


def queue_url(**params: str) -> str:
    """The exception queue with filters, e.g. queue_url(kind="duplicate")."""
    base = reverse("admin:reconciliation_reconciliationexception_changelist")
    return f"{base}?{urlencode(params)}" if params else base


from reconciliation import admin_reminders  # noqa: E402,F401  (registers the reminder and alert admins)
