"""Sync profiles (read, run, dry run), jobs and their progress, bindings and lineage, connections."""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from api import filters, schema
from api.auth import acting_user
from api.errors import ApiError
from api.filters import MAX_ID
from api.idempotency import idempotent
from api.permissions import access
from api.views.base import ApiGenericView, ApiView
from connectors.models import Connection
from sync.models import Binding, ObjectType, SyncJob, SyncProfile

READ_PROFILES = access("read", "sync.view_syncprofile")
READ_JOBS = access("read", "sync.view_syncjob")
READ_BINDINGS = access("read", "sync.view_binding")
READ_CONNECTIONS = access("read", "connectors.view_connection")
RUN = access("run_syncs", "sync.change_syncjob")
TEST_CONNECTION = access("run_syncs", "connectors.change_connection")


# --- serializers --------------------------------------------------------------------------------------
class ConnectionRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Connection
        fields = ["id", "name", "platform"]


class ConnectionSerializer(serializers.ModelSerializer):
    """A connection and its health; never its credentials."""

    class Meta:
        model = Connection
        fields = [
            "id",
            "name",
            "platform",
            "role",
            "base_url",
            "health",
            "last_error",
            "last_checked_at",
            "created_at",
            "updated_at",
        ]


class SyncProfileSerializer(serializers.ModelSerializer):
    source = ConnectionRefSerializer(read_only=True)
    destination = ConnectionRefSerializer(read_only=True)
    object_types = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = SyncProfile
        fields = [
            "id",
            "name",
            "source",
            "destination",
            "object_types",
            "direction",
            "cutover_date",
            "posting_mode",
            "schedule",
            "schedule_minutes",
            "schedule_time",
            "on_webhook",
            "on_payment",
            "enabled",
            "created_at",
            "updated_at",
        ]


class SyncJobSerializer(serializers.ModelSerializer):
    progress_percent = serializers.IntegerField(read_only=True, help_text="0 to 100.")

    class Meta:
        model = SyncJob
        fields = [
            "id",
            "kind",
            "trigger",
            "state",
            "profile",
            "connection",
            "dry_run",
            "seen",
            "created",
            "updated",
            "skipped",
            "failed",
            "progress_total",
            "progress_done",
            "progress_percent",
            "attempts",
            "max_attempts",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]


class BindingSerializer(serializers.ModelSerializer):
    connection = ConnectionRefSerializer(read_only=True)

    class Meta:
        model = Binding
        fields = [
            "connection",
            "object_type",
            "object_id",
            "external_id",
            "external_number",
            "is_origin",
            "remote_version",
            "remote_deleted",
            "document_version",
            "first_seen_at",
            "last_synced_at",
        ]


class LookupSerializer(serializers.Serializer):
    object_type = serializers.CharField()
    object_id = serializers.IntegerField()
    source = BindingSerializer(allow_null=True, help_text="Where the document came from.")
    copies = BindingSerializer(many=True, help_text="Its copies at destinations (or at `to_connection`).")


class DryRunRequestSerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=200, default=20)
    object_type = serializers.ChoiceField(choices=["invoice", "payment", "credit_note"], required=False)
    object_id = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("object_type" in attrs) != ("object_id" in attrs):
            raise serializers.ValidationError({"object_id": ["Give object_type and object_id together."]})
        return attrs


class DryRunItemSerializer(serializers.Serializer):
    object_type = serializers.CharField()
    object_id = serializers.IntegerField()
    label = serializers.CharField()
    operation = serializers.CharField(help_text="create, update, void, delete; none when nothing is sent.")
    destination_id = serializers.CharField()
    payload = serializers.JSONField(allow_null=True, help_text="Exactly what would be sent.")
    diff = serializers.ListField(child=serializers.DictField(), help_text="path, now, after.")
    problems = serializers.ListField(child=serializers.CharField())


class LineageSerializer(serializers.Serializer):
    object_type = serializers.CharField()
    object_id = serializers.IntegerField()
    label = serializers.CharField()
    exists = serializers.BooleanField(help_text="false when only a binding is left of the document.")
    source = BindingSerializer(allow_null=True)
    destinations = BindingSerializer(many=True)
    operations = serializers.ListField(
        child=serializers.DictField(), help_text="Push operations, oldest first."
    )
    open_exceptions = serializers.ListField(child=serializers.DictField())


# --- profiles and jobs --------------------------------------------------------------------------------
@extend_schema(tags=["Sync"])
class SyncProfileListApi(ApiGenericView):
    queryset = SyncProfile.objects.select_related("source", "destination")
    serializer_class = SyncProfileSerializer
    access = {"GET": READ_PROFILES}

    @extend_schema(
        operation_id="sync_profiles_list",
        summary="List sync profiles",
        responses={200: SyncProfileSerializer(many=True), **schema.LIST_ERRORS},
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(SyncProfileSerializer(page, many=True).data)


@extend_schema(tags=["Sync"])
class SyncProfileDetailApi(ApiView):
    access = {"GET": READ_PROFILES}

    @extend_schema(
        operation_id="sync_profiles_retrieve",
        summary="Read a sync profile",
        responses={200: SyncProfileSerializer, **schema.DETAIL_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        profile = get_object_or_404(SyncProfile.objects.select_related("source", "destination"), pk=pk)
        return Response(SyncProfileSerializer(profile).data)


@extend_schema(tags=["Sync"])
class SyncProfileRunApi(ApiView):
    access = {"POST": RUN}

    @extend_schema(
        operation_id="sync_profiles_run",
        summary="Run a profile now",
        description="Queues a pull-and-push job (202). Poll `GET /api/v1/jobs/{id}/` for its progress.",
        request=None,
        parameters=[schema.IDEMPOTENCY_KEY],
        responses={202: SyncJobSerializer, **schema.DETAIL_WRITE_ERRORS},
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        from sync.jobs import profile_run

        profile = get_object_or_404(SyncProfile, pk=pk)
        if not profile.enabled:
            raise ApiError(
                f"Sync profile {profile.name!r} is disabled.",
                code="profile_disabled",
                status_code=status.HTTP_409_CONFLICT,
            )
        job = profile_run(profile, trigger=SyncJob.Trigger.API, user=acting_user(request))
        return Response(
            SyncJobSerializer(job).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": request.build_absolute_uri(f"/api/v1/jobs/{job.pk}/")},
        )


@extend_schema(tags=["Sync"])
class SyncProfileDryRunApi(ApiView):
    access = {"POST": RUN}

    @extend_schema(
        operation_id="sync_profiles_dry_run",
        summary="Show what a run would send, without sending it",
        description="Per document: the destination payload and how it differs from the destination's copy "
        "now. Nothing is written; the destination is read for documents it already has.",
        request=DryRunRequestSerializer,
        responses={200: DryRunItemSerializer(many=True), **schema.DETAIL_WRITE_ERRORS},
    )
    def post(self, request: Request, pk: int) -> Response:
        from sync.preview import profile_preview

        profile = get_object_or_404(SyncProfile.objects.select_related("source", "destination"), pk=pk)
        params = DryRunRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        document = (data["object_type"], data["object_id"]) if "object_type" in data else None
        items = profile_preview(profile, limit=data["limit"], document=document)
        return Response(
            [
                {
                    "object_type": item.object_type,
                    "object_id": item.object_id,
                    "label": item.label,
                    "operation": item.operation,
                    "destination_id": item.destination_id,
                    "payload": item.payload,
                    "diff": item.diff,
                    "problems": item.problems,
                }
                for item in items
            ]
        )


@extend_schema(tags=["Sync"])
class SyncJobListApi(ApiGenericView):
    queryset = SyncJob.objects.all()
    serializer_class = SyncJobSerializer
    filterset_class = filters.SyncJobFilter
    access = {"GET": READ_JOBS}

    @extend_schema(
        operation_id="jobs_list",
        summary="List jobs, newest first",
        responses={200: SyncJobSerializer(many=True), **schema.LIST_ERRORS},
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(SyncJobSerializer(page, many=True).data)


@extend_schema(tags=["Sync"])
class SyncJobDetailApi(ApiView):
    access = {"GET": READ_JOBS}

    @extend_schema(
        operation_id="jobs_retrieve",
        summary="A job's state and progress",
        responses={200: SyncJobSerializer, **schema.DETAIL_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(SyncJobSerializer(get_object_or_404(SyncJob, pk=pk)).data)


# --- bindings and lineage -----------------------------------------------------------------------------
@extend_schema(tags=["Bindings"])
class BindingLookupApi(ApiView):
    access = {"GET": READ_BINDINGS}

    @extend_schema(
        operation_id="bindings_lookup",
        summary="Translate an id: source id -> destination ids, and back",
        description="Give the connection an id belongs to and the id there. The answer names the document, "
        "where it came from, and its copies elsewhere (only at `to_connection` when given). Works both ways: "
        "a destination id finds the source.",
        parameters=[
            OpenApiParameter("connection", OpenApiTypes.INT, required=True, description="Connection id."),
            OpenApiParameter("external_id", OpenApiTypes.STR, required=True, description="The id there."),
            OpenApiParameter(
                "object_type",
                OpenApiTypes.STR,
                enum=ObjectType.values,
                description="Needed only when the id is used by two types.",
            ),
            OpenApiParameter(
                "to_connection", OpenApiTypes.INT, description="Only copies on this connection."
            ),
        ],
        responses={200: LookupSerializer(many=True), **schema.LIST_ERRORS},
    )
    def get(self, request: Request) -> Response:
        params = _LookupParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        found = Binding.objects.filter(connection_id=data["connection"], external_id=data["external_id"])
        if data.get("object_type"):
            found = found.filter(object_type=data["object_type"])
        refs = list(found.values_list("object_type", "object_id")[:20])
        if not refs:
            return Response([])
        where = Q(pk__in=[])
        for object_type, object_id in refs:
            where |= Q(object_type=object_type, object_id=object_id)
        bindings = (
            Binding.objects.filter(where).select_related("connection").order_by("-is_origin", "first_seen_at")
        )
        grouped: dict[tuple[str, int], list[Binding]] = {ref: [] for ref in refs}
        for binding in bindings:
            grouped[(binding.object_type, binding.object_id)].append(binding)
        answer = []
        for (object_type, object_id), rows in grouped.items():
            source = next((b for b in rows if b.is_origin), None)
            copies = [b for b in rows if not b.is_origin]
            if data.get("to_connection"):
                copies = [b for b in copies if b.connection_id == data["to_connection"]]
            answer.append(
                {
                    "object_type": object_type,
                    "object_id": object_id,
                    "source": BindingSerializer(source).data if source else None,
                    "copies": BindingSerializer(copies, many=True).data,
                }
            )
        return Response(answer)


class _LookupParams(serializers.Serializer):
    connection = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    external_id = serializers.CharField(max_length=255)
    object_type = serializers.ChoiceField(choices=ObjectType.values, required=False)
    to_connection = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)


@extend_schema(tags=["Bindings"])
class LineageApi(ApiView):
    access = {"GET": READ_BINDINGS}

    @extend_schema(
        operation_id="lineage",
        summary="A document's whole lineage",
        description="Every document `q` names (an external id or number at any connection, an invoice or "
        "credit note number, a payment reference or processor transaction id), with where it came from, "
        "every copy, every push operation and its open exceptions.",
        parameters=[OpenApiParameter("q", OpenApiTypes.STR, required=True)],
        responses={200: LineageSerializer(many=True), **schema.LIST_ERRORS},
    )
    def get(self, request: Request) -> Response:
        from sync.push import document_label
        from sync.selectors import document_lineage

        query = request.query_params.get("q", "").strip()
        if "\x00" in query:
            raise ApiError(
                "q must not contain NUL characters.",
                code="validation_error",
                errors=[{"field": "q", "message": "NUL characters are not allowed", "value": query[:255]}],
            )
        if not query:
            raise ApiError(
                "q is required: an id, number or reference.",
                code="validation_error",
                errors=[{"field": "q", "message": "required", "value": query}],
            )
        answer = []
        for lineage in document_lineage(query[:255]):
            answer.append(
                {
                    "object_type": lineage.object_type,
                    "object_id": lineage.object_id,
                    "label": document_label(lineage.object_type, lineage.document)
                    if lineage.document
                    else "",
                    "exists": lineage.document is not None,
                    "source": BindingSerializer(lineage.source).data if lineage.source else None,
                    "destinations": BindingSerializer(lineage.destinations, many=True).data,
                    "operations": [
                        {
                            "id": op.pk,
                            "connection": op.connection_id,
                            "profile": op.profile_id,
                            "operation": op.operation,
                            "state": op.state,
                            "document_version": op.document_version,
                            "external_id": op.external_id,
                            "attempts": op.attempts,
                            "error": op.error,
                            "job": op.job_id,
                            "updated_at": op.updated_at,
                        }
                        for op in lineage.operations
                    ],
                    "open_exceptions": [
                        {
                            "id": e.pk,
                            "kind": e.kind,
                            "state": e.state,
                            "severity": e.severity,
                            "title": e.title,
                        }
                        for e in lineage.exceptions
                    ],
                }
            )
        return Response(answer)


# --- connections --------------------------------------------------------------------------------------
@extend_schema(tags=["Connections"])
class ConnectionListApi(ApiGenericView):
    queryset = Connection.objects.all()
    serializer_class = ConnectionSerializer
    filterset_class = filters.ConnectionFilter
    access = {"GET": READ_CONNECTIONS}

    @extend_schema(
        operation_id="connections_list",
        summary="List connections with their health",
        responses={200: ConnectionSerializer(many=True), **schema.LIST_ERRORS},
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(ConnectionSerializer(page, many=True).data)


@extend_schema(tags=["Connections"])
class ConnectionDetailApi(ApiView):
    access = {"GET": READ_CONNECTIONS}

    @extend_schema(
        operation_id="connections_retrieve",
        summary="Read a connection",
        responses={200: ConnectionSerializer, **schema.DETAIL_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(ConnectionSerializer(get_object_or_404(Connection, pk=pk)).data)


@extend_schema(tags=["Connections"])
class ConnectionTestApi(ApiView):
    access = {"POST": TEST_CONNECTION}

    @extend_schema(
        operation_id="connections_test",
        summary="Test a connection now",
        description="Calls the platform with the stored credentials and records the health. Safe to repeat, "
        "so it takes no Idempotency-Key (and holds no transaction open while the platform answers).",
        request=None,
        responses={200: ConnectionSerializer, **schema.DETAIL_ERRORS},
    )
    def post(self, request: Request, pk: int) -> Response:
        from connectors.services import connection_check

        connection = get_object_or_404(Connection, pk=pk)
        connection_check(connection=connection)
        connection.refresh_from_db()
        return Response(ConnectionSerializer(connection).data)
