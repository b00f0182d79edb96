"""Rows of a CSV file -> canonical records. Pure: no database, no I/O.

Rows are grouped by their document key (invoice, payment or credit note number); a document with any bad
row is rejected whole, with a `RecordProblem` that names the row, the column and the raw value. Nothing is
guessed: dates and decimal marks follow the declared options (see `parsing`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from connectors.base import (
    AllocationRecord,
    CreditNoteRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    PaymentRecord,
    RecordProblem,
)
from connectors.csv.parsing import (
    ParseError,
    money,
    normalise_currency,
    parse_amount,
    parse_date,
    parse_number,
    round_money,
)
from connectors.csv.reader import KEY_COLUMN, Row, Table

INVOICE_STATUSES = {"draft", "open", "paid", "void", "partially_paid"}
CREDIT_NOTE_STATUSES = {"draft", "open", "applied", "void"}
PAYMENT_STATUSES = {"pending", "completed", "failed", "void"}
ZERO = Decimal(0)


@dataclass(frozen=True)
class CsvOptions:
    date_order: str | None = None  # DMY, MDY, YMD; None accepts ISO and unambiguous dates only
    decimal_mark: str | None = None  # "." or ","; None reads "." unless a value can only be ","
    currency: str | None = None  # default currency, and what makes a symbol like "$" unambiguous


class RowError(Exception):
    def __init__(self, row: Row, column: str, message: str) -> None:
        super().__init__(message)
        self.row = row
        self.column = column
        self.raw = row.get(column) if column else ""
        self.message = message


class _Cells:
    """Typed access to one row's cells; every failure names the row, the column and the raw value."""

    def __init__(self, row: Row, options: CsvOptions) -> None:
        self.row = row
        self.options = options

    def fail(self, column: str, message: str) -> RowError:
        return RowError(self.row, column, message)

    def text(self, column: str, *, required: bool = False, max_length: int = 255) -> str:
        value = self.row.get(column)
        if required and not value:
            raise self.fail(column, f"{column} is required but empty")
        if len(value) > max_length:
            raise self.fail(column, f"{column} is longer than {max_length} characters")
        return value

    def date(self, column: str, *, required: bool = False) -> date | None:
        raw = self.text(column, required=required)
        if not raw:
            return None
        try:
            return parse_date(raw, field=column, order=self.options.date_order)
        except ParseError as exc:
            raise self.fail(column, str(exc)) from None

    def number(self, column: str, *, required: bool = False, percent: bool = False) -> Decimal | None:
        raw = self.text(column, required=required)
        if not raw:
            return None
        try:
            return parse_number(
                raw, field=column, decimal_mark=self.options.decimal_mark, allow_percent=percent
            )
        except ParseError as exc:
            raise self.fail(column, str(exc)) from None

    def amount(
        self, column: str, currency: str | None, *, required: bool = False
    ) -> tuple[Decimal, str | None]:
        raw = self.text(column, required=required)
        if not raw:
            return ZERO, None
        try:
            parsed = parse_amount(
                raw, field=column, decimal_mark=self.options.decimal_mark, currency=currency
            )
        except ParseError as exc:
            raise self.fail(column, str(exc)) from None
        return parsed.value, parsed.currency

    def money(self, column: str, currency: str, *, required: bool = False) -> Decimal | None:
        raw = self.text(column, required=required)
        if not raw:
            return None
        value, _ = self.amount(column, currency)
        try:
            return money(value, currency, field=column, raw=raw)
        except ParseError as exc:
            raise self.fail(column, str(exc)) from None

    def currency(self, money_columns: tuple[str, ...]) -> str:
        """The row's currency: its column, else --currency, else a code stated in its amounts."""
        raw = self.text("currency")
        if raw:
            try:
                return normalise_currency(raw, declared=self.options.currency, field="currency")
            except ParseError as exc:
                raise self.fail("currency", str(exc)) from None
        if self.options.currency:
            return self.options.currency
        stated = {self.amount(column, None)[1] for column in money_columns if self.row.get(column)}
        stated.discard(None)
        if len(stated) == 1:
            return stated.pop()  # type: ignore[return-value]
        raise self.fail("currency", "currency is empty and no --currency was given; use an ISO 4217 code")


def _group(table: Table) -> Iterator[tuple[str, list[Row]]]:
    """Rows by document key, in order of first appearance; a row without a key is its own group."""
    key_column = KEY_COLUMN[table.kind]
    groups: dict[str, list[Row]] = {}
    for row in table.rows:
        key = row.get(key_column) or f"\x00row{row.number}"
        groups.setdefault(key, []).append(row)
    yield from groups.items()


def _same_across_rows(rows: list[Row], columns: tuple[str, ...]) -> None:
    """Document-level columns repeat on every row of the document and must agree."""
    first = rows[0]
    for row in rows[1:]:
        for column in columns:
            if row.get(column) and first.get(column) and row.get(column) != first.get(column):
                raise RowError(
                    row, column, f"{column} differs from row {first.number} ({first.get(column)!r})"
                )


def _check_shape(row: Row) -> None:
    if "__extra__" in row.values:
        raise RowError(row, "", "the row has more cells than the header has columns")


def _line(cells: _Cells, currency: str, line_number: int) -> LineRecord:
    quantity = cells.number("quantity", required=True)
    unit_price, _ = cells.amount("unit_price", currency, required=True)
    tax_rate = cells.number("tax_rate", percent=True)
    assert quantity is not None
    if tax_rate is not None and not ZERO <= tax_rate <= 100:
        raise cells.fail("tax_rate", f"tax_rate {tax_rate} is not a percentage between 0 and 100")
    subtotal = round_money(quantity * unit_price, currency)
    tax_amount = round_money(subtotal * (tax_rate or ZERO) / 100, currency)
    return LineRecord(
        line_number=line_number,
        description=cells.text("description", required=True, max_length=500),
        item_code=cells.text("item_code", max_length=100),
        quantity=quantity,
        unit_price=unit_price,
        tax_rate=tax_rate,
        subtotal=subtotal,
        tax_amount=tax_amount,
        total=subtotal + tax_amount,
    )


def _customer(cells: _Cells, currency: str, *, required: bool = True) -> CustomerRecord | None:
    name = cells.text("customer_name", required=required)
    email = cells.text("customer_email", max_length=254).lower()
    if email and ("@" not in email or " " in email):
        raise cells.fail("customer_email", f"customer_email {email!r} is not an email address")
    if not name and not email:
        return None
    return CustomerRecord(name=name or email, email=email, currency=currency)


def _raw(rows: list[Row]) -> list[dict[str, str]]:
    return [{"_row": str(row.number), **row.values} for row in rows]


def _problem(key: str, rows: list[Row], error: RowError) -> RecordProblem:
    return RecordProblem(
        key="" if key.startswith("\x00") else key,
        field=error.column,
        raw=error.raw,
        message=error.message,
        location=f"row {error.row.number}" + (f", column {error.column}" if error.column else ""),
        rows=tuple(row.number for row in rows),
    )


_DOC_COLUMNS = ("customer_name", "customer_email", "issue_date", "due_date", "currency", "total", "status")


def _invoice(key: str, rows: list[Row], options: CsvOptions) -> InvoiceRecord:
    for row in rows:
        _check_shape(row)
    _same_across_rows(rows, (*_DOC_COLUMNS, "amount_paid", "external_id"))
    head = _Cells(rows[0], options)
    currency = head.currency(("unit_price", "total", "amount_paid"))
    lines = tuple(_line(_Cells(row, options), currency, index) for index, row in enumerate(rows, start=1))
    subtotal = sum((line.subtotal for line in lines), ZERO)
    tax_total = sum((line.tax_amount for line in lines), ZERO)
    lines_total = subtotal + tax_total
    stated = head.money("total", currency)
    total = lines_total if stated is None else stated
    status = head.text("status").lower() or "open"
    if status not in INVOICE_STATUSES:
        raise head.fail("status", f"status {status!r} is not one of {', '.join(sorted(INVOICE_STATUSES))}")
    paid = head.money("amount_paid", currency)
    if paid is None:
        paid = total if status == "paid" else ZERO
    if status == "open" and ZERO < paid < total:
        status = "partially_paid"
    due = ZERO if status in ("void", "draft") else max(total - paid, ZERO)
    issue_date = head.date("issue_date", required=True)
    due_date = head.date("due_date")
    assert issue_date is not None
    if due_date and due_date < issue_date:
        raise head.fail("due_date", f"due_date {due_date} is before issue_date {issue_date}")
    return InvoiceRecord(
        external_id=key,
        number=key,
        customer=_customer(head, currency),  # type: ignore[arg-type]
        issue_date=issue_date,
        due_date=due_date,
        currency=currency,
        status=status,
        lines=lines,
        subtotal=subtotal,
        tax_total=tax_total,
        total=total,
        amount_paid=paid,
        amount_due=due,
        raw=_raw(rows),
    )


def _credit_note(key: str, rows: list[Row], options: CsvOptions) -> CreditNoteRecord:
    for row in rows:
        _check_shape(row)
    _same_across_rows(rows, (*_DOC_COLUMNS, "invoice_number", "allocated_amount", "external_id"))
    head = _Cells(rows[0], options)
    currency = head.currency(("unit_price", "total", "allocated_amount"))
    lines = tuple(_line(_Cells(row, options), currency, index) for index, row in enumerate(rows, start=1))
    subtotal = sum((line.subtotal for line in lines), ZERO)
    tax_total = sum((line.tax_amount for line in lines), ZERO)
    stated = head.money("total", currency)
    total = subtotal + tax_total if stated is None else stated
    status = head.text("status").lower() or "open"
    if status not in CREDIT_NOTE_STATUSES:
        raise head.fail(
            "status", f"status {status!r} is not one of {', '.join(sorted(CREDIT_NOTE_STATUSES))}"
        )
    invoice_number = head.text("invoice_number", max_length=64)
    allocated = head.money("allocated_amount", currency)
    if allocated is None and status == "applied" and invoice_number:
        allocated = total
    allocations = (AllocationRecord(invoice_number, allocated),) if invoice_number and allocated else ()
    issue_date = head.date("issue_date", required=True)
    assert issue_date is not None
    return CreditNoteRecord(
        external_id=key,
        number=key,
        customer=_customer(head, currency),  # type: ignore[arg-type]
        issue_date=issue_date,
        currency=currency,
        status=status,
        lines=lines,
        subtotal=subtotal,
        tax_total=tax_total,
        total=total,
        remaining_credit=ZERO if status in ("void", "applied") else max(total - (allocated or ZERO), ZERO),
        original_invoice_number=invoice_number,
        allocations=allocations,
        raw=_raw(rows),
    )


def _payment(key: str, rows: list[Row], options: CsvOptions) -> PaymentRecord:
    for row in rows:
        _check_shape(row)
    _same_across_rows(
        rows,
        ("payment_date", "amount", "currency", "customer_name", "customer_email", "method", "status",
         "processor_transaction_id", "fee", "payout_id", "external_id"),
    )  # fmt: skip
    head = _Cells(rows[0], options)
    currency = head.currency(("amount", "allocated_amount", "fee"))
    amount = head.money("amount", currency, required=True)
    assert amount is not None
    transaction_date = head.date("payment_date", required=True)
    assert transaction_date is not None
    allocations: list[AllocationRecord] = []
    for row in rows:
        cells = _Cells(row, options)
        invoice_number = cells.text("invoice_number", max_length=64)
        allocated = cells.money("allocated_amount", currency)
        if not invoice_number:
            if allocated:
                raise cells.fail("invoice_number", "allocated_amount is given but invoice_number is empty")
            continue
        if allocated is None:
            if len(rows) > 1:
                raise cells.fail(
                    "allocated_amount", "allocated_amount is required when a payment has several rows"
                )
            allocated = amount
        allocations.append(AllocationRecord(invoice_number, allocated, transaction_date))
    allocated_total = sum((a.amount for a in allocations), ZERO)
    if allocated_total > amount:
        raise head.fail(
            "allocated_amount", f"allocations add up to {allocated_total}, more than the amount {amount}"
        )
    status = head.text("status").lower() or "completed"
    if status not in PAYMENT_STATUSES:
        raise head.fail("status", f"status {status!r} is not one of {', '.join(sorted(PAYMENT_STATUSES))}")
    return PaymentRecord(
        external_id=key,
        reference=key,
        customer=_customer(head, currency, required=False),
        transaction_date=transaction_date,
        currency=currency,
        amount=amount,
        allocations=tuple(allocations),
        method=head.text("method", max_length=40),
        status=status,
        processor_transaction_id=head.text("processor_transaction_id", max_length=100),
        fee=head.money("fee", currency),
        payout_id=head.text("payout_id", max_length=100),
        raw=_raw(rows),
    )


_BUILDERS = {"invoices": _invoice, "payments": _payment, "credit_notes": _credit_note}


def records(
    table: Table, options: CsvOptions
) -> Iterator[InvoiceRecord | PaymentRecord | CreditNoteRecord | RecordProblem]:
    build = _BUILDERS[table.kind]
    key_column = KEY_COLUMN[table.kind]
    for key, rows in _group(table):
        if key.startswith("\x00"):
            yield _problem(key, rows, RowError(rows[0], key_column, f"{key_column} is required but empty"))
            continue
        try:
            yield build(key, rows, options)
        except RowError as error:
            yield _problem(key, rows, error)
