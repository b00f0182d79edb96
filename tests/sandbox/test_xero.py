"""The Xero sandbox: Xero's envelopes, paging, filters, per-element errors, idempotency, balances and
void/delete rules, its error and 429 shapes; then the connector against it over real HTTP."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import time_machine

from connectors.base import (
    AllocationRecord,
    ConflictError,
    CreditNoteRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    PaymentRecord,
    PushContext,
    RateLimit,
    RemoteRef,
    ValidationError,
)
from connectors.xero.client import XeroClient
from connectors.xero.connector import XeroConnector
from sandbox import core
from sandbox import xero as sandbox_xero
from sandbox.models import SandboxCounter, SandboxHit, SandboxRecord
from tests.factories import ConnectionFactory

TENANT = sandbox_xero.DEFAULT_ACCOUNT
API = "/sandbox/xero/api.xro/2.0"
D = Decimal
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Api:
    """Requests to the sandbox as one organisation, with a bearer token it issued."""

    def __init__(self, client, token: str, tenant: str = TENANT) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": tenant}

    def get(self, path: str, headers: dict | None = None, **params):
        query = f"?{urlencode(params)}" if params else ""
        return self.client.get(f"{API}/{path}{query}", headers={**self.headers, **(headers or {})})

    def send(self, method: str, path: str, body: dict, headers: dict | None = None, **params):
        query = f"?{urlencode(params)}" if params else ""
        call = getattr(self.client, method.lower())
        return call(
            f"{API}/{path}{query}",
            json.dumps(body),
            content_type="application/json",
            headers={**self.headers, **(headers or {})},
        )

    def ok(self, response) -> dict:
        assert response.status_code == 200, response.content
        return response.json()

    def invoices(self, **params) -> list[dict]:
        return self.ok(self.get("Invoices", page=1, where='Type=="ACCREC"', **params))["Invoices"]

    def invoice(self, status: str, *, paid: bool = False) -> dict:
        return next(
            i
            for i in self.invoices()
            if i["Status"] == status and (i["AmountPaid"] > 0) == paid and not i["CreditNotes"]
        )


@pytest.fixture
def api(db, client):
    with time_machine.travel(START, tick=False):
        core.seed("xero", TENANT)
        token = core.tokens_issue("xero", TENANT, "app")["access_token"]
    with time_machine.travel(START + timedelta(minutes=10), tick=False):
        yield Api(client, token)


def new_invoice(contact_id: str, **changes) -> dict:
    invoice = {
        "Type": "ACCREC",
        "Contact": {"ContactID": contact_id},
        "Date": "2026-03-02",
        "DueDate": "2026-04-01",
        "CurrencyCode": "GBP",
        "Reference": "LL-1",
        "Status": "AUTHORISED",
        "LineItems": [
            {
                "Description": "Olive oil 5L",
                "Quantity": 2,
                "UnitAmount": 38.5,
                "AccountCode": "200",
                "TaxType": "OUTPUT2",
            }
        ],
    }
    invoice.update(changes)
    return invoice


def a_contact(api: Api) -> str:
    return api.ok(api.get("Contacts"))["Contacts"][0]["ContactID"]


# --- auth and shapes --------------------------------------------------------------------------------
def test_without_a_token_the_answer_is_xeros_401(db, client):
    answer = client.get(f"{API}/Invoices", headers={"xero-tenant-id": TENANT})
    assert answer.status_code == 401
    assert answer.json()["Detail"] == "AuthenticationUnsuccessful"
    assert "Bearer" in answer.headers["WWW-Authenticate"]


@pytest.mark.parametrize("tenant", ["", "0c6f7e8d-1a2b-4c3d-9e8f-7a6b5c4d3e2f"])
def test_a_missing_or_foreign_tenant_is_forbidden(api, tenant):
    answer = Api(api.client, api.headers["Authorization"][7:], tenant).get("Invoices")
    assert answer.status_code == 403
    assert answer.json()["Detail"] == "AuthorizationUnsuccessful"


def test_the_identity_service_lists_the_tokens_organisation(api):
    answer = api.client.get(
        "/sandbox/xero/connections", headers={"Authorization": api.headers["Authorization"]}
    )
    (tenant,) = answer.json()
    assert (tenant["tenantId"], tenant["tenantType"]) == (TENANT, "ORGANISATION")


def test_a_page_comes_in_xeros_envelope_with_ms_json_dates_and_limit_headers(api):
    answer = api.get("Invoices", page=1, pageSize=5, where='Type=="ACCREC"')
    body = api.ok(answer)
    assert {"Id", "Status", "ProviderName", "DateTimeUTC", "pagination", "Invoices"} <= set(body)
    assert body["pagination"] == {"page": 1, "pageSize": 5, "pageCount": 4, "itemCount": 20}
    first = body["Invoices"][0]
    assert first["Date"].startswith("/Date(") and first["UpdatedDateUTC"].endswith("+0000)/")
    assert first["LineItems"]
    assert int(answer.headers["X-MinLimit-Remaining"]) < 60
    assert int(answer.headers["X-DayLimit-Remaining"]) < 5000


def test_the_seed_has_every_state_four_currencies_and_a_bill_the_sales_filter_hides(api):
    everything = api.ok(api.get("Invoices", page=1))["Invoices"]
    sales = api.invoices()
    assert len(everything) == 21 and len(sales) == 20
    assert {i["Status"] for i in sales} == {"DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED", "DELETED"}
    assert {i["CurrencyCode"] for i in sales} == {"GBP", "EUR", "USD", "JPY"}
    assert {i["LineAmountTypes"] for i in sales} == {"Exclusive", "Inclusive", "NoTax"}
    assert len(api.ok(api.get("Payments"))["Payments"]) == 8
    notes = api.ok(api.get("CreditNotes"))["CreditNotes"]
    assert [n["Status"] for n in notes] == ["AUTHORISED", "AUTHORISED", "DRAFT"]


def test_the_seed_is_the_same_every_time(db):
    def snapshot() -> list:
        return sorted(
            (r.data.get("InvoiceNumber"), r.data["Total"], r.data["Status"], r.data["ContactID"])
            for r in SandboxRecord.objects.filter(platform="xero", kind="invoice")
        )

    core.seed("xero", TENANT)
    first = snapshot()
    SandboxRecord.objects.filter(platform="xero").delete()
    SandboxCounter.objects.filter(platform="xero").delete()
    core.seed("xero", TENANT)
    assert snapshot() == first


def test_without_a_page_line_items_are_left_out_as_xero_does(api):
    invoices = api.ok(api.get("Invoices"))["Invoices"]
    assert "pagination" not in api.ok(api.get("Invoices"))
    assert all("LineItems" not in invoice for invoice in invoices)


def test_where_order_and_id_filters(api):
    paid = api.ok(api.get("Invoices", where='Type=="ACCREC" AND Status=="PAID"', order="Total DESC", page=1))
    totals = [i["Total"] for i in paid["Invoices"]]
    assert len(totals) == 5 and totals == sorted(totals, reverse=True)
    target = paid["Invoices"][0]
    by_number = api.ok(api.get("Invoices", InvoiceNumbers=target["InvoiceNumber"]))["Invoices"]
    by_guid = api.ok(api.get("Invoices", where=f'InvoiceID==Guid("{target["InvoiceID"]}")'))["Invoices"]
    either = api.ok(
        api.get("Invoices", where=f'(Status=="VOIDED" OR InvoiceNumber=="{target["InvoiceNumber"]}")')
    )
    assert [i["InvoiceID"] for i in by_number] == [i["InvoiceID"] for i in by_guid] == [target["InvoiceID"]]
    assert len(either["Invoices"]) == 2


def test_a_where_filter_it_cannot_read_is_a_query_parse_exception(api):
    answer = api.get("Invoices", where='Type=="ACCREC" AND')
    assert answer.status_code == 400
    assert answer.json()["Type"] == "QueryParseException"


def test_if_modified_since_returns_only_what_changed_since(api):
    created = api.ok(api.send("PUT", "Invoices", {"Invoices": [new_invoice(a_contact(api))]}))["Invoices"][0]
    since = (START + timedelta(minutes=5)).isoformat()
    changed = api.ok(api.get("Invoices", headers={"If-Modified-Since": since}, page=1))["Invoices"]
    assert [i["InvoiceID"] for i in changed] == [created["InvoiceID"]]


def test_an_unknown_invoice_is_xeros_404_text(api):
    answer = api.get("Invoices/6a1f9a6e-0000-4000-8000-000000000000")
    assert answer.status_code == 404
    assert answer.content == b"The resource you're looking for cannot be found"


# --- creating -------------------------------------------------------------------------------------------
def test_a_created_invoice_has_its_totals_number_and_tax_worked_out(api):
    answer = api.ok(api.send("PUT", "Invoices", {"Invoices": [new_invoice(a_contact(api))]}, unitdp=4))
    (invoice,) = answer["Invoices"]
    assert invoice["InvoiceNumber"] == "INV-0021"
    assert (invoice["SubTotal"], invoice["TotalTax"], invoice["Total"], invoice["AmountDue"]) == (
        77.0,
        15.4,
        92.4,
        92.4,
    )
    assert invoice["StatusAttributeString"] == "OK" and invoice["HasErrors"] is False


def test_inclusive_lines_hold_their_tax(api):
    element = new_invoice(a_contact(api), LineAmountTypes="Inclusive")
    element["LineItems"][0]["UnitAmount"] = 60
    (invoice,) = api.ok(api.send("PUT", "Invoices", {"Invoices": [element]}))["Invoices"]
    assert (invoice["SubTotal"], invoice["TotalTax"], invoice["Total"]) == (100.0, 20.0, 120.0)


def test_with_summarize_errors_false_each_element_stands_alone(api):
    contact = a_contact(api)
    elements = [
        new_invoice(contact, Reference="ok"),
        new_invoice(contact, InvoiceNumber="INV-0001"),
        new_invoice(
            contact, LineItems=[{"Description": "x", "Quantity": 1, "UnitAmount": 1, "AccountCode": "999"}]
        ),
    ]
    answer = api.ok(api.send("PUT", "Invoices", {"Invoices": elements}, summarizeErrors="false"))
    ok, duplicate, bad_account = answer["Invoices"]
    assert ok["StatusAttributeString"] == "OK"
    assert duplicate["HasErrors"] and duplicate["ValidationErrors"] == [
        {"Message": "Invoice # must be unique."}
    ]
    assert duplicate["InvoiceID"] == "00000000-0000-0000-0000-000000000000"
    assert bad_account["ValidationErrors"][0]["Message"].startswith("Account code '999' is not a valid code")
    assert len(api.invoices()) == 21


def test_by_default_one_bad_element_refuses_the_whole_request(api):
    contact = a_contact(api)
    elements = [new_invoice(contact), new_invoice(contact, CurrencyCode="ZZZ")]
    answer = api.send("PUT", "Invoices", {"Invoices": elements})
    assert answer.status_code == 400
    body = answer.json()
    assert (body["ErrorNumber"], body["Type"]) == (10, "ValidationException")
    assert body["Elements"][0]["ValidationErrors"] == [
        {"Message": "Organisation is not subscribed to currency ZZZ"}
    ]
    assert len(api.invoices()) == 20


def test_an_idempotency_key_replays_the_first_answer_and_refuses_another_body(api):
    body = {"Invoices": [new_invoice(a_contact(api))]}
    first = api.ok(api.send("PUT", "Invoices", body, headers={"Idempotency-Key": "k-1"}))
    again = api.ok(api.send("PUT", "Invoices", body, headers={"Idempotency-Key": "k-1"}))
    assert first == again
    assert len(api.invoices()) == 21
    other = api.send(
        "PUT",
        "Invoices",
        {"Invoices": [new_invoice(a_contact(api), Reference="other")]},
        headers={"Idempotency-Key": "k-1"},
    )
    assert other.status_code == 400
    too_long = api.send("PUT", "Invoices", body, headers={"Idempotency-Key": "k" * 129})
    assert too_long.status_code == 400


def test_a_contact_given_by_name_is_found_or_created(api):
    known = api.ok(api.get("Contacts"))["Contacts"][0]
    elements = [
        new_invoice("", Contact={"Name": known["Name"]}),
        new_invoice("", Contact={"Name": "New Shop Ltd"}),
    ]
    first, second = api.ok(api.send("PUT", "Invoices", {"Invoices": elements}))["Invoices"]
    assert first["Contact"]["ContactID"] == known["ContactID"]
    assert second["Contact"]["Name"] == "New Shop Ltd"


def test_contacts_are_created_once_per_name(api):
    answer = api.ok(
        api.send("PUT", "Contacts", {"Contacts": [{"Name": "Fresh Co", "ContactNumber": "LL-9"}]})
    )
    assert answer["Contacts"][0]["ContactNumber"] == "LL-9"
    found = api.ok(api.get("Contacts", where='ContactNumber=="LL-9"'))["Contacts"]
    assert [c["Name"] for c in found] == ["Fresh Co"]
    again = api.send("PUT", "Contacts", {"Contacts": [{"Name": "fresh co"}]})
    assert again.status_code == 400
    assert (
        "already assigned to another contact" in again.json()["Elements"][0]["ValidationErrors"][0]["Message"]
    )


def test_archived_contacts_show_only_when_asked_for(api):
    active = api.ok(api.get("Contacts"))["Contacts"]
    everyone = api.ok(api.get("Contacts", includeArchived="true"))["Contacts"]
    assert len(everyone) == len(active) + 1


# --- payments, credit, void and delete ------------------------------------------------------------------
def pay(api: Api, invoice_id: str, amount, **params):
    element = {
        "Invoice": {"InvoiceID": invoice_id},
        "Account": {"Code": "090"},
        "Date": "2026-03-02",
        "Amount": amount,
    }
    return api.send("PUT", "Payments", {"Payments": [element]}, **params)


def test_payments_move_the_balance_until_the_invoice_is_paid(api):
    invoice = api.invoice("AUTHORISED")
    total = D(str(invoice["Total"]))
    part = api.ok(pay(api, invoice["InvoiceID"], 10))["Payments"][0]
    assert (part["PaymentType"], part["Status"], part["Invoice"]["AmountPaid"]) == (
        "ACCRECPAYMENT",
        "AUTHORISED",
        10.0,
    )
    rest = float(total - 10)
    api.ok(pay(api, invoice["InvoiceID"], rest))
    after = api.ok(api.get(f"Invoices/{invoice['InvoiceID']}"))["Invoices"][0]
    assert (after["Status"], after["AmountDue"], after["AmountPaid"]) == ("PAID", 0.0, float(total))
    assert after["FullyPaidOnDate"] and len(after["Payments"]) == 2


def test_a_payment_above_what_is_owed_or_on_a_draft_is_refused(api):
    invoice = api.invoice("AUTHORISED")
    too_much = pay(api, invoice["InvoiceID"], invoice["AmountDue"] + 1)
    assert too_much.status_code == 400
    message = too_much.json()["Elements"][0]["ValidationErrors"][0]["Message"]
    assert message == "Payment amount exceeds the amount outstanding on this document"
    per_item = api.ok(pay(api, api.invoice("DRAFT")["InvoiceID"], 1, summarizeErrors="false"))["Payments"][0]
    assert per_item["HasValidationErrors"] is True
    assert (
        per_item["ValidationErrors"][0]["Message"] == "Payments can only be made against Authorised documents"
    )


def test_deleting_a_payment_gives_the_balance_back(api):
    invoice = api.invoice("PAID", paid=True)
    payment_id = invoice["Payments"][0]["PaymentID"]
    deleted = api.ok(api.send("POST", f"Payments/{payment_id}", {"Status": "DELETED"}))["Payments"][0]
    assert deleted["Status"] == "DELETED"
    after = api.ok(api.get(f"Invoices/{invoice['InvoiceID']}"))["Invoices"][0]
    assert (after["Status"], after["AmountPaid"], after["AmountDue"]) == ("AUTHORISED", 0.0, invoice["Total"])
    twice = api.send("POST", f"Payments/{payment_id}", {"Status": "DELETED"})
    assert twice.status_code == 400


def status(api: Api, invoice: dict, target: str):
    return api.send("POST", f"Invoices/{invoice['InvoiceID']}", {"Invoices": [{"Status": target}]})


def test_an_approved_invoice_without_payments_is_voided_and_owes_nothing(api):
    voided = api.ok(status(api, api.invoice("AUTHORISED"), "VOIDED"))["Invoices"][0]
    assert (voided["Status"], voided["AmountDue"]) == ("VOIDED", 0.0)


@pytest.mark.parametrize(
    ("pick", "target", "message"),
    [
        (lambda api: api.invoice("PAID", paid=True), "VOIDED", "is PAID and cannot be modified"),
        (lambda api: api.invoice("DRAFT"), "VOIDED", "Only an AUTHORISED invoice can be voided"),
        (
            lambda api: api.invoice("AUTHORISED"),
            "DELETED",
            "Only a DRAFT or SUBMITTED invoice can be deleted",
        ),
        (lambda api: api.invoice("VOIDED"), "DELETED", "is VOIDED and cannot be modified"),
    ],
)
def test_xeros_void_and_delete_rules(api, pick, target, message):
    answer = status(api, pick(api), target)
    assert answer.status_code == 400
    assert message in answer.json()["Elements"][0]["ValidationErrors"][0]["Message"]


def test_a_partly_paid_invoice_cannot_be_voided_or_edited(api):
    invoice = api.invoice("AUTHORISED", paid=True)
    assert (
        "has payments"
        in status(api, invoice, "VOIDED").json()["Elements"][0]["ValidationErrors"][0]["Message"]
    )
    edit = api.send("POST", f"Invoices/{invoice['InvoiceID']}", {"Invoices": [{"Reference": "changed"}]})
    assert edit.status_code == 400


def test_a_draft_is_deleted_and_an_approved_one_edited(api):
    assert api.ok(status(api, api.invoice("DRAFT"), "DELETED"))["Invoices"][0]["Status"] == "DELETED"
    invoice = api.invoice("AUTHORISED")
    edited = api.ok(
        api.send("POST", f"Invoices/{invoice['InvoiceID']}", {"Invoices": [{"Reference": "PO-9"}]})
    )
    assert edited["Invoices"][0]["Reference"] == "PO-9"


def test_a_credit_note_is_allocated_until_it_is_used_up(api):
    note = api.ok(api.get("CreditNotes"))["CreditNotes"][1]
    invoice = next(
        i
        for i in api.invoices()
        if i["Status"] == "AUTHORISED"
        and i["Contact"]["ContactID"] == note["Contact"]["ContactID"]
        and i["CurrencyCode"] == note["CurrencyCode"]
        and i["AmountDue"] >= note["RemainingCredit"]
    )
    half = round(note["RemainingCredit"] / 2, 2)
    body = {
        "Allocations": [
            {"Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Amount": half, "Date": "2026-03-02"}
        ]
    }
    (allocation,) = api.ok(api.send("PUT", f"CreditNotes/{note['CreditNoteID']}/Allocations", body))[
        "Allocations"
    ]
    assert allocation["Invoice"]["InvoiceID"] == invoice["InvoiceID"]
    after = api.ok(api.get(f"CreditNotes/{note['CreditNoteID']}"))["CreditNotes"][0]
    assert after["RemainingCredit"] == round(note["RemainingCredit"] - half, 2)
    credited = api.ok(api.get(f"Invoices/{invoice['InvoiceID']}"))["Invoices"][0]
    assert credited["AmountCredited"] == half
    body["Allocations"][0]["Amount"] = note["RemainingCredit"]
    too_much = api.send("PUT", f"CreditNotes/{note['CreditNoteID']}/Allocations", body)
    assert too_much.status_code == 400


def test_settings_and_the_organisation_are_readable(api):
    assert {a["Code"] for a in api.ok(api.get("Accounts"))["Accounts"]} >= {"090", "200"}
    assert {t["TaxType"] for t in api.ok(api.get("TaxRates"))["TaxRates"]} >= {"OUTPUT2", "NONE"}
    assert api.ok(api.get("Items"))["Items"][0]["Code"]
    assert api.ok(api.get("Organisation"))["Organisations"][0]["BaseCurrency"] == "GBP"


# --- limits and faults ------------------------------------------------------------------------------
def test_the_minute_limit_answers_429_naming_its_problem(api, monkeypatch):
    monkeypatch.setattr(sandbox_xero, "RATE_LIMITS", (RateLimit("minute", 2, 60.0),))
    codes = [api.get("Organisation").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = api.get("Organisation")
    assert refused.headers["X-Rate-Limit-Problem"] == "minute"
    assert 1 <= int(refused.headers["Retry-After"]) <= 120  # a minute window, counted conservatively
    assert refused.headers["X-MinLimit-Remaining"] == "0"


def test_the_day_limit_answers_429_with_a_long_retry_after(api, monkeypatch):
    monkeypatch.setattr(sandbox_xero, "RATE_LIMITS", (RateLimit("day", 1, 86400.0),))
    assert api.get("Organisation").status_code == 200
    refused = api.get("Organisation")
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "day"
    assert int(refused.headers["Retry-After"]) > 3600
    assert refused.headers["X-DayLimit-Remaining"] == "0"


def test_an_injected_outage_is_a_503(api):
    core.fault_add("xero", "server_error", path="Invoices")
    answer = api.get("Invoices")
    assert answer.status_code == 503
    assert api.get("Invoices").status_code == 200


# --- the connector against the sandbox over real HTTP ---------------------------------------------------
def gbp_invoice(number: str, quantity: int = 2) -> InvoiceRecord:
    line = LineRecord(
        description="Olive oil 5L",
        quantity=D(quantity),
        unit_price=D("38.50"),
        subtotal=D("38.50") * quantity,
        tax_amount=D("7.70") * quantity,
        total=D("46.20") * quantity,
        tax_rate=D(20),
    )
    return InvoiceRecord(
        external_id=f"shop-{number}",
        number=number,
        customer=CustomerRecord(name="Trattoria Bella"),
        issue_date=date(2026, 3, 2),
        due_date=date(2026, 4, 1),
        currency="GBP",
        status="open",
        lines=(line,),
        subtotal=line.subtotal,
        tax_total=line.tax_amount,
        total=line.total,
        amount_paid=D(0),
        amount_due=line.total,
    )


@pytest.mark.django_db(transaction=True)
def test_the_connector_round_trip_against_the_sandbox(live_server):
    core.seed("xero", TENANT)
    connection = ConnectionFactory(
        platform="xero",
        base_url=f"{live_server.url}/sandbox/xero/api.xro/2.0",
        credentials={
            "client_id": "app",
            "client_secret": "secret",
            "token": core.tokens_issue("xero", TENANT, "app"),
        },
    )
    connector = XeroConnector(connection)
    connector.after_authorisation()
    assert connection.options["tenant_id"] == TENANT
    connector.check_credentials()

    page = connector.list_changes("invoice", since=None)
    assert len(page.changes) == 20 and page.next_page is None
    assert not [change.problem for change in page.changes if change.problem]
    statuses = {change.record.status for change in page.changes}
    assert statuses == {"draft", "open", "partially_paid", "paid", "void", "deleted"}
    assert len(connector.list_changes("payment", since=None).changes) == 8
    customers = connector.list_changes("customer", since=None).changes
    bella = next(c.record for c in customers if c.record.name == "Trattoria Bella")

    context = PushContext(
        reference="LL-INV-5001",
        number="SHOP-5001",
        customer_id=bella.external_id,
        lines=({"account": "200", "tax_code": "OUTPUT2"},),
    )
    payload = XeroConnector.render("invoice", gbp_invoice("5001"), context)
    bad = {**payload, "InvoiceNumber": "SHOP-5002", "Reference": "LL-INV-5002"}
    bad["LineItems"] = [{**payload["LineItems"][0], "AccountCode": "999"}]
    made, refused = connector.create_many("invoice", [payload, bad], idempotency_key="push-5001")
    assert isinstance(made, RemoteRef) and made.number == "SHOP-5001" and made.status == "open"
    assert isinstance(refused, ValidationError) and (refused.field, refused.value) == ("AccountCode", "999")
    # a retry of the same batch replays Xero's answer instead of creating twice
    again = connector.create_many("invoice", [payload, bad], idempotency_key="push-5001")
    assert again[0].external_id == made.external_id
    assert connector.find_by_reference("invoice", "LL-INV-5001").external_id == made.external_id
    assert connector.find_by_reference("invoice", "SHOP-5001").external_id == made.external_id
    fetched = connector.fetch("invoice", made.external_id).record
    assert (fetched.total, fetched.tax_total, fetched.amount_due) == (D("92.40"), D("15.40"), D("92.40"))

    deposit = PushContext(reference="LL-PAY-1", deposit_account="090", invoice_ids={"5001": made.external_id})
    part = PaymentRecord(
        external_id="ch_1",
        reference="ch_1",
        customer=None,
        transaction_date=date(2026, 3, 3),
        currency="GBP",
        amount=D("40.00"),
        allocations=(AllocationRecord("5001", D("40.00")),),
    )
    paid = connector.record_payment(part, deposit, idempotency_key="pay-1")
    assert paid.status == "completed"
    assert connector.fetch("invoice", made.external_id).record.status == "partially_paid"
    assert connector.find_by_reference("payment", "LL-PAY-1").external_id == paid.external_id
    rest = PaymentRecord(
        **{**part.__dict__, "amount": D("52.40"), "allocations": (AllocationRecord("5001", D("52.40")),)}
    )
    connector.record_payment(
        rest,
        PushContext(reference="LL-PAY-2", deposit_account="090", invoice_ids={"5001": made.external_id}),
        idempotency_key="pay-2",
    )
    assert connector.fetch("invoice", made.external_id).record.status == "paid"
    with pytest.raises(ValidationError):
        connector.void("invoice", made.external_id, remote_version="", idempotency_key="void-paid")
    connector.void("payment", paid.external_id, remote_version="", idempotency_key="unpay-1")
    back = connector.fetch("invoice", made.external_id).record
    assert (back.status, back.amount_due) == ("partially_paid", D("40.00"))

    open_one = next(
        c for c in page.changes if c.record and c.record.status == "open" and c.record.currency == "GBP"
    )
    with pytest.raises(ConflictError):
        connector.update(
            "invoice",
            open_one.external_id,
            {"Reference": "x"},
            remote_version="2020-01-01T00:00:00+00:00",
            idempotency_key="upd-stale",
        )
    current = connector.fetch("invoice", open_one.external_id)
    updated = connector.update(
        "invoice",
        open_one.external_id,
        {"Reference": "PO-NEW"},
        remote_version=current.remote_version,
        idempotency_key="upd-1",
    )
    voided = connector.void(
        "invoice", open_one.external_id, remote_version=updated.remote_version, idempotency_key="void-1"
    )
    assert voided.status == "void"
    draft = next(c for c in page.changes if c.record and c.record.status == "draft")
    assert (
        connector.void("invoice", draft.external_id, remote_version="", idempotency_key="void-2").status
        == "deleted"
    )

    note = next(
        c for c in connector.list_changes("credit_note", since=None).changes if c.record.status == "open"
    )
    target = next(
        c.record
        for c in connector.list_changes("invoice", since=None).changes
        if c.record
        and c.record.status == "open"
        and c.record.customer.external_id == note.record.customer.external_id
        and c.record.currency == note.record.currency
    )
    credit = CreditNoteRecord(
        **{
            **note.record.__dict__,
            "allocations": (AllocationRecord(target.number, D("5.00"), date(2026, 3, 4)),),
        }
    )
    (allocation,) = connector.allocate_credit_note(
        note.external_id,
        credit,
        PushContext(invoice_ids={target.number: target.external_id}),
        idempotency_key="cn-1",
    )
    assert allocation.number == target.number
    assert connector.fetch("credit_note", note.external_id).record.status == "partially_applied"

    later = connector.list_changes("invoice", since=page.high_water)
    assert made.external_id in {change.external_id for change in later.changes}


@pytest.mark.django_db(transaction=True)
def test_connect_goes_through_consent_and_picks_the_organisation(client, live_server):
    from django.apps import apps
    from django.contrib.auth.models import Group

    from sync import roles
    from tests.factories import UserFactory

    roles.apply_roles(apps)
    user = UserFactory()
    user.groups.add(Group.objects.get(name=roles.INTEGRATION_ADMINS))
    client.force_login(user)
    root = f"{live_server.url}/sandbox/xero"
    connection = ConnectionFactory(
        platform="xero",
        base_url=f"{root}/api.xro/2.0",
        credentials={"client_id": "app-1", "client_secret": "s3cret"},
        options={"oauth_authorize_url": f"{root}/oauth/authorize", "oauth_token_url": f"{root}/oauth/token"},
    )
    start = client.post(f"/connectors/{connection.pk}/connect/")
    consent = urlsplit(start["Location"])
    query = {key: values[0] for key, values in parse_qs(consent.query).items()}
    assert "accounting.invoices" in query["scope"].split() and "offline_access" in query["scope"].split()
    allowed = client.post(consent.path, {**query, "account": TENANT})
    callback = urlsplit(allowed["Location"])
    assert client.get(f"{callback.path}?{callback.query}").status_code == 302
    connection.refresh_from_db()
    assert connection.options["tenant_id"] == TENANT
    assert connection.options["tenant_name"] == sandbox_xero.ORGANISATION_NAME


@pytest.mark.django_db(transaction=True)
def test_a_create_whose_answer_is_lost_is_retried_under_its_key_and_made_once(live_server):
    core.seed("xero", TENANT)
    connection = ConnectionFactory(
        platform="xero",
        base_url=f"{live_server.url}/sandbox/xero/api.xro/2.0",
        credentials={
            "client_id": "a",
            "client_secret": "b",
            "token": core.tokens_issue("xero", TENANT, "app"),
        },
        options={"tenant_id": TENANT},
    )
    connector = XeroConnector(connection)
    connector.client = XeroClient(connection, sleep=lambda seconds: None)
    connector.client.timeout = (5.0, 0.5)
    contact = connector.list_changes("customer", since=None).changes[0].external_id
    core.fault_add("xero", "lost_response", method="PUT", path="Invoices$", delay_ms=1500)
    context = PushContext(
        reference="LL-LOST-1", customer_id=contact, lines=({"account": "200", "tax_code": "OUTPUT2"},)
    )
    made = connector.create(
        "invoice", XeroConnector.render("invoice", gbp_invoice("7001"), context), idempotency_key="lost-1"
    )
    assert connector.find_by_reference("invoice", "LL-LOST-1").external_id == made.external_id
    matching = connector.client.get("Invoices", params={"where": 'Reference=="LL-LOST-1"'})["Invoices"]
    assert len(matching) == 1
    # the lost request and its repeat reached the sandbox; the repeat was answered from the first
    assert SandboxHit.objects.filter(platform="xero", method="PUT").count() == 2
    time.sleep(1.5)  # let the held-back answer leave the server before the test database goes away
