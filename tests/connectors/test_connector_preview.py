"""`connector_preview PLATFORM OBJECT FILE`: one raw platform record in, the canonical record out."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
INVOICE_KEYS = {"number", "status", "currency", "issue_date", "due_date", "subtotal", "tax_total", "total",
                "amount_due", "customer", "lines"}  # fmt: skip
LINE_KEYS = {"description", "quantity", "unit_price", "tax_amount", "total"}
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def preview(platform: str, object_type: str, path: Path | str) -> dict:
    out = StringIO()
    call_command("connector_preview", platform, object_type, str(path), stdout=out)
    return json.loads(out.getvalue())


def write(tmp_path: Path, record: dict) -> Path:
    path = tmp_path / "record.json"
    path.write_text(json.dumps(record))
    return path


def places(amount: str) -> int:
    return len(amount.partition(".")[2])


def assert_invoice_shape(invoice: dict, exponent: int) -> None:
    assert set(invoice) >= INVOICE_KEYS
    assert invoice["status"] in {"draft", "open", "partially_paid", "paid", "void", "deleted"}
    assert re.fullmatch(r"[A-Z]{3}", invoice["currency"])
    assert ISO_DATE.match(invoice["issue_date"])
    assert invoice["due_date"] is None or ISO_DATE.match(invoice["due_date"])
    for key in ("subtotal", "tax_total", "total", "amount_due"):
        assert places(invoice[key]) == exponent, (key, invoice[key])
    assert {"name", "email"} <= set(invoice["customer"])
    for line in invoice["lines"]:
        assert set(line) >= LINE_KEYS
        assert places(line["total"]) == exponent
        assert places(line["tax_amount"]) == exponent


def test_a_stripe_invoice_reads_in_its_currency_minor_unit():
    invoice = preview("stripe", "invoice", FIXTURES / "stripe" / "invoice_usd_open.json")
    assert_invoice_shape(invoice, 2)
    assert invoice["currency"] == "USD"


@pytest.mark.parametrize(
    ("name", "exponent"), [("invoice_jpy_paid.json", 0), ("invoice_kwd_partial.json", 3)]
)
def test_zero_and_three_decimal_currencies_keep_their_exponent(name, exponent):
    invoice = preview("stripe", "invoice", FIXTURES / "stripe" / name)
    assert_invoice_shape(invoice, exponent)


def test_a_quickbooks_invoice_object_or_its_envelope_reads_the_same(tmp_path):
    enveloped = json.loads((FIXTURES / "quickbooks" / "invoice.json").read_text())
    inner = enveloped.get("Invoice", enveloped)
    from_envelope = preview("quickbooks", "invoice", FIXTURES / "quickbooks" / "invoice.json")
    from_object = preview("quickbooks", "invoice", write(tmp_path, inner))
    assert from_envelope == from_object
    assert_invoice_shape(from_object, 2)


def test_a_voided_quickbooks_invoice_reads_as_void():
    invoice = preview("quickbooks", "invoice", FIXTURES / "quickbooks" / "invoice_voided.json")
    assert invoice["status"] == "void"


def test_an_element_of_xero_invoices_reads(tmp_path):
    page = json.loads((FIXTURES / "xero" / "invoices_page.json").read_text())
    invoice = preview("xero", "invoice", write(tmp_path, page["Invoices"][0]))
    assert_invoice_shape(invoice, 2)


@pytest.mark.parametrize(
    ("platform", "object_type", "name"),
    [
        ("quickbooks", "payment", "quickbooks/payment.json"),
        ("quickbooks", "credit_note", "quickbooks/credit_memo.json"),
        ("stripe", "payment", "stripe/invoice_payment.json"),
        ("stripe", "credit_note", "stripe/credit_note.json"),
    ],
)
def test_payments_and_credit_notes_read(platform, object_type, name):
    record = preview(platform, object_type, FIXTURES / name)
    assert re.fullmatch(r"[A-Z]{3}", record["currency"])
    assert record["external_id"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("nosuch", "invoice"),
            "unknown platform 'nosuch'; known platforms: api, csv, quickbooks, stripe, xero",
        ),
        (("stripe", "widget"), "does not read 'widget'"),
    ],
)
def test_unknown_platform_or_object_is_refused_with_the_choices(tmp_path, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("connector_preview", *args, str(write(tmp_path, {})))


def test_a_file_that_is_not_json_is_refused(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{nope")
    with pytest.raises(CommandError, match="is not JSON"):
        call_command("connector_preview", "stripe", "invoice", str(path))


def test_a_record_with_a_bad_value_names_the_field_and_value(tmp_path):
    record = json.loads((FIXTURES / "stripe" / "invoice_usd_open.json").read_text())
    record["currency"] = "dollars"
    with pytest.raises(CommandError, match=r"currency.*dollars"):
        call_command("connector_preview", "stripe", "invoice", str(write(tmp_path, record)))
