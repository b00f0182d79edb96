"""`csv_export`: canonical invoices in the import layout, normalised, and importable back unchanged."""

from __future__ import annotations

import csv
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sync.models import Binding, Customer, Invoice, InvoiceLine, SyncJob
from tests.conftest import run_import

pytestmark = pytest.mark.django_db

SOURCE = (
    "invoice_number;customer_name;customer_email;issue_date;due_date;currency;description;quantity;unit_price;"
    "tax_rate;total;status;amount_paid;external_id\n"
    "GB-1;Acme Stores;Accounts@Acme.example;2/3/2026;1/4/2026;£;Widgets;2;6,15;20 %;14,76;open;4,76;ERP-1\n"
    "GB-1;Acme Stores;Accounts@Acme.example;2/3/2026;1/4/2026;£;Deposit;1;(0,00);;14,76;open;4,76;ERP-1\n"
    "JP-1;Tanaka Shoten;tanaka@shoten.example;05/03/2026;;JPY;Sencha 1kg;1;1.500;;1.500;paid;;ERP-2\n"
    "KW-1;Al Sabah Trading;;06/03/2026;;KWD;Dates 5kg;1;12,345;0;12,345;draft;;\n"
)


def export_command(*args: str) -> tuple[int, str]:
    """`csv_export *args` -> (exit code, stderr or the CommandError's message)."""
    err = StringIO()
    try:
        call_command("csv_export", *args, stdout=StringIO(), stderr=err)
    except CommandError as exc:
        return exc.returncode, str(exc)
    return 0, err.getvalue()


def export_to(path, *args: str) -> tuple[list[dict[str, str]], str]:
    err = StringIO()
    call_command("csv_export", *args, str(path), stdout=StringIO(), stderr=err)
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle)), err.getvalue()


@pytest.fixture
def imported(csv_file):
    code, out, err = run_import(
        csv_file(SOURCE), "--connection", "erp", "--decimal-comma", "--date-order", "DMY", "--currency", "GBP"
    )
    assert code == 0, err
    assert "imported 4, rejected 0" in out
    return Invoice.objects.count()


def by_number(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    grouped: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        grouped.setdefault(row["invoice_number"], []).append(row)
    return grouped


def test_export_writes_one_row_per_line(imported, tmp_path):
    rows, err = export_to(tmp_path / "out.csv")

    assert imported == 3
    assert [row["invoice_number"] for row in rows] == ["GB-1", "GB-1", "JP-1", "KW-1"]
    assert [row["description"] for row in rows] == ["Widgets", "Deposit", "Sencha 1kg", "Dates 5kg"]
    assert "exported 3 invoices" in err


def test_export_header_is_the_import_layout(imported, tmp_path):
    path = tmp_path / "out.csv"
    export_to(path)

    header = path.read_text(encoding="utf-8").splitlines()[0].split(",")

    assert header[:3] == ["invoice_number", "customer_name", "customer_email"]
    assert {"issue_date", "currency", "description", "quantity", "unit_price", "total"} <= set(header)


def test_export_writes_iso_dates_and_iso_currency_codes(imported, tmp_path):
    rows, _ = export_to(tmp_path / "out.csv")
    gb = by_number(rows)["GB-1"][0]

    assert (gb["issue_date"], gb["due_date"]) == ("2026-03-02", "2026-04-01")
    assert [row["currency"] for row in rows] == ["GBP", "GBP", "JPY", "KWD"]
    assert by_number(rows)["JP-1"][0]["due_date"] == ""


def test_export_writes_dot_decimals_at_the_currency_minor_unit(imported, tmp_path):
    rows, _ = export_to(tmp_path / "out.csv")
    grouped = by_number(rows)
    widgets, deposit = grouped["GB-1"]
    (sencha,) = grouped["JP-1"]
    (dates,) = grouped["KW-1"]

    assert (widgets["unit_price"], widgets["quantity"], widgets["tax_rate"]) == ("6.15", "2", "20")
    assert (widgets["total"], widgets["amount_paid"]) == ("14.76", "4.76")
    assert deposit["unit_price"] == "0.00"
    assert deposit["tax_rate"] == ""
    assert (sencha["unit_price"], sencha["total"], sencha["amount_paid"]) == ("1500", "1500", "1500")
    assert (dates["unit_price"], dates["total"], dates["amount_paid"]) == ("12.345", "12.345", "0.000")


def test_export_keeps_status_customer_and_source_id(imported, tmp_path):
    rows, _ = export_to(tmp_path / "out.csv")
    grouped = by_number(rows)

    gb = grouped["GB-1"][0]
    assert gb["status"] == "open"  # stored as partially_paid; amount_paid says how much
    assert Invoice.objects.get(number="GB-1").status == "partially_paid"
    assert (gb["customer_name"], gb["customer_email"], gb["external_id"]) == (
        "Acme Stores",
        "accounts@acme.example",
        "ERP-1",
    )
    assert grouped["JP-1"][0]["status"] == "paid"
    assert grouped["KW-1"][0]["status"] == "draft"
    assert grouped["KW-1"][0]["external_id"] == ""


def test_unit_price_keeps_places_beyond_the_minor_unit(csv_file, tmp_path):
    run_import(
        csv_file(
            "invoice_number,customer_name,issue_date,currency,description,quantity,unit_price\n"
            "INV-1,Acme,2026-03-02,GBP,Screws,1000,0.0125\n"
        ),
        "--connection",
        "erp",
    )

    rows, _ = export_to(tmp_path / "out.csv")

    assert (rows[0]["quantity"], rows[0]["unit_price"], rows[0]["total"]) == ("1000", "0.0125", "12.50")


def test_importing_the_export_into_the_same_connection_changes_nothing(imported, tmp_path):
    path = tmp_path / "out.csv"
    export_to(path)
    history = (Invoice.history.count(), InvoiceLine.history.count())

    code, out, _ = run_import(path, "--connection", "erp")

    assert code == 0
    assert "0 created, 0 updated, 3 unchanged, 0 rejected" in out
    assert "imported 4, rejected 0" in out
    assert Invoice.objects.count() == 3
    assert InvoiceLine.objects.count() == 4
    assert Binding.objects.count() == 3
    assert Customer.objects.count() == 3
    assert (Invoice.history.count(), InvoiceLine.history.count()) == history
    assert set(Invoice.objects.values_list("row_version", flat=True)) == {1}


@pytest.mark.xfail(
    strict=True,
    reason="connectors/base.py content_hash covers the file's customer name, but customers are matched by "
    "email; the export writes the stored customer's name, so the re-import sees a change and updates",
)
def test_export_of_a_customer_matched_by_email_under_another_name_reimports_unchanged(csv_file, tmp_path):
    Customer.objects.create(name="Acme Stores Ltd", email="accounts@acme.example")
    run_import(
        csv_file(
            "invoice_number,customer_name,customer_email,issue_date,currency,description,quantity,unit_price\n"
            "INV-1,ACME STORES,accounts@acme.example,2026-03-02,GBP,Widgets,1,10.00\n"
        ),
        "--connection",
        "erp",
    )
    path = tmp_path / "out.csv"
    rows, _ = export_to(path)
    assert rows[0]["customer_name"] == "Acme Stores Ltd"

    code, out, _ = run_import(path, "--connection", "erp")

    assert code == 0
    assert re.search(r"0 created, 0 updated, 1 unchanged", out), out
    assert Invoice.objects.get().row_version == 1


def test_connection_option_exports_only_that_connections_invoices(imported, csv_file, tmp_path):
    run_import(
        csv_file(
            "invoice_number,customer_name,issue_date,currency,description,quantity,unit_price\n"
            "OTHER-1,Elsewhere Ltd,2026-03-09,EUR,Thing,1,10.00\n"
        ),
        "--connection",
        "webshop",
    )
    assert Invoice.objects.count() == 4

    only_erp, err = export_to(tmp_path / "erp.csv", "--connection", "erp")
    only_shop, _ = export_to(tmp_path / "shop.csv", "--connection", "webshop")
    everything, _ = export_to(tmp_path / "all.csv")

    assert sorted(by_number(only_erp)) == ["GB-1", "JP-1", "KW-1"]
    assert "exported 3 invoices" in err
    assert sorted(by_number(only_shop)) == ["OTHER-1"]
    assert sorted(by_number(everything)) == ["GB-1", "JP-1", "KW-1", "OTHER-1"]


def test_missing_connection_exits_2_and_writes_no_file(tmp_path):
    path = tmp_path / "out.csv"

    code, message = export_command("--connection", "nope", str(path))

    assert code == 2
    assert "no connection named 'nope'" in message
    assert not path.exists()
    assert not SyncJob.objects.exists()


def test_export_without_a_file_writes_csv_to_standard_output(imported, capsys):
    call_command("csv_export", stderr=StringIO())

    rows = list(csv.DictReader(StringIO(capsys.readouterr().out)))

    assert [row["invoice_number"] for row in rows] == ["GB-1", "GB-1", "JP-1", "KW-1"]


def test_export_to_standard_output_honours_call_command_stdout(imported):
    buffer = StringIO()

    call_command("csv_export", stdout=buffer, stderr=StringIO())

    assert buffer.getvalue().startswith("invoice_number,")
