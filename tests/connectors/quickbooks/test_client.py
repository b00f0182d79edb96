"""QuickBooksClient: what every request carries, Fault documents -> typed errors, paging, requestid."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from connectors.base import (
    AuthNeededError,
    ConflictError,
    NotFoundError,
    PermanentError,
    RetryableError,
    UncertainError,
    ValidationError,
)
from connectors.quickbooks.client import QuickBooksClient, parse_fault, query_time, quote, request_id
from tests.connectors.quickbooks.conftest import COMPANY, REALM, NoLimits, fixture, fixture_bytes

TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"


def query_of(call) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


@responses.activate
def test_every_call_carries_the_minor_version_json_and_the_bearer_token(client):
    responses.get(f"{COMPANY}/invoice/239", json=fixture("invoice.json"))
    assert client.read("Invoice", "239")["DocNumber"] == "1070"
    request = responses.calls[0].request
    assert query_of(responses.calls[0])["minorversion"] == ["75"]
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Authorization"] == "Bearer access-1"


def test_requests_are_limited_per_realm_not_per_connection(connection):
    made = QuickBooksClient(connection, limiter=NoLimits())
    assert made.limiter_key() == f"quickbooks:realm:{REALM}"
    assert {limit.limit for limit in made.rate_limits} == {500, 10}


def test_a_connection_without_a_realm_needs_to_be_connected(connection):
    connection.options = {}
    with pytest.raises(AuthNeededError):
        QuickBooksClient(connection, limiter=NoLimits()).company("invoice")


def test_the_requestid_is_derived_from_the_key_entity_and_operation():
    first = request_id("Invoice", "void:", "job-7:attempt")
    assert first == request_id("Invoice", "void:", "job-7:attempt")
    assert first != request_id("Invoice", "delete:", "job-7:attempt")
    assert first != request_id("Payment", "void:", "job-7:attempt")
    assert len(first) <= 50 and len(request_id("Invoice", "", "k" * 500)) <= 50


@responses.activate
def test_a_write_posts_json_with_its_requestid_and_returns_the_entity(client):
    responses.post(f"{COMPANY}/invoice", json=fixture("invoice.json"))
    row = client.write("Invoice", {"Id": "239", "SyncToken": "0"}, idempotency_key="key-1", operation="void")
    assert row["Id"] == "239"
    sent = query_of(responses.calls[0])
    assert sent["operation"] == ["void"] and sent["requestid"] == [request_id("Invoice", "void:", "key-1")]
    assert json.loads(responses.calls[0].request.body) == {"Id": "239", "SyncToken": "0"}


@pytest.mark.parametrize(
    ("status", "body", "error", "field"),
    [
        (400, "fault_stale_object.json", ConflictError, ""),
        (400, "fault_validation.json", ValidationError, "Line.Amount"),
        (400, "fault_required.json", ValidationError, "Line.SalesItemLineDetail.ItemRef"),
        (400, "fault_not_found.json", NotFoundError, ""),
    ],
)
@responses.activate
def test_faults_become_typed_errors(client, status, body, error, field):
    responses.post(
        f"{COMPANY}/invoice", body=fixture_bytes(body), status=status, headers={"intuit_tid": "1-abc"}
    )
    with pytest.raises(error) as caught:
        client.write("Invoice", {"Line": [{"Amount": 150.0}]}, idempotency_key="k")
    assert "intuit_tid 1-abc" in str(caught.value)
    if field:
        assert caught.value.field == field


@responses.activate
def test_a_validation_error_names_the_value_that_was_sent(client):
    responses.post(f"{COMPANY}/invoice", body=fixture_bytes("fault_validation.json"), status=400)
    with pytest.raises(ValidationError) as caught:
        client.write(
            "Invoice", {"Line": [{"Amount": 150.0, "DetailType": "SalesItemLineDetail"}]}, idempotency_key="k"
        )
    assert (caught.value.field, caught.value.value) == ("Line.Amount", 150.0)
    assert "Amount is not equal to UnitPrice * Qty" in str(caught.value)


@responses.activate
def test_a_stale_sync_token_is_a_conflict_and_is_not_retried(client):
    responses.post(f"{COMPANY}/invoice", body=fixture_bytes("fault_stale_object.json"), status=400)
    with pytest.raises(ConflictError, match="Stale Object Error"):
        client.write("Invoice", {"Id": "239", "SyncToken": "1", "sparse": True}, idempotency_key="k")
    assert len(responses.calls) == 1


@responses.activate
def test_throttling_is_retried_even_when_it_comes_as_xml(client):
    throttle = fixture_bytes("fault_throttle.xml")
    responses.get(f"{COMPANY}/invoice/239", body=throttle, status=429, content_type="application/xml")
    responses.get(f"{COMPANY}/invoice/239", json=fixture("invoice.json"))
    assert client.read("Invoice", "239")["Id"] == "239"
    assert len(responses.calls) == 2


@responses.activate
def test_throttling_reported_with_a_403_is_still_retryable(client):
    throttle = fixture_bytes("fault_throttle.xml").replace(b"statusCode=429", b"statusCode=403")
    responses.get(f"{COMPANY}/invoice/239", body=throttle, status=403, content_type="application/xml")
    with pytest.raises(RetryableError):
        client.read("Invoice", "239")
    assert len(responses.calls) == client.max_attempts


@responses.activate
def test_a_retry_after_sent_with_a_throttle_is_waited_for(connection):
    waits: list[float] = []
    made = QuickBooksClient(connection, limiter=NoLimits(), sleep=waits.append)
    responses.get(
        f"{COMPANY}/invoice/239",
        body=fixture_bytes("fault_throttle.xml"),
        status=429,
        headers={"Retry-After": "7"},
    )
    responses.get(f"{COMPANY}/invoice/239", json=fixture("invoice.json"))
    made.read("Invoice", "239")
    assert waits and waits[0] >= 7


@responses.activate
def test_a_5xx_on_a_read_is_retried_but_on_a_write_is_uncertain(client):
    system = {
        "Fault": {"Error": [{"Message": "An application error", "code": "10000"}], "type": "SystemFault"}
    }
    responses.get(f"{COMPANY}/invoice/239", json=system, status=500)
    responses.get(f"{COMPANY}/invoice/239", json=fixture("invoice.json"))
    assert client.read("Invoice", "239")["Id"] == "239"
    responses.post(f"{COMPANY}/invoice", json=system, status=503)
    with pytest.raises(UncertainError):
        client.write("Invoice", {"Line": []}, idempotency_key="k")


@responses.activate
def test_the_gateways_lower_case_authorisation_fault_needs_a_person(client):
    body = fixture("fault_auth_gateway.json")
    body["fault"]["error"][0]["message"] = "message=AuthorizationFailed; errorCode=003100; statusCode=403"
    responses.get(f"{COMPANY}/invoice/239", json=body, status=403)
    with pytest.raises(AuthNeededError, match="AuthorizationFailed"):
        client.read("Invoice", "239")


@responses.activate
def test_a_401_refreshes_the_token_once_then_needs_a_person(client, connection):
    responses.post(
        TOKEN_URL,
        json={
            "access_token": "access-2",
            "refresh_token": "refresh-2",
            "expires_in": 3600,
            "token_type": "bearer",
        },
    )
    responses.get(f"{COMPANY}/invoice/239", body=fixture_bytes("fault_auth_gateway.json"), status=401)
    with pytest.raises(AuthNeededError):
        client.read("Invoice", "239")
    api_calls = [call for call in responses.calls if "/invoice/" in call.request.url]
    assert [call.request.headers["Authorization"] for call in api_calls] == [
        "Bearer access-1",
        "Bearer access-2",
    ]
    connection.refresh_from_db()
    assert connection.credentials["token"]["refresh_token"] == "refresh-2"


@responses.activate
def test_a_fault_inside_a_200_answer_is_still_an_error(client):
    responses.get(f"{COMPANY}/invoice/239", body=fixture_bytes("fault_not_found.json"), status=200)
    with pytest.raises(NotFoundError):
        client.read("Invoice", "239")


def test_fault_documents_are_read_in_all_their_shapes():
    (json_fault,) = parse_fault(fixture_bytes("fault_stale_object.json"))
    (gateway,) = parse_fault(fixture_bytes("fault_auth_gateway.json"))
    (xml,) = parse_fault(fixture_bytes("fault_throttle.xml"))
    assert (json_fault.code, json_fault.fault_type) == ("5010", "ValidationFault")
    assert (gateway.code, gateway.gateway, gateway.fault_type) == (
        "3200",
        "AuthenticationFailed",
        "AUTHENTICATION",
    )
    assert (xml.code, xml.gateway, xml.fault_type) == ("3001", "ThrottleExceeded", "SERVICE")
    assert parse_fault(b"<html>Bad gateway</html>") == [] == parse_fault(b'{"Invoice": {}}')


@responses.activate
def test_a_query_pages_until_a_page_comes_back_short(client):
    def rows(start: int, count: int) -> list[dict]:
        return [{"Id": str(start + n)} for n in range(count)]

    responses.get(f"{COMPANY}/query", json={"QueryResponse": {"Item": rows(1, 1000), "startPosition": 1}})
    responses.get(f"{COMPANY}/query", json={"QueryResponse": {"Item": rows(1001, 7), "startPosition": 1001}})
    found = client.query_all("Item")
    assert [row["Id"] for row in found][-1] == "1007" and len(found) == 1007
    statements = [query_of(call)["query"][0] for call in responses.calls]
    assert statements == [
        "SELECT * FROM Item ORDERBY Id STARTPOSITION 1 MAXRESULTS 1000",
        "SELECT * FROM Item ORDERBY Id STARTPOSITION 1001 MAXRESULTS 1000",
    ]


@responses.activate
def test_an_empty_query_response_is_an_empty_list(client):
    responses.get(f"{COMPANY}/query", json={"QueryResponse": {}, "time": "2025-07-26T09:00:00-07:00"})
    assert client.query_all("Invoice", where="DocNumber = '1'") == []


@responses.activate
def test_cdc_asks_for_the_entities_since_a_time_and_gathers_each_list(client):
    responses.get(f"{COMPANY}/cdc", json=fixture("cdc_invoices.json"))
    found = client.cdc(["Invoice", "Payment"], datetime(2025, 7, 26, 16, 0, 0, 123, tzinfo=UTC))
    assert [row["Id"] for row in found["Invoice"]] == ["239", "241", "242"]
    assert found["Payment"] == []
    sent = query_of(responses.calls[0])
    assert (sent["entities"], sent["changedSince"]) == (["Invoice,Payment"], ["2025-07-26T16:00:00+00:00"])


def test_query_literals_are_quoted_and_times_are_whole_seconds():
    assert quote("Amy's") == "'Amy\\'s'"
    assert query_time(datetime(2025, 1, 1, 12, 30, 5, 999)) == "2025-01-01T12:30:05+00:00"


@responses.activate
def test_an_answer_that_is_not_json_is_a_permanent_error(client):
    responses.get(f"{COMPANY}/invoice/239", body=b"<html>maintenance</html>", status=200)
    with pytest.raises(PermanentError):
        client.read("Invoice", "239")
