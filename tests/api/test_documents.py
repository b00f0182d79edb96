"""Invoices, payments and credit notes through the API: written by the sync services, upserted by the
caller's external id, checked with errors that name the field and the value."""

from __future__ import annotations

from decimal import Decimal

import pytest

from reconciliation.models import ReconciliationException
from sync.models import Binding, Invoice, Payment
from tests.api.conftest import credit_note_body, invoice_body, payment_body
from tests.factories import InvoiceFactory

pytestmark = pytest.mark.django_db


def test_an_invoice_is_created_with_an_origin_binding_on_the_clients_connection(shop):
    client, http = shop
    response = http.post("/api/v1/invoices/", invoice_body(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    invoice = Invoice.objects.get(pk=body["id"])
    assert invoice.source_connection == client.connection
    assert client.connection.platform == "api"
    binding = Binding.objects.get(object_type="invoice", object_id=invoice.pk)
    assert (binding.connection, binding.external_id, binding.is_origin) == (
        client.connection,
        "shop-1001",
        True,
    )
    assert body["external_id"] == "shop-1001"
    assert body["total"] == "129.99" and body["subtotal"] == "109.99" and body["tax_total"] == "20.00"
    assert [line["total"] for line in body["lines"]] == ["120.00", "9.99"]
    assert response["Location"].endswith(f"/api/v1/invoices/{invoice.pk}/")


def test_the_same_external_id_again_updates_the_invoice_instead_of_duplicating_it(shop):
    _, http = shop
    first = http.post("/api/v1/invoices/", invoice_body(), format="json").json()
    again = http.post("/api/v1/invoices/", invoice_body(memo="second thoughts"), format="json")
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["memo"] == "second thoughts" and again.json()["row_version"] == 2
    assert Invoice.objects.count() == 1


def test_two_clients_with_the_same_external_id_get_two_invoices(make_client):
    _, one = make_client(["write_documents"])
    _, two = make_client(["write_documents"])
    assert one.post("/api/v1/invoices/", invoice_body(), format="json").status_code == 201
    assert two.post("/api/v1/invoices/", invoice_body(), format="json").status_code == 201
    assert Invoice.objects.count() == 2


def test_external_id_is_required_on_create(shop):
    _, http = shop
    body = invoice_body()
    del body["external_id"]
    response = http.post("/api/v1/invoices/", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert {"field": "external_id", "message": "This field is required.", "value": None} in response.json()[
        "errors"
    ]


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [
        ({"currency": "XXY"}, "currency", "XXY"),
        ({"issue_date": "03/04/2026"}, "issue_date", "03/04/2026"),
        ({"total": "130.00"}, "total", "130.00"),
        ({"due_date": "2026-02-01"}, "due_date", "2026-02-01"),
        ({"status": "deleted"}, "status", "deleted"),
        ({"lines": []}, "lines", "<list>"),
    ],
)
def test_a_bad_value_is_refused_naming_the_field_and_the_value(shop, change, field, value):
    _, http = shop
    response = http.post("/api/v1/invoices/", invoice_body(**change), format="json")
    assert response.status_code == 400, response.json()
    [error] = [e for e in response.json()["errors"] if e["field"] == field]
    assert error["value"] == value
    assert error["message"]
    assert Invoice.objects.count() == 0


def test_amounts_must_fit_the_currencys_minor_unit(shop):
    _, http = shop
    lines = [{"description": "Tea", "quantity": 1, "unit_price": "1500", "tax_amount": "0.5"}]
    response = http.post("/api/v1/invoices/", invoice_body(currency="JPY", lines=lines), format="json")
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == "lines.0.tax_amount" and error["value"] == "0.5"
    assert "JPY allows (0)" in error["message"]


def test_kwd_keeps_three_places_and_jpy_none(shop):
    _, http = shop
    kwd = [{"description": "Dates", "quantity": 1, "unit_price": "12.345", "tax_amount": "0"}]
    body = http.post("/api/v1/invoices/", invoice_body("k1", currency="kwd", lines=kwd), format="json").json()
    assert (body["currency"], body["total"]) == ("KWD", "12.345")
    jpy = [{"description": "Tea", "quantity": 3, "unit_price": "1500", "tax_amount": "0"}]
    body = http.post("/api/v1/invoices/", invoice_body("j1", currency="JPY", lines=jpy), format="json").json()
    assert body["total"] == "4500"


def test_a_line_total_that_is_not_subtotal_plus_tax_is_refused(shop):
    _, http = shop
    lines = [{"description": "Oil", "quantity": 2, "unit_price": "50", "tax_amount": "20", "total": "119.00"}]
    response = http.post("/api/v1/invoices/", invoice_body(lines=lines), format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "lines.0.total"
    assert response.json()["errors"][0]["value"] == "119.00"


def test_put_replaces_patch_merges_and_lines_change_the_totals(shop):
    _, http = shop
    created = http.post("/api/v1/invoices/", invoice_body(), format="json").json()
    url = f"/api/v1/invoices/{created['id']}/"
    patched = http.patch(url, {"lines": [{"description": "Oil", "unit_price": "10.00"}]}, format="json")
    assert patched.status_code == 200, patched.json()
    assert (patched.json()["total"], patched.json()["number"]) == ("10.00", "INV-shop-1001")
    body = invoice_body(number="INV-NEW")
    del body["external_id"]
    put = http.put(url, body, format="json")
    assert put.status_code == 200 and put.json()["number"] == "INV-NEW" and put.json()["total"] == "129.99"
    assert Invoice.objects.get().row_version == 3


def test_put_cannot_change_the_external_id(shop):
    _, http = shop
    created = http.post("/api/v1/invoices/", invoice_body(), format="json").json()
    response = http.put(f"/api/v1/invoices/{created['id']}/", invoice_body("other"), format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "external_id"


def test_void_sets_the_status_and_bumps_the_version(shop):
    _, http = shop
    created = http.post("/api/v1/invoices/", invoice_body(), format="json").json()
    response = http.post(f"/api/v1/invoices/{created['id']}/void/")
    assert response.status_code == 200
    assert response.json()["status"] == "void" and response.json()["row_version"] == 2


def test_a_document_from_another_source_cannot_be_changed_through_the_api(shop):
    _, http = shop
    invoice = InvoiceFactory()
    for response in (
        http.post(f"/api/v1/invoices/{invoice.pk}/void/"),
        http.patch(f"/api/v1/invoices/{invoice.pk}/", {"memo": "x"}, format="json"),
    ):
        assert response.status_code == 409
        assert response.json()["code"] == "not_owned"
        assert invoice.source_connection.name in response.json()["message"]
    invoice.refresh_from_db()
    assert invoice.status == "open" and invoice.row_version == 1


def test_list_filters(shop):
    _, http = shop
    http.post("/api/v1/invoices/", invoice_body("a", currency="EUR"), format="json")
    http.post(
        "/api/v1/invoices/", invoice_body("b", issue_date="2026-04-02", due_date="2026-05-01"), format="json"
    )
    http.post("/api/v1/invoices/", invoice_body("c", status="paid", amount_paid="129.99"), format="json")
    InvoiceFactory(number="INV-elsewhere")

    def numbers(query: str) -> list[str]:
        response = http.get(f"/api/v1/invoices/?{query}")
        assert response.status_code == 200, response.json()
        return sorted(row["number"] for row in response.json()["results"])

    assert numbers("currency=eur") == ["INV-a"]
    assert numbers("status=paid") == ["INV-c"]
    assert numbers("issue_date_after=2026-04-01") == ["INV-b"]
    assert numbers("external_id=b") == ["INV-b"]
    assert numbers("number=INV-elsewhere") == ["INV-elsewhere"]
    connection = Invoice.objects.get(number="INV-a").source_connection_id
    assert numbers(f"source_connection={connection}") == ["INV-a", "INV-b", "INV-c"]
    assert numbers("updated_since=2000-01-01T00:00:00Z") == ["INV-a", "INV-b", "INV-c", "INV-elsewhere"]


def test_a_bad_filter_value_is_a_400_naming_the_parameter(shop):
    _, http = shop
    response = http.get("/api/v1/invoices/?issue_date_after=yesterday&status=lost")
    assert response.status_code == 400
    errors = {error["field"]: error for error in response.json()["errors"]}
    assert set(errors) == {"issue_date", "status"}
    assert errors["status"]["value"] == "lost"


def test_lists_page_with_a_cursor(shop):
    _, http = shop
    for index in range(5):
        http.post("/api/v1/invoices/", invoice_body(f"p{index}"), format="json")
    first = http.get("/api/v1/invoices/?page_size=2").json()
    assert len(first["results"]) == 2 and first["next"]
    second = http.get(first["next"]).json()
    assert {r["id"] for r in first["results"]}.isdisjoint(r["id"] for r in second["results"])


def test_list_queries_do_not_grow_with_rows(shop, django_assert_max_num_queries):
    _, http = shop
    for index in range(3):
        http.post("/api/v1/invoices/", invoice_body(f"q{index}"), format="json")
    # token and client, invoices with their customer and origin id, their lines
    with django_assert_max_num_queries(5):
        assert len(http.get("/api/v1/invoices/").json()["results"]) == 3
    for index in range(3, 15):
        http.post("/api/v1/invoices/", invoice_body(f"q{index}"), format="json")
    with django_assert_max_num_queries(5):
        assert len(http.get("/api/v1/invoices/").json()["results"]) == 15


def test_a_payment_is_allocated_to_the_invoice_by_the_callers_id(shop):
    _, http = shop
    invoice = http.post("/api/v1/invoices/", invoice_body(), format="json").json()
    response = http.post("/api/v1/payments/", payment_body(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["allocations"] == [
        {
            "invoice_id": invoice["id"],
            "invoice_number": "INV-shop-1001",
            "amount": "129.99",
            "allocated_on": "2026-03-05",
        }
    ]
    assert body["unapplied_amount"] == "0.00"


def test_a_payment_for_an_unknown_invoice_is_kept_and_flagged(shop):
    _, http = shop
    response = http.post("/api/v1/payments/", payment_body(), format="json")
    assert response.status_code == 201
    assert "not known yet" in response["Ledgerlink-Warnings"]
    assert Payment.objects.get().unapplied_amount == Decimal("129.99")
    assert ReconciliationException.objects.filter(kind="unmatched_payment").count() == 1


def test_allocations_above_the_payment_are_refused(shop):
    _, http = shop
    body = payment_body(allocations=[{"invoice_number": "INV-1", "amount": "200.00"}])
    response = http.post("/api/v1/payments/", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "allocations"


def test_a_credit_note_is_created_against_its_invoice(shop):
    _, http = shop
    invoice = http.post("/api/v1/invoices/", invoice_body(), format="json").json()
    response = http.post("/api/v1/credit-notes/", credit_note_body(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["original_invoice"] == invoice["id"]
    assert (body["total"], body["remaining_credit"]) == ("12.00", "12.00")
    assert http.get(f"/api/v1/credit-notes/{body['id']}/").json()["number"] == "CN-cn-1"
