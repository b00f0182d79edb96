"""Incoming webhooks: `POST /webhooks/<connection id>/`, one endpoint per connection.

A request is verified, recorded, turned into jobs and answered, all inside the platform's deadline
(Xero 5 s, QuickBooks 3 s): the records themselves are fetched afterwards by the jobs
`sync.jobs.webhook_received` creates. Each event is processed once per connection: its `WebhookDelivery`
row and its jobs are written in one transaction, and a partial unique index on (connection, event id)
turns a replay into a duplicate that is acknowledged and not processed again, even when two copies race.

A connector's `webhook_validation_param` and `webhook_json` (connectors/base.py) say whether a
subscription handshake wants a query parameter echoed back, and whether its bodies are JSON.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from connectors.base import ConnectorError, WebhookError, WebhookEvent, WebhookResult
from connectors.models import Connection, WebhookDelivery
from connectors.registry import UnknownPlatformError

log = logging.getLogger(__name__)
Outcome = WebhookDelivery.Outcome

LOGGED_BODY_CHARS = 200
# A disabled connection answers 503: every platform retries a 5xx (Stripe for 3 days, Business Central
# for 36 hours), so nothing is lost when the connection is enabled again within that window, and a
# connection left disabled ends with the platform flagging the endpoint to its owner. A 4xx would make
# some platforms drop the subscription at once (Business Central deletes it on any other error).
DISABLED_STATUS = 503
DISABLED_RETRY_AFTER = 3600
VALIDATION_TOKEN_LIMIT = 2048
_INSERT_TRIES = 3
_CHUNK = 500


@dataclass
class DeliveryReport:
    """What one verified request came to: events processed, duplicates acknowledged, jobs created."""

    request_id: uuid.UUID
    processed: int = 0
    duplicates: int = 0
    job_ids: list[int] = field(default_factory=list)
    set_aside: int = 0  # events naming another account: passed on to its connection, or ignored


# --- services -----------------------------------------------------------------------------------------
def _event_key(event: WebhookEvent) -> str:
    key = str(event.event_id or "")
    if len(key) > 255:  # keep it unique and indexable; no platform sends ids this long today
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _body_text(body: bytes) -> str:
    # PostgreSQL text cannot hold NUL; the body is kept for people to read, not to be verified again
    return body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def _accept(
    connection: Connection,
    events: list[WebhookEvent],
    *,
    request_id: uuid.UUID,
    body: bytes,
    remote_addr: str | None,
    status: int,
    set_aside: Sequence[tuple[WebhookEvent, str, str]] = (),
) -> DeliveryReport:
    from sync.jobs import webhook_received

    now = timezone.now()
    keys = [_event_key(event) for event in events]
    seen: set[str] = set()
    wanted = sorted({key for key in keys if key})
    for chunk in _chunks(wanted, _CHUNK):
        seen.update(
            WebhookDelivery.objects.filter(
                connection=connection, outcome=Outcome.PROCESSED, event_id__in=chunk
            ).values_list("event_id", flat=True)
        )
    earlier = set(seen)
    plan: list[tuple[str, WebhookEvent, str]] = []  # (key, event, duplicate reason or "") in request order
    for key, event in zip(keys, events, strict=True):
        if key and key in seen:
            reason = "seen before" if key in earlier else "repeated in the same request"
            plan.append((key, event, f"{reason}: acknowledged, not processed again"))
            continue
        if key:
            seen.add(key)
        plan.append((key, event, ""))
    fresh = [event for _, event, duplicate in plan if not duplicate]

    jobs = webhook_received(connection, fresh) if fresh else []
    job_ids = [job.pk for job in jobs]
    # every job of one request fetches the same records: the ones webhook_received found worth fetching
    fetched = {tuple(item) for job in jobs[:1] for item in job.params.get("fetch", [])}

    def row(key: str, event: WebhookEvent, outcome: str, reason: str, ids: list[int]) -> WebhookDelivery:
        return WebhookDelivery(
            connection=connection,
            request_id=request_id,
            event_id=key,
            object_type=str(event.object_type)[:60],
            external_id=str(event.external_id)[:255],
            action=str(event.action)[:40],
            account=str(event.account)[:255],
            occurred_at=event.occurred_at,
            received_at=now,
            outcome=outcome,
            reason=reason,
            status=status,
            job_ids=ids,
            remote_addr=remote_addr,
        )

    def planned(key: str, event: WebhookEvent, duplicate: str) -> WebhookDelivery:
        if duplicate:
            return row(key, event, Outcome.DUPLICATE, duplicate, [])
        if (event.object_type, event.external_id) in fetched:
            return row(key, event, Outcome.PROCESSED, "", job_ids)
        reason = (
            f"nothing to fetch: {event.object_type!r} is not synced"
            if event.external_id
            else "nothing to fetch: the event names no record"
        )
        return row(key, event, Outcome.PROCESSED, reason, [])

    rows = [planned(key, event, duplicate) for key, event, duplicate in plan]
    rows += [row(_event_key(event), event, outcome, reason, []) for event, outcome, reason in set_aside]
    if not rows:  # a handshake or an empty batch: still a verified sign of life worth showing
        rows.append(
            WebhookDelivery(
                connection=connection,
                request_id=request_id,
                received_at=now,
                outcome=Outcome.PROCESSED,
                reason="no events (a handshake or an empty batch)",
                status=status,
                remote_addr=remote_addr,
            )
        )
    rows[0].body = _body_text(body)
    WebhookDelivery.objects.bulk_create(rows, batch_size=_CHUNK)
    Connection.objects.filter(pk=connection.pk).update(last_webhook_at=now)
    return DeliveryReport(
        request_id=request_id,
        processed=len(fresh),
        duplicates=len(plan) - len(fresh),
        job_ids=job_ids,
        set_aside=len(set_aside),
    )


def delivery_accept(
    *,
    connection: Connection,
    events: list[WebhookEvent],
    body: bytes = b"",
    remote_addr: str | None = None,
    status: int = 200,
    set_aside: Sequence[tuple[WebhookEvent, str, str]] = (),
) -> DeliveryReport:
    """Record the verified events of one request and create the jobs that fetch what the new ones name.
    `set_aside`: (event, outcome, reason) of events the request carried for another account, recorded
    with this request and fetching nothing.

    Atomic: rows and jobs commit together or not at all (the jobs' doorbells ring on commit). Events this
    connection processed before, and repeats within the request, are recorded as duplicates and start
    nothing. When a twin request commits the same event first, the unique index refuses ours and the
    whole request is recorded again, its copy of that event now a duplicate.
    """
    request_id = uuid.uuid4()
    for attempt in range(1, _INSERT_TRIES + 1):
        try:
            with transaction.atomic():
                return _accept(
                    connection,
                    events,
                    request_id=request_id,
                    body=body,
                    remote_addr=remote_addr,
                    status=status,
                    set_aside=set_aside,
                )
        except IntegrityError:
            if attempt == _INSERT_TRIES:
                raise
            log.info("webhook for connection %s raced a twin delivery; recording it again", connection.pk)
    raise AssertionError("unreachable")  # pragma: no cover


def events_by_account(
    connection: Connection,
    connector: Any,
    events: Sequence[WebhookEvent],
    *,
    headers: dict[str, str],
    body: bytes,
    remote_addr: str | None = None,
    status: int = 200,
) -> tuple[list[WebhookEvent], list[tuple[WebhookEvent, str, str]]]:
    """(this connection's events, the others set aside) for a request verified on `connection`.

    Xero and Intuit send one app's events for every connected tenant or company to the app's single
    webhook URL, and a Stripe Connect endpoint receives every connected account's. An event naming
    another account (for Stripe, also one naming none: the platform account's own) is passed to the
    connection of that account when that connection verifies the very same request (so it holds the same
    webhook secret: the same app), and is recorded there as its own delivery; when no connection here is
    for that account, or only one of another app, it is ignored, with the reason. Either way this
    connection fetches nothing for it. When the connection of that account is disabled or has no secret
    to verify with, WebhookError(503) asks the platform to send the whole request again later, as that
    connection's own endpoint would: nothing is recorded first, and what was, is a duplicate then.
    """
    expected = connector.webhook_account()
    if expected is None:
        return list(events), []
    own: list[WebhookEvent] = []
    foreign: dict[str, list[WebhookEvent]] = {}
    for event in events:
        account = str(event.account or "")
        if account == expected or (not account and not connector.webhook_unnamed_is_elsewhere):
            own.append(event)
        else:
            foreign.setdefault(account, []).append(event)
    found = {account: _connection_of(connection, account, headers, body) for account in foreign}
    for account, (_, why, later) in found.items():
        if later:
            raise WebhookError(f"events of account {account!r}: {why}; asked to send again later", status=503)
    set_aside: list[tuple[WebhookEvent, str, str]] = []
    for account, theirs in foreign.items():
        other, why, _ = found[account]
        named = f"names account {account!r}" if account else "names no account (the platform's own)"
        if other is None:
            reason = f"{named}, not this connection's ({expected}): {why}"
            set_aside += [(event, Outcome.IGNORED, reason) for event in theirs]
            continue
        report = delivery_accept(
            connection=other, events=theirs, body=body, remote_addr=remote_addr, status=status
        )
        reason = f"{named}: passed to connection #{other.pk} ({other.name}), request {report.request_id}"
        set_aside += [(event, Outcome.ROUTED, reason) for event in theirs]
    return own, set_aside


def _connection_of(
    connection: Connection, account: str, headers: dict[str, str], body: bytes
) -> tuple[Connection | None, str, bool]:
    """(the other connection of the same platform for `account` that verifies this request, or None;
    why none; whether the platform should send the request again later)."""
    mismatch = ""
    for other in (
        Connection.objects.filter(platform=connection.platform).exclude(pk=connection.pk).order_by("pk")
    ):
        try:
            connector = other.connector()
        except UnknownPlatformError:
            continue
        if (connector.webhook_account() or "") != account:
            continue
        label = f"connection #{other.pk} ({other.name}) of that account"
        if other.health == Connection.Health.DISABLED:
            return None, f"{label} is disabled", True
        try:
            connector.verify_webhook(headers, body)
        except WebhookError as exc:
            if exc.status >= 500:  # no secret stored to verify with: configuration, not forgery
                return None, f"{label} cannot verify it yet ({exc})", True
            mismatch = f"{label} does not verify this request (another app's secret)"
            continue
        except ConnectorError:
            mismatch = f"{label} cannot read this request"
            continue
        return other, "", False
    return None, mismatch or f"no {connection.platform} connection here is for that account", False


def delivery_reject(
    *, connection: Connection, reason: str, status: int, remote_addr: str | None = None
) -> WebhookDelivery:
    """Record a refused request: no body (it may be anyone's), no events, nothing else changes."""
    return WebhookDelivery.objects.create(
        connection=connection,
        request_id=uuid.uuid4(),
        received_at=timezone.now(),
        outcome=Outcome.REJECTED,
        reason=reason[:500],
        status=status,
        remote_addr=remote_addr,
    )


def deliveries_purge(*, days: int | None = None) -> int:
    """Delete deliveries older than WEBHOOK_RETENTION_DAYS (a daily schedule), a slice at a time so no
    long lock holds up incoming webhooks. Safe to run twice."""
    keep = days if days is not None else settings.WEBHOOK_RETENTION_DAYS
    cutoff = timezone.now() - timedelta(days=keep)
    total = 0
    while True:
        ids = list(WebhookDelivery.objects.filter(received_at__lt=cutoff).values_list("pk", flat=True)[:5000])
        if not ids:
            return total
        total += WebhookDelivery.objects.filter(pk__in=ids).delete()[0]


# --- the endpoint ---------------------------------------------------------------------------------------
def _remote_addr(request: HttpRequest) -> str | None:
    raw = str(request.META.get("REMOTE_ADDR") or "")
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return None


def _receives_webhooks(connector: Any) -> bool:
    return any("webhook" in operations for operations in connector.capabilities.values())


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    # no type at all is let through: the connector's own parse then refuses a body that is not JSON
    return media in ("", "application/json") or media.endswith("+json")


def _read_body(request: HttpRequest, limit: int) -> bytes | None:
    """The raw body, or None when it is larger than `limit` (known from Content-Length when sent, so
    an oversized body is refused before any of it is read)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


def _refuse(
    request: HttpRequest,
    connection: Connection,
    status: int,
    reason: str,
    *,
    body: bytes = b"",
    text: str = "",
) -> HttpResponse:
    remote = _remote_addr(request)
    delivery_reject(connection=connection, reason=reason, status=status, remote_addr=remote)
    # never the signature headers or the credentials; the body only as a short excerpt
    log.warning(
        "webhook refused: connection=%s platform=%s status=%s reason=%s remote=%s bytes=%s body=%r",
        connection.pk,
        connection.platform,
        status,
        reason,
        remote,
        len(body),
        body[:LOGGED_BODY_CHARS].decode("utf-8", errors="replace"),
    )
    response = HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
    if status == DISABLED_STATUS:
        response["Retry-After"] = str(DISABLED_RETRY_AFTER)
    return response


def _answer(result: WebhookResult, report: DeliveryReport) -> HttpResponse:
    if result.response is not None:
        status, content, content_type = result.response
        return HttpResponse(content, status=status, content_type=content_type)
    received = report.processed + report.duplicates + report.set_aside
    return JsonResponse({"received": received, "duplicates": report.duplicates})


@csrf_exempt
def webhook_receive(request: HttpRequest, connection_id: int) -> HttpResponse:
    """Verify, record, enqueue, answer. The status of a refusal is the one the platform expects."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    connection = Connection.objects.filter(pk=connection_id).first()
    try:
        connector = connection.connector() if connection is not None else None
    except UnknownPlatformError:
        connector = None
    if connection is None or connector is None or not _receives_webhooks(connector):
        return HttpResponse("no webhook endpoint here", status=404, content_type="text/plain; charset=utf-8")
    if connection.health == Connection.Health.DISABLED:
        return _refuse(request, connection, DISABLED_STATUS, "the connection is disabled", text="disabled")

    param = connector.webhook_validation_param
    if param and param in request.GET:
        token = request.GET[param]
        if not token or len(token) > VALIDATION_TOKEN_LIMIT:
            return _refuse(request, connection, 400, f"{param} is empty or too long", text=f"bad {param}")
        log.info("webhook subscription handshake for connection %s", connection.pk)
        return HttpResponse(token, content_type="text/plain; charset=utf-8")

    limit = settings.WEBHOOK_MAX_BODY_BYTES
    body = _read_body(request, limit)
    if body is None:
        return _refuse(request, connection, 413, f"body larger than {limit} bytes", text="body too large")
    content_type = request.META.get("CONTENT_TYPE", "")
    if connector.webhook_json and not _is_json(content_type):
        reason = f"Content-Type {content_type[:100]!r} is not JSON"
        return _refuse(request, connection, 400, reason, body=body, text=reason)

    try:
        result = connector.verify_webhook(dict(request.headers), body)
    except WebhookError as exc:
        # the status the platform expects (Xero: 401, always an empty body); the reason stays with us
        return _refuse(request, connection, exc.status, str(exc), body=body)
    except ConnectorError as exc:  # a signed body the connector could not read
        return _refuse(request, connection, 400, f"malformed: {exc}", body=body)

    status = result.response[0] if result.response is not None else 200
    remote = _remote_addr(request)
    try:
        own, set_aside = events_by_account(
            connection,
            connector,
            list(result.events),
            headers=dict(request.headers),
            body=body,
            remote_addr=remote,
            status=status,
        )
    except WebhookError as exc:  # the connection of another account in the request cannot take it yet
        return _refuse(request, connection, exc.status, str(exc), body=body)
    report = delivery_accept(
        connection=connection, events=own, body=body, remote_addr=remote, status=status, set_aside=set_aside
    )
    return _answer(result, report)
