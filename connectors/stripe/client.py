"""All HTTP to Stripe: API-key auth, the pinned API version, form encoding, errors, lists and limits.

Stripe takes form-encoded bodies with nested keys (`metadata[ledgerlink_reference]=...`,
`expand[]=data.balance_transaction`) and answers JSON. Every write carries an `Idempotency-Key`: Stripe
stores the first answer for at least 24 hours and replays it for a repeat with the same key and the same
parameters, so a write sent twice happens once; that is why writes go out with `idempotent=True` and the
HTTP layer may repeat them after a lost answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from connectors.base import (
    AuthNeededError,
    ConnectorError,
    NotFoundError,
    PermanentError,
    RateLimit,
    RetryableError,
    ValidationError,
)
from connectors.http import HttpClient, retry_after_seconds

API_VERSION = "2026-06-24.dahlia"  # what stripe-python pins at 2026-07; field names follow this version
PRODUCTION_URL = "https://api.stripe.com/v1"
PAGE_SIZE = 100  # Stripe's largest `limit`
MAX_IDEMPOTENCY_KEY = 255
# docs.stripe.com/rate-limits: 25 requests/s in test mode (sandboxes), 100/s in live mode
TEST_MODE_LIMITS = (RateLimit("requests per second (test mode)", 25, 1.0),)
LIVE_MODE_LIMITS = (RateLimit("requests per second (live mode)", 100, 1.0),)
KEY_PREFIXES = ("sk_test_", "sk_live_", "rk_test_", "rk_live_")


def encode_form(params: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Stripe's form encoding: nested dicts as `a[b]=c`, lists of scalars as `a[]=x`, lists of dicts as
    `a[0][b]=c`, booleans as true/false; None is left out and "" is sent (it unsets a field)."""
    pairs: list[tuple[str, str]] = []
    for key, value in (params or {}).items():
        _encode(str(key), value, pairs)
    return pairs


def _encode(key: str, value: Any, pairs: list[tuple[str, str]]) -> None:
    if value is None:
        return
    if isinstance(value, Mapping):
        for sub, item in value.items():
            _encode(f"{key}[{sub}]", item, pairs)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if isinstance(item, Mapping):
                _encode(f"{key}[{index}]", item, pairs)
            else:
                _encode(f"{key}[]", item, pairs)
    else:
        pairs.append((key, _scalar(value)))


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return str(int(value.timestamp()))
    if isinstance(value, date):
        raise TypeError("send dates to Stripe as Unix timestamps")
    return str(value)


def idempotency_header(key: str) -> str:
    """The key as sent: Stripe accepts up to 255 characters, so a longer one is replaced by its hash."""
    if len(key) <= MAX_IDEMPOTENCY_KEY:
        return key
    return "ll-" + hashlib.sha256(key.encode()).hexdigest()


def is_test_key(api_key: str) -> bool:
    return api_key.startswith(("sk_test_", "rk_test_"))


class StripeClient(HttpClient):
    platform = "stripe"
    default_base_url = PRODUCTION_URL
    rate_limits = TEST_MODE_LIMITS

    def __init__(self, connection: Any, **kwargs: Any) -> None:
        self.api_key = str((connection.credentials or {}).get("api_key") or "").strip()
        # the limit depends on the mode, and the mode on the key
        self.rate_limits = TEST_MODE_LIMITS if is_test_key(self.api_key) else LIVE_MODE_LIMITS
        super().__init__(connection, **kwargs)

    # --- hooks ----------------------------------------------------------------------------------------
    def limiter_key(self) -> str:
        """Stripe counts per account and mode: connections sharing a key share its limit."""
        digest = hashlib.sha256(self.api_key.encode()).hexdigest()[:16]
        return f"stripe:{digest}"

    def auth_headers(self) -> dict[str, str]:
        if not self.api_key:
            raise AuthNeededError(f"connection {self.connection.name!r} has no Stripe API key (api_key)")
        headers = {"Authorization": f"Bearer {self.api_key}", "Stripe-Version": API_VERSION}
        account = (self.connection.options or {}).get("stripe_account")
        if account:  # a Connect platform reading a connected account
            headers["Stripe-Account"] = str(account)
        return headers

    def error_for(self, response: requests.Response) -> ConnectorError | None:
        """Stripe's `{"error": {type, code, message, param}}` -> typed errors.

        `Stripe-Should-Retry` overrides the status: "true" retries even a 400 or 409, "false" stops even
        a 5xx. Without it: 429 (rate_limit, lock_timeout), 409 (a concurrent request with the same
        idempotency key) and 5xx are retried.
        """
        status = response.status_code
        if status < 400:
            return None
        error = _error_body(response)
        kind, code = str(error.get("type") or ""), str(error.get("code") or "")
        param = str(error.get("param") or "")
        message = f"Stripe answered {status} {kind or 'error'}"
        message += f" ({code})" if code else ""
        message += f": {error.get('message') or response.text[:300]}"
        if response.headers.get("Request-Id"):
            message += f" [request {response.headers['Request-Id']}]"
        should_retry = response.headers.get("Stripe-Should-Retry", "").strip().lower()
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        if should_retry == "true":
            return RetryableError(message, retry_after=retry_after)
        if should_retry != "false" and (status in (409, 429) or status >= 500):
            return RetryableError(message, retry_after=retry_after)
        if kind == "idempotency_error":
            return PermanentError(message)
        if status in (401, 403):
            return AuthNeededError(message)
        if status == 404 or code == "resource_missing":
            return NotFoundError(message)
        if status in (400, 402):
            return ValidationError(message, field=param, value=_sent_value(response, param))
        return PermanentError(message)

    # --- calls ----------------------------------------------------------------------------------------
    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return _json(self.request("GET", path, params=encode_form(params)))

    def post(
        self, path: str, params: Mapping[str, Any] | None = None, *, idempotency_key: str
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_header(idempotency_key)}
        response = self.request("POST", path, data=encode_form(params), headers=headers, idempotent=True)
        return _json(response)

    def delete(self, path: str) -> dict[str, Any]:
        # deleting twice answers 404 the second time, never deletes twice: safe to repeat
        return _json(self.request("DELETE", path, idempotent=True))

    def list_page(
        self, path: str, params: Mapping[str, Any] | None = None, *, starting_after: str | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of a list endpoint, newest first: (objects, has_more). Continue after the last id."""
        query = {**(params or {}), "limit": PAGE_SIZE}
        if starting_after:
            query["starting_after"] = starting_after
        body = self.get(path, query)
        if body.get("object") != "list" or not isinstance(body.get("data"), list):
            raise PermanentError(f"Stripe answered {path} with something other than a list")
        return body["data"], bool(body.get("has_more"))

    def list_all(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        cursor = None
        while True:
            data, has_more = self.list_page(path, params, starting_after=cursor)
            yield from data
            if not has_more or not data:
                return
            cursor = data[-1]["id"]

    def search(self, path: str, query: str) -> list[dict[str, Any]]:
        """Every result of a Search API query (`page`/`next_page` paging). Search lags writes by up to
        a minute, so a miss is not proof of absence."""
        results: list[dict[str, Any]] = []
        page = None
        while True:
            body = self.get(path, {"query": query, "limit": PAGE_SIZE, "page": page})
            results.extend(body.get("data") or [])
            page = body.get("next_page")
            if not body.get("has_more") or not page:
                return results


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise PermanentError(f"Stripe answered {response.status_code} with a body that is not JSON") from None
    if not isinstance(body, dict):
        raise PermanentError("Stripe answered with JSON that is not an object")
    return body


def _error_body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _sent_value(response: requests.Response, param: str) -> str | None:
    """The value we sent for the parameter Stripe refused, read back from the request."""
    request = response.request
    if not param or request is None:
        return None
    body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "")
    pairs = parse_qsl(urlsplit(request.url or "").query, keep_blank_values=True)
    if isinstance(body, str):
        pairs += parse_qsl(body, keep_blank_values=True)
    for key, value in pairs:
        if key == param:
            return value
    return None
