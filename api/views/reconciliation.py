"""Exceptions (list, read, assign, move, resolve, ignore, tag, note) and overrides (propose, approve,
reject, revert). Every change goes through reconciliation.workflow, so the admin's rules hold here too;
the acting user is the client's linked person once they confirmed the link, else its service user. Each
override step taken through a client is recorded with every user behind the client (four eyes)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from api import filters, schema
from api.auth import acting_user, client_of
from api.errors import ApiError
from api.filters import MAX_ID
from api.idempotency import idempotent
from api.models import OverrideClientStep
from api.permissions import access
from api.services import override_client_step_record
from api.views.base import ApiGenericView, ApiView
from reconciliation.models import ExceptionNote, Override, ReconciliationException
from sync.money import money_str

READ_EXCEPTIONS = access("read", "reconciliation.view_reconciliationexception")
WORK = access("work_exceptions", "reconciliation.change_reconciliationexception")
NOTE = access("work_exceptions", "reconciliation.add_exceptionnote")
READ_OVERRIDES = access("read", "reconciliation.view_override")
PROPOSE = access("work_exceptions", "reconciliation.add_override")
DECIDE = access("approve_overrides", "reconciliation.approve_override")


# --- serializers --------------------------------------------------------------------------------------
class UserRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()


class NoteSerializer(serializers.ModelSerializer):
    author = UserRefSerializer(read_only=True)

    class Meta:
        model = ExceptionNote
        fields = ["id", "author", "body", "created_at"]


class ExceptionSerializer(serializers.ModelSerializer):
    assignee = UserRefSerializer(read_only=True, allow_null=True)
    resolved_by = UserRefSerializer(read_only=True, allow_null=True)
    tags = serializers.SerializerMethodField()
    amount_at_risk = serializers.DecimalField(
        max_digits=19, decimal_places=4, read_only=True, allow_null=True
    )
    amount_at_risk_base = serializers.DecimalField(
        max_digits=19, decimal_places=4, read_only=True, allow_null=True
    )

    class Meta:
        model = ReconciliationException
        fields = [
            "id",
            "kind",
            "severity",
            "state",
            "title",
            "message",
            "connection",
            "job",
            "object_type",
            "object_id",
            "document_number",
            "external_id",
            "currency",
            "amount_at_risk",
            "amount_at_risk_base",
            "details",
            "assignee",
            "tags",
            "occurrences",
            "first_seen_at",
            "last_seen_at",
            "resolved_at",
            "resolved_by",
            "resolved_by_system",
        ]

    @extend_schema_field({"type": "array", "items": {"type": "string"}})
    def get_tags(self, instance: ReconciliationException) -> list[str]:
        return sorted(tag.name for tag in instance.tags.all())

    def to_representation(self, instance: ReconciliationException) -> dict[str, Any]:
        data = super().to_representation(instance)
        if instance.amount_at_risk is not None and instance.currency:
            data["amount_at_risk"] = money_str(instance.amount_at_risk, instance.currency)
        return data


class ExceptionDetailSerializer(ExceptionSerializer):
    notes = NoteSerializer(many=True, read_only=True)
    overrides = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta(ExceptionSerializer.Meta):
        fields = [*ExceptionSerializer.Meta.fields, "notes", "overrides"]


class OverrideSerializer(serializers.ModelSerializer):
    proposed_by = UserRefSerializer(read_only=True)
    decided_by = UserRefSerializer(read_only=True, allow_null=True)
    proposed_via = serializers.SerializerMethodField(
        help_text="The API client it was proposed through; null when proposed in the admin."
    )
    decided_via = serializers.SerializerMethodField(
        help_text="The API client it was approved or rejected through; null when decided in the admin."
    )

    class Meta:
        model = Override
        fields = [
            "id",
            "exception",
            "object_type",
            "object_id",
            "document_number",
            "action",
            "field_name",
            "before_value",
            "after_value",
            "limit_amount",
            "reason",
            "state",
            "proposed_by",
            "proposed_at",
            "expires_at",
            "decided_by",
            "decided_at",
            "decision_comment",
            "applied_at",
            "apply_error",
            "reverts",
            "proposed_via",
            "decided_via",
        ]

    def _via(self, instance: Override, steps: tuple[str, ...]) -> str | None:
        # client_steps is prefetched by _overrides(): no query per row
        names = [row.client_name for row in instance.client_steps.all() if row.step in steps]
        return names[-1] if names else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_proposed_via(self, instance: Override) -> str | None:
        return self._via(instance, (OverrideClientStep.Step.PROPOSED,))

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_decided_via(self, instance: Override) -> str | None:
        return self._via(instance, (OverrideClientStep.Step.APPROVED, OverrideClientStep.Step.REJECTED))


class ChangedExceptionSerializer(serializers.Serializer):
    changed = serializers.BooleanField(help_text="false when the exception already was that way.")
    exception = ExceptionSerializer()


class AssignSerializer(serializers.Serializer):
    assignee = serializers.IntegerField(
        allow_null=True, min_value=1, max_value=MAX_ID, help_text="User id; null unassigns."
    )


class MoveSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=ReconciliationException.State.choices)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class RequiredReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class TagSerializer(serializers.Serializer):
    tags = serializers.ListField(child=serializers.CharField(max_length=200), min_length=1, max_length=50)
    remove = serializers.BooleanField(default=False, help_text="true removes these tags instead.")


class NoteInputSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=10_000)


class ProposeSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=Override.Action.choices)
    reason = serializers.CharField(max_length=2000)
    exception = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, allow_null=True, default=None
    )
    object_type = serializers.ChoiceField(
        choices=["invoice", "payment", "credit_note"], required=False, allow_blank=True, default=""
    )
    object_id = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, allow_null=True, default=None
    )
    field_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    after_value = serializers.JSONField(
        required=False,
        allow_null=True,
        default=None,
        help_text='set_field: the new value; force_match: {"connection": id, "external_id": "..."}.',
    )
    limit_amount = serializers.DecimalField(
        max_digits=19,
        decimal_places=4,
        required=False,
        allow_null=True,
        default=None,
        help_text="accept_difference: the largest difference accepted.",
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    reverts = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        allow_null=True,
        default=None,
        help_text="An applied override this proposal undoes.",
    )


class CommentSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class RequiredCommentSerializer(serializers.Serializer):
    comment = serializers.CharField(max_length=2000)


def _valid(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _referenced(model: Any, field: str, pk: int | None) -> Any:
    """An object the body names by id: a missing one is a 400 naming the field (404 is for the URL)."""
    if pk is None:
        return None
    found = model.objects.filter(pk=pk).first()
    if found is None:
        raise ApiError(
            f"No {model._meta.verbose_name} with id {pk}.",
            code="validation_error",
            errors=[{"field": field, "message": "does not exist", "value": pk}],
        )
    return found


def _exceptions() -> QuerySet:
    return ReconciliationException.objects.select_related("assignee", "resolved_by").prefetch_related("tags")


def _changed(changed: bool, exception: ReconciliationException) -> Response:
    fresh = _exceptions().get(pk=exception.pk)
    return Response({"changed": changed, "exception": ExceptionSerializer(fresh).data})


# --- exceptions ---------------------------------------------------------------------------------------
@extend_schema(tags=["Exceptions"])
class ExceptionListApi(ApiGenericView):
    queryset = ReconciliationException.objects.none()
    serializer_class = ExceptionSerializer
    filterset_class = filters.ExceptionFilter
    access = {"GET": READ_EXCEPTIONS}

    def get_queryset(self) -> QuerySet:
        return _exceptions()

    @extend_schema(
        operation_id="exceptions_list",
        summary="List reconciliation exceptions, newest first",
        responses={200: ExceptionSerializer(many=True), **schema.LIST_ERRORS},
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(ExceptionSerializer(page, many=True).data)


@extend_schema(tags=["Exceptions"])
class ExceptionDetailApi(ApiView):
    access = {"GET": READ_EXCEPTIONS}

    @extend_schema(
        operation_id="exceptions_retrieve",
        summary="Read an exception with its notes",
        responses={200: ExceptionDetailSerializer, **schema.DETAIL_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        exception = get_object_or_404(_exceptions().prefetch_related("notes__author", "overrides"), pk=pk)
        return Response(ExceptionDetailSerializer(exception).data)


class _ExceptionAction(ApiView):
    access = {"POST": WORK}

    def _exception(self, pk: int) -> ReconciliationException:
        return get_object_or_404(ReconciliationException, pk=pk)


def _action_schema(operation_id: str, summary: str, request: Any, description: str = "") -> Any:
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description=description,
        tags=["Exceptions"],
        request=request,
        parameters=[schema.IDEMPOTENCY_KEY],
        responses={200: ChangedExceptionSerializer, **schema.DETAIL_WRITE_ERRORS},
    )


class ExceptionAssignApi(_ExceptionAction):
    @_action_schema("exceptions_assign", "Assign an exception (or unassign it)", AssignSerializer)
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        from reconciliation.workflow import exception_assign

        exception = self._exception(pk)
        data = _valid(AssignSerializer, request)
        assignee = None
        if data["assignee"] is not None:
            assignee = get_user_model().objects.filter(pk=data["assignee"]).first()
            if assignee is None:
                raise ApiError(
                    f"No user with id {data['assignee']}.",
                    code="validation_error",
                    errors=[{"field": "assignee", "message": "no such user", "value": data["assignee"]}],
                )
        return _changed(exception_assign(exception, assignee=assignee, by=acting_user(request)), exception)


class ExceptionMoveApi(_ExceptionAction):
    @_action_schema(
        "exceptions_move",
        "Move an exception to another state",
        MoveSerializer,
        "open -> assigned -> in_review -> resolved | ignored; resolved and ignored reopen to open. "
        "A move the state machine does not allow is a 409 naming both states.",
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        from reconciliation.workflow import exception_move

        exception = self._exception(pk)
        data = _valid(MoveSerializer, request)
        moved = exception_move(exception, data["state"], by=acting_user(request), reason=data["reason"])
        return _changed(moved, exception)


class ExceptionResolveApi(_ExceptionAction):
    @_action_schema("exceptions_resolve", "Resolve an exception", ReasonSerializer)
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        from reconciliation.workflow import exception_resolve

        exception = self._exception(pk)
        data = _valid(ReasonSerializer, request)
        return _changed(
            exception_resolve(exception, by=acting_user(request), reason=data["reason"]), exception
        )


class ExceptionIgnoreApi(_ExceptionAction):
    @_action_schema(
        "exceptions_ignore", "Ignore an exception for good (a reason is required)", RequiredReasonSerializer
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        from reconciliation.workflow import exception_ignore

        exception = self._exception(pk)
        data = _valid(RequiredReasonSerializer, request)
        return _changed(
            exception_ignore(exception, by=acting_user(request), reason=data["reason"]), exception
        )


class ExceptionTagApi(_ExceptionAction):
    @_action_schema("exceptions_tag", "Tag an exception (or remove tags)", TagSerializer)
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        from reconciliation.workflow import exception_tag

        exception = self._exception(pk)
        data = _valid(TagSerializer, request)
        changed = exception_tag(exception, data["tags"], by=acting_user(request), remove=data["remove"])
        return _changed(changed, exception)


class ExceptionNoteApi(_ExceptionAction):
    access = {"POST": NOTE}

    @extend_schema(
        operation_id="exceptions_note",
        summary="Leave a note on an exception",
        tags=["Exceptions"],
        request=NoteInputSerializer,
        parameters=[schema.IDEMPOTENCY_KEY],
        responses={201: NoteSerializer, **schema.DETAIL_WRITE_ERRORS},
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        from reconciliation.workflow import exception_note

        exception = self._exception(pk)
        data = _valid(NoteInputSerializer, request)
        note = exception_note(exception, data["body"], by=acting_user(request))
        return Response(NoteSerializer(note).data, status=status.HTTP_201_CREATED)


# --- overrides ----------------------------------------------------------------------------------------
def _overrides() -> QuerySet:
    return Override.objects.select_related("proposed_by", "decided_by").prefetch_related("client_steps")


def _decider(request: Request) -> Any:
    """The acting user for a decision; a client whose person has not confirmed the link says so plainly
    (its service user would only be refused for lacking the approve permission)."""
    client = client_of(request)
    if client is not None and client.person_id is not None and not client.person_confirmed:
        raise ApiError(
            f"API client {client.name} acts for {client.person} only once they confirm the link in the "
            "admin (REST API > API clients); until then it acts as its service user, which may not "
            "decide overrides.",
            code="person_unconfirmed",
            status_code=403,
        )
    return acting_user(request)


@extend_schema(tags=["Overrides"])
class OverrideListApi(ApiGenericView):
    queryset = Override.objects.none()
    serializer_class = OverrideSerializer
    filterset_class = filters.OverrideFilter
    access = {"GET": READ_OVERRIDES, "POST": PROPOSE}

    def get_queryset(self) -> QuerySet:
        return _overrides()

    @extend_schema(
        operation_id="overrides_list",
        summary="List overrides, newest first",
        responses={200: OverrideSerializer(many=True), **schema.LIST_ERRORS},
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(OverrideSerializer(page, many=True).data)

    @extend_schema(
        operation_id="overrides_propose",
        summary="Propose an override",
        description="A correction someone else must approve. Set a field, accept a difference within a "
        "limit, force a match, re-push, void or mark paid; on an exception or a document.",
        request=ProposeSerializer,
        parameters=[schema.IDEMPOTENCY_KEY],
        responses={201: OverrideSerializer, **schema.WRITE_ERRORS},
    )
    @idempotent
    def post(self, request: Request) -> Response:
        from reconciliation.workflow import override_propose

        data = _valid(ProposeSerializer, request)
        exception = _referenced(ReconciliationException, "exception", data["exception"])
        reverts = _referenced(Override, "reverts", data["reverts"])
        by = acting_user(request)
        with transaction.atomic():  # the proposal and who stood behind it, together or not at all
            override = override_propose(
                by=by,
                action=data["action"],
                reason=data["reason"],
                exception=exception,
                object_type=data["object_type"],
                object_id=data["object_id"],
                field_name=data["field_name"],
                after_value=data["after_value"],
                limit_amount=data["limit_amount"],
                expires_at=data["expires_at"],
                reverts=reverts,
            )
            override_client_step_record(override=override, step=OverrideClientStep.Step.PROPOSED, acting=by)
        return Response(
            OverrideSerializer(_overrides().get(pk=override.pk)).data, status=status.HTTP_201_CREATED
        )


@extend_schema(tags=["Overrides"])
class OverrideDetailApi(ApiView):
    access = {"GET": READ_OVERRIDES}

    @extend_schema(
        operation_id="overrides_retrieve",
        summary="Read an override",
        responses={200: OverrideSerializer, **schema.DETAIL_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(OverrideSerializer(get_object_or_404(_overrides(), pk=pk)).data)


def _decision_schema(operation_id: str, summary: str, request: Any, description: str) -> Any:
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description=description,
        tags=["Overrides"],
        request=request,
        parameters=[schema.IDEMPOTENCY_KEY],
        responses={200: OverrideSerializer, **schema.DETAIL_WRITE_ERRORS},
    )


FOUR_EYES = (
    "Needs the approve_overrides scope, a linked person who confirmed the link (else 403 "
    "`person_unconfirmed`) and their reconciliation.approve_override permission. Nobody decides their own "
    "proposal: 403 `four_eyes` when anyone behind the proposal (its proposer, or the person, service user, "
    "creator or last configurer of the client it came through) is behind this decision too."
)


class OverrideApproveApi(ApiView):
    access = {"POST": DECIDE}

    @_decision_schema("overrides_approve", "Approve an override (and apply it)", CommentSerializer, FOUR_EYES)
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        from reconciliation.workflow import override_approve

        override = get_object_or_404(Override, pk=pk)
        data = _valid(CommentSerializer, request)
        by = _decider(request)
        # Not one transaction with the decision: a proposal found expired is marked so even though the
        # approval is refused. The history of the approval names the client in any case.
        override_approve(override, by=by, comment=data["comment"])
        override_client_step_record(override=override, step=OverrideClientStep.Step.APPROVED, acting=by)
        return Response(OverrideSerializer(_overrides().get(pk=pk)).data)


class OverrideRejectApi(ApiView):
    access = {"POST": DECIDE}

    @_decision_schema(
        "overrides_reject", "Reject an override (a comment is required)", RequiredCommentSerializer, FOUR_EYES
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        from reconciliation.workflow import override_reject

        override = get_object_or_404(Override, pk=pk)
        data = _valid(RequiredCommentSerializer, request)
        by = _decider(request)
        with transaction.atomic():
            override_reject(override, by=by, comment=data["comment"])
            override_client_step_record(override=override, step=OverrideClientStep.Step.REJECTED, acting=by)
        return Response(OverrideSerializer(_overrides().get(pk=pk)).data)


class OverrideRevertApi(ApiView):
    access = {"POST": PROPOSE}

    @extend_schema(
        operation_id="overrides_revert",
        summary="Propose undoing an applied override",
        description="A new proposal that needs approval like any other.",
        tags=["Overrides"],
        request=RequiredReasonSerializer,
        parameters=[schema.IDEMPOTENCY_KEY],
        responses={201: OverrideSerializer, **schema.DETAIL_WRITE_ERRORS},
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        from reconciliation.workflow import override_revert

        override = get_object_or_404(Override, pk=pk)
        data = _valid(RequiredReasonSerializer, request)
        by = acting_user(request)
        with transaction.atomic():
            revert = override_revert(override, by=by, reason=data["reason"])
            override_client_step_record(override=revert, step=OverrideClientStep.Step.PROPOSED, acting=by)
        return Response(
            OverrideSerializer(_overrides().get(pk=revert.pk)).data, status=status.HTTP_201_CREATED
        )
