"""A Stripe emulator under /sandbox/stripe/v1/: the invoice, payment, credit note, payout and event objects
in their 2026 shapes, form-encoded requests, Stripe's error bodies, list paging, idempotency keys and the
events every state change leaves behind.

Authentication is a test-mode secret key (`Bearer sk_test_...` or Basic with the key as user name); the
key is the account. Paying an invoice without `paid_out_of_band` charges the customer's test card
(PaymentIntent, charge, balance transaction with a fee of 2.9% plus 0.30 in the currency's minor unit,
invoice_payment). Tax rates are a fixed table (`TAX_RATES`), all exclusive. Payouts exist only in the
demo data (`seed`), each with its balance transactions.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import secrets
import time
from collections.abc import Callable, Iterable
from copy import deepcopy
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from babel.numbers import get_currency_precision, list_currencies
from django.http import HttpRequest, HttpResponse, JsonResponse

from connectors.base import RateLimit
from sandbox import core, webhooks
from sandbox.core import Route, SandboxError
from sandbox.models import SandboxWebhook

PLATFORM = "stripe"
# docs.stripe.com/rate-limits: test mode allows 25 requests per second
RATE_LIMITS = (RateLimit("requests per second (test mode)", 25, 1.0),)
API_VERSION = "2026-06-24.dahlia"
MAX_EXPAND_DEPTH = 4
TAX_RATES = {
    "txr_sbx_gb_vat20": ("VAT", Decimal(20), "GB"),
    "txr_sbx_de_vat19": ("VAT", Decimal(19), "DE"),
    "txr_sbx_us_ny8875": ("Sales Tax", Decimal("8.875"), "US"),
    "txr_sbx_jp_jct10": ("JCT", Decimal(10), "JP"),
}
PREFIX_KINDS = {
    "txn": "balance_transaction",
    "ch": "charge",
    "pi": "payment_intent",
    "in": "invoice",
    "inpay": "invoice_payment",
    "cus": "customer",
    "re": "refund",
    "po": "payout",
    "cn": "credit_note",
    "ii": "invoiceitem",
    "txr": "tax_rate",
}
CREDIT_NOTE_REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory")


# --- the core's hooks ----------------------------------------------------------------------------------
def authenticate(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    key = ""
    if header.lower().startswith("bearer "):
        key = header[7:].strip()
    elif header.lower().startswith("basic "):
        try:
            key = base64.b64decode(header[6:]).decode().partition(":")[0]
        except ValueError:
            key = ""
    if not key:
        raise SandboxError(
            401,
            _error_body(
                "You did not provide an API key. You need to provide your API key in the Authorization "
                "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
            ),
            _headers(),
        )
    if not key.startswith(("sk_test_", "rk_test_")) or len(key) < 12:
        raise SandboxError(401, _error_body(f"Invalid API Key provided: {key[:8]}****{key[-4:]}"), _headers())
    return key if len(key) <= 100 else key[:8] + hashlib.sha256(key.encode()).hexdigest()[:40]


def rate_limited(wait_seconds: float, limit: RateLimit | None) -> HttpResponse:
    body = _error_body(
        "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests.",
        code="rate_limit",
    )
    return JsonResponse(body, status=429, headers=_headers())


def server_error() -> HttpResponse:
    body = _error_body(
        "Sorry, something went wrong. We've already been notified of the problem, but if you need any help, "
        "you can reach us at support.stripe.com/contact.",
        kind="api_error",
    )
    return JsonResponse(body, status=500, headers=_headers())


# --- errors, params, output ----------------------------------------------------------------------------
def _error_body(
    message: str, *, kind: str = "invalid_request_error", code: str = "", param: str = ""
) -> dict:
    error: dict[str, Any] = {"message": message, "type": kind}
    if code:
        error["code"] = code
        error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param:
        error["param"] = param
    error["request_log_url"] = "https://dashboard.stripe.com/test/logs"
    return {"error": error}


def _headers() -> dict[str, str]:
    return {"Request-Id": f"req_{secrets.token_hex(7)}", "Stripe-Version": API_VERSION}


def _fail(
    message: str, *, status: int = 400, code: str = "", param: str = "", kind: str = ""
) -> SandboxError:
    body = _error_body(message, kind=kind or "invalid_request_error", code=code, param=param)
    return SandboxError(status, body, _headers())


def _missing(kind: str, object_id: str, param: str = "id") -> SandboxError:
    status = 404 if param == "id" else 400
    return _fail(f"No such {kind}: '{object_id}'", status=status, code="resource_missing", param=param)


def _nested(pairs: Iterable[tuple[str, list[str]]]) -> dict[str, Any]:
    """Form keys `a[b][c]`, `a[]`, `a[0][b]` -> nested dicts and lists."""
    out: dict[str, Any] = {}
    for key, values in pairs:
        head = key.split("[", 1)[0]
        parts = [head, *re.findall(r"\[([^\]]*)\]", key)]
        node = out
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if last:
                node[part] = values[-1] if values else ""
                break
            if parts[index + 1] == "" and index + 1 == len(parts) - 1:
                node.setdefault(part, [])
                if isinstance(node[part], list):
                    node[part].extend(values)
                break
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise _fail(f"Invalid parameter: {key}", param=head)
    return _lists(out)


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        converted = {key: _lists(item) for key, item in value.items()}
        if converted and all(key.isdigit() for key in converted):
            return [converted[key] for key in sorted(converted, key=int)]
        return converted
    return value


def _params(request: HttpRequest, allowed: Iterable[str]) -> dict[str, Any]:
    source = request.GET if request.method in ("GET", "DELETE") else request.POST
    params = _nested(source.lists())
    for name in params:
        if name not in set(allowed) | {"expand"}:
            raise _fail(f"Received unknown parameter: {name}", code="parameter_unknown", param=name)
    return params


def _int(
    params: dict[str, Any], name: str, *, required: bool = False, minimum: int | None = None
) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise _fail(f"Missing required param: {name}.", code="parameter_missing", param=name)
        return None
    try:
        number = int(str(value))
    except ValueError:
        raise _fail(f"Invalid integer: {value}", param=name) from None
    if minimum is not None and number < minimum:
        raise _fail(f"This value must be greater than or equal to {minimum}.", param=name)
    return number


def _bool(params: dict[str, Any], name: str, default: bool = False) -> bool:
    value = params.get(name)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise _fail(f"Invalid boolean: {value}", param=name)
    return value == "true"


def _str(
    params: dict[str, Any], name: str, *, required: bool = False, choices: Iterable[str] = ()
) -> str | None:
    value = params.get(name)
    if value in (None, ""):
        if required:
            raise _fail(f"Missing required param: {name}.", code="parameter_missing", param=name)
        return None
    if not isinstance(value, str):
        raise _fail(f"Invalid string: {value}", param=name)
    choices = tuple(choices)
    if choices and value not in choices:
        raise _fail(f"Invalid {name}: must be one of {', '.join(choices)}", param=name)
    return value


def _metadata(params: dict[str, Any], current: dict[str, str] | None = None) -> dict[str, str]:
    value = params.get("metadata")
    merged = dict(current or {})
    if value in (None, ""):
        return {} if value == "" else merged
    if not isinstance(value, dict):
        raise _fail("Invalid object", param="metadata")
    for key, item in value.items():
        if item == "":
            merged.pop(key, None)
        else:
            merged[key] = str(item)
    return merged


def _currency(value: Any, param: str = "currency") -> str:
    code = str(value or "").lower()
    if code.upper() not in list_currencies():
        raise _fail(f"Invalid currency: {value}", param=param)
    return code


def _exponent(currency: str) -> int:
    return get_currency_precision(currency.upper())


def _public(value: Any) -> Any:
    """What the API shows: the emulator's bookkeeping (keys starting with "_") left out."""
    if isinstance(value, dict):
        return {key: _public(item) for key, item in value.items() if not key.startswith("_")}
    if isinstance(value, list):
        return [_public(item) for item in value]
    return value


def _respond(data: Any, status: int = 200) -> HttpResponse:
    return JsonResponse(_public(data), status=status, safe=False, headers=_headers())


# --- state ---------------------------------------------------------------------------------------------
def _now() -> int:
    return int(time.time())


def _new_id(account: str, prefix: str) -> str:
    return f"{prefix}_Sbx{core.next_number(PLATFORM, account, prefix):010d}"


def _save(account: str, obj: dict[str, Any]) -> dict[str, Any]:
    core.record_save(PLATFORM, account, obj["object"], obj["id"], obj)
    return obj


def _load(account: str, kind: str, object_id: str, *, param: str = "id") -> dict[str, Any]:
    record = core.record_get(PLATFORM, account, kind, object_id)
    if record is None or record.deleted:
        raise _missing(kind, object_id, param)
    return record.data


def _all(account: str, kind: str) -> list[dict[str, Any]]:
    """Every live object of a kind, newest first (Stripe's list order)."""
    records = [r for r in core.record_list(PLATFORM, account, kind) if not r.deleted]
    records.sort(key=lambda r: (r.data.get("created", 0), r.pk), reverse=True)
    return [r.data for r in records]


def _emit(account: str, now: int, kind: str, obj: dict[str, Any], key: str | None = None) -> None:
    event = {
        "id": _new_id(account, "evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": now,
        "data": {"object": _public(deepcopy(obj))},
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": key},
        "type": kind,
    }
    _save(account, event)


def _expand(account: str, obj: Any, path: list[str]) -> Any:
    if not path or not isinstance(obj, dict):
        return obj
    name, rest = path[0], path[1:]
    value = obj.get(name)
    if isinstance(value, str):
        prefix = value.split("_", 1)[0]
        kind = PREFIX_KINDS.get(prefix)
        if kind is None:
            raise _fail(f"This property cannot be expanded ({name}).", param="expand")
        value = (
            _tax_rate(value) if kind == "tax_rate" else deepcopy(_load(account, kind, value, param="expand"))
        )
    elif isinstance(value, list):
        value = [_expand(account, {name: item}, [name, *rest])[name] for item in value]
        obj[name] = value
        return obj
    if isinstance(value, dict):
        obj[name] = _expand(account, value, rest) if rest else value
    return obj


def _with_expansions(account: str, obj: dict[str, Any], params: dict[str, Any], *, in_list: bool) -> dict:
    expand = params.get("expand") or []
    obj = deepcopy(obj)
    for path in expand if isinstance(expand, list) else [expand]:
        parts = str(path).split(".")
        if len(parts) > MAX_EXPAND_DEPTH:  # `data.` counts as a level when listing
            raise _fail("You cannot expand more than 4 levels of a property.", param="expand")
        if in_list:
            if parts[0] != "data":
                raise _fail(f"This property cannot be expanded ({path}).", param="expand")
            parts = parts[1:]
        obj = _expand(account, obj, parts)
    return obj


def _created_filter(params: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    created = params.get("created")
    if created is None:
        return lambda obj: True
    if isinstance(created, str):
        exact = _int(params, "created")
        return lambda obj: obj.get("created") == exact
    bounds = {op: _int(created, op) for op in ("gt", "gte", "lt", "lte") if op in created}
    for op in created:
        if op not in ("gt", "gte", "lt", "lte"):
            raise _fail(f"Received unknown parameter: created[{op}]", param=f"created[{op}]")
    tests = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    return lambda obj: all(tests[op](obj.get("created", 0), bound) for op, bound in bounds.items())


def _page(
    request: HttpRequest,
    account: str,
    kind: str,
    url: str,
    filters: dict[str, Callable[[dict[str, Any], Any], bool]] | None = None,
    objects: list[dict[str, Any]] | None = None,
) -> HttpResponse:
    filters = filters or {}
    params = _params(request, {"limit", "starting_after", "ending_before", "created", *filters})
    limit = _int(params, "limit") or 10
    if not 1 <= limit <= 100:
        raise _fail("Invalid limit: must be between 1 and 100", param="limit")
    matches = _created_filter(params)
    rows = [obj for obj in (objects if objects is not None else _all(account, kind)) if matches(obj)]
    for name, test in filters.items():
        if params.get(name) not in (None, ""):
            rows = [obj for obj in rows if test(obj, params[name])]
    ids = [obj["id"] for obj in rows]
    start = 0
    if params.get("starting_after"):
        cursor = params["starting_after"]
        if cursor not in ids:
            raise _missing(kind, cursor, "starting_after")
        start = ids.index(cursor) + 1
        chunk = rows[start : start + limit]
        has_more = start + limit < len(rows)
    elif params.get("ending_before"):
        cursor = params["ending_before"]
        if cursor not in ids:
            raise _missing(kind, cursor, "ending_before")
        end = ids.index(cursor)
        chunk = rows[max(0, end - limit) : end]
        has_more = end - limit > 0
    else:
        chunk = rows[:limit]
        has_more = limit < len(rows)
    data = [_with_expansions(account, obj, params, in_list=True) for obj in chunk]
    return _respond({"object": "list", "data": data, "has_more": has_more, "url": url})


def _retrieve(kind: str) -> Callable[[HttpRequest, str, re.Match[str]], HttpResponse]:
    def handler(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
        params = _params(request, ())
        return _respond(_with_expansions(account, _load(account, kind, match["id"]), params, in_list=False))

    return handler


def idempotent(
    handler: Callable[[HttpRequest, str, re.Match[str]], HttpResponse],
) -> Callable[[HttpRequest, str, re.Match[str]], HttpResponse]:
    """Stripe's keys: the first successful answer is replayed (`Idempotent-Replayed: true`) for the same
    key and parameters; the same key with other parameters is an idempotency_error."""

    def wrapped(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
        key = request.headers.get("Idempotency-Key")
        if not key:
            return handler(request, account, match)
        if len(key) > 255:
            raise _fail("Idempotency-Key must be at most 255 characters long.", param="Idempotency-Key")
        print_ = core.fingerprint(request.method, request.path, sorted(request.POST.lists()))
        stored = core.idempotency_lookup(PLATFORM, account, key, print_)
        if stored is False:
            raise _fail(
                "Keys for idempotent requests can only be used with the same parameters they were first used "
                f"with. Try using a key other than '{key}' if you meant to execute a different request.",
                kind="idempotency_error",
            )
        if stored:
            response = core.stored_response(stored)
            response["Idempotent-Replayed"] = "true"
            response["Request-Id"] = _headers()["Request-Id"]
            return response
        request.idempotency_key = key  # type: ignore[attr-defined]
        response = handler(request, account, match)
        if response.status_code < 300:
            core.idempotency_store(PLATFORM, account, key, print_, response)
        return response

    return wrapped


def _key(request: HttpRequest) -> str | None:
    return getattr(request, "idempotency_key", None)


# --- money ---------------------------------------------------------------------------------------------
def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _tax_rate(rate_id: str) -> dict[str, Any]:
    if rate_id not in TAX_RATES:
        raise _missing("tax_rate", rate_id, "tax_rates")
    name, percentage, country = TAX_RATES[rate_id]
    return {
        "id": rate_id,
        "object": "tax_rate",
        "active": True,
        "country": country,
        "created": 1700000000,
        "description": f"{name} {country}",
        "display_name": name,
        "effective_percentage": float(percentage),
        "inclusive": False,
        "jurisdiction": country,
        "livemode": False,
        "metadata": {},
        "percentage": float(percentage),
        "tax_type": "vat" if name == "VAT" else "sales_tax",
    }


def _taxes(amount: int, rate_ids: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "amount": _round(Decimal(amount) * TAX_RATES[rate][1] / 100),
            "tax_behavior": "exclusive",
            "tax_rate_details": {"tax_rate": rate},
            "taxability_reason": "standard_rated",
            "taxable_amount": amount,
            "type": "tax_rate_details",
        }
        for rate in rate_ids
    ]


def _fee(amount: int, currency: str) -> int:
    return _round(Decimal(amount) * Decimal("0.029") + Decimal("0.3").scaleb(_exponent(currency)))


# --- customers -----------------------------------------------------------------------------------------
def _customer_new(account: str, now: int, *, name: str, email: str, currency: str | None) -> dict[str, Any]:
    number = core.next_number(PLATFORM, account, "customer_prefix")
    customer = {
        "id": _new_id(account, "cus"),
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": now,
        "currency": currency,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "email": email,
        "invoice_prefix": f"SBX{number:04d}",
        "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None},
        "livemode": False,
        "metadata": {},
        "name": name,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }
    _save(account, customer)
    _emit(account, now, "customer.created", customer)
    return customer


@idempotent
def customer_create(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    params = _params(request, {"name", "email", "description", "metadata"})
    customer = _customer_new(
        account, _now(), name=_str(params, "name") or "", email=_str(params, "email") or "", currency=None
    )
    customer["metadata"] = _metadata(params)
    return _respond(_save(account, customer))


# --- invoices ------------------------------------------------------------------------------------------
def _invoice_new(account: str, now: int, customer: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    collection = _str(params, "collection_method", choices=("charge_automatically", "send_invoice"))
    collection = collection or "charge_automatically"
    days = _int(params, "days_until_due", minimum=0)
    due = _int(params, "due_date")
    if collection == "send_invoice" and days is None and due is None:
        raise _fail(
            "Invoices with collection_method=send_invoice need either days_until_due or due_date.",
            param="days_until_due",
        )
    if collection == "charge_automatically" and (days is not None or due is not None):
        raise _fail(
            "Invoices with collection_method=charge_automatically cannot have a due date.", param="due_date"
        )
    _str(params, "pending_invoice_items_behavior", choices=("exclude", "include"))
    invoice = {
        "id": _new_id(account, "in"),
        "object": "invoice",
        "account_country": "GB",
        "account_name": "Ledgerlink Sandbox",
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": _bool(params, "auto_advance", default=False),
        "automatic_tax": {"enabled": False, "liability": None, "status": None, "disabled_reason": None},
        "billing_reason": "manual",
        "collection_method": collection,
        "created": now,
        "currency": _currency(params.get("currency") or customer.get("currency") or "usd"),
        "custom_fields": None,
        "customer": customer["id"],
        "customer_account": None,
        "customer_address": customer.get("address"),
        "customer_email": customer.get("email"),
        "customer_name": customer.get("name"),
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": _str(params, "description"),
        "discounts": [],
        "due_date": due,
        "effective_at": _int(params, "effective_at"),
        "ending_balance": None,
        "footer": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {"object": "list", "data": [], "has_more": False, "total_count": 0, "url": ""},
        "livemode": False,
        "metadata": _metadata(params),
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": None,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": now,
        "period_start": now,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": None,
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": now,
        "automatically_finalizes_at": None,
        "_days_until_due": days,
    }
    invoice["lines"]["url"] = f"/v1/invoices/{invoice['id']}/lines"
    _totals(invoice)
    _save(account, invoice)
    _emit(account, now, "invoice.created", invoice)
    return invoice


def _totals(invoice: dict[str, Any]) -> None:
    lines = invoice["lines"]["data"]
    subtotal = sum(line["amount"] for line in lines)
    by_rate: dict[str, dict[str, Any]] = {}
    for line in lines:
        for tax in line["taxes"]:
            rate = tax["tax_rate_details"]["tax_rate"]
            entry = by_rate.setdefault(rate, {**tax, "amount": 0, "taxable_amount": 0})
            entry["amount"] += tax["amount"]
            entry["taxable_amount"] += tax["taxable_amount"]
    tax = sum(entry["amount"] for entry in by_rate.values())
    invoice["lines"]["total_count"] = len(lines)
    invoice.update(
        subtotal=subtotal,
        subtotal_excluding_tax=subtotal,
        total_excluding_tax=subtotal,
        total=subtotal + tax,
        total_taxes=list(by_rate.values()),
    )
    invoice["amount_due"] = max(invoice["total"] - invoice["pre_payment_credit_notes_amount"], 0)
    invoice["amount_remaining"] = max(invoice["amount_due"] - invoice["amount_paid"], 0)


def _item_new(account: str, now: int, customer: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    invoice = None
    if params.get("invoice"):
        invoice = _load(account, "invoice", params["invoice"], param="invoice")
        if invoice["customer"] != customer["id"]:
            raise _fail("The invoice belongs to another customer.", param="invoice")
        if invoice["status"] != "draft":
            raise _fail(
                "You can only add invoice items to draft invoices.",
                code="invoice_not_editable",
                param="invoice",
            )
    currency = _currency(params.get("currency") or (invoice or {}).get("currency") or "usd")
    if invoice and currency != invoice["currency"]:
        raise _fail("The currency of the invoice item must match the invoice's currency.", param="currency")
    quantity = _int(params, "quantity", minimum=0)
    amount = _int(params, "amount")
    unit = params.get("unit_amount_decimal") or params.get("unit_amount")
    if amount is not None and unit is not None:
        raise _fail(
            "You may only specify one of these parameters: amount, unit_amount_decimal.", param="amount"
        )
    if amount is None and unit is None:
        raise _fail(
            "You must specify either amount or unit_amount_decimal.", code="parameter_missing", param="amount"
        )
    if unit is not None:
        try:
            unit_decimal = Decimal(str(unit))
        except ArithmeticError:
            raise _fail(f"Invalid decimal: {unit}", param="unit_amount_decimal") from None
        amount = _round(unit_decimal * (quantity if quantity is not None else 1))
    else:
        unit_decimal = Decimal(amount) / (quantity or 1)
    quantity = quantity if quantity is not None else 1
    rates = params.get("tax_rates") or []
    if not isinstance(rates, list):
        raise _fail("Invalid array", param="tax_rates")
    tax_rates = [_tax_rate(rate) for rate in rates]
    item = {
        "id": _new_id(account, "ii"),
        "object": "invoiceitem",
        "amount": amount,
        "currency": currency,
        "customer": customer["id"],
        "customer_account": None,
        "date": now,
        "description": _str(params, "description"),
        "discountable": True,
        "discounts": [],
        "invoice": invoice["id"] if invoice else None,
        "livemode": False,
        "metadata": _metadata(params),
        "net_amount": amount,
        "parent": None,
        "period": {"end": now, "start": now},
        "pricing": {
            "price_details": None,
            "type": "price_details",
            "unit_amount_decimal": _decimal(unit_decimal),
        },
        "proration": False,
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "tax_rates": tax_rates,
        "test_clock": None,
    }
    _save(account, item)
    _emit(account, now, "invoiceitem.created", item)
    if invoice:
        invoice["lines"]["data"].append(
            {
                "id": _new_id(account, "il"),
                "object": "line_item",
                "amount": amount,
                "currency": currency,
                "description": item["description"],
                "discount_amounts": [],
                "discountable": True,
                "discounts": [],
                "invoice": invoice["id"],
                "livemode": False,
                "metadata": {},
                "parent": {
                    "type": "invoice_item_details",
                    "invoice_item_details": {
                        "invoice_item": item["id"],
                        "proration": False,
                        "proration_details": {"credited_items": None},
                        "subscription": None,
                    },
                    "subscription_item_details": None,
                },
                "period": item["period"],
                "pretax_credit_amounts": [],
                "pricing": item["pricing"],
                "quantity": quantity,
                "quantity_decimal": str(quantity),
                "subscription": None,
                "subtotal": amount,
                "taxes": _taxes(amount, [rate["id"] for rate in tax_rates]),
            }
        )
        _totals(invoice)
        _save(account, invoice)
        _emit(account, now, "invoice.updated", invoice)
    return item


def _decimal(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _finalize(account: str, now: int, invoice: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    if invoice["status"] != "draft":
        raise _fail(
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
            code="invoice_not_editable",
        )
    customer = _load(account, "customer", invoice["customer"])
    sequence = customer["next_invoice_sequence"]
    customer["next_invoice_sequence"] = sequence + 1
    _save(account, customer)
    invoice["number"] = f"{customer['invoice_prefix']}-{sequence:04d}"
    invoice["status"] = "open"
    invoice["status_transitions"]["finalized_at"] = now
    invoice["effective_at"] = invoice["effective_at"] or now
    if invoice["collection_method"] == "send_invoice" and invoice["due_date"] is None:
        invoice["due_date"] = now + 86400 * (invoice.get("_days_until_due") or 0)
    _emit(account, now, "invoice.finalized", invoice, key)
    if invoice["amount_remaining"] == 0:
        _mark_paid(account, now, invoice, key)
    return _save(account, invoice)


def _mark_paid(account: str, now: int, invoice: dict[str, Any], key: str | None) -> None:
    invoice["status"] = "paid"
    invoice["status_transitions"]["paid_at"] = now
    invoice["amount_remaining"] = 0
    _save(account, invoice)
    _emit(account, now, "invoice.paid", invoice, key)


def _pay(
    account: str, now: int, invoice: dict[str, Any], *, out_of_band: bool, key: str | None = None
) -> dict:
    if invoice["status"] == "paid":
        raise _fail("Invoice is already paid", code="invoice_already_paid")
    if invoice["status"] not in ("open", "uncollectible"):
        raise _fail(
            f"You can only pay an open invoice; this invoice is {invoice['status']}.",
            code="invoice_not_editable",
        )
    amount = invoice["amount_remaining"]
    if not out_of_band and amount > 0:
        charge = _charge(account, now, invoice, amount, key)
        payment = {
            "id": _new_id(account, "inpay"),
            "object": "invoice_payment",
            "amount_paid": amount,
            "amount_requested": amount,
            "created": now,
            "currency": invoice["currency"],
            "invoice": invoice["id"],
            "is_default": True,
            "livemode": False,
            "payment": {"type": "payment_intent", "payment_intent": charge["payment_intent"]},
            "status": "paid",
            "status_transitions": {"canceled_at": None, "paid_at": now},
        }
        _save(account, payment)
        _emit(account, now, "invoice_payment.paid", payment, key)
        invoice["attempt_count"] += 1
        invoice["attempted"] = True
    invoice["amount_paid"] += amount
    _totals(invoice)
    _mark_paid(account, now, invoice, key)
    _emit(account, now, "invoice.payment_succeeded" if not out_of_band else "invoice.updated", invoice, key)
    return invoice


def _charge(account: str, now: int, invoice: dict[str, Any], amount: int, key: str | None) -> dict[str, Any]:
    currency = invoice["currency"]
    intent_id, charge_id = _new_id(account, "pi"), _new_id(account, "ch")
    fee = _fee(amount, currency)
    txn = _balance_txn(
        account,
        now,
        amount=amount,
        fee=fee,
        currency=currency,
        kind="charge",
        source=charge_id,
        description=f"Payment for Invoice {invoice['number']}",
    )
    charge = {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": 0,
        "application_fee_amount": None,
        "balance_transaction": txn["id"],
        "billing_details": {
            "email": invoice["customer_email"],
            "name": invoice["customer_name"],
            "phone": None,
            "address": None,
            "tax_id": None,
        },
        "calculated_statement_descriptor": "LEDGERLINK SANDBOX",
        "captured": True,
        "created": now,
        "currency": currency,
        "customer": invoice["customer"],
        "description": f"Payment for Invoice {invoice['number']}",
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": {
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": True,
        "payment_intent": intent_id,
        "payment_method": f"pm_sbx_card_{invoice['customer'][-4:]}",
        "payment_method_details": {
            "card": {
                "brand": "visa",
                "country": "GB",
                "exp_month": 12,
                "exp_year": 2030,
                "funding": "credit",
                "last4": "4242",
                "network": "visa",
            },
            "type": "card",
        },
        "receipt_email": invoice["customer_email"],
        "receipt_number": None,
        "receipt_url": None,
        "refunded": False,
        "refunds": {
            "object": "list",
            "data": [],
            "has_more": False,
            "url": f"/v1/charges/{charge_id}/refunds",
        },
        "review": None,
        "shipping": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }
    intent = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_received": amount,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "confirmation_method": "automatic",
        "created": now,
        "currency": currency,
        "customer": invoice["customer"],
        "description": f"Payment for Invoice {invoice['number']}",
        "last_payment_error": None,
        "latest_charge": charge_id,
        "livemode": False,
        "metadata": {},
        "payment_method": charge["payment_method"],
        "payment_method_types": ["card"],
        "status": "succeeded",
    }
    _save(account, intent)
    _save(account, charge)
    _emit(account, now, "payment_intent.succeeded", intent, key)
    _emit(account, now, "charge.succeeded", charge, key)
    return charge


def _balance_txn(
    account: str, now: int, *, amount: int, fee: int, currency: str, kind: str, source: str, description: str
) -> dict[str, Any]:
    txn = {
        "id": _new_id(account, "txn"),
        "object": "balance_transaction",
        "amount": amount,
        "available_on": now + 2 * 86400,
        "balance_type": "payments",
        "created": now,
        "currency": currency,
        "description": description,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": [
            {
                "amount": fee,
                "application": None,
                "currency": currency,
                "description": "Stripe processing fees",
                "type": "stripe_fee",
            }
        ]
        if fee
        else [],
        "net": amount - fee,
        "reporting_category": kind,
        "source": source,
        "status": "pending",
        "type": kind,
        "_payout": None,
    }
    return _save(account, txn)


def _void(account: str, now: int, invoice: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    if invoice["status"] not in ("open", "uncollectible"):
        raise _fail(
            f"You can only void an open or uncollectible invoice; this one is {invoice['status']}.",
            code="invoice_not_editable",
        )
    invoice["status"] = "void"
    invoice["status_transitions"]["voided_at"] = now
    invoice["amount_remaining"] = 0
    _emit(account, now, "invoice.voided", invoice, key)
    return _save(account, invoice)


def _refund(
    account: str,
    now: int,
    charge: dict[str, Any],
    amount: int | None,
    reason: str | None,
    key: str | None = None,
) -> dict[str, Any]:
    refundable = charge["amount_captured"] - charge["amount_refunded"]
    amount = refundable if amount is None else amount
    if amount <= 0 or amount > refundable:
        raise _fail(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({refundable})",
            param="amount",
        )
    refund_id = _new_id(account, "re")
    txn = _balance_txn(
        account,
        now,
        amount=-amount,
        fee=0,
        currency=charge["currency"],
        kind="refund",
        source=refund_id,
        description="REFUND FOR CHARGE",
    )
    refund = {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": txn["id"],
        "charge": charge["id"],
        "created": now,
        "currency": charge["currency"],
        "customer": charge["customer"],
        "customer_account": None,
        "destination_details": {"card": {"type": "refund"}, "type": "card"},
        "metadata": {},
        "payment_intent": charge["payment_intent"],
        "payment_method": charge["payment_method"],
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }
    _save(account, refund)
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
    charge["refunds"]["data"].insert(0, _public(refund))
    _save(account, charge)
    _emit(account, now, "refund.created", refund, key)
    _emit(account, now, "charge.refunded", charge, key)
    return refund


def _credit_note(account: str, now: int, params: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    invoice = _load(account, "invoice", _str(params, "invoice", required=True), param="invoice")
    if invoice["status"] not in ("open", "paid", "uncollectible"):
        raise _fail(
            "You can only create a credit note for an open, paid or uncollectible invoice.", param="invoice"
        )
    reason = _str(params, "reason", choices=CREDIT_NOTE_REASONS)
    note_id = _new_id(account, "cn")
    lines = []
    for index, spec in enumerate(params.get("lines") or []):
        lines.append(_credit_line(account, invoice, spec, index))
    if not lines:
        amount = _int(params, "amount", required=True, minimum=1)
        lines.append(
            _credit_line(
                account,
                invoice,
                {
                    "type": "custom_line_item",
                    "description": "Credit",
                    "quantity": "1",
                    "unit_amount": str(amount),
                },
                0,
            )
        )
    subtotal = sum(line["amount"] for line in lines)
    taxes: dict[str, dict[str, Any]] = {}
    for line in lines:
        for tax in line["taxes"]:
            rate = tax["tax_rate_details"]["tax_rate"]
            entry = taxes.setdefault(rate, {**tax, "amount": 0, "taxable_amount": 0})
            entry["amount"] += tax["amount"]
            entry["taxable_amount"] += tax["taxable_amount"]
    total = subtotal + sum(entry["amount"] for entry in taxes.values())
    if params.get("amount") and params.get("lines") and _int(params, "amount") != total:
        raise _fail(
            f"The amount ({params['amount']}) must equal the total of the lines ({total}).", param="amount"
        )
    pre = min(total, invoice["amount_remaining"]) if invoice["status"] != "paid" else 0
    post = total - pre
    refund_amount = _int(params, "refund_amount", minimum=0) or 0
    credit_amount = _int(params, "credit_amount", minimum=0) or 0
    out_of_band = _int(params, "out_of_band_amount", minimum=0)
    settled = refund_amount + credit_amount + (out_of_band or 0)
    if post and settled != post:
        raise _fail(
            f"The sum of credit amount, refund amount and out of band amount ({settled}) "
            f"must equal the credit note amount ({post}).",
            param="refund_amount",
        )
    refunds = []
    if refund_amount:
        charge = _invoice_charge(account, invoice)
        refund = _refund(account, now, charge, refund_amount, None, key)
        refunds.append({"amount_refunded": refund_amount, "refund": refund["id"], "type": "refund"})
    balance_txn = None
    if credit_amount:
        customer = _load(account, "customer", invoice["customer"])
        customer["balance"] -= credit_amount
        _save(account, customer)
        balance_txn = _new_id(account, "cbtxn")
    number = len([n for n in _all(account, "credit_note") if n["invoice"] == invoice["id"]]) + 1
    note = {
        "id": note_id,
        "object": "credit_note",
        "amount": total,
        "amount_shipping": 0,
        "created": now,
        "currency": invoice["currency"],
        "customer": invoice["customer"],
        "customer_account": None,
        "customer_balance_transaction": balance_txn,
        "discount_amount": 0,
        "discount_amounts": [],
        "effective_at": now,
        "invoice": invoice["id"],
        "lines": {
            "object": "list",
            "data": lines,
            "has_more": False,
            "url": f"/v1/credit_notes/{note_id}/lines",
        },
        "livemode": False,
        "memo": _str(params, "memo"),
        "metadata": _metadata(params),
        "number": f"{invoice['number']}-CN-{number:02d}",
        "out_of_band_amount": out_of_band,
        "pdf": "",
        "post_payment_amount": post,
        "pre_payment_amount": pre,
        "pretax_credit_amounts": [],
        "reason": reason,
        "refunds": refunds,
        "shipping_cost": None,
        "status": "issued",
        "subtotal": subtotal,
        "subtotal_excluding_tax": subtotal,
        "total": total,
        "total_excluding_tax": subtotal,
        "total_taxes": list(taxes.values()),
        "type": "pre_payment" if pre else "post_payment",
        "voided_at": None,
    }
    _save(account, note)
    _emit(account, now, "credit_note.created", note, key)
    if pre:
        invoice["pre_payment_credit_notes_amount"] += pre
    else:
        invoice["post_payment_credit_notes_amount"] += post
    _totals(invoice)
    _save(account, invoice)
    _emit(account, now, "invoice.updated", invoice, key)
    if pre and invoice["amount_remaining"] == 0 and invoice["status"] != "paid":
        _mark_paid(account, now, invoice, key)
    return note


def _credit_line(account: str, invoice: dict[str, Any], spec: Any, index: int) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise _fail("Invalid object", param=f"lines[{index}]")
    kind = spec.get("type")
    if kind == "invoice_line_item":
        source = next(
            (line for line in invoice["lines"]["data"] if line["id"] == spec.get("invoice_line_item")), None
        )
        if source is None:
            raise _missing(
                "invoice line item", str(spec.get("invoice_line_item")), f"lines[{index}][invoice_line_item]"
            )
        amount, quantity, description = source["amount"], source["quantity"], source["description"]
        unit = source["pricing"]["unit_amount_decimal"]
        rates = [tax["tax_rate_details"]["tax_rate"] for tax in source["taxes"]]
    elif kind == "custom_line_item":
        try:
            quantity = int(spec.get("quantity") or 1)
            unit = str(Decimal(str(spec.get("unit_amount_decimal") or spec.get("unit_amount"))))
        except (ValueError, ArithmeticError):
            raise _fail("Invalid unit_amount", param=f"lines[{index}][unit_amount]") from None
        amount = _round(Decimal(unit) * quantity)
        description = spec.get("description") or "Credit"
        rates = spec.get("tax_rates") or []
        for rate in rates:
            _tax_rate(rate)
    else:
        raise _fail(
            "Invalid type: must be one of invoice_line_item, custom_line_item", param=f"lines[{index}][type]"
        )
    return {
        "id": _new_id(account, "cnli"),
        "object": "credit_note_line_item",
        "amount": amount,
        "description": description,
        "discount_amount": 0,
        "discount_amounts": [],
        "invoice_line_item": spec.get("invoice_line_item"),
        "livemode": False,
        "metadata": {},
        "pretax_credit_amounts": [],
        "quantity": quantity,
        "tax_rates": [_tax_rate(rate) for rate in rates],
        "taxes": _taxes(amount, rates),
        "type": kind,
        "unit_amount": None if kind == "invoice_line_item" else _round(Decimal(unit)),
        "unit_amount_decimal": unit,
    }


def _invoice_charge(account: str, invoice: dict[str, Any]) -> dict[str, Any]:
    for payment in _all(account, "invoice_payment"):
        if payment["invoice"] == invoice["id"] and payment["status"] == "paid":
            intent = _load(account, "payment_intent", payment["payment"]["payment_intent"])
            return _load(account, "charge", intent["latest_charge"])
    raise _fail(
        "This invoice was not paid through Stripe: there is no charge to refund.", param="refund_amount"
    )


# --- route handlers ------------------------------------------------------------------------------------
INVOICE_CREATE = {
    "customer",
    "currency",
    "collection_method",
    "days_until_due",
    "due_date",
    "auto_advance",
    "description",
    "metadata",
    "effective_at",
    "pending_invoice_items_behavior",
    "footer",
}


@idempotent
def invoice_create(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    params = _params(request, INVOICE_CREATE)
    customer = _load(account, "customer", _str(params, "customer", required=True), param="customer")
    return _respond(_invoice_new(account, _now(), customer, params))


@idempotent
def invoice_update(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    params = _params(
        request, {"description", "metadata", "due_date", "days_until_due", "auto_advance", "footer"}
    )
    invoice = _load(account, "invoice", match["id"])
    if invoice["status"] != "draft" and set(params) - {"metadata", "description", "footer", "expand"}:
        raise _fail("Finalized invoices can't be updated in this way", code="invoice_not_editable")
    if "description" in params:
        invoice["description"] = _str(params, "description")
    if "due_date" in params:
        invoice["due_date"] = _int(params, "due_date")
    if "days_until_due" in params:
        invoice["_days_until_due"] = _int(params, "days_until_due", minimum=0)
    if "auto_advance" in params:
        invoice["auto_advance"] = _bool(params, "auto_advance")
    invoice["metadata"] = _metadata(params, invoice["metadata"])
    _save(account, invoice)
    _emit(account, _now(), "invoice.updated", invoice, _key(request))
    return _respond(invoice)


def invoice_delete(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    invoice = _load(account, "invoice", match["id"])
    if invoice["status"] != "draft":
        raise _fail("You can only delete draft invoices.", code="invoice_not_editable")
    record = core.record_get(PLATFORM, account, "invoice", invoice["id"])
    record.deleted = True
    record.save(update_fields=["deleted"])
    _emit(account, _now(), "invoice.deleted", invoice)
    return _respond({"id": invoice["id"], "object": "invoice", "deleted": True})


@idempotent
def invoice_finalize(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    params = _params(request, {"auto_advance"})
    invoice = _load(account, "invoice", match["id"])
    invoice["auto_advance"] = _bool(params, "auto_advance", default=invoice["auto_advance"])
    return _respond(_finalize(account, _now(), invoice, _key(request)))


@idempotent
def invoice_pay(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    params = _params(
        request, {"paid_out_of_band", "forgive", "off_session", "payment_method", "source", "mandate"}
    )
    invoice = _load(account, "invoice", match["id"])
    out_of_band = _bool(params, "paid_out_of_band")
    return _respond(_pay(account, _now(), invoice, out_of_band=out_of_band, key=_key(request)))


@idempotent
def invoice_void(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    _params(request, ())
    return _respond(_void(account, _now(), _load(account, "invoice", match["id"]), _key(request)))


@idempotent
def invoice_uncollectible(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    _params(request, ())
    invoice = _load(account, "invoice", match["id"])
    if invoice["status"] != "open":
        raise _fail("You can only mark an open invoice uncollectible.", code="invoice_not_editable")
    now = _now()
    invoice["status"] = "uncollectible"
    invoice["status_transitions"]["marked_uncollectible_at"] = now
    _emit(account, now, "invoice.marked_uncollectible", invoice, _key(request))
    return _respond(_save(account, invoice))


SEARCH_CLAUSE = re.compile(r"\s*(\w+)(?:\['([^']+)'\])?\s*:\s*'((?:[^'\\]|\\.)*)'\s*")


def invoice_search(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    """The Search API for the clauses the emulator knows: field:'value' and metadata['key']:'value',
    joined with AND."""
    params = _params(request, {"query", "limit", "page"})
    query = _str(params, "query", required=True) or ""
    tests = []
    for clause in re.split(r"\s+AND\s+", query.strip()):
        found = SEARCH_CLAUSE.fullmatch(clause)
        if not found or (found[1] != "metadata" and found[2]) or " OR " in clause:
            raise _fail(
                f"We were unable to parse your search query. Unsupported clause: {clause}", param="query"
            )
        field, key, value = found[1], found[2], re.sub(r"\\(.)", r"\1", found[3])
        if field == "metadata":
            tests.append(lambda inv, key=key, value=value: inv["metadata"].get(key) == value)
        elif field in ("status", "customer", "number", "currency"):
            tests.append(lambda inv, field=field, value=value: str(inv.get(field)) == value)
        else:
            raise _fail(
                f"Field `{field}` is an unsupported search field for resource `invoices`.", param="query"
            )
    limit = _int(params, "limit") or 10
    offset = int(params.get("page") or 0)
    rows = [inv for inv in _all(account, "invoice") if all(test(inv) for test in tests)]
    chunk = rows[offset : offset + limit]
    more = offset + limit < len(rows)
    return _respond(
        {
            "object": "search_result",
            "data": chunk,
            "has_more": more,
            "next_page": str(offset + limit) if more else None,
            "url": "/v1/invoices/search",
        }
    )


@idempotent
def item_create(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    allowed = {
        "customer",
        "invoice",
        "currency",
        "amount",
        "quantity",
        "unit_amount_decimal",
        "unit_amount",
        "description",
        "tax_rates",
        "metadata",
        "period",
        "discountable",
    }
    params = _params(request, allowed)
    customer = _load(account, "customer", _str(params, "customer", required=True), param="customer")
    return _respond(_item_new(account, _now(), customer, params))


@idempotent
def refund_create(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    params = _params(request, {"charge", "payment_intent", "amount", "reason", "metadata"})
    reason = _str(params, "reason", choices=("duplicate", "fraudulent", "requested_by_customer"))
    if params.get("charge"):
        charge = _load(account, "charge", params["charge"], param="charge")
    elif params.get("payment_intent"):
        intent = _load(account, "payment_intent", params["payment_intent"], param="payment_intent")
        charge = _load(account, "charge", intent["latest_charge"], param="payment_intent")
    else:
        raise _fail(
            "One of the following params should be provided for this request: payment_intent or charge.",
            code="parameter_missing",
            param="charge",
        )
    refund = _refund(account, _now(), charge, _int(params, "amount", minimum=1), reason, _key(request))
    refund["metadata"] = _metadata(params)
    return _respond(_save(account, refund))


@idempotent
def credit_note_create(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    allowed = {
        "invoice",
        "amount",
        "lines",
        "memo",
        "metadata",
        "reason",
        "refund_amount",
        "credit_amount",
        "out_of_band_amount",
        "effective_at",
    }
    return _respond(_credit_note(account, _now(), _params(request, allowed), _key(request)))


@idempotent
def credit_note_void(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    _params(request, ())
    note = _load(account, "credit_note", match["id"])
    if note["status"] != "issued":
        raise _fail("This credit note has already been voided.", param="id")
    if note["refunds"]:
        raise _fail("A credit note with a refund cannot be voided.", param="id")
    now = _now()
    note["status"] = "void"
    note["voided_at"] = now
    invoice = _load(account, "invoice", note["invoice"])
    if note["pre_payment_amount"]:
        invoice["pre_payment_credit_notes_amount"] -= note["pre_payment_amount"]
        if invoice["status"] == "paid" and invoice["amount_paid"] < invoice["total"]:
            invoice["status"] = "open"
            invoice["status_transitions"]["paid_at"] = None
    else:
        invoice["post_payment_credit_notes_amount"] -= note["post_payment_amount"]
    _totals(invoice)
    _save(account, invoice)
    _save(account, note)
    _emit(account, now, "credit_note.voided", note, _key(request))
    _emit(account, now, "invoice.updated", invoice, _key(request))
    return _respond(note)


def _equals(name: str) -> Callable[[dict[str, Any], Any], bool]:
    return lambda obj, value: str(obj.get(name)) == str(value)


def _list(
    kind: str, url: str, **filters: Callable[[dict[str, Any], Any], bool]
) -> Callable[..., HttpResponse]:
    def handler(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
        return _page(request, account, kind, url, filters)

    return handler


def _payment_filter(obj: dict[str, Any], value: Any) -> bool:
    if not isinstance(value, dict) or value.get("type") not in ("payment_intent", "payment_record"):
        raise _fail(
            "Invalid payment[type]: must be one of payment_intent, payment_record", param="payment[type]"
        )
    payment = obj["payment"]
    if payment.get("type") != value["type"]:
        return False
    wanted = value.get(value["type"])
    return wanted is None or payment.get(value["type"]) == wanted


def _types_filter(obj: dict[str, Any], value: Any) -> bool:
    types = value if isinstance(value, list) else [value]
    if len(types) > 20:
        raise _fail("You may pass at most 20 event types.", param="types")
    return obj["type"] in types


def balance_transactions(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    filters = {
        "payout": lambda obj, value: obj.get("_payout") == value,
        "source": _equals("source"),
        "type": _equals("type"),
        "currency": _equals("currency"),
    }
    payout = request.GET.get("payout")
    if payout:
        _load(account, "payout", payout, param="payout")
    return _page(request, account, "balance_transaction", "/v1/balance_transactions", filters)


# --- webhook endpoints --------------------------------------------------------------------------------
def _endpoint_out(hook: Any) -> dict[str, Any]:
    return {
        "id": hook.public_id,
        "object": "webhook_endpoint",
        "api_version": hook.metadata.get("_api_version") or None,
        "application": None,
        "created": int(hook.created_at.timestamp()),
        "description": hook.description or None,
        "enabled_events": hook.events,
        "livemode": False,
        "metadata": {k: v for k, v in hook.metadata.items() if not k.startswith("_")},
        "status": "disabled" if hook.status == SandboxWebhook.Status.DISABLED else "enabled",
        "url": hook.url,
    }


def _endpoint(account: str, endpoint_id: str) -> Any:
    hook = SandboxWebhook.objects.filter(platform=PLATFORM, account=account, public_id=endpoint_id).first()
    if hook is None:
        raise _missing("webhook_endpoint", endpoint_id)
    return hook


def _enabled_events(params: dict[str, Any], *, required: bool) -> list[str] | None:
    value = params.get("enabled_events")
    if value in (None, "", []):
        if required:
            raise _fail(
                "Missing required param: enabled_events.", code="parameter_missing", param="enabled_events"
            )
        return None
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


ENDPOINT_PARAMS = {"url", "enabled_events", "description", "metadata", "api_version", "connect"}


@idempotent
def webhook_endpoint_create(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    """The signing secret (whsec_...) is in this answer only, as at Stripe."""
    params = _params(request, ENDPOINT_PARAMS)
    url = _str(params, "url", required=True) or ""
    events = _enabled_events(params, required=True) or []
    metadata = _metadata(params)
    if params.get("api_version"):
        metadata["_api_version"] = str(params["api_version"])
    try:
        hook = webhooks.webhook_subscribe(
            platform=PLATFORM,
            account=account,
            url=url,
            events=events,
            description=_str(params, "description") or "",
            metadata=metadata,
            public_id=_new_id(account, "we"),
        )
    except webhooks.WebhookSubscriptionError as exc:
        raise _fail(f"Invalid {exc.field}: {exc}", param=exc.field) from None
    return _respond({**_endpoint_out(hook), "secret": hook.secret})


def webhook_endpoint_list(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    hooks = SandboxWebhook.objects.filter(platform=PLATFORM, account=account).order_by("-created_at", "-pk")
    return _page(
        request,
        account,
        "webhook_endpoint",
        "/v1/webhook_endpoints",
        objects=[_endpoint_out(h) for h in hooks],
    )


def webhook_endpoint_get(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    _params(request, ())
    return _respond(_endpoint_out(_endpoint(account, match["id"])))


def webhook_endpoint_update(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    params = _params(request, {"url", "enabled_events", "description", "metadata", "disabled"})
    hook = _endpoint(account, match["id"])
    disabled = _bool(params, "disabled") if "disabled" in params else None
    metadata = _metadata(params, hook.metadata) if "metadata" in params else None
    try:
        webhooks.webhook_update(
            hook,
            url=_str(params, "url") if "url" in params else None,
            events=_enabled_events(params, required=False),
            enabled=None if disabled is None else not disabled,
            description=_str(params, "description") if "description" in params else None,
            metadata=metadata,
        )
    except webhooks.WebhookSubscriptionError as exc:
        raise _fail(f"Invalid {exc.field}: {exc}", param=exc.field) from None
    return _respond(_endpoint_out(hook))


def webhook_endpoint_delete(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    hook = _endpoint(account, match["id"])
    hook.delete()  # its queued deliveries go with it: Stripe stops retrying for a deleted endpoint
    return _respond({"id": match["id"], "object": "webhook_endpoint", "deleted": True})


ROUTES = [
    Route("GET", r"^v1/webhook_endpoints$", webhook_endpoint_list),
    Route("POST", r"^v1/webhook_endpoints$", webhook_endpoint_create),
    Route("GET", r"^v1/webhook_endpoints/(?P<id>we_\w+)$", webhook_endpoint_get),
    Route("POST", r"^v1/webhook_endpoints/(?P<id>we_\w+)$", webhook_endpoint_update),
    Route("DELETE", r"^v1/webhook_endpoints/(?P<id>we_\w+)$", webhook_endpoint_delete),
    Route("GET", r"^v1/customers$", _list("customer", "/v1/customers", email=_equals("email"))),
    Route("POST", r"^v1/customers$", customer_create),
    Route("GET", r"^v1/customers/(?P<id>cus_\w+)$", _retrieve("customer")),
    Route("GET", r"^v1/invoices/search$", invoice_search),
    Route(
        "GET",
        r"^v1/invoices$",
        _list(
            "invoice",
            "/v1/invoices",
            customer=_equals("customer"),
            status=_equals("status"),
            collection_method=_equals("collection_method"),
        ),
    ),
    Route("POST", r"^v1/invoices$", invoice_create),
    Route("GET", r"^v1/invoices/(?P<id>in_\w+)$", _retrieve("invoice")),
    Route("POST", r"^v1/invoices/(?P<id>in_\w+)$", invoice_update),
    Route("DELETE", r"^v1/invoices/(?P<id>in_\w+)$", invoice_delete),
    Route("POST", r"^v1/invoices/(?P<id>in_\w+)/finalize$", invoice_finalize),
    Route("POST", r"^v1/invoices/(?P<id>in_\w+)/pay$", invoice_pay),
    Route("POST", r"^v1/invoices/(?P<id>in_\w+)/void$", invoice_void),
    Route("POST", r"^v1/invoices/(?P<id>in_\w+)/mark_uncollectible$", invoice_uncollectible),
    Route(
        "GET",
        r"^v1/invoiceitems$",
        _list("invoiceitem", "/v1/invoiceitems", invoice=_equals("invoice"), customer=_equals("customer")),
    ),
    Route("POST", r"^v1/invoiceitems$", item_create),
    Route("GET", r"^v1/invoiceitems/(?P<id>ii_\w+)$", _retrieve("invoiceitem")),
    Route(
        "GET",
        r"^v1/invoice_payments$",
        _list(
            "invoice_payment",
            "/v1/invoice_payments",
            invoice=_equals("invoice"),
            status=_equals("status"),
            payment=_payment_filter,
        ),
    ),
    Route("GET", r"^v1/invoice_payments/(?P<id>inpay_\w+)$", _retrieve("invoice_payment")),
    Route(
        "GET",
        r"^v1/charges$",
        _list(
            "charge", "/v1/charges", customer=_equals("customer"), payment_intent=_equals("payment_intent")
        ),
    ),
    Route("GET", r"^v1/charges/(?P<id>ch_\w+)$", _retrieve("charge")),
    Route(
        "GET",
        r"^v1/payment_intents$",
        _list("payment_intent", "/v1/payment_intents", customer=_equals("customer")),
    ),
    Route("GET", r"^v1/payment_intents/(?P<id>pi_\w+)$", _retrieve("payment_intent")),
    Route(
        "GET",
        r"^v1/refunds$",
        _list("refund", "/v1/refunds", charge=_equals("charge"), payment_intent=_equals("payment_intent")),
    ),
    Route("POST", r"^v1/refunds$", refund_create),
    Route("GET", r"^v1/refunds/(?P<id>re_\w+)$", _retrieve("refund")),
    Route(
        "GET",
        r"^v1/credit_notes$",
        _list("credit_note", "/v1/credit_notes", invoice=_equals("invoice"), customer=_equals("customer")),
    ),
    Route("POST", r"^v1/credit_notes$", credit_note_create),
    Route("GET", r"^v1/credit_notes/(?P<id>cn_\w+)$", _retrieve("credit_note")),
    Route("POST", r"^v1/credit_notes/(?P<id>cn_\w+)/void$", credit_note_void),
    Route("GET", r"^v1/payouts$", _list("payout", "/v1/payouts", status=_equals("status"))),
    Route("GET", r"^v1/payouts/(?P<id>po_\w+)$", _retrieve("payout")),
    Route("GET", r"^v1/balance_transactions$", balance_transactions),
    Route("GET", r"^v1/balance_transactions/(?P<id>txn_\w+)$", _retrieve("balance_transaction")),
    Route("GET", r"^v1/events$", _list("event", "/v1/events", type=_equals("type"), types=_types_filter)),
    Route("GET", r"^v1/events/(?P<id>evt_\w+)$", _retrieve("event")),
]


# --- demo data -----------------------------------------------------------------------------------------
DEMO_CUSTOMERS = (
    ("Albion Bakeries Ltd", "accounts@albion-bakeries.example", "gbp", "txr_sbx_gb_vat20"),
    ("Rheinland Werkzeuge GmbH", "buchhaltung@rheinland.example", "eur", "txr_sbx_de_vat19"),
    ("Hudson Analytics Inc", "ap@hudson-analytics.example", "usd", "txr_sbx_us_ny8875"),
    ("Sakura Trading KK", "keiri@sakura-trading.example", "jpy", "txr_sbx_jp_jct10"),
    ("Gulf Logistics WLL", "finance@gulf-logistics.example", "kwd", None),
)
DEMO_ITEMS = (
    ("Consulting (hours)", Decimal(150)),
    ("Platform subscription", Decimal(49)),
    ("Onboarding workshop", Decimal(900)),
    ("Support plan", Decimal("19.5")),
    ("Data migration", Decimal(1250)),
)
# what becomes of each demo invoice, in order: four rounds over the five customers
DEMO_FATES = (
    "paid_card",
    "open",
    "paid_card",
    "paid_oob",
    "draft",
    "paid_card",
    "void",
    "open",
    "paid_card",
    "paid_card",
    "uncollectible",
    "paid_card",
    "credited_open",
    "refunded",
    "paid_card",
    "open",
    "draft",
    "paid_card",
    "credited_paid",
    "open",
)


def seed(account: str) -> None:
    """Demo data: five customers (GBP, EUR, USD, JPY, KWD), twenty invoices over the last 45 days (drafts,
    open, paid by card or out of band, void, uncollectible), a refund, credit notes before and after
    payment, and a paid payout per currency holding the older card payments with their fees."""
    rng = random.Random(int(hashlib.sha256(account.encode()).hexdigest()[:8], 16))
    start = _now() - 45 * 86400
    customers = [
        (_customer_new(account, start, name=name, email=email, currency=currency), rate)
        for name, email, currency, rate in DEMO_CUSTOMERS
    ]
    for index, fate in enumerate(DEMO_FATES):
        customer, rate = customers[index % len(customers)]
        when = start + 86400 * (index * 2 + 1) + rng.randint(0, 3600)
        currency = customer["currency"]
        params = {
            "collection_method": "send_invoice",
            "days_until_due": "14",
            "currency": currency,
            "description": f"Services, period {index + 1}",
            "metadata": {"demo": "true"},
        }
        invoice = _invoice_new(account, when, customer, params)
        for _ in range(rng.randint(1, 3)):
            description, unit = rng.choice(DEMO_ITEMS)
            minor = (unit * (150 if currency == "jpy" else 1)).scaleb(_exponent(currency))
            item = {
                "invoice": invoice["id"],
                "description": description,
                "quantity": str(rng.randint(1, 4)),
                "unit_amount_decimal": _decimal(minor),
                "tax_rates": [rate] if rate else [],
            }
            _item_new(account, when, customer, item)
        invoice = _load(account, "invoice", invoice["id"])
        if fate == "draft":
            continue
        _finalize(account, when, invoice)
        paid_at = when + 3 * 86400
        if fate in ("paid_card", "refunded", "credited_paid"):
            _pay(account, paid_at, invoice, out_of_band=False)
        elif fate == "paid_oob":
            _pay(account, paid_at, invoice, out_of_band=True)
        elif fate == "void":
            _void(account, paid_at, invoice)
        elif fate == "uncollectible":
            invoice.update(status="uncollectible")
            invoice["status_transitions"]["marked_uncollectible_at"] = paid_at
            _save(account, invoice)
            _emit(account, paid_at, "invoice.marked_uncollectible", invoice)
        if fate == "refunded":
            charge = _invoice_charge(account, invoice)
            _refund(account, paid_at + 86400, charge, charge["amount"] // 4, "requested_by_customer")
        elif fate == "credited_open":
            _credit_note(
                account,
                paid_at,
                {
                    "invoice": invoice["id"],
                    "reason": "order_change",
                    "amount": str(invoice["amount_remaining"] // 2),
                },
            )
        elif fate == "credited_paid":
            line = invoice["lines"]["data"][0]
            total = line["amount"] + sum(tax["amount"] for tax in line["taxes"])
            _credit_note(
                account,
                paid_at + 86400,
                {
                    "invoice": invoice["id"],
                    "reason": "product_unsatisfactory",
                    "lines": [{"type": "invoice_line_item", "invoice_line_item": line["id"]}],
                    "refund_amount": str(total),
                },
            )
    _seed_payouts(account, start + 40 * 86400)


def _seed_payouts(account: str, when: int) -> None:
    """One paid payout per currency of every balance transaction available by `when`."""
    pending: dict[str, list[dict[str, Any]]] = {}
    for txn in sorted(_all(account, "balance_transaction"), key=lambda t: t["created"]):
        if txn["available_on"] <= when and txn["_payout"] is None:
            pending.setdefault(txn["currency"], []).append(txn)
    for currency, txns in sorted(pending.items()):
        amount = sum(txn["net"] for txn in txns)
        if amount <= 0:
            continue
        payout_id = _new_id(account, "po")
        own = _balance_txn(
            account,
            when,
            amount=-amount,
            fee=0,
            currency=currency,
            kind="payout",
            source=payout_id,
            description="STRIPE PAYOUT",
        )
        for txn in [*txns, own]:
            txn.update(_payout=payout_id, status="available")
            _save(account, txn)
        payout = {
            "id": payout_id,
            "object": "payout",
            "amount": amount,
            "application_fee": None,
            "application_fee_amount": None,
            "arrival_date": when + 2 * 86400,
            "automatic": True,
            "balance_transaction": own["id"],
            "created": when,
            "currency": currency,
            "description": "STRIPE PAYOUT",
            "destination": "ba_sbx_bank",
            "failure_balance_transaction": None,
            "failure_code": None,
            "failure_message": None,
            "livemode": False,
            "metadata": {},
            "method": "standard",
            "original_payout": None,
            "payout_method": None,
            "reconciliation_status": "completed",
            "reversed_by": None,
            "source_type": "card",
            "statement_descriptor": None,
            "status": "paid",
            "trace_id": {"status": "supported", "value": None},
            "type": "bank_account",
        }
        _save(account, payout)
        _emit(account, when, "payout.created", payout)
        _emit(account, when + 2 * 86400, "payout.paid", payout)
