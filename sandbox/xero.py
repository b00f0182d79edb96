"""Xero Accounting API emulator: one organisation per sandbox account, its tenant id being the account.

Served under /sandbox/xero/: the identity service's `connections` at the root and the Accounting API
under `api.xro/2.0/`. It speaks Xero's wire format: `{"Id", "Status": "OK", "ProviderName",
"DateTimeUTC", "<Collection>": [...]}` envelopes with a `pagination` object when `page` is given,
MS-JSON `/Date(ms+0000)/` dates, If-Modified-Since and `where`/`order` filters, `summarizeErrors=false`
per-element errors, Idempotency-Key replay, payments and credit allocations that move AmountPaid,
AmountCredited and AmountDue (and Status PAID), Xero's void and delete rules, and its error shapes (400
ValidationException with Elements, 401/403 problem details, 404 text, 429 with Retry-After and
X-Rate-Limit-Problem).
"""

from __future__ import annotations

import json
import math
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from connectors.base import RateLimit
from connectors.money import currency_exponent
from sandbox import core
from sandbox.core import Route, SandboxError

PLATFORM = "xero"
DEFAULT_ACCOUNT = "3f1d2c9e-7a55-4c0b-9a7e-5d3b1f0e2a61"
ACCESS_TOKEN_SECONDS = 1800  # Xero access tokens last 30 minutes
RATE_LIMITS = (
    RateLimit("minute", 60, 60.0),
    RateLimit("day", 5000, 86400.0),
    RateLimit("concurrent", 5, concurrent=True),
)
ORGANISATION_NAME = "Ledgerlink Demo Company (UK)"
BASE_CURRENCY = "GBP"
CURRENCIES = frozenset({"GBP", "EUR", "USD", "JPY", "KWD", "AUD", "NZD"})
ZERO_ID = "00000000-0000-0000-0000-000000000000"
NAMESPACE = uuid.UUID("6f6c1b0e-2f59-4d1e-9b51-1d2a3e4f5a6b")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_PAGE_SIZE = 1000
NOT_FOUND = "The resource you're looking for cannot be found"

# kind in SandboxRecord -> (collection, id field, number field)
DOCUMENTS = {
    "invoice": ("Invoices", "InvoiceID", "InvoiceNumber"),
    "creditnote": ("CreditNotes", "CreditNoteID", "CreditNoteNumber"),
}
TYPES = {"invoice": ("ACCREC", "ACCPAY"), "creditnote": ("ACCRECCREDIT", "ACCPAYCREDIT")}
SALES_TYPES = ("ACCREC", "ACCRECCREDIT")

_account: ContextVar[str] = ContextVar("xero_sandbox_account", default="")


# --- errors and envelopes ------------------------------------------------------------------------------
def _problem(status: int, title: str, detail: str) -> dict[str, Any]:
    return {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }


def _validation(elements: list[dict[str, Any]]) -> SandboxError:
    return SandboxError(
        400,
        {
            "ErrorNumber": 10,
            "Type": "ValidationException",
            "Message": "A validation exception occurred",
            "Elements": elements,
        },
    )


def _refused(element: dict[str, Any], messages: list[str]) -> dict[str, Any]:
    return {**element, "ValidationErrors": [{"Message": message} for message in messages]}


def _bad_post(message: str) -> SandboxError:
    return SandboxError(400, {"ErrorNumber": 14, "Type": "PostDataInvalidException", "Message": message})


def _not_found() -> SandboxError:
    return SandboxError(404, NOT_FOUND)


def _ms(instant: datetime, *, offset: bool = True) -> str:
    millis = (instant - EPOCH) // timedelta(milliseconds=1)
    return f"/Date({millis}+0000)/" if offset else f"/Date({millis})/"


def _day(value: str | None) -> str | None:
    if not value:
        return None
    day = date.fromisoformat(value)
    return _ms(datetime(day.year, day.month, day.day, tzinfo=UTC))


def _usage(account: str) -> dict[str, int]:
    """Requests counted against each limit in its window (what X-*Limit-Remaining report)."""
    from connectors.models import RateLimitState

    row = RateLimitState.objects.filter(key=f"sandbox:{PLATFORM}:{account}").first()
    buckets = (row.state or {}).get("buckets", {}) if row else {}
    now = time.time()
    used = {}
    for limit in RATE_LIMITS:
        if limit.concurrent:
            continue
        width = limit.period / min(60, max(limit.limit, 1))
        oldest = math.floor(now / width) - math.ceil(limit.period / width)
        used[limit.name] = sum(n for i, n in buckets.get(limit.name, {}).items() if int(i) >= oldest)
    return used


def _limit_headers(response: HttpResponse, account: str, *, refused: str = "") -> HttpResponse:
    try:
        used = _usage(account) if account else {}
    except Exception:  # the counts are informative; never fail an answer over them
        used = {}
    minute = 0 if refused == "minute" else max(0, 60 - used.get("minute", 0))
    day = 0 if refused == "day" else max(0, 5000 - used.get("day", 0))
    response["X-MinLimit-Remaining"] = str(minute)
    response["X-DayLimit-Remaining"] = str(day)
    response["X-AppMinLimit-Remaining"] = "9999"
    return response


def _envelope(name: str, items: list[dict[str, Any]], *, pagination: dict | None = None) -> HttpResponse:
    body: dict[str, Any] = {
        "Id": str(uuid.uuid4()),
        "Status": "OK",
        "ProviderName": "Ledgerlink sandbox",
        "DateTimeUTC": _ms(timezone.now(), offset=False),
    }
    if pagination is not None:
        body["pagination"] = pagination
    body[name] = items
    return _limit_headers(JsonResponse(body), _account.get())


# --- platform hooks ------------------------------------------------------------------------------------
def authenticate(request: HttpRequest) -> str:
    account = core.bearer_account(request, PLATFORM)
    if account is None:
        raise SandboxError(
            401,
            _problem(401, "Unauthorized", "AuthenticationUnsuccessful"),
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if "/api.xro/" in request.path and request.headers.get("xero-tenant-id", "") != account:
        # a missing, unknown or other organisation's tenant id
        raise SandboxError(403, _problem(403, "Forbidden", "AuthorizationUnsuccessful"))
    _account.set(account)
    return account


def rate_limited(wait_seconds: float, limit: RateLimit | None) -> HttpResponse:
    problem = limit.name if limit else "minute"
    response = JsonResponse(
        _problem(429, "Too Many Requests", f"Rate limit exceeded ({problem})"), status=429
    )
    response["Retry-After"] = str(max(1, math.ceil(wait_seconds)))
    response["X-Rate-Limit-Problem"] = problem
    return _limit_headers(response, _account.get(), refused=problem)


def server_error() -> HttpResponse:
    return HttpResponse("The Xero API is temporarily unavailable", status=503, content_type="text/plain")


# --- values --------------------------------------------------------------------------------------------
def _dec(raw: Any) -> Decimal | None:
    if raw is None or isinstance(raw, bool) or raw == "":
        return None
    try:
        value = Decimal(repr(raw)) if isinstance(raw, float) else Decimal(str(raw))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _places(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _money(value: Decimal, currency: str) -> Decimal:
    return _places(value, currency_exponent(currency))


def _num(text: Any) -> float | int:
    value = Decimal(str(text))
    return float(value)


def _parse_day(raw: Any) -> str | None:
    """An input date ("2019-03-11", "2019-03-11T00:00:00" or MS-JSON) as ISO, None when invalid."""
    if not isinstance(raw, str):
        return None
    match = re.match(r"^/Date\((-?\d+)(?:[+-]\d{4})?\)/$", raw.strip())
    try:
        if match:
            return (EPOCH + timedelta(milliseconds=int(match.group(1)))).date().isoformat()
        return datetime.fromisoformat(raw.strip()).date().isoformat()
    except (ValueError, OverflowError):
        return None


def _since(request: HttpRequest) -> datetime | None:
    raw = request.headers.get("If-Modified-Since", "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        try:
            value = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError as exc:
        raise _bad_post(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _bad_post("The request body must be a JSON object")
    return body


def _elements(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    items = body.get(name)
    if items is None and body and name not in body:
        items = [body]  # Xero also takes one bare element
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise _bad_post(f"{name} must be a list of objects")
    return items


# --- the `where` filter: Field=="text", !=, AND/OR/&&/||, parentheses, Guid("..."), true/false, numbers ---
_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>==|!=|&&|\|\||>=|<=|>|<)|(?P<paren>[()])'
    r"|(?P<word>[A-Za-z_][\w.]*|-?\d+(?:\.\d+)?))"
)


def _query_error(message: str) -> SandboxError:
    return SandboxError(400, {"ErrorNumber": 16, "Type": "QueryParseException", "Message": message})


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise _query_error(f"Cannot parse the where filter at: {text[position:]}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _resolve(item: dict[str, Any], path: str) -> Any:
    value: Any = item
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if isinstance(expected, Decimal):
        number = _dec(actual)
        if number is None:
            return op == "!="
        left, right = number, expected
    elif isinstance(expected, bool):
        left, right = actual is True, expected
    else:
        left, right = ("" if actual is None else str(actual)), expected
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    try:
        return {">": left > right, "<": left < right, ">=": left >= right, "<=": left <= right}[op]
    except TypeError:
        return False


def where_filter(text: str) -> Callable[[dict[str, Any]], bool]:
    tokens = _tokens(text)
    position = 0

    def peek() -> tuple[str, str]:
        return tokens[position] if position < len(tokens) else ("", "")

    def take() -> tuple[str, str]:
        nonlocal position
        if position >= len(tokens):
            raise _query_error("The where filter ends too early")
        position += 1
        return tokens[position - 1]

    def literal() -> Any:
        kind, value = take()
        if kind == "string":
            return re.sub(r"\\(.)", r"\1", value[1:-1])
        if kind == "word" and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if kind == "word" and value == "Guid":
            if take() != ("paren", "(") or peek()[0] != "string":
                raise _query_error("Guid(...) takes a quoted id")
            inner = literal()
            if take() != ("paren", ")"):
                raise _query_error("Guid(...) is not closed")
            return inner
        if kind == "word" and _dec(value) is not None:
            return _dec(value)
        raise _query_error(f"Unexpected {value!r} in the where filter")

    def factor() -> Callable[[dict[str, Any]], bool]:
        if peek() == ("paren", "("):
            take()
            inner = expression()
            if take() != ("paren", ")"):
                raise _query_error("Unbalanced parentheses in the where filter")
            return inner
        kind, field = take()
        op_kind, op = take()
        if kind != "word" or op_kind != "op" or op in ("&&", "||"):
            raise _query_error(f"Expected a comparison near {field!r}")
        expected = literal()
        return lambda item: _compare(_resolve(item, field), op, expected)

    def term() -> Callable[[dict[str, Any]], bool]:
        parts = [factor()]
        while peek() in (("word", "AND"), ("op", "&&")) or peek() == ("word", "and"):
            take()
            parts.append(factor())
        return lambda item: all(part(item) for part in parts)

    def expression() -> Callable[[dict[str, Any]], bool]:
        parts = [term()]
        while peek() in (("word", "OR"), ("op", "||")) or peek() == ("word", "or"):
            take()
            parts.append(term())
        return lambda item: any(part(item) for part in parts)

    result = expression()
    if position != len(tokens):
        raise _query_error(f"Unexpected {tokens[position][1]!r} in the where filter")
    return result


# --- the organisation's books, cached for one request ------------------------------------------------
class Books:
    def __init__(self, account: str) -> None:
        self.account = account
        self._cache: dict[str, dict[str, Any]] = {}
        self._read: dict[tuple[str, str], Any] = {}  # records read one at a time (None: not there)
        self._ids: dict[str, list[int]] = {}  # id numbers taken in advance (ids_reserve), per kind
        # (kind, field, value) -> (record id, Type) of the stored records carrying it
        self._numbers: dict[tuple[str, str, str], list[tuple[str, str]]] = {}

    def all(self, kind: str) -> dict[str, Any]:
        if kind not in self._cache:
            self._cache[kind] = {r.record_id: r for r in core.record_list(PLATFORM, self.account, kind)}
        return self._cache[kind]

    def get(self, kind: str, record_id: str) -> Any:
        if kind in self._cache:
            return self._cache[kind].get(record_id)
        key = (kind, str(record_id))
        if key not in self._read:
            self._read[key] = core.record_get(PLATFORM, self.account, kind, record_id)
        return self._read[key]

    def ids_reserve(self, kind: str, count: int) -> None:
        """Take the numbers of `count` new ids of `kind` in one go (a batch PUT creates many)."""
        if count > 0:
            taken = core.next_numbers(PLATFORM, self.account, f"{kind}-id", count)
            self._ids.setdefault(kind, []).extend(taken)

    def new_id(self, kind: str) -> str:
        taken = self._ids.get(kind)
        number = taken.pop(0) if taken else core.next_number(PLATFORM, self.account, f"{kind}-id")
        return str(uuid.uuid5(NAMESPACE, f"{self.account}/{kind}/{number}"))

    def save(self, kind: str, record_id: str | None, data: dict[str, Any]) -> Any:
        """Store a record under `record_id`, or under a new id when it is None."""
        new = record_id is None
        record_id = record_id if record_id is not None else self.new_id(kind)
        record = core.record_save(PLATFORM, self.account, kind, record_id, data, new=new)
        self._read[(kind, record_id)] = record
        if kind in self._cache:
            self._cache[kind][record_id] = record
        for (cached_kind, field, value), holders in self._numbers.items():
            if cached_kind == kind and str(data.get(field)) == value:
                entry = (record_id, str(data.get("Type") or ""))
                holders[:] = [h for h in holders if h[0] != record_id] + [entry]
        return record

    def numbers_load(self, kind: str, field: str, values: Iterable[str]) -> None:
        """Which stored records carry each of `values` in `field`: one query for a whole request (a
        JSON key lookup), never a read of every stored record."""
        wanted = {str(v) for v in values if v} - {key[2] for key in self._numbers if key[:2] == (kind, field)}
        if not wanted:
            return
        for value in wanted:
            self._numbers[(kind, field, value)] = []
        rows = core.record_list(PLATFORM, self.account, kind).filter(**{f"data__{field}__in": sorted(wanted)})
        for record_id, data in rows.values_list("record_id", "data"):
            key = (kind, field, str(data.get(field)))
            self._numbers.setdefault(key, []).append((record_id, str(data.get("Type") or "")))

    def numbered(self, kind: str, field: str, value: str) -> list[tuple[str, str]]:
        """(record id, Type) of the stored records whose `field` is `value`."""
        self.numbers_load(kind, field, [value])
        return self._numbers.get((kind, field, str(value)), [])

    def by_code(self, kind: str, field: str, value: Any) -> Any:
        if not value:
            return None
        return next((r for r in self.all(kind).values() if r.data.get(field) == value), None)

    def contact_summary(self, contact_id: str) -> dict[str, Any]:
        record = self.get("contact", contact_id)
        data = record.data if record else {}
        return {
            "ContactID": contact_id,
            "Name": data.get("Name", ""),
            "EmailAddress": data.get("EmailAddress", ""),
            "ContactStatus": data.get("ContactStatus", "ACTIVE"),
            "Addresses": [],
            "Phones": [],
            "ContactGroups": [],
            "ContactPersons": [],
            "HasValidationErrors": False,
        }


# --- wire shapes of stored records -------------------------------------------------------------------
def contact_out(record: Any, books: Books) -> dict[str, Any]:
    data = record.data
    out = {
        "ContactID": record.record_id,
        "ContactNumber": data.get("ContactNumber", ""),
        "ContactStatus": data.get("ContactStatus", "ACTIVE"),
        "Name": data["Name"],
        "EmailAddress": data.get("EmailAddress", ""),
        "TaxNumber": data.get("TaxNumber", ""),
        "Addresses": [],
        "Phones": [],
        "ContactGroups": [],
        "ContactPersons": [],
        "IsSupplier": bool(data.get("IsSupplier")),
        "IsCustomer": bool(data.get("IsCustomer")),
        "UpdatedDateUTC": _ms(record.updated_at),
        "HasAttachments": False,
        "HasValidationErrors": False,
    }
    if data.get("DefaultCurrency"):
        out["DefaultCurrency"] = data["DefaultCurrency"]
    return out


def _line_out(line: dict[str, Any]) -> dict[str, Any]:
    out = {
        "LineItemID": line["LineItemID"],
        "Description": line.get("Description", ""),
        "Quantity": _num(line["Quantity"]),
        "UnitAmount": _num(line["UnitAmount"]),
        "TaxType": line.get("TaxType", "NONE"),
        "TaxAmount": _num(line["TaxAmount"]),
        "LineAmount": _num(line["LineAmount"]),
        "Tracking": [],
        "ValidationErrors": [],
    }
    for key in ("AccountCode", "ItemCode"):
        if line.get(key):
            out[key] = line[key]
    if line.get("DiscountAmount"):
        out["DiscountAmount"] = _num(line["DiscountAmount"])
    return out


def document_out(record: Any, books: Books, *, lines: bool = True) -> dict[str, Any]:
    data = record.data
    kind = record.kind
    _, id_field, number_field = DOCUMENTS[kind]
    out: dict[str, Any] = {
        "Type": data["Type"],
        id_field: record.record_id,
        number_field: data.get(number_field, ""),
        "Reference": data.get("Reference", ""),
        "Contact": books.contact_summary(data["ContactID"]),
        "Date": _day(data["Date"]),
        "DateString": f"{data['Date']}T00:00:00",
        "Status": data["Status"],
        "LineAmountTypes": data["LineAmountTypes"],
        "SubTotal": _num(data["SubTotal"]),
        "TotalTax": _num(data["TotalTax"]),
        "Total": _num(data["Total"]),
        "CurrencyCode": data["CurrencyCode"],
        "CurrencyRate": 1.0,
        "UpdatedDateUTC": _ms(record.updated_at),
        "UpdatedDateUTCString": record.updated_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "HasAttachments": False,
        "HasErrors": False,
        "Payments": [
            {
                "PaymentID": p["PaymentID"],
                "Date": _day(p["Date"]),
                "Amount": _num(p["Amount"]),
                "Reference": p.get("Reference", ""),
                "CurrencyRate": 1.0,
                "HasAccount": False,
                "HasValidationErrors": False,
            }
            for p in data.get("Payments", [])
        ],
    }
    if data.get("DueDate"):
        out["DueDate"] = _day(data["DueDate"])
        out["DueDateString"] = f"{data['DueDate']}T00:00:00"
    if lines:
        out["LineItems"] = [_line_out(line) for line in data["LineItems"]]
    if kind == "invoice":
        out.update(
            AmountDue=_num(data["AmountDue"]),
            AmountPaid=_num(data["AmountPaid"]),
            AmountCredited=_num(data["AmountCredited"]),
            IsDiscounted=any(line.get("DiscountAmount") for line in data["LineItems"]),
            CreditNotes=[
                {
                    "CreditNoteID": c["CreditNoteID"],
                    "CreditNoteNumber": c["CreditNoteNumber"],
                    "AppliedAmount": _num(c["Amount"]),
                    "Date": _day(c["Date"]),
                }
                for c in data.get("CreditNotes", [])
            ],
            Prepayments=[],
            Overpayments=[],
        )
        if data.get("FullyPaidOnDate"):
            out["FullyPaidOnDate"] = _day(data["FullyPaidOnDate"])
    else:
        out["RemainingCredit"] = _num(data["RemainingCredit"])
        out["Allocations"] = [
            {
                "AllocationID": a["AllocationID"],
                "Amount": _num(a["Amount"]),
                "Date": _day(a["Date"]),
                "Invoice": {"InvoiceID": a["InvoiceID"], "InvoiceNumber": a["InvoiceNumber"]},
            }
            for a in data.get("Allocations", [])
        ]
    return out


def payment_out(record: Any, books: Books) -> dict[str, Any]:
    data = record.data
    invoice = books.get("invoice", data["InvoiceID"])
    account = books.get("account", data["AccountID"])
    invoice_data = invoice.data if invoice else {}
    return {
        "PaymentID": record.record_id,
        "Date": _day(data["Date"]),
        "BankAmount": _num(data["Amount"]),
        "Amount": _num(data["Amount"]),
        "Reference": data.get("Reference", ""),
        "CurrencyRate": 1.0,
        "PaymentType": data["PaymentType"],
        "Status": data["Status"],
        "UpdatedDateUTC": _ms(record.updated_at),
        "HasAccount": True,
        "IsReconciled": False,
        "Account": {
            "AccountID": data["AccountID"],
            "Code": account.data.get("Code", "") if account else "",
            "Name": account.data.get("Name", "") if account else "",
        },
        "Invoice": {
            "Type": invoice_data.get("Type", ""),
            "InvoiceID": data["InvoiceID"],
            "InvoiceNumber": invoice_data.get("InvoiceNumber", ""),
            "Contact": books.contact_summary(invoice_data.get("ContactID", "")),
            "CurrencyCode": invoice_data.get("CurrencyCode", ""),
            "AmountDue": _num(invoice_data.get("AmountDue", 0)),
            "AmountPaid": _num(invoice_data.get("AmountPaid", 0)),
            "Status": invoice_data.get("Status", ""),
            "LineItems": [],
        },
        "HasValidationErrors": False,
    }


# --- listing -----------------------------------------------------------------------------------------
def _order_key(field: str) -> Callable[[dict[str, Any]], Any]:
    def key(item: dict[str, Any]) -> Any:
        value = _resolve(item, field)
        match = re.match(r"^/Date\((-?\d+)", str(value)) if isinstance(value, str) else None
        if match:
            return (0, int(match.group(1)), "")
        if isinstance(value, int | float):
            return (0, value, "")
        return (1, 0, "" if value is None else str(value))

    return key


_ID_FIELDS = {
    "invoice": "InvoiceID",
    "creditnote": "CreditNoteID",
    "payment": "PaymentID",
    "contact": "ContactID",
}


def _list(request: HttpRequest, account: str, kind: str, name: str, render: Callable) -> HttpResponse:
    books = Books(account)
    for related in ("contact", "invoice", "account") if kind == "payment" else ("contact",):
        books.all(related)  # one query each, not one per record
    records = core.record_list(PLATFORM, account, kind)
    since = _since(request)
    if since is not None:
        records = records.filter(updated_at__gte=since)
    params = request.GET
    paged = "page" in params
    if kind in DOCUMENTS:
        # Xero leaves line items out of a multi-record answer unless it is paged
        items = [render(record, books, lines=paged) for record in records]
    else:
        items = [render(record, books) for record in records]
    id_field = _ID_FIELDS[kind]
    number_field = "InvoiceNumber" if kind == "invoice" else ""
    if params.get("where"):
        matches = where_filter(params["where"])
        items = [item for item in items if matches(item)]
    for param, field in (("IDs", id_field), ("InvoiceNumbers", number_field), ("Statuses", "Status")):
        if params.get(param) and field:
            wanted = {part.strip().strip('"') for part in params[param].split(",")}
            items = [item for item in items if str(item.get(field)) in wanted]
    if params.get("ContactIDs"):
        wanted = {part.strip() for part in params["ContactIDs"].split(",")}
        items = [item for item in items if (item.get("Contact") or {}).get("ContactID") in wanted]
    if kind == "contact" and params.get("includeArchived", "").lower() != "true":
        items = [item for item in items if item.get("ContactStatus") != "ARCHIVED"]
    if params.get("order"):
        field, _, direction = params["order"].strip().partition(" ")
        items.sort(key=_order_key(field), reverse=direction.strip().upper() == "DESC")
    if not paged:
        return _envelope(name, items)
    try:
        page = max(1, int(params["page"]))
        size = min(MAX_PAGE_SIZE, max(1, int(params.get("pageSize") or 100)))
    except ValueError:
        raise _query_error("page and pageSize must be whole numbers") from None
    count = len(items)
    pagination = {"page": page, "pageSize": size, "pageCount": math.ceil(count / size), "itemCount": count}
    return _envelope(name, items[(page - 1) * size : page * size], pagination=pagination)


def _one(account: str, kind: str, record_id: str, *, by_number: str = "") -> Any:
    record = core.record_get(PLATFORM, account, kind, record_id)
    if record is None and by_number:
        record = next(
            (r for r in core.record_list(PLATFORM, account, kind) if r.data.get(by_number) == record_id), None
        )
    if record is None:
        raise _not_found()
    return record


# --- idempotency -------------------------------------------------------------------------------------
def idempotent(handler: Callable) -> Callable:
    """Replay the stored answer to a repeated Idempotency-Key; a key reused for another request is an
    error. Handlers validate everything before they write, so a refused request stores its 400."""

    def wrapped(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
        key = request.headers.get("Idempotency-Key", "")
        if not key:
            return handler(request, account, match)
        if len(key) > 128:
            raise _bad_post("The Idempotency-Key header is longer than 128 characters")
        body = request.body.decode("utf-8", "replace")
        print_ = core.fingerprint(request.method, request.path, sorted(request.GET.items()), body)
        stored = core.idempotency_lookup(PLATFORM, account, key, print_)
        if stored is False:
            raise SandboxError(
                400, _problem(400, "Bad Request", "The Idempotency-Key was already used with another request")
            )
        if stored:
            return core.stored_response(stored)
        try:
            response = handler(request, account, match)
        except SandboxError as exc:
            response = exc.response()
        if response.status_code < 500:
            core.idempotency_store(PLATFORM, account, key, print_, response)
        return response

    return wrapped


# --- documents: build, validate, save ------------------------------------------------------------------
class _Batch:
    """Numbers taken so far in one request, so two new documents cannot share one."""

    def __init__(self) -> None:
        self.numbers: set[tuple[str, str]] = set()


def _resolve_contact(books: Books, element: dict[str, Any], existing: dict | None, errors: list[str]) -> Any:
    contact = element.get("Contact")
    if contact is None and existing:
        return existing["ContactID"]
    if not isinstance(contact, dict) or not (contact.get("ContactID") or contact.get("Name")):
        errors.append("A Contact must be specified for this type of transaction")
        return None
    if contact.get("ContactID"):
        if books.get("contact", contact["ContactID"]) is None:
            errors.append(f"The contact with ContactID '{contact['ContactID']}' could not be found")
            return None
        return contact["ContactID"]
    found = next(
        (
            r
            for r in books.all("contact").values()
            if r.data["Name"].lower() == str(contact["Name"]).lower()
            and r.data.get("ContactStatus") != "ARCHIVED"
        ),
        None,
    )
    return found.record_id if found else {"new": str(contact["Name"])}


def _lines(
    books: Books, items: Any, *, currency: str, amount_types: str, status: str, unitdp: int, errors: list[str]
) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        errors.append("LineItems must be a list")
        return []
    lines = []
    for index, raw in enumerate(items):
        if not isinstance(raw, dict):
            errors.append(f"Line item {index + 1} is not an object")
            continue
        item = books.by_code("item", "Code", raw.get("ItemCode"))
        if raw.get("ItemCode") and item is None:
            errors.append(f"Item code '{raw['ItemCode']}' is not valid")
        sales = (item.data.get("SalesDetails") or {}) if item else {}
        description = str(raw.get("Description") or (item.data.get("Description") if item else "") or "")
        if not description:
            errors.append("Description needs to be at least 1 char long")
        quantity = _dec(raw.get("Quantity", 1))
        unit = _dec(raw.get("UnitAmount", sales.get("UnitPrice")))
        given_line = _dec(raw.get("LineAmount"))
        discount = _dec(raw.get("DiscountAmount")) or Decimal(0)
        if quantity is None:
            errors.append(f"Quantity '{raw.get('Quantity')}' is not a number")
            continue
        if unit is None and given_line is None:
            unit = Decimal(0)
        if unit is None:
            line_amount = _money(given_line, currency)
            unit = _places(line_amount / quantity, unitdp) if quantity else line_amount
        else:
            unit = _places(unit, unitdp)
            rate_discount = _dec(raw.get("DiscountRate")) or Decimal(0)
            gross = quantity * unit * (100 - rate_discount) / 100
            line_amount = _money(gross - discount, currency)
        account_code = raw.get("AccountCode") or sales.get("AccountCode")
        account = books.by_code("account", "Code", account_code)
        if account_code and account is None:
            errors.append(f"Account code '{account_code}' is not a valid code for this document.")
        if not account_code and status == "AUTHORISED":
            errors.append("An account code must be specified for each line item of an approved document")
        tax_type = (
            raw.get("TaxType") or sales.get("TaxType") or (account.data.get("TaxType") if account else "")
        )
        tax_type = tax_type or "NONE"
        rate_record = books.by_code("taxrate", "TaxType", tax_type)
        if rate_record is None:
            errors.append(
                f"The TaxType code '{tax_type}' does not exist or cannot be used for this type of "
                "transaction."
            )
            continue
        rate = Decimal(str(rate_record.data["EffectiveRate"]))
        given_tax = _dec(raw.get("TaxAmount"))
        if amount_types == "NoTax":
            tax = Decimal(0)
        elif given_tax is not None:
            tax = _money(given_tax, currency)  # Xero takes an explicit tax amount as an override
        elif amount_types == "Inclusive":
            tax = _money(line_amount * rate / (100 + rate), currency)
        else:
            tax = _money(line_amount * rate / 100, currency)
        line = {
            "LineItemID": str(raw.get("LineItemID") or uuid.uuid4()),
            "Description": description,
            "Quantity": str(quantity),
            "UnitAmount": str(unit),
            "LineAmount": str(line_amount),
            "TaxAmount": str(tax),
            "TaxType": tax_type,
        }
        if account_code:
            line["AccountCode"] = account_code
        if raw.get("ItemCode"):
            line["ItemCode"] = raw["ItemCode"]
        if discount:
            line["DiscountAmount"] = str(_money(discount, currency))
        lines.append(line)
    return lines


def _totals(data: dict[str, Any]) -> None:
    currency = data["CurrencyCode"]
    line_sum = sum((Decimal(line["LineAmount"]) for line in data["LineItems"]), Decimal(0))
    tax = sum((Decimal(line["TaxAmount"]) for line in data["LineItems"]), Decimal(0))
    subtotal = line_sum - tax if data["LineAmountTypes"] == "Inclusive" else line_sum
    data["SubTotal"] = str(_money(subtotal, currency))
    data["TotalTax"] = str(_money(tax, currency))
    data["Total"] = str(_money(subtotal + tax, currency))
    if "AmountPaid" in data:
        due = Decimal(data["Total"]) - Decimal(data["AmountPaid"]) - Decimal(data["AmountCredited"])
        data["AmountDue"] = str(_money(due, currency))
    if "RemainingCredit" in data:
        applied = sum((Decimal(a["Amount"]) for a in data.get("Allocations", [])), Decimal(0))
        data["RemainingCredit"] = str(_money(Decimal(data["Total"]) - applied, currency))


def _status_change(kind: str, existing: dict[str, Any], target: str, errors: list[str]) -> None:
    current = existing["Status"]
    noun = "invoice" if kind == "invoice" else "credit note"
    if current in ("PAID", "VOIDED", "DELETED"):
        errors.append(f"This {noun} is {current} and cannot be modified")
    elif target == "VOIDED":
        if current != "AUTHORISED":
            errors.append(f"Only an AUTHORISED {noun} can be voided; a {current} one can be deleted")
        elif _has_money(kind, existing):
            errors.append(f"This {noun} cannot be voided as it has payments or credit allocated to it")
    elif target == "DELETED" and current not in ("DRAFT", "SUBMITTED"):
        errors.append(f"Only a DRAFT or SUBMITTED {noun} can be deleted; void an AUTHORISED one")
    elif target in ("DRAFT", "SUBMITTED") and current == "AUTHORISED":
        errors.append(f"An AUTHORISED {noun} cannot go back to {target}")
    elif target == "PAID":
        errors.append("Status PAID is set by payments, not by an update")


def closed(data: dict[str, Any], status: str) -> dict[str, Any]:
    """A voided or deleted document: nothing is owed on it any more (Xero reports 0 due)."""
    zero = str(_money(Decimal(0), data["CurrencyCode"]))
    balance = {"AmountDue": zero} if "AmountDue" in data else {"RemainingCredit": zero}
    return {**data, "Status": status, **balance}


def _has_money(kind: str, data: dict[str, Any]) -> bool:
    if kind == "invoice":
        return bool(Decimal(data["AmountPaid"]) or Decimal(data["AmountCredited"]))
    return Decimal(data["RemainingCredit"]) != Decimal(data["Total"]) or bool(data.get("Payments"))


def build_document(
    books: Books,
    kind: str,
    element: dict[str, Any],
    *,
    existing: Any = None,
    unitdp: int = 2,
    batch: _Batch | None = None,
) -> tuple[dict[str, Any] | None, list[str]]:
    """The stored form of a new or changed invoice / credit note, or the messages refusing it."""
    errors: list[str] = []
    old = dict(existing.data) if existing is not None else None
    _, _, number_field = DOCUMENTS[kind]
    if old is not None:
        target = element.get("Status", old["Status"])
        if target != old["Status"] or old["Status"] in ("PAID", "VOIDED", "DELETED"):
            _status_change(kind, old, target, errors)
            if errors or target in ("VOIDED", "DELETED"):
                return (None if errors else closed(old, target)), errors
        content = set(element) - {"Status", DOCUMENTS[kind][1], "Type"}
        if content and _has_money(kind, old):
            noun = "invoice" if kind == "invoice" else "credit note"
            return None, [f"This {noun} cannot be edited as it has a payment or credit note allocated to it."]
    fresh = {"AmountPaid": "0", "AmountCredited": "0"} if kind == "invoice" else {}
    data = old if old is not None else fresh
    doc_type = element.get("Type") or (old or {}).get("Type")
    if doc_type not in TYPES[kind]:
        errors.append(f"Type '{doc_type}' is not one of {', '.join(TYPES[kind])}")
    status = element.get("Status") or (old or {}).get("Status") or "DRAFT"
    if old is None and status not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
        errors.append(f"A new document cannot have Status '{status}'")
    currency = str(element.get("CurrencyCode") or (old or {}).get("CurrencyCode") or BASE_CURRENCY).upper()
    if currency not in CURRENCIES:
        errors.append(f"Organisation is not subscribed to currency {currency}")
        currency = BASE_CURRENCY
    amount_types = element.get("LineAmountTypes") or (old or {}).get("LineAmountTypes") or "Exclusive"
    if amount_types not in ("Exclusive", "Inclusive", "NoTax"):
        errors.append(f"LineAmountTypes '{amount_types}' is not valid")
        amount_types = "Exclusive"
    contact = _resolve_contact(books, element, old, errors)
    day = _parse_day(element["Date"]) if "Date" in element else (old or {}).get("Date")
    if "Date" in element and day is None:
        errors.append(f"Date '{element['Date']}' is not a valid date")
    due = _parse_day(element["DueDate"]) if element.get("DueDate") else (old or {}).get("DueDate")
    if element.get("DueDate") and due is None:
        errors.append(f"Due date '{element['DueDate']}' is not a valid date")
    number = element.get(number_field) or (old or {}).get(number_field) or ""
    if element.get(number_field) and doc_type in SALES_TYPES:
        own = existing.record_id if existing is not None else None
        taken = any(
            kind_ == doc_type and record_id != own
            for record_id, kind_ in books.numbered(kind, number_field, str(number))
        ) or (doc_type, number) in (batch.numbers if batch else set())
        if taken:
            errors.append(
                "Invoice # must be unique." if kind == "invoice" else "Credit Note # must be unique."
            )
    if "LineItems" in element or old is None:
        lines = _lines(
            books,
            element.get("LineItems") or [],
            currency=currency,
            amount_types=amount_types,
            status=status,
            unitdp=unitdp,
            errors=errors,
        )
    else:
        lines = old["LineItems"]
    if errors:
        return None, errors
    data.update(
        Type=doc_type,
        Status=status,
        CurrencyCode=currency,
        LineAmountTypes=amount_types,
        ContactID=contact,
        Date=day or timezone.now().date().isoformat(),
        DueDate=due,
        Reference=str(element.get("Reference", (old or {}).get("Reference", "")) or ""),
        LineItems=lines,
    )
    data[number_field] = number
    if kind == "creditnote":
        data.setdefault("Allocations", [])
        data.setdefault("Payments", [])
        data.setdefault("RemainingCredit", "0")
    else:
        data.setdefault("Payments", [])
        data.setdefault("CreditNotes", [])
    _totals(data)
    if batch is not None and number:
        batch.numbers.add((doc_type, number))
    return data, []


def save_document(books: Books, kind: str, data: dict[str, Any], record_id: str | None = None) -> Any:
    """Store a built document: a contact given by name only is created now, a missing number assigned."""
    _, _, number_field = DOCUMENTS[kind]
    if isinstance(data["ContactID"], dict):  # named only: found again, or created (twice in one batch: once)
        name = data["ContactID"]["new"]
        found = next(
            (r for r in books.all("contact").values() if r.data["Name"].lower() == name.lower()), None
        )
        data["ContactID"] = (
            found.record_id if found else save_contact(books, {"Name": name, "IsCustomer": True})
        )
    if not data.get(number_field) and data["Type"] in SALES_TYPES:
        prefix = "INV" if kind == "invoice" else "CN"
        number = ""
        while not number or books.numbered(kind, number_field, number):
            number = f"{prefix}-{core.next_number(PLATFORM, books.account, f'{kind}-number'):04d}"
        data[number_field] = number
    return books.save(kind, record_id or None, data)


def save_contact(books: Books, data: dict[str, Any], record_id: str | None = None) -> str:
    return books.save("contact", record_id or None, {"ContactStatus": "ACTIVE", **data}).record_id


# --- document routes ----------------------------------------------------------------------------------
def _kind_of(match: re.Match[str]) -> str:
    return "invoice" if match.group("collection") == "Invoices" else "creditnote"


def list_documents(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    kind = _kind_of(match)
    return _list(request, account, kind, DOCUMENTS[kind][0], document_out)


def get_document(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    kind = _kind_of(match)
    record = _one(account, kind, match.group("id"), by_number=DOCUMENTS[kind][2])
    return _envelope(DOCUMENTS[kind][0], [document_out(record, Books(account))])


def _unitdp(request: HttpRequest) -> int:
    return 4 if request.GET.get("unitdp") == "4" else 2


def _summarise(request: HttpRequest) -> bool:
    return request.GET.get("summarizeErrors", "true").lower() != "false"


def _refusal(kind: str, element: dict[str, Any], errors: list[str]) -> dict[str, Any]:
    _, id_field, _ = DOCUMENTS[kind]
    refused = _refused({**element, id_field: element.get(id_field) or ZERO_ID}, errors)
    refused.update(HasErrors=True, StatusAttributeString="ERROR")
    return refused


@idempotent
def put_documents(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    """PUT creates; each element stands alone with summarizeErrors=false, else one error refuses all."""
    kind = _kind_of(match)
    collection, _, _ = DOCUMENTS[kind]
    elements = _elements(_body(request), collection)
    books, batch = Books(account), _Batch()
    _, _, number_field = DOCUMENTS[kind]
    books.numbers_load(kind, number_field, [str(element.get(number_field) or "") for element in elements])
    built = [
        build_document(books, kind, element, unitdp=_unitdp(request), batch=batch) for element in elements
    ]
    if _summarise(request) and any(errors for _, errors in built):
        raise _validation(
            [_refusal(kind, e, errors) for e, (_, errors) in zip(elements, built, strict=True) if errors]
        )
    answer = []
    books.ids_reserve(kind, sum(1 for _, errors in built if not errors))
    for element, (data, errors) in zip(elements, built, strict=True):
        if errors:
            answer.append(_refusal(kind, element, errors))
            continue
        record = save_document(books, kind, data)
        answer.append({**document_out(record, books), "StatusAttributeString": "OK"})
    return _envelope(collection, answer)


@idempotent
def post_document(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    """POST /{collection}/{id}: a sparse update, status changes included (void, delete, approve)."""
    kind = _kind_of(match)
    collection, _, number_field = DOCUMENTS[kind]
    existing = _one(account, kind, match.group("id"), by_number=number_field)
    elements = _elements(_body(request), collection)
    if len(elements) != 1:
        raise _bad_post(f"POST /{collection}/{{id}} takes exactly one element")
    books = Books(account)
    data, errors = build_document(books, kind, elements[0], existing=existing, unitdp=_unitdp(request))
    if errors:
        raise _validation([_refusal(kind, elements[0], errors)])
    record = save_document(books, kind, data, existing.record_id)
    return _envelope(collection, [{**document_out(record, books), "StatusAttributeString": "OK"}])


# --- payments ----------------------------------------------------------------------------------------
def _settle(invoice: dict[str, Any]) -> None:
    due = Decimal(invoice["AmountDue"])
    if due <= 0 and invoice["Status"] == "AUTHORISED":
        invoice["Status"] = "PAID"
    elif due > 0 and invoice["Status"] == "PAID":
        invoice["Status"] = "AUTHORISED"
        invoice["FullyPaidOnDate"] = None


def build_payment(books: Books, element: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    errors: list[str] = []
    invoice_ref = element.get("Invoice") or {}
    invoice = None
    if isinstance(invoice_ref, dict) and invoice_ref.get("InvoiceID"):
        invoice = books.get("invoice", invoice_ref["InvoiceID"])
    elif isinstance(invoice_ref, dict) and invoice_ref.get("InvoiceNumber"):
        invoice = books.by_code("invoice", "InvoiceNumber", invoice_ref["InvoiceNumber"])
    if invoice is None:
        return None, ["Invoice could not be found"]
    if invoice.data["Status"] != "AUTHORISED":
        errors.append("Payments can only be made against Authorised documents")
    account_ref = element.get("Account") or {}
    account = books.by_code("account", "Code", account_ref.get("Code")) or (
        books.get("account", account_ref["AccountID"]) if account_ref.get("AccountID") else None
    )
    if account is None:
        errors.append(f"Account code '{account_ref.get('Code', '')}' is not a valid code for this document.")
    elif not (account.data.get("Type") == "BANK" or account.data.get("EnablePaymentsToAccount")):
        errors.append("The Account is not a bank account and does not have payments enabled")
    currency = invoice.data["CurrencyCode"]
    paid = _dec(element.get("Amount"))
    if paid is None or paid <= 0:
        errors.append(f"Payment amount '{element.get('Amount')}' must be a positive number")
    elif _money(paid, currency) != paid:
        errors.append(f"Payment amount {paid} has more decimal places than {currency} allows")
    elif paid > Decimal(invoice.data["AmountDue"]):
        errors.append("Payment amount exceeds the amount outstanding on this document")
    day = _parse_day(element.get("Date") or timezone.now().date().isoformat())
    if day is None:
        errors.append(f"Date '{element.get('Date')}' is not a valid date")
    if errors:
        return None, errors
    payment_type = "ACCRECPAYMENT" if invoice.data["Type"] == "ACCREC" else "ACCPAYPAYMENT"
    return {
        "InvoiceID": invoice.record_id,
        "AccountID": account.record_id,
        "Date": day,
        "Amount": str(paid),
        "Reference": str(element.get("Reference") or ""),
        "PaymentType": payment_type,
        "Status": "AUTHORISED",
    }, []


def apply_payment(books: Books, data: dict[str, Any]) -> Any:
    payment_id = books.new_id("payment")
    invoice = books.get("invoice", data["InvoiceID"])
    changed = dict(invoice.data)
    changed["AmountPaid"] = str(Decimal(changed["AmountPaid"]) + Decimal(data["Amount"]))
    changed["Payments"] = [
        *changed.get("Payments", []),
        {
            "PaymentID": payment_id,
            "Date": data["Date"],
            "Amount": data["Amount"],
            "Reference": data["Reference"],
        },
    ]
    _totals(changed)
    _settle(changed)
    if changed["Status"] == "PAID":
        changed["FullyPaidOnDate"] = data["Date"]
    books.save("invoice", invoice.record_id, changed)
    return books.save("payment", payment_id, data)


def list_payments(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    return _list(request, account, "payment", "Payments", payment_out)


def get_payment(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    return _envelope("Payments", [payment_out(_one(account, "payment", match.group("id")), Books(account))])


@idempotent
def put_payments(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    elements = _elements(_body(request), "Payments")
    books = Books(account)
    if _summarise(request):
        built = [build_payment(books, element) for element in elements]
        refused = [_refused(e, errors) for e, (_, errors) in zip(elements, built, strict=True) if errors]
        if refused:
            raise _validation(refused)
    answer = []
    for element in elements:
        data, errors = build_payment(books, element)  # against the balances the earlier ones left
        if errors:
            answer.append(
                {**_refused(element, errors), "HasValidationErrors": True, "StatusAttributeString": "ERROR"}
            )
            continue
        answer.append({**payment_out(apply_payment(books, data), books), "StatusAttributeString": "OK"})
    return _envelope("Payments", answer)


@idempotent
def delete_payment(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    """POST /Payments/{id} {"Status": "DELETED"}: the only change Xero allows to a payment."""
    record = _one(account, "payment", match.group("id"))
    body = _body(request)
    element = _elements(body, "Payments")[0] if "Payments" in body else body
    if element.get("Status") != "DELETED":
        raise _validation([_refused(element, ["A payment can only be changed to Status DELETED"])])
    if record.data["Status"] == "DELETED":
        raise _validation([_refused(element, ["This payment has already been deleted"])])
    books = Books(account)
    invoice = books.get("invoice", record.data["InvoiceID"])
    changed = dict(invoice.data)
    changed["AmountPaid"] = str(Decimal(changed["AmountPaid"]) - Decimal(record.data["Amount"]))
    changed["Payments"] = [p for p in changed.get("Payments", []) if p["PaymentID"] != record.record_id]
    _totals(changed)
    _settle(changed)
    books.save("invoice", invoice.record_id, changed)
    saved = books.save("payment", record.record_id, {**record.data, "Status": "DELETED"})
    return _envelope("Payments", [payment_out(saved, books)])


# --- credit allocations ------------------------------------------------------------------------------
def build_allocation(
    books: Books, note: Any, element: dict[str, Any], remaining: Decimal
) -> tuple[Any, list[str]]:
    errors = []
    ref = element.get("Invoice") or {}
    invoice = books.get("invoice", ref.get("InvoiceID", "")) if isinstance(ref, dict) else None
    if note.data["Status"] != "AUTHORISED":
        errors.append("Only an AUTHORISED credit note can be allocated")
    if invoice is None:
        return None, [*errors, "Invoice could not be found"]
    if invoice.data["Status"] != "AUTHORISED":
        errors.append("Credit can only be allocated to Authorised invoices")
    if invoice.data["CurrencyCode"] != note.data["CurrencyCode"]:
        errors.append("The invoice and the credit note must be in the same currency")
    if invoice.data["ContactID"] != note.data["ContactID"]:
        errors.append("The invoice and the credit note must be for the same contact")
    applied = _dec(element.get("Amount"))
    if applied is None or applied <= 0:
        errors.append(f"Allocation amount '{element.get('Amount')}' must be a positive number")
    elif applied > remaining:
        errors.append("The allocation amount exceeds the remaining credit on the credit note")
    elif applied > Decimal(invoice.data["AmountDue"]):
        errors.append("The allocation amount exceeds the amount outstanding on the invoice")
    day = _parse_day(element.get("Date") or timezone.now().date().isoformat())
    if day is None:
        errors.append(f"Date '{element.get('Date')}' is not a valid date")
    if errors:
        return None, errors
    return {"invoice": invoice, "Amount": applied, "Date": day}, []


def apply_allocation(books: Books, note_id: str, allocation: dict[str, Any]) -> dict[str, Any]:
    note = books.get("creditnote", note_id)
    invoice = allocation["invoice"]
    amount = str(allocation["Amount"])
    allocation_id = books.new_id("allocation")
    changed_note = dict(note.data)
    changed_note["Allocations"] = [
        *changed_note.get("Allocations", []),
        {
            "AllocationID": allocation_id,
            "Amount": amount,
            "Date": allocation["Date"],
            "InvoiceID": invoice.record_id,
            "InvoiceNumber": invoice.data.get("InvoiceNumber", ""),
        },
    ]
    _totals(changed_note)
    if Decimal(changed_note["RemainingCredit"]) <= 0:
        changed_note["Status"] = "PAID"
    books.save("creditnote", note_id, changed_note)
    changed = dict(books.get("invoice", invoice.record_id).data)
    changed["AmountCredited"] = str(Decimal(changed["AmountCredited"]) + allocation["Amount"])
    changed["CreditNotes"] = [
        *changed.get("CreditNotes", []),
        {
            "CreditNoteID": note_id,
            "CreditNoteNumber": changed_note.get("CreditNoteNumber", ""),
            "Amount": amount,
            "Date": allocation["Date"],
        },
    ]
    _totals(changed)
    _settle(changed)
    if changed["Status"] == "PAID":
        changed["FullyPaidOnDate"] = allocation["Date"]
    books.save("invoice", invoice.record_id, changed)
    return {
        "AllocationID": allocation_id,
        "Amount": _num(amount),
        "Date": _day(allocation["Date"]),
        "Invoice": {"InvoiceID": invoice.record_id, "InvoiceNumber": invoice.data.get("InvoiceNumber", "")},
        "CreditNote": {"CreditNoteID": note_id, "CreditNoteNumber": changed_note.get("CreditNoteNumber", "")},
        "ValidationErrors": [],
    }


@idempotent
def put_allocations(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    books = Books(account)
    note = _one(account, "creditnote", match.group("id"))
    elements = _elements(_body(request), "Allocations")
    remaining = Decimal(note.data["RemainingCredit"])
    built = []
    for element in elements:
        allocation, errors = build_allocation(books, note, element, remaining)
        if allocation:
            remaining -= allocation["Amount"]
        built.append((allocation, errors))
    if _summarise(request) and any(errors for _, errors in built):
        raise _validation(
            [_refused(e, errors) for e, (_, errors) in zip(elements, built, strict=True) if errors]
        )
    answer = []
    for element, (allocation, errors) in zip(elements, built, strict=True):
        if errors:
            answer.append({**_refused(element, errors), "StatusAttributeString": "ERROR"})
        else:
            answer.append(apply_allocation(books, note.record_id, allocation))
    return _envelope("Allocations", answer)


# --- contacts and settings ---------------------------------------------------------------------------
def _contact_errors(books: Books, element: dict[str, Any], own: str | None) -> list[str]:
    name = str(element.get("Name") or "").strip()
    if not name:
        return ["The contact name must be specified"]
    clash = any(
        r.data["Name"].lower() == name.lower()
        and r.record_id != own
        and r.data.get("ContactStatus") != "ARCHIVED"
        for r in books.all("contact").values()
    )
    if clash:
        return [
            f"The contact name {name} is already assigned to another contact. "
            "The contact name must be unique across all active contacts."
        ]
    currency = element.get("DefaultCurrency")
    if currency and currency not in CURRENCIES:
        return [f"Organisation is not subscribed to currency {currency}"]
    return []


_CONTACT_FIELDS = ("Name", "ContactNumber", "EmailAddress", "TaxNumber", "DefaultCurrency", "ContactStatus")


def list_contacts(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    return _list(request, account, "contact", "Contacts", contact_out)


def get_contact(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    record = _one(account, "contact", match.group("id"), by_number="ContactNumber")
    return _envelope("Contacts", [contact_out(record, Books(account))])


@idempotent
def put_contacts(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    elements = _elements(_body(request), "Contacts")
    books = Books(account)
    checked = [_contact_errors(books, element, None) for element in elements]
    names = [str(e.get("Name", "")).lower() for e in elements]
    for index, name in enumerate(names):
        if name and names.index(name) != index and not checked[index]:
            checked[index] = [f"The contact name {elements[index]['Name']} is given twice in this request"]
    if _summarise(request) and any(checked):
        raise _validation(
            [_refused(e, errors) for e, errors in zip(elements, checked, strict=True) if errors]
        )
    answer = []
    for element, errors in zip(elements, checked, strict=True):
        if errors:
            answer.append(
                {**_refused(element, errors), "HasValidationErrors": True, "StatusAttributeString": "ERROR"}
            )
            continue
        data = {key: element[key] for key in _CONTACT_FIELDS if element.get(key)}
        contact_id = save_contact(books, {**data, "IsCustomer": True})
        answer.append({**contact_out(books.get("contact", contact_id), books), "StatusAttributeString": "OK"})
    return _envelope("Contacts", answer)


@idempotent
def post_contact(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    record = _one(account, "contact", match.group("id"))
    element = _elements(_body(request), "Contacts")[0]
    books = Books(account)
    merged = {**record.data, **{key: element[key] for key in _CONTACT_FIELDS if key in element}}
    errors = _contact_errors(books, merged, record.record_id)
    if errors:
        raise _validation([_refused(element, errors)])
    saved = books.save("contact", record.record_id, merged)
    return _envelope("Contacts", [contact_out(saved, books)])


def _settings(kind: str, name: str, render: Callable[[Any], dict[str, Any]]) -> Callable:
    def handler(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
        items = [render(record) for record in core.record_list(PLATFORM, account, kind)]
        if request.GET.get("where"):
            matches = where_filter(request.GET["where"])
            items = [item for item in items if matches(item)]
        return _envelope(name, items)

    return handler


def _account_out(record: Any) -> dict[str, Any]:
    return {"AccountID": record.record_id, **record.data, "UpdatedDateUTC": _ms(record.updated_at)}


def _taxrate_out(record: Any) -> dict[str, Any]:
    return dict(record.data)


def _item_out(record: Any) -> dict[str, Any]:
    return {"ItemID": record.record_id, **record.data, "UpdatedDateUTC": _ms(record.updated_at)}


def organisation(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    return _envelope(
        "Organisations",
        [
            {
                "OrganisationID": account,
                "Name": ORGANISATION_NAME,
                "LegalName": ORGANISATION_NAME,
                "BaseCurrency": BASE_CURRENCY,
                "CountryCode": "GB",
                "OrganisationType": "COMPANY",
                "OrganisationStatus": "ACTIVE",
                "Version": "UK",
                "IsDemoCompany": True,
            }
        ],
    )


def connections(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    """The identity service: which organisations the token may use (a bare JSON list, as Xero's)."""
    stamp = "2026-01-05T09:00:00.0000000"
    body = [
        {
            "id": str(uuid.uuid5(NAMESPACE, f"connection/{account}")),
            "authEventId": str(uuid.uuid5(NAMESPACE, f"auth/{account}")),
            "tenantId": account,
            "tenantType": "ORGANISATION",
            "tenantName": ORGANISATION_NAME,
            "createdDateUtc": stamp,
            "updatedDateUtc": stamp,
        }
    ]
    return JsonResponse(body, safe=False)


API = r"^api\.xro/2\.0/"
ID = r"(?P<id>[^/]+)"
ROUTES = [
    Route("GET", r"^[Cc]onnections/?$", connections),
    Route("GET", API + r"(?P<collection>Invoices|CreditNotes)/?$", list_documents),
    Route("PUT", API + r"(?P<collection>Invoices|CreditNotes)/?$", put_documents),
    Route("PUT", API + r"CreditNotes/" + ID + r"/Allocations/?$", put_allocations),
    Route("GET", API + r"(?P<collection>Invoices|CreditNotes)/" + ID + r"/?$", get_document),
    Route("POST", API + r"(?P<collection>Invoices|CreditNotes)/" + ID + r"/?$", post_document),
    Route("GET", API + r"Payments/?$", list_payments),
    Route("PUT", API + r"Payments/?$", put_payments),
    Route("GET", API + r"Payments/" + ID + r"/?$", get_payment),
    Route("POST", API + r"Payments/" + ID + r"/?$", delete_payment),
    Route("GET", API + r"Contacts/?$", list_contacts),
    Route("PUT", API + r"Contacts/?$", put_contacts),
    Route("GET", API + r"Contacts/" + ID + r"/?$", get_contact),
    Route("POST", API + r"Contacts/" + ID + r"/?$", post_contact),
    Route("GET", API + r"Accounts/?$", _settings("account", "Accounts", _account_out)),
    Route("GET", API + r"TaxRates/?$", _settings("taxrate", "TaxRates", _taxrate_out)),
    Route("GET", API + r"Items/?$", _settings("item", "Items", _item_out)),
    Route("GET", API + r"Organisation/?$", organisation),
]


# --- demo data -----------------------------------------------------------------------------------------
_ACCOUNTS = (
    ("090", "Business Bank Account", "BANK", "NONE", True),
    ("091", "Euro Bank Account", "BANK", "NONE", True),
    ("200", "Sales", "REVENUE", "OUTPUT2", False),
    ("260", "Other Revenue", "REVENUE", "OUTPUT2", False),
    ("400", "Advertising", "EXPENSE", "INPUT2", False),
    ("610", "Accounts Receivable", "CURRENT", "NONE", False),
)
_TAX_RATES = (
    ("OUTPUT2", "20% (VAT on Income)", "OUTPUT", "20.0"),
    ("RROUTPUT", "5% (VAT on Income)", "OUTPUT", "5.0"),
    ("ZERORATEDOUTPUT", "Zero Rated Income", "OUTPUT", "0.0"),
    ("INPUT2", "20% (VAT on Expenses)", "INPUT", "20.0"),
    ("NONE", "No VAT", "NONE", "0.0"),
)
_ITEMS = (
    ("OIL5L", "Olive oil 5L", "38.50"),
    ("RICE1K", "Arborio rice 1kg", "4.20"),
    ("TOM400", "Chopped tomatoes 400g (case of 12)", "9.60"),
)
_CUSTOMERS = (
    ("Trattoria Bella", "orders@bella.example", "GB123456789", "GBP"),
    ("Café du Marché", "compta@marche.example", "FR40303265045", "EUR"),
    ("Harbour Street Deli", "accounts@harbour.example", "", "GBP"),
    ("Kyoto Table", "finance@kyototable.example", "", "JPY"),
    ("Brooklyn Provisions", "ap@brooklyn.example", "", "USD"),
)


def seed(account: str) -> None:
    """A small UK company: accounts, tax rates, items, five customers (one archived later), a bill, about
    twenty sales invoices in every state and four currencies, payments and credit notes. Deterministic."""
    rng = random.Random(f"xero-sandbox:{account}")
    books = Books(account)
    for code, name, type_, tax_type, bank in _ACCOUNTS:
        books.save(
            "account",
            str(uuid.uuid5(NAMESPACE, f"{account}/account/{code}")),
            {
                "Code": code,
                "Name": name,
                "Type": type_,
                "TaxType": tax_type,
                "Status": "ACTIVE",
                "Class": "ASSET"
                if bank or type_ == "CURRENT"
                else ("REVENUE" if type_ == "REVENUE" else "EXPENSE"),
                "EnablePaymentsToAccount": bank,
                **(
                    {"BankAccountType": "BANK", "CurrencyCode": "EUR" if code == "091" else "GBP"}
                    if bank
                    else {}
                ),
            },
        )
    for tax_type, name, report, rate in _TAX_RATES:
        books.save(
            "taxrate",
            tax_type,
            {
                "Name": name,
                "TaxType": tax_type,
                "ReportTaxType": report,
                "Status": "ACTIVE",
                "CanApplyToRevenue": report in ("OUTPUT", "NONE"),
                "DisplayTaxRate": float(rate),
                "EffectiveRate": float(rate),
                "TaxComponents": [
                    {"Name": "VAT", "Rate": float(rate), "IsCompound": False, "IsNonRecoverable": False}
                ],
            },
        )
    for code, name, unit_price in _ITEMS:
        books.save(
            "item",
            str(uuid.uuid5(NAMESPACE, f"{account}/item/{code}")),
            {
                "Code": code,
                "Name": name,
                "Description": name,
                "IsSold": True,
                "IsPurchased": False,
                "IsTrackedAsInventory": False,
                "SalesDetails": {"UnitPrice": float(unit_price), "AccountCode": "200", "TaxType": "OUTPUT2"},
                "PurchaseDetails": {},
            },
        )
    customers = []
    for index, (name, email, tax_number, currency) in enumerate(_CUSTOMERS):
        contact = {"Name": name, "EmailAddress": email, "TaxNumber": tax_number, "DefaultCurrency": currency}
        contact.update(IsCustomer=True, ContactNumber=f"CUST-{index + 1:03d}")
        customers.append((save_contact(books, contact), currency))
    supplier = save_contact(books, {"Name": "Mediterranean Imports Ltd", "IsSupplier": True})

    start = date(2026, 1, 5)
    plan = [  # (status, how much is paid: 0 / part / all)
        *[("AUTHORISED", "none")] * 6,
        *[("AUTHORISED", "part")] * 3,
        *[("AUTHORISED", "all")] * 5,
        ("DRAFT", "none"),
        ("DRAFT", "none"),
        ("SUBMITTED", "none"),
        ("VOIDED", "none"),
        ("DELETED", "none"),
        ("AUTHORISED", "none"),
    ]
    invoices = []
    for index, (status, paid) in enumerate(plan):
        contact_id, currency = customers[index % len(customers)]
        amount_types = "Inclusive" if index == 3 else ("NoTax" if index == 7 else "Exclusive")
        lines = []
        for _ in range(rng.randint(1, 3)):
            code, name, unit_price = rng.choice(_ITEMS)
            price = Decimal(unit_price) if currency != "JPY" else Decimal(int(Decimal(unit_price) * 180))
            line = {"Description": name, "Quantity": rng.randint(1, 12), "UnitAmount": str(price)}
            line.update(
                AccountCode="200", TaxType="OUTPUT2" if currency in ("GBP", "EUR") else "ZERORATEDOUTPUT"
            )
            if index % 4 == 0:
                line["ItemCode"] = code
            lines.append(line)
        issued = start + timedelta(days=2 * index)
        element = {
            "Type": "ACCREC",
            "Contact": {"ContactID": contact_id},
            "Date": issued.isoformat(),
            "DueDate": (issued + timedelta(days=30)).isoformat(),
            "CurrencyCode": currency,
            "LineAmountTypes": amount_types,
            "Reference": f"PO-{4100 + index}",
            "Status": "AUTHORISED" if status in ("VOIDED", "AUTHORISED") else status,
            "LineItems": lines,
        }
        if status == "DELETED":
            element["Status"] = "DRAFT"
        data, errors = build_document(books, "invoice", element, unitdp=4)
        if errors:  # the plan above is valid; a failure here is a bug in the seed
            raise RuntimeError(f"sandbox seed invoice {index}: {errors}")
        record = save_document(books, "invoice", data)
        if status in ("VOIDED", "DELETED"):
            books.save("invoice", record.record_id, closed(record.data, status))
        elif paid != "none":
            due = Decimal(record.data["AmountDue"])
            part = (
                due if paid == "all" else _money(due * Decimal(rng.choice(("0.25", "0.5", "0.4"))), currency)
            )
            payment, errors = build_payment(
                books,
                {
                    "Invoice": {"InvoiceID": record.record_id},
                    "Account": {"Code": "091" if currency == "EUR" else "090"},
                    "Date": (issued + timedelta(days=rng.randint(3, 20))).isoformat(),
                    "Amount": str(part),
                    "Reference": f"BANK-{7000 + index}",
                },
            )
            if errors:
                raise RuntimeError(f"sandbox seed payment {index}: {errors}")
            apply_payment(books, payment)
        invoices.append(record.record_id)

    bill, _ = build_document(
        books,
        "invoice",
        {
            "Type": "ACCPAY",
            "Contact": {"ContactID": supplier},
            "Date": start.isoformat(),
            "InvoiceNumber": "MI-2231",
            "Status": "AUTHORISED",
            "LineItems": [
                {"Description": "Olive oil, pallet", "Quantity": 1, "UnitAmount": 640, "AccountCode": "400"}
            ],
        },
    )
    save_document(books, "invoice", bill)

    for index, (status, allocate) in enumerate(
        (("AUTHORISED", True), ("AUTHORISED", False), ("DRAFT", False))
    ):
        invoice = books.get("invoice", invoices[index])
        element = {
            "Type": "ACCRECCREDIT",
            "Contact": {"ContactID": invoice.data["ContactID"]},
            "Date": (start + timedelta(days=21 + index)).isoformat(),
            "CurrencyCode": invoice.data["CurrencyCode"],
            "Reference": f"RMA-{310 + index}",
            "Status": status,
            "LineItems": [
                {
                    "Description": "Damaged in transit",
                    "Quantity": 1,
                    "UnitAmount": invoice.data["LineItems"][0]["UnitAmount"],
                    "AccountCode": "200",
                    "TaxType": invoice.data["LineItems"][0]["TaxType"],
                }
            ],
        }
        data, errors = build_document(books, "creditnote", element, unitdp=4)
        if errors:
            raise RuntimeError(f"sandbox seed credit note {index}: {errors}")
        note = save_document(books, "creditnote", data)
        if allocate:
            half = _money(Decimal(note.data["RemainingCredit"]) / 2, note.data["CurrencyCode"])
            allocation, errors = build_allocation(
                books,
                note,
                {"Invoice": {"InvoiceID": invoice.record_id}, "Amount": str(half), "Date": element["Date"]},
                Decimal(note.data["RemainingCredit"]),
            )
            if errors:
                raise RuntimeError(f"sandbox seed allocation {index}: {errors}")
            apply_allocation(books, note.record_id, allocation)

    archived = customers[2][0]
    books.save("contact", archived, {**books.get("contact", archived).data, "ContactStatus": "ARCHIVED"})
