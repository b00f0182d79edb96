"""QuickBooks Online emulator: a UK company (home currency GBP, multicurrency on) per realm.

Served under /sandbox/quickbooks/v3/company/<realmId>/...; the realm is the sandbox account and must be
the one the bearer token was issued for. It answers with Intuit's envelopes (`{"Invoice": {...},
"time": ...}`, `QueryResponse`, `CDCResponse`) and Fault shapes, and keeps Intuit's rules: SyncToken
goes up on every change and a stale one is refused (5010); Amount must equal Qty x UnitPrice (6070);
void zeroes the amounts and prepends "Voided" to PrivateNote; payments lower invoice balances and show
up in the invoice's LinkedTxn; a repeated `requestid` gets the first answer again; deleted records leave
only `{"Id", "status": "Deleted"}` behind, for CDC.

`POST .../batch` creates up to 30 documents (`BatchItemRequest` items, create only) with the same rules,
each item on its own (a refused item is a `Fault` in its place in `BatchItemResponse`, the others are
saved); a batch is one request against the realm's limits and one of the 40 batch requests a minute.
"""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone as django_timezone

from connectors.base import RateLimit
from connectors.money import currency_exponent
from sandbox import core

PLATFORM = "quickbooks"
DEFAULT_ACCOUNT = "9341453051187036"
ACCESS_TOKEN_SECONDS = 3600
RATE_LIMITS = (
    RateLimit("requests per minute per realm", 500, 60.0),
    RateLimit("concurrent requests per realm", 10, concurrent=True),
)
# batch requests only, on top of RATE_LIMITS (blogs.intuit.com 2023-07-19: 30 payloads, 40 batches a minute)
BATCH_RATE_LIMITS = (RateLimit("batch requests per minute per realm", 40, 60.0),)
BATCH_MAX_ITEMS = 30
# blogs.intuit.com 2015-04-06: a batch's requestid is at most 36 characters, and then each bId at most 10
BATCH_REQUEST_ID_MAX = 36
BATCH_ID_MAX = 10
BATCH_KEYS = frozenset({"bId", "operation", "optionsData"})
HOME_CURRENCY = "GBP"
# units of home currency per unit of the foreign currency
EXCHANGE_RATES = {"GBP": "1", "USD": "0.79", "EUR": "0.85", "JPY": "0.0052", "KWD": "2.58"}
TAX_RATES = {"2": Decimal(20), "3": Decimal(0), "4": Decimal(0), "5": Decimal(5)}  # tax code id -> percent
COMPANY_ZONE = timezone(timedelta(hours=-8))  # Intuit answers in the company's time zone
CDC_DAYS = 30
PAGE_MAX = 1000
ZERO = Decimal(0)
ENTITY_PATHS = {
    "invoice": "Invoice",
    "payment": "Payment",
    "creditmemo": "CreditMemo",
    "customer": "Customer",
    "item": "Item",
    "account": "Account",
    "taxcode": "TaxCode",
    "companyinfo": "CompanyInfo",
}
QUERYABLE = ("Invoice", "Payment", "CreditMemo", "Customer", "Item", "Account", "TaxCode")
# the properties a write may carry (Finance.xsd); anything else is Intuit's error 2010
_ENTITY = "Id SyncToken MetaData domain sparse status"
_TXN = f"""{_ENTITY} DocNumber TxnDate CurrencyRef ExchangeRate PrivateNote LinkedTxn Line TxnTaxDetail
    CustomerRef CustomField DepartmentRef ClassRef ProjectRef TxnSource TotalAmt HomeTotalAmt ARAccountRef
    DepositToAccountRef PaymentMethodRef PaymentRefNum TxnStatus GlobalTaxCalculation"""
_SALES = f"""{_TXN} CustomerMemo BillAddr ShipAddr ShipFromAddr SalesTermRef DueDate ShipDate TrackingNum
    ShipMethodRef ApplyTaxAfterDiscount PrintStatus EmailStatus BillEmail BillEmailCc BillEmailBcc Balance
    HomeBalance Deposit AllowOnlineCreditCardPayment AllowOnlineACHPayment AllowIPNPayment AllowOnlinePayment
    AutoDocNumber PONumber TemplateRef DeliveryInfo FreeFormAddress TaxExemptionRef InvoiceLink"""
_CUSTOMER = f"""{_ENTITY} Title GivenName MiddleName FamilyName Suffix FullyQualifiedName CompanyName
    DisplayName PrintOnCheckName Active PrimaryPhone AlternatePhone Mobile Fax PrimaryEmailAddr WebAddr
    DefaultTaxCodeRef Taxable BillAddr ShipAddr Notes Job BillWithParent ParentRef Level SalesTermRef
    PaymentMethodRef Balance OpenBalanceDate BalanceWithJobs CurrencyRef PreferredDeliveryMethod ResaleNum
    PrimaryTaxIdentifier SecondaryTaxIdentifier BusinessNumber TaxExemptionReasonId ARAccountRef AcctNum
    CustomerTypeRef"""
_ITEM = f"""{_ENTITY} Name Sku Description Active Type IncomeAccountRef ExpenseAccountRef AssetAccountRef
    UnitPrice PurchaseCost Taxable SalesTaxCodeRef TrackQtyOnHand QtyOnHand InvStartDate FullyQualifiedName
    SubItem ParentRef Level PurchaseDesc"""
_LINE = """Id LineNum Description Amount LinkedTxn DetailType SalesItemLineDetail DiscountLineDetail
    DescriptionLineDetail SubTotalLineDetail GroupLineDetail LineEx PaymentLineDetail CustomField
    ProjectRef"""


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


FIELDS = {
    "Invoice": _names(_SALES),
    "CreditMemo": _names(f"{_SALES} RemainingCredit InvoiceRef"),
    "Payment": _names(f"{_TXN} PaymentType CreditCardPayment CheckPayment UnappliedAmt ProcessPayment"),
    "Customer": _names(_CUSTOMER),
    "Item": _names(_ITEM),
}
LINE_FIELDS = _names(_LINE)


# --- answers ------------------------------------------------------------------------------------------
def _now() -> datetime:
    return django_timezone.now()


def _stamp(moment: datetime | None = None) -> str:
    return (moment or _now()).astimezone(COMPANY_ZONE).isoformat(timespec="seconds")


def _fault(
    status: int, code: str, message: str, detail: str = "", element: str = "", kind: str = "ValidationFault"
) -> core.SandboxError:
    error = {"Message": message, "Detail": detail or message, "code": code, "element": element}
    return core.SandboxError(status, {"Fault": {"Error": [error], "type": kind}, "time": _stamp()})


def _invalid(detail: str, element: str = "") -> core.SandboxError:
    return _fault(400, "2010", "Request has invalid or unsupported property", detail, element)


def _missing(element: str) -> core.SandboxError:
    return _fault(
        400,
        "2020",
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {element} is missing in the request",
        element,
    )


def _business(detail: str, element: str = "") -> core.SandboxError:
    return _fault(
        400,
        "6000",
        "A business validation error has occurred while processing your request",
        f"Business Validation Error: {detail}",
        element,
    )


def _gateway_fault(status: int, name: str, code: str, detail: str, kind: str) -> core.SandboxError:
    """The API gateway's own error document: lower-case keys and a `message=...; errorCode=...` text."""
    error = {
        "message": f"message={name}; errorCode={code}; statusCode={status}",
        "detail": detail,
        "code": str(int(code)),
        "element": None,
    }
    body = {
        "warnings": None,
        "intuitObject": None,
        "fault": {"error": [error], "type": kind},
        "time": int(_now().timestamp() * 1000),
    }
    return core.SandboxError(status, body)


def _envelope(entity: str, data: dict[str, Any]) -> JsonResponse:
    return JsonResponse({entity: data, "time": _stamp()})


def OAUTH_CALLBACK_EXTRAS(account: str) -> dict[str, str]:  # the name sandbox.core looks for
    return {"realmId": account}


def authenticate(request: HttpRequest) -> str:
    account = core.bearer_account(request, PLATFORM)
    if account is None:
        raise _gateway_fault(
            401, "AuthenticationFailed", "003200", "Token expired or invalid", "AUTHENTICATION"
        )
    realm = re.search(r"/company/([^/]+)/", request.path)
    if realm and realm[1] != account:
        raise _gateway_fault(
            403, "AuthorizationFailed", "003100", "The token is for another company", "SERVICE"
        )
    return account


def rate_limited(wait_seconds: float, limit: RateLimit | None) -> HttpResponse:
    # Intuit's 429 carries no Retry-After
    message = "message=ThrottleExceeded; errorCode=003001; statusCode=429"
    detail = "The request limit was reached.  Try again later"
    return _fault(429, "3001", message, detail, kind="SERVICE").response()


def server_error() -> HttpResponse:
    message = "An application error has occurred while processing your request"
    detail = "System Failure Error: An unexpected error occurred while accessing or saving your data."
    return _fault(500, "10000", message, detail, kind="SystemFault").response()


# --- numbers and state --------------------------------------------------------------------------------
def _dec(value: Any, element: str) -> Decimal:
    try:
        if isinstance(value, bool) or value is None:
            raise InvalidOperation
        result = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
        if not result.is_finite():
            raise InvalidOperation
    except InvalidOperation:
        raise _invalid(f"{element}: {value!r} is not a number", element) from None
    return result


def _num(value: Decimal) -> float:
    return float(value)


def _round(value: Decimal, currency: str) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-currency_exponent(currency)), rounding=ROUND_HALF_UP)


def _get(account: str, entity: str, record_id: Any, element: str = "") -> dict[str, Any]:
    record = core.record_get(PLATFORM, account, entity, str(record_id))
    if record is None or record.deleted:
        detail = (
            f"Object Not Found : Something you're trying to use has been made inactive ({entity} {record_id})"
        )
        raise _fault(400, "610", "Object Not Found", detail, element)
    return dict(record.data)


def _save(account: str, entity: str, data: dict[str, Any], *, created: bool = False) -> dict[str, Any]:
    now = _now()
    meta = dict(data.get("MetaData") or {})
    if created:
        meta["CreateTime"] = _stamp(now)
    data["SyncToken"] = "0" if created else str(int(data.get("SyncToken") or 0) + 1)
    meta["LastUpdatedTime"] = _stamp(now)
    data.update({"MetaData": meta, "domain": "QBO", "sparse": False})
    core.record_save(PLATFORM, account, entity, data["Id"], data)
    return data


def _referenced(account: str, entity: str, ref: Any, element: str) -> dict[str, Any]:
    value = ref.get("value") if isinstance(ref, dict) else None
    if not value:
        raise _missing(element)
    record = core.record_get(PLATFORM, account, entity, str(value))
    if record is None or record.deleted or record.data.get("Active") is False:
        detail = f"Invalid Reference Id : {entity} {value} has been deleted, made inactive or does not exist"
        raise _fault(400, "2500", "Invalid Reference Id", detail, element)
    return dict(record.data)


def _ref_value(data: dict[str, Any], key: str, default: str = "") -> str:
    ref = data.get(key)
    return str(ref.get("value") or default) if isinstance(ref, dict) else default


# --- documents ------------------------------------------------------------------------------------------
def _check_fields(entity: str, body: dict[str, Any]) -> None:
    for key in body:
        if key not in FIELDS[entity]:
            raise _invalid(f"Property Name:{key} specified is unsupported or invalid", key)
    lines = body.get("Line", [])
    if not isinstance(lines, list):
        raise _invalid("Line must be a list", "Line")
    for index, line in enumerate(lines):
        if not isinstance(line, dict):
            raise _invalid("a Line must be an object", f"Line[{index}]")
        for key in line:
            if key not in LINE_FIELDS:
                raise _invalid(f"Property Name:{key} specified is unsupported or invalid", f"Line.{key}")


def _currency(body: dict[str, Any], customer: dict[str, Any]) -> str:
    customer_currency = _ref_value(customer, "CurrencyRef", HOME_CURRENCY)
    code = _ref_value(body, "CurrencyRef", customer_currency)
    if code not in EXCHANGE_RATES:
        raise _business(f"Currency {code} is not enabled for this company.", "CurrencyRef")
    if code != customer_currency:
        detail = (
            f"The transaction currency ({code}) must match the customer's currency ({customer_currency})."
        )
        raise _business(detail, "CurrencyRef")
    return code


def _sales_line(account: str, raw: dict[str, Any], index: int, currency: str) -> tuple[dict, Decimal, str]:
    """One line as QuickBooks stores it, its signed net amount and its tax code."""
    line, kind, element = dict(raw), raw.get("DetailType"), f"Line[{index}]"
    if kind == "DiscountLineDetail":
        return line, -_dec(line.get("Amount", 0), f"{element}.Amount"), ""
    if kind == "DescriptionOnly":
        return line, ZERO, ""
    if kind != "SalesItemLineDetail":
        raise _invalid(f"DetailType {kind!r} is not valid on a sales document", f"{element}.DetailType")
    detail = dict(line.get("SalesItemLineDetail") or {})
    item = _referenced(account, "Item", detail.get("ItemRef"), f"{element}.SalesItemLineDetail.ItemRef")
    detail["ItemRef"] = {"value": item["Id"], "name": item["Name"]}
    amount = _dec(line.get("Amount", 0), f"{element}.Amount")
    if "Qty" in detail and "UnitPrice" in detail:
        qty, unit = _dec(detail["Qty"], f"{element}.Qty"), _dec(detail["UnitPrice"], f"{element}.UnitPrice")
        if _round(qty * unit, currency) != amount:
            detail_text = f"Amount is not equal to UnitPrice * Qty. Supplied value:{amount}"
            raise _fault(
                400, "6070", "Amount is not equal to UnitPrice * Qty", detail_text, f"{element}.Amount"
            )
    tax_code = ""
    if detail.get("TaxCodeRef"):
        tax_code = _referenced(account, "TaxCode", detail["TaxCodeRef"], f"{element}.TaxCodeRef")["Id"]
        detail["TaxCodeRef"] = {"value": tax_code}
    line["SalesItemLineDetail"] = detail
    return line, amount, tax_code


def _tax_detail(taxed: dict[str, Decimal], currency: str) -> dict[str, Any]:
    """Tax per tax code on the net amounts it covers, as `TxnTaxDetail`."""
    tax_lines, total = [], ZERO
    for code, net in sorted(taxed.items()):
        percent = TAX_RATES.get(code, ZERO)
        tax = _round(net * percent / 100, currency)
        total += tax
        info = {"TaxRateRef": {"value": code}, "PercentBased": True, "TaxPercent": _num(percent)}
        info["NetAmountTaxable"] = _num(net)
        tax_lines.append({"Amount": _num(tax), "DetailType": "TaxLineDetail", "TaxLineDetail": info})
    return {"TotalTax": _num(total), "TaxLine": tax_lines}


def _sales_document(account: str, entity: str, body: dict[str, Any], old: dict[str, Any] | None) -> dict:
    customer = _referenced(account, "Customer", body.get("CustomerRef"), "CustomerRef")
    currency = _currency(body, customer)
    raw_lines = [line for line in body.get("Line") or [] if line.get("DetailType") != "SubTotalLineDetail"]
    if not raw_lines:
        raise _missing("Line")
    lines, net, taxed = [], ZERO, {}
    for index, raw in enumerate(raw_lines):
        line, amount, tax_code = _sales_line(account, raw, index, currency)
        net += amount
        if tax_code:
            taxed[tax_code] = taxed.get(tax_code, ZERO) + amount
        lines.append({**line, "Id": str(index + 1), "LineNum": index + 1, "Amount": _num(abs(amount))})
    lines.append({"Amount": _num(net), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
    tax_detail = _tax_detail(taxed, currency)
    total = net + _dec(tax_detail["TotalTax"], "TotalTax")
    if total < 0:
        raise _business("The transaction total must be zero or more.", "TotalAmt")
    applied = ZERO
    if old is not None:
        open_field = "RemainingCredit" if entity == "CreditMemo" else "Balance"
        applied = _dec(old.get("TotalAmt", 0), "TotalAmt") - _dec(old.get(open_field, 0), open_field)
        if applied > total:
            raise _business("The new total is less than what has already been applied to it.", "TotalAmt")
    txn_date = str(body.get("TxnDate") or (old or {}).get("TxnDate") or date.today().isoformat())
    rate = _dec(body.get("ExchangeRate") or EXCHANGE_RATES[currency], "ExchangeRate")
    data = {"PrintStatus": "NeedToPrint", "EmailStatus": "NotSet", "ApplyTaxAfterDiscount": False, **body}
    data.update(
        {
            "CustomerRef": {"value": customer["Id"], "name": customer["DisplayName"]},
            "CurrencyRef": {"value": currency},
            "ExchangeRate": _num(rate),
            "TxnDate": txn_date,
            "Line": lines,
            "TxnTaxDetail": tax_detail,
            "TotalAmt": _num(total),
            "HomeTotalAmt": _num(_round(total * rate, HOME_CURRENCY)),
            "Balance": _num(total - applied),
            "LinkedTxn": data.get("LinkedTxn") or [],
        }
    )
    if entity == "Invoice":
        data.setdefault("Deposit", 0)
        data["DueDate"] = str(body.get("DueDate") or (date.fromisoformat(txn_date) + timedelta(days=30)))
    else:
        data["RemainingCredit"] = data["Balance"]
    if not data.get("DocNumber"):
        data["DocNumber"] = str(1000 + core.next_number(PLATFORM, account, f"doc:{entity}"))
    return data


def _customer(account: str, body: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    name = str(body.get("DisplayName") or "").strip()
    if not name:
        raise _missing("DisplayName")
    for record in core.record_list(PLATFORM, account, "Customer"):
        if str(record.data.get("DisplayName", "")).lower() == name.lower() and record.record_id != body.get(
            "Id"
        ):
            detail = (
                "The name supplied already exists. : Another customer, vendor or employee is already using "
                f"this name. Please use a different name. Id={record.record_id}"
            )
            raise _fault(400, "6240", "Duplicate Name Exists Error", detail)
    currency = _ref_value(body, "CurrencyRef", HOME_CURRENCY)
    if old and _ref_value(old, "CurrencyRef", currency) != currency:
        raise _business("You can't change the currency of a customer.", "CurrencyRef")
    defaults = {"Active": True, "Balance": 0, "Job": False, "BillWithParent": False}
    return {
        **defaults,
        **body,
        "DisplayName": name,
        "FullyQualifiedName": name,
        "CurrencyRef": {"value": currency},
    }


def _item(body: dict[str, Any]) -> dict[str, Any]:
    if not body.get("Name"):
        raise _missing("Name")
    return {"Active": True, "Type": "Service", **body, "FullyQualifiedName": body["Name"]}


# --- payments -------------------------------------------------------------------------------------------
def _links(payment: dict[str, Any]) -> list[tuple[str, str, Decimal]]:
    """(TxnType, TxnId, amount) of each document a payment is applied to."""
    found = []
    for index, line in enumerate(payment.get("Line") or []):
        amount = _dec(line.get("Amount", 0), f"Line[{index}].Amount")
        for link in line.get("LinkedTxn") or []:
            kind = str(link.get("TxnType") or "")
            if kind not in ("Invoice", "CreditMemo"):
                raise _invalid(f"TxnType {kind!r} cannot be paid", f"Line[{index}].LinkedTxn.TxnType")
            found.append((kind, str(link.get("TxnId") or ""), amount))
    return found


def _open_field(kind: str) -> str:
    return "RemainingCredit" if kind == "CreditMemo" else "Balance"


def _shift(account: str, kind: str, document_id: str, payment_id: str, change: Decimal) -> None:
    """Apply (`change` < 0) or release (`change` > 0) part of an invoice or credit memo."""
    document = _get(account, kind, document_id)
    field = _open_field(kind)
    document[field] = document["Balance"] = _num(_dec(document.get(field, 0), field) + change)
    links = [link for link in document.get("LinkedTxn") or [] if link.get("TxnId") != payment_id]
    if change < 0:
        links.append({"TxnId": payment_id, "TxnType": "Payment"})
    document["LinkedTxn"] = links
    _save(account, kind, document)


def _payment(account: str, body: dict[str, Any], payment_id: str) -> dict[str, Any]:
    customer = _referenced(account, "Customer", body.get("CustomerRef"), "CustomerRef")
    currency = _currency(body, customer)
    if body.get("TotalAmt") is None:
        raise _missing("TotalAmt")
    total, applied = _dec(body["TotalAmt"], "TotalAmt"), ZERO
    links = _links(body)
    for kind, document_id, amount in links:
        document = _get(account, kind, document_id, "LinkedTxn.TxnId")
        if _ref_value(document, "CustomerRef") != customer["Id"]:
            raise _business(f"{kind} {document_id} belongs to another customer.", "LinkedTxn")
        if _ref_value(document, "CurrencyRef") != currency:
            raise _business(f"{kind} {document_id} is in another currency.", "CurrencyRef")
        if amount > _dec(document.get(_open_field(kind), 0), "Balance"):
            raise _business(
                f"The amount applied to {kind} {document_id} exceeds its open balance.", "Line.Amount"
            )
        applied += amount if kind == "Invoice" else -amount
    if total < 0 or applied > total:
        raise _business("The payment total is less than the amount applied.", "TotalAmt")
    for kind, document_id, amount in links:
        _shift(account, kind, document_id, payment_id, -amount)
    rate = _dec(body.get("ExchangeRate") or EXCHANGE_RATES[currency], "ExchangeRate")
    return {
        "DepositToAccountRef": {"value": "2", "name": "Undeposited Funds"},
        "ProcessPayment": False,
        **body,
        "Id": payment_id,
        "CustomerRef": {"value": customer["Id"], "name": customer["DisplayName"]},
        "CurrencyRef": {"value": currency},
        "ExchangeRate": _num(rate),
        "TotalAmt": _num(total),
        "UnappliedAmt": _num(total - applied),
        "TxnDate": str(body.get("TxnDate") or date.today().isoformat()),
        "Line": [dict(line) for line in body.get("Line") or []],
    }


def _release(account: str, payment: dict[str, Any]) -> None:
    for kind, document_id, amount in _links(payment):
        if amount and core.record_get(PLATFORM, account, kind, document_id):
            _shift(account, kind, document_id, payment["Id"], amount)


# --- writes ---------------------------------------------------------------------------------------------
def _build(
    account: str, entity: str, body: dict[str, Any], old: dict[str, Any] | None, record_id: str
) -> dict:
    if entity in ("Invoice", "CreditMemo"):
        return _sales_document(account, entity, body, old)
    if entity == "Payment":
        if old is not None:
            _release(account, old)
        return _payment(account, body, record_id)
    if entity == "Customer":
        return _customer(account, body, old)
    return _item(body)


def _create(account: str, entity: str, body: dict[str, Any]) -> dict[str, Any]:
    _check_fields(entity, body)
    record_id = str(core.next_number(PLATFORM, account, f"id:{entity}"))
    data = _build(account, entity, {**body, "Id": record_id}, None, record_id)
    return _save(account, entity, {**data, "Id": record_id}, created=True)


def _current(account: str, entity: str, body: dict[str, Any]) -> dict[str, Any]:
    """The stored record a change names, refusing a missing or stale SyncToken."""
    old = _get(account, entity, body.get("Id"), "Id")
    if body.get("SyncToken") is None:
        raise _missing("SyncToken")
    if str(body["SyncToken"]) != str(old.get("SyncToken")):
        detail = (
            "Stale Object Error : You and someone else were working on this at the same time. They finished "
            "before you did, so your work was not saved."
        )
        raise _fault(400, "5010", "Stale Object Error", detail, "SyncToken")
    return old


def _update(account: str, entity: str, body: dict[str, Any]) -> dict[str, Any]:
    """Sparse (`"sparse": true`: only the fields sent change) or full (fields left out are cleared)."""
    _check_fields(entity, body)
    old = _current(account, entity, body)
    kept = {key: old[key] for key in ("Id", "MetaData", "LinkedTxn", "domain") if key in old}
    merged = {**old, **body} if body.get("sparse") else {**kept, **body}
    merged.pop("sparse", None)
    data = _build(account, entity, merged, old, old["Id"])
    data.update({"Id": old["Id"], "SyncToken": old["SyncToken"], "MetaData": old.get("MetaData", {})})
    return _save(account, entity, data)


def _void(account: str, entity: str, body: dict[str, Any]) -> dict[str, Any]:
    old = _current(account, entity, body)
    if entity == "Invoice":
        if any(link.get("TxnType") == "Payment" for link in old.get("LinkedTxn") or []):
            raise _business("This invoice has payments applied to it. Remove them before you void it.")
        for line in old.get("Line") or []:
            line["Amount"] = 0
            if isinstance(line.get("SalesItemLineDetail"), dict):
                line["SalesItemLineDetail"]["Qty"] = 0
        old.update({"TotalAmt": 0, "HomeTotalAmt": 0, "Balance": 0, "TxnTaxDetail": {"TotalTax": 0}})
    elif entity == "Payment":
        _release(account, old)
        for line in old.get("Line") or []:
            line["Amount"] = 0
        old.update({"TotalAmt": 0, "UnappliedAmt": 0})
    else:
        raise _invalid(f"Operation void is not supported for {entity}", "operation")
    old["PrivateNote"] = f"Voided - {old['PrivateNote']}" if old.get("PrivateNote") else "Voided"
    return _save(account, entity, old)


def _delete(account: str, entity: str, body: dict[str, Any]) -> dict[str, Any]:
    if entity not in ("Invoice", "Payment", "CreditMemo"):
        raise _invalid(f"Operation delete is not supported for {entity}", "operation")
    old = _current(account, entity, body)
    if entity == "Payment":
        _release(account, old)
    elif any(link.get("TxnType") == "Payment" for link in old.get("LinkedTxn") or []):
        raise _business(f"This {entity} has payments applied to it. Remove them before you delete it.")
    _save(account, entity, old)
    record = core.record_get(PLATFORM, account, entity, old["Id"])
    record.deleted = True
    record.save(update_fields=["deleted"])
    return {"domain": "QBO", "status": "Deleted", "Id": old["Id"]}


def _write(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    entity = ENTITY_PATHS[match["entity"]]
    operation = request.GET.get("operation", "").lower()
    include = request.GET.get("include", "").lower()
    request_id = request.GET.get("requestid", "")
    print_ = core.fingerprint(entity, operation, include)
    if request_id:
        stored = core.idempotency_lookup(PLATFORM, account, request_id, print_)
        if stored is False:
            raise _business(f"requestid {request_id} was already used for another request.", "requestid")
        if stored is not None:
            return core.stored_response(stored)
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _invalid("The request body is not a JSON object")
    if operation == "void" or (operation == "update" and include == "void"):
        data = _void(account, entity, body)
    elif operation == "delete":
        data = _delete(account, entity, body)
    elif operation in ("", "create", "update"):
        data = _update(account, entity, body) if body.get("Id") else _create(account, entity, body)
    else:
        raise _invalid(f"Operation {operation} is not supported", "operation")
    response = _envelope(entity, data)
    if request_id:
        core.idempotency_store(PLATFORM, account, request_id, print_, response)
    return response


# --- batch ----------------------------------------------------------------------------------------------
def route_rate_limits(method: str, path: str) -> tuple[str, tuple[RateLimit, ...]] | None:
    """The name sandbox.core looks for: batch requests also count against the batch limit."""
    if method == "POST" and re.match(_COMPANY + r"batch$", path):
        return "batch", BATCH_RATE_LIMITS
    return None


def _too_long(field: str, value: str, most: int) -> core.SandboxError:
    # the shape Intuit gives a requestid that is too long, on every item of the batch
    detail = (
        f"You cannot enter more than {most} characters in the {field} field. "
        f"You tried entering {value[:10]}..., which is {len(value)} characters."
    )
    return _business(detail, field)


def _batch_item(account: str, item: Any, request_id: str) -> dict[str, Any]:
    """One BatchItemResponse item: the entity created, or the Fault that refused it (nothing saved)."""
    bid = str(item.get("bId") or "") if isinstance(item, dict) else ""
    try:
        if not isinstance(item, dict):
            raise _invalid("a BatchItemRequest item must be an object", "BatchItemRequest")
        if not bid:
            raise _missing("bId")
        if len(request_id) > BATCH_REQUEST_ID_MAX:
            raise _too_long("request_id", request_id, BATCH_REQUEST_ID_MAX)
        if request_id and len(bid) > BATCH_ID_MAX:
            raise _too_long("bId", bid, BATCH_ID_MAX)
        operation = str(item.get("operation") or "").lower()
        names = [key for key in item if key not in BATCH_KEYS]
        if operation != "create":
            what = operation or (names[0] if names else "(none)")
            raise _invalid(f"Operation {what} is not supported in a batch by this sandbox", "operation")
        entity = names[0] if len(names) == 1 else ""
        if entity not in FIELDS:
            raise _invalid(
                f"a create item needs one entity of {', '.join(FIELDS)}: {names}", "BatchItemRequest"
            )
        body = item[entity]
        if not isinstance(body, dict):
            raise _invalid(f"The {entity} is not a JSON object", entity)
        with transaction.atomic():  # a refused item leaves nothing behind; the others are kept
            return {"bId": bid, entity: _create(account, entity, body)}
    except core.SandboxError as exc:
        fault = exc.body.get("Fault") if isinstance(exc.body, dict) else None
        return {"bId": bid, "Fault": fault or {"Error": [], "type": "ValidationFault"}}


def _batch(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    request_id = request.GET.get("requestid", "")
    print_ = core.fingerprint("batch")
    if request_id:
        stored = core.idempotency_lookup(PLATFORM, account, request_id, print_)
        if stored is False:
            raise _business(f"requestid {request_id} was already used for another request.", "requestid")
        if stored is not None:
            return core.stored_response(stored)
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _invalid("The request body is not a JSON object")
    items = body.get("BatchItemRequest")
    if not isinstance(items, list) or not items:
        raise _missing("BatchItemRequest")
    if len(items) > BATCH_MAX_ITEMS:
        # the whole request is refused; Intuit's exact code and wording are not documented [unverified]
        detail = f"Batch can not have more than {BATCH_MAX_ITEMS} BatchItemRequest items: {len(items)} given"
        raise _invalid(detail, "BatchItemRequest")
    response = JsonResponse(
        {"BatchItemResponse": [_batch_item(account, item, request_id) for item in items], "time": _stamp()}
    )
    if request_id:
        core.idempotency_store(PLATFORM, account, request_id, print_, response)
    return response


# --- reads ----------------------------------------------------------------------------------------------
def _company(account: str) -> dict[str, Any]:
    return {
        "Id": account,
        "SyncToken": "0",
        "CompanyName": "Ledgerlink Sandbox Ltd",
        "LegalName": "Ledgerlink Sandbox Ltd",
        "Country": "GB",
        "domain": "QBO",
        "NameValue": [{"Name": "HomeCurrency", "Value": HOME_CURRENCY}],
    }


def _read(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    entity = ENTITY_PATHS[match["entity"]]
    if entity == "CompanyInfo":
        if match["id"] != account:
            raise _fault(400, "610", "Object Not Found", f"Object Not Found : CompanyInfo {match['id']}")
        return _envelope(entity, _company(account))
    return _envelope(entity, _get(account, entity, match["id"]))


_QUERY = re.compile(r"^\s*select\s+(?P<fields>.+?)\s+from\s+(?P<entity>\w+)(?P<rest>.*)$", re.I | re.S)
_CLAUSES = re.compile(
    r"^(?:\s+where\s+(?P<where>.+?))?(?:\s+orderby\s+(?P<order>[\w.]+)(?:\s+(?P<direction>asc|desc))?)?"
    r"(?:\s+startposition\s+(?P<start>\d+))?(?:\s+maxresults\s+(?P<max>\d+))?\s*$",
    re.I | re.S,
)
_CONDITION = re.compile(
    r"\s*(?P<field>[\w.]+)\s*(?P<op><=|>=|!=|=|<|>|\bin\b|\blike\b)\s*"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\([^)]*\)|[\w.:+-]+)\s*(?P<more>\band\b)?",
    re.I | re.S,
)
_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|[\w.:+-]+")


def _parse_error(detail: str) -> core.SandboxError:
    return _fault(400, "4000", "Error parsing query", f"QueryParserError: {detail}")


def _literal(text: str) -> Any:
    if text.startswith("'"):
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text.lower() == "true" if text.lower() in ("true", "false") else text


def _conditions(where: str) -> list[tuple[str, str, Any]]:
    conditions, position = [], 0
    while position < len(where):
        found = _CONDITION.match(where, position)
        if not found:
            raise _parse_error(f"cannot read the condition at {where[position:][:40]!r}")
        value = found["value"]
        parsed = (
            [_literal(v) for v in _LITERAL.findall(value[1:-1])] if value.startswith("(") else _literal(value)
        )
        conditions.append((found["field"], found["op"].lower(), parsed))
        position = found.end()
        if not found["more"] and where[position:].strip():
            raise _parse_error(f"unexpected {where[position:][:40]!r}")
    return conditions


def _field(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value.get("value") if isinstance(value, dict) and "value" in value else value


def _comparable(path: str, value: Any) -> Any:
    """A value in the type its field compares by: times as datetimes, ids and amounts as numbers."""
    if value is None or isinstance(value, bool):
        return value
    if path.endswith("Time"):
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    text = str(value)
    numeric = path == "Id" or path.endswith(("Amt", "Balance"))
    return Decimal(text) if numeric and re.fullmatch(r"-?\d+(\.\d+)?", text) else text


def _holds(data: dict[str, Any], path: str, op: str, expected: Any) -> bool:
    actual = _comparable(path, _field(data, path))
    if op == "in":
        return actual in [_comparable(path, item) for item in expected]
    if op == "like":
        pattern = ".*".join(map(re.escape, str(expected).split("%")))
        return actual is not None and re.fullmatch(pattern, str(actual), re.I) is not None
    wanted = _comparable(path, expected)
    if isinstance(wanted, bool) or isinstance(actual, bool):
        actual, wanted = bool(actual), bool(wanted)
    if actual is None:
        return op == "!="
    try:
        return {
            "=": actual == wanted,
            "!=": actual != wanted,
            "<": actual < wanted,
            ">": actual > wanted,
            "<=": actual <= wanted,
            ">=": actual >= wanted,
        }[op]
    except TypeError:
        return op == "=" and str(actual) == str(wanted)


def run_query(account: str, statement: str) -> dict[str, Any]:
    """The QueryResponse of one statement of Intuit's query language."""
    found = _QUERY.match(statement)
    clauses = _CLAUSES.match(found["rest"]) if found else None
    if not found or not clauses:
        raise _parse_error(f"Encountered unexpected text in {statement[:80]!r}")
    entity = next(
        (name for name in (*QUERYABLE, "CompanyInfo") if name.lower() == found["entity"].lower()), ""
    )
    if not entity:
        raise _fault(
            400, "4001", "Invalid query", f"QueryValidationError: {found['entity']} is not queryable"
        )
    if entity == "CompanyInfo":
        rows = [_company(account)]
    else:
        rows = [dict(r.data) for r in core.record_list(PLATFORM, account, entity).filter(deleted=False)]
    conditions = _conditions(clauses["where"] or "")
    if entity in ("Customer", "Item", "Account") and all(path != "Active" for path, _, _ in conditions):
        rows = [row for row in rows if row.get("Active", True)]  # Intuit lists active ones unless asked
    rows = [row for row in rows if all(_holds(row, *condition) for condition in conditions)]
    if re.sub(r"\s", "", found["fields"]).lower() == "count(*)":
        return {"totalCount": len(rows)}
    order = clauses["order"] or "Id"

    def key(row: dict[str, Any]) -> tuple:
        value = _comparable(order, _field(row, order))
        return (value is None, "" if value is None else value, Decimal(str(row.get("Id") or 0)))

    rows.sort(key=key, reverse=(clauses["direction"] or "").lower() == "desc")
    start = max(int(clauses["start"] or 1), 1)
    page = rows[start - 1 : start - 1 + min(int(clauses["max"] or 100), PAGE_MAX)]
    fields = [name.strip() for name in found["fields"].split(",")]
    if fields != ["*"]:
        page = [
            {"Id": row.get("Id"), **{f: row[f] for f in fields if f in row}, "sparse": True} for row in page
        ]
    return {entity: page, "startPosition": start, "maxResults": len(page)} if page else {}


def _query(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    statement = request.GET.get("query") or request.body.decode("utf-8", "replace")
    return JsonResponse({"QueryResponse": run_query(account, statement), "time": _stamp()})


def _cdc(request: HttpRequest, account: str, match: re.Match[str]) -> HttpResponse:
    names = [name.strip() for name in request.GET.get("entities", "").split(",") if name.strip()]
    entities = [next((e for e in QUERYABLE if e.lower() == name.lower()), name) for name in names]
    unknown = [name for name in entities if name not in QUERYABLE]
    if not entities or unknown:
        raise _invalid(f"entities: {', '.join(unknown) or '(none)'} not supported", "entities")
    try:
        since = datetime.fromisoformat(request.GET.get("changedSince", "").replace("Z", "+00:00"))
    except ValueError:
        raise _missing("changedSince") from None
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    if since < _now() - timedelta(days=CDC_DAYS):
        raise _parse_error(f"changedSince cannot be more than {CDC_DAYS} days in the past")
    changed = [
        (record.updated_at, int(record.record_id) if record.record_id.isdigit() else 0, entity, record)
        for entity in entities
        for record in core.record_list(PLATFORM, account, entity).filter(updated_at__gte=since)
    ]
    changed.sort(key=lambda item: item[:2])
    found: dict[str, list[dict[str, Any]]] = {}
    for _, _, entity, record in changed[:PAGE_MAX]:  # at most 1000 objects per answer, oldest first
        row = dict(record.data)
        if record.deleted:
            row = {
                "domain": "QBO",
                "status": "Deleted",
                "Id": record.record_id,
                "MetaData": row.get("MetaData"),
            }
        found.setdefault(entity, []).append(row)
    answers = [{entity: rows, "startPosition": 1, "maxResults": len(rows)} for entity, rows in found.items()]
    return JsonResponse({"CDCResponse": [{"QueryResponse": answers or [{}]}], "time": _stamp()})


_COMPANY = r"^v3/company/(?P<realm>[^/]+)/"
_READABLE = "invoice|payment|creditmemo|customer|item|account|taxcode|companyinfo"
ROUTES = [
    core.Route("GET", _COMPANY + rf"(?P<entity>{_READABLE})/(?P<id>[^/]+)$", _read),
    core.Route("POST", _COMPANY + r"(?P<entity>invoice|payment|creditmemo|customer|item)$", _write),
    core.Route("GET", _COMPANY + r"query$", _query),
    core.Route("POST", _COMPANY + r"query$", _query),
    core.Route("GET", _COMPANY + r"cdc$", _cdc),
    core.Route("POST", _COMPANY + r"batch$", _batch),
]


# --- demo data ------------------------------------------------------------------------------------------
def _reference_data(account: str) -> None:
    accounts = [
        ("1", "Sales", "Income", "4000"),
        ("2", "Undeposited Funds", "Other Current Asset", "1200"),
        ("3", "Current Account", "Bank", "1010"),
        ("4", "Debtors", "Accounts Receivable", "1100"),
        ("5", "Stripe Clearing", "Bank", "1020"),
    ]
    for record_id, name, kind, number in accounts:
        classification = "Revenue" if kind == "Income" else "Asset"
        data = {"Id": record_id, "Name": name, "AccountType": kind, "AcctNum": number, "Active": True}
        data.update({"Classification": classification, "CurrencyRef": {"value": HOME_CURRENCY}})
        _save(account, "Account", data, created=True)
    codes = [("2", "20.0% S", "Standard rated"), ("3", "0.0% Z", "Zero rated"), ("4", "Exempt", "Exempt")]
    for record_id, name, description in [*codes, ("5", "5.0% R", "Reduced rate")]:
        rates = {"TaxRateDetail": [{"TaxRateRef": {"value": record_id, "name": name}, "TaxOrder": 0}]}
        data = {"Id": record_id, "Name": name, "Description": description, "Active": True}
        data.update({"Taxable": record_id != "4", "TaxGroup": False, "SalesTaxRateList": rates})
        _save(account, "TaxCode", data, created=True)
    items = [("Services", "SVC", 120), ("Consulting hours", "HOURS", 85), ("Olive oil 5L", "OIL-5L", 32.5)]
    for name, sku, price in [*items, ("Shipping", "SHIP", 9.95)]:
        income = {"value": "1", "name": "Sales"}
        _create(account, "Item", {"Name": name, "Sku": sku, "UnitPrice": price, "IncomeAccountRef": income})


def _line(item: str, qty: int, unit: Decimal, tax_code: str) -> dict[str, Any]:
    detail = {
        "ItemRef": {"value": item},
        "Qty": qty,
        "UnitPrice": _num(unit),
        "TaxCodeRef": {"value": tax_code},
    }
    return {"Amount": _num(qty * unit), "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": detail}


def _pay(
    account: str, customer: str, total: Decimal, links: list[tuple[str, str, Decimal]], ref: str
) -> dict:
    lines = [
        {"Amount": _num(amount), "LinkedTxn": [{"TxnId": txn, "TxnType": kind}]}
        for kind, txn, amount in links
    ]
    body = {"CustomerRef": {"value": customer}, "TotalAmt": _num(total), "Line": lines}
    return _create(account, "Payment", {**body, "PaymentRefNum": ref} if ref else body)


def seed(account: str) -> None:
    """Demo books: customers in four currencies, 20 invoices (open, part-paid, paid, void, deleted),
    payments (one voided) and credit memos (one applied). The same for a given account and day."""
    if core.record_list(PLATFORM, account, "Customer").exists():
        return
    rng = random.Random(f"quickbooks:{account}")
    _reference_data(account)
    people = [("Amy's Bird Sanctuary", "GBP"), ("Bill's Windsurf Shop", "GBP"), ("Cool Cars", "GBP")]
    people += [("Diego Rodriguez", "EUR"), ("Kookies by Kathy", "USD"), ("Tanaka Trading", "JPY")]
    customers = []
    for name, currency in people:
        email = {"Address": re.sub(r"[^a-z]", "", name.lower())[:12] + "@example.com"}
        body = {"DisplayName": name, "CurrencyRef": {"value": currency}, "PrimaryEmailAddr": email}
        customers.append(_create(account, "Customer", body))
    today, invoices = date.today(), []
    for index in range(20):
        customer = customers[index % len(customers)]
        prices = (
            ["12000", "8500", "3250"] if customer["CurrencyRef"]["value"] == "JPY" else ["120", "85", "32.50"]
        )
        lines = [
            _line(str(rng.randint(1, 4)), rng.randint(1, 5), Decimal(rng.choice(prices)), rng.choice("223"))
            for _ in range(rng.randint(1, 3))
        ]
        issued = (today - timedelta(days=rng.randint(1, 60))).isoformat()
        body = {"CustomerRef": {"value": customer["Id"]}, "Line": lines, "TxnDate": issued}
        invoices.append(_create(account, "Invoice", body))
    for index, invoice in enumerate(invoices[:16]):
        if index % 4 == 3:
            continue  # left open
        total = Decimal(str(invoice["TotalAmt"]))
        part = total if index % 4 == 0 else _round(total / 2, invoice["CurrencyRef"]["value"])
        links = [("Invoice", invoice["Id"], part)]
        payment = _pay(account, invoice["CustomerRef"]["value"], part, links, f"DEMO-{index + 1:03d}")
        if index == 2:
            _void(account, "Payment", payment)
    _void(account, "Invoice", _get(account, "Invoice", invoices[17]["Id"]))
    _delete(account, "Invoice", _get(account, "Invoice", invoices[18]["Id"]))
    damaged = {"CustomerRef": {"value": customers[0]["Id"]}, "PrivateNote": "Damaged goods"}
    credit = _create(account, "CreditMemo", {**damaged, "Line": [_line("3", 2, Decimal("32.50"), "2")]})
    refund = {"CustomerRef": {"value": customers[3]["Id"]}, "Line": [_line("1", 1, Decimal(40), "3")]}
    _create(account, "CreditMemo", refund)
    target = _get(account, "Invoice", invoices[6]["Id"])  # part-paid, same customer as the credit memo
    applied = min(Decimal(str(credit["RemainingCredit"])), Decimal(str(target["Balance"])))
    if applied > 0:
        links = [("Invoice", target["Id"], applied), ("CreditMemo", credit["Id"], applied)]
        _pay(account, customers[0]["Id"], ZERO, links, "")
