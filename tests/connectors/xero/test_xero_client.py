"""XeroClient: headers on every call, Xero's error shapes as typed errors, rate-limit signals, paging."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
import responses
from responses import matchers

from connectors.base import (
    AuthNeededError,
    NotFoundError,
    PermanentError,
    RetryableError,
    UncertainError,
    ValidationError,
)
from connectors.xero.client import XeroClient, idempotency_header, identity_root, item_error
from tests.factories import ConnectionFactory

from .conftest import API, TENANT, NoLimits, fixture

TOKEN_URL = "https://identity.xero.com/connect/token"


@responses.activate
def test_every_call_carries_the_bearer_token_and_the_tenant(client):
    responses.get(
        f"{API}/Organisation",
        json={"Organisations": [{"Name": "Demo"}]},
        match=[
            matchers.header_matcher(
                {"Authorization": "Bearer access-1", "xero-tenant-id": TENANT, "Accept": "application/json"}
            )
        ],
    )
    assert client.get("Organisation")["Organisations"][0]["Name"] == "Demo"


def test_a_connection_without_a_tenant_is_refused_before_anything_is_sent(connection):
    connection.options = {}
    client = XeroClient(connection, limiter=NoLimits(), sleep=lambda s: None)
    with pytest.raises(AuthNeededError, match="tenant"):
        client.get("Invoices")


@responses.activate
def test_writes_carry_the_idempotency_key_and_a_json_body(client):
    responses.put(
        f"{API}/Invoices",
        json={"Invoices": []},
        match=[
            matchers.header_matcher({"Idempotency-Key": "push-42", "Content-Type": "application/json"}),
            matchers.query_param_matcher({"summarizeErrors": "false"}),
            matchers.json_params_matcher({"Invoices": [{"Type": "ACCREC"}]}),
        ],
    )
    client.write(
        "PUT",
        "Invoices",
        {"Invoices": [{"Type": "ACCREC"}]},
        idempotency_key="push-42",
        params={"summarizeErrors": "false"},
    )


def test_a_key_longer_than_xero_takes_is_replaced_by_a_stable_digest():
    long_key = "profile-7:invoice-123456:v3:create:" + "x" * 200
    header = idempotency_header(long_key)
    assert len(header) <= 128
    assert header == idempotency_header(long_key)
    assert header != idempotency_header(long_key + "y")
    assert idempotency_header("short") == "short"


@responses.activate
def test_a_keyed_write_is_retried_after_a_503_because_xero_replays_it(client):
    responses.put(f"{API}/Payments", status=503, body="The Xero API is temporarily unavailable")
    responses.put(f"{API}/Payments", json={"Payments": [{"PaymentID": "p1"}]})
    answer = client.write("PUT", "Payments", {"Payments": [{}]}, idempotency_key="pay-1")
    assert answer["Payments"][0]["PaymentID"] == "p1"
    assert len(responses.calls) == 2


@responses.activate
def test_a_write_without_a_key_is_uncertain_after_a_503(client):
    responses.put(f"{API}/Payments", status=503)
    with pytest.raises(UncertainError):
        client.write("PUT", "Payments", {"Payments": [{}]}, idempotency_key="")
    assert len(responses.calls) == 1


@responses.activate
def test_a_validation_exception_names_the_field_and_value_xero_refused(client):
    responses.put(f"{API}/Invoices", status=400, json=fixture("validation_error.json"))
    with pytest.raises(ValidationError) as caught:
        client.write("PUT", "Invoices", {"Invoices": [{}]}, idempotency_key="k")
    assert (caught.value.field, caught.value.value) == ("TaxType", "GST15")
    assert "does not exist" in str(caught.value)


@responses.activate
def test_other_400s_are_validation_errors_with_xeros_message(client):
    responses.get(
        f"{API}/Invoices",
        status=400,
        json={
            "ErrorNumber": 16,
            "Type": "QueryParseException",
            "Message": "No property or field 'Foo' exists",
        },
    )
    with pytest.raises(ValidationError, match="No property or field 'Foo' exists"):
        client.get("Invoices", params={"where": 'Foo=="1"'})


@responses.activate
def test_a_401_gets_one_token_refresh_then_the_call_goes_through(client, connection):
    responses.get(f"{API}/Invoices/x", status=401, json={"Title": "Unauthorized", "Detail": "TokenExpired"})
    responses.post(
        TOKEN_URL,
        json={
            "access_token": "access-2",
            "refresh_token": "refresh-2",
            "expires_in": 1800,
            "token_type": "Bearer",
        },
    )
    responses.get(
        f"{API}/Invoices/x",
        json={"Invoices": [{"InvoiceID": "x"}]},
        match=[matchers.header_matcher({"Authorization": "Bearer access-2"})],
    )
    assert client.get_one("Invoices", "x") == {"InvoiceID": "x"}
    connection.refresh_from_db()
    assert connection.credentials["token"]["refresh_token"] == "refresh-2"


@responses.activate
def test_a_401_the_refresh_cannot_cure_asks_for_a_new_connect(client):
    responses.get(f"{API}/Invoices", status=401, json={"Title": "Unauthorized", "Detail": "TokenExpired"})
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_grant"})
    with pytest.raises(AuthNeededError):
        client.get("Invoices")


@responses.activate
def test_a_403_means_the_organisation_was_disconnected(client):
    responses.get(
        f"{API}/Invoices", status=403, json={"Title": "Forbidden", "Detail": "AuthorizationUnsuccessful"}
    )
    with pytest.raises(AuthNeededError, match="AuthorizationUnsuccessful"):
        client.get("Invoices")


@responses.activate
def test_a_404_is_not_found(client):
    responses.get(f"{API}/Invoices/nope", status=404, body="The resource you're looking for cannot be found")
    with pytest.raises(NotFoundError):
        client.get_one("Invoices", "nope")


@responses.activate
def test_a_minute_limit_429_waits_what_retry_after_says_then_goes_on(client):
    responses.get(
        f"{API}/Invoices", status=429, headers={"Retry-After": "7", "X-Rate-Limit-Problem": "minute"}, body=""
    )
    responses.get(f"{API}/Invoices", json={"Invoices": []})
    assert client.get("Invoices") == {"Invoices": []}
    assert client.limiter.penalties == [7.0]
    assert client.waits and client.waits[0] >= 7.0


@responses.activate
def test_a_day_limit_429_is_handed_up_with_its_long_wait_instead_of_slept_through(client):
    responses.get(
        f"{API}/Invoices",
        status=429,
        headers={"Retry-After": "43200", "X-Rate-Limit-Problem": "day"},
        body="",
    )
    with pytest.raises(RetryableError) as caught:
        client.get("Invoices")
    assert caught.value.retry_after == 43200.0
    assert "day" in str(caught.value)
    assert len(responses.calls) == 1
    assert client.waits == []
    assert client.limiter.penalties == [43200.0]


@pytest.mark.parametrize(("problem", "wait"), [("day", 3600.0), ("minute", 60.0), ("concurrent", 1.0)])
def test_a_429_without_retry_after_waits_by_its_problem(client, problem, wait):
    with responses.RequestsMock() as mocked:
        mocked.get(f"{API}/Invoices", status=429, headers={"X-Rate-Limit-Problem": problem})
        error = client.error_for(client.session.get(f"{API}/Invoices"))
    assert isinstance(error, RetryableError) and error.retry_after == wait


@responses.activate
def test_a_503_on_a_read_is_retried(client):
    responses.get(f"{API}/Invoices", status=503, body="unavailable")
    responses.get(f"{API}/Invoices", json={"Invoices": [{"InvoiceID": "a"}]})
    assert client.get("Invoices")["Invoices"] == [{"InvoiceID": "a"}]


@responses.activate
def test_other_statuses_are_permanent(client):
    responses.get(f"{API}/Invoices", status=410, body="gone")
    with pytest.raises(PermanentError):
        client.get("Invoices")


@responses.activate
def test_a_page_asks_for_1000_in_update_order_since_an_instant(client):
    since = datetime(2026, 3, 1, 9, 30, 15, 250000, tzinfo=timezone(timedelta(hours=13)))
    responses.get(
        f"{API}/Invoices",
        json=fixture("invoices_page.json"),
        match=[
            matchers.query_param_matcher(
                {"page": "1", "pageSize": "1000", "order": "UpdatedDateUTC", "where": "x"}
            ),
            matchers.header_matcher({"If-Modified-Since": "2026-02-28T20:30:15.250+00:00"}),
        ],
    )
    records, more = client.get_page("Invoices", page=1, since=since, params={"where": "x"})
    assert len(records) == 7 and more  # pagination says 2 pages


@responses.activate
def test_without_a_pagination_object_a_short_page_is_the_last(client):
    responses.get(f"{API}/Contacts", json={"Contacts": [{"ContactID": "a"}]})
    assert client.get_page("Contacts", page=3, page_size=2) == ([{"ContactID": "a"}], False)
    responses.get(f"{API}/Contacts", json={"Contacts": [{"ContactID": "a"}, {"ContactID": "b"}]})
    assert client.get_page("Contacts", page=3, page_size=2)[1] is True


@responses.activate
def test_not_modified_is_an_empty_page(client):
    responses.get(f"{API}/Invoices", status=304)
    assert client.get_page("Invoices", page=1, since=datetime(2026, 1, 1, tzinfo=UTC)) == ([], False)


def test_two_connections_to_one_organisation_share_its_limits(db):
    first = ConnectionFactory(platform="xero", options={"tenant_id": TENANT})
    second = ConnectionFactory(platform="xero", options={"tenant_id": TENANT})
    alone = ConnectionFactory(platform="xero")
    keys = [XeroClient(c, limiter=NoLimits()).limiter_key() for c in (first, second, alone)]
    assert keys[0] == keys[1] == f"xero:tenant:{TENANT}"
    assert keys[2] == f"xero:{alone.pk}"


def test_the_limits_are_xeros_per_tenant_ones():
    limits = {limit.name: limit for limit in XeroClient.rate_limits}
    assert (limits["minute"].limit, limits["minute"].period) == (60, 60.0)
    assert (limits["day"].limit, limits["day"].period) == (5000, 86400.0)
    assert limits["concurrent"].concurrent and limits["concurrent"].limit == 5


@pytest.mark.parametrize(
    ("api", "root"),
    [
        ("https://api.xero.com/api.xro/2.0", "https://api.xero.com"),
        ("https://api.xero.com/api.xro/2.0/", "https://api.xero.com"),
        ("http://127.0.0.1:8000/sandbox/xero/api.xro/2.0", "http://127.0.0.1:8000/sandbox/xero"),
    ],
)
def test_the_identity_service_sits_beside_the_api(api, root):
    assert identity_root(api) == root


def test_per_item_results_tell_saved_from_refused():
    ok, duplicate, bad_account = fixture("invoices_put_results.json")["Invoices"]
    assert item_error(ok) is None
    error = item_error(duplicate)
    assert (error.field, error.value, str(error)) == (
        "InvoiceNumber",
        "INV-0001",
        "Invoice # must be unique.",
    )
    error = item_error(bad_account)
    assert (error.field, error.value) == ("AccountCode", "999")
    assert item_error({"StatusAttributeString": "OK", "Warnings": [{"Message": "Rounding"}]}) is None
    assert (
        item_error(
            {
                "HasValidationErrors": True,
                "ValidationErrors": [
                    {"Message": "Payment amount exceeds the amount outstanding on this document"}
                ],
                "Amount": 50.0,
            }
        ).field
        == "Amount"
    )


def test_a_line_level_message_names_its_line():
    error = item_error(
        {
            "HasErrors": True,
            "LineItems": [{}, {"ValidationErrors": [{"Message": "Account code '77' is not valid"}]}],
        }
    )
    assert (error.field, error.value) == ("LineItems[1].AccountCode", "77")


def test_the_body_is_serialised_as_json_numbers(client):
    with responses.RequestsMock() as mocked:
        mocked.put(f"{API}/Payments", json={"Payments": []})
        from decimal import Decimal

        client.write("PUT", "Payments", {"Payments": [{"Amount": Decimal("12.50")}]}, idempotency_key="k")
        assert json.loads(mocked.calls[0].request.body) == {"Payments": [{"Amount": 12.5}]}
