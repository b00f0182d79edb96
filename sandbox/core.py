"""What every sandbox platform shares: state, OAuth, rate limits, fault injection and dispatch.

A platform module (`sandbox/<platform>.py`, listed in `PLATFORMS`) provides:
    PLATFORM, RATE_LIMITS, authenticate(request) -> account, rate_limited(wait, limit) -> response,
    server_error() -> response, ROUTES (list of Route), seed(account)
and, for OAuth platforms, OAUTH_CALLBACK_EXTRAS(account) -> dict, ACCESS_TOKEN_SECONDS, DEFAULT_ACCOUNT;
optionally route_rate_limits(method, path) -> (scope, limits) | None: limits one kind of request is held
to on top of RATE_LIMITS (QuickBooks' batch requests), counted under their own key `<account key>:<scope>`.

Each request goes: fault injection (latency / 5xx before the work), authentication, the platform's rate
limits (shared by all server processes through the same limiter the connectors use), the route in one
transaction, then a "lost response" fault may hold the answer back until the client has given up. The
records a route changes are collected and, in its transaction, turned into the webhooks the account's
subscriptions are sent after the commit (sandbox/webhooks.py).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import secrets
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from importlib import import_module
from types import ModuleType
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from connectors.base import RateLimit, limits_scaled
from connectors.ratelimit import DatabaseStore, admit
from sandbox.models import (
    SandboxCounter,
    SandboxFault,
    SandboxHit,
    SandboxIdempotencyKey,
    SandboxRecord,
    SandboxToken,
)

PLATFORMS: dict[str, str] = {
    "quickbooks": "sandbox.quickbooks",
    "stripe": "sandbox.stripe",
    "xero": "sandbox.xero",
}
CODE_SECONDS = 600
SANDBOX_RESOLUTION = 1000  # the platform counts its own window close to exactly
REFRESH_TOKEN_DAYS = 100


class SandboxError(Exception):
    """An error answer in the platform's own shape."""

    def __init__(
        self, status: int, body: dict[str, Any] | list[Any] | bytes | str, headers: dict | None = None
    ):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> HttpResponse:
        if isinstance(self.body, dict | list):
            response: HttpResponse = JsonResponse(self.body, status=self.status, safe=False)
        else:
            response = HttpResponse(self.body, status=self.status, content_type="text/plain")
        for name, value in self.headers.items():
            response[name] = value
        return response


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: Callable[[HttpRequest, str, re.Match[str]], HttpResponse]

    def match(self, method: str, path: str) -> re.Match[str] | None:
        return re.match(self.pattern, path) if method == self.method else None


def platform_module(platform: str) -> ModuleType:
    try:
        return import_module(PLATFORMS[platform])
    except KeyError:
        raise Http404(f"no sandbox for {platform!r}") from None


# --- state ---------------------------------------------------------------------------------------------
# (kind, record id) -> (created, data before the first change) of what the running API request changed,
# for the webhooks its commit sends; None outside a request (seeding sends nothing)
_changes: ContextVar[dict[tuple[str, str], tuple[bool, dict[str, Any] | None]] | None] = ContextVar(
    "sandbox_changes", default=None
)


def record_get(platform: str, account: str, kind: str, record_id: str) -> SandboxRecord | None:
    return SandboxRecord.objects.filter(
        platform=platform, account=account, kind=kind, record_id=str(record_id)
    ).first()


def record_save(
    platform: str, account: str, kind: str, record_id: str, data: dict[str, Any], *, new: bool = False
) -> SandboxRecord:
    """Create or replace a record; its version goes up by one and its change time is now. `new`: the id
    was just issued, so there is nothing to look for first."""
    now = timezone.now()
    if new:
        created = True
        record = SandboxRecord.objects.create(
            platform=platform, account=account, kind=kind, record_id=str(record_id), data=data, updated_at=now
        )
    else:
        record, created = SandboxRecord.objects.get_or_create(
            platform=platform,
            account=account,
            kind=kind,
            record_id=str(record_id),
            defaults={"data": data, "updated_at": now},
        )
    changes = _changes.get()
    if changes is not None:
        key = (kind, str(record_id))
        if key not in changes:  # the first change in the request says whether it created the record
            changes[key] = (created, None if created else dict(record.data))
    if not created:
        record.data = data
        record.version += 1
        record.updated_at = now
        record.save(update_fields=["data", "version", "updated_at"])
    return record


def record_list(platform: str, account: str, kind: str) -> QuerySet[SandboxRecord]:
    return SandboxRecord.objects.filter(platform=platform, account=account, kind=kind).order_by(
        "updated_at", "id"
    )


def next_numbers(platform: str, account: str, name: str, count: int) -> range:
    """The next `count` values of a persistent counter (ids, document numbers), taken at once and safe
    under concurrency."""
    with transaction.atomic():
        counter, _ = SandboxCounter.objects.get_or_create(platform=platform, account=account, name=name)
        SandboxCounter.objects.filter(pk=counter.pk).update(value=F("value") + count)
        counter.refresh_from_db()
    return range(counter.value - count + 1, counter.value + 1)


def next_number(platform: str, account: str, name: str) -> int:
    """The next value of a persistent counter."""
    return next_numbers(platform, account, name, 1)[0]


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def idempotency_lookup(
    platform: str, account: str, key: str, print_: str
) -> tuple[int, bytes, str] | bool | None:
    """(status, body, content type) stored for `key`; None if new; False if reused with other parameters."""
    stored = SandboxIdempotencyKey.objects.filter(platform=platform, account=account, key=key).first()
    if stored is None:
        return None
    if stored.fingerprint != print_:
        return False
    return stored.status, bytes(stored.body), stored.content_type


def idempotency_store(platform: str, account: str, key: str, print_: str, response: HttpResponse) -> None:
    try:
        with transaction.atomic():
            SandboxIdempotencyKey.objects.create(
                platform=platform,
                account=account,
                key=key,
                fingerprint=print_,
                status=response.status_code,
                body=response.content,
                content_type=response.get("Content-Type", "application/json"),
            )
    except IntegrityError:  # a concurrent request with the same key stored first
        pass


def stored_response(stored: tuple[int, bytes, str]) -> HttpResponse:
    status, body, content_type = stored
    return HttpResponse(body, status=status, content_type=content_type)


# --- OAuth ---------------------------------------------------------------------------------------------
def bearer_account(request: HttpRequest, platform: str) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    token = SandboxToken.objects.filter(
        platform=platform,
        kind=SandboxToken.Kind.ACCESS,
        value=header[7:].strip(),
        expires_at__gt=timezone.now(),
    ).first()
    return token.account if token else None


def _issue(
    platform: str, account: str, kind: str, client_id: str, seconds: float, redirect_uri: str = ""
) -> str:
    value = secrets.token_urlsafe(32)
    SandboxToken.objects.create(
        platform=platform,
        account=account,
        kind=kind,
        value=value,
        client_id=client_id,
        redirect_uri=redirect_uri,
        expires_at=timezone.now() + timedelta(seconds=seconds),
    )
    return value


def tokens_issue(platform: str, account: str, client_id: str) -> dict[str, Any]:
    """A token pair as the token endpoint would return it (the demo connects without a browser)."""
    seconds = getattr(platform_module(platform), "ACCESS_TOKEN_SECONDS", 3600)
    return {
        "token_type": "bearer",
        "access_token": _issue(platform, account, SandboxToken.Kind.ACCESS, client_id, seconds),
        "refresh_token": _issue(
            platform, account, SandboxToken.Kind.REFRESH, client_id, REFRESH_TOKEN_DAYS * 86400
        ),
        "expires_in": seconds,
        "expires_at": int(time.time()) + seconds,
    }


def client_credentials(request: HttpRequest) -> tuple[str, str]:
    import base64

    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return "", ""
        return client_id, secret
    return request.POST.get("client_id", ""), request.POST.get("client_secret", "")


def oauth_authorize(request: HttpRequest, platform: str) -> HttpResponse:
    """The consent page: shows who asks for what; "Allow" sends the browser back with a code."""
    from django.shortcuts import redirect, render

    module = platform_module(platform)
    params = request.POST if request.method == "POST" else request.GET
    client_id = params.get("client_id", "")
    redirect_uri = params.get("redirect_uri", "")
    if not client_id or not redirect_uri or params.get("response_type", "code") != "code":
        return HttpResponse("client_id, redirect_uri and response_type=code are required", status=400)
    account = params.get("account") or getattr(module, "DEFAULT_ACCOUNT", "sandbox")
    if request.method != "POST":
        return render(
            request,
            "sandbox/consent.html",
            {
                "platform": platform,
                "params": request.GET,
                "account": account,
                "scope": params.get("scope", ""),
            },
        )
    code = _issue(platform, account, SandboxToken.Kind.CODE, client_id, CODE_SECONDS, redirect_uri)
    extras = module.OAUTH_CALLBACK_EXTRAS(account) if hasattr(module, "OAUTH_CALLBACK_EXTRAS") else {}
    from urllib.parse import urlencode

    query = urlencode({"code": code, "state": params.get("state", ""), **extras})
    separator = "&" if "?" in redirect_uri else "?"
    return redirect(f"{redirect_uri}{separator}{query}")


def oauth_token(request: HttpRequest, platform: str) -> HttpResponse:
    module = platform_module(platform)
    if request.method != "POST":
        return JsonResponse({"error": "invalid_request"}, status=405)
    client_id, secret = client_credentials(request)
    if not client_id or not secret:
        return JsonResponse({"error": "invalid_client"}, status=401)
    grant = request.POST.get("grant_type")
    now = timezone.now()
    with transaction.atomic():
        if grant == "authorization_code":
            old = (
                SandboxToken.objects.select_for_update()
                .filter(platform=platform, kind=SandboxToken.Kind.CODE, value=request.POST.get("code", ""))
                .first()
            )
            if old and old.redirect_uri and old.redirect_uri != request.POST.get("redirect_uri", ""):
                old = None
        elif grant == "refresh_token":
            old = (
                SandboxToken.objects.select_for_update()
                .filter(
                    platform=platform,
                    kind=SandboxToken.Kind.REFRESH,
                    value=request.POST.get("refresh_token", ""),
                )
                .first()
            )
        else:
            return JsonResponse({"error": "unsupported_grant_type"}, status=400)
        if old is None or old.used or old.expires_at <= now or old.client_id != client_id:
            return JsonResponse({"error": "invalid_grant"}, status=400)
        old.used = True
        old.save(update_fields=["used"])
        seconds = getattr(module, "ACCESS_TOKEN_SECONDS", 3600)
        access = _issue(platform, old.account, SandboxToken.Kind.ACCESS, client_id, seconds)
        refresh = _issue(
            platform, old.account, SandboxToken.Kind.REFRESH, client_id, REFRESH_TOKEN_DAYS * 86400
        )
    return JsonResponse(
        {
            "token_type": "bearer",
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": seconds,
            "x_refresh_token_expires_in": REFRESH_TOKEN_DAYS * 86400,
        }
    )


# --- faults, limits, dispatch --------------------------------------------------------------------------
def fault_add(
    platform: str,
    kind: str,
    *,
    method: str = "",
    path: str = "",
    delay_ms: int = 0,
    probability: float = 1.0,
    times: int | None = 1,
) -> SandboxFault:
    return SandboxFault.objects.create(
        platform=platform,
        kind=kind,
        method=method.upper(),
        path_pattern=path,
        delay_ms=delay_ms,
        probability=probability,
        remaining=times,
    )


def _fault_for(platform: str, method: str, path: str) -> SandboxFault | None:
    for fault in SandboxFault.objects.filter(platform=platform).exclude(remaining__lte=0).order_by("id"):
        if fault.method and fault.method != method:
            continue
        if fault.path_pattern and not re.search(fault.path_pattern, path):
            continue
        if fault.probability < 1.0 and random.random() >= fault.probability:
            continue
        if fault.remaining is not None:
            taken = SandboxFault.objects.filter(pk=fault.pk, remaining__gt=0).update(
                remaining=F("remaining") - 1
            )
            if not taken:
                continue
        return fault
    return None


def _limits_key(platform: str, account: str, scope: str = "") -> str:
    return f"sandbox:{platform}:{account}" + (f":{scope}" if scope else "")


def _limits_admit(
    platform: str, account: str, limits: tuple[RateLimit, ...], token: str, scope: str = ""
) -> tuple[float, Any]:
    store = DatabaseStore()
    now = time.time()
    result: dict[str, Any] = {}
    limits = limits_scaled(limits, float(getattr(settings, "SANDBOX_RATE_PERIOD_SCALE", 1)))

    def change(state: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        wait, new_state = admit(
            state, limits, now=now, token=token, lease=60, guard=False, resolution=SANDBOX_RESOLUTION
        )
        if wait > 0:
            # which limit refused: the first one that is full
            for limit in limits:
                one_wait, _ = admit(
                    state,
                    (limit,),
                    now=now,
                    token=token,
                    lease=60,
                    guard=False,
                    resolution=SANDBOX_RESOLUTION,
                )
                if one_wait > 0:
                    result["limit"] = limit
                    break
        return wait, new_state

    wait = store.update(_limits_key(platform, account, scope), change)
    return wait, result.get("limit")


def _release(platform: str, account: str, token: str, scope: str = "") -> None:
    def change(state: dict[str, Any]) -> tuple[None, dict[str, Any]]:
        state.get("inflight", {}).pop(token, None)
        return None, state

    DatabaseStore().update(_limits_key(platform, account, scope), change)


def _admit_request(
    module: ModuleType, platform: str, account: str, method: str, path: str, token: str
) -> tuple[float, Any, list[tuple[str, tuple[RateLimit, ...]]]]:
    """Admit one request against the route's own limits (if any), then the platform's; (wait, the limit
    that refused, the (scope, limits) that admitted it, whose concurrency slots are to be released)."""
    checks: list[tuple[str, tuple[RateLimit, ...]]] = []
    route_limits = getattr(module, "route_rate_limits", None)
    extra = route_limits(method, path) if route_limits else None
    if extra and extra[1]:
        checks.append((extra[0], tuple(extra[1])))
    if module.RATE_LIMITS:
        checks.append(("", tuple(module.RATE_LIMITS)))
    admitted: list[tuple[str, tuple[RateLimit, ...]]] = []
    for scope, limits in checks:
        wait, limit = _limits_admit(platform, account, limits, token, scope)
        if wait > 0:
            _release_all(platform, account, token, admitted)
            return wait, limit, []
        admitted.append((scope, limits))
    return 0.0, None, admitted


def _release_all(
    platform: str, account: str, token: str, admitted: list[tuple[str, tuple[RateLimit, ...]]]
) -> None:
    for scope, limits in admitted:
        if any(limit.concurrent for limit in limits):
            _release(platform, account, token, scope)


def dispatch(request: HttpRequest, platform: str, path: str) -> HttpResponse:
    module = platform_module(platform)
    arrived = time.time()
    method = request.method or "GET"
    if path == "oauth/authorize":
        return oauth_authorize(request, platform)
    if path == "oauth/token":
        return oauth_token(request, platform)

    account = ""
    response = None
    fault = _fault_for(platform, method, path)
    if fault and fault.kind == SandboxFault.Kind.LATENCY:
        time.sleep(fault.delay_ms / 1000)
    if fault and fault.kind == SandboxFault.Kind.SERVER_ERROR:
        response = module.server_error()
    if response is None:
        try:
            account = module.authenticate(request)
        except SandboxError as exc:
            response = exc.response()
    if response is None:
        token = secrets.token_hex(8)
        wait, limit, admitted = _admit_request(module, platform, account, method, path, token)
        if wait > 0:
            response = module.rate_limited(wait, limit)
        else:
            try:
                response = _route(module, request, account, method, path)
            finally:
                _release_all(platform, account, token, admitted)
    SandboxHit.objects.create(
        platform=platform, account=account, method=method, path=path, status=response.status_code, at=arrived
    )
    if fault and fault.kind == SandboxFault.Kind.LOST_RESPONSE:
        time.sleep(fault.delay_ms / 1000)  # the work is done; the client gives up before this answer
    return response


def _route(module: ModuleType, request: HttpRequest, account: str, method: str, path: str) -> HttpResponse:
    allowed = []
    for route in module.ROUTES:
        match = re.match(route.pattern, path)
        if not match:
            continue
        if route.method != method:
            allowed.append(route.method)
            continue
        try:
            with transaction.atomic():
                return _handle(module, route, request, account, match)
        except SandboxError as exc:
            return exc.response()
    if allowed:
        return JsonResponse({"error": f"{method} not allowed on {path}"}, status=405)
    return JsonResponse({"error": f"no such endpoint: {path}"}, status=404)


def _handle(
    module: ModuleType, route: Route, request: HttpRequest, account: str, match: re.Match[str]
) -> HttpResponse:
    """Run a route, then queue the webhooks its changes call for, in the route's transaction."""
    from sandbox.webhooks import Change, changes_publish

    token = _changes.set({})
    try:
        response = route.handler(request, account, match)
        changes = _changes.get() or {}
    finally:
        _changes.reset(token)
    if changes:
        changes_publish(
            module.PLATFORM,
            account,
            [Change(kind, record_id, created, old) for (kind, record_id), (created, old) in changes.items()],
        )
    return response


def seed(platform: str, account: str) -> None:
    with transaction.atomic():
        platform_module(platform).seed(account)
