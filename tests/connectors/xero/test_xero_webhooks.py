"""Xero webhooks: x-xero-signature = base64(HMAC-SHA256(webhook key, raw body)); 200 with an empty body
when it matches (the "intent to receive" check has no events), 401 otherwise."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from connectors.base import WebhookError
from connectors.xero.connector import XeroConnector

from .conftest import WEBHOOK_KEY, vendor_file

EMPTY_200 = (200, b"", "text/plain")


def sign(body: bytes, key: str = WEBHOOK_KEY) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


@pytest.fixture
def vector():
    return json.loads(vendor_file("webhook_signature_test_vector.json").read_text())


@pytest.fixture
def vector_body():
    return vendor_file("webhook_creditnote_create.raw.json").read_bytes()


@pytest.fixture
def vector_connector(connection, vector):
    connection.credentials = {**connection.credentials, "webhook_key": vector["webhook_key"]}
    return XeroConnector(connection)


def test_the_published_vector_verifies(vector_connector, vector, vector_body):
    result = vector_connector.verify_webhook(
        {"x-xero-signature": vector["expected_signature_base64"]}, vector_body
    )
    assert result.response == EMPTY_200
    (event,) = result.events
    assert (event.external_id, event.action, event.account) == (
        "55d84274-a3da-4829-a7c0-0cab601b95cc",
        "created",
        "aef86862-2015-4b6b-88bc-d89032cecc50",
    )
    assert event.occurred_at == datetime(2025, 12, 2, 0, 44, 9, 923000, tzinfo=UTC)
    # the vector is a supplier credit (ACCPAYCREDIT): named as Xero names it, not as a sales credit note
    assert event.object_type == "ACCPAYCREDIT"
    assert len(event.event_id) == 32


def test_the_header_name_is_matched_whatever_its_case(vector_connector, vector, vector_body):
    result = vector_connector.verify_webhook(
        {"X-Xero-Signature": vector["expected_signature_base64"]}, vector_body
    )
    assert len(result.events) == 1


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body: body.replace(b'"eventType":"CREATE"', b'"eventType":"UPDATE"'),
        lambda body: body + b" ",
        lambda body: body.replace(b"aef86862", b"aef86863"),
    ],
)
def test_a_modified_body_is_refused_with_401(vector_connector, vector, vector_body, tamper):
    with pytest.raises(WebhookError) as caught:
        vector_connector.verify_webhook(
            {"x-xero-signature": vector["expected_signature_base64"]}, tamper(vector_body)
        )
    assert caught.value.status == 401


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-xero-signature": ""},
        {"x-xero-signature": "XhCxybCXmQEoAFuOVIxLIYfGkmkB3bY3LeLZZ72r6aS="},
        {"x-xero-signature": "not base64 at all"},
    ],
)
def test_a_missing_or_forged_signature_is_refused_with_401(vector_connector, vector_body, headers):
    with pytest.raises(WebhookError) as caught:
        vector_connector.verify_webhook(headers, vector_body)
    assert caught.value.status == 401


def test_a_body_signed_with_another_key_is_refused(connector, vector_body):
    with pytest.raises(WebhookError) as caught:
        connector.verify_webhook({"x-xero-signature": sign(vector_body, "someone-else")}, vector_body)
    assert caught.value.status == 401


def test_intent_to_receive_with_a_good_signature_gets_an_empty_200(connector):
    body = b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"YSXCMKAQBJOEMGUZEPFZ"}'
    result = connector.verify_webhook({"x-xero-signature": sign(body)}, body)
    assert result.events == []
    assert result.response == EMPTY_200


def test_intent_to_receive_with_a_bad_signature_gets_401(connector):
    body = b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"YSXCMKAQBJOEMGUZEPFZ"}'
    with pytest.raises(WebhookError) as caught:
        connector.verify_webhook({"x-xero-signature": sign(body, "wrong-key")}, body)
    assert caught.value.status == 401


def test_without_a_stored_key_nothing_is_accepted(connector, connection):
    connection.credentials = {
        key: value for key, value in connection.credentials.items() if key != "webhook_key"
    }
    body = b'{"events":[]}'
    with pytest.raises(WebhookError) as caught:
        connector.verify_webhook({"x-xero-signature": sign(body)}, body)
    assert caught.value.status == 401


def test_sales_invoice_and_contact_events_map_to_canonical_types(connector):
    events = [
        {
            "resourceUrl": "https://api.xero.com/api.xro/2.0/Invoices/i1",
            "resourceId": "i1",
            "tenantId": "t1",
            "tenantType": "ORGANISATION",
            "eventCategory": "INVOICE",
            "eventType": "UPDATE",
            "eventDateUtc": "2026-03-01T10:00:00.000",
        },
        {
            "resourceUrl": "https://api.xero.com/api.xro/2.0/Contacts/c1",
            "resourceId": "c1",
            "tenantId": "t1",
            "tenantType": "ORGANISATION",
            "eventCategory": "CONTACT",
            "eventType": "CREATE",
            "eventDateUtc": "2026-03-01T10:00:01.000",
        },
        {
            "resourceUrl": "https://api.xero.com/api.xro/2.0/Invoices/b1",
            "resourceId": "b1",
            "tenantId": "t1",
            "tenantType": "ORGANISATION",
            "eventCategory": "INVOICE",
            "eventType": "CREATE",
            "eventDateUtc": "2026-03-01T10:00:02.000",
            "data": {"Type": "ACCPAY", "Status": "DRAFT"},
        },
    ]
    body = json.dumps(
        {"events": events, "firstEventSequence": 1, "lastEventSequence": 3, "entropy": "X"}
    ).encode()
    result = connector.verify_webhook({"x-xero-signature": sign(body)}, body)
    assert [(e.object_type, e.external_id, e.action) for e in result.events] == [
        ("invoice", "i1", "updated"),
        ("customer", "c1", "created"),
        ("ACCPAY", "b1", "created"),
    ]
    assert len({e.event_id for e in result.events}) == 3
    assert result.response == EMPTY_200


@pytest.mark.parametrize(
    "body", [b"not json", b'{"no_events": true}', b'{"events": "x"}', b'{"events": [{}]}']
)
def test_a_signed_but_malformed_body_is_refused_as_a_bad_request(connector, body):
    with pytest.raises(WebhookError) as caught:
        connector.verify_webhook({"x-xero-signature": sign(body)}, body)
    assert caught.value.status == 400
