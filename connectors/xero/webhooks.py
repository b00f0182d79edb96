"""Xero webhooks: check the signature on the raw body, then list what changed (never trusting the body
for the records themselves: the sync re-fetches each one).

x-xero-signature = base64(HMAC-SHA256(key=the app's webhook key, msg=raw body)). Xero wants 200 with an
empty body when it matches and 401 when it does not, within 5 seconds; its "intent to receive" check
sends a signed (or deliberately mis-signed) body whose `events` list is empty.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from connectors.base import ValidationError, WebhookError, WebhookEvent, WebhookResult
from connectors.xero import records

EMPTY_OK = (200, b"", "text/plain")
CATEGORIES = {  # eventCategory -> (canonical object type, the document Type that makes it a sale)
    "INVOICE": ("invoice", records.SALES_INVOICE),
    "CREDITNOTE": ("credit_note", records.SALES_CREDIT_NOTE),
    "CONTACT": ("customer", ""),
}
ACTIONS = {"CREATE": "created", "UPDATE": "updated"}


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


def signature(key: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def verify(key: str, headers: Mapping[str, str], body: bytes) -> WebhookResult:
    if not key:
        raise WebhookError("no Xero webhook key is stored for this connection", status=401)
    given = _header(headers, "x-xero-signature").strip()
    if not given:
        raise WebhookError("the Xero webhook has no x-xero-signature header", status=401)
    if not hmac.compare_digest(signature(key, body).encode(), given.encode()):
        raise WebhookError("the Xero webhook signature does not match its body", status=401)
    try:
        events = json.loads(body)["events"]
        if not isinstance(events, list):
            raise TypeError("events is not a list")
        parsed = [event_of(event) for event in events]
    except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as exc:
        raise WebhookError(f"the Xero webhook body is malformed: {exc}", status=400) from exc
    return WebhookResult(events=parsed, response=EMPTY_OK)


def event_of(event: Mapping[str, Any]) -> WebhookEvent:
    category = str(event["eventCategory"])
    object_type, sales_type = CATEGORIES.get(category, (category, ""))
    document_type = (event.get("data") or {}).get("Type")
    if sales_type and document_type and document_type != sales_type:
        object_type = str(document_type)  # a bill or a supplier credit: not a sales document
    stamp = event.get("eventDateUtc")
    # Xero gives events no id of their own; these fields together name one change
    identity = "|".join(
        str(event.get(name, ""))
        for name in ("tenantId", "eventCategory", "resourceId", "eventType", "eventDateUtc")
    )
    action = str(event.get("eventType", ""))
    return WebhookEvent(
        event_id=hashlib.sha256(identity.encode()).hexdigest()[:32],
        object_type=object_type,
        external_id=str(event["resourceId"]),
        action=ACTIONS.get(action, action.lower()),
        occurred_at=records.xero_datetime(stamp, field="eventDateUtc") if stamp else None,
        account=str(event.get("tenantId") or ""),
    )
