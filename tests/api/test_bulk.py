"""The bulk endpoints: up to 1,000 documents, answered one by one; one bad document sinks nothing."""

from __future__ import annotations

import pytest
from django.test import override_settings

from sync.models import Invoice, SyncJob
from tests.api.conftest import invoice_body, payment_body

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
