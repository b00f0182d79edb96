"""Reading a CSV file as a table: encoding, dialect, header, kind. File-level problems only.

A file that cannot be read at all raises `CsvFileError`; everything about single rows is left to the
layouts, so one bad row never sinks the file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

KINDS = ("invoices", "payments", "credit_notes")

# The column that identifies each layout, and the columns a file of that kind must have.
KEY_COLUMN = {
    "invoices": "invoice_number",
    "payments": "payment_reference",
    "credit_notes": "credit_note_number",
}
REQUIRED_COLUMNS = {
    "invoices": ("invoice_number", "customer_name", "issue_date", "description", "quantity", "unit_price"),
    "payments": ("payment_reference", "payment_date", "amount"),
    "credit_notes": (
        "credit_note_number",
        "customer_name",
        "issue_date",
        "description",
        "quantity",
        "unit_price",
    ),
}
KNOWN_COLUMNS = {
    "invoices": (
        "invoice_number", "customer_name", "customer_email", "issue_date", "due_date", "currency",
        "description", "quantity", "unit_price", "tax_rate", "total", "status", "amount_paid", "external_id",
        "item_code",
    ),
    "payments": (
        "payment_reference", "payment_date", "amount", "currency", "customer_name", "customer_email",
        "invoice_number", "allocated_amount", "method", "processor_transaction_id", "fee", "payout_id",
        "external_id", "status",
    ),
    "credit_notes": (
        "credit_note_number", "customer_name", "customer_email", "issue_date", "currency", "description",
        "quantity", "unit_price", "tax_rate", "total", "status", "invoice_number", "allocated_amount",
        "external_id", "item_code",
    ),
}  # fmt: skip


class CsvFileError(Exception):
    """The file as a whole cannot be processed (not CSV, wrong encoding, required columns missing)."""


@dataclass(frozen=True)
class Row:
    number: int  # line number in the file, header = 1
    values: dict[str, str]

    def get(self, column: str) -> str:
        return (self.values.get(column) or "").strip()


@dataclass
class Table:
    kind: str
    columns: list[str]
    rows: list[Row]


def _normalise_header(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").split())


def _decode(data: bytes, encoding: str) -> str:
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    try:
        text = data.decode("utf-8-sig" if utf8 else encoding)
    except UnicodeDecodeError as exc:
        if b"\x00" in data[:4096]:
            raise CsvFileError("this is not a CSV file: it holds binary data (NUL bytes)") from None
        line = data[: exc.start].count(b"\n") + 1
        raise CsvFileError(
            f"the file is not valid {encoding} (byte 0x{data[exc.start]:02x} on line {line}); "
            f"save it as UTF-8 or pass --encoding"
        ) from None
    except LookupError:
        raise CsvFileError(f"unknown encoding {encoding!r}") from None
    if "\x00" in text[:4096]:
        raise CsvFileError("this is not a CSV file: it holds binary data (NUL bytes)")
    return text


def _dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    sample = text[:65536]
    try:
        return csv.Sniffer().sniff(sample.split("\n", 1)[0] or sample, delimiters=",;\t|")
    except csv.Error:
        return csv.excel


def detect_kind(columns: list[str]) -> str:
    # Payments and credit notes may also name an invoice, so their own key column decides first.
    for kind in ("credit_notes", "payments", "invoices"):
        if KEY_COLUMN[kind] in columns:
            return kind
    expected = ", ".join(KEY_COLUMN.values())
    raise CsvFileError(f"cannot tell what this file holds: it has none of the columns {expected}")


def read_table(data: bytes, *, kind: str | None = None, encoding: str = "utf-8") -> Table:
    text = _decode(data, encoding)
    if not text.strip():
        raise CsvFileError("the file is empty")
    reader = csv.reader(io.StringIO(text, newline=""), _dialect(text))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise CsvFileError(f"this is not a readable CSV file: {exc}") from None
    columns = [_normalise_header(name) for name in header]
    duplicates = sorted({name for name in columns if name and columns.count(name) > 1})
    if duplicates:
        raise CsvFileError(f"the header repeats the column(s): {', '.join(duplicates)}")
    kind = kind or detect_kind(columns)
    if kind not in KINDS:
        raise CsvFileError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    missing = [name for name in REQUIRED_COLUMNS[kind] if name not in columns]
    if missing:
        raise CsvFileError(f"required column(s) missing for {kind}: {', '.join(missing)}")
    return Table(kind=kind, columns=columns, rows=list(_rows(reader, columns)))


def _rows(reader: Iterator[list[str]], columns: list[str]) -> Iterator[Row]:
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # blank lines are not rows
            values = dict(zip(columns, cells, strict=False))
            if len(cells) > len(columns):
                values["__extra__"] = ",".join(cells[len(columns) :])
            yield Row(number=reader.line_num, values=values)  # type: ignore[attr-defined]
    except csv.Error as exc:
        raise CsvFileError(f"this is not a readable CSV file (line {reader.line_num}): {exc}") from None  # type: ignore[attr-defined]
