"""All HTTP for Xero: the bearer token and `xero-tenant-id` on every call, Xero's error shapes as typed
errors, page=N paging with If-Modified-Since, Idempotency-Key on writes, and the per-tenant limits.

Xero counts its limits per organisation (tenant), not per app or connection: 60 calls a minute, 5000 a
day and 5 in flight at once (developer.xero.com/faq/limits). Two connections to the same organisation
therefore share one limiter key. A 429 names the limit it hit in `X-Rate-Limit-Problem`; a `day` problem
comes with a Retry-After of hours, which the HTTP layer hands up (as `RetryableError.retry_after`)
instead of sleeping through it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import requests

from connectors.base import (
    AuthNeededError,
    ConflictError,
    ConnectorError,
    NotFoundError,
    PermanentError,
    RateLimit,
    RetryableError,
    ValidationError,
)
from connectors.http import retry_after_seconds
from connectors.oauth import OAuthHttpClient

PRODUCTION_API_ROOT = "https://api.xero.com/api.xro/2.0"
API_PATH = "/api.xro/2.0"
MAX_PAGE_SIZE = 1000  # Xero's documented maximum; 100 when pageSize is not sent
MAX_IDEMPOTENCY_KEY = 128

RATE_LIMITS = (
    RateLimit("minute", 60, 60.0),
    RateLimit("day", 5000, 86400.0),
    RateLimit("concurrent", 5, concurrent=True),
)
# waits to assume when a 429 names its problem but sends no Retry-After
PROBLEM_WAITS = {"minute": 60.0, "appminute": 60.0, "concurrent": 1.0, "day": 3600.0}

# Xero's validation messages name their field in prose; the first pattern that matches wins
_FIELD_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"account code '([^']*)'", re.IGNORECASE), "AccountCode"),
    (re.compile(r"account code", re.IGNORECASE), "AccountCode"),
    (re.compile(r"tax ?type(?: code)? '([^']*)'", re.IGNORECASE), "TaxType"),
    (re.compile(r"item code '([^']*)'", re.IGNORECASE), "ItemCode"),
    (re.compile(r"invoice ?(?:#|number)", re.IGNORECASE), "InvoiceNumber"),
    (re.compile(r"credit ?note ?(?:#|number)", re.IGNORECASE), "CreditNoteNumber"),
    (re.compile(r"contact name", re.IGNORECASE), "Name"),
    (re.compile(r"contact", re.IGNORECASE), "Contact"),
    (re.compile(r"currency", re.IGNORECASE), "CurrencyCode"),
    (re.compile(r"due ?date", re.IGNORECASE), "DueDate"),
    (re.compile(r"\bdate\b", re.IGNORECASE), "Date"),
    (re.compile(r"email", re.IGNORECASE), "EmailAddress"),
    (re.compile(r"\bamount\b", re.IGNORECASE), "Amount"),
    (re.compile(r"\bstatus\b", re.IGNORECASE), "Status"),
)


def idempotency_header(key: str) -> str:
    """Xero takes keys of up to 128 characters; a longer one is replaced by its (stable) digest."""
    if len(key) <= MAX_IDEMPOTENCY_KEY:
        return key
    return "sha256-" + hashlib.sha256(key.encode()).hexdigest()


def identity_root(api_root: str) -> str:
    """The identity service's root for an API root: https://api.xero.com for .../api.xro/2.0."""
    root = api_root.rstrip("/")
    return root[: -len(API_PATH)] if root.endswith(API_PATH) else root


def _field_for(message: str, element: Mapping[str, Any]) -> tuple[str, Any]:
    for pattern, field in _FIELD_PATTERNS:
        match = pattern.search(message)
        if not match:
            continue
        if match.groups():
            return field, match.group(1)
        value = element.get(field)
        if isinstance(value, Mapping):  # Contact: name what it was given
            value = value.get("ContactID") or value.get("Name")
        return field, value
    return "", None


def _messages(element: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field prefix, message) of every validation error on an element and on its line items."""
    found = [("", str(item.get("Message"))) for item in element.get("ValidationErrors") or [] if item]
    for index, line in enumerate(element.get("LineItems") or []):
        if isinstance(line, Mapping):
            for item in line.get("ValidationErrors") or []:
                found.append((f"LineItems[{index}].", str(item.get("Message"))))
    return found


def validation_error(element: Mapping[str, Any], *, fallback: str = "") -> ValidationError:
    """One element's ValidationErrors as a ValidationError naming the field where the message allows."""
    found = _messages(element)
    if not found:
        return ValidationError(fallback or "Xero refused the document without saying why")
    prefix, first = found[0]
    field, value = _field_for(first, element if not prefix else {})
    message = "; ".join(dict.fromkeys(message for _, message in found))
    return ValidationError(message, field=f"{prefix}{field}" if field else "", value=value)


def item_error(element: Mapping[str, Any]) -> ValidationError | None:
    """The error of one element of a summarizeErrors=false answer, or None when it was saved.

    Refused elements carry HasErrors (documents) or HasValidationErrors (payments, contacts) and
    StatusAttributeString "ERROR"; saved ones may still carry Warnings, which are not errors.
    """
    status = element.get("StatusAttributeString")
    failed = (
        element.get("HasErrors") is True
        or element.get("HasValidationErrors") is True
        or status == "ERROR"
        or (bool(element.get("ValidationErrors")) and status != "OK")
    )
    return validation_error(element) if failed else None


def _json_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _detail(body: Any, response: requests.Response) -> str:
    if isinstance(body, Mapping):
        for key in ("Message", "Detail", "Title", "message"):
            if body.get(key):
                return str(body[key])
    return response.text[:300].strip() or response.reason or ""


class XeroClient(OAuthHttpClient):
    platform = "xero"
    default_base_url = PRODUCTION_API_ROOT
    rate_limits = RATE_LIMITS

    @property
    def tenant_id(self) -> str:
        return str((self.connection.options or {}).get("tenant_id") or "")

    def limiter_key(self) -> str:
        tenant = self.tenant_id
        return f"xero:tenant:{tenant}" if tenant else super().limiter_key()

    def auth_headers(self) -> dict[str, str]:
        headers = super().auth_headers()
        if self.tenant_id:
            headers["xero-tenant-id"] = self.tenant_id
        return headers

    def error_for(self, response: requests.Response) -> ConnectorError | None:
        status = response.status_code
        if status < 400:
            return None
        body = _body(response)
        detail = _detail(body, response)
        if status == 429:
            problem = response.headers.get("X-Rate-Limit-Problem", "").strip().lower()
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            if wait is None:
                wait = PROBLEM_WAITS.get(problem, 60.0)
            return RetryableError(
                f"Xero rate limit reached ({problem or 'unnamed'} limit); retry in {wait:.0f} s",
                retry_after=wait,
            )
        if status >= 500:
            return RetryableError(
                f"Xero answered {status}: {detail}",
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        if status == 401:
            return AuthNeededError(f"Xero refused the access token ({detail}): connect again")
        if status == 403:
            return AuthNeededError(
                f"Xero refused access to the organisation ({detail}): it was disconnected or a scope "
                "is missing; connect again"
            )
        if status == 404:
            return NotFoundError(
                f"Xero has no such record: {response.request.url if response.request else ''}"
            )
        if status in (409, 412):
            return ConflictError(f"Xero answered {status}: {detail}")
        if status == 400 and isinstance(body, Mapping) and body.get("Elements"):
            errors = [
                validation_error(element) for element in body["Elements"] if isinstance(element, Mapping)
            ]
            first = errors[0] if errors else ValidationError(detail)
            message = "; ".join(dict.fromkeys(str(error) for error in errors)) or detail
            return ValidationError(message, field=first.field, value=first.value)
        if status in (400, 422):
            return ValidationError(f"Xero refused the request: {detail}")
        return PermanentError(f"Xero answered {status}: {detail}")

    # --- reads ----------------------------------------------------------------------------------------
    def _require_tenant(self) -> None:
        if not self.tenant_id:
            raise AuthNeededError(
                f"connection {self.connection.name!r} has no Xero organisation (tenant id): use Connect"
            )

    def get(
        self, path: str, *, params: Mapping[str, Any] | None = None, since: datetime | None = None
    ) -> Any:
        """GET one API path; `since` becomes If-Modified-Since (records changed since that instant)."""
        self._require_tenant()
        headers = None
        if since is not None:
            instant = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
            headers = {"If-Modified-Since": instant.isoformat(timespec="milliseconds")}
        response = self.request("GET", path, params=params, headers=headers)
        if response.status_code == 304:  # nothing changed since
            return {}
        return response.json()

    def get_page(
        self,
        collection: str,
        *,
        page: int,
        since: datetime | None = None,
        params: Mapping[str, Any] | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of a collection in update order: (records, whether another page follows)."""
        query = {"page": page, "pageSize": page_size, "order": "UpdatedDateUTC", **(params or {})}
        body = self.get(collection, params=query, since=since) or {}
        records = list(body.get(collection) or [])
        pagination = body.get("pagination") or {}
        if pagination.get("pageCount") is not None:
            return records, page < int(pagination["pageCount"])
        return records, len(records) >= page_size

    def get_one(self, collection: str, record_id: str, *, params: Mapping[str, Any] | None = None) -> dict:
        body = self.get(f"{collection}/{record_id}", params=params) or {}
        records = body.get(collection) or []
        if not records:
            raise NotFoundError(f"Xero returned no {collection} record for {record_id}")
        return records[0]

    def get_all(self, collection: str, *, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """A collection Xero returns in one piece (Accounts, TaxRates, Items)."""
        return list((self.get(collection, params=params) or {}).get(collection) or [])

    def connections(self) -> list[dict[str, Any]]:
        """The organisations this token may use (identity service, GET /connections)."""
        response = self.request("GET", f"{identity_root(self.base_url)}/connections")
        body = response.json()
        return list(body) if isinstance(body, list) else []

    # --- writes ---------------------------------------------------------------------------------------
    def write(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any],
        *,
        idempotency_key: str,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """PUT (create) or POST (update) with an Idempotency-Key, so a repeat inside Xero's key window
        returns the first answer instead of writing twice: that makes the write safe to retry."""
        self._require_tenant()
        headers = {"Idempotency-Key": idempotency_header(idempotency_key)} if idempotency_key else None
        response = self.request(
            method,
            path,
            params=params,
            data=json.dumps(body, default=_json_number).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
            idempotent=bool(idempotency_key),
        )
        return _body(response) or {}
