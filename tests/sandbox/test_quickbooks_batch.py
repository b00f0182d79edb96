"""The QuickBooks sandbox's batch endpoint: each item created or refused on its own, a requestid replays
the whole answer, at most 30 items and 40 batch requests a minute; then the connector against it."""

from __future__ import annotations

import time

import pytest

from connectors.base import RateLimit, RemoteRef, UncertainError, ValidationError
from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.connector import QuickBooksConnector
from sandbox import core
from sandbox import quickbooks as qbo
from sandbox.models import SandboxHit
from tests.factories import ConnectionFactory
from tests.sandbox.qbo_realm import REALM, RealmApi, books_open, invoice_body


@pytest.fixture
def api(db, client):
    return RealmApi(client)


@pytest.fixture
def books(api):
    return books_open(api)


def create(bid: str, entity: str, body: dict) -> dict:
    return {"bId": bid, "operation": "create", entity: body}


def item_fault(item: dict) -> tuple[str, str]:
    error = item["Fault"]["Error"][0]
    return error["code"], error["element"]


# --- the endpoint ---------------------------------------------------------------------------------------
def test_good_items_are_created_and_bad_ones_answer_a_fault_in_their_place(api, books):
    customer = books["customer"]
    answer = api.batch(
        [
            create("a", "Invoice", invoice_body(customer)),
            create("b", "Invoice", invoice_body(customer, amount=99.0)),  # Amount != Qty x UnitPrice
            create("c", "Customer", {"DisplayName": "Tanaka Trading"}),
            create("d", "Invoice", invoice_body("999")),  # no such customer
            {"bId": "e", "operation": "update", "Invoice": {"Id": "1", "SyncToken": "0"}},
            {"bId": "f", "Query": "SELECT * FROM Invoice"},
            create("g", "Customer", {"DisplayName": "cool cars"}),  # the name is taken
        ]
    )
    assert answer.status_code == 200
    document = answer.json()
    assert set(document) == {"BatchItemResponse", "time"}
    items = document["BatchItemResponse"]
    assert [item["bId"] for item in items] == ["a", "b", "c", "d", "e", "f", "g"]

    made = items[0]["Invoice"]
    assert (made["SyncToken"], made["TotalAmt"], made["TxnTaxDetail"]["TotalTax"]) == ("0", 120.0, 20.0)
    assert item_fault(items[1]) == ("6070", "Line[0].Amount")
    assert items[1]["Fault"]["type"] == "ValidationFault"
    assert items[2]["Customer"]["DisplayName"] == "Tanaka Trading"
    assert item_fault(items[3]) == ("2500", "CustomerRef")
    assert item_fault(items[4]) == ("2010", "operation")  # this sandbox creates only
    assert item_fault(items[5]) == ("2010", "operation")
    assert item_fault(items[6])[0] == "6240"

    assert api.count("Invoice") == 1
    assert api.count("Customer") == 2
    assert api.get(f"invoice/{made['Id']}").json()["Invoice"] == made


def test_a_refused_item_leaves_nothing_behind(api, books):
    """Not even the id or document number it was about to take: each item is saved or rolled back alone."""
    customer = books["customer"]
    bad, good = invoice_body(customer, amount=1.0), invoice_body(customer)  # bad: Amount != Qty x Price
    refused, made = api.batch([create("1", "Invoice", bad), create("2", "Invoice", good)]).json()[
        "BatchItemResponse"
    ]
    assert item_fault(refused) == ("6070", "Line[0].Amount")
    assert (made["Invoice"]["Id"], made["Invoice"]["DocNumber"]) == ("1", "1001")


def test_a_refused_payment_applies_nothing(api, books):
    """A payment refused for one invoice applies nothing, not even to an invoice checked before it."""
    customer = books["customer"]
    first = api.post("invoice", invoice_body(customer)).json()["Invoice"]
    links = [
        {"Amount": 60.0, "LinkedTxn": [{"TxnId": first["Id"], "TxnType": "Invoice"}]},
        {"Amount": 10.0, "LinkedTxn": [{"TxnId": "999", "TxnType": "Invoice"}]},
    ]
    payment = {"CustomerRef": {"value": customer}, "TotalAmt": 70.0, "Line": links}
    (item,) = api.batch([create("p", "Payment", payment)]).json()["BatchItemResponse"]
    assert item_fault(item)[0] == "610"
    assert api.get(f"invoice/{first['Id']}").json()["Invoice"]["Balance"] == 120.0
    assert api.count("Payment") == 0


def test_a_repeated_requestid_replays_the_whole_answer_and_writes_nothing_twice(api, books):
    customer = books["customer"]
    items = [
        create("1", "Invoice", invoice_body(customer)),
        create("2", "Invoice", invoice_body(customer, amount=1.0)),
        create("3", "Customer", {"DisplayName": "Diego"}),
    ]
    first = api.batch(items, requestid="ll-batch-1")
    again = api.batch(items, requestid="ll-batch-1")
    assert again.status_code == first.status_code == 200
    assert again.json() == first.json()
    assert (api.count("Invoice"), api.count("Customer")) == (1, 2)

    # as with single writes, the first answer comes back whatever the repeat carries
    other = api.batch([create("1", "Invoice", invoice_body(customer, qty=5))], requestid="ll-batch-1")
    assert other.json() == first.json()
    assert api.count("Invoice") == 1

    # a new requestid is a new request
    fresh = api.batch(items, requestid="ll-batch-2").json()["BatchItemResponse"]
    assert fresh[0]["Invoice"]["Id"] != first.json()["BatchItemResponse"][0]["Invoice"]["Id"]
    assert api.count("Invoice") == 2


def test_a_batchs_requestid_is_not_a_single_writes(api, books):
    api.batch([create("1", "Customer", {"DisplayName": "Diego"})], requestid="ll-shared")
    reused = api.post("customer", {"DisplayName": "Someone"}, requestid="ll-shared")
    assert reused.status_code == 400
    assert reused.json()["Fault"]["Error"][0]["code"] == "6000"
    assert api.count("Customer") == 2


def test_more_than_thirty_items_are_refused_as_a_whole(api, books):
    items = [create(str(n), "Customer", {"DisplayName": f"Customer {n}"}) for n in range(31)]
    answer = api.batch(items, requestid="ll-too-many")
    assert answer.status_code == 400
    fault = answer.json()["Fault"]
    assert fault["type"] == "ValidationFault"
    assert (fault["Error"][0]["code"], fault["Error"][0]["element"]) == ("2010", "BatchItemRequest")
    assert "30" in fault["Error"][0]["Detail"]
    assert api.count("Customer") == 1
    # the refusal is not remembered: the same requestid with 30 items is a new request
    assert api.batch(items[:30], requestid="ll-too-many").status_code == 200
    assert api.count("Customer") == 31


def test_an_empty_or_shapeless_batch_is_refused(api, books):
    assert api.batch([]).status_code == 400
    assert api.batch([]).json()["Fault"]["Error"][0]["code"] == "2020"
    assert api.post("batch", {"Nothing": []}).status_code == 400


def test_a_batch_requestid_longer_than_36_characters_faults_every_item(api, books):
    items = [
        create("1", "Customer", {"DisplayName": "Diego"}),
        create("2", "Customer", {"DisplayName": "Amy"}),
    ]
    answer = api.batch(items, requestid="x" * 37)
    assert answer.status_code == 200
    assert [item_fault(item) for item in answer.json()["BatchItemResponse"]] == [("6000", "request_id")] * 2
    assert api.count("Customer") == 1
    long_bid = api.batch([create("b" * 11, "Customer", {"DisplayName": "Amy"})], requestid="x" * 36)
    assert item_fault(long_bid.json()["BatchItemResponse"][0]) == ("6000", "bId")


# --- limits ---------------------------------------------------------------------------------------------
def test_the_batch_limit_is_40_a_minute_on_top_of_the_realms_limits():
    assert {(limit.limit, limit.period, limit.concurrent) for limit in qbo.BATCH_RATE_LIMITS} == {
        (40, 60.0, False)
    }
    assert qbo.BATCH_MAX_ITEMS == 30
    assert qbo.route_rate_limits("POST", f"v3/company/{REALM}/batch") == ("batch", qbo.BATCH_RATE_LIMITS)
    assert qbo.route_rate_limits("POST", f"v3/company/{REALM}/invoice") is None
    assert qbo.route_rate_limits("GET", f"v3/company/{REALM}/batch") is None


def test_the_41st_batch_in_a_minute_is_throttled_but_other_requests_are_not(api, books):
    query_only = [{"bId": "q", "Query": "SELECT * FROM Invoice"}]  # writes nothing
    statuses = [api.batch(query_only).status_code for _ in range(40)]
    assert statuses == [200] * 40
    throttled = api.batch(query_only)
    assert throttled.status_code == 429 and "Retry-After" not in throttled
    assert throttled.json()["Fault"]["Error"][0]["Message"].startswith("message=ThrottleExceeded")
    assert api.post("invoice", invoice_body(books["customer"])).status_code == 200
    assert api.get("companyinfo/" + REALM).status_code == 200
    assert SandboxHit.objects.filter(platform="quickbooks", path__endswith="/batch", status=429).count() == 1


def test_a_batch_counts_once_against_the_realms_500_a_minute(api, books, monkeypatch):
    monkeypatch.setattr(qbo, "RATE_LIMITS", (RateLimit("test: requests per minute", 3, 60.0),))
    items = [create(str(n), "Customer", {"DisplayName": f"C{n}"}) for n in range(5)]
    assert api.batch(items).status_code == 200  # five creates, one request
    assert api.batch(items[:1]).status_code == 200
    assert api.get("companyinfo/" + REALM).status_code == 200
    assert api.batch(items[1:2]).status_code == 429


# --- the connector against the sandbox over real HTTP -------------------------------------------------
def _connector(live_server) -> QuickBooksConnector:
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
    return QuickBooksConnector(connection)


@pytest.mark.django_db(transaction=True)
def test_the_connector_creates_a_batch_and_a_retry_with_the_same_key_writes_nothing_twice(live_server):
    qbo._reference_data(REALM)
    connector = _connector(live_server)
    customer = connector.create("customer", {"DisplayName": "Cool Cars"}, idempotency_key="c-1")
    good = invoice_body(customer.external_id)
    bad = invoice_body(customer.external_id, amount=99.0)
    payloads = [{**good, "DocNumber": "LL-1"}, {**bad, "DocNumber": "LL-2"}, {**good, "DocNumber": "LL-3"}]

    results = connector.create_many("invoice", payloads, idempotency_key="push-77")
    first, refused, third = results
    assert isinstance(first, RemoteRef) and isinstance(third, RemoteRef)
    assert (first.number, first.status, third.number) == ("LL-1", "open", "LL-3")
    assert isinstance(refused, ValidationError)
    assert (refused.field, refused.value) == ("Line[0].Amount", 99.0)

    again = connector.create_many("invoice", payloads, idempotency_key="push-77")
    assert [getattr(result, "external_id", None) for result in again] == [
        first.external_id,
        None,
        third.external_id,
    ]
    assert isinstance(again[1], ValidationError)
    rows = connector.client.query_page("Invoice")
    assert sorted(row["DocNumber"] for row in rows) == ["LL-1", "LL-3"]
    assert connector.find_by_reference("invoice", "LL-3").external_id == third.external_id


@pytest.mark.django_db(transaction=True)
def test_a_batch_whose_answer_is_lost_is_uncertain_and_its_repeat_is_answered_from_the_first(live_server):
    qbo._reference_data(REALM)
    connector = _connector(live_server)
    connector.client = QuickBooksClient(connector.connection, sleep=lambda seconds: None)
    connector.client.timeout = (5.0, 0.5)
    core.fault_add("quickbooks", "lost_response", method="POST", path="batch$", delay_ms=1500)
    payloads = [{"DisplayName": "Lost"}, {"DisplayName": "Found"}]
    with pytest.raises(UncertainError):
        connector.create_many("customer", payloads, idempotency_key="batch-1")
    again = connector.create_many("customer", payloads, idempotency_key="batch-1")
    assert [result.number for result in again] == ["Lost", "Found"]
    assert len(connector.client.query_page("Customer")) == 2
    time.sleep(1.5)  # let the held-back answer leave the server before the test database goes away
