"""The Stripe client: form encoding, headers, the error shapes, Stripe-Should-Retry and rate limits."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qsl

import pytest
import responses

from connectors.base import (
    AuthNeededError,
    NotFoundError,
    PermanentError,
    RetryableError,
    UncertainError,
    ValidationError,
)
from connectors.stripe.client import (
    API_VERSION,
    LIVE_MODE_LIMITS,
    TEST_MODE_LIMITS,
    StripeClient,
    encode_form,
    idempotency_header,
)
from tests.connectors.stripe.conftest import API_KEY, BASE, NoLimits
from tests.factories import ConnectionFactory


def stripe_error(kind="invalid_request_error", code=None, message="Something is wrong", param=None):
    error = {"type": kind, "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return {"error": error}


@pytest.fixture
def client(connector):
    return connector.client


def test_nested_params_are_form_encoded_the_stripe_way():
    pairs = encode_form(
        {
            "customer": "cus_1",
            "metadata": {"ledgerlink_reference": "LL-1", "note": ""},
            "expand": ["data.invoice", "data.balance_transaction"],
            "created": {"gte": 1700000000},
            "lines": [{"type": "custom_line_item", "amount": 100}, {"type": "invoice_line_item"}],
            "auto_advance": False,
            "unit_amount_decimal": Decimal("1250.5"),
            "description": None,
        }
    )
    assert pairs == [
        ("customer", "cus_1"),
        ("metadata[ledgerlink_reference]", "LL-1"),
        ("metadata[note]", ""),
        ("expand[]", "data.invoice"),
        ("expand[]", "data.balance_transaction"),
        ("created[gte]", "1700000000"),
        ("lines[0][type]", "custom_line_item"),
        ("lines[0][amount]", "100"),
        ("lines[1][type]", "invoice_line_item"),
        ("auto_advance", "false"),
        ("unit_amount_decimal", "1250.5"),
    ]


def test_deeply_nested_params_keep_every_level():
    assert encode_form(
        {"payment": {"type": "payment_intent", "payment_intent": "pi_1"}, "a": {"b": {"c": 1}}}
    ) == [
        ("payment[type]", "payment_intent"),
        ("payment[payment_intent]", "pi_1"),
        ("a[b][c]", "1"),
    ]


def test_a_long_idempotency_key_is_hashed_to_fit_255_characters():
    assert idempotency_header("sync-17:invoice") == "sync-17:invoice"
    long = idempotency_header("x" * 300)
    assert len(long) <= 255 and long.startswith("ll-")
    assert long == idempotency_header("x" * 300)


@responses.activate
def test_requests_carry_the_key_and_the_pinned_version(client):
    responses.get(f"{BASE}/invoices", json={"object": "list", "data": [], "has_more": False})
    client.list_page("invoices", {"status": "open"})
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["Stripe-Version"] == API_VERSION == "2026-06-24.dahlia"
    assert dict(parse_qsl(sent.url.split("?", 1)[1])) == {"status": "open", "limit": "100"}


@responses.activate
def test_writes_are_form_encoded_with_an_idempotency_key(client):
    responses.post(f"{BASE}/invoices", json={"id": "in_1", "object": "invoice"})
    client.post("invoices", {"customer": "cus_1", "metadata": {"k": "v"}}, idempotency_key="job-1:invoice")
    sent = responses.calls[0].request
    assert sent.headers["Idempotency-Key"] == "job-1:invoice"
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qsl(sent.body) == [("customer", "cus_1"), ("metadata[k]", "v")]


def test_a_connect_account_is_sent_as_stripe_account(db):
    connection = ConnectionFactory(
        platform="stripe", credentials={"api_key": API_KEY}, options={"stripe_account": "acct_123"}
    )
    assert StripeClient(connection, limiter=NoLimits()).auth_headers()["Stripe-Account"] == "acct_123"


def test_a_missing_key_needs_a_person(db):
    client = StripeClient(ConnectionFactory(platform="stripe", credentials={}), limiter=NoLimits())
    with pytest.raises(AuthNeededError):
        client.auth_headers()


@pytest.mark.parametrize(
    ("key", "limits"),
    [
        ("sk_test_abc", TEST_MODE_LIMITS),
        ("rk_test_abc", TEST_MODE_LIMITS),
        ("sk_live_abc", LIVE_MODE_LIMITS),
        ("rk_live_abc", LIVE_MODE_LIMITS),
    ],
)
def test_the_rate_limit_follows_the_key_mode(db, key, limits):
    client = StripeClient(
        ConnectionFactory(platform="stripe", credentials={"api_key": key}), limiter=NoLimits()
    )
    assert client.rate_limits == limits
    assert [(limit.limit, limit.period) for limit in client.rate_limits] == [
        (25 if "test" in key else 100, 1.0)
    ]


def test_connections_sharing_a_key_share_a_limiter_key_without_revealing_it(db):
    first = StripeClient(
        ConnectionFactory(platform="stripe", credentials={"api_key": API_KEY}), limiter=NoLimits()
    )
    second = StripeClient(
        ConnectionFactory(platform="stripe", credentials={"api_key": API_KEY}), limiter=NoLimits()
    )
    assert first.limiter_key() == second.limiter_key()
    assert API_KEY not in first.limiter_key()


@responses.activate
def test_a_refused_param_becomes_a_validation_error_naming_it_and_the_value_sent(client):
    body = stripe_error(
        code="parameter_invalid_integer", message="Invalid integer: 1.5", param="days_until_due"
    )
    responses.post(f"{BASE}/invoices", json=body, status=400)
    with pytest.raises(ValidationError) as caught:
        client.post("invoices", {"customer": "cus_1", "days_until_due": "1.5"}, idempotency_key="k")
    assert (caught.value.field, caught.value.value) == ("days_until_due", "1.5")
    assert "Invalid integer: 1.5" in str(caught.value)
    assert len(responses.calls) == 1


@responses.activate
def test_a_nested_param_is_found_in_the_request(client):
    responses.post(
        f"{BASE}/invoiceitems", json=stripe_error(param="metadata[ledgerlink_reference]"), status=400
    )
    with pytest.raises(ValidationError) as caught:
        client.post("invoiceitems", {"metadata": {"ledgerlink_reference": "x" * 600}}, idempotency_key="k")
    assert caught.value.value == "x" * 600


@responses.activate
@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, stripe_error(message="Invalid API Key provided: sk_test_****abcd"), AuthNeededError),
        (
            403,
            stripe_error(message="The provided key does not have the required permissions"),
            AuthNeededError,
        ),
        (
            404,
            stripe_error(code="resource_missing", message="No such invoice: 'in_x'", param="id"),
            NotFoundError,
        ),
        (
            402,
            stripe_error(kind="card_error", code="card_declined", message="Your card was declined."),
            ValidationError,
        ),
        (
            400,
            stripe_error(
                kind="idempotency_error",
                message="Keys for idempotent requests can only be used with the same parameters",
            ),
            PermanentError,
        ),
    ],
)
def test_error_shapes_map_to_typed_errors(client, status, body, error):
    responses.get(f"{BASE}/invoices/in_x", json=body, status=status)
    with pytest.raises(error) as caught:
        client.get("invoices/in_x")
    assert not isinstance(caught.value, RetryableError)
    assert len(responses.calls) == 1


@responses.activate
def test_an_idempotency_error_is_permanent_not_a_validation_error(client):
    responses.post(f"{BASE}/invoices", json=stripe_error(kind="idempotency_error"), status=400)
    with pytest.raises(PermanentError) as caught:
        client.post("invoices", {}, idempotency_key="k")
    assert type(caught.value) is PermanentError


@responses.activate
def test_a_rate_limit_429_is_retried_and_blocks_the_key(client, connector):
    responses.get(f"{BASE}/invoices/in_1", json=stripe_error(code="rate_limit"), status=429)
    responses.get(f"{BASE}/invoices/in_1", json={"id": "in_1"})
    assert client.get("invoices/in_1") == {"id": "in_1"}
    assert len(client.limiter.penalties) == 1
    assert len(connector.waits) == 1


@responses.activate
def test_a_lock_timeout_is_retried(client):
    responses.post(f"{BASE}/invoices/in_1/pay", json=stripe_error(code="lock_timeout"), status=429)
    responses.post(f"{BASE}/invoices/in_1/pay", json={"id": "in_1", "status": "paid"})
    assert (
        client.post("invoices/in_1/pay", {"paid_out_of_band": True}, idempotency_key="k")["status"] == "paid"
    )
    assert (
        responses.calls[0].request.headers["Idempotency-Key"]
        == responses.calls[1].request.headers["Idempotency-Key"]
    )


@responses.activate
def test_a_5xx_on_a_keyed_write_is_retried_with_the_same_key(client):
    responses.post(f"{BASE}/invoices", json=stripe_error(kind="api_error"), status=500)
    responses.post(f"{BASE}/invoices", json={"id": "in_1"})
    assert client.post("invoices", {"customer": "cus_1"}, idempotency_key="k-1") == {"id": "in_1"}
    assert [call.request.headers["Idempotency-Key"] for call in responses.calls] == ["k-1", "k-1"]


@responses.activate
def test_should_retry_false_stops_even_a_5xx(client):
    responses.get(
        f"{BASE}/invoices/in_1",
        json=stripe_error(kind="api_error"),
        status=500,
        headers={"Stripe-Should-Retry": "false"},
    )
    with pytest.raises(PermanentError) as caught:
        client.get("invoices/in_1")
    assert not isinstance(caught.value, RetryableError)
    assert len(responses.calls) == 1


@responses.activate
def test_should_retry_true_retries_even_a_400(client):
    responses.post(
        f"{BASE}/invoices", json=stripe_error(), status=400, headers={"Stripe-Should-Retry": "true"}
    )
    responses.post(f"{BASE}/invoices", json={"id": "in_1"})
    assert client.post("invoices", {}, idempotency_key="k") == {"id": "in_1"}
    assert len(responses.calls) == 2


@responses.activate
def test_should_retry_true_honours_retry_after(client, connector):
    responses.get(
        f"{BASE}/invoices/in_1",
        json=stripe_error(),
        status=409,
        headers={"Stripe-Should-Retry": "true", "Retry-After": "3"},
    )
    responses.get(f"{BASE}/invoices/in_1", json={"id": "in_1"})
    client.get("invoices/in_1")
    assert connector.waits[0] >= 3


@responses.activate
def test_a_409_concurrent_idempotent_request_is_retried(client):
    body = stripe_error(
        code="idempotency_key_in_use", message="There is currently another in-progress request"
    )
    responses.post(f"{BASE}/invoices", json=body, status=409)
    responses.post(f"{BASE}/invoices", json={"id": "in_1"})
    assert client.post("invoices", {}, idempotency_key="k") == {"id": "in_1"}


@responses.activate
def test_retries_give_up_as_retryable_not_uncertain_for_keyed_writes(client):
    responses.post(f"{BASE}/invoices", json=stripe_error(kind="api_error"), status=503)
    with pytest.raises(RetryableError) as caught:
        client.post("invoices", {}, idempotency_key="k")
    assert not isinstance(caught.value, UncertainError)
    assert len(responses.calls) == client.max_attempts


@responses.activate
def test_list_all_follows_starting_after(client):
    responses.get(
        f"{BASE}/balance_transactions",
        json={"object": "list", "data": [{"id": "txn_1"}, {"id": "txn_2"}], "has_more": True},
    )
    responses.get(
        f"{BASE}/balance_transactions", json={"object": "list", "data": [{"id": "txn_3"}], "has_more": False}
    )
    assert [txn["id"] for txn in client.list_all("balance_transactions", {"payout": "po_1"})] == [
        "txn_1",
        "txn_2",
        "txn_3",
    ]
    second = dict(parse_qsl(responses.calls[1].request.url.split("?", 1)[1]))
    assert second == {"payout": "po_1", "limit": "100", "starting_after": "txn_2"}


@responses.activate
def test_search_follows_next_page(client):
    responses.get(
        f"{BASE}/invoices/search",
        json={"object": "search_result", "data": [{"id": "in_1"}], "has_more": True, "next_page": "page_2"},
    )
    responses.get(
        f"{BASE}/invoices/search",
        json={"object": "search_result", "data": [{"id": "in_2"}], "has_more": False, "next_page": None},
    )
    assert [row["id"] for row in client.search("invoices/search", "status:'open'")] == ["in_1", "in_2"]
    assert dict(parse_qsl(responses.calls[1].request.url.split("?", 1)[1]))["page"] == "page_2"
