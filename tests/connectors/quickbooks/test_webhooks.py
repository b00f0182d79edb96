"""QuickBooks webhooks: Intuit's signature (their published test vector), both payload shapes, refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from connectors.base import WebhookError
from connectors.quickbooks.webhooks import signature
from tests.connectors.quickbooks.conftest import REALM, VENDOR_SPECS, VERIFIER, fixture_bytes


def signed(body: bytes, token: str = VERIFIER) -> dict[str, str]:
    return {"intuit-signature": signature(token, body)}


def test_intuits_published_test_vector_verifies(connector, connection):
    vector_file = VENDOR_SPECS / "fixtures" / "webhook_signature_test_vector.json"
    if not vector_file.exists():
        pytest.skip(f"the vendor test vector is not at {vector_file}")
    vector = json.loads(vector_file.read_text())
    body = (vector_file.parent / vector["payload_file"]).read_bytes()
    assert signature(vector["verifier_token"], body) == vector["expected_signature_base64"]
    connection.credentials = {**connection.credentials, "webhook_verifier_token": vector["verifier_token"]}
    result = connector.verify_webhook({vector["header"]: vector["expected_signature_base64"]}, body)
    assert [(e.object_type, e.external_id, e.action) for e in result.events] == [
        ("Vendor", "40", "updated"),
        ("customer", "43", "created"),
    ]


def test_legacy_notifications_become_events_with_canonical_types(connector):
    body = fixture_bytes("webhook_legacy.json")
    result = connector.verify_webhook(signed(body), body)
    assert [(e.object_type, e.external_id, e.action) for e in result.events] == [
        ("invoice", "239", "updated"),
        ("payment", "77", "created"),
        ("invoice", "241", "deleted"),
        ("Vendor", "12", "updated"),
    ]
    first = result.events[0]
    assert (first.account, first.occurred_at) == (REALM, datetime(2025, 7, 26, 16, 0, tzinfo=UTC))
    assert first.event_id == f"{REALM}:Invoice:239:Update:2025-07-26T16:00:00.000Z"
    assert result.response is None


def test_cloudevents_become_events_with_their_own_ids(connector):
    body = fixture_bytes("webhook_cloudevents.json")
    result = connector.verify_webhook({"Intuit-Signature": signature(VERIFIER, body)}, body)
    assert [(e.event_id[-4:], e.object_type, e.external_id, e.action, e.account) for e in result.events] == [
        ("c001", "invoice", "240", "voided", REALM),
        ("c002", "credit_note", "73", "created", REALM),
    ]
    assert result.events[1].occurred_at == datetime(2025, 7, 26, 16, 10, 9, tzinfo=UTC)


def test_a_forged_signature_is_refused(connector):
    body = fixture_bytes("webhook_legacy.json")
    with pytest.raises(WebhookError) as caught:
        connector.verify_webhook(signed(body, token="someone-elses-token"), body)
    assert caught.value.status == 401


def test_a_body_changed_after_signing_is_refused(connector):
    body = fixture_bytes("webhook_legacy.json")
    headers = signed(body)
    with pytest.raises(WebhookError) as caught:
        connector.verify_webhook(headers, body.replace(b'"id":"239"', b'"id":"240"'))
    assert caught.value.status == 401


@pytest.mark.parametrize("headers", [{}, {"intuit-signature": ""}, {"x-other": "abc"}])
def test_a_missing_signature_is_refused(connector, headers):
    with pytest.raises(WebhookError) as caught:
        connector.verify_webhook(headers, fixture_bytes("webhook_legacy.json"))
    assert caught.value.status == 401


def test_without_a_configured_verifier_token_intuit_is_asked_to_retry(connector, connection):
    connection.credentials = {
        key: value for key, value in connection.credentials.items() if "webhook" not in key
    }
    body = fixture_bytes("webhook_legacy.json")
    with pytest.raises(WebhookError) as caught:
        connector.verify_webhook(signed(body), body)
    assert caught.value.status == 503


@pytest.mark.parametrize("body", [b"not json", b'{"something": "else"}', b"[{}]"])
def test_a_correctly_signed_but_malformed_body_is_a_bad_request(connector, body):
    with pytest.raises(WebhookError) as caught:
        connector.verify_webhook(signed(body), body)
    assert caught.value.status == 400
