"""The QuickBooks Online sandbox: Intuit's envelopes, rules and errors, then the connector against it."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from connectors.base import (
    AllocationRecord,
    ConflictError,
    CustomerRecord,
    PaymentRecord,
    PushContext,
    UncertainError,
)
from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.connector import QuickBooksConnector
from sandbox import core
from sandbox import quickbooks as qbo
from tests.factories import ConnectionFactory
from tests.sandbox.qbo_realm import REALM, ROOT, RealmApi, books_open, invoice_body


@pytest.fixture
def api(db, client):
    return RealmApi(client)


@pytest.fixture
def books(api):
    return books_open(api)


def fault(answer) -> tuple[int, str, str]:
    error = answer.json()["Fault"]["Error"][0]
    return answer.status_code, error["code"], error["element"]


# --- authentication and platform-wide answers ---------------------------------------------------------
def test_a_request_without_a_token_gets_the_gateways_authentication_fault(db, client):
    answer = client.get(f"{ROOT}/invoice/1")
    assert answer.status_code == 401
    assert answer.json()["fault"]["error"][0]["message"].startswith("message=AuthenticationFailed")


def test_a_token_for_another_company_is_refused(db, client):
    token = core.tokens_issue("quickbooks", "other-realm", "app")["access_token"]
    answer = client.get(f"{ROOT}/invoice/1", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert answer.status_code == 403
    assert "AuthorizationFailed" in answer.json()["fault"]["error"][0]["message"]


def test_the_throttle_and_server_error_answers_have_intuits_shapes():
    throttled = qbo.rate_limited(3.0, qbo.RATE_LIMITS[0])
    assert throttled.status_code == 429 and "Retry-After" not in throttled
    assert json.loads(throttled.content)["Fault"]["Error"][0]["Message"].startswith(
        "message=ThrottleExceeded"
    )
    failed = qbo.server_error()
    assert failed.status_code == 500 and json.loads(failed.content)["Fault"]["type"] == "SystemFault"


def test_the_oauth_callback_carries_the_realm_id(db, client):
    answer = client.post(
        "/sandbox/quickbooks/oauth/authorize",
        {
            "client_id": "app",
            "redirect_uri": "https://app.example/cb",
            "response_type": "code",
            "account": REALM,
        },
    )
    assert answer.status_code == 302
    assert parse_qs(urlsplit(answer["Location"]).query)["realmId"] == [REALM]


def test_the_documented_limits_are_500_a_minute_and_10_at_once():
    assert {(limit.limit, limit.period, limit.concurrent) for limit in qbo.RATE_LIMITS} == {
        (500, 60.0, False),
        (10, 0.0, True),
    }


# --- documents ----------------------------------------------------------------------------------------
def test_creating_an_invoice_answers_the_invoice_envelope_with_tax_and_totals(api, books):
    answer = api.post("invoice", invoice_body(books["customer"]))
    assert answer.status_code == 200
    document = answer.json()
    assert set(document) == {"Invoice", "time"}
    invoice = document["Invoice"]
    assert (invoice["SyncToken"], invoice["TotalAmt"], invoice["Balance"]) == ("0", 120.0, 120.0)
    assert invoice["TxnTaxDetail"]["TotalTax"] == 20.0
    assert invoice["Line"][-1]["DetailType"] == "SubTotalLineDetail"
    assert (invoice["CurrencyRef"], invoice["DueDate"]) == ({"value": "GBP"}, "2025-07-31")
    assert invoice["MetaData"]["CreateTime"] == invoice["MetaData"]["LastUpdatedTime"]


def test_amount_must_equal_quantity_times_price(api, books):
    body = invoice_body(books["customer"])
    body["Line"][0]["Amount"] = 99.0
    assert fault(api.post("invoice", body)) == (400, "6070", "Line[0].Amount")


def test_unknown_properties_and_missing_references_are_refused(api, books):
    assert fault(api.post("invoice", {**invoice_body(books["customer"]), "Colour": "red"})) == (
        400,
        "2010",
        "Colour",
    )
    assert fault(api.post("invoice", invoice_body("999"))) == (400, "2500", "CustomerRef")
    assert fault(api.post("invoice", {"CustomerRef": {"value": books["customer"]}})) == (400, "2020", "Line")


def test_a_sparse_update_bumps_the_sync_token_and_a_stale_one_is_refused(api, books):
    invoice = api.post("invoice", invoice_body(books["customer"])).json()["Invoice"]
    change = {"Id": invoice["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "rush"}
    updated = api.post("invoice", change, operation="update").json()["Invoice"]
    assert (updated["SyncToken"], updated["PrivateNote"], updated["TotalAmt"]) == ("1", "rush", 120.0)
    assert fault(api.post("invoice", {**change, "PrivateNote": "late"})) == (400, "5010", "SyncToken")
    assert api.get(f"invoice/{invoice['Id']}").json()["Invoice"]["PrivateNote"] == "rush"


def test_void_zeroes_the_amounts_and_marks_the_private_note(api, books):
    body = {**invoice_body(books["customer"]), "PrivateNote": "wrong customer"}
    invoice = api.post("invoice", body).json()["Invoice"]
    voided = api.post("invoice", {"Id": invoice["Id"], "SyncToken": "0"}, operation="void").json()["Invoice"]
    assert (voided["TotalAmt"], voided["Balance"], voided["SyncToken"]) == (0, 0, "1")
    assert voided["PrivateNote"] == "Voided - wrong customer"
    assert {line["Amount"] for line in voided["Line"]} == {0}


def test_a_payment_lowers_the_balance_and_is_linked_from_the_invoice(api, books):
    invoice = api.post("invoice", invoice_body(books["customer"])).json()["Invoice"]
    link = [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
    body = {
        "CustomerRef": {"value": books["customer"]},
        "TotalAmt": 50.0,
        "Line": [{"Amount": 50.0, "LinkedTxn": link}],
    }
    payment = api.post("payment", body).json()["Payment"]
    after = api.get(f"invoice/{invoice['Id']}").json()["Invoice"]
    assert (after["Balance"], after["SyncToken"]) == (70.0, "1")
    assert after["LinkedTxn"] == [{"TxnId": payment["Id"], "TxnType": "Payment"}]
    assert fault(api.post("invoice", {"Id": invoice["Id"], "SyncToken": "1"}, operation="void"))[:2] == (
        400,
        "6000",
    )
    voided = api.post(
        "payment", {"Id": payment["Id"], "SyncToken": "0", "sparse": True}, operation="update", include="void"
    ).json()["Payment"]
    assert (voided["TotalAmt"], voided["PrivateNote"]) == (0, "Voided")
    restored = api.get(f"invoice/{invoice['Id']}").json()["Invoice"]
    assert (restored["Balance"], restored["LinkedTxn"]) == (120.0, [])


def test_a_payment_larger_than_the_balance_is_refused(api, books):
    invoice = api.post("invoice", invoice_body(books["customer"])).json()["Invoice"]
    link = [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
    body = {
        "CustomerRef": {"value": books["customer"]},
        "TotalAmt": 500.0,
        "Line": [{"Amount": 500.0, "LinkedTxn": link}],
    }
    assert fault(api.post("payment", body))[:2] == (400, "6000")


def test_a_repeated_requestid_gets_the_first_answer_and_makes_nothing_new(api, books):
    first = api.post("invoice", invoice_body(books["customer"]), requestid="ll-abc")
    again = api.post("invoice", invoice_body(books["customer"], qty=3), requestid="ll-abc")
    assert again.json()["Invoice"] == first.json()["Invoice"]
    assert api.query("SELECT COUNT(*) FROM Invoice") == {"totalCount": 1}


def test_a_customer_name_must_be_unique(api, books):
    answer = api.post("customer", {"DisplayName": "cool cars"})
    assert fault(answer)[:2] == (400, "6240")


def test_a_foreign_currency_invoice_needs_a_customer_in_that_currency(api, books):
    euro = api.post("customer", {"DisplayName": "Diego", "CurrencyRef": {"value": "EUR"}}).json()["Customer"]
    invoice = api.post("invoice", invoice_body(euro["Id"])).json()["Invoice"]
    assert (invoice["CurrencyRef"], invoice["ExchangeRate"], invoice["HomeTotalAmt"]) == (
        {"value": "EUR"},
        0.85,
        102.0,
    )
    wrong = {**invoice_body(books["customer"]), "CurrencyRef": {"value": "EUR"}}
    assert fault(api.post("invoice", wrong)) == (400, "6000", "CurrencyRef")


# --- query and change data capture --------------------------------------------------------------------
def test_queries_filter_order_and_page(api, books):
    for _ in range(5):
        api.post("invoice", invoice_body(books["customer"]))
    page = api.query("SELECT * FROM Invoice ORDERBY Id DESC STARTPOSITION 2 MAXRESULTS 2")
    assert ([row["Id"] for row in page["Invoice"]], page["startPosition"], page["maxResults"]) == (
        ["4", "3"],
        2,
        2,
    )
    assert [row["Id"] for row in api.query("SELECT * FROM Invoice WHERE DocNumber = '1003'")["Invoice"]] == [
        "3"
    ]
    ids = api.query("SELECT Id, DocNumber FROM Invoice WHERE Id IN ('1', '5')")["Invoice"]
    assert ids == [
        {"Id": "1", "DocNumber": "1001", "sparse": True},
        {"Id": "5", "DocNumber": "1005", "sparse": True},
    ]
    assert api.query("SELECT * FROM Invoice WHERE DocNumber = 'nope'") == {}


def test_a_query_the_parser_cannot_read_is_a_4000_fault(api):
    assert fault(api.get("query", query="SELEKT * FROM Invoice"))[:2] == (400, "4000")
    assert fault(api.get("query", query="SELECT * FROM Spaceship"))[:2] == (400, "4001")


def test_cdc_reports_changes_and_deletions_since_a_time(api, books):
    kept = api.post("invoice", invoice_body(books["customer"])).json()["Invoice"]
    gone = api.post("invoice", invoice_body(books["customer"])).json()["Invoice"]
    api.post("invoice", {"Id": gone["Id"], "SyncToken": "0"}, operation="delete")
    since = (timezone.now() - timedelta(minutes=5)).isoformat()
    answer = api.get("cdc", entities="Invoice,Payment", changedSince=since).json()
    (invoices,) = answer["CDCResponse"][0]["QueryResponse"]
    assert [(row["Id"], row.get("status")) for row in invoices["Invoice"]] == [
        (kept["Id"], None),
        (gone["Id"], "Deleted"),
    ]
    assert api.get(f"invoice/{gone['Id']}").status_code == 400
    too_old = (timezone.now() - timedelta(days=31)).isoformat()
    assert fault(api.get("cdc", entities="Invoice", changedSince=too_old))[:2] == (400, "4000")


def test_seeding_makes_invoices_in_every_state_and_currency(api):
    core.seed("quickbooks", REALM)
    core.seed("quickbooks", REALM)  # a second run adds nothing
    invoices = api.query("SELECT * FROM Invoice MAXRESULTS 1000")["Invoice"]
    statuses = {QuickBooksConnector.parse("invoice", row).status for row in invoices}
    assert statuses == {"open", "partially_paid", "paid", "void"}
    assert {row["CurrencyRef"]["value"] for row in invoices} == {"GBP", "EUR", "USD", "JPY"}
    assert len(invoices) == 19  # one of 20 deleted
    assert api.query("SELECT COUNT(*) FROM CreditMemo") == {"totalCount": 2}


# --- the connector against the sandbox over real HTTP -------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_the_connector_reads_writes_pays_and_voids_against_the_sandbox(live_server):
    core.seed("quickbooks", REALM)
    connection = ConnectionFactory(
        platform="quickbooks",
        base_url=f"{live_server.url}/sandbox/quickbooks/v3",
        credentials={
            "token": core.tokens_issue("quickbooks", REALM, "app"),
            "client_id": "a",
            "client_secret": "b",
        },
        options={"realmId": REALM, "home_currency": "GBP"},
    )
    connector = QuickBooksConnector(connection)
    connector.check_credentials()
    started = timezone.now() - timedelta(seconds=5)

    page = connector.list_changes("invoice", since=None)
    assert len(page.changes) == 19 and not any(change.problem for change in page.changes)
    assert {change.record.status for change in page.changes} >= {"paid", "partially_paid", "void"}

    new_customer = connector.render("customer", CustomerRecord(name="Ledgerlink Ltd"), PushContext())
    customer = connector.create("customer", new_customer, idempotency_key="c-1")
    items = {row["name"]: row["id"] for row in connector.reference_data("items")}
    taxes = {row["name"]: row["id"] for row in connector.reference_data("tax_codes")}
    source = QuickBooksConnector.parse("invoice", connector.fetch("invoice", "1").raw)
    context = PushContext(
        reference="LL-INV-0001",
        customer_id=customer.external_id,
        lines=tuple({"item": items["Services"], "tax_code": taxes["20.0% S"]} for _ in source.lines),
    )
    payload = connector.render("invoice", source, context)
    made = connector.create("invoice", payload, idempotency_key="inv-1")
    assert (made.number, made.status) == ("LL-INV-0001", "open")
    assert connector.find_by_reference("invoice", "LL-INV-0001").external_id == made.external_id

    paid = connector.fetch("invoice", made.external_id).record
    payment = PaymentRecord(
        external_id="ch_1",
        reference="ch_1",
        customer=None,
        transaction_date=paid.issue_date,
        currency="GBP",
        amount=Decimal("10.00"),
        allocations=(AllocationRecord(invoice_number="LL-INV-0001", amount=Decimal("10.00")),),
    )
    pay_context = PushContext(
        reference="ch_1", customer_id=customer.external_id, invoice_ids={"LL-INV-0001": made.external_id}
    )
    receipt = connector.record_payment(payment, pay_context, idempotency_key="pay-1")
    after = connector.fetch("invoice", made.external_id)
    assert after.record.status == "partially_paid" and after.record.amount_paid == Decimal("10.00")

    with pytest.raises(ConflictError):
        connector.update(
            "invoice", made.external_id, {"PrivateNote": "x"}, remote_version="0", idempotency_key="u"
        )
    connector.void(
        "payment", receipt.external_id, remote_version=receipt.remote_version, idempotency_key="vp"
    )
    voided = connector.void("invoice", made.external_id, remote_version="", idempotency_key="vi")
    assert voided.status == "void"

    recent = connector.list_changes("invoice", since=started)
    assert made.external_id in {change.external_id for change in recent.changes}
    assert [c.record.status for c in recent.changes if c.external_id == made.external_id] == ["void"]
    payments = connector.list_changes("payment", since=started).changes
    ours = [change.record for change in payments if change.external_id == receipt.external_id]
    assert [(record.status, record.allocations[0].invoice_number) for record in ours] == [
        ("void", "LL-INV-0001")
    ]


@pytest.mark.django_db(transaction=True)
def test_a_write_whose_answer_is_lost_is_uncertain_and_its_repeat_is_answered_from_the_first(live_server):
    qbo._reference_data(REALM)
    connection = ConnectionFactory(
        platform="quickbooks",
        base_url=f"{live_server.url}/sandbox/quickbooks/v3",
        credentials={
            "token": core.tokens_issue("quickbooks", REALM, "app"),
            "client_id": "a",
            "client_secret": "b",
        },
        options={"realmId": REALM},
    )
    connector = QuickBooksConnector(connection)
    connector.client = QuickBooksClient(connection, sleep=lambda seconds: None)
    connector.client.timeout = (5.0, 0.5)
    core.fault_add("quickbooks", "lost_response", method="POST", path="customer$", delay_ms=1500)
    payload = {"DisplayName": "Lost and found"}
    with pytest.raises(UncertainError):
        connector.create("customer", payload, idempotency_key="cust-1")
    again = connector.create("customer", payload, idempotency_key="cust-1")
    assert again.number == "Lost and found"
    assert connector.find_by_reference("customer", "Lost and found").external_id == again.external_id
    time.sleep(1.5)  # let the held-back answer leave the server before the test database goes away
