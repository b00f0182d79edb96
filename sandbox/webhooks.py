"""Webhooks the sandboxes send: subscriptions, each platform's bodies and signatures, a delivery queue.

A change made through a sandbox's API is collected by `sandbox.core` while the request runs. Before the
request's transaction commits, `changes_publish` turns the changes into the platform's events and queues
one `SandboxWebhookDelivery` per request body and subscription, in that same transaction: a request that
is rolled back sends nothing, one that commits is never forgotten. After the commit a background thread
(`deliveries_kick`) sends what is due, so the sandbox's own answer never waits for a webhook; a non-2xx
answer, a timeout or a refused connection is retried on the platform's own schedule (times
SANDBOX_WEBHOOK_DELAY_SCALE) and given up after it. Several server processes may send: a delivery is
claimed with a conditional update, and one whose sender died is sent again when its lease runs out.

What each platform sends, and when it retries: sandbox/webhook_formats.py.
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from sandbox.models import SandboxWebhook, SandboxWebhookDelivery
from sandbox.webhook_formats import PLATFORMS, Change, Platform, hmac_b64, intent_body

__all__ = ["PLATFORMS", "Change", "WebhookSubscriptionError", "changes_publish", "deliveries_kick"]

log = logging.getLogger(__name__)
Status = SandboxWebhook.Status
State = SandboxWebhookDelivery.State
OPEN = (State.PENDING, State.SENDING)
LEASE_SECONDS = 120  # a claimed delivery whose sender died is sent again after this
IDLE_POLL_SECONDS = 30.0
ERROR_CHARS = 300
INTENT_CHECKS = (True, False, True, False)  # correctly / incorrectly signed requests Xero's check sends


class WebhookSubscriptionError(ValueError):
    """A subscription refused: names the field and the value."""

    def __init__(self, message: str, *, field: str, value: Any) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


# --- subscriptions --------------------------------------------------------------------------------------
def _platform(name: str) -> Platform:
    try:
        return PLATFORMS[name]
    except KeyError:
        raise WebhookSubscriptionError(
            f"platform {name!r} sends no webhooks; one of {', '.join(sorted(PLATFORMS))}",
            field="platform",
            value=name,
        ) from None


def _clean_url(url: str) -> str:
    parts = urlsplit(str(url or "").strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise WebhookSubscriptionError(f"url {url!r} is not an http(s) URL", field="url", value=url)
    return parts.geturl()


def _clean_events(spec: Platform, platform: str, events: Iterable[str]) -> list[str]:
    cleaned = []
    for index, value in enumerate(events):
        topic = str(value).strip()
        if spec.topics:
            known = {t.lower(): t for t in spec.topics}
            if topic.lower() not in known:
                raise WebhookSubscriptionError(
                    f"events[{index}] {topic!r} is not one of {', '.join(sorted(spec.topics))}",
                    field=f"events[{index}]",
                    value=topic,
                )
            topic = known[topic.lower()]
        elif topic != "*" and not all(part.replace("_", "").isalnum() for part in topic.split(".")):
            raise WebhookSubscriptionError(
                f"enabled_events[{index}] {topic!r} is not an event type", field="enabled_events", value=topic
            )
        cleaned.append(topic)
    return cleaned


def subscription_check(*, platform: str, url: str, events: Iterable[str], payload_format: str = "") -> None:
    """Raise WebhookSubscriptionError (naming the field) for what webhook_subscribe would refuse."""
    spec = _platform(platform)
    _clean_url(url)
    _clean_events(spec, platform, events)
    if (payload_format or spec.formats[0]) not in spec.formats:
        raise WebhookSubscriptionError(
            f"format {payload_format!r} is not one of {', '.join(f for f in spec.formats if f)}",
            field="payload_format",
            value=payload_format,
        )


def webhook_subscribe(
    *,
    platform: str,
    account: str,
    url: str,
    events: Iterable[str] = (),
    payload_format: str = "",
    secret: str = "",
    description: str = "",
    metadata: dict[str, str] | None = None,
    client_id: str = "",
    public_id: str = "",
) -> SandboxWebhook:
    """A new subscription; its secret is made here unless given. A Xero one starts "intent to receive
    required" and is checked at once (after the commit)."""
    spec = _platform(platform)
    if not account:
        raise WebhookSubscriptionError("account is required", field="account", value=account)
    fmt = payload_format or spec.formats[0]
    if fmt not in spec.formats:
        raise WebhookSubscriptionError(
            f"format {payload_format!r} is not one of {', '.join(f for f in spec.formats if f)}",
            field="format",
            value=payload_format,
        )
    hook = SandboxWebhook.objects.create(
        public_id=public_id or str(uuid.uuid4()),
        platform=platform,
        account=account,
        url=_clean_url(url),
        secret=secret or spec.secret_new(),
        events=_clean_events(spec, platform, events),
        payload_format=fmt,
        status=Status.INTENT_REQUIRED if platform == "xero" else Status.ENABLED,
        description=description,
        metadata=metadata or {},
        client_id=client_id,
    )
    if platform == "xero":
        intent_request(hook)
    return hook


def webhook_update(
    hook: SandboxWebhook,
    *,
    url: str | None = None,
    events: Iterable[str] | None = None,
    enabled: bool | None = None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
) -> SandboxWebhook:
    """Change a subscription. A Xero one whose URL changes, or that is enabled again, is checked again."""
    spec = _platform(hook.platform)
    recheck = False
    if url is not None and _clean_url(url) != hook.url:
        hook.url = _clean_url(url)
        recheck = True
    if events is not None:
        hook.events = _clean_events(spec, hook.platform, events)
    if description is not None:
        hook.description = description
    if metadata is not None:
        hook.metadata = metadata
    if enabled is False:
        hook.status = Status.DISABLED
    elif enabled is True and hook.status == Status.DISABLED:
        hook.status = Status.ENABLED
        recheck = True
    hook.save()
    if recheck and hook.platform == "xero":
        intent_request(hook)
    return hook


def intent_request(hook: SandboxWebhook) -> SandboxWebhookDelivery:
    """Xero's "intent to receive": the subscription sends events only after its URL answered a series of
    correctly signed requests with 200 and incorrectly signed ones with 401, each with an empty body."""
    SandboxWebhook.objects.filter(pk=hook.pk).update(
        status=Status.INTENT_REQUIRED, status_reason="intent to receive requested", confirmed_at=None
    )
    hook.status = Status.INTENT_REQUIRED
    delivery = SandboxWebhookDelivery.objects.create(
        webhook=hook, kind=SandboxWebhookDelivery.Kind.INTENT, next_attempt_at=timezone.now()
    )
    transaction.on_commit(deliveries_kick)
    return delivery


def _subscribed(hook: SandboxWebhook, topic: str) -> bool:
    return not hook.events or "*" in hook.events or topic in hook.events


def changes_publish(platform: str, account: str, changes: list[Change]) -> int:
    """Queue what the enabled subscriptions of this account are to be sent about `changes`; called inside
    the transaction that made them. Returns the number of deliveries queued."""
    spec = PLATFORMS.get(platform)
    if spec is None or not changes:
        return 0
    hooks = list(SandboxWebhook.objects.filter(platform=platform, account=account, status=Status.ENABLED))
    if not hooks:
        return 0
    events = spec.events(account, changes)
    fanout = {event.event_id: sum(_subscribed(hook, event.topic) for hook in hooks) for event in events}
    now = timezone.now()
    rows = []
    for hook in sorted(hooks, key=lambda h: h.pk):
        wanted = [event for event in events if _subscribed(hook, event.topic)]
        groups = [[event] for event in wanted] if spec.one_event_per_request else [wanted] if wanted else []
        for group in groups:
            rows.append(
                SandboxWebhookDelivery(
                    webhook=hook,
                    event_ids=[event.event_id for event in group],
                    body=spec.body(hook, group, fanout).decode(),
                    next_attempt_at=now,
                )
            )
    if rows:
        SandboxWebhookDelivery.objects.bulk_create(rows)
        transaction.on_commit(deliveries_kick)
    return len(rows)


# --- sending --------------------------------------------------------------------------------------------
def _scale() -> float:
    return float(getattr(settings, "SANDBOX_WEBHOOK_DELAY_SCALE", 1.0))


def _post(url: str, body: bytes, headers: dict[str, str], seconds: float) -> tuple[int | None, str, str]:
    """(status or None, the answer's first characters, the error when there was no answer)."""
    try:
        response = requests.post(url, data=body, headers=headers, timeout=seconds, allow_redirects=False)
    except requests.RequestException as exc:
        return None, "", f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
    return response.status_code, response.text[:ERROR_CHARS], ""


def _claim(now: datetime) -> SandboxWebhookDelivery | None:
    due = (
        SandboxWebhookDelivery.objects.filter(state__in=OPEN, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", "webhook_id", "webhook__platform")[:50]
    )
    for pk, hook_id, platform in due:
        ordered = PLATFORMS[platform].ordered if platform in PLATFORMS else False
        if ordered:
            blocker = (
                SandboxWebhookDelivery.objects.filter(webhook_id=hook_id, state__in=OPEN, pk__lt=pk)
                .order_by("pk")
                .values_list("next_attempt_at", flat=True)
                .first()
            )
            if blocker is not None:
                # QuickBooks: nothing newer goes out before the older one is acknowledged (or given up)
                SandboxWebhookDelivery.objects.filter(pk=pk, state=State.PENDING).update(
                    next_attempt_at=max(blocker, now)
                )
                continue
        taken = SandboxWebhookDelivery.objects.filter(pk=pk, state__in=OPEN, next_attempt_at__lte=now).update(
            state=State.SENDING, next_attempt_at=now + timedelta(seconds=LEASE_SECONDS), lease_until=now
        )
        if taken:
            return SandboxWebhookDelivery.objects.select_related("webhook").get(pk=pk)
    return None


def _finish(delivery: SandboxWebhookDelivery, status: int | None, error: str, *, retry: bool = True) -> None:
    hook, now = delivery.webhook, timezone.now()
    delivery.attempts += 1
    delivery.last_status = status
    delivery.last_error = error[:ERROR_CHARS]
    delivery.lease_until = None
    entry: dict[str, Any] = {"at": now.isoformat(), "status": status, "error": delivery.last_error}
    delays = PLATFORMS[hook.platform].retry_delays
    if not error:
        delivery.state, delivery.delivered_at = State.DELIVERED, now
    elif retry and delivery.attempts <= len(delays):
        delivery.state = State.PENDING
        delivery.next_attempt_at = now + timedelta(seconds=delays[delivery.attempts - 1] * _scale())
        entry["next_attempt_at"] = delivery.next_attempt_at.isoformat()
    else:
        delivery.state = State.FAILED
        if retry and hook.platform == "xero":  # Xero disables a subscription it could not reach for 24 h
            SandboxWebhook.objects.filter(pk=hook.pk).update(
                status=Status.DISABLED, status_reason=f"deliveries failed for 24 hours: {delivery.last_error}"
            )
    if delivery.state != State.PENDING and PLATFORMS[hook.platform].ordered:
        # the deliveries queued behind this one may go now
        SandboxWebhookDelivery.objects.filter(webhook=hook, state=State.PENDING, attempts=0).update(
            next_attempt_at=now
        )
    delivery.log = [*delivery.log, entry]
    delivery.save(
        update_fields=[
            "attempts",
            "last_status",
            "last_error",
            "lease_until",
            "state",
            "delivered_at",
            "next_attempt_at",
            "log",
        ]
    )


def _send_events(delivery: SandboxWebhookDelivery) -> None:
    hook = delivery.webhook
    if hook.status != Status.ENABLED:  # disabled or deleted meanwhile: the platforms stop retrying
        _finish(delivery, None, f"the subscription is {hook.get_status_display().lower()}", retry=False)
        return
    spec = PLATFORMS[hook.platform]
    body = delivery.body.encode()
    status, text, error = _post(hook.url, body, spec.headers(hook, body), spec.timeout)
    if status is not None and not 200 <= status < 300:
        error = f"answered {status}: {text}".strip()
    _finish(delivery, status, error)


def _send_intent(delivery: SandboxWebhookDelivery) -> None:
    hook = delivery.webhook
    problem, status = "", None
    for signed in INTENT_CHECKS:
        body = intent_body()
        key = hook.secret if signed else base64.b64encode(secrets.token_bytes(48)).decode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "x-xero-signature": hmac_b64(key, body),
        }
        status, text, error = _post(hook.url, body, headers, PLATFORMS["xero"].timeout)
        expected = 200 if signed else 401
        if status != expected or text:
            how = "correctly" if signed else "incorrectly"
            got = error or f"{status}" + (f" with a body {text[:80]!r}" if text else "")
            problem = f"a {how} signed request got {got}; expected {expected} with an empty body"
            break
    now = timezone.now()
    if problem:
        SandboxWebhook.objects.filter(pk=hook.pk).update(status=Status.INTENT_REQUIRED, status_reason=problem)
    else:
        SandboxWebhook.objects.filter(pk=hook.pk, status=Status.INTENT_REQUIRED).update(
            status=Status.ENABLED, status_reason="", confirmed_at=now
        )
    # no automatic retry: Xero's check runs again when the developer asks for it
    _finish(delivery, status, problem, retry=False)


def deliveries_send_due() -> float | None:
    """Send every delivery due now; seconds until the next one is due, or None when none is waiting."""
    while (delivery := _claim(timezone.now())) is not None:
        try:
            if delivery.kind == SandboxWebhookDelivery.Kind.INTENT:
                _send_intent(delivery)
            else:
                _send_events(delivery)
        except Exception as exc:  # one bad delivery never stops the others; its lease brings it back
            log.exception("sandbox webhook delivery %s failed", delivery.pk)
            SandboxWebhookDelivery.objects.filter(pk=delivery.pk).update(last_error=str(exc)[:ERROR_CHARS])
    upcoming = SandboxWebhookDelivery.objects.filter(state__in=OPEN).aggregate(at=Min("next_attempt_at"))[
        "at"
    ]
    if upcoming is None:
        return None
    return max(0.0, (upcoming - timezone.now()).total_seconds())


# --- the background sender ------------------------------------------------------------------------------
_lock = threading.Lock()
_wake = threading.Event()
_thread: threading.Thread | None = None


def deliveries_kick() -> None:
    """Make sure this process's sender runs and looks at the queue now (called after a commit)."""
    global _thread
    with _lock:
        _wake.set()
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_sender, name="sandbox-webhooks", daemon=True)
            _thread.start()


def _sender() -> None:
    global _thread
    me = threading.current_thread()
    try:
        while True:
            _wake.clear()
            wait = deliveries_send_due()
            with _lock:
                if wait is None and not _wake.is_set():
                    if _thread is me:
                        _thread = None
                    return
            if wait:
                _wake.wait(min(wait, IDLE_POLL_SECONDS))
    except Exception:
        log.exception("the sandbox webhook sender stopped; the next change starts it again")
        with _lock:
            if _thread is me:
                _thread = None
    finally:
        db_connection.close()


def deliveries_idle(timeout: float = 30.0) -> bool:
    """Wait until this process's sender has nothing left to do (tests, the demo); True if it got there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _lock:
            thread = _thread
        if thread is None or not thread.is_alive():
            return True
        thread.join(min(0.05, max(0.0, deadline - time.monotonic())))
    return False
