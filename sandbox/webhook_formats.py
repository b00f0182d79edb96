"""What each sandbox platform sends as webhooks: its events for the records a request changed, its
bodies, its signature headers, its retry schedule (../vendor-specs/NOTES-part1.md; sandbox/webhooks.py
queues and sends them).

- Stripe: one event per request, the Event object as JSON, `Stripe-Signature: t=<unix>,v1=<hex
  HMAC-SHA256(whsec_ secret, "t.body")>` made at each attempt; in test mode three retries over a few hours.
- QuickBooks: the changes of one request together, as `{"eventNotifications": [...]}` or a JSON array of
  CloudEvents (per subscription), `intuit-signature: base64 HMAC-SHA256(verifier token, body)`; retried
  after 10 s, 20 s, 30 s, 5 min, 20 min, 2 h, 4 h and 6 h, in order: a later delivery waits for the one
  before it.
- Xero: `{"events": [...], "firstEventSequence", "lastEventSequence", "entropy"}` for INVOICE, CREDITNOTE and
  CONTACT changes, `x-xero-signature: base64 HMAC-SHA256(webhook key, body)`, only once the subscription
  passed "intent to receive"; retried for up to 24 hours, after which the subscription is disabled.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import secrets
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from sandbox.models import SandboxRecord, SandboxWebhook


@dataclass(frozen=True)
class Change:
    """One record a request changed: created in it or not, and its data before the request's first change."""

    kind: str
    record_id: str
    created: bool
    old: dict[str, Any] | None


@dataclass(frozen=True)
class Event:
    topic: str  # what a subscription picks: a Stripe event type, a QuickBooks entity, a Xero category
    event_id: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Platform:
    events: Callable[[str, list[Change]], list[Event]]
    body: Callable[[SandboxWebhook, list[Event], dict[str, int]], bytes]
    headers: Callable[[SandboxWebhook, bytes], dict[str, str]]
    secret_new: Callable[[], str]
    retry_delays: tuple[float, ...]
    timeout: float
    one_event_per_request: bool = False
    ordered: bool = False
    topics: frozenset[str] = field(default_factory=frozenset)  # empty: any that looks like one
    formats: tuple[str, ...] = ("",)


def hmac_b64(key: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def _compact(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _changed_rows(account: str, platform: str, changes: list[Change]) -> dict[tuple[str, str], SandboxRecord]:
    """The rows as the request leaves them (a savepoint may have undone a change; a delete marks them)."""
    wanted: dict[str, list[str]] = {}
    for change in changes:
        wanted.setdefault(change.kind, []).append(change.record_id)
    rows: dict[tuple[str, str], SandboxRecord] = {}
    for kind, ids in wanted.items():
        for row in SandboxRecord.objects.filter(
            platform=platform, account=account, kind=kind, record_id__in=ids
        ).only("kind", "record_id", "data", "deleted"):
            rows[(row.kind, row.record_id)] = row
    return rows


# --- Stripe ---------------------------------------------------------------------------------------------
def _stripe_events(account: str, changes: list[Change]) -> list[Event]:
    ids = [change.record_id for change in changes if change.kind == "event" and change.created]
    rows = _changed_rows(account, "stripe", [c for c in changes if c.kind == "event" and c.created])
    events = [rows[("event", i)].data for i in ids if ("event", i) in rows]
    events.sort(key=lambda event: (event.get("created", 0), event["id"]))
    return [Event(topic=str(event["type"]), event_id=str(event["id"]), data=event) for event in events]


def _stripe_body(hook: SandboxWebhook, events: list[Event], fanout: dict[str, int]) -> bytes:
    (event,) = events
    # Stripe sends the event pretty-printed, with how many endpoints still wait for it
    return json.dumps({**event.data, "pending_webhooks": fanout.get(event.event_id, 1)}, indent=2).encode()


def stripe_signature(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _stripe_headers(hook: SandboxWebhook, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Cache-Control": "no-cache",
        "Stripe-Signature": stripe_signature(hook.secret, body, int(time.time())),
    }


# --- QuickBooks -----------------------------------------------------------------------------------------
QUICKBOOKS_ENTITIES = frozenset({"Invoice", "Payment", "CreditMemo", "Customer", "Item", "Account"})
_QB_ACTIONS = {"Create": "created", "Update": "updated", "Delete": "deleted", "Void": "voided"}


def _voided(data: dict[str, Any] | None) -> bool:
    return str((data or {}).get("PrivateNote") or "").startswith("Voided")


def _utc_millis(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _qb_updated(data: dict[str, Any]) -> str:
    stamp = str((data.get("MetaData") or {}).get("LastUpdatedTime") or "")
    try:
        return _utc_millis(datetime.fromisoformat(stamp))
    except ValueError:
        return _utc_millis(timezone.now())


def _quickbooks_events(account: str, changes: list[Change]) -> list[Event]:
    relevant = [change for change in changes if change.kind in QUICKBOOKS_ENTITIES]
    rows = _changed_rows(account, "quickbooks", relevant)
    events = []
    for change in relevant:
        row = rows.get((change.kind, change.record_id))
        if row is None:  # created and undone within the request
            continue
        if row.deleted:
            operation = "Delete"
        elif change.created:
            operation = "Create"
        elif _voided(row.data) and not _voided(change.old):
            operation = "Void"
        else:
            operation = "Update"
        updated = _qb_updated(row.data)
        entity = {"name": change.kind, "id": change.record_id, "operation": operation, "lastUpdated": updated}
        events.append(
            Event(
                topic=change.kind,
                event_id=f"{change.kind}:{change.record_id}:{operation}:{updated}",
                data=entity,
            )
        )
    return events


def _cloud_event(account: str, entity: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "intuit.sandbox",
        "type": f"qbo.{entity['name'].lower()}.{_QB_ACTIONS[entity['operation']]}.v1",
        "time": entity["lastUpdated"],
        "intuitentityid": entity["id"],
        "intuitaccountid": account,
        "data": {},
    }


def _quickbooks_body(hook: SandboxWebhook, events: list[Event], fanout: dict[str, int]) -> bytes:
    entities = [event.data for event in events]
    if hook.payload_format == SandboxWebhook.Format.CLOUDEVENTS:
        return _compact([_cloud_event(hook.account, entity) for entity in entities])
    notification = {"realmId": hook.account, "dataChangeEvent": {"entities": entities}}
    return _compact({"eventNotifications": [notification]})


def _quickbooks_headers(hook: SandboxWebhook, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "intuit-signature": hmac_b64(hook.secret, body),
    }


# --- Xero -----------------------------------------------------------------------------------------------
XERO_CATEGORIES = {"invoice": ("INVOICE", "Invoices"), "creditnote": ("CREDITNOTE", "CreditNotes")}
XERO_CATEGORIES["contact"] = ("CONTACT", "Contacts")


def _xero_events(account: str, changes: list[Change]) -> list[Event]:
    relevant = [change for change in changes if change.kind in XERO_CATEGORIES]
    rows = _changed_rows(account, "xero", relevant)
    now = timezone.now().astimezone(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}"
    root = f"{settings.SANDBOX_BASE_URL}/sandbox/xero/api.xro/2.0"
    events = []
    for change in relevant:
        row = rows.get((change.kind, change.record_id))
        if row is None:
            continue
        category, collection = XERO_CATEGORIES[change.kind]
        event: dict[str, Any] = {
            "resourceUrl": f"{root}/{collection}/{change.record_id}",
            "resourceId": change.record_id,
            "tenantId": account,
            "tenantType": "ORGANISATION",
            "eventCategory": category,
            "eventType": "CREATE" if change.created else "UPDATE",
            "eventDateUtc": stamp,
        }
        if category == "CREDITNOTE":
            event["data"] = {"Type": row.data.get("Type"), "Status": row.data.get("Status")}
        events.append(Event(topic=category, event_id=f"{category}:{change.record_id}:{stamp}", data=event))
    return events


def _entropy() -> str:
    return "".join(random.choices(string.ascii_uppercase, k=20))


def _xero_body(hook: SandboxWebhook, events: list[Event], fanout: dict[str, int]) -> bytes:
    SandboxWebhook.objects.filter(pk=hook.pk).update(sequence=F("sequence") + len(events))
    last = SandboxWebhook.objects.values_list("sequence", flat=True).get(pk=hook.pk)
    return _compact(
        {
            "events": [event.data for event in events],
            "firstEventSequence": last - len(events) + 1,
            "lastEventSequence": last,
            "entropy": _entropy(),
        }
    )


def _xero_headers(hook: SandboxWebhook, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "x-xero-signature": hmac_b64(hook.secret, body),
    }


def intent_body() -> bytes:
    return _compact({"events": [], "lastEventSequence": 0, "firstEventSequence": 0, "entropy": _entropy()})


PLATFORMS: dict[str, Platform] = {
    "stripe": Platform(
        events=_stripe_events,
        body=_stripe_body,
        headers=_stripe_headers,
        secret_new=lambda: f"whsec_{secrets.token_urlsafe(24)}",
        # test mode: "three times over a few hours" (the intervals are not published)
        retry_delays=(3600.0, 2 * 3600.0, 3 * 3600.0),
        timeout=20.0,
        one_event_per_request=True,
    ),
    "quickbooks": Platform(
        events=_quickbooks_events,
        body=_quickbooks_body,
        headers=_quickbooks_headers,
        secret_new=lambda: str(uuid.uuid4()),
        retry_delays=(10.0, 20.0, 30.0, 300.0, 1200.0, 7200.0, 14400.0, 21600.0),
        timeout=3.0,
        ordered=True,
        topics=QUICKBOOKS_ENTITIES,
        formats=(SandboxWebhook.Format.LEGACY, SandboxWebhook.Format.CLOUDEVENTS),
    ),
    "xero": Platform(
        events=_xero_events,
        body=_xero_body,
        headers=_xero_headers,
        secret_new=lambda: base64.b64encode(secrets.token_bytes(48)).decode(),
        # "with decreasing frequency for up to 24 hours" (the intervals are not published)
        retry_delays=(60.0, 300.0, 900.0, 3600.0, 3 * 3600.0, 6 * 3600.0, 12 * 3600.0),
        timeout=5.0,
        topics=frozenset(category for category, _ in XERO_CATEGORIES.values()),
    ),
}
