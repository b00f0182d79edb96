from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from sandbox.core import client_credentials, dispatch
from sandbox.models import SandboxWebhook
from sandbox.webhooks import WebhookSubscriptionError, intent_request, webhook_subscribe, webhook_update

PORTAL_PLATFORMS = ("quickbooks", "xero")
SECRET_NAMES = {"quickbooks": "verifier_token", "xero": "webhook_key"}


def _enabled() -> None:
    if not settings.SANDBOX_ENABLED:
        raise Http404("the sandbox platforms are switched off (SANDBOX_ENABLED)")


@csrf_exempt  # API clients, not browsers; the consent form is the sandbox's own page
def sandbox_view(request: HttpRequest, platform: str, path: str) -> HttpResponse:
    _enabled()
    return dispatch(request, platform, path)


# --- the developer portals' webhook settings (QuickBooks, Xero) ------------------------------------------
def _out(hook: SandboxWebhook, *, secret: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": hook.public_id,
        "platform": hook.platform,
        "account": hook.account,
        "url": hook.url,
        "events": hook.events,
        "status": hook.status,
        "status_reason": hook.status_reason,
        "confirmed_at": hook.confirmed_at.isoformat() if hook.confirmed_at else None,
    }
    if hook.platform == "quickbooks":
        out["format"] = hook.payload_format
    if secret:  # the portal shows it to the app's developer
        out[SECRET_NAMES[hook.platform]] = hook.secret
    return out


def _refuse(status: int, message: str, field: str = "", value: Any = None) -> JsonResponse:
    body: dict[str, Any] = {"error": message}
    if field:
        body.update(field=field, value=value)
    return JsonResponse(body, status=status)


def _portal(request: HttpRequest, platform: str) -> tuple[str, JsonResponse | None]:
    """The app's client id, or the refusal: the portal is the app developer's, signed in with the app's
    credentials (HTTP Basic client_id:client_secret, as at the token endpoint)."""
    _enabled()
    if platform not in PORTAL_PLATFORMS:
        raise Http404(f"no developer portal for {platform!r} (Stripe: POST /v1/webhook_endpoints)")
    client_id, secret = client_credentials(request)
    if not client_id or not secret:
        return "", _refuse(401, "sign in with the app's client_id and client_secret (HTTP Basic)")
    return client_id, None


def _json(request: HttpRequest) -> dict[str, Any] | JsonResponse:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return _refuse(400, "the body is not JSON")
    if not isinstance(body, dict):
        return _refuse(400, "the body is not a JSON object")
    events = body.get("events", [])
    if not isinstance(events, list):
        return _refuse(400, "events must be a list", "events", events)
    return body


@csrf_exempt
def developer_webhooks(request: HttpRequest, platform: str) -> HttpResponse:
    client_id, refused = _portal(request, platform)
    if refused:
        return refused
    if request.method == "GET":
        hooks = SandboxWebhook.objects.filter(platform=platform, client_id=client_id).order_by("pk")
        return JsonResponse({"webhooks": [_out(hook) for hook in hooks]})
    if request.method != "POST":
        return _refuse(405, f"{request.method} not allowed")
    body = _json(request)
    if isinstance(body, JsonResponse):
        return body
    try:
        with transaction.atomic():
            hook = webhook_subscribe(
                platform=platform,
                account=str(body.get("account") or ""),
                url=str(body.get("url") or ""),
                events=[str(event) for event in body.get("events") or []],
                payload_format=str(body.get("format") or ""),
                secret=str(body.get(SECRET_NAMES[platform]) or ""),
                client_id=client_id,
            )
    except WebhookSubscriptionError as exc:
        return _refuse(400, str(exc), exc.field, exc.value)
    return JsonResponse(_out(hook), status=201)


def _own(platform: str, client_id: str, public_id: str) -> SandboxWebhook:
    hook = SandboxWebhook.objects.filter(platform=platform, client_id=client_id, public_id=public_id).first()
    if hook is None:
        raise Http404(f"no webhook {public_id!r} for this app")
    return hook


@csrf_exempt
def developer_webhook(request: HttpRequest, platform: str, public_id: str) -> HttpResponse:
    client_id, refused = _portal(request, platform)
    if refused:
        return refused
    hook = _own(platform, client_id, public_id)
    if request.method == "GET":
        return JsonResponse(_out(hook))
    if request.method == "DELETE":
        hook.delete()
        return JsonResponse({"id": public_id, "deleted": True})
    if request.method != "POST":
        return _refuse(405, f"{request.method} not allowed")
    body = _json(request)
    if isinstance(body, JsonResponse):
        return body
    enabled = body.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        return _refuse(400, "enabled must be true or false", "enabled", enabled)
    try:
        with transaction.atomic():
            webhook_update(
                hook,
                url=body.get("url"),
                events=[str(event) for event in body["events"]] if "events" in body else None,
                enabled=enabled,
            )
    except WebhookSubscriptionError as exc:
        return _refuse(400, str(exc), exc.field, exc.value)
    hook.refresh_from_db()
    return JsonResponse(_out(hook))


@csrf_exempt
def developer_webhook_intent(request: HttpRequest, platform: str, public_id: str) -> HttpResponse:
    """Xero's "Send intent to receive" button."""
    client_id, refused = _portal(request, platform)
    if refused:
        return refused
    if platform != "xero" or request.method != "POST":
        return _refuse(405 if platform == "xero" else 404, "intent to receive is Xero's: POST it")
    hook = _own(platform, client_id, public_id)
    with transaction.atomic():
        intent_request(hook)
    hook.refresh_from_db()
    return JsonResponse(_out(hook), status=202)
