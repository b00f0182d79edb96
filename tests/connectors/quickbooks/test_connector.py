"""QuickBooksConnector over recorded answers: incremental reads (CDC or query), lookups and writes."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
import time_machine

from connectors.base import AllocationRecord, ConflictError, NotFoundError, PaymentRecord, PushContext
from connectors.quickbooks.client import request_id
from connectors.quickbooks.rendering import short_reference
from tests.connectors.quickbooks.conftest import COMPANY, REALM, fixture, fixture_bytes

NOW = datetime(2025, 7, 27, 12, 0, tzinfo=UTC)


def sent(call) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(call.request.url).query).items()}


def invoice_rows(count: int, *, start_id: int = 1, at: datetime | None = None, step: int = 1) -> list[dict]:
    template = fixture("invoice.json")["Invoice"]
    rows = []
    for n in range(count):
        row = copy.deepcopy(template)
        moment = (at or NOW - timedelta(days=60)) + timedelta(seconds=n * step)
        row.update(Id=str(start_id + n), DocNumber=f"D{start_id + n}")
        row["MetaData"]["LastUpdatedTime"] = moment.isoformat()
        rows.append(row)
    return rows


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


# --- incremental reads --------------------------------------------------------------------------------
@responses.activate
def test_a_recent_cursor_reads_change_data_capture_and_reports_the_deletion(connector):
    responses.get(f"{COMPANY}/cdc", json=fixture("cdc_invoices.json"))
    page = connector.list_changes("invoice", since=NOW - timedelta(days=2))
    assert sent(responses.calls[0])["entities"] == "Invoice"
    updated, deleted, _ = page.changes
    assert (updated.external_id, updated.record.status, updated.remote_version) == (
        "239",
        "partially_paid",
        "1",
    )
    assert (deleted.external_id, deleted.deleted, deleted.record) == ("241", True, None)
    assert deleted.updated_at == datetime(2025, 7, 26, 16, 5, 12, tzinfo=UTC)
    assert page.next_page is None
    assert page.high_water == datetime(2025, 7, 26, 16, 6, tzinfo=UTC)


@responses.activate
def test_one_untranslatable_record_is_a_problem_and_the_page_goes_on(connector):
    responses.get(f"{COMPANY}/cdc", json=fixture("cdc_invoices.json"))
    broken = connector.list_changes("invoice", since=NOW - timedelta(days=2)).changes[2]
    assert (broken.record, broken.external_id) == (None, "242")
    assert (broken.problem.key, broken.problem.field, broken.problem.raw) == ("1073", "TxnDate", "not a date")
    assert broken.problem.location == "Invoice 242"


@responses.activate
def test_a_cursor_older_than_thirty_days_reads_by_query_from_that_time(connector):
    responses.get(f"{COMPANY}/query", json={"QueryResponse": {"Invoice": invoice_rows(2)}})
    since = NOW - timedelta(days=45)
    page = connector.list_changes("invoice", since=since)
    assert sent(responses.calls[0])["query"] == (
        "SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime >= '2025-06-12T12:00:00+00:00' "
        "ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 1000"
    )
    assert [change.external_id for change in page.changes] == ["1", "2"]
    assert page.next_page is None


@responses.activate
def test_a_first_read_queries_everything(connector):
    responses.get(f"{COMPANY}/query", json={"QueryResponse": {}})
    page = connector.list_changes("customer", since=None)
    assert sent(responses.calls[0])["query"] == (
        "SELECT * FROM Customer ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 1000"
    )
    assert (page.changes, page.next_page, page.high_water) == ([], None, None)


@responses.activate
def test_query_pages_continue_from_the_last_change_time_seen(connector):
    first = invoice_rows(1000)
    last = first[-1]["MetaData"]["LastUpdatedTime"]
    first[-2]["MetaData"]["LastUpdatedTime"] = last  # two rows share the last second
    responses.get(f"{COMPANY}/query", json={"QueryResponse": {"Invoice": first}})
    responses.get(f"{COMPANY}/query", json={"QueryResponse": {"Invoice": invoice_rows(3, start_id=1001)}})
    page = connector.list_changes("invoice", since=None)
    assert len(page.changes) == 1000 and page.next_page
    second = connector.list_changes("invoice", since=None, page=page.next_page)
    resume = datetime.fromisoformat(last).isoformat()
    assert sent(responses.calls[1])["query"] == (
        f"SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime >= '{resume}' "
        "ORDERBY MetaData.LastUpdatedTime STARTPOSITION 3 MAXRESULTS 1000"
    )
    assert second.next_page is None


@responses.activate
def test_a_full_page_all_in_one_second_moves_on_by_position(connector):
    moment = NOW - timedelta(days=40)
    responses.get(
        f"{COMPANY}/query", json={"QueryResponse": {"Invoice": invoice_rows(1000, at=moment, step=0)}}
    )
    page = connector.list_changes("invoice", since=moment)
    responses.get(f"{COMPANY}/query", json={"QueryResponse": {}})
    connector.list_changes("invoice", since=moment, page=page.next_page)
    assert sent(responses.calls[1])["query"].endswith("STARTPOSITION 1001 MAXRESULTS 1000")


@responses.activate
def test_a_full_cdc_answer_continues_from_its_newest_change(connector):
    rows = invoice_rows(1000, at=NOW - timedelta(days=3))
    responses.get(f"{COMPANY}/cdc", json={"CDCResponse": [{"QueryResponse": [{"Invoice": rows}]}]})
    page = connector.list_changes("invoice", since=NOW - timedelta(days=3))
    responses.get(f"{COMPANY}/cdc", json={"CDCResponse": [{"QueryResponse": [{}]}]})
    assert connector.list_changes("invoice", since=None, page=page.next_page).changes == []
    newest = datetime.fromisoformat(rows[-1]["MetaData"]["LastUpdatedTime"])
    assert sent(responses.calls[1])["changedSince"] == newest.isoformat()


@responses.activate
def test_payments_are_read_with_the_numbers_of_the_invoices_they_pay(connector):
    payment = fixture("payment.json")["Payment"]
    responses.get(f"{COMPANY}/cdc", json={"CDCResponse": [{"QueryResponse": [{"Payment": [payment]}]}]})
    responses.get(
        f"{COMPANY}/query", json={"QueryResponse": {"Invoice": [{"Id": "412", "DocNumber": "EU-42"}]}}
    )
    (change,) = connector.list_changes("payment", since=NOW - timedelta(days=1)).changes
    assert sent(responses.calls[1])["query"] == (
        "SELECT Id, DocNumber FROM Invoice WHERE Id IN ('412', '415') STARTPOSITION 1 MAXRESULTS 2"
    )
    assert [a.invoice_number for a in change.record.allocations] == ["EU-42", ""]


@responses.activate
def test_fetch_reads_one_record_and_a_missing_one_is_not_found(connector):
    responses.get(f"{COMPANY}/creditmemo/73", json={"CreditMemo": fixture("credit_memo.json")})
    responses.get(f"{COMPANY}/invoice/999", body=fixture_bytes("fault_not_found.json"), status=400)
    change = connector.fetch("credit_note", "73")
    assert (change.record.number, change.remote_version) == ("CN-1006", "1")
    with pytest.raises(NotFoundError):
        connector.fetch("invoice", "999")


@responses.activate
def test_a_record_without_currency_uses_the_connections_home_currency(connector):
    raw = fixture("invoice.json")
    del raw["Invoice"]["CurrencyRef"]
    responses.get(f"{COMPANY}/invoice/239", json=raw)
    assert connector.fetch("invoice", "239").record.currency == "GBP"


# --- lookups ------------------------------------------------------------------------------------------
@responses.activate
def test_find_by_reference_queries_docnumber_and_prefers_a_live_document(connector):
    voided = fixture("invoice_voided.json")
    live = fixture("invoice.json")["Invoice"]
    responses.get(f"{COMPANY}/query", json={"QueryResponse": {"Invoice": [voided, live]}})
    found = connector.find_by_reference("invoice", "O'Brien-7")
    assert sent(responses.calls[0])["query"] == (
        "SELECT * FROM Invoice WHERE DocNumber = 'O\\'Brien-7' ORDERBY Id STARTPOSITION 1 MAXRESULTS 10"
    )
    assert (found.external_id, found.number, found.remote_version, found.status) == (
        "239",
        "1070",
        "0",
        "open",
    )


@responses.activate
def test_find_by_reference_queries_payment_ref_num_and_may_find_nothing(connector):
    responses.get(f"{COMPANY}/query", json={"QueryResponse": {}})
    assert connector.find_by_reference("payment", "stripe:ch_3MqLongReference01") is None
    shortened = short_reference("stripe:ch_3MqLongReference01")
    assert f"WHERE PaymentRefNum = '{shortened}' " in sent(responses.calls[0])["query"]


@responses.activate
def test_reference_data_lists_items_accounts_and_tax_codes(connector):
    data = fixture("query_reference_data.json")
    for entity in ("Item", "Account", "TaxCode"):
        responses.get(f"{COMPANY}/query", json={"QueryResponse": {entity: data[entity]}})
    assert connector.reference_data("items")[1] == {
        "id": "3",
        "name": "Olive oil 5L",
        "active": True,
        "code": "OIL-5L",
        "type": "Inventory",
        "income_account": "1",
    }
    assert connector.reference_data("account")[0]["code"] == "4000"
    assert [code["name"] for code in connector.reference_data("tax_code")] == ["20.0% S", "0.0% Z"]


@responses.activate
def test_check_credentials_reads_the_company(connector):
    responses.get(f"{COMPANY}/companyinfo/{REALM}", json={"CompanyInfo": {"Id": REALM, "CompanyName": "X"}})
    connector.check_credentials()
    assert len(responses.calls) == 1


# --- writes -------------------------------------------------------------------------------------------
@responses.activate
def test_create_posts_the_payload_and_returns_what_quickbooks_made(connector):
    responses.post(f"{COMPANY}/invoice", json=fixture("invoice.json"))
    made = connector.create("invoice", {"DocNumber": "1070"}, idempotency_key="push-1")
    assert (made.external_id, made.number, made.remote_version, made.status) == ("239", "1070", "0", "open")
    assert sent(responses.calls[0])["requestid"] == request_id("Invoice", ":", "push-1")


@responses.activate
def test_update_is_sparse_at_the_known_sync_token_and_a_stale_one_is_a_conflict(connector):
    responses.post(f"{COMPANY}/invoice", body=fixture_bytes("fault_stale_object.json"), status=400)
    with pytest.raises(ConflictError):
        connector.update("invoice", "239", {"PrivateNote": "x"}, remote_version="0", idempotency_key="u-1")
    body = json.loads(responses.calls[0].request.body)
    assert body == {"PrivateNote": "x", "Id": "239", "SyncToken": "0", "sparse": True}
    assert sent(responses.calls[0])["operation"] == "update"


def test_update_without_a_sync_token_is_refused_before_any_request(connector):
    with pytest.raises(ConflictError):
        connector.update("invoice", "239", {"PrivateNote": "x"}, remote_version="", idempotency_key="u-1")


@responses.activate
def test_void_an_invoice_uses_the_void_operation(connector):
    responses.post(f"{COMPANY}/invoice", json={"Invoice": fixture("invoice_voided.json")})
    made = connector.void("invoice", "240", remote_version="1", idempotency_key="v-1")
    assert sent(responses.calls[0])["operation"] == "void"
    assert json.loads(responses.calls[0].request.body) == {"Id": "240", "SyncToken": "1"}
    assert (made.status, made.remote_version) == ("void", "2")


@responses.activate
def test_void_a_payment_is_a_sparse_update_including_void(connector):
    voided = fixture("payment.json")
    voided["Payment"].update(TotalAmt=0, PrivateNote="Voided", SyncToken="1")
    responses.get(f"{COMPANY}/payment/77", json=fixture("payment.json"))
    responses.post(f"{COMPANY}/payment", json=voided)
    made = connector.void("payment", "77", remote_version="", idempotency_key="v-2")
    query = sent(responses.calls[1])
    assert (query["operation"], query["include"]) == ("update", "void")
    assert json.loads(responses.calls[1].request.body) == {"Id": "77", "SyncToken": "0", "sparse": True}
    assert made.status == "void"


@responses.activate
def test_delete_uses_the_delete_operation_and_reports_deleted(connector):
    responses.post(
        f"{COMPANY}/creditmemo", json={"CreditMemo": {"Id": "73", "status": "Deleted", "domain": "QBO"}}
    )
    made = connector.delete("credit_note", "73", remote_version="1", idempotency_key="d-1")
    assert sent(responses.calls[0])["operation"] == "delete"
    assert (made.external_id, made.status) == ("73", "deleted")


@responses.activate
def test_record_payment_applies_it_to_the_mapped_invoices(connector):
    responses.post(f"{COMPANY}/payment", json=fixture("payment.json"))
    payment = PaymentRecord(
        external_id="ch_1",
        reference="ch_3Qx81",
        customer=None,
        transaction_date=NOW.date(),
        currency="EUR",
        amount=Decimal("130.00"),
        allocations=(AllocationRecord(invoice_number="EU-42", amount=Decimal("100.00")),),
    )
    context = PushContext(reference="ch_3Qx81", customer_id="58", invoice_ids={"EU-42": "412"})
    made = connector.record_payment(payment, context, idempotency_key="pay-1")
    body = json.loads(responses.calls[0].request.body)
    assert body["Line"] == [{"Amount": 100.0, "LinkedTxn": [{"TxnId": "412", "TxnType": "Invoice"}]}]
    assert (made.external_id, made.number, made.status) == ("77", "stripe-ch_3Qx81", "completed")
