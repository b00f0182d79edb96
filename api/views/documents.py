"""Invoices, payments and credit notes: list, read, create (upsert by external id), update, void, bulk."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import OuterRef, QuerySet, Subquery
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from api import filters, schema
from api.auth import client_of
from api.bulk import documents_check
from api.documents import KINDS, CreditNoteInput, DocumentKind, InvoiceInput, PaymentInput
from api.errors import ApiError
from api.idempotency import idempotent
from api.permissions import access
from api.serializers import CreditNoteSerializer, InvoiceSerializer, PaymentSerializer
from api.services import (
    ItemResult,
    bulk_job_finish,
    bulk_job_start,
    documents_write,
    origin_external_id,
)
from api.views.base import ApiGenericView
from connectors.models import Connection
from sync.models import Binding, CreditNote, Invoice, Payment

BROWSABLE_CONNECTION = "API: staff (browsable API)"
# Worked out from the lines on every write: a change of lines must not meet the old sums.
DERIVED = {"subtotal", "tax_total", "total", "amount_due"}
RESHAPING = {"lines", "allocations", "total"}


def write_connection(request: Request) -> Connection:
    """Where a caller's documents come from: its client's connection; staff share one."""
    client = client_of(request)
    if client is not None:
        return client.connection
    connection, _ = Connection.objects.get_or_create(
        name=BROWSABLE_CONNECTION,
        defaults={"platform": "api", "role": Connection.Role.SOURCE, "health": Connection.Health.HEALTHY},
    )
    return connection


def _queryset(model: Any, object_type: str) -> QuerySet:
    origin = Binding.objects.filter(object_type=object_type, object_id=OuterRef("pk"), is_origin=True)
    queryset = model.objects.select_related("customer").annotate(
        external_id=Subquery(origin.values("external_id")[:1])
    )
    if object_type in ("invoice", "credit_note"):
        queryset = queryset.prefetch_related("lines")
    if object_type in ("payment", "credit_note"):
        queryset = queryset.prefetch_related("allocations__invoice")
    return queryset


class ItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the document in the request, from 0.")
    external_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["created", "updated", "unchanged", "rejected"])
    id = serializers.IntegerField(allow_null=True)
    errors = schema.FieldErrorSerializer(many=True)
    warnings = serializers.ListField(child=serializers.CharField())


class BulkResultSerializer(serializers.Serializer):
    job = serializers.IntegerField(help_text="The sync job recording this batch.")
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = ItemResultSerializer(many=True)


def _result(item: ItemResult) -> dict[str, Any]:
    return {
        "index": item.index,
        "external_id": item.external_id,
        "status": item.status,
        "id": item.id,
        "errors": item.errors,
        "warnings": item.warnings,
    }


class DocumentApi(ApiGenericView):
    kind: DocumentKind
    model: Any
    output: type[serializers.Serializer]

    def get_queryset(self) -> QuerySet:
        return _queryset(self.model, self.kind.object_type)

    def get_serializer_class(self) -> Any:
        return self.output

    def _document(self, pk: int) -> Any:
        return get_object_or_404(self.get_queryset(), pk=pk)

    def _write_one(self, request: Request, data: Any, *, existing: Any = None) -> Response:
        """Validate one document and write it; 201 when it is new, 200 otherwise."""
        serializer = self.kind.input(data=data)
        serializer.is_valid(raise_exception=True)
        record = self.kind.record(serializer.validated_data)
        connection = write_connection(request)
        if existing is not None:
            self._check_owned(connection, existing, record.external_id)
        [result] = documents_write(
            connection=connection, object_type=self.kind.object_type, items=[(0, record)]
        )
        if result.status == "rejected":
            raise ApiError(
                f"{self.kind.label} {record.external_id!r} could not be written; an exception was opened "
                "for the finance team.",
                code="write_failed",
                status_code=status.HTTP_409_CONFLICT,
                errors=result.errors,
            )
        body = self.output(self._document(result.id)).data  # type: ignore[arg-type]
        headers = {"Location": request.build_absolute_uri(f"{self._collection_path()}{result.id}/")}
        if result.warnings:
            headers["Ledgerlink-Warnings"] = "; ".join(result.warnings)[:1000]
        code = status.HTTP_201_CREATED if result.status == "created" else status.HTTP_200_OK
        return Response(body, status=code, headers=headers)

    def _collection_path(self) -> str:
        return f"/api/v1/{self.kind.object_type.replace('_', '-')}s/"

    def _check_owned(self, connection: Connection, document: Any, external_id: str | None = None) -> str:
        """A caller changes only documents it sent: any other source would overwrite the change."""
        mine = origin_external_id(
            connection=connection, object_type=self.kind.object_type, object_id=document.pk
        )
        if mine is None:
            source = document.source_connection
            where = f"{source.name!r} ({source.platform})" if source else "another source"
            raise ApiError(
                f"{self.kind.label} {document.pk} came from {where}; change it there or propose an override.",
                code="not_owned",
                status_code=status.HTTP_409_CONFLICT,
            )
        if external_id is not None and external_id != mine:
            raise ApiError(
                f"external_id {external_id!r} is not this document's ({mine!r}); it cannot be changed.",
                code="validation_error",
                errors=[{"field": "external_id", "message": f"must be {mine!r}", "value": external_id}],
            )
        return mine


class DocumentListApi(DocumentApi):
    def get(self, request: Request) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.output(page, many=True).data)

    @idempotent
    def post(self, request: Request) -> Response:
        return self._write_one(request, request.data)


class DocumentDetailApi(DocumentApi):
    def get(self, request: Request, pk: int) -> Response:
        return Response(self.output(self._document(pk)).data)

    @idempotent
    def put(self, request: Request, pk: int) -> Response:
        document = self._document(pk)
        mine = self._check_owned(write_connection(request), document)
        data = request.data
        if isinstance(data, dict) and "external_id" not in data:
            data = {**data, "external_id": mine}
        return self._write_one(request, data, existing=document)

    @idempotent
    def patch(self, request: Request, pk: int) -> Response:
        document = self._document(pk)
        mine = self._check_owned(write_connection(request), document)
        if not isinstance(request.data, dict):
            raise ApiError("The body must be a JSON object.", code="validation_error")
        current = {key: value for key, value in (document.raw_payload or {}).items() if key not in DERIVED}
        if RESHAPING & request.data.keys():
            current.pop("remaining_credit", None)
        data = {**current, **request.data, "external_id": request.data.get("external_id", mine)}
        return self._write_one(request, data, existing=document)


class DocumentVoidApi(DocumentApi):
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        document = self._document(pk)
        mine = self._check_owned(write_connection(request), document)
        data = {**(document.raw_payload or {}), "status": self.kind.void_status, "external_id": mine}
        return self._write_one(request, data, existing=document)


class DocumentBulkApi(DocumentApi):
    @idempotent
    def post(self, request: Request) -> Response:
        documents = request.data.get("documents") if isinstance(request.data, dict) else None
        limit = settings.API_BULK_MAX_DOCUMENTS
        if not isinstance(documents, list):
            raise ApiError(
                'The body must be {"documents": [...]}.',
                code="validation_error",
                errors=[
                    {
                        "field": "documents",
                        "message": "a list of documents is required",
                        "value": None if documents is None else f"<{type(documents).__name__}>",
                    }
                ],
            )
        if len(documents) > limit:
            raise ApiError(
                f"{len(documents)} documents in one request; at most {limit} are taken. Split the batch.",
                code="too_many_documents",
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                errors=[{"field": "documents", "message": f"at most {limit}", "value": len(documents)}],
            )
        if not documents:
            raise ApiError(
                "documents is empty.",
                code="validation_error",
                errors=[{"field": "documents", "message": "at least one document", "value": 0}],
            )
        results, valid = documents_check(self.kind, documents)
        connection = write_connection(request)
        job = bulk_job_start(
            connection=connection, object_type=self.kind.object_type, count=len(documents), user=request.user
        )
        for item in documents_write(
            connection=connection, object_type=self.kind.object_type, items=valid, job=job
        ):
            results[item.index] = item
        ordered = [results[index] for index in range(len(documents))]
        bulk_job_finish(job, ordered)
        counts = {
            name: sum(1 for r in ordered if r.status == name)
            for name in ("created", "updated", "unchanged", "rejected")
        }
        return Response({"job": job.pk, **counts, "results": [_result(r) for r in ordered]})


# --- one set of views per document type, each with its own schema ------------------------------------
INPUTS = {"invoice": InvoiceInput, "payment": PaymentInput, "credit_note": CreditNoteInput}
OUTPUTS = {"invoice": InvoiceSerializer, "payment": PaymentSerializer, "credit_note": CreditNoteSerializer}
MODELS = {"invoice": Invoice, "payment": Payment, "credit_note": CreditNote}
FILTERS = {
    "invoice": filters.InvoiceFilter,
    "payment": filters.PaymentFilter,
    "credit_note": filters.CreditNoteFilter,
}
PERMS = {"invoice": "invoice", "payment": "payment", "credit_note": "creditnote"}


def _bulk_request(object_type: str) -> Any:
    return schema.envelope(
        f"{INPUTS[object_type].__name__.replace('Input', '')}BulkRequest",
        documents=INPUTS[object_type](many=True, help_text="Up to API_BULK_MAX_DOCUMENTS (1,000)."),
    )


def document_views(object_type: str) -> dict[str, type]:
    kind = KINDS[object_type]
    output = OUTPUTS[object_type]
    label = kind.label.lower()
    plural = f"{label}s"
    tag = plural.capitalize()
    perm = PERMS[object_type]
    read = access("read", f"sync.view_{perm}")
    write_new = access("write_documents", f"sync.add_{perm}")
    write = access("write_documents", f"sync.change_{perm}")
    attrs = {
        "kind": kind,
        "model": MODELS[object_type],
        "output": output,
        "queryset": MODELS[object_type].objects.none(),
    }
    written = {201: output, 200: output}

    list_view = extend_schema_view(
        get=extend_schema(
            operation_id=f"{object_type}s_list",
            tags=[tag],
            summary=f"List {plural}",
            responses={200: output(many=True), **schema.LIST_ERRORS},
        ),
        post=extend_schema(
            operation_id=f"{object_type}s_create",
            tags=[tag],
            summary=f"Create or update a {label} by external_id",
            description=f"Writes the {label} from your system. A {label} with the same `external_id` from "
            "the same client is updated (200) instead of duplicated; a new one answers 201.",
            request=INPUTS[object_type],
            parameters=[schema.IDEMPOTENCY_KEY],
            responses={**written, **schema.WRITE_ERRORS},
        ),
    )(
        type(
            f"{kind.input.__name__.replace('Input', '')}ListApi",
            (DocumentListApi,),
            {**attrs, "filterset_class": FILTERS[object_type], "access": {"GET": read, "POST": write_new}},
        )
    )

    detail_view = extend_schema_view(
        get=extend_schema(
            operation_id=f"{object_type}s_retrieve",
            tags=[tag],
            summary=f"Read a {label}",
            responses={200: output, **schema.DETAIL_ERRORS},
        ),
        put=extend_schema(
            operation_id=f"{object_type}s_update",
            tags=[tag],
            summary=f"Replace a {label} you sent",
            description="The whole document, as on create. Only documents this client sent can be changed.",
            request=INPUTS[object_type],
            parameters=[schema.IDEMPOTENCY_KEY],
            responses={200: output, **schema.DETAIL_WRITE_ERRORS},
        ),
        patch=extend_schema(
            operation_id=f"{object_type}s_partial_update",
            tags=[tag],
            summary=f"Change some fields of a {label}",
            description="The fields given replace the stored ones (a `lines` list replaces all lines); "
            "totals "
            "left out are worked out again.",
            request=INPUTS[object_type](partial=True),
            parameters=[schema.IDEMPOTENCY_KEY],
            responses={200: output, **schema.DETAIL_WRITE_ERRORS},
        ),
    )(
        type(
            f"{kind.input.__name__.replace('Input', '')}DetailApi",
            (DocumentDetailApi,),
            {**attrs, "access": {"GET": read, "PUT": write, "PATCH": write}},
        )
    )

    void_view = extend_schema_view(
        post=extend_schema(
            operation_id=f"{object_type}s_void",
            tags=[tag],
            summary=f"Void a {label} you sent",
            description="Sets its status to void; the change reaches every destination on the next sync.",
            request=None,
            parameters=[schema.IDEMPOTENCY_KEY],
            responses={200: output, **schema.DETAIL_WRITE_ERRORS},
        ),
    )(
        type(
            f"{kind.input.__name__.replace('Input', '')}VoidApi",
            (DocumentVoidApi,),
            {**attrs, "access": {"POST": write}},
        )
    )

    bulk_view = extend_schema_view(
        post=extend_schema(
            operation_id=f"{object_type}s_bulk",
            tags=[tag],
            summary=f"Create or update up to 1,000 {plural}",
            description="Each document is answered on its own (index, status, id or errors): one bad "
            "document never sinks the others. More than API_BULK_MAX_DOCUMENTS is refused with 413.",
            request=_bulk_request(object_type),
            parameters=[schema.IDEMPOTENCY_KEY],
            responses={
                200: BulkResultSerializer,
                413: OpenApiResponse(
                    schema.ErrorSerializer,
                    description="More documents than allowed.",
                    examples=[
                        OpenApiExample(
                            "too_many_documents",
                            value={
                                "code": "too_many_documents",
                                "message": "1001 documents in one request; at most 1000 are taken. "
                                "Split the batch.",
                                "errors": [{"field": "documents", "message": "at most 1000", "value": 1001}],
                            },
                        )
                    ],
                ),
                **schema.WRITE_ERRORS,
            },
        ),
    )(
        type(
            f"{kind.input.__name__.replace('Input', '')}BulkApi",
            (DocumentBulkApi,),
            {**attrs, "access": {"POST": write_new}},
        )
    )
    return {"list": list_view, "detail": detail_view, "void": void_view, "bulk": bulk_view}
