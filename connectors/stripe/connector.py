"""Stripe records <-> canonical records, and the calls that read and write them (field names: API
2026-06-24.dahlia, where invoices no longer name a charge and `invoice_payment` links payments to them).

Translation decisions:
- Amounts are integers in the currency's minor unit and become Decimals at its exponent (JPY 0, KWD 3).
- Invoice status: draft -> draft; open -> open, or partially_paid once amount_paid > 0; paid -> paid;
  void -> void; uncollectible -> open/partially_paid like open (the money is still owed; writing it off
  is the books' decision), with a note in the memo; a deleted draft is reported as a deletion.
  A draft has no number yet, so its id stands in. The invoice date: effective_at, else finalized_at, else
  created (UTC). amount_due is Stripe's amount_remaining.
- Lines: subtotal = amount - discounts - inclusive taxes, tax = sum of `taxes`, total = subtotal + tax;
  unit price from pricing.unit_amount_decimal (minor units, may carry decimals), else amount / quantity.
  The tax rate: the expanded rate a tax names, else derived from amount / taxable_amount, else None
  (connectors/stripe/taxes.py); it is never guessed.
- Payments are charges (fee from the expanded balance transaction when it is in the charge's currency;
  allocations from the invoice_payments of its PaymentIntent) and refunds (a negative amount, no
  allocations: the credit note that goes with a refund carries the link to the invoice). An
  invoice_payment or a payment_intent also parses as a payment (fetch by id, previews).
- Credit notes: void -> void; issued -> applied, partially_applied or open by how much of the credit sits
  on the customer's balance (post-payment amount not refunded nor paid out of band). The pre-payment
  amount is an allocation to the credited invoice.
- Payouts carry every balance transaction of the payout (charges, refunds, fees, the payout itself).

Incremental reads use the events API (kept 30 days): newest first, one Change per object per page (its
newest event), `updated_at` = the event's time; a later page holds older events, so per record the
Change with the newest `updated_at` wins. Payments and payouts are read again at their current
state (they need expansions an event does not carry). When `since` is None or older than the events
kept, every object is listed: a `created` filter would miss old objects changed since.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any

from connectors.base import (
    AllocationRecord,
    AuthNeededError,
    Change,
    ChangePage,
    ConflictError,
    Connector,
    CreditNoteRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    NotFoundError,
    PaymentRecord,
    PayoutLineRecord,
    PayoutRecord,
    PushContext,
    RecordProblem,
    RemoteRef,
    ValidationError,
    WebhookError,
    WebhookEvent,
    WebhookResult,
)
from connectors.money import (
    currency_code,
    currency_exponent,
    decimal_value,
    from_minor_units,
    price,
    to_minor_units,
)
from connectors.stripe.client import KEY_PREFIXES, PRODUCTION_URL, TEST_MODE_LIMITS, StripeClient
from connectors.stripe.taxes import array_field, expandable_id, line_tax_rates

REFERENCE_KEY = "ledgerlink_reference"
EVENT_WINDOW = timedelta(days=29)  # events are kept 30 days; a day's margin for clock skew and paging
SIGNATURE_TOLERANCE = 300  # seconds, as stripe-python
RECENT_SECONDS = 3600  # how far back find_by_reference lists invoices when the search index lags

EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "invoice": (
        "invoice.created",
        "invoice.updated",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice.marked_uncollectible",
        "invoice.voided",
        "invoice.deleted",
    ),
    "payment": (
        "charge.succeeded",
        "charge.pending",
        "charge.failed",
        "charge.captured",
        "charge.updated",
        "charge.refunded",
        "charge.refund.updated",
        "refund.created",
        "refund.updated",
        "refund.failed",
    ),
    "credit_note": ("credit_note.created", "credit_note.updated", "credit_note.voided"),
    "payout": (
        "payout.created",
        "payout.updated",
        "payout.paid",
        "payout.failed",
        "payout.canceled",
        "payout.reconciliation_completed",
    ),
    "customer": ("customer.created", "customer.updated", "customer.deleted"),
}
LISTS: dict[str, tuple[str, ...]] = {
    "invoice": ("invoices",),
    "payment": ("charges", "refunds"),
    "credit_note": ("credit_notes",),
    "payout": ("payouts",),
    "customer": ("customers",),
}
LIST_EXPAND = {"charges": ["data.balance_transaction"], "refunds": ["data.balance_transaction"]}
# what fetch reads for a payment id, by prefix
PAYMENT_PATHS = {
    "ch_": ("charges", ["balance_transaction"]),
    "py_": ("charges", ["balance_transaction"]),
    "re_": ("refunds", ["balance_transaction"]),
    "pi_": ("payment_intents", ["latest_charge.balance_transaction"]),
    "inpay_": (
        "invoice_payments",
        [
            "invoice",
            "payment.charge.balance_transaction",
            "payment.payment_intent.latest_charge.balance_transaction",
        ],
    ),
}
OBJECT_TYPES = {
    "invoice": "invoice",
    "charge": "payment",
    "refund": "payment",
    "payment_intent": "payment",
    "invoice_payment": "payment",
    "credit_note": "credit_note",
    "payout": "payout",
    "customer": "customer",
}


class StripeConnector(Connector):
    platform = "stripe"
    label = "Stripe"
    capabilities = {
        "invoice": frozenset({"read", "list_changes", "create", "void", "webhook"}),
        "payment": frozenset({"read", "list_changes", "record_payment", "webhook"}),
        "credit_note": frozenset({"read", "list_changes", "webhook"}),
        "payout": frozenset({"read", "list_changes", "webhook"}),
        "customer": frozenset({"read", "list_changes", "webhook"}),
    }
    uses_oauth = False
    default_base_url = PRODUCTION_URL
    # the stricter test-mode limit; the client applies 100/s instead when the key is a live one
    rate_limits = TEST_MODE_LIMITS
    webhook_unnamed_is_elsewhere = True  # a Connect endpoint: no `account` means the platform's own event

    @cached_property
    def client(self) -> StripeClient:
        return StripeClient(self.connection)

    # --- pure translation -----------------------------------------------------------------------------
    @classmethod
    def parse(cls, object_type: str, raw: dict[str, Any]) -> Any:
        if not isinstance(raw, Mapping):
            raise ValidationError(f"a Stripe {object_type} must be a JSON object", field="", value=raw)
        if raw.get("deleted") is True:
            raise ValidationError(
                f"{raw.get('id')} is deleted: it has no content", field="deleted", value=True
            )
        parsers = {
            "invoice": parse_invoice,
            "payment": parse_payment,
            "credit_note": parse_credit_note,
            "payout": parse_payout,
            "customer": parse_customer,
        }
        if object_type not in parsers:
            raise ValidationError(f"Stripe has no {object_type} records", field="object", value=object_type)
        return parsers[object_type](raw)

    @classmethod
    def render(cls, object_type: str, record: Any, context: PushContext) -> dict[str, Any]:
        """An invoice as the three steps that create it: the draft, its invoice items, finalisation."""
        if object_type != "invoice":
            raise ValidationError(f"Stripe invoices only; cannot create a {object_type}", field="object")
        if not context.customer_id:
            raise ValidationError("a Stripe invoice needs a customer id (cus_...)", field="customer")
        currency = currency_code(record.currency)
        invoice: dict[str, Any] = {
            "customer": context.customer_id,
            "currency": currency.lower(),
            "collection_method": "send_invoice",
            "days_until_due": max((record.due_date - record.issue_date).days, 0) if record.due_date else 0,
            "auto_advance": False,
            "pending_invoice_items_behavior": "exclude",
            "effective_at": int(datetime.combine(record.issue_date, datetime.min.time(), UTC).timestamp()),
            "description": record.memo or None,
            "metadata": {REFERENCE_KEY: context.reference, "ledgerlink_number": record.number},
        }
        items = [
            _render_line(line, index, currency, context.lines[index] if index < len(context.lines) else {})
            for index, line in enumerate(record.lines)
        ]
        return {"invoice": invoice, "items": items, "finalize": record.status != "draft"}

    # --- reads ----------------------------------------------------------------------------------------
    def check_credentials(self) -> None:
        key = str((self.connection.credentials or {}).get("api_key") or "")
        if not key.startswith(KEY_PREFIXES):
            raise AuthNeededError("the Stripe API key must be a secret (sk_) or restricted (rk_) key")
        self.client.get("invoices", {"limit": 1})

    def list_changes(
        self, object_type: str, *, since: datetime | None, page: str | None = None
    ) -> ChangePage:
        self._require(object_type, "list_changes")
        now = time.time()
        if page:
            source, _, rest = page.partition(":")
            cursor, _, started_text = rest.rpartition(":")
            try:
                started = float(started_text or now)
            except ValueError:
                raise ValidationError(
                    f"page {page!r} is not a Stripe page", field="page", value=page
                ) from None
        else:
            recent = since is not None and since.timestamp() >= now - EVENT_WINDOW.total_seconds()
            source, cursor, started = ("events" if recent else LISTS[object_type][0]), "", now
        if source == "events":
            if since is None:
                raise ValidationError("an events page needs the `since` it started from", field="since")
            params = {"types": list(EVENT_TYPES[object_type]), "created": {"gte": int(since.timestamp())}}
            events, has_more = self.client.list_page("events", params, starting_after=cursor or None)
            changes = self._changes_from_events(object_type, events)
            times = [_when(event.get("created")) for event in events]
            next_page = f"events:{events[-1]['id']}:{started}" if has_more and events else None
            return ChangePage(changes, next_page, max((t for t in times if t), default=None))
        if source not in LISTS[object_type]:
            raise ValidationError(f"page {page!r} is not a {object_type} page", field="page", value=page)
        objects, has_more = self.client.list_page(
            source, {"expand": LIST_EXPAND.get(source)}, starting_after=cursor or None
        )
        changes = [self._change(object_type, raw) for raw in objects]
        if has_more and objects:
            next_page = f"{source}:{objects[-1]['id']}:{started}"
        else:
            sources = LISTS[object_type]
            following = sources[sources.index(source) + 1 :]
            next_page = f"{following[0]}::{started}" if following else None
        return ChangePage(changes, next_page, datetime.fromtimestamp(started, UTC))

    def fetch(self, object_type: str, external_id: str) -> Change:
        self._require(object_type, "read")
        return self._change(object_type, self._get(object_type, external_id))

    def find_by_reference(self, object_type: str, reference: str) -> RemoteRef | None:
        """The invoice whose metadata carries `reference`: the Search API first, then (search lags writes
        by up to a minute) the invoices created in the last hour."""
        self._require(object_type, "create")
        quoted = reference.replace("\\", "\\\\").replace("'", "\\'")
        found = self.client.search("invoices/search", f"metadata['{REFERENCE_KEY}']:'{quoted}'")
        if not found:
            recent = {"created": {"gte": int(time.time()) - RECENT_SECONDS}}
            found = [
                invoice
                for invoice in self.client.list_all("invoices", recent)
                if (invoice.get("metadata") or {}).get(REFERENCE_KEY) == reference
            ]
        found = [
            invoice for invoice in found if (invoice.get("metadata") or {}).get(REFERENCE_KEY) == reference
        ]
        return _invoice_ref(found[0]) if found else None

    # --- writes ---------------------------------------------------------------------------------------
    def create(self, object_type: str, payload: dict[str, Any], *, idempotency_key: str) -> RemoteRef:
        """Draft, items, finalise: each step has its own key derived from `idempotency_key`, so running
        the whole create again (after a crash or a lost answer) replays the steps that happened."""
        self._require(object_type, "create")
        invoice = self.client.post(
            "invoices", payload["invoice"], idempotency_key=f"{idempotency_key}:invoice"
        )
        customer = expandable_id(invoice.get("customer"))
        for index, item in enumerate(payload.get("items", ())):
            self.client.post(
                "invoiceitems",
                {"customer": customer, "invoice": invoice["id"], **item},
                idempotency_key=f"{idempotency_key}:item:{index}",
            )
        if payload.get("finalize"):
            invoice = self.client.post(
                f"invoices/{invoice['id']}/finalize",
                {"auto_advance": False},
                idempotency_key=f"{idempotency_key}:finalize",
            )
        else:
            invoice = self.client.get(f"invoices/{invoice['id']}")
        return _invoice_ref(invoice)

    def void(
        self, object_type: str, external_id: str, *, remote_version: str, idempotency_key: str
    ) -> RemoteRef:
        """Void an open invoice (a draft cannot be voided at Stripe: it is deleted). Stripe keeps no
        version, so `remote_version` is compared with the invoice read just before."""
        self._require(object_type, "void")
        invoice = self.client.get(f"invoices/{external_id}")
        if invoice.get("status") == "void":
            return _invoice_ref(invoice)
        if remote_version and invoice_version(invoice) != remote_version:
            raise ConflictError(
                f"invoice {external_id} changed at Stripe: "
                f"{invoice_version(invoice)}, expected {remote_version}"
            )
        if invoice.get("status") == "draft":
            # a repeat after a lost answer finds it gone: the first one deleted it
            with contextlib.suppress(NotFoundError):
                self.client.delete(f"invoices/{external_id}")
            return RemoteRef(external_id=external_id, status="deleted", raw=invoice)
        voided = self.client.post(f"invoices/{external_id}/void", {}, idempotency_key=idempotency_key)
        return _invoice_ref(voided)

    def record_payment(
        self, payment: PaymentRecord, context: PushContext, *, idempotency_key: str
    ) -> RemoteRef:
        """Mark each allocated invoice paid out of band (money collected outside Stripe). Stripe can only
        mark a whole invoice paid that way, so an allocation must equal what the invoice has left."""
        if not payment.allocations:
            raise ValidationError("the payment is not allocated to any invoice", field="allocations")
        paid = []
        for index, allocation in enumerate(payment.allocations):
            invoice_id = context.invoice_ids.get(allocation.invoice_number) or allocation.invoice_external_id
            field = f"allocations[{index}]"
            if not invoice_id:
                raise ValidationError(
                    f"invoice {allocation.invoice_number} has no Stripe id",
                    field=f"{field}.invoice_number",
                    value=allocation.invoice_number,
                )
            invoice = self.client.get(f"invoices/{invoice_id}")
            if invoice.get("status") == "paid":  # already (an earlier run, or paid at Stripe)
                paid.append(invoice)
                continue
            if invoice.get("status") not in ("open", "uncollectible"):
                raise ValidationError(
                    f"invoice {invoice_id} is {invoice.get('status')}: only an open invoice can be paid",
                    field=f"{field}.invoice_number",
                    value=allocation.invoice_number,
                )
            currency = currency_code(invoice.get("currency"))
            if currency != payment.currency:
                raise ValidationError(
                    f"invoice {invoice_id} is in {currency}, the payment in {payment.currency}",
                    field="currency",
                    value=payment.currency,
                )
            remaining = from_minor_units(invoice.get("amount_remaining"), currency, field="amount_remaining")
            if allocation.amount != remaining:
                raise ValidationError(
                    f"Stripe marks a whole invoice paid out of band: invoice {invoice_id} has {remaining} "
                    f"{currency} left, the allocation is {allocation.amount}",
                    field=f"{field}.amount",
                    value=str(allocation.amount),
                )
            paid.append(
                self.client.post(
                    f"invoices/{invoice_id}/pay",
                    {"paid_out_of_band": True},
                    idempotency_key=f"{idempotency_key}:{invoice_id}",
                )
            )
        return RemoteRef(
            external_id=",".join(invoice["id"] for invoice in paid),
            number=",".join(invoice.get("number") or "" for invoice in paid),
            status="paid",
            raw=paid,
        )

    # --- webhooks -------------------------------------------------------------------------------------
    def webhook_account(self) -> str | None:
        """A Connect endpoint receives its connected accounts' events, each naming its `account`: a
        connection reading one connected account (option `stripe_account`) takes only that account's."""
        account = (self.connection.options or {}).get("stripe_account")
        return str(account) if account else None

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookResult:
        """`Stripe-Signature: t=...,v1=...[,v1=...]`: accept when any v1 equals hex(HMAC-SHA256(endpoint
        secret, "{t}.{raw body}")) and t is within 300 s of now (either way)."""
        secret = str((self.connection.credentials or {}).get("webhook_secret") or "")
        if not secret:
            raise WebhookError("no webhook signing secret (webhook_secret) on this connection", status=500)
        header = next((value for name, value in headers.items() if name.lower() == "stripe-signature"), "")
        if not header:
            raise WebhookError("no Stripe-Signature header", status=400)
        timestamp, signatures = _signature_parts(header)
        expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
            raise WebhookError("no v1 signature matches the body", status=400)
        if abs(time.time() - timestamp) > SIGNATURE_TOLERANCE:
            raise WebhookError(f"signature timestamp {timestamp} is outside the 300 s tolerance", status=400)
        try:
            event = json.loads(body)
            obj = event["data"]["object"]
            event_id = str(event["id"])
        except (ValueError, KeyError, TypeError):
            raise WebhookError("the body is not a Stripe event", status=400) from None
        if not isinstance(obj, Mapping):
            raise WebhookError("the event's data.object is not an object", status=400)
        kind = str(obj.get("object") or "")
        return WebhookResult(
            events=[
                WebhookEvent(
                    event_id=event_id,
                    object_type=OBJECT_TYPES.get(kind, kind),
                    external_id=str(obj.get("id") or ""),
                    action=str(event.get("type") or "").rpartition(".")[2],
                    occurred_at=_when(event.get("created")),
                    account=str(event.get("account") or ""),
                )
            ]
        )

    # --- internals --------------------------------------------------------------------------------------
    def _require(self, object_type: str, operation: str) -> None:
        if not self.supports(object_type, operation):
            raise ValidationError(
                f"Stripe does not {operation} {object_type}", field="object", value=object_type
            )

    def _get(self, object_type: str, external_id: str) -> dict[str, Any]:
        if object_type == "payment":
            prefix = next((p for p in PAYMENT_PATHS if external_id.startswith(p)), "")
            if not prefix:
                raise NotFoundError(f"{external_id!r} is not a Stripe charge, refund or payment id")
            path, expand = PAYMENT_PATHS[prefix]
            return self.client.get(f"{path}/{external_id}", {"expand": expand})
        path = {
            "invoice": "invoices",
            "credit_note": "credit_notes",
            "payout": "payouts",
            "customer": "customers",
        }
        return self.client.get(f"{path[object_type]}/{external_id}")

    def _changes_from_events(self, object_type: str, events: list[dict[str, Any]]) -> list[Change]:
        newest: dict[str, dict[str, Any]] = {}
        for event in events:  # newest first: the first event of an object is its latest state
            obj = (event.get("data") or {}).get("object") or {}
            newest.setdefault(str(obj.get("id") or event.get("id")), event)
        changes = []
        for external_id, event in newest.items():
            raw = event["data"]["object"]
            updated_at = _when(event.get("created"))
            if str(event.get("type")).endswith(".deleted"):
                changes.append(Change(object_type, external_id, deleted=True, updated_at=updated_at, raw=raw))
                continue
            if object_type in ("payment", "payout"):
                try:
                    raw = self._get(object_type, external_id)
                except NotFoundError:
                    changes.append(Change(object_type, external_id, deleted=True, updated_at=updated_at))
                    continue
            changes.append(self._change(object_type, raw, updated_at=updated_at))
        return changes

    def _change(self, object_type: str, raw: dict[str, Any], *, updated_at: datetime | None = None) -> Change:
        external_id = str(raw.get("id") or "")
        if raw.get("deleted") is True:
            return Change(object_type, external_id, deleted=True, updated_at=updated_at, raw=raw)
        try:
            if object_type == "payment" and raw.get("object") in ("charge", "payment_intent"):
                record = parse_payment(raw, invoice_payments=self._invoice_payments(raw))
            elif object_type == "payout":
                transactions = list(self.client.list_all("balance_transactions", {"payout": external_id}))
                record = parse_payout(raw, transactions=transactions)
            else:
                record = self.parse(object_type, raw)
        except ValidationError as exc:
            problem = RecordProblem(
                key=str(raw.get("number") or external_id),
                field=exc.field,
                raw="" if exc.value is None else str(exc.value)[:200],
                message=str(exc),
            )
            return Change(object_type, external_id, updated_at=updated_at, problem=problem, raw=raw)
        version = invoice_version(raw) if object_type == "invoice" else ""
        return Change(
            object_type, external_id, record, remote_version=version, updated_at=updated_at, raw=raw
        )

    def _invoice_payments(self, raw: dict[str, Any]) -> list[dict[str, Any]]:
        """The invoice_payments of a charge's PaymentIntent: since the 2025-03-31 API a charge no longer
        names its invoice, and invoice_payments can be filtered by PaymentIntent only."""
        intent = expandable_id(raw.get("payment_intent")) if raw.get("object") == "charge" else raw.get("id")
        if not intent:
            return []
        params = {"payment": {"type": "payment_intent", "payment_intent": intent}, "expand": ["data.invoice"]}
        return list(self.client.list_all("invoice_payments", params))


# --- parsing (pure) -------------------------------------------------------------------------------------
def parse_invoice(raw: Mapping[str, Any]) -> InvoiceRecord:
    _expect(raw, "invoice")
    currency = currency_code(raw.get("currency"))
    raw_lines = _list_data(raw.get("lines"), "lines")
    rates = line_tax_rates(raw, raw_lines)
    lines = tuple(
        _line(item, currency, index, f"lines.data[{index}]", rates[index])
        for index, item in enumerate(raw_lines)
    )
    total = _minor(raw, "total", currency)
    tax_total = _tax_sum(raw, ("total_taxes", "total_tax_amounts"), currency, legacy_key="tax")
    amount_paid = _minor(raw, "amount_paid", currency)
    status = _text(raw.get("status"))
    statuses = {"draft": "draft", "open": "open", "uncollectible": "open", "paid": "paid", "void": "void"}
    if status not in statuses:
        raise ValidationError(
            f"invoice status {raw.get('status')!r} is not a Stripe status",
            field="status",
            value=raw.get("status"),
        )
    mapped = statuses[status]
    if mapped == "open" and amount_paid > 0:
        mapped = "partially_paid"
    memo = str(raw.get("description") or "")
    if status == "uncollectible":
        memo = "; ".join(part for part in (memo, "marked uncollectible at Stripe") if part)
    transitions = _mapping(raw.get("status_transitions"))
    issued = raw.get("effective_at") or transitions.get("finalized_at") or raw.get("created")
    return InvoiceRecord(
        external_id=str(raw.get("id") or ""),
        number=str(raw.get("number") or raw.get("id") or ""),
        customer=_invoice_customer(raw),
        issue_date=_date(issued, "effective_at"),
        due_date=_date(raw["due_date"], "due_date") if raw.get("due_date") else None,
        currency=currency,
        status=mapped,
        lines=lines,
        subtotal=total - tax_total,
        tax_total=tax_total,
        total=total,
        amount_paid=amount_paid,
        amount_due=_minor(raw, "amount_remaining", currency),
        memo=memo,
        raw=raw,
    )


def parse_payment(
    raw: Mapping[str, Any], *, invoice_payments: Sequence[Mapping[str, Any]] | None = None
) -> PaymentRecord:
    kind = raw.get("object")
    if kind not in ("charge", "refund", "invoice_payment", "payment_intent"):
        raise ValidationError(f"a Stripe {kind!r} is not a payment", field="object", value=kind)
    currency = currency_code(raw.get("currency"))
    allocations = tuple(
        _allocation(item, currency, f"invoice_payments[{index}]")
        for index, item in enumerate(invoice_payments or ())
        if item.get("status") != "canceled"
    )
    common = {
        "external_id": str(raw.get("id") or ""),
        "currency": currency,
        "transaction_date": _date(raw.get("created"), "created"),
        "raw": raw,
    }
    if kind == "charge":
        captured = raw.get("captured", True)
        amount_key = "amount_captured" if captured and raw.get("amount_captured") else "amount"
        status = {"succeeded": "completed", "pending": "pending", "failed": "failed"}.get(
            _text(raw.get("status"))
        )
        if status is None:
            raise ValidationError("unknown charge status", field="status", value=raw.get("status"))
        fee, settlement = _fee(raw.get("balance_transaction"), currency)
        details = _mapping(raw.get("payment_method_details"))
        return PaymentRecord(
            **common,
            reference=expandable_id(raw.get("payment_intent")) or str(raw.get("id") or ""),
            customer=_payer(raw),
            amount=_minor(raw, amount_key, currency),
            allocations=allocations,
            method=str(details.get("type") or ""),
            status="pending" if status == "completed" and not captured else status,
            processor_transaction_id=str(raw.get("id") or ""),
            fee=fee,
            memo="; ".join(part for part in (str(raw.get("description") or ""), settlement) if part),
        )
    if kind == "refund":
        statuses = {"succeeded": "completed", "pending": "pending", "requires_action": "pending"}
        statuses.update({"failed": "failed", "canceled": "void"})
        status = statuses.get(_text(raw.get("status")))
        if status is None:
            raise ValidationError("unknown refund status", field="status", value=raw.get("status"))
        fee, settlement = _fee(raw.get("balance_transaction"), currency)
        charge = expandable_id(raw.get("charge")) or expandable_id(raw.get("payment_intent"))
        reason = f" ({raw['reason']})" if raw.get("reason") else ""
        return PaymentRecord(
            **common,
            reference=charge or str(raw.get("id") or ""),
            customer=None,
            amount=-_minor(raw, "amount", currency),
            method="refund",
            status=status,
            processor_transaction_id=str(raw.get("id") or ""),
            fee=fee,
            memo="; ".join(part for part in (f"refund of {charge}{reason}", settlement) if part),
        )
    if kind == "invoice_payment":
        payment = raw.get("payment") if isinstance(raw.get("payment"), Mapping) else {}
        processor = payment.get(str(payment.get("type")))
        charge = processor.get("latest_charge") if isinstance(processor, Mapping) else None
        if payment.get("type") == "charge":
            charge = processor
        fee, settlement = _fee(
            charge.get("balance_transaction") if isinstance(charge, Mapping) else None, currency
        )
        status = {"paid": "completed", "open": "pending", "canceled": "void"}.get(_text(raw.get("status")))
        if status is None:
            raise ValidationError("unknown invoice payment status", field="status", value=raw.get("status"))
        paid_at = _mapping(raw.get("status_transitions")).get("paid_at")
        return PaymentRecord(
            **{
                **common,
                "transaction_date": _date(paid_at or raw.get("created"), "status_transitions.paid_at"),
            },
            reference=expandable_id(processor) or str(raw.get("id") or ""),
            customer=None,
            amount=_allocation(raw, currency, "").amount,
            allocations=(_allocation(raw, currency, ""),),
            status=status,
            processor_transaction_id=expandable_id(charge) or expandable_id(processor),
            fee=fee,
            memo=settlement,
        )
    statuses = {"succeeded": "completed", "canceled": "void"}
    status = statuses.get(_text(raw.get("status")), "pending")
    charge = raw.get("latest_charge")
    fee, settlement = _fee(
        charge.get("balance_transaction") if isinstance(charge, Mapping) else None, currency
    )
    return PaymentRecord(
        **common,
        reference=str(raw.get("id") or ""),
        customer=None,
        amount=_minor(raw, "amount_received" if status == "completed" else "amount", currency),
        allocations=allocations,
        status=status,
        processor_transaction_id=expandable_id(charge) or str(raw.get("id") or ""),
        fee=fee,
        memo="; ".join(part for part in (str(raw.get("description") or ""), settlement) if part),
    )


def parse_credit_note(raw: Mapping[str, Any]) -> CreditNoteRecord:
    _expect(raw, "credit_note")
    currency = currency_code(raw.get("currency"))
    raw_lines = _list_data(raw.get("lines"), "lines")
    rates = line_tax_rates(raw, raw_lines)
    lines = tuple(
        _line(item, currency, index, f"lines.data[{index}]", rates[index])
        for index, item in enumerate(raw_lines)
    )
    total = _minor(raw, "total", currency)
    tax_total = _tax_sum(raw, ("total_taxes", "tax_amounts"), currency)
    if raw.get("pre_payment_amount") is not None or raw.get("post_payment_amount") is not None:
        pre = _minor(raw, "pre_payment_amount", currency, default=0)
        post = _minor(raw, "post_payment_amount", currency, default=0)
    else:  # before 2025 the type said which part it was
        pre, post = (total, total * 0) if raw.get("type") == "pre_payment" else (total * 0, total)
    refunded = sum(
        (
            _minor(item, "amount_refunded", currency, field=f"refunds[{index}].amount_refunded")
            for index, item in enumerate(array_field(raw, "refunds"))
            if isinstance(item, Mapping)
        ),
        Decimal(0),
    )
    out_of_band = _minor(raw, "out_of_band_amount", currency, default=0)
    remaining = max(post - refunded - out_of_band, total * 0)
    if raw.get("status") == "void":
        status = "void"
    elif raw.get("status") == "issued":
        status = "applied" if remaining == 0 else "open" if remaining == total else "partially_applied"
    else:
        raise ValidationError("unknown credit note status", field="status", value=raw.get("status"))
    invoice = raw.get("invoice")
    issued = _date(raw.get("effective_at") or raw.get("created"), "effective_at")
    allocations = ()
    if pre > 0 and invoice:
        number = str(invoice.get("number") or "") if isinstance(invoice, Mapping) else ""
        allocations = (AllocationRecord(number, pre, issued, invoice_external_id=expandable_id(invoice)),)
    return CreditNoteRecord(
        external_id=str(raw.get("id") or ""),
        number=str(raw.get("number") or raw.get("id") or ""),
        customer=_customer_ref(raw.get("customer")),
        issue_date=issued,
        currency=currency,
        status=status,
        lines=lines,
        subtotal=total - tax_total,
        tax_total=tax_total,
        total=total,
        remaining_credit=remaining if status != "void" else total * 0,
        original_invoice_number=str(invoice.get("number") or "") if isinstance(invoice, Mapping) else "",
        allocations=allocations,
        memo=str(raw.get("memo") or raw.get("reason") or ""),
        raw=raw,
    )


def parse_payout(raw: Mapping[str, Any], *, transactions: Sequence[Mapping[str, Any]] = ()) -> PayoutRecord:
    _expect(raw, "payout")
    currency = currency_code(raw.get("currency"))
    lines = []
    for index, txn in enumerate(transactions):
        field = f"balance_transactions[{index}]"
        txn_currency = currency_code(txn.get("currency"), field=f"{field}.currency")
        lines.append(
            PayoutLineRecord(
                external_id=str(txn.get("id") or ""),
                kind=str(txn.get("type") or ""),
                source_id=expandable_id(txn.get("source")),
                amount=_minor(txn, "amount", txn_currency, field=f"{field}.amount"),
                fee=_minor(txn, "fee", txn_currency, field=f"{field}.fee"),
                net=_minor(txn, "net", txn_currency, field=f"{field}.net"),
                description=str(txn.get("description") or ""),
            )
        )
    return PayoutRecord(
        external_id=str(raw.get("id") or ""),
        currency=currency,
        amount=_minor(raw, "amount", currency),
        arrival_date=_date(raw["arrival_date"], "arrival_date") if raw.get("arrival_date") else None,
        status=str(raw.get("status") or ""),
        lines=tuple(lines),
        raw=raw,
    )


def parse_customer(raw: Mapping[str, Any]) -> CustomerRecord:
    _expect(raw, "customer")
    return CustomerRecord(
        name=str(raw.get("name") or raw.get("email") or raw.get("id") or ""),
        email=str(raw.get("email") or ""),
        external_id=str(raw.get("id") or ""),
        currency=currency_code(raw["currency"]) if raw.get("currency") else "",
    )


def invoice_version(raw: Mapping[str, Any]) -> str:
    """Stripe keeps no version: what a write must not overlook (state and amounts) stands in for one."""
    return ".".join(str(raw.get(key)) for key in ("status", "total", "amount_paid", "amount_remaining"))


# --- small pieces ---------------------------------------------------------------------------------------
def _render_line(line: LineRecord, index: int, currency: str, mapped: Mapping[str, str]) -> dict[str, Any]:
    field = f"lines[{index}]"
    item: dict[str, Any] = {"currency": currency.lower(), "description": line.description}
    subtotal = to_minor_units(line.subtotal, currency, field=f"{field}.subtotal")
    unit = line.unit_price.scaleb(currency_exponent(currency))
    whole = line.quantity == line.quantity.to_integral_value() and line.quantity > 0
    if whole and (unit * line.quantity).quantize(Decimal(1)) == subtotal:
        item["quantity"] = int(line.quantity)
        item["unit_amount_decimal"] = format(unit.normalize(), "f")
    else:  # Stripe's quantity is a whole number: send the line's amount, the quantity in words
        item["amount"] = subtotal
        item["description"] = (
            f"{line.description} ({format(line.quantity.normalize(), 'f')} x {line.unit_price})"
        )
    if mapped.get("tax_code"):
        item["tax_rates"] = [mapped["tax_code"]]
    elif line.tax_amount:
        raise ValidationError(
            f"line {index + 1} has tax {line.tax_amount} but no Stripe tax rate (txr_...) is mapped",
            field=f"{field}.tax_code",
            value=None,
        )
    return item


def _line(raw: Any, currency: str, index: int, field: str, tax_rate: Decimal | None) -> LineRecord:
    if not isinstance(raw, Mapping):
        raise ValidationError("a line must be an object", field=field, value=raw)
    amount = _minor(raw, "amount", currency, field=f"{field}.amount")
    quantity_raw = raw.get("quantity_decimal") or raw.get("quantity")
    quantity = (
        decimal_value(quantity_raw, field=f"{field}.quantity") if quantity_raw is not None else Decimal(1)
    )
    discounts = sum(
        (
            _minor(item, "amount", currency, field=f"{field}.discount_amounts")
            for item in array_field(raw, "discount_amounts", field)
            if isinstance(item, Mapping)
        ),
        Decimal(0),
    )
    if raw.get("discount_amount"):  # credit note lines
        discounts = _minor(raw, "discount_amount", currency, field=f"{field}.discount_amount")
    taxes, inclusive = _line_taxes(raw, currency, field)
    subtotal = amount - discounts - inclusive
    pricing = raw.get("pricing") if isinstance(raw.get("pricing"), Mapping) else {}
    unit_raw = pricing.get("unit_amount_decimal") or raw.get("unit_amount_decimal") or raw.get("unit_amount")
    exponent = currency_exponent(currency)
    if unit_raw is not None:
        unit = price(
            decimal_value(unit_raw, field=f"{field}.unit_amount_decimal").scaleb(-exponent),
            currency,
            field=f"{field}.unit_amount_decimal",
        )
    elif quantity:
        unit = price((amount / quantity).quantize(Decimal(1).scaleb(-exponent - 4)), currency, field=field)
    else:
        unit = amount
    details = _mapping(pricing.get("price_details"))
    return LineRecord(
        description=str(raw.get("description") or ""),
        quantity=quantity,
        unit_price=unit,
        subtotal=subtotal,
        tax_amount=taxes,
        total=subtotal + taxes,
        tax_rate=tax_rate,
        item_code=expandable_id(details.get("product")) or expandable_id(details.get("price"))
        if isinstance(details, Mapping)
        else "",
        line_number=index + 1,
    )


def _line_taxes(raw: Mapping[str, Any], currency: str, field: str) -> tuple[Decimal, Decimal]:
    """(all tax, the part already inside `amount`) of a line: `taxes` now, `tax_amounts` before 2025."""
    total = inclusive = _zero(currency)
    for key in ("taxes", "tax_amounts"):
        entries = array_field(raw, key, field)
        if not entries:
            continue
        for index, tax in enumerate(entries):
            value = _minor(tax, "amount", currency, field=f"{field}.{key}[{index}].amount")
            total += value
            if tax.get("tax_behavior") == "inclusive" or tax.get("inclusive") is True:
                inclusive += value
        break
    return total, inclusive


def _tax_sum(raw: Mapping[str, Any], keys: tuple[str, ...], currency: str, legacy_key: str = "") -> Decimal:
    for key in keys:
        entries = array_field(raw, key)
        if entries:
            return sum(
                (
                    _minor(tax, "amount", currency, field=f"{key}[{index}].amount")
                    for index, tax in enumerate(entries)
                ),
                Decimal(0),
            )
    if legacy_key and raw.get(legacy_key) is not None:
        return _minor(raw, legacy_key, currency)
    return _zero(currency)


def _allocation(raw: Mapping[str, Any], currency: str, field: str) -> AllocationRecord:
    key = "amount_paid" if raw.get("amount_paid") is not None else "amount_requested"
    invoice = raw.get("invoice")
    paid_at = _mapping(raw.get("status_transitions")).get("paid_at")
    return AllocationRecord(
        invoice_number=str(invoice.get("number") or "") if isinstance(invoice, Mapping) else "",
        amount=_minor(raw, key, currency, field=f"{field}.{key}".lstrip(".")),
        allocated_on=_date(paid_at, "status_transitions.paid_at") if paid_at else None,
        invoice_external_id=expandable_id(invoice),
    )


def _fee(txn: Any, currency: str) -> tuple[Decimal | None, str]:
    """(fee in the payment's currency, a note on settlement) from an expanded balance transaction."""
    if not isinstance(txn, Mapping):
        return None, ""
    settled = currency_code(txn.get("currency"), field="balance_transaction.currency")
    fee = _minor(txn, "fee", settled, field="balance_transaction.fee")
    net = _minor(txn, "net", settled, field="balance_transaction.net")
    if settled != currency:  # the fee is in the settlement currency: keep it out of a payment in another
        return None, f"settled as {net} {settled} net of {fee} {settled} fees ({expandable_id(txn)})"
    return fee, f"net {net} {settled} ({expandable_id(txn)})"


def _invoice_customer(raw: Mapping[str, Any]) -> CustomerRecord:
    customer = raw.get("customer")
    expanded = customer if isinstance(customer, Mapping) else {}
    tax_ids = [
        item.get("value") for item in array_field(raw, "customer_tax_ids") if isinstance(item, Mapping)
    ]
    email = str(raw.get("customer_email") or expanded.get("email") or "")
    return CustomerRecord(
        name=str(raw.get("customer_name") or expanded.get("name") or email or expandable_id(customer)),
        email=email,
        tax_number=str(tax_ids[0] or "") if tax_ids else "",
        external_id=expandable_id(customer),
    )


def _customer_ref(customer: Any) -> CustomerRecord:
    expanded = customer if isinstance(customer, Mapping) else {}
    email = str(expanded.get("email") or "")
    return CustomerRecord(
        name=str(expanded.get("name") or email or expandable_id(customer)),
        email=email,
        external_id=expandable_id(customer),
    )


def _payer(raw: Mapping[str, Any]) -> CustomerRecord | None:
    billing = _mapping(raw.get("billing_details"))
    customer = raw.get("customer")
    name = billing.get("name") or (customer.get("name") if isinstance(customer, Mapping) else None)
    email = billing.get("email") or raw.get("receipt_email") or ""
    if not (name or email or customer):
        return None
    return CustomerRecord(
        name=str(name or email or expandable_id(customer)),
        email=str(email),
        external_id=expandable_id(customer),
    )


def _invoice_ref(invoice: Mapping[str, Any]) -> RemoteRef:
    return RemoteRef(
        external_id=str(invoice["id"]),
        number=str(invoice.get("number") or ""),
        remote_version=invoice_version(invoice),
        status=str(invoice.get("status") or ""),
        raw=invoice,
    )


def _signature_parts(header: str) -> tuple[int, list[str]]:
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise WebhookError("Stripe-Signature has a malformed timestamp", status=400) from None
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookError("Stripe-Signature needs a timestamp and a v1 signature", status=400)
    return timestamp, signatures


def _expect(raw: Mapping[str, Any], kind: str) -> None:
    if raw.get("object") != kind:
        raise ValidationError(
            f"expected a Stripe {kind}, got {raw.get('object')!r}", field="object", value=raw.get("object")
        )


def _list_data(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Mapping) and isinstance(value.get("data"), list):
        return value["data"]
    raise ValidationError(f"{field} is not a Stripe list", field=field, value=value)


def _minor(
    raw: Mapping[str, Any], key: str, currency: str, *, field: str = "", default: int | None = None
) -> Decimal:
    value = raw.get(key) if isinstance(raw, Mapping) else None
    if value is None and default is not None:
        value = default
    return from_minor_units(value, currency, field=field or key)


def _date(value: Any, field: str) -> date:
    when = _when(value)
    if when is None:
        raise ValidationError(f"{field} {value!r} is not a Unix timestamp", field=field, value=value)
    return when.date()


def _when(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _zero(currency: str) -> Decimal:
    return from_minor_units(0, currency, field="amount")


def _text(value: Any) -> str:
    """A string field as a string; any other JSON (a list, an object) as "", which no table knows."""
    return value if isinstance(value, str) else ""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
