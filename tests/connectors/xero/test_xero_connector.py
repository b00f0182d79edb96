"""XeroConnector over HTTP (faked with `responses`): pulls, look-ups, batch creates, updates with
UpdatedDateUTC as the version, void/delete, payments, credit allocations and choosing the tenant."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import responses
from responses import matchers

from connectors.base import (
    AllocationRecord,
    AuthNeededError,
    ConflictError,
    CreditNoteRecord,
    CustomerRecord,
    PaymentRecord,
    PermanentError,
    PushContext,
    RemoteRef,
    ValidationError,
)

from .conftest import API, TENANT, fixture

D = Decimal
INVOICE_ID = "7ef31b20-de17-4312-8382-412f869b1510"
CREDIT_NOTE_ID = "7be578f5-63af-45c8-9b00-dcc4732baf0b"
VERSION = "2018-11-02T16:37:28.927000+00:00"  # INV-0003's UpdatedDateUTC


def sent(call) -> dict:
    return json.loads(call.request.body)


def envelope(collection: str, *items: dict) -> dict:
    return {
        "Id": "e1",
        "Status": "OK",
        "ProviderName": "tests",
        "DateTimeUTC": "/Date(1552327126164)/",
        collection: list(items),
    }


def invoice(number: str) -> dict:
    return next(raw for raw in fixture("invoices_page.json")["Invoices"] if raw["InvoiceNumber"] == number)


# --- pulls ------------------------------------------------------------------------------------------
@responses.activate
def test_a_page_of_invoices_becomes_changes_and_one_bad_record_does_not_sink_it(connector):
    responses.get(
        f"{API}/Invoices",
        json=fixture("invoices_page.json"),
        match=[
            matchers.query_param_matcher(
                {
                    "page": "1",
                    "pageSize": "1000",
                    "order": "UpdatedDateUTC",
                    "where": 'Type=="ACCREC"',
                    "unitdp": "4",
                }
            ),
            matchers.header_matcher({"If-Modified-Since": "2018-11-01T00:00:00.000+00:00"}),
        ],
    )
    page = connector.list_changes("invoice", since=datetime(2018, 11, 1, tzinfo=UTC))
    assert len(page.changes) == 7
    # the next page is keyed by time: from just before the newest change on this one
    assert json.loads(page.next_page) == {"since": "2019-03-11T17:58:46.116000+00:00", "page": 1}
    assert page.high_water == datetime(2019, 3, 11, 17, 58, 46, 117000, tzinfo=UTC)
    first = page.changes[0]
    assert (first.external_id, first.record.number, first.remote_version) == (INVOICE_ID, "INV-0003", VERSION)
    assert first.updated_at == datetime(2018, 11, 2, 16, 37, 28, 927000, tzinfo=UTC)
    broken = page.changes[-1]
    assert broken.record is None
    assert (broken.problem.key, broken.problem.field, broken.problem.raw) == (
        "INV-0007",
        "CurrencyCode",
        "ZZZ",
    )
    assert broken.problem.location == "page 1"
    assert broken.external_id == "ed255415-e141-4150-aab7-89c3bbbb851c"


@responses.activate
def test_voided_and_deleted_invoices_are_reported_not_dropped(connector):
    responses.get(f"{API}/Invoices", json=fixture("invoices_page.json"))
    changes = {c.record.number: c for c in connector.list_changes("invoice", since=None).changes if c.record}
    assert changes["INV-0001"].record.status == "void" and not changes["INV-0001"].deleted
    assert changes["INV-0004"].deleted and changes["INV-0004"].record.status == "deleted"
    assert "If-Modified-Since" not in responses.calls[0].request.headers


@responses.activate
def test_the_next_page_asks_again_from_the_newest_change_and_the_last_page_says_so(connector):
    responses.get(
        f"{API}/Payments",
        json=fixture("payments_page.json"),
        match=[
            matchers.query_param_matcher({"page": "1"}, strict_match=False),
            matchers.header_matcher({"If-Modified-Since": "2019-03-11T17:58:46.116+00:00"}),
        ],
    )
    cursor = json.dumps({"since": "2019-03-11T17:58:46.116000+00:00", "page": 1})
    page = connector.list_changes("payment", since=None, page=cursor)
    assert page.next_page is None
    assert [c.record.status for c in page.changes] == ["completed", "void"]
    assert responses.calls[0].request.params["where"] == 'PaymentType=="ACCRECPAYMENT"'


@responses.activate
def test_the_next_page_is_keyed_by_time_so_an_edit_mid_pull_cannot_skip_a_record(connector):
    """Numbered pages skip a record when an earlier one is edited mid-pull; time-keyed pages cannot."""
    page_one = fixture("invoices_page.json")
    responses.get(f"{API}/Invoices", json=page_one)
    first = connector.list_changes("invoice", since=None)
    cursor = json.loads(first.next_page)
    assert cursor["page"] == 1
    assert datetime.fromisoformat(cursor["since"]) < first.high_water


@responses.activate
def test_credit_notes_and_contacts_are_pulled_with_their_own_filters(connector):
    responses.get(f"{API}/CreditNotes", json=fixture("credit_notes_page.json"))
    responses.get(f"{API}/Contacts", json=fixture("contacts_page.json"))
    notes = connector.list_changes("credit_note", since=None)
    contacts = connector.list_changes("customer", since=None)
    assert [c.record.number for c in notes.changes] == ["CN-0005", "CN-0006"]
    assert [c.record.name for c in contacts.changes] == ["Katherine Warren", "Lisa Parker"]
    assert responses.calls[0].request.params["where"] == 'Type=="ACCRECCREDIT"'
    assert responses.calls[1].request.params["includeArchived"] == "true"


def test_unknown_object_types_and_pages_are_permanent_errors(connector):
    with pytest.raises(PermanentError):
        connector.list_changes("payout", since=None)
    with pytest.raises(PermanentError):
        connector.list_changes("invoice", since=None, page="{not json")


@responses.activate
def test_fetch_reads_one_invoice_with_four_place_unit_amounts(connector):
    responses.get(
        f"{API}/Invoices/{INVOICE_ID}",
        json=envelope("Invoices", invoice("INV-0003")),
        match=[matchers.query_param_matcher({"unitdp": "4"})],
    )
    change = connector.fetch("invoice", INVOICE_ID)
    assert change.record.lines[1].unit_price == D("40.1234")
    assert change.remote_version == VERSION


@responses.activate
def test_a_payment_split_over_invoices_is_fetched_as_one(connector):
    first, second = fixture("payments_page.json")["Payments"]
    second = {**second, "Status": "AUTHORISED"}
    responses.get(f"{API}/Payments/{first['PaymentID']}", json=envelope("Payments", first))
    responses.get(f"{API}/Payments/{second['PaymentID']}", json=envelope("Payments", second))
    change = connector.fetch("payment", f"{first['PaymentID']},{second['PaymentID']}")
    assert change.record.amount == D("47.00")
    assert [a.invoice_number for a in change.record.allocations] == ["INV-0002", "INV-0005"]


# --- look-ups ---------------------------------------------------------------------------------------
@responses.activate
def test_an_invoice_is_found_by_number_first(connector):
    responses.get(
        f"{API}/Invoices",
        json=envelope("Invoices", invoice("INV-0003")),
        match=[
            matchers.query_param_matcher(
                {"InvoiceNumbers": "INV-0003", "where": 'Type=="ACCREC"'}, strict_match=False
            )
        ],
    )
    ref = connector.find_by_reference("invoice", "INV-0003")
    assert (ref.external_id, ref.number, ref.status, ref.remote_version) == (
        INVOICE_ID,
        "INV-0003",
        "partially_paid",
        VERSION,
    )


@responses.activate
def test_then_by_reference_with_the_text_quoted_for_where(connector):
    responses.get(f"{API}/Invoices", json=envelope("Invoices"))
    responses.get(f"{API}/Invoices", json=envelope("Invoices", invoice("INV-0003")))
    ref = connector.find_by_reference("invoice", 'LL "7"')
    assert ref.external_id == INVOICE_ID
    assert responses.calls[1].request.params["where"] == 'Type=="ACCREC" AND Reference=="LL \\"7\\""'


@responses.activate
def test_a_live_match_wins_over_a_deleted_one_and_nothing_found_is_none(connector):
    deleted = {
        **invoice("INV-0003"),
        "InvoiceID": "dead",
        "Status": "DELETED",
        "UpdatedDateUTC": "/Date(1600000000000)/",
    }
    responses.get(f"{API}/Invoices", json=envelope("Invoices", deleted, invoice("INV-0003")))
    assert connector.find_by_reference("invoice", "INV-0003").external_id == INVOICE_ID
    responses.get(f"{API}/CreditNotes", json=envelope("CreditNotes"))
    assert connector.find_by_reference("credit_note", "LL-CN-1") is None
    assert connector.find_by_reference("invoice", "") is None


@responses.activate
def test_payments_are_found_by_reference_and_a_split_one_comes_back_whole(connector):
    first, second = fixture("payments_page.json")["Payments"]
    second = {**second, "Status": "AUTHORISED"}
    responses.get(f"{API}/Payments", json=envelope("Payments", first, second))
    ref = connector.find_by_reference("payment", "LL-PAY-77")
    assert ref.external_id == f"{first['PaymentID']},{second['PaymentID']}"
    assert (
        responses.calls[0].request.params["where"]
        == 'PaymentType=="ACCRECPAYMENT" AND Reference=="LL-PAY-77"'
    )


@responses.activate
def test_contacts_are_found_by_contact_number(connector):
    responses.get(f"{API}/Contacts", json=envelope("Contacts", fixture("contacts_page.json")["Contacts"][0]))
    assert connector.find_by_reference("customer", "LL-CUST-9").number == "LL-CUST-9"
    assert responses.calls[0].request.params["where"] == 'ContactNumber=="LL-CUST-9"'


# --- creates ----------------------------------------------------------------------------------------
@responses.activate
def test_many_invoices_go_in_one_put_and_each_gets_its_own_result(connector, request_validator):
    responses.put(
        f"{API}/Invoices",
        json=fixture("invoices_put_results.json"),
        match=[
            matchers.query_param_matcher({"summarizeErrors": "false", "unitdp": "4"}),
            matchers.header_matcher({"Idempotency-Key": "batch-9"}),
        ],
    )
    payloads = [
        {"Type": "ACCREC", "Contact": {"ContactID": "430fa14a-f945-44d3-9f97-5df5e28441b8"}, "Reference": ref}
        for ref in ("LL-INV-1001", "LL-INV-1002", "LL-INV-1003")
    ]
    results = connector.create_many("invoice", payloads, idempotency_key="batch-9")
    assert isinstance(results[0], RemoteRef)
    assert (results[0].external_id, results[0].number, results[0].status) == (
        "ed255415-e141-4150-aab7-89c3bbbb851c",
        "INV-0007",
        "open",
    )
    assert results[0].remote_version == "2019-03-11T17:58:46.117000+00:00"
    assert isinstance(results[1], ValidationError) and results[1].field == "InvoiceNumber"
    assert isinstance(results[2], ValidationError) and (results[2].field, results[2].value) == (
        "AccountCode",
        "999",
    )
    assert sent(responses.calls[0]) == {"Invoices": payloads}
    request_validator("Invoices", sent(responses.calls[0]))


@responses.activate
def test_create_is_a_batch_of_one_and_raises_its_refusal(connector):
    refused = fixture("invoices_put_results.json")["Invoices"][1]
    responses.put(f"{API}/Invoices", json=envelope("Invoices", refused))
    with pytest.raises(ValidationError, match="must be unique"):
        connector.create("invoice", {"Type": "ACCREC"}, idempotency_key="one")


@responses.activate
def test_a_contact_is_created_without_unit_places(connector, request_validator):
    contact = fixture("contacts_page.json")["Contacts"][0]
    responses.put(
        f"{API}/Contacts",
        json=envelope("Contacts", contact),
        match=[matchers.query_param_matcher({"summarizeErrors": "false"})],
    )
    payload = connector.render(
        "customer", CustomerRecord(name="Katherine Warren"), PushContext(reference="LL-CUST-9")
    )
    ref = connector.create("customer", payload, idempotency_key="c1")
    assert (ref.external_id, ref.number) == ("5cc8cf28-567e-4d43-b287-687cfcaec47c", "LL-CUST-9")
    request_validator("Contacts", sent(responses.calls[0]))


def test_a_short_answer_to_a_batch_is_a_permanent_error(connector):
    with responses.RequestsMock() as mocked:
        mocked.put(f"{API}/Invoices", json=envelope("Invoices"))
        with pytest.raises(PermanentError, match="0 Invoices for 1 sent"):
            connector.create_many("invoice", [{}], idempotency_key="k")
    assert connector.create_many("invoice", [], idempotency_key="k") == []
    with pytest.raises(PermanentError):
        connector.create_many("payment", [{}], idempotency_key="k")


# --- updates, void, delete --------------------------------------------------------------------------
@responses.activate
def test_an_update_posts_when_updated_date_utc_is_still_the_version(connector, request_validator):
    responses.get(f"{API}/Invoices/{INVOICE_ID}", json=envelope("Invoices", invoice("INV-0003")))
    changed = {**invoice("INV-0003"), "Reference": "PO-9", "UpdatedDateUTC": "/Date(1700000000000+0000)/"}
    responses.post(
        f"{API}/Invoices/{INVOICE_ID}",
        json=envelope("Invoices", changed),
        match=[matchers.header_matcher({"Idempotency-Key": "upd-1"})],
    )
    ref = connector.update(
        "invoice", INVOICE_ID, {"Reference": "PO-9"}, remote_version=VERSION, idempotency_key="upd-1"
    )
    assert ref.remote_version == "2023-11-14T22:13:20+00:00"
    assert sent(responses.calls[1]) == {"Invoices": [{"Reference": "PO-9", "InvoiceID": INVOICE_ID}]}
    request_validator("Invoices", sent(responses.calls[1]))


@responses.activate
def test_an_update_over_a_newer_remote_copy_is_a_conflict_and_sends_nothing(connector):
    responses.get(f"{API}/Invoices/{INVOICE_ID}", json=envelope("Invoices", invoice("INV-0003")))
    with pytest.raises(ConflictError):
        connector.update(
            "invoice",
            INVOICE_ID,
            {"Reference": "x"},
            remote_version="/Date(1541176000000+0000)/",
            idempotency_key="u",
        )
    assert len(responses.calls) == 1


@responses.activate
def test_an_approved_invoice_is_voided(connector, request_validator):
    responses.get(f"{API}/Invoices/{INVOICE_ID}", json=envelope("Invoices", invoice("INV-0003")))
    voided = {**invoice("INV-0003"), "Status": "VOIDED"}
    responses.post(f"{API}/Invoices/{INVOICE_ID}", json=envelope("Invoices", voided))
    ref = connector.void("invoice", INVOICE_ID, remote_version=VERSION, idempotency_key="v1")
    assert ref.status == "void"
    assert sent(responses.calls[1]) == {"Invoices": [{"Status": "VOIDED", "InvoiceID": INVOICE_ID}]}
    request_validator("Invoices", sent(responses.calls[1]))


@responses.activate
def test_voiding_a_draft_deletes_it_because_xero_voids_only_approved_ones(connector):
    draft = invoice("INV-0006")
    responses.get(f"{API}/Invoices/{draft['InvoiceID']}", json=envelope("Invoices", draft))
    responses.post(
        f"{API}/Invoices/{draft['InvoiceID']}", json=envelope("Invoices", {**draft, "Status": "DELETED"})
    )
    ref = connector.void("invoice", draft["InvoiceID"], remote_version="", idempotency_key="v2")
    assert ref.status == "deleted"
    assert sent(responses.calls[1])["Invoices"][0]["Status"] == "DELETED"


@responses.activate
def test_voiding_twice_changes_nothing(connector):
    voided = invoice("INV-0001")
    responses.get(f"{API}/Invoices/{voided['InvoiceID']}", json=envelope("Invoices", voided))
    assert (
        connector.void("invoice", voided["InvoiceID"], remote_version="", idempotency_key="v3").status
        == "void"
    )
    assert len(responses.calls) == 1


@responses.activate
def test_xeros_refusal_to_void_a_paid_invoice_comes_back_as_a_validation_error(connector):
    paid = invoice("INV-0002")
    responses.get(f"{API}/Invoices/{paid['InvoiceID']}", json=envelope("Invoices", paid))
    refusal = {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": "A validation exception occurred",
        "Elements": [{"ValidationErrors": [{"Message": "Invoice not of valid status for modification"}]}],
    }
    responses.post(f"{API}/Invoices/{paid['InvoiceID']}", status=400, json=refusal)
    with pytest.raises(ValidationError, match="not of valid status"):
        connector.void("invoice", paid["InvoiceID"], remote_version="", idempotency_key="v4")


@responses.activate
def test_a_credit_note_is_deleted_by_status(connector):
    note = {**fixture("credit_notes_page.json")["CreditNotes"][0], "Status": "DRAFT"}
    responses.get(f"{API}/CreditNotes/{CREDIT_NOTE_ID}", json=envelope("CreditNotes", note))
    responses.post(
        f"{API}/CreditNotes/{CREDIT_NOTE_ID}", json=envelope("CreditNotes", {**note, "Status": "DELETED"})
    )
    assert connector.delete("credit_note", CREDIT_NOTE_ID, idempotency_key="d1").status == "deleted"
    assert sent(responses.calls[1]) == {
        "CreditNotes": [{"Status": "DELETED", "CreditNoteID": CREDIT_NOTE_ID}]
    }


@responses.activate
def test_a_payment_is_voided_by_deleting_it(connector, request_validator):
    payment = fixture("payments_page.json")["Payments"][0]
    responses.post(
        f"{API}/Payments/{payment['PaymentID']}",
        json=envelope("Payments", {**payment, "Status": "DELETED"}),
        match=[matchers.header_matcher({"Idempotency-Key": "pv"})],
    )
    assert (
        connector.void("payment", payment["PaymentID"], remote_version="", idempotency_key="pv").status
        == "void"
    )
    assert sent(responses.calls[0]) == {"Status": "DELETED"}
    request_validator("PaymentDelete", sent(responses.calls[0]))


# --- payments and credit ----------------------------------------------------------------------------
def payment_record(*allocations: AllocationRecord) -> PaymentRecord:
    return PaymentRecord(
        external_id="ch_1",
        reference="ch_1",
        customer=None,
        transaction_date=date(2026, 3, 12),
        currency="NZD",
        amount=sum((a.amount for a in allocations), D(0)),
        allocations=allocations,
    )


PAY_CONTEXT = PushContext(
    reference="LL-PAY-77",
    deposit_account="090",
    invoice_ids={
        "1001": "046d8a6d-1ae1-4b4d-9340-5601bdf41b87",
        "1002": "c7c37b83-ac95-45ea-88ba-8ad83a5f22fe",
    },
)


@responses.activate
def test_a_payment_is_recorded_against_its_invoice(connector, request_validator):
    answer = fixture("payments_page.json")["Payments"][0]
    responses.put(
        f"{API}/Payments",
        json=envelope("Payments", answer),
        match=[
            matchers.query_param_matcher({"summarizeErrors": "false"}),
            matchers.header_matcher({"Idempotency-Key": "pay-1"}),
        ],
    )
    ref = connector.record_payment(
        payment_record(AllocationRecord("1001", D("46.00"))), PAY_CONTEXT, idempotency_key="pay-1"
    )
    assert (ref.external_id, ref.status) == (answer["PaymentID"], "completed")
    body = sent(responses.calls[0])
    assert body["Payments"][0]["Invoice"] == {"InvoiceID": "046d8a6d-1ae1-4b4d-9340-5601bdf41b87"}
    assert body["Payments"][0]["Reference"] == "LL-PAY-77"
    request_validator("Payments", body)


@responses.activate
def test_a_payment_over_two_invoices_comes_back_as_both_ids(connector):
    first, second = fixture("payments_page.json")["Payments"]
    responses.put(f"{API}/Payments", json=envelope("Payments", first, {**second, "Status": "AUTHORISED"}))
    record = payment_record(AllocationRecord("1001", D("46.00")), AllocationRecord("1002", D("1.00")))
    ref = connector.record_payment(record, PAY_CONTEXT, idempotency_key="pay-2")
    assert ref.external_id == f"{first['PaymentID']},{second['PaymentID']}"
    assert len(sent(responses.calls[0])["Payments"]) == 2


@responses.activate
def test_a_refused_part_of_a_payment_is_reported_with_what_did_go_through(connector):
    first = fixture("payments_page.json")["Payments"][0]
    refused = {
        "Invoice": {"InvoiceID": "c7c37b83-ac95-45ea-88ba-8ad83a5f22fe"},
        "Amount": 1.0,
        "HasValidationErrors": True,
        "ValidationErrors": [{"Message": "Payment amount exceeds the amount outstanding on this document"}],
    }
    responses.put(f"{API}/Payments", json=envelope("Payments", first, refused))
    record = payment_record(AllocationRecord("1001", D("46.00")), AllocationRecord("1002", D("1.00")))
    with pytest.raises(ValidationError) as caught:
        connector.record_payment(record, PAY_CONTEXT, idempotency_key="pay-3")
    assert caught.value.field == "Amount"
    assert "invoice 1002" in str(caught.value) and first["PaymentID"] in str(caught.value)


@responses.activate
def test_a_credit_note_is_allocated_to_invoices(connector, request_validator):
    answer = {
        "AllocationID": "b12335f4-a1ab-4ec4-9a9c-2d8a6f3e4c11",
        "Amount": 10.0,
        "Date": "/Date(1551830400000+0000)/",
        "Invoice": {"InvoiceID": "046d8a6d-1ae1-4b4d-9340-5601bdf41b87", "InvoiceNumber": "INV-0002"},
        "ValidationErrors": [],
    }
    responses.put(
        f"{API}/CreditNotes/{CREDIT_NOTE_ID}/Allocations",
        json=envelope("Allocations", answer),
        match=[matchers.header_matcher({"Idempotency-Key": "alloc-1"})],
    )
    note = CreditNoteRecord(
        external_id="cn",
        number="CN7",
        customer=CustomerRecord(name="Liam"),
        issue_date=date(2026, 3, 5),
        currency="NZD",
        status="open",
        lines=(),
        subtotal=D(10),
        tax_total=D(0),
        total=D(10),
        remaining_credit=D(10),
        allocations=(AllocationRecord("1001", D("10.00")),),
    )
    (ref,) = connector.allocate_credit_note(CREDIT_NOTE_ID, note, PAY_CONTEXT, idempotency_key="alloc-1")
    assert (ref.external_id, ref.number) == ("b12335f4-a1ab-4ec4-9a9c-2d8a6f3e4c11", "INV-0002")
    responses.put(
        f"{API}/CreditNotes/{CREDIT_NOTE_ID}/Allocations",
        json=envelope(
            "Allocations",
            {**answer, "ValidationErrors": [{"Message": "Amount exceeds the remaining credit"}]},
        ),
    )
    with pytest.raises(ValidationError, match="remaining credit"):
        connector.allocate_credit_note(CREDIT_NOTE_ID, note, PAY_CONTEXT, idempotency_key="alloc-2")
    request_validator("Allocations", sent(responses.calls[0]))


# --- set-up -----------------------------------------------------------------------------------------
@responses.activate
def test_after_consent_the_first_organisation_becomes_the_tenant(connector, connection):
    connection.options = {}
    connection.save()
    responses.get("https://api.xero.com/connections", json=fixture("connections.json"))
    connector.after_authorisation()
    connection.refresh_from_db()
    assert connection.options["tenant_id"] == TENANT  # the PRACTICE before it is not an organisation
    assert connection.options["tenant_name"] == "Demo Company (NZ)"
    assert connector.client.limiter_key() == f"xero:tenant:{TENANT}"


@responses.activate
def test_a_reconnect_keeps_the_organisation_already_chosen(connector, connection):
    connection.options = {"tenant_id": "0c6f7e8d-1a2b-4c3d-9e8f-7a6b5c4d3e2f"}
    connection.save()
    responses.get("https://api.xero.com/connections", json=fixture("connections.json"))
    connector.after_authorisation()
    connection.refresh_from_db()
    assert connection.options["tenant_id"] == "0c6f7e8d-1a2b-4c3d-9e8f-7a6b5c4d3e2f"


@responses.activate
def test_a_login_without_an_organisation_must_connect_again(connector):
    responses.get("https://api.xero.com/connections", json=[])
    with pytest.raises(AuthNeededError):
        connector.after_authorisation()


@responses.activate
def test_check_credentials_reads_the_organisation(connector):
    responses.get(f"{API}/Organisation", json=envelope("Organisations", {"Name": "Demo"}))
    connector.check_credentials()
    responses.get(f"{API}/Organisation", status=401, json={"Detail": "AuthenticationUnsuccessful"})
    responses.post("https://identity.xero.com/connect/token", status=400, json={"error": "invalid_grant"})
    with pytest.raises(AuthNeededError):
        connector.check_credentials()


@responses.activate
def test_reference_data_lists_accounts_tax_rates_and_items(connector):
    settings = fixture("settings.json")
    for name in ("Accounts", "TaxRates", "Items"):
        responses.get(f"{API}/{name}", json=settings[name])
    accounts = connector.reference_data("accounts")
    assert accounts[0] == {
        "id": "66b262e2-561e-423e-8937-47d558f13442",
        "code": "200",
        "name": "Sales",
        "type": "REVENUE",
        "tax_code": "OUTPUT2",
        "status": "ACTIVE",
    }
    assert connector.reference_data("tax_rates")[0] == {
        "code": "OUTPUT2",
        "name": "15% GST on Income",
        "rate": "15.0",
        "status": "ACTIVE",
    }
    assert connector.reference_data("items")[0]["code"] == "123"
    with pytest.raises(ValidationError):
        connector.reference_data("currencies")
