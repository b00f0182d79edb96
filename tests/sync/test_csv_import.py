"""`csv_import`: CSV files in, canonical documents out; every bad row an exception, never a guess."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from django.db import DatabaseError

import sync.imports
import sync.services
from connectors.models import Connection
from reconciliation.models import ReconciliationException
from sync.models import Binding, Customer, Invoice, InvoiceLine, Payment, PaymentAllocation, SyncJob
from tests.conftest import run_import

pytestmark = pytest.mark.django_db

CONN = "shop-csv"
PNG_BYTES = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
)


def imp(path, *args: str) -> tuple[int, str, str]:
    return run_import(path, "--connection", CONN, *args)


def counts(stdout: str) -> tuple[int, int]:
    """(imported, rejected) rows from the command's last line."""
    match = re.search(r"imported (\d+), rejected (\d+)", stdout)
    assert match, stdout
    return int(match[1]), int(match[2])


def summary(stdout: str) -> tuple[int, int, int]:
    """(created, updated, unchanged) documents from the command's summary line."""
    match = re.search(r"(\d+) created, (\d+) updated, (\d+) unchanged", stdout)
    assert match, stdout
    return int(match[1]), int(match[2]), int(match[3])


def invalid_inputs():
    return ReconciliationException.objects.filter(kind=ReconciliationException.Kind.INVALID_INPUT)


def only_invoice(number: str) -> Invoice:
    return Invoice.objects.get(number=number)


# --------------------------------------------------------------------------------------------- basics


def test_two_invoice_file_creates_invoices_lines_bindings_and_matches_customer_by_email(csv_file):
    known = Customer.objects.create(name="Acme Stores Ltd", email="accounts@acme.example")
    path = csv_file(
        "invoice_number,customer_name,customer_email,issue_date,due_date,currency,description,quantity,unit_price,tax_rate\n"
        "INV-1,Acme Stores,accounts@acme.example,2026-03-02,2026-04-01,GBP,Widgets,3,0.335,20\n"
        "INV-1,Acme Stores,accounts@acme.example,2026-03-02,2026-04-01,GBP,Postage,1,0.25,10\n"
        "INV-2,Bistro Bob,bob@bistro.example,2026-03-05,,GBP,Knives,2,34.00,20\n"
    )

    code, out, _ = imp(path)

    assert code == 0
    assert counts(out) == (3, 0)
    assert summary(out) == (2, 0, 0)
    connection = Connection.objects.get(name=CONN)
    assert connection.platform == "csv"
    assert Invoice.objects.count() == 2
    assert InvoiceLine.objects.count() == 3
    assert Binding.objects.filter(connection=connection, object_type="invoice").count() == 2
    assert set(Binding.objects.values_list("external_id", flat=True)) == {"INV-1", "INV-2"}

    inv1 = only_invoice("INV-1")
    assert inv1.customer == known  # matched by email, not duplicated under the file's name
    assert Customer.objects.count() == 2
    assert (inv1.issue_date, inv1.due_date, inv1.currency) == (date(2026, 3, 2), date(2026, 4, 1), "GBP")
    widgets, postage = inv1.lines.order_by("line_number")
    # 3 x 0.335 = 1.005 -> 1.01 and 0.25 x 10% = 0.025 -> 0.03: half-up, never half-even
    assert (widgets.subtotal, widgets.tax_amount, widgets.total) == (
        Decimal("1.01"),
        Decimal("0.20"),
        Decimal("1.21"),
    )
    assert (postage.subtotal, postage.tax_amount, postage.total) == (
        Decimal("0.25"),
        Decimal("0.03"),
        Decimal("0.28"),
    )
    assert (inv1.subtotal, inv1.tax_total, inv1.total) == (Decimal("1.26"), Decimal("0.23"), Decimal("1.49"))
    assert inv1.lines_total == Decimal("1.49")

    inv2 = only_invoice("INV-2")
    assert inv2.customer.email == "bob@bistro.example"
    assert inv2.customer.name == "Bistro Bob"
    assert (inv2.subtotal, inv2.tax_total, inv2.total) == (
        Decimal("68.00"),
        Decimal("13.60"),
        Decimal("81.60"),
    )
    assert inv2.amount_due == Decimal("81.60")
    assert inv2.status == "open"
    assert not ReconciliationException.objects.exists()


def test_customer_email_match_ignores_case_of_the_stored_email(csv_file):
    known = Customer.objects.create(name="Acme Stores Ltd", email="Accounts@Acme.example")
    path = csv_file(
        "invoice_number,customer_name,customer_email,issue_date,currency,description,quantity,unit_price\n"
        "INV-1,Acme Stores,accounts@acme.example,2026-03-02,GBP,Widgets,1,10.00\n"
    )

    code, _, _ = imp(path)

    assert code == 0
    assert only_invoice("INV-1").customer == known
    assert Customer.objects.count() == 1


# ------------------------------------------------------------------------------------- money formats


def test_dollar_amount_with_thousands_separator_reads_with_currency_usd(csv_file):
    path = csv_file(
        "invoice_number,customer_name,issue_date,description,quantity,unit_price,total\n"
        'INV-1,Acme,2026-03-02,Consulting,1,"$1,234.56","$1,234.56"\n'
    )

    code, out, _ = imp(path, "--currency", "USD")

    assert code == 0, out
    invoice = only_invoice("INV-1")
    assert invoice.currency == "USD"
    assert invoice.lines.get().unit_price == Decimal("1234.56")
    assert invoice.total == Decimal("1234.56")


def test_euro_amount_with_decimal_comma(csv_file):
    path = csv_file(
        "invoice_number;customer_name;issue_date;currency;description;quantity;unit_price;total\n"
        "INV-1;Café Central;2026-03-02;EUR;Kaffee;1;1.234,56 €;1.234,56 €\n"
    )

    code, out, _ = imp(path, "--decimal-comma")

    assert code == 0
    assert counts(out) == (1, 0)
    invoice = only_invoice("INV-1")
    assert invoice.currency == "EUR"
    assert invoice.lines.get().unit_price == Decimal("1234.56")
    assert invoice.total == Decimal("1234.56")


def test_trailing_dollar_with_decimal_comma_reads_as_declared_cad(csv_file):
    path = csv_file(
        "invoice_number;customer_name;issue_date;description;quantity;unit_price\n"
        "INV-1;Maple Co;2026-03-02;Syrup;2;100,00$\n"
    )

    code, out, _ = imp(path, "--decimal-comma", "--currency", "CAD")

    assert code == 0
    assert counts(out) == (1, 0)
    invoice = only_invoice("INV-1")
    assert invoice.currency == "CAD"
    assert invoice.lines.get().unit_price == Decimal("100.00")
    assert invoice.total == Decimal("200.00")


def test_parenthesised_unit_price_is_a_negative_credit_line(csv_file):
    path = csv_file(
        "invoice_number,customer_name,issue_date,currency,description,quantity,unit_price\n"
        "INV-1,Acme,2026-03-02,GBP,Crates,1,100.00\n"
        "INV-1,Acme,2026-03-02,GBP,Returned crate,1,(12.00)\n"
    )

    code, _, _ = imp(path)

    assert code == 0
    invoice = only_invoice("INV-1")
    credit = invoice.lines.get(line_number=2)
    assert credit.unit_price == Decimal("-12.00")
    assert credit.total == Decimal("-12.00")
    assert invoice.total == Decimal("88.00")


def test_currency_code_in_the_amount_sets_the_currency_when_there_is_no_currency_column(csv_file):
    path = csv_file(
        "invoice_number,customer_name,issue_date,description,quantity,unit_price\n"
        "INV-1,Acme,2026-03-02,Thing,1,EUR 99\n"
    )

    code, out, _ = imp(path)

    assert code == 0
    assert counts(out) == (1, 0)
    invoice = only_invoice("INV-1")
    assert invoice.currency == "EUR"
    assert invoice.total == Decimal("99")


def test_jpy_total_with_decimals_is_rejected(csv_file):
    path = csv_file(
        "invoice_number,customer_name,issue_date,currency,description,quantity,unit_price,total\n"
        "INV-1,Tanaka,2026-03-02,JPY,Tea,1,1000,1000.5\n"
    )

    code, out, _ = imp(path)

    assert code == 0
    assert counts(out) == (0, 1)
    assert not Invoice.objects.exists()
    problem = invalid_inputs().get()
    assert problem.details["column"] == "total"
    assert problem.details["raw_value"] == "1000.5"
    assert "JPY" in problem.message


def test_jpy_total_with_thousands_separator_is_fine(csv_file):
    path = csv_file(
        "invoice_number,customer_name,issue_date,currency,description,quantity,unit_price,total\n"
        'INV-1,Tanaka,2026-03-02,JPY,Tea,1,"1,000","1,000"\n'
    )

    code, out, _ = imp(path)

    assert code == 0
    assert counts(out) == (1, 0)
    invoice = only_invoice("INV-1")
    assert invoice.total == Decimal("1000")
    assert invoice.lines_total == Decimal("1000")
    assert not ReconciliationException.objects.exists()


def test_kwd_amount_with_three_decimals_is_fine(csv_file):
    path = csv_file(
        "invoice_number,customer_name,issue_date,currency,description,quantity,unit_price,total\n"
        "INV-1,Al Sabah,2026-03-02,KWD,Dates,1,12.345,12.345\n"
    )

    code, out, _ = imp(path)

    assert code == 0
    assert counts(out) == (1, 0)
    invoice = only_invoice("INV-1")
    assert invoice.total == Decimal("12.345")
    assert invoice.lines.get().subtotal == Decimal("12.345")


# ----------------------------------------------------------------------------------------------- dates

AMBIGUOUS_DATE = (
    "invoice_number,customer_name,issue_date,currency,description,quantity,unit_price\n"
    "INV-1,Acme,03/04/2026,GBP,Thing,1,10.00\n"
)


def test_iso_date_is_read_without_a_date_order(csv_file):
    path = csv_file(
        "invoice_number,customer_name,issue_date,due_date,currency,description,quantity,unit_price\n"
        "INV-1,Acme,2026-12-01,2026-12-31,GBP,Thing,1,10.00\n"
    )

    code, _, _ = imp(path, "--date-order", "MDY")

    assert code == 0
    invoice = only_invoice("INV-1")
    assert (invoice.issue_date, invoice.due_date) == (date(2026, 12, 1), date(2026, 12, 31))


def test_ambiguous_date_without_date_order_is_rejected_naming_row_column_and_value(csv_file):
    code, out, _ = imp(csv_file(AMBIGUOUS_DATE))

    assert code == 0
    assert counts(out) == (0, 1)
    assert not Invoice.objects.exists()
    problem = invalid_inputs().get()
    assert problem.document_number == "INV-1"
    assert problem.details["location"] == "row 2, column issue_date"
    assert problem.details["column"] == "issue_date"
    assert problem.details["raw_value"] == "03/04/2026"
    assert "--date-order" in problem.message


def test_ambiguous_date_with_dmy_is_3_april(csv_file):
    code, _, _ = imp(csv_file(AMBIGUOUS_DATE), "--date-order", "DMY")

    assert code == 0
    assert only_invoice("INV-1").issue_date == date(2026, 4, 3)


def test_ambiguous_date_with_mdy_is_4_march(csv_file):
    code, _, _ = imp(csv_file(AMBIGUOUS_DATE), "--date-order", "MDY")

    assert code == 0
    assert only_invoice("INV-1").issue_date == date(2026, 3, 4)


def test_day_13_as_month_with_mdy_is_rejected(csv_file):
    path = csv_file(
        "invoice_number,customer_name,issue_date,currency,description,quantity,unit_price\n"
        "INV-1,Acme,13/04/2026,GBP,Thing,1,10.00\n"
    )

    code, out, _ = imp(path, "--date-order", "MDY")

    assert code == 0
    assert counts(out) == (0, 1)
    assert not Invoice.objects.exists()
    problem = invalid_inputs().get()
    assert (problem.details["column"], problem.details["raw_value"]) == ("issue_date", "13/04/2026")


# -------------------------------------------------------------------------------------------- currency


def test_unknown_currency_code_is_rejected(csv_file):
    path = csv_file(
        "invoice_number,customer_name,issue_date,currency,description,quantity,unit_price\n"
        "INV-1,Acme,2026-03-02,ZZZ,Thing,1,10.00\n"
    )

    code, out, _ = imp(path)

    assert code == 0
    assert counts(out) == (0, 1)
    assert not Invoice.objects.exists()
    problem = invalid_inputs().get()
    assert (problem.details["column"], problem.details["raw_value"]) == ("currency", "ZZZ")


DOLLAR_CURRENCY = (
    "invoice_number,customer_name,issue_date,currency,description,quantity,unit_price\n"
    "INV-1,Acme,2026-03-02,$,Thing,1,10.00\n"
)


def test_dollar_sign_as_currency_is_rejected_without_declared_currency(csv_file):
    code, out, _ = imp(csv_file(DOLLAR_CURRENCY))

    assert code == 0
    assert counts(out) == (0, 1)
    assert not Invoice.objects.exists()
    problem = invalid_inputs().get()
    assert (problem.details["column"], problem.details["raw_value"]) == ("currency", "$")
    assert "ambiguous" in problem.message


def test_dollar_sign_as_currency_is_accepted_with_currency_usd(csv_file):
    code, out, _ = imp(csv_file(DOLLAR_CURRENCY), "--currency", "USD")

    assert code == 0
    assert counts(out) == (1, 0)
    assert only_invoice("INV-1").currency == "USD"


# --------------------------------------------------------------------------------------------- bad rows


def test_missing_required_field_rejects_that_invoice_and_imports_the_others(csv_file):
    path = csv_file(
        "invoice_number,customer_name,customer_email,issue_date,currency,description,quantity,unit_price\n"
        "INV-1,Acme,a@acme.example,2026-03-02,GBP,Thing,1,10.00\n"
        "INV-2,,b@bistro.example,2026-03-02,GBP,Thing,1,10.00\n"
        "INV-3,Corner Shop,c@corner.example,2026-03-02,GBP,Thing,1,10.00\n"
    )

    code, out, _ = imp(path)

    assert code == 0
    assert counts(out) == (2, 1)
    assert set(Invoice.objects.values_list("number", flat=True)) == {"INV-1", "INV-3"}
    problem = invalid_inputs().get()
    assert problem.document_number == "INV-2"
    assert problem.object_type == "invoice"
    assert problem.state == "open"
    assert problem.details["location"] == "row 3, column customer_name"
    assert problem.details["column"] == "customer_name"
    assert problem.details["raw_value"] == ""
    assert problem.details["rows"] == [3]
    job = SyncJob.objects.get()
    assert job.state == SyncJob.State.PARTIAL
    assert problem.job == job


def test_unparseable_value_rejects_that_invoice_and_imports_the_others(csv_file):
    path = csv_file(
        "invoice_number,customer_name,issue_date,currency,description,quantity,unit_price\n"
        "INV-1,Acme,2026-03-02,GBP,Thing,1,10.00\n"
        "INV-2,Bistro,2026-03-02,GBP,Thing,two,10.00\n"
    )

    code, out, _ = imp(path)

    assert code == 0
    assert counts(out) == (1, 1)
    assert list(Invoice.objects.values_list("number", flat=True)) == ["INV-1"]
    problem = invalid_inputs().get()
    assert problem.document_number == "INV-2"
    assert problem.details["location"] == "row 3, column quantity"
    assert (problem.details["column"], problem.details["raw_value"]) == ("quantity", "two")


def test_bad_line_rejects_every_row_of_its_invoice(csv_file):
    path = csv_file(
        "invoice_number,customer_name,issue_date,currency,description,quantity,unit_price\n"
        "INV-1,Acme,2026-03-02,GBP,Good line,1,10.00\n"
        "INV-1,Acme,2026-03-02,GBP,Bad line,1,12,34,5\n"
        "INV-2,Bistro,2026-03-02,GBP,Thing,1,5.00\n"
    )

    code, out, _ = imp(path)

    assert code == 0
    assert counts(out) == (1, 2)
    assert list(Invoice.objects.values_list("number", flat=True)) == ["INV-2"]
    assert InvoiceLine.objects.count() == 1
    problem = invalid_inputs().get()
    assert problem.document_number == "INV-1"
    assert problem.details["rows"] == [2, 3]
    assert problem.details["location"] == "row 3"  # more cells than columns: no single column to blame


def test_bad_unit_price_in_second_line_names_its_row_and_value(csv_file):
    path = csv_file(
        "invoice_number,customer_name,issue_date,currency,description,quantity,unit_price\n"
        "INV-1,Acme,2026-03-02,GBP,Good line,1,10.00\n"
        'INV-1,Acme,2026-03-02,GBP,Bad line,1,"12,34,5"\n'
    )

    code, out, _ = imp(path)

    assert code == 0
    assert counts(out) == (0, 2)
    assert not Invoice.objects.exists()
    assert not InvoiceLine.objects.exists()
    problem = invalid_inputs().get()
    assert problem.details["location"] == "row 3, column unit_price"
    assert problem.details["raw_value"] == "12,34,5"
    assert problem.details["rows"] == [2, 3]


# ------------------------------------------------------------------------------------ file-level errors


def assert_nothing_written() -> None:
    assert not Invoice.objects.exists()
    assert not InvoiceLine.objects.exists()
    assert not SyncJob.objects.exists()
    assert not ReconciliationException.objects.exists()
    assert not Binding.objects.exists()
    assert not Customer.objects.exists()


def test_binary_file_exits_2_and_writes_nothing(csv_file):
    code, _, err = imp(csv_file(PNG_BYTES, name="logo.csv"))

    assert code == 2
    assert "not a CSV file" in err
    assert "nothing was imported" in err
    assert_nothing_written()


def test_missing_required_column_exits_2_naming_it(csv_file):
    path = csv_file(
        "invoice_number,customer_name,issue_date,currency,description,quantity\n"
        "INV-1,Acme,2026-03-02,GBP,Thing,1\n"
    )

    code, _, err = imp(path)

    assert code == 2
    assert "required column(s) missing" in err
    assert "unit_price" in err
    assert_nothing_written()


def test_latin1_bytes_exit_2_with_encoding_hint(csv_file):
    path = csv_file(
        "invoice_number,customer_name,issue_date,currency,description,quantity,unit_price\n"
        "INV-1,Caf\xe9 Rouge,2026-03-02,GBP,Thing,1,10.00\n",
        encoding="latin-1",
    )

    code, _, err = imp(path)

    assert code == 2
    assert "not valid utf-8" in err
    assert "line 2" in err
    assert "--encoding" in err
    assert_nothing_written()


def test_latin1_file_imports_with_encoding_option(csv_file):
    path = csv_file(
        "invoice_number,customer_name,issue_date,currency,description,quantity,unit_price\n"
        "INV-1,Caf\xe9 Rouge,2026-03-02,GBP,Thing,1,10.00\n",
        encoding="latin-1",
    )

    code, _, _ = imp(path, "--encoding", "latin-1")

    assert code == 0
    assert only_invoice("INV-1").customer.name == "Café Rouge"


def test_empty_file_exits_2(csv_file):
    code, _, err = imp(csv_file(""))

    assert code == 2
    assert "empty" in err
    assert_nothing_written()


def test_missing_path_exits_2_and_creates_nothing(tmp_path):
    code, _, err = imp(tmp_path / "nope.csv")

    assert code == 2
    assert "no such file" in err
    assert_nothing_written()
    assert not Connection.objects.exists()


def test_utf16_file_imports_with_encoding_option(csv_file):
    path = csv_file(
        "invoice_number\tcustomer_name\tissue_date\tcurrency\tdescription\tquantity\tunit_price\n"
        "INV-1\tAcme\t2026-03-02\tGBP\tThing\t1\t10.00\n",
        encoding="utf-16",
    )

    code, out, err = imp(path, "--encoding", "utf-16")

    assert code == 0, err
    assert counts(out) == (1, 0)
    assert only_invoice("INV-1").total == Decimal("10.00")


def test_unknown_currency_option_exits_2_and_creates_nothing(csv_file):
    code, _, err = imp(csv_file(AMBIGUOUS_DATE), "--currency", "ZZZ")

    assert code == 2
    assert "ZZZ" in err
    assert_nothing_written()
    assert not Connection.objects.exists()


def test_connection_of_another_platform_exits_2(csv_file):
    Connection.objects.create(name=CONN, platform="quickbooks")

    code, _, err = imp(csv_file(AMBIGUOUS_DATE))

    assert code == 2
    assert "not a CSV one" in err
    assert_nothing_written()


@pytest.mark.parametrize(
    "content",
    [
        PNG_BYTES,
        b"",
        b"invoice_number,customer_name\nINV-1,Acme\n",
        b"invoice_number,customer_name,issue_date,currency,description,quantity,unit_price\nINV-1,Caf\xe9,x,GBP,a,1,1\n",
    ],
    ids=["binary", "empty", "missing-column", "latin-1"],
)
def test_rejected_file_creates_no_connection(csv_file, content):
    code, _, _ = imp(csv_file(content))

    assert code == 2
    assert not Connection.objects.filter(name=CONN).exists()


# ---------------------------------------------------------------------------------------- re-imports

TWO_INVOICES = (
    "invoice_number,customer_name,customer_email,issue_date,currency,description,quantity,unit_price,tax_rate\n"
    "INV-1,Acme,a@acme.example,2026-03-02,GBP,Widgets,2,10.00,20\n"
    "INV-1,Acme,a@acme.example,2026-03-02,GBP,Postage,1,5.00,20\n"
    "INV-2,Bistro,b@bistro.example,2026-03-05,GBP,Knives,1,34.00,20\n"
)


def test_same_file_twice_creates_no_duplicates(csv_file):
    path = csv_file(TWO_INVOICES)
    imp(path)

    code, out, _ = imp(path)

    assert code == 0
    assert summary(out) == (0, 0, 2)
    assert counts(out) == (3, 0)
    assert Invoice.objects.count() == 2
    assert InvoiceLine.objects.count() == 3
    assert Binding.objects.count() == 2
    assert Customer.objects.count() == 2
    assert SyncJob.objects.count() == 2


def test_unchanged_reimport_adds_no_history_and_keeps_row_version(csv_file):
    path = csv_file(TWO_INVOICES)
    imp(path)
    invoice = only_invoice("INV-1")
    history_before = invoice.history.count()
    line_history_before = InvoiceLine.history.count()

    imp(path)

    invoice.refresh_from_db()
    assert invoice.row_version == 1
    assert invoice.history.count() == history_before == 1
    assert InvoiceLine.history.count() == line_history_before


def test_changed_quantity_on_reimport_updates_the_invoice_and_its_history(csv_file):
    imp(csv_file(TWO_INVOICES))
    invoice = only_invoice("INV-1")
    assert invoice.history.count() == 1

    code, out, _ = imp(csv_file(TWO_INVOICES.replace("Widgets,2,10.00", "Widgets,3,10.00")))

    assert code == 0
    assert summary(out) == (0, 1, 1)
    invoice.refresh_from_db()
    assert invoice.row_version == 2
    assert invoice.history.count() == 2
    assert invoice.lines.get(line_number=1).quantity == Decimal("3")
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (
        Decimal("35.00"),
        Decimal("7.00"),
        Decimal("42.00"),
    )
    assert Invoice.objects.count() == 2
    assert InvoiceLine.objects.count() == 3
    assert only_invoice("INV-2").row_version == 1


def test_line_dropped_on_reimport_is_deleted_from_the_invoice(csv_file):
    imp(csv_file(TWO_INVOICES))

    code, out, _ = imp(
        csv_file(TWO_INVOICES.replace("INV-1,Acme,a@acme.example,2026-03-02,GBP,Postage,1,5.00,20\n", ""))
    )

    assert code == 0
    assert summary(out) == (0, 1, 1)
    invoice = only_invoice("INV-1")
    assert list(invoice.lines.values_list("description", flat=True)) == ["Widgets"]
    assert invoice.total == Decimal("24.00")
    assert InvoiceLine.objects.count() == 2


MISMATCH = (
    "invoice_number,customer_name,issue_date,currency,description,quantity,unit_price,tax_rate,total\n"
    "INV-1,Acme,2026-03-02,GBP,Widgets,2,10.00,20,24.03\n"
)


def test_stated_total_differing_from_lines_is_kept_and_flagged(csv_file):
    code, out, _ = imp(csv_file(MISMATCH))

    assert code == 0
    assert counts(out) == (1, 0)
    invoice = only_invoice("INV-1")
    assert invoice.total == Decimal("24.03")
    assert invoice.lines_total == Decimal("24.00")
    assert invoice.amount_due == Decimal("24.03")
    mismatch = ReconciliationException.objects.get()
    assert mismatch.kind == ReconciliationException.Kind.TOTAL_MISMATCH
    assert mismatch.amount_at_risk == Decimal("0.03")
    assert mismatch.object_id == invoice.pk
    assert mismatch.currency == "GBP"
    assert mismatch.state == "open"


def test_corrected_total_on_reimport_resolves_the_mismatch(csv_file):
    imp(csv_file(MISMATCH))

    code, out, _ = imp(csv_file(MISMATCH.replace("24.03", "24.00")))

    assert code == 0
    assert summary(out) == (0, 1, 0)
    assert only_invoice("INV-1").total == Decimal("24.00")
    mismatch = ReconciliationException.objects.get(kind=ReconciliationException.Kind.TOTAL_MISMATCH)
    assert mismatch.state == "resolved"
    assert mismatch.resolved_by_system is True
    assert mismatch.resolved_at is not None


BAD_QUANTITY = (
    "invoice_number,customer_name,issue_date,currency,description,quantity,unit_price\n"
    "INV-1,Acme,2026-03-02,GBP,Thing,1,10.00\n"
    "INV-2,Bistro,2026-03-02,GBP,Thing,two,10.00\n"
)


def test_fixed_row_on_reimport_imports_and_resolves_its_exception(csv_file):
    imp(csv_file(BAD_QUANTITY))
    assert invalid_inputs().get().state == "open"

    code, out, _ = imp(csv_file(BAD_QUANTITY.replace("Thing,two", "Thing,2")))

    assert code == 0
    assert counts(out) == (2, 0)
    assert summary(out) == (1, 0, 1)
    assert only_invoice("INV-2").total == Decimal("20.00")
    problem = invalid_inputs().get()
    assert problem.state == "resolved"
    assert problem.resolved_by_system is True


def test_still_bad_row_on_reimport_counts_an_occurrence_instead_of_a_twin(csv_file):
    path = csv_file(BAD_QUANTITY)
    imp(path)

    code, out, _ = imp(path)

    assert code == 0
    assert counts(out) == (1, 1)
    problem = invalid_inputs().get()
    assert problem.occurrences == 2
    assert problem.state == "open"
    assert problem.job == SyncJob.objects.latest("pk")


# ------------------------------------------------------------------------------------------- payments

ONE_INVOICE = (
    "invoice_number,customer_name,issue_date,currency,description,quantity,unit_price\n"
    "INV-1,Acme,2026-03-02,GBP,Thing,1,100.00\n"
)
PAYS_INV_1 = (
    "payment_reference,payment_date,amount,currency,invoice_number,allocated_amount\n"
    "PAY-1,2026-03-10,100.00,GBP,INV-1,100.00\n"
)


def test_payment_allocated_to_a_known_invoice(csv_file):
    imp(csv_file(ONE_INVOICE))

    code, out, _ = imp(csv_file(PAYS_INV_1))

    assert code == 0
    assert counts(out) == (1, 0)
    payment = Payment.objects.get()
    assert (payment.reference, payment.amount, payment.unapplied_amount) == (
        "PAY-1",
        Decimal("100.00"),
        Decimal("0"),
    )
    allocation = PaymentAllocation.objects.get()
    assert allocation.payment == payment
    assert allocation.invoice == only_invoice("INV-1")
    assert allocation.amount == Decimal("100.00")
    assert allocation.allocated_on == date(2026, 3, 10)
    assert not ReconciliationException.objects.exists()


def test_payment_for_unknown_invoice_imports_and_opens_unmatched_payment(csv_file):
    code, out, _ = imp(csv_file(PAYS_INV_1))

    assert code == 0
    assert counts(out) == (1, 0)
    payment = Payment.objects.get()
    assert payment.unapplied_amount == Decimal("100.00")
    assert not PaymentAllocation.objects.exists()
    unmatched = ReconciliationException.objects.get()
    assert unmatched.kind == ReconciliationException.Kind.UNMATCHED_PAYMENT
    assert unmatched.document_number == "PAY-1"
    assert unmatched.details["invoice_number"] == "INV-1"
    assert unmatched.amount_at_risk == Decimal("100.00")
    assert unmatched.state == "open"


def test_invoice_arriving_later_applies_the_waiting_payment_on_reimport(csv_file):
    payments = csv_file(PAYS_INV_1)
    imp(payments)
    imp(csv_file(ONE_INVOICE))

    code, _, _ = imp(payments)

    assert code == 0
    assert Payment.objects.count() == 1
    allocation = PaymentAllocation.objects.get()
    assert allocation.invoice == only_invoice("INV-1")
    assert Payment.objects.get().unapplied_amount == Decimal("0")
    unmatched = ReconciliationException.objects.get(kind=ReconciliationException.Kind.UNMATCHED_PAYMENT)
    assert unmatched.state == "resolved"
    assert unmatched.resolved_by_system is True


def test_gbp_payment_with_three_decimals_is_rejected(csv_file):
    path = csv_file(
        "payment_reference,payment_date,amount,currency,invoice_number\n"
        "PAY-1,2026-03-10,12.345,GBP,\n"
        "PAY-2,2026-03-11,12.34,GBP,\n"
    )

    code, out, _ = imp(path)

    assert code == 0
    assert counts(out) == (1, 1)
    assert list(Payment.objects.values_list("reference", flat=True)) == ["PAY-2"]
    problem = invalid_inputs().get()
    assert problem.object_type == "payment"
    assert problem.document_number == "PAY-1"
    assert (problem.details["column"], problem.details["raw_value"]) == ("amount", "12.345")


# --------------------------------------------------------------------------------------- file shapes


def test_semicolon_delimited_file_imports(csv_file):
    path = csv_file(
        "invoice_number;customer_name;issue_date;currency;description;quantity;unit_price\n"
        "INV-1;Acme, Inc.;2026-03-02;EUR;Thing;2;12,50\n"
    )

    code, out, _ = imp(path, "--decimal-comma")

    assert code == 0
    assert counts(out) == (1, 0)
    invoice = only_invoice("INV-1")
    assert invoice.customer.name == "Acme, Inc."
    assert invoice.total == Decimal("25.00")


def test_tab_delimited_file_imports(csv_file):
    path = csv_file(
        "invoice_number\tcustomer_name\tissue_date\tcurrency\tdescription\tquantity\tunit_price\n"
        "INV-1\tAcme\t2026-03-02\tGBP\tThing, large\t2\t12.50\n"
    )

    code, out, _ = imp(path)

    assert code == 0
    assert counts(out) == (1, 0)
    invoice = only_invoice("INV-1")
    assert invoice.lines.get().description == "Thing, large"
    assert invoice.total == Decimal("25.00")


def test_utf8_bom_is_ignored(csv_file):
    path = csv_file(
        b"\xef\xbb\xbfinvoice_number,customer_name,issue_date,currency,description,quantity,unit_price\n"
        b"INV-1,Acme,2026-03-02,GBP,Thing,1,10.00\n"
    )

    code, out, _ = imp(path)

    assert code == 0
    assert counts(out) == (1, 0)
    assert list(Invoice.objects.values_list("number", flat=True)) == ["INV-1"]


def test_header_names_are_case_and_space_insensitive(csv_file):
    path = csv_file(
        " Invoice Number ,Customer  Name,ISSUE DATE,Currency,Description,Quantity,Unit-Price\n"
        "INV-1,Acme,2026-03-02,GBP,Thing,3,10.00\n"
    )

    code, out, _ = imp(path)

    assert code == 0
    assert counts(out) == (1, 0)
    assert only_invoice("INV-1").total == Decimal("30.00")


# ------------------------------------------------------------------------------------------- in bulk


def test_bulk_import_uses_far_fewer_queries_than_rows(csv_file, django_assert_max_num_queries):
    lines = [
        "invoice_number,customer_name,customer_email,issue_date,currency,description,quantity,unit_price,tax_rate"
    ]
    for n in range(1, 1001):
        who = n % 25
        for item in range(1, 6):
            lines.append(
                f"INV-{n:05d},Customer {who},c{who}@example.com,2026-03-02,GBP,Item {item},{item},1.25,20"
            )
    path = csv_file("\n".join(lines) + "\n")

    # ~220 on SQLite, whose 999-parameter limit splits each bulk insert into batches of 40-90 rows;
    # one statement per row (let alone one commit per row) would be well over 5,000.
    with django_assert_max_num_queries(300):
        code, out, _ = imp(path)

    assert code == 0
    assert counts(out) == (5000, 0)
    assert Invoice.objects.count() == 1000
    assert InvoiceLine.objects.count() == 5000
    assert Binding.objects.count() == 1000
    assert Customer.objects.count() == 25
    # 1+2+3+4+5 = 15 items at 1.25 = 18.75, +20% = 22.50 (per-line tax: 0.25+0.50+0.75+1.00+1.25)
    assert set(Invoice.objects.values_list("total", flat=True)) == {Decimal("22.50")}


# ------------------------------------------------------------------------------- crash in the middle

SEVEN_INVOICES = (
    "invoice_number,customer_name,customer_email,issue_date,currency,description,quantity,unit_price\n"
    + "".join(
        f"INV-{n},Customer {n},c{n}@example.com,2026-03-02,GBP,Line {line},1,{n}.00\n"
        for n in range(1, 8)
        for line in (1, 2)
    )
)


def assert_whole_documents(expected_numbers: set[str]) -> None:
    """Every invoice present has both its lines and exactly one binding; no twins, no orphans."""
    assert set(Invoice.objects.values_list("number", flat=True)) == expected_numbers
    assert Invoice.objects.count() == len(expected_numbers)
    for invoice in Invoice.objects.all():
        assert invoice.lines.count() == 2, invoice.number
        assert Binding.objects.filter(object_type="invoice", object_id=invoice.pk).count() == 1, (
            invoice.number
        )
    assert Binding.objects.count() == len(expected_numbers)


@pytest.mark.django_db(transaction=True)
def test_database_error_in_a_page_rolls_it_back_and_retries_document_by_document(csv_file, monkeypatch):
    monkeypatch.setattr(sync.imports, "PAGE_SIZE", 3)  # pages: INV-1..3, INV-4..6, INV-7
    real_bind = sync.services._bind
    calls: list[list[str]] = []

    def failing_bind(connection, object_type, pairs, hashes, *rest):
        numbers = [record.external_id for record, _ in pairs]
        calls.append(numbers)
        if "INV-5" in numbers:  # the second page, and INV-5 again when retried alone
            raise DatabaseError("disk I/O error")
        return real_bind(connection, object_type, pairs, hashes, *rest)

    monkeypatch.setattr(sync.services, "_bind", failing_bind)
    path = csv_file(SEVEN_INVOICES)

    code, out, _ = imp(path)

    assert code == 0
    assert calls == [
        ["INV-1", "INV-2", "INV-3"],
        ["INV-4", "INV-5", "INV-6"],
        ["INV-4"],
        ["INV-5"],
        ["INV-6"],
        ["INV-7"],
    ]
    assert counts(out) == (12, 2)
    assert_whole_documents({"INV-1", "INV-2", "INV-3", "INV-4", "INV-6", "INV-7"})
    failure = ReconciliationException.objects.get()
    assert failure.kind == ReconciliationException.Kind.SYNC_FAILURE
    assert failure.document_number == "INV-5"
    assert SyncJob.objects.get().state == SyncJob.State.PARTIAL

    monkeypatch.setattr(sync.services, "_bind", real_bind)
    code, out, _ = imp(path)

    assert code == 0
    assert summary(out) == (1, 0, 6)
    assert counts(out) == (14, 0)
    assert_whole_documents({f"INV-{n}" for n in range(1, 8)})
    failure.refresh_from_db()
    assert failure.state == "resolved"
    assert failure.resolved_by_system is True


@pytest.mark.django_db(transaction=True)
def test_crash_while_writing_second_page_keeps_the_first_page_and_reimport_completes(csv_file, monkeypatch):
    monkeypatch.setattr(sync.imports, "PAGE_SIZE", 3)  # pages: INV-1..3, INV-4..6, INV-7
    real_bind = sync.services._bind
    calls: list[list[str]] = []

    def crashing_bind(connection, object_type, pairs, hashes, *rest):
        calls.append([record.external_id for record, _ in pairs])
        if len(calls) == 2:  # the page's invoices and lines are already inserted when this dies
            raise RuntimeError("worker killed")
        return real_bind(connection, object_type, pairs, hashes, *rest)

    monkeypatch.setattr(sync.services, "_bind", crashing_bind)
    path = csv_file(SEVEN_INVOICES)

    with pytest.raises(RuntimeError, match="worker killed"):
        imp(path)

    assert calls == [["INV-1", "INV-2", "INV-3"], ["INV-4", "INV-5", "INV-6"]]
    assert_whole_documents({"INV-1", "INV-2", "INV-3"})
    assert InvoiceLine.objects.count() == 6
    crashed = SyncJob.objects.get()
    assert (crashed.state, crashed.created) == ("failed", 3)
    assert "worker killed" in crashed.error
    assert crashed.attempt_set.get().outcome == "failed"

    monkeypatch.setattr(sync.services, "_bind", real_bind)
    code, out, _ = imp(path)

    assert code == 0
    assert summary(out) == (4, 0, 3)
    assert counts(out) == (14, 0)
    assert_whole_documents({f"INV-{n}" for n in range(1, 8)})
