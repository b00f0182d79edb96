"""The bulk endpoints: up to 1,000 documents, answered one by one; one bad document sinks nothing."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from api.bulk import Slow, input_plan
from api.documents import CreditNoteInput, InvoiceInput, PaymentInput
from sync.models import Invoice, SyncJob
from tests.api.conftest import credit_note_body, invoice_body, payment_body

pytestmark = pytest.mark.django_db


def test_each_document_is_answered_and_a_bad_one_sinks_nothing(shop):
    _, http = shop
    bad = invoice_body("bad", currency="XYZ")
    documents = [invoice_body("a"), bad, "not an object", invoice_body("b"), invoice_body("a", memo="dup")]
    response = http.post("/api/v1/invoices/bulk/", {"documents": documents}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert [r["status"] for r in body["results"]] == [
        "created",
        "rejected",
        "rejected",
        "created",
        "rejected",
    ]
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3, 4]
    assert body["results"][1]["errors"] == [
        {"field": "currency", "message": "'XYZ' is not an ISO 4217 currency code.", "value": "XYZ"}
    ]
    assert body["results"][2]["errors"][0]["message"].startswith("Invalid data")
    assert body["results"][4]["errors"][0]["message"] == "already in this batch at index 0"
    assert (body["created"], body["rejected"]) == (2, 3)
    assert set(Invoice.objects.values_list("number", flat=True)) == {"INV-a", "INV-b"}
    job = SyncJob.objects.get(pk=body["job"])
    assert (job.trigger, job.state, job.created, job.failed) == ("api", "partial", 2, 3)


def test_sending_the_batch_again_changes_nothing(shop):
    _, http = shop
    documents = [invoice_body(f"x{i}") for i in range(3)]
    http.post("/api/v1/invoices/bulk/", {"documents": documents}, format="json")
    again = http.post("/api/v1/invoices/bulk/", {"documents": documents}, format="json").json()
    assert again["unchanged"] == 3 and Invoice.objects.count() == 3
    assert {r["id"] for r in again["results"]} == set(Invoice.objects.values_list("pk", flat=True))


def test_a_document_the_database_refuses_is_rejected_alone(shop, monkeypatch):
    _, http = shop
    from django.db import DatabaseError

    from sync import services

    real = services._invoices_write

    def refuse_one(connection, records, result):
        if any(record.external_id == "poison" for record in records):
            raise DatabaseError("value too long for type character varying(64)")
        return real(connection, records, result)

    monkeypatch.setattr(services, "_invoices_write", refuse_one)
    monkeypatch.setitem(services._WRITERS, services.InvoiceRecord, ("invoice", refuse_one))
    documents = [invoice_body("ok1"), invoice_body("poison"), invoice_body("ok2")]
    body = http.post("/api/v1/invoices/bulk/", {"documents": documents}, format="json").json()
    assert [r["status"] for r in body["results"]] == ["created", "rejected", "created"]
    assert Invoice.objects.count() == 2


@override_settings(API_BULK_MAX_DOCUMENTS=3)
def test_more_than_the_limit_is_refused_with_413(shop):
    _, http = shop
    documents = [invoice_body(f"n{i}") for i in range(4)]
    response = http.post("/api/v1/invoices/bulk/", {"documents": documents}, format="json")
    assert response.status_code == 413
    assert response.json()["code"] == "too_many_documents"
    assert "at most 3" in response.json()["message"]
    assert Invoice.objects.count() == 0


def test_the_limit_defaults_to_1000():
    from django.conf import settings

    assert settings.API_BULK_MAX_DOCUMENTS == 1000


@pytest.mark.parametrize("body", [{}, {"documents": "x"}, {"documents": []}, []])
def test_a_body_without_a_list_of_documents_is_a_400(shop, body):
    _, http = shop
    response = http.post("/api/v1/invoices/bulk/", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "documents"


def test_payments_in_bulk_find_invoices_written_earlier(shop):
    _, http = shop
    http.post("/api/v1/invoices/bulk/", {"documents": [invoice_body()]}, format="json")
    body = http.post("/api/v1/payments/bulk/", {"documents": [payment_body()]}, format="json").json()
    assert body["results"][0]["status"] == "created" and body["results"][0]["warnings"] == []


def test_validation_errors_in_a_batch_name_the_nested_field_and_the_value(shop):
    _, http = shop
    lines = [{"description": "Oil", "quantity": "1", "unit_price": "10.00", "tax_amount": "1.005"}]
    documents = [invoice_body("ok"), invoice_body("bad", lines=lines)]
    body = http.post("/api/v1/invoices/bulk/", {"documents": documents}, format="json").json()
    assert [r["status"] for r in body["results"]] == ["created", "rejected"]
    assert body["results"][1]["errors"] == [
        {
            "field": "lines.0.tax_amount",
            "message": "'1.005' has more decimal places than GBP allows (2).",
            "value": "1.005",
        }
    ]


def test_documents_in_shapes_the_quick_check_leaves_to_the_serializer_are_written(shop):
    """JSON numbers for strings, padded strings and a null customer currency: the serializer takes them."""
    _, http = shop
    padded = invoice_body("padded", number="  INV-padded  ", currency=" gbp ")
    padded["customer"] = {"name": "Acme Ltd", "email": "ap@acme.example", "currency": None}
    numeric = invoice_body("numeric", number=1001)
    body = http.post("/api/v1/invoices/bulk/", {"documents": [padded, numeric]}, format="json").json()
    assert [r["status"] for r in body["results"]] == ["created", "created"], body["results"]
    written = dict(Invoice.objects.values_list("number", "currency"))
    assert written == {"INV-padded": "GBP", "1001": "GBP"}


def test_a_bulk_request_makes_as_many_queries_for_12_documents_as_for_3(shop):
    """No query per document (12 invoices still fit in one INSERT within SQLite's 999 parameters)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _, http = shop
    http.post("/api/v1/invoices/bulk/", {"documents": [invoice_body("first")]}, format="json")  # the customer
    counts = []
    for size, batch in ((3, "s"), (12, "l")):
        documents = [invoice_body(f"{batch}{i}") for i in range(size)]
        with CaptureQueriesContext(connection) as queries:
            response = http.post("/api/v1/invoices/bulk/", {"documents": documents}, format="json")
        assert response.json()["created"] == size
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


# --- the quick check gives exactly what the serializer gives -------------------------------------------
def _exact(value: Any) -> Any:
    """A value with its types, key order and decimal exponents spelt out (Decimal 1.0 is not 1.00)."""
    if isinstance(value, dict):
        return ("dict", [(key, _exact(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [_exact(item) for item in value])
    return (type(value).__name__, repr(value))


def _outcome(check: Any, document: Any) -> tuple[str, Any]:
    try:
        return "valid", _exact(check(document))
    except serializers.ValidationError as exc:
        return "invalid", exc.detail


BODIES = {InvoiceInput: invoice_body, PaymentInput: payment_body, CreditNoteInput: credit_note_body}
SERIALIZERS = {input_class: input_class() for input_class in BODIES}  # building one costs more than a check


def _serialized(input_class: type, document: Any) -> Any:
    return SERIALIZERS[input_class].run_validation(document)


def _checked(input_class: type, document: Any) -> Any:
    """The bulk path: the compiled plan, the serializer where the plan is not sure."""
    try:
        return input_plan(input_class)(document)
    except Slow:
        return _serialized(input_class, document)


@pytest.mark.parametrize("input_class", list(BODIES))
def test_every_document_input_compiles_to_a_plan(input_class):
    assert input_plan(input_class) is not None


@pytest.mark.parametrize("input_class", list(BODIES))
def test_the_plan_gives_what_the_serializer_gives_for_a_well_formed_document(input_class):
    document = BODIES[input_class]()
    assert _exact(input_plan(input_class)(document)) == _exact(input_class().run_validation(document))


def test_a_serializer_the_plan_cannot_mirror_is_not_compiled():
    class WithFieldHook(serializers.Serializer):
        name = serializers.CharField()

        def validate_name(self, value: str) -> str:
            return value.upper()

    class WithUnknownField(serializers.Serializer):
        when = serializers.DateTimeField()

    assert input_plan(WithFieldHook) is None
    assert input_plan(WithUnknownField) is None


# Values a caller might send, per kind of field: well-formed, padded, wrongly typed, out of range, empty.
TEXT = [
    None,
    "",
    "   ",
    " x ",
    "x",
    5,
    2.5,
    True,
    "a" * 300,
    "nul\x00",
    "sur\ud800rogate",
    "GBP",
    " gbp ",
    "XYZ",
    "not-an-email",
    " ap@acme.example ",
    [],
    {},
]
NUMBER = [
    None,
    "",
    "1",
    "1.0",
    " 2.50 ",
    "0.001",
    "10.005",
    "-5",
    "1e3",
    "NaN",
    "Infinity",
    2.5,
    0,
    10**20,
    True,
    "abc",
    [],
]
DATE = [
    None,
    "",
    "2026-03-01",
    "2026-02-30",
    "2026-3-1",
    "20260301",
    "2026-03-01T10:00:00",
    " 2026-03-01",
    20260301,
    "2026-W10-1",
]
CHOICE = [None, "", "open", "void", "deleted", "completed", "OPEN", 1, True]
INTEGER = [None, 0, 1, 2, True, "1", "1.0", 1.0, 1_000_001, -1, "x"]
OBJECT = [None, "x", [], {}, {"name": "x"}]
LIST = [None, [], {}, "x", [None], [{}]]
DELETE = object()


def _values_for(field: serializers.Field) -> list[Any]:
    if isinstance(field, serializers.ListSerializer):
        return LIST
    if isinstance(field, serializers.Serializer):
        return OBJECT
    for kind, values in (
        (serializers.ChoiceField, CHOICE),
        (serializers.IntegerField, INTEGER),
        (serializers.DateField, DATE),
        (serializers.CharField, TEXT),
    ):
        if isinstance(field, kind):
            return values
    return NUMBER


def _objects(document: Any, serializer: serializers.Serializer, path: tuple = ()) -> list[tuple]:
    """(path, serializer) of every object in the document the input describes, nested ones included."""
    if not isinstance(document, dict):
        return []
    found = [(path, serializer)]
    for name, field in serializer.fields.items():
        value = document.get(name)
        if isinstance(field, serializers.ListSerializer) and isinstance(value, list):
            for index, item in enumerate(value):
                found += _objects(item, field.child, (*path, name, index))
        elif isinstance(field, serializers.Serializer):
            found += _objects(value, field, (*path, name))
    return found


def _at(document: Any, path: tuple) -> Any:
    for part in path:
        document = document[part]
    return document


@st.composite
def _mutated(draw: Any, input_class: type) -> Any:
    """A well-formed document with one to three of its fields (or nested fields) changed or removed."""
    document = copy.deepcopy(BODIES[input_class]())
    if draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from([None, "x", 1, [], [document]]))  # not an object at all
    for _ in range(draw(st.integers(1, 3))):
        objects = _objects(document, input_class())
        path, serializer = draw(st.sampled_from(objects))
        name = draw(st.sampled_from(list(serializer.fields)))
        values = _values_for(serializer.fields[name])
        value = draw(st.sampled_from([*values, *values, *values, DELETE, *TEXT, *NUMBER]))
        if value is DELETE:
            _at(document, path).pop(name, None)
        else:
            _at(document, path)[name] = copy.deepcopy(value)
    return document


def _single_changes(input_class: type) -> Any:
    """Every document that differs from the well-formed one in one field: each value of every pool, or
    the field removed."""
    base = BODIES[input_class]()
    every = [*TEXT, *NUMBER, *DATE, *CHOICE, *INTEGER, *OBJECT, *LIST, DELETE]
    for path, serializer in _objects(base, input_class()):
        for name in serializer.fields:
            for value in every:
                document = copy.deepcopy(base)
                if value is DELETE:
                    _at(document, path).pop(name, None)
                else:
                    _at(document, path)[name] = copy.deepcopy(value)
                yield (*path, name), value, document


@pytest.mark.parametrize("input_class", list(BODIES))
def test_the_bulk_check_answers_every_single_change_as_the_serializer_does(input_class):
    differing = [
        (path, value)
        for path, value, document in _single_changes(input_class)
        if _outcome(lambda d: _checked(input_class, d), document)
        != _outcome(lambda d: _serialized(input_class, d), document)
    ]
    assert differing == []


@pytest.mark.parametrize("input_class", list(BODIES))
@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_bulk_check_answers_every_document_as_the_serializer_does(input_class, data):
    document = data.draw(_mutated(input_class))
    assert _outcome(lambda d: _checked(input_class, d), document) == _outcome(
        lambda d: _serialized(input_class, d), document
    )
