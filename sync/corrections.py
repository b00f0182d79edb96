"""Corrections people agreed on (approved overrides), applied to canonical documents.

Sync owns the documents: reconciliation asks for these services and never writes a document itself. Each
one runs in one transaction with the document row locked, saves through `save()` so history keeps the
user and the reason, and bumps `row_version` so the next push sends the change to every destination.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django.db import models, transaction
from django.db.models import Max, Sum
from django.utils import timezone

from connectors.base import ValidationError
from connectors.models import Connection
from connectors.money import amount as money_amount
from connectors.money import currency_code, currency_exponent, decimal_value
from sync.models import (
    Binding,
    CreditAllocation,
    CreditNote,
    Invoice,
    ObjectType,
    Payment,
    PaymentAllocation,
    PushOperation,
    SyncJob,
    SyncProfile,
)

MODELS: dict[str, Any] = {
    ObjectType.INVOICE.value: Invoice,
    ObjectType.CREDIT_NOTE.value: CreditNote,
    ObjectType.PAYMENT.value: Payment,
}

# What a "set a field" override may change. Lines, customers and amounts paid come from the source
# systems; status changes are their own overrides (void, mark paid) so their meaning stays clear.
EDITABLE_FIELDS: dict[str, tuple[str, ...]] = {
    ObjectType.INVOICE.value: (
        "number",
        "issue_date",
        "due_date",
        "currency",
        "exchange_rate",
        "subtotal",
        "tax_total",
        "total",
        "memo",
    ),
    ObjectType.CREDIT_NOTE.value: (
        "number",
        "issue_date",
        "currency",
        "subtotal",
        "tax_total",
        "total",
        "remaining_credit",
        "memo",
    ),
    ObjectType.PAYMENT.value: (
        "reference",
        "transaction_date",
        "amount",
        "currency",
        "fee",
        "method",
        "processor_transaction_id",
        "payout_id",
        "memo",
    ),
}
MONEY_FIELDS = {"subtotal", "tax_total", "total", "remaining_credit", "amount", "fee"}
DATE_FIELDS = {"issue_date", "due_date", "transaction_date", "paid_on_date"}
# What a void or a "mark paid" changes (kept as "before", compared before applying; a revert works out
# new values from the amounts rather than copying these back).
STATUS_FIELDS = ("status", "amount_due", "paid_on_date")
GONE = {"void", "deleted"}
# Statuses that follow the amounts (an invoice's settlement, a credit note's use); others are set by hand.
SETTLING = {
    ObjectType.INVOICE.value: ("open", "partially_paid", "paid"),
    ObjectType.CREDIT_NOTE.value: ("open", "partially_applied", "applied"),
}
MAX_ID = 10**18 - 1  # below every backend's 64-bit integer: a larger id is refused, never an overflow
# Outbox states a push by hand makes ready again (an uncertain one is looked up before any create).
SEND_AGAIN = (PushOperation.State.FAILED, PushOperation.State.BLOCKED, PushOperation.State.UNCERTAIN)
HISTORY_REASON_LENGTH = 100  # django-simple-history's history_change_reason column


class CorrectionError(Exception):
    """A correction that cannot be applied; the message names the field and the value."""

    def __init__(self, message: str, *, field: str = "", value: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


# --- reading ------------------------------------------------------------------------------------------
def document_get(object_type: str, object_id: int | None, *, lock: bool = False) -> Any:
    model = MODELS.get(object_type)
    if model is None:
        raise CorrectionError(
            f"object_type {object_type!r} cannot be corrected here (one of: {', '.join(MODELS)})",
            field="object_type",
            value=object_type,
        )
    queryset = model.objects.select_for_update() if lock else model.objects
    document = queryset.filter(pk=object_id).first() if object_id is not None else None
    if document is None:
        raise CorrectionError(
            f"{object_type} {object_id!r} does not exist", field="object_id", value=object_id
        )
    return document


def id_parse(raw: Any, *, field: str) -> int:
    """A row id from JSON or a form (an integer, or a string of digits); CorrectionError naming the field."""
    text = raw.strip() if isinstance(raw, str) else raw
    if isinstance(text, str) and text.isascii() and text.isdigit():
        text = int(text)
    if isinstance(text, bool) or not isinstance(text, int) or not 1 <= text <= MAX_ID:
        raise CorrectionError(
            f"{field} {raw!r} is not an id (a whole number from 1 to {MAX_ID})", field=field, value=raw
        )
    return text


def json_value(value: Any) -> Any:
    """A model value as JSON keeps it exactly: Decimals and dates as strings."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def field_allowed(object_type: str, field_name: str) -> None:
    """CorrectionError unless an override may set this field of this kind of document."""
    allowed = EDITABLE_FIELDS.get(object_type)
    if allowed is None:
        raise CorrectionError(
            f"object_type {object_type!r} has no fields an override may set "
            f"(only {', '.join(EDITABLE_FIELDS)})",
            field="object_type",
            value=object_type,
        )
    if field_name not in allowed:
        raise CorrectionError(
            f"field {field_name!r} of a {object_type.replace('_', ' ')} cannot be set by an override "
            f"(one of: {', '.join(allowed)})",
            field="field_name",
            value=field_name,
        )


def field_value_parse(object_type: str, field_name: str, raw: Any, *, currency: str) -> Any:
    """`raw` as the value the document stores; CorrectionError naming the field and the value."""
    if field_name not in STATUS_FIELDS:
        field_allowed(object_type, field_name)
    model = MODELS[object_type]
    model_field = model._meta.get_field(field_name)
    try:
        if field_name == "currency":
            return currency_code(raw, field=field_name)
        if field_name in MONEY_FIELDS:
            if raw in (None, "") and model_field.null:
                return None
            value = money_amount(raw, currency, field=field_name)
            if value < 0:
                raise CorrectionError(f"{field_name} {raw!r} is negative", field=field_name, value=raw)
            return value
        if field_name == "exchange_rate":
            if raw in (None, ""):
                return None
            rate = _stored_decimal(decimal_value(raw, field=field_name), model_field, raw)
            if rate <= 0:
                raise CorrectionError(f"{field_name} {raw!r} is not positive", field=field_name, value=raw)
            return rate
        if field_name == "amount_due":
            return _stored_decimal(decimal_value(raw, field=field_name), model_field, raw)
        if field_name in DATE_FIELDS:
            if raw in (None, "") and model_field.null:
                return None
            try:
                return date.fromisoformat(str(raw).strip())
            except ValueError:
                raise CorrectionError(
                    f"{field_name} {raw!r} is not a date (YYYY-MM-DD)", field=field_name, value=raw
                ) from None
        if field_name == "status":
            choices = [value for value, _ in model_field.choices]
            if raw not in choices:
                raise CorrectionError(
                    f"status {raw!r} is not one of: {', '.join(choices)}", field=field_name, value=raw
                )
            return raw
    except ValidationError as exc:
        raise CorrectionError(str(exc), field=field_name, value=raw) from None
    text = "" if raw is None else str(raw).strip()
    if not text and not model_field.blank:
        raise CorrectionError(f"{field_name} cannot be empty", field=field_name, value=raw)
    if model_field.max_length and len(text) > model_field.max_length:
        raise CorrectionError(
            f"{field_name} {raw!r} is longer than {model_field.max_length} characters",
            field=field_name,
            value=raw,
        )
    return text


def _stored_decimal(value: Decimal, model_field: Any, raw: Any) -> Decimal:
    """`value` when the column holds it exactly; CorrectionError naming the field otherwise."""
    name, places = model_field.name, model_field.decimal_places
    whole = model_field.max_digits - places
    if abs(value) >= Decimal(10) ** whole:
        raise CorrectionError(
            f"{name} {raw!r} is too large (at most {whole} digits before the point)",
            field=name,
            value=raw,
        )
    if -int(value.normalize().as_tuple().exponent) > places:
        raise CorrectionError(f"{name} {raw!r} has more than {places} decimal places", field=name, value=raw)
    return value


def _money_fields(model: Any) -> list[str]:
    # amounts are the 4-place decimals; rates, quantities and unit prices keep more places
    return [
        field.name
        for field in model._meta.concrete_fields
        if isinstance(field, models.DecimalField) and field.decimal_places == 4
    ]


def currency_fit_error(document: Any, code: str) -> str:
    """Why the document's amounts cannot be in currency `code` ("" when they all fit its minor unit):
    the document's own amounts, its lines' and, for payments and credit notes, their allocations'."""
    exponent = currency_exponent(code)
    old_places = Decimal(1).scaleb(-currency_exponent(document.currency)) if document.currency else None

    def shown(value: Decimal) -> str:
        return format(value.quantize(old_places) if old_places is not None else value.normalize(), "f")

    def misfit(value: Decimal | None) -> bool:
        return value is not None and value != value.quantize(Decimal(1).scaleb(-exponent))

    problems = [
        f"{name} {shown(getattr(document, name))}"
        for name in _money_fields(type(document))
        if misfit(getattr(document, name))
    ]
    lines = getattr(document, "lines", None)
    if lines is not None:
        for line in lines.all():
            problems += [
                f"line {line.line_number} {name} {shown(getattr(line, name))}"
                for name in ("subtotal", "tax_amount", "total")
                if misfit(getattr(line, name))
            ]
    if isinstance(document, Payment | CreditNote):
        problems += [
            f"the allocation to invoice {allocation.invoice_id} {shown(allocation.amount)}"
            for allocation in document.allocations.all()
            if misfit(allocation.amount)
        ]
    if not problems:
        return ""
    listed = ", ".join(problems[:5]) + (f" and {len(problems) - 5} more" if len(problems) > 5 else "")
    return (
        f"currency {code} has {exponent} decimal places, but {listed} "
        f"{'has' if len(problems) == 1 else 'have'} more: correct the amounts first"
    )


def field_value_check(document: Any, field_name: str, parsed: Any) -> None:
    """CorrectionError when the parsed value cannot go on this document as it is now."""
    if field_name == "currency" and parsed != document.currency:
        problem = currency_fit_error(document, parsed)
        if problem:
            raise CorrectionError(problem, field="currency", value=parsed)


def field_read(object_type: str, object_id: int, field_name: str) -> Any:
    """The field's current value as JSON: what an override records as "before"."""
    document = document_get(object_type, object_id)
    field_allowed(object_type, field_name)
    return json_value(getattr(document, field_name))


def status_values(document: Any) -> dict[str, Any]:
    """What a void or a "mark paid" changes, as JSON: kept as "before" so a revert can restore it."""
    return {name: json_value(getattr(document, name)) for name in STATUS_FIELDS if hasattr(document, name)}


def invoice_settled(invoice: Invoice) -> Decimal:
    """What settles the invoice now: the larger of what its source reports paid and what the completed
    payments and live credit notes allocated to it add up to (some sources count credits as paid, some
    do not). Allocations in another currency are left out: they cannot be added up here."""
    payments = PaymentAllocation.objects.filter(
        invoice=invoice, payment__status=Payment.Status.COMPLETED, payment__currency=invoice.currency
    ).aggregate(total=Sum("amount"))["total"]
    credits = (
        CreditAllocation.objects.filter(invoice=invoice, credit_note__currency=invoice.currency)
        .exclude(credit_note__status__in=[*GONE, CreditNote.Status.DRAFT])
        .aggregate(total=Sum("amount"))["total"]
    )
    return max(invoice.amount_paid, (payments or Decimal(0)) + (credits or Decimal(0)))


def _last_settled_on(invoice: Invoice) -> date | None:
    return PaymentAllocation.objects.filter(
        invoice=invoice, payment__status=Payment.Status.COMPLETED
    ).aggregate(last=Max("allocated_on"))["last"]


def invoice_settlement(
    invoice: Invoice, *, draft: bool = False, paid_by_hand: bool = False
) -> dict[str, Any]:
    """Status, amount due and paid date as the invoice's total and what settles it now say.

    `draft`: it was a draft and stays one while nothing settles it; `paid_by_hand`: a hand settlement
    ("mark paid") still stands, so it is paid whatever the amounts."""
    settled = invoice_settled(invoice)
    due = max(invoice.total - settled, Decimal(0))
    if paid_by_hand or due <= 0:
        paid_on = _last_settled_on(invoice) or invoice.paid_on_date or timezone.localdate()
        return {"status": Invoice.Status.PAID, "amount_due": Decimal(0), "paid_on_date": paid_on}
    if draft and settled <= 0:
        status = Invoice.Status.DRAFT
    else:
        status = Invoice.Status.PARTIALLY_PAID if settled > 0 else Invoice.Status.OPEN
    return {"status": status, "amount_due": due, "paid_on_date": None}


def credit_note_usage(note: CreditNote, *, draft: bool = False) -> dict[str, Any]:
    """A credit note's status as its total and what was applied of it say."""
    allocated = CreditAllocation.objects.filter(credit_note=note).aggregate(total=Sum("amount"))["total"]
    applied = max(note.total - note.remaining_credit, allocated or Decimal(0))
    if draft and applied <= 0:
        return {"status": CreditNote.Status.DRAFT}
    if applied >= note.total:
        return {"status": CreditNote.Status.APPLIED}
    return {"status": CreditNote.Status.PARTIALLY_APPLIED if applied > 0 else CreditNote.Status.OPEN}


def status_restored(document: Any, *, before: dict[str, Any], paid_by_hand: bool = False) -> dict[str, Any]:
    """The values undoing a void or a "mark paid" gives the document now: worked out from its amounts
    (invoices, credit notes), never copied from `before` (the values when the correction was proposed),
    which payments since may have made wrong. A payment gets its status before back."""
    was = (before or {}).get("status")
    if isinstance(document, Invoice):
        return invoice_settlement(document, draft=was == Invoice.Status.DRAFT, paid_by_hand=paid_by_hand)
    if isinstance(document, CreditNote):
        return credit_note_usage(document, draft=was == CreditNote.Status.DRAFT)
    choices = [value for value, _ in type(document)._meta.get_field("status").choices]
    if was not in choices or was in GONE:
        raise CorrectionError(
            f"status {was!r} cannot be restored (one of: {', '.join(c for c in choices if c not in GONE)})",
            field="status",
            value=was,
        )
    return {"status": was}


def push_profiles(document: Any, object_type: str, *, destination_id: int | None = None) -> list[SyncProfile]:
    """The enabled profiles that send this document from its source to a destination."""
    profiles = SyncProfile.objects.filter(enabled=True, source_id=document.source_connection_id)
    if destination_id is not None:
        profiles = profiles.filter(destination_id=destination_id)
    return [profile for profile in profiles.order_by("pk") if object_type in (profile.object_types or [])]


# --- writing ------------------------------------------------------------------------------------------
def _save(document: Any, *, by: Any, reason: str) -> None:
    document.row_version += 1
    document._history_user = by
    document._change_reason = reason[:HISTORY_REASON_LENGTH]
    document.save()


@transaction.atomic
def document_field_set(
    *, object_type: str, object_id: int, field_name: str, value: Any, by: Any, reason: str
) -> tuple[Any, Any]:
    """Set one whitelisted field. Returns (before, after) as JSON."""
    field_allowed(object_type, field_name)
    document = document_get(object_type, object_id, lock=True)
    currency = value if field_name == "currency" else document.currency
    parsed = field_value_parse(object_type, field_name, value, currency=str(currency))
    field_value_check(document, field_name, parsed)
    before = json_value(getattr(document, field_name))
    setattr(document, field_name, parsed)
    if object_type == ObjectType.INVOICE and field_name == "total":
        # what is due, and so the status, follow the corrected total; what was paid stays what the
        # payments say. A draft, void or deleted invoice keeps its status.
        settlement = invoice_settlement(document)
        document.amount_due = settlement["amount_due"]
        if document.status in SETTLING[object_type]:
            document.status = settlement["status"]
            document.paid_on_date = settlement["paid_on_date"]
    _save(document, by=by, reason=reason)
    return before, json_value(parsed)


@transaction.atomic
def document_void(*, object_type: str, object_id: int, by: Any, reason: str) -> dict[str, Any]:
    """Void the canonical document; the next push voids every copy. Returns the values before."""
    document = document_get(object_type, object_id, lock=True)
    if document.status in GONE:
        raise CorrectionError(
            f"{object_type.replace('_', ' ')} {object_id} is already {document.status}",
            field="status",
            value=document.status,
        )
    before = status_values(document)
    document.status = "void"
    _save(document, by=by, reason=reason)
    return before


@transaction.atomic
def invoice_mark_paid(*, invoice_id: int, by: Any, reason: str, on: date | None = None) -> dict[str, Any]:
    """Settle an invoice by hand: status paid and nothing due. Payments from real systems are never
    touched; what was settled by hand (the amount due before) is returned with the values before."""
    invoice = document_get(ObjectType.INVOICE, invoice_id, lock=True)
    if invoice.status in (*GONE, Invoice.Status.PAID):
        raise CorrectionError(
            f"invoice {invoice.number} is {invoice.status}: it cannot be marked paid",
            field="status",
            value=invoice.status,
        )
    before = status_values(invoice)
    settled = invoice.amount_due
    invoice.status = Invoice.Status.PAID
    invoice.amount_due = Decimal(0)
    invoice.paid_on_date = invoice.paid_on_date or on or timezone.localdate()
    _save(invoice, by=by, reason=reason)
    return {"before": before, "settled_manually": json_value(settled)}


@transaction.atomic
def document_status_restore(
    *,
    object_type: str,
    object_id: int,
    left: str,
    before: dict[str, Any],
    by: Any,
    reason: str,
    paid_by_hand: bool = False,
) -> dict[str, Any]:
    """Undo a void or a "mark paid" that left the document in status `left`: status (and for invoices the
    amount due and paid date) as the document's amounts say now (`status_restored`). Refused when the
    status is no longer `left`: something newer replaced the correction. Returns what it wrote, as JSON."""
    document = document_get(object_type, object_id, lock=True)
    if document.status != left:
        raise CorrectionError(
            f"{object_type.replace('_', ' ')} {object_id} is now {document.status}, not {left}: it changed "
            "since the correction, so there is nothing to undo",
            field="status",
            value=document.status,
        )
    values = status_restored(document, before=before, paid_by_hand=paid_by_hand)
    for name, value in values.items():
        setattr(document, name, value)
    _save(document, by=by, reason=reason)
    return {name: json_value(value) for name, value in values.items()}


def _connection(connection_id: Any) -> Connection:
    connection = Connection.objects.filter(pk=id_parse(connection_id, field="connection")).first()
    if connection is None:
        raise CorrectionError(
            f"connection {connection_id!r} does not exist", field="connection", value=connection_id
        )
    return connection


def binding_conflict(*, connection_id: Any, object_type: str, object_id: int, external_id: str) -> str:
    """Why `external_id` cannot be bound to this document ("" when it can)."""
    other = (
        Binding.objects.filter(connection_id=connection_id, object_type=object_type, external_id=external_id)
        .exclude(object_id=object_id)
        .first()
    )
    if other is None:
        return ""
    return (
        f"external id {external_id!r} on {other.connection} is already bound to "
        f"{object_type.replace('_', ' ')} {other.object_id}"
    )


@transaction.atomic
def document_bind(
    *, object_type: str, object_id: int, connection_id: Any, external_id: str, by: Any, reason: str
) -> dict[str, Any]:
    """Force a match: this document is `external_id` on the connection. Refused when that external id
    belongs to another document. Returns the binding before ({"external_id": None} when there was none).

    The document counts as in step there (no create follows); operations planned but never sent to that
    connection are superseded."""
    document = document_get(object_type, object_id, lock=True)
    connection = _connection(connection_id)
    external_id = str(external_id or "").strip()
    if not external_id:
        raise CorrectionError("external_id cannot be empty", field="external_id", value=external_id)
    conflict = binding_conflict(
        connection_id=connection.pk, object_type=object_type, object_id=object_id, external_id=external_id
    )
    if conflict:
        raise CorrectionError(conflict, field="external_id", value=external_id)
    binding = (
        Binding.objects.select_for_update()
        .filter(connection=connection, object_type=object_type, object_id=object_id)
        .first()
    )
    before = {"connection": connection.pk, "external_id": binding.external_id if binding else None}
    if binding is None:
        Binding.objects.create(
            connection=connection,
            object_type=object_type,
            object_id=object_id,
            external_id=external_id,
            is_origin=connection.pk == document.source_connection_id,
            document_version=document.row_version,
        )
    else:
        binding.external_id = external_id
        binding.remote_version = ""
        binding.document_version = document.row_version
        binding.save(update_fields=["external_id", "remote_version", "document_version", "last_synced_at"])
    PushOperation.objects.filter(
        connection=connection,
        object_type=object_type,
        object_id=object_id,
        attempts=0,
        state__in=[PushOperation.State.PENDING, PushOperation.State.BLOCKED, PushOperation.State.FAILED],
    ).update(state=PushOperation.State.SUPERSEDED, error=f"matched by hand: {reason}"[:4000])
    return before


@transaction.atomic
def document_unbind(
    *, object_type: str, object_id: int, connection_id: Any, external_id: str, restore: str | None
) -> None:
    """Undo a forced match: remove the binding, or point it back at the external id it had before."""
    binding = (
        Binding.objects.select_for_update()
        .filter(connection_id=connection_id, object_type=object_type, object_id=object_id)
        .first()
    )
    if binding is None or binding.external_id != external_id:
        found = binding.external_id if binding else None
        raise CorrectionError(
            f"the binding on connection {connection_id} is now {found!r}, not {external_id!r}: "
            "it changed since the match, so it is left alone",
            field="external_id",
            value=found,
        )
    if not restore:
        binding.delete()
        return
    conflict = binding_conflict(
        connection_id=connection_id, object_type=object_type, object_id=object_id, external_id=restore
    )
    if conflict:
        raise CorrectionError(conflict, field="external_id", value=restore)
    binding.external_id = restore
    binding.save(update_fields=["external_id", "last_synced_at"])


@transaction.atomic
def document_push(
    *,
    object_type: str,
    object_id: int,
    by: Any,
    reason: str = "",
    force: bool = False,
    destination_id: int | None = None,
) -> list[SyncJob]:
    """Push one document now, through the outbox, to every destination a profile sends it to.

    Its failed, blocked and uncertain operations are made ready again (an uncertain one is still looked up
    before anything is created). With `force`, a document already in step is sent again as a new version
    (an update that overwrites the destination's copy). Running it twice sends nothing twice: the outbox
    keys the work by document version."""
    from sync import jobs
    from sync import push as pushing

    document = document_get(object_type, object_id, lock=True)
    profiles = push_profiles(document, object_type, destination_id=destination_id)
    if not profiles:
        where = f" to connection {destination_id}" if destination_id else ""
        raise CorrectionError(
            f"no enabled sync profile sends {object_type.replace('_', ' ')}s from "
            f"{document.source_connection or 'an unknown source'}{where}",
            field="object_type",
            value=object_type,
        )
    if force:
        in_step = Binding.objects.filter(
            connection_id__in=[p.destination_id for p in profiles],
            object_type=object_type,
            object_id=object_id,
            document_version__gte=document.row_version,
        ).exists()
        if in_step:
            _save(document, by=by, reason=reason or "sent again by hand")
    pushing.operations_reset(
        PushOperation.objects.filter(
            profile__in=profiles,
            object_type=object_type,
            object_id=object_id,
            document_version=document.row_version,
            state__in=SEND_AGAIN,
        )
    )
    return [
        jobs.job_enqueue(
            kind=SyncJob.Kind.PUSH,
            trigger=SyncJob.Trigger.MANUAL,
            profile=profile,
            params={"documents": [[object_type, object_id]]},
            user=by,
        )
        for profile in profiles
    ]


def document_repull(*, connection: Connection, object_type: str, external_id: str, by: Any) -> SyncJob:
    """Fetch one record from its source again (a pull job limited to it)."""
    from sync import jobs

    if not external_id:
        raise CorrectionError("external_id cannot be empty", field="external_id", value=external_id)
    return jobs.job_enqueue(
        kind=SyncJob.Kind.PULL,
        trigger=SyncJob.Trigger.MANUAL,
        connection=connection,
        params={"fetch": [[object_type, external_id]]},
        user=by,
    )
