"""All HTTP for QuickBooks Online (Intuit Accounting API v3).

Every call goes to `{base}/company/{realmId}/...` with `minorversion=75` and `Accept: application/json`.
Writes carry `requestid`, derived from the caller's idempotency key, so that a write repeated with the
same key is answered with the first answer instead of a second document. Intuit does not promise that
replay for every entity and every outage, so writes still go through the HTTP layer as not idempotent:
an answer lost in transit raises `UncertainError` and the caller looks the document up by its reference
(DocNumber, PaymentRefNum) before it tries again.

Batch requests (`POST /batch`, at most `BATCH_MAX_ITEMS` items) carry a `requestid` too and go through the
HTTP layer as the same kind of write. Intuit counts a batch as one request against the per-realm limits and
also allows only about 40 batch requests a minute per realm: a second limiter, on the key
`<realm key>:batch`, admits batch requests against `BATCH_RATE_LIMITS` before the shared limiter does.
A refused item comes back as a `Fault` inside the 200 answer; `item_error` types it the same way.

Errors come as `Fault` documents (JSON, sometimes XML even when JSON was asked for, and with lower-case
keys from the API gateway). `error_for` turns them into typed errors:
  ThrottleExceeded (errorCode 003001, HTTP 429 or even 403) and 5xx -> RetryableError;
  gateway authentication/authorisation failures (003100, 003200), codes 1-499, 401 -> AuthNeededError;
  610 (object not found), 404 -> NotFoundError; 5010 (Stale Object Error) -> ConflictError;
  2000-4999 and the 6000-9999 business validations -> ValidationError naming the Fault's `element`;
  anything else -> PermanentError.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
from connectors.ratelimit import RateLimiter

MINOR_VERSION = "75"
PAGE_SIZE = 1000  # the most a query returns per page
CDC_MAX_OBJECTS = 1000  # the most a CDC answer holds
# Intuit's throttling (blogs.intuit.com 2016-08-08): a batch counts as one request in the 500 a minute
RATE_LIMITS = (
    RateLimit("requests per minute per realm", 500, 60.0),
    RateLimit("concurrent requests per realm", 10, concurrent=True),
)
# batch requests only, on top of RATE_LIMITS, under their own limiter key ("<realm key>:batch")
BATCH_RATE_LIMITS = (RateLimit("batch requests per minute per realm", 40, 60.0),)
BATCH_MAX_ITEMS = 30  # the most BatchItemRequest items one batch request may carry
# Intuit (blog 2015-04-06 "Request ID update"): a requestid is at most 50 characters, a batch's at most 36,
# and then each bId at most 10
REQUEST_ID_MAX = 50
BATCH_REQUEST_ID_MAX = 36
BATCH_ID_MAX = 10
BATCH_KEYS = frozenset({"bId", "operation", "optionsData"})  # an item's keys besides its entity
STALE_OBJECT = 5010
OBJECT_NOT_FOUND = 610
_GATEWAY = re.compile(r"message=(?P<name>[A-Za-z]+);\s*errorCode=(?P<code>\d+)")
_XML_ERROR = re.compile(r"<Error\b(?P<attrs>[^>]*)>(?P<body>.*?)</Error>", re.DOTALL)
_XML_ATTR = re.compile(r'(\w+)="([^"]*)"')
_XML_FAULT_TYPE = re.compile(r'<Fault\b[^>]*\btype="([^"]*)"')


@dataclass(frozen=True)
class FaultError:
    """One `Fault.Error` entry: Intuit's code, message, detail and the element it refers to."""

    code: str
    message: str
    detail: str = ""
    element: str = ""
    fault_type: str = ""

    @property
    def number(self) -> int | None:
        return int(self.code) if self.code.strip().isdigit() else None

    @property
    def gateway(self) -> str:
        """The API gateway's error name ("ThrottleExceeded", "AuthenticationFailed"), "" otherwise."""
        match = _GATEWAY.search(self.message)
        return match["name"] if match else ""

    def __str__(self) -> str:
        text = f"{self.code} {self.message}".strip()
        if self.detail and self.detail != self.message:
            text += f": {self.detail}"
        return text + (f" (element {self.element})" if self.element else "")


def _lower_keys(value: Any) -> Any:
    return {str(key).lower(): item for key, item in value.items()} if isinstance(value, dict) else {}


def fault_errors(fault: Any) -> list[FaultError]:
    """The errors of one JSON `Fault` object (a whole answer's, or one batch item's), any key case."""
    fault = _lower_keys(fault)
    errors = fault.get("error") or []
    return [
        FaultError(
            code=str(entry.get("code") or ""),
            message=str(entry.get("message") or ""),
            detail=str(entry.get("detail") or ""),
            element=str(entry.get("element") or ""),
            fault_type=str(fault.get("type") or ""),
        )
        for entry in map(_lower_keys, errors if isinstance(errors, list) else [errors])
    ]


def parse_fault(body: bytes | str) -> list[FaultError]:
    """The errors of a Fault document in any of its shapes; [] when the body is not a Fault."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body or ""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except ValueError:
            return []
        return fault_errors(_lower_keys(document).get("fault"))
    if "<Fault" in text:
        fault_type = _XML_FAULT_TYPE.search(text)
        found = []
        for match in _XML_ERROR.finditer(text):
            attrs = dict(_XML_ATTR.findall(match["attrs"]))
            message = re.search(r"<Message>(.*?)</Message>", match["body"], re.DOTALL)
            detail = re.search(r"<Detail>(.*?)</Detail>", match["body"], re.DOTALL)
            found.append(
                FaultError(
                    code=attrs.get("code", ""),
                    message=message[1].strip() if message else "",
                    detail=detail[1].strip() if detail else "",
                    element=attrs.get("element", ""),
                    fault_type=fault_type[1] if fault_type else "",
                )
            )
        return found
    return []


def _value_at(document: Any, element: str) -> Any:
    """The value a Fault's `element` ("Line.SalesItemLineDetail.ItemRef") names in the request body."""
    value = document
    for part in [p for p in re.split(r"[.\[\]]", element) if p]:
        if isinstance(value, list):
            if part.isdigit():
                value = value[int(part)] if int(part) < len(value) else None
                continue
            value = value[0] if value else None
        if not isinstance(value, dict):
            return None
        if part not in value and value is document:
            continue  # a leading entity name ("Invoice.DocNumber")
        value = value.get(part)
    return None if value is document else value


def query_time(moment: datetime) -> str:
    """A query/CDC time literal: whole seconds with the UTC offset (naive times are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def quote(value: str) -> str:
    """A string literal for the query language (single quotes escaped with a backslash)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def request_id(entity: str, operation: str, idempotency_key: str) -> str:
    """The `requestid` of a write: the same key, entity and operation always give the same id (<= 50).

    The entity and operation are part of it so that one key used for, say, an update and a void of the
    same document never replays the wrong answer.
    """
    digest = hashlib.sha256(f"{entity}|{operation}|{idempotency_key}".encode()).hexdigest()
    return f"ll-{digest[:40]}"  # 43 <= REQUEST_ID_MAX


def item_entity(item: Mapping[str, Any]) -> str:
    """The entity a BatchItemRequest or BatchItemResponse item carries ("Invoice", "Fault", "Query")."""
    return next((str(key) for key in item if key not in BATCH_KEYS), "")


def batch_request_id(items: Sequence[Mapping[str, Any]], idempotency_key: str) -> str:
    """The `requestid` of a batch (<= 36 characters): the same key and the same kinds of item (operation
    and entity) always give the same id, and a key used for single writes never replays a batch answer."""
    kinds = ",".join(sorted({f"{item.get('operation') or ''}:{item_entity(item)}" for item in items}))
    digest = hashlib.sha256(f"batch|{kinds}|{idempotency_key}".encode()).hexdigest()
    return f"ll-{digest[: BATCH_REQUEST_ID_MAX - 3]}"


class QuickBooksClient(OAuthHttpClient):
    platform = "quickbooks"
    default_base_url = "https://quickbooks.api.intuit.com/v3"
    rate_limits = RATE_LIMITS
    batch_rate_limits = BATCH_RATE_LIMITS

    def __init__(
        self,
        connection: Any,
        *,
        batch_limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ) -> None:
        super().__init__(connection, sleep=sleep, **kwargs)
        self.batch_limiter = batch_limiter or RateLimiter(
            f"{self.limiter_key()}:batch",
            self.scaled(self.batch_rate_limits),
            sleep=sleep,
            max_wait=self.max_inline_wait,
        )

    # --- where ------------------------------------------------------------------------------------------
    @property
    def realm_id(self) -> str:
        realm = str((self.connection.options or {}).get("realmId") or "")
        if not realm:
            raise AuthNeededError(
                f"connection {self.connection.name!r} has no realmId: connect it to a QuickBooks company"
            )
        return realm

    def limiter_key(self) -> str:
        """Intuit counts requests per app and company (realm), whichever connection makes them."""
        realm = (self.connection.options or {}).get("realmId")
        return f"quickbooks:realm:{realm}" if realm else super().limiter_key()

    def company(self, *parts: str) -> str:
        return "/".join(["company", self.realm_id, *parts])

    @staticmethod
    def params(**extra: str) -> dict[str, str]:
        return {"minorversion": MINOR_VERSION, **{key: value for key, value in extra.items() if value}}

    # --- errors -----------------------------------------------------------------------------------------
    def error_for(self, response: requests.Response) -> ConnectorError | None:
        status = response.status_code
        faults = parse_fault(response.content) if response.content else []
        if status < 400 and not faults:
            return None
        tid = response.headers.get("intuit_tid", "")
        described = "; ".join(str(fault) for fault in faults) or response.text[:300]
        message = f"QuickBooks answered {status}: {described}" + (f" (intuit_tid {tid})" if tid else "")
        return self._typed(
            status,
            faults,
            message,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            sent=self._sent_body(response),
        )

    def item_error(self, fault: Any, *, sent: Any = None, label: str = "") -> ConnectorError:
        """The typed error of one batch item's `Fault` (inside an answer that is 200 as a whole), typed by
        the same rules as a whole answer's; a ValidationError names the element and the value `sent` there."""
        faults = fault_errors(fault)
        # an item has no status of its own: a system fault is a server error, anything else a refusal
        status = 500 if any(f.fault_type.lower() == "systemfault" for f in faults) else 400
        described = "; ".join(str(f) for f in faults) or "a Fault without errors"
        message = f"QuickBooks refused {label or 'a batch item'}: {described}"
        return self._typed(status, faults, message, sent=sent)

    def _typed(
        self,
        status: int,
        faults: list[FaultError],
        message: str,
        *,
        retry_after: float | None = None,
        sent: Any = None,
    ) -> ConnectorError:
        first = faults[0] if faults else None
        gateway = first.gateway if first else ""
        number = first.number if first else None
        fault_type = (first.fault_type if first else "").lower()

        if status == 429 or gateway == "ThrottleExceeded":
            return RetryableError(message, retry_after=retry_after)
        if status >= 500:
            return RetryableError(message, retry_after=retry_after)
        if (
            status == 401
            or gateway.endswith(("AuthenticationFailed", "AuthorizationFailed"))
            or fault_type in ("authenticationfault", "authorizationfault", "authentication")
            or (number is not None and 1 <= number <= 499)
        ):
            return AuthNeededError(message)
        if number == OBJECT_NOT_FOUND or (status == 404 and number is None):
            return NotFoundError(message)
        if number == STALE_OBJECT:
            return ConflictError(message)
        if first is not None and number is not None and (2000 <= number <= 4999 or 6000 <= number <= 9999):
            refused = _value_at(sent, first.element) if sent is not None and first.element else None
            return ValidationError(message, field=first.element, value=refused)
        if status in (400, 422) and first is None:
            return ValidationError(message)
        return PermanentError(message)

    @staticmethod
    def _sent_body(response: requests.Response) -> Any:
        """The JSON body the request carried, None when it had none."""
        if response.request is None or not response.request.body:
            return None
        try:
            return json.loads(response.request.body)
        except (TypeError, ValueError):
            return None

    # --- reads ------------------------------------------------------------------------------------------
    def _json(self, response: requests.Response) -> dict[str, Any]:
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise PermanentError(f"QuickBooks answered with no JSON object: {response.text[:200]}")
        return document

    def read(self, entity: str, entity_id: str) -> dict[str, Any]:
        response = self.request("GET", self.company(entity.lower(), str(entity_id)), params=self.params())
        return self._json(response).get(entity) or {}

    def company_info(self) -> dict[str, Any]:
        return self.read("CompanyInfo", self.realm_id)

    def query(self, statement: str) -> dict[str, Any]:
        """Run one query statement; the `QueryResponse` object (entity lists, startPosition, ...)."""
        response = self.request("GET", self.company("query"), params=self.params(query=statement))
        return self._json(response).get("QueryResponse") or {}

    def query_page(
        self,
        entity: str,
        *,
        where: str = "",
        order_by: str = "",
        start: int = 1,
        size: int = PAGE_SIZE,
        select: str = "*",
    ) -> list[dict[str, Any]]:
        """One page of `SELECT ... FROM entity`; values inside `where` must come through `quote()`."""
        statement = f"SELECT {select} FROM {entity}"  # noqa: S608 - Intuit's query language, values quoted
        if where:
            statement += f" WHERE {where}"
        if order_by:
            statement += f" ORDERBY {order_by}"
        statement += f" STARTPOSITION {start} MAXRESULTS {min(size, PAGE_SIZE)}"
        return list(self.query(statement).get(entity) or [])

    def query_all(
        self, entity: str, *, where: str = "", order_by: str = "Id", select: str = "*"
    ) -> list[dict[str, Any]]:
        """Every row of a query, page after page, until a page comes back short."""
        rows: list[dict[str, Any]] = []
        start = 1
        while True:
            page = self.query_page(entity, where=where, order_by=order_by, start=start, select=select)
            rows.extend(page)
            if len(page) < PAGE_SIZE:
                return rows
            start += len(page)

    def cdc(self, entities: Iterable[str], changed_since: datetime) -> dict[str, list[dict[str, Any]]]:
        """Change data capture: every object of `entities` changed since then, deletions included."""
        names = list(entities)
        response = self.request(
            "GET",
            self.company("cdc"),
            params=self.params(entities=",".join(names), changedSince=query_time(changed_since)),
        )
        found: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for block in self._json(response).get("CDCResponse") or []:
            for query_response in block.get("QueryResponse") or []:
                for name, rows in query_response.items():
                    if isinstance(rows, list):
                        found.setdefault(name, []).extend(rows)
        return found

    # --- writes -----------------------------------------------------------------------------------------
    def write(
        self,
        entity: str,
        body: dict[str, Any],
        *,
        idempotency_key: str,
        operation: str = "",
        include: str = "",
    ) -> dict[str, Any]:
        """POST one create/update/void/delete; the entity as QuickBooks now has it."""
        params = self.params(
            operation=operation,
            include=include,
            requestid=request_id(entity, f"{operation}:{include}", idempotency_key),
        )
        response = self.request(
            "POST",
            self.company(entity.lower()),
            params=params,
            json=body,
            headers={"Content-Type": "application/json"},
            idempotent=False,
        )
        return self._json(response).get(entity) or {}

    def batch(self, items: Sequence[Mapping[str, Any]], *, idempotency_key: str) -> list[dict[str, Any]]:
        """POST one batch request of at most `BATCH_MAX_ITEMS` items (`{"bId", "operation", <Entity>}`);
        the `BatchItemResponse` items as answered (in QuickBooks' order, each naming its bId)."""
        if len(items) > BATCH_MAX_ITEMS:
            raise ValueError(f"a QuickBooks batch holds at most {BATCH_MAX_ITEMS} items, not {len(items)}")
        bids = [str(item.get("bId") or "") for item in items]
        if len(set(bids)) != len(bids) or not all(0 < len(bid) <= BATCH_ID_MAX for bid in bids):
            raise ValueError(f"batch items need distinct bIds of 1 to {BATCH_ID_MAX} characters: {bids}")
        response = self.request(
            "POST",
            self.company("batch"),
            params=self.params(requestid=batch_request_id(items, idempotency_key)),
            json={"BatchItemRequest": [dict(item) for item in items]},
            headers={"Content-Type": "application/json"},
            idempotent=False,
        )
        answer = self._json(response).get("BatchItemResponse")
        if not isinstance(answer, list) or not all(isinstance(item, dict) for item in answer):
            raise PermanentError(
                f"QuickBooks answered a batch without BatchItemResponse: {response.text[:200]}"
            )
        return answer

    def _send(
        self,
        method: str,
        path: str,
        params: Any,
        json: Any,
        data: Any,
        headers: Mapping[str, str] | None,
        idempotent: bool,
        retry: int,
    ) -> requests.Response:
        """Every attempt at a batch request is admitted by the batch limiter too (Intuit counts each)."""
        if not (method == "POST" and path.rstrip("/").endswith("/batch")):
            return super()._send(method, path, params, json, data, headers, idempotent, retry)
        token = self.batch_limiter.acquire()
        try:
            return super()._send(method, path, params, json, data, headers, idempotent, retry)
        finally:
            self.batch_limiter.release(token)
