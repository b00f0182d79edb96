"""QuickBooks Online webhooks: the signature check and both payload shapes.

Intuit signs the raw body: header `intuit-signature` = base64(HMAC-SHA256(verifier token, body)). The
body is either the legacy `{"eventNotifications": [...]}` document or, since the move to CloudEvents, a
JSON array of events (`"type": "qbo.invoice.created.v1"`). Both carry ids only; the records are fetched
afterwards. A notification has no timestamp in its signature, so a replayed one cannot be told apart:
events are idempotent on our side (`event_id`) instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from connectors.base import WebhookError, WebhookEvent, WebhookResult
from connectors.quickbooks.parsing import parse_timestamp

SIGNATURE_HEADER = "intuit-signature"
# QuickBooks entity name (lower case) -> canonical object type
OBJECT_TYPES = {
    "invoice": "invoice",
    "payment": "payment",
    "creditmemo": "credit_note",
    "customer": "customer",
}
ACTIONS = {
    "create": "created",
    "update": "updated",
    "delete": "deleted",
    "merge": "merged",
    "void": "voided",
    "emailed": "emailed",
}


def signature(verifier_token: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()).decode()


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower().replace("_", "-") in (name, f"http-{name}"):
            return value
    return ""


def _object_type(entity: str) -> str:
    return OBJECT_TYPES.get(entity.lower(), entity)


def verify(verifier_token: str, headers: Mapping[str, str], body: bytes) -> WebhookResult:
    if not verifier_token:
        # our configuration is missing, not the request forged: ask Intuit to try again later
        raise WebhookError("no webhook_verifier_token is configured for this connection", status=503)
    sent = _header(headers, SIGNATURE_HEADER).strip()
    if not sent:
        raise WebhookError(f"the {SIGNATURE_HEADER} header is missing", status=401)
    if not hmac.compare_digest(sent.encode(), signature(verifier_token, body).encode()):
        raise WebhookError(f"the {SIGNATURE_HEADER} header does not match the body", status=401)
    try:
        document = json.loads(body)
    except ValueError:
        raise WebhookError("the body is not JSON", status=400) from None
    if isinstance(document, list):
        return WebhookResult(events=[_cloud_event(event) for event in document])
    if isinstance(document, dict) and isinstance(document.get("eventNotifications"), list):
        return WebhookResult(events=_legacy_events(document["eventNotifications"]))
    raise WebhookError("the body is neither eventNotifications nor a list of CloudEvents", status=400)


def _legacy_events(notifications: list[Any]) -> list[WebhookEvent]:
    events = []
    for notification in notifications:
        if not isinstance(notification, dict):
            raise WebhookError("an event notification is not an object", status=400)
        realm = str(notification.get("realmId") or "")
        change = notification.get("dataChangeEvent") or {}
        entities = (change.get("entities") or []) if isinstance(change, dict) else None
        if not isinstance(entities, list) or not all(isinstance(entity, dict) for entity in entities):
            raise WebhookError("dataChangeEvent.entities is not a list of objects", status=400)
        for entity in entities:
            name, entity_id = str(entity.get("name") or ""), str(entity.get("id") or "")
            operation = str(entity.get("operation") or "")
            last_updated = str(entity.get("lastUpdated") or "")
            events.append(
                WebhookEvent(
                    event_id=f"{realm}:{name}:{entity_id}:{operation}:{last_updated}",
                    object_type=_object_type(name),
                    external_id=entity_id,
                    action=ACTIONS.get(operation.lower(), operation.lower()),
                    occurred_at=parse_timestamp(last_updated),
                    account=realm,
                )
            )
    return events


def _cloud_event(event: Any) -> WebhookEvent:
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        raise WebhookError("a CloudEvent without id or type", status=400)
    # "qbo.<entity>.<action>.v1"
    parts = str(event["type"]).split(".")
    entity = parts[1] if len(parts) > 2 else str(event["type"])
    action = parts[2] if len(parts) > 3 else ""
    return WebhookEvent(
        event_id=str(event["id"]),
        object_type=_object_type(entity),
        external_id=str(event.get("intuitentityid") or ""),
        action=action,
        occurred_at=parse_timestamp(event.get("time")),
        account=str(event.get("intuitaccountid") or ""),
    )
