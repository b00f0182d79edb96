"""Stripe-Signature: the published test vector, and the forgeries, stale or future timestamps, changed
bodies, several v1 signatures and missing headers a receiver must handle."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
import time_machine

from connectors.base import WebhookError
from tests.connectors.stripe.conftest import FIXTURES, WEBHOOK_SECRET, vendor_file

NOW = 1768435300
BODY = (FIXTURES / "event_invoice_paid.json").read_bytes()


def sign(body: bytes, timestamp: int, secret: str = WEBHOOK_SECRET) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


@pytest.fixture
def at_now():
    with time_machine.travel(datetime.fromtimestamp(NOW, UTC), tick=False):
        yield


def test_the_published_signature_vector_verifies(connector):
    vector = json.loads(vendor_file("webhook_signature_test_vector.json").read_text())
    body = vendor_file(vector["payload_file"]).read_bytes()
    connector.connection.credentials = {
        **connector.connection.credentials,
        "webhook_secret": vector["secret"],
    }
    with time_machine.travel(datetime.fromtimestamp(vector["timestamp"], UTC), tick=False):
        result = connector.verify_webhook({"Stripe-Signature": vector["Stripe-Signature"]}, body)
    (event,) = result.events
    assert (event.event_id, event.object_type, event.external_id) == (
        "evt_test_webhook",
        "terminal.reader",
        "rdr_123",
    )
    assert sign(body, vector["timestamp"], vector["secret"]) == vector["expected_v1_hex"]


def test_a_signed_event_names_the_object_and_the_action(connector, at_now):
    result = connector.verify_webhook({"stripe-signature": f"t={NOW - 40},v1={sign(BODY, NOW - 40)}"}, BODY)
    (event,) = result.events
    assert (event.event_id, event.object_type, event.external_id, event.action) == (
        "evt_1QhInvoicePaid000000001",
        "invoice",
        "in_1QbJpyPaid0000000000001",
        "paid",
    )
    assert event.occurred_at == datetime.fromtimestamp(1768435260, UTC)
    assert result.response is None


def test_one_valid_v1_among_several_is_enough(connector, at_now):
    header = f"t={NOW},v1={'0' * 64},v1={sign(BODY, NOW)},v0={sign(BODY, NOW, 'old')}"
    assert connector.verify_webhook({"Stripe-Signature": header}, BODY).events


def test_a_signature_made_with_another_secret_is_refused(connector, at_now):
    header = f"t={NOW},v1={sign(BODY, NOW, 'whsec_someone_else')}"
    with pytest.raises(WebhookError, match="no v1 signature matches"):
        connector.verify_webhook({"Stripe-Signature": header}, BODY)


def test_a_v0_signature_alone_is_not_accepted(connector, at_now):
    with pytest.raises(WebhookError):
        connector.verify_webhook({"Stripe-Signature": f"t={NOW},v0={sign(BODY, NOW)}"}, BODY)


def test_a_changed_body_no_longer_matches(connector, at_now):
    header = f"t={NOW},v1={sign(BODY, NOW)}"
    replayed = BODY.replace(b"49500", b"99500")
    with pytest.raises(WebhookError, match="no v1 signature matches"):
        connector.verify_webhook({"Stripe-Signature": header}, replayed)


def test_the_signature_covers_the_timestamp(connector, at_now):
    header = f"t={NOW + 1},v1={sign(BODY, NOW)}"
    with pytest.raises(WebhookError):
        connector.verify_webhook({"Stripe-Signature": header}, BODY)


def test_a_stale_signature_is_refused(connector, at_now):
    old = NOW - 301
    with pytest.raises(WebhookError, match="tolerance") as caught:
        connector.verify_webhook({"Stripe-Signature": f"t={old},v1={sign(BODY, old)}"}, BODY)
    assert caught.value.status == 400


def test_the_tolerance_edge_is_accepted(connector, at_now):
    edge = NOW - 300
    assert connector.verify_webhook({"Stripe-Signature": f"t={edge},v1={sign(BODY, edge)}"}, BODY).events


def test_a_signature_from_the_future_is_refused(connector, at_now):
    future = NOW + 301
    with pytest.raises(WebhookError, match="tolerance"):
        connector.verify_webhook({"Stripe-Signature": f"t={future},v1={sign(BODY, future)}"}, BODY)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Stripe-Signature": ""},
        {"Stripe-Signature": "v1=abc"},
        {"Stripe-Signature": "t=abc,v1=abc"},
        {"Stripe-Signature": f"t={NOW}"},
    ],
)
def test_a_missing_or_malformed_header_is_refused(connector, at_now, headers):
    with pytest.raises(WebhookError) as caught:
        connector.verify_webhook(headers, BODY)
    assert caught.value.status == 400


def test_a_signed_body_that_is_not_an_event_is_refused(connector, at_now):
    body = b'{"hello": "world"}'
    with pytest.raises(WebhookError, match="not a Stripe event"):
        connector.verify_webhook({"Stripe-Signature": f"t={NOW},v1={sign(body, NOW)}"}, body)


def test_without_a_secret_nothing_is_accepted(connector, at_now):
    connector.connection.credentials = {"api_key": "sk_test_x"}
    with pytest.raises(WebhookError, match="webhook_secret") as caught:
        connector.verify_webhook({"Stripe-Signature": f"t={NOW},v1={sign(BODY, NOW)}"}, BODY)
    assert caught.value.status == 500


@pytest.mark.parametrize(
    ("kind", "event_type", "object_type", "action"),
    [
        ("charge", "charge.refunded", "payment", "refunded"),
        ("refund", "charge.refund.updated", "payment", "updated"),
        ("credit_note", "credit_note.voided", "credit_note", "voided"),
        ("payout", "payout.paid", "payout", "paid"),
        ("invoice", "invoice.deleted", "invoice", "deleted"),
    ],
)
def test_object_types_and_actions_come_from_the_event(
    connector, at_now, kind, event_type, object_type, action
):
    body = json.dumps(
        {
            "id": "evt_1",
            "object": "event",
            "created": NOW,
            "type": event_type,
            "account": "acct_9",
            "data": {"object": {"id": "x_1", "object": kind}},
        }
    ).encode()
    (event,) = connector.verify_webhook({"Stripe-Signature": f"t={NOW},v1={sign(body, NOW)}"}, body).events
    assert (event.object_type, event.action, event.account) == (object_type, action, "acct_9")
