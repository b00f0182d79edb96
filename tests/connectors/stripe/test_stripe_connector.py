"""The Stripe connector over HTTP (faked with `responses`): incremental reads through events, full listings,
payments with fees and allocations, payouts, lookups by reference, and the writes with their keys."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import responses
import time_machine

from connectors.base import (
    AllocationRecord,
    AuthNeededError,
    ConflictError,
    LineRecord,
    NotFoundError,
    PaymentRecord,
    PushContext,
    ValidationError,
)
from connectors.stripe.connector import EVENT_TYPES, StripeConnector, invoice_version
from tests.connectors.stripe.conftest import BASE, CONTEXT, canonical_invoice, load

NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)


def listing(data, has_more=False, url="/v1/x"):
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def event(event_id, kind, obj, created):
    return {"id": event_id, "object": "event", "type": kind, "created": created, "data": {"object": obj}}


def query(call):
    return parse_qs(urlsplit(call.request.url).query)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def usd():
    return load("invoice_usd_open")


# --- incremental reads ----------------------------------------------------------------------------------
@responses.activate
def test_a_recent_since_reads_events_of_the_object_type(connector, usd):
    since = NOW - timedelta(days=2)
    paid = {**usd, "status": "paid", "amount_paid": 51117, "amount_remaining": 0}
    responses.get(
        f"{BASE}/events",
        json=listing(
            [
                event("evt_3", "invoice.paid", paid, 1768900000),
                event("evt_2", "invoice.finalized", usd, 1768800000),
                event("evt_1", "invoice.created", load("invoice_jpy_paid"), 1768700000),
            ],
            has_more=True,
        ),
    )
    page = connector.list_changes("invoice", since=since)
    sent = query(responses.calls[0])
    assert sent["types[]"] == list(EVENT_TYPES["invoice"])
    assert sent["created[gte]"] == [str(int(since.timestamp()))]
    assert sent["limit"] == ["100"]
    # one change per object: its newest event
    assert [(c.external_id, c.record.status) for c in page.changes] == [
        ("in_1QaUsdOpen0000000000001", "paid"),
        ("in_1QbJpyPaid0000000000001", "paid"),
    ]
    assert page.changes[0].updated_at == datetime.fromtimestamp(1768900000, UTC)
    assert page.changes[0].remote_version == invoice_version(paid)
    assert page.high_water == datetime.fromtimestamp(1768900000, UTC)
    assert page.next_page.startswith("events:evt_1:")


@responses.activate
def test_the_next_events_page_continues_after_the_cursor(connector, usd):
    since = NOW - timedelta(days=2)
    responses.get(f"{BASE}/events", json=listing([event("evt_0", "invoice.created", usd, 1768600000)]))
    page = connector.list_changes("invoice", since=since, page=f"events:evt_1:{NOW.timestamp()}")
    assert query(responses.calls[0])["starting_after"] == ["evt_1"]
    assert page.next_page is None


@responses.activate
def test_a_deleted_draft_is_reported_not_dropped(connector, usd):
    draft = {**usd, "status": "draft", "number": None}
    responses.get(f"{BASE}/events", json=listing([event("evt_9", "invoice.deleted", draft, 1768900000)]))
    (change,) = connector.list_changes("invoice", since=NOW - timedelta(hours=1)).changes
    assert (change.external_id, change.deleted, change.record) == ("in_1QaUsdOpen0000000000001", True, None)


@responses.activate
def test_a_voided_invoice_is_reported_as_void(connector, usd):
    voided = {**usd, "status": "void", "amount_remaining": 0}
    responses.get(f"{BASE}/events", json=listing([event("evt_9", "invoice.voided", voided, 1768900000)]))
    (change,) = connector.list_changes("invoice", since=NOW - timedelta(hours=1)).changes
    assert change.record.status == "void"


@responses.activate
def test_one_bad_record_is_a_problem_and_the_page_goes_on(connector, usd):
    broken = {**load("invoice_jpy_paid"), "currency": "yen"}
    responses.get(
        f"{BASE}/events",
        json=listing(
            [event("evt_2", "invoice.updated", broken, 1768900000), event("evt_1", "invoice.created", usd, 1)]
        ),
    )
    bad, good = connector.list_changes("invoice", since=NOW - timedelta(days=1)).changes
    assert bad.record is None
    assert (bad.problem.key, bad.problem.field, bad.problem.raw) == ("SAK-0007", "currency", "yen")
    assert good.record.number == "HUD-0042"


@responses.activate
def test_without_since_every_invoice_is_listed(connector, usd):
    responses.get(f"{BASE}/invoices", json=listing([usd], has_more=True))
    page = connector.list_changes("invoice", since=None)
    assert "created[gte]" not in query(responses.calls[0])
    assert page.next_page == f"invoices:in_1QaUsdOpen0000000000001:{NOW.timestamp()}"
    assert page.high_water == NOW
    responses.get(f"{BASE}/invoices", json=listing([load("invoice_jpy_paid")]))
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        last = connector.list_changes("invoice", since=None, page=page.next_page)
    assert query(responses.calls[1])["starting_after"] == ["in_1QaUsdOpen0000000000001"]
    # the listing's start, not the time of its last page, is what the caller may resume from
    assert (last.next_page, last.high_water) == (None, NOW)


@responses.activate
def test_a_since_older_than_the_events_kept_lists_everything(connector, usd):
    responses.get(f"{BASE}/invoices", json=listing([usd]))
    connector.list_changes("invoice", since=NOW - timedelta(days=31))
    assert urlsplit(responses.calls[0].request.url).path.endswith("/invoices")
    assert "created[gte]" not in query(responses.calls[0])


@responses.activate
def test_payments_list_charges_then_refunds_with_fees_and_allocations(connector):
    charge = load("charge")
    invoice_payment = {**load("invoice_payment"), "invoice": load("invoice_usd_open")}
    responses.get(f"{BASE}/charges", json=listing([charge]))
    responses.get(f"{BASE}/invoice_payments", json=listing([invoice_payment]))
    page = connector.list_changes("payment", since=None)
    assert query(responses.calls[0])["expand[]"] == ["data.balance_transaction"]
    assert dict(parse_qsl(urlsplit(responses.calls[1].request.url).query)) == {
        "payment[type]": "payment_intent",
        "payment[payment_intent]": "pi_3QdIntent00000000000001",
        "expand[]": "data.invoice",
        "limit": "100",
    }
    (change,) = page.changes
    assert (change.record.amount, change.record.fee) == (Decimal("511.17"), Decimal("15.12"))
    assert change.record.allocations[0].invoice_number == "HUD-0042"
    assert page.next_page == f"refunds::{NOW.timestamp()}"

    responses.get(f"{BASE}/refunds", json=listing([load("refund")]))
    refunds = connector.list_changes("payment", since=None, page=page.next_page)
    assert refunds.changes[0].record.amount == Decimal(-11250)
    assert refunds.next_page is None


@responses.activate
def test_payment_events_read_the_current_charge_with_its_fee(connector):
    bare = {**load("charge"), "balance_transaction": "txn_3QdCharge00000000000001"}
    responses.get(f"{BASE}/events", json=listing([event("evt_1", "charge.succeeded", bare, 1768900000)]))
    responses.get(f"{BASE}/charges/ch_3QdCharge00000000000001", json=load("charge"))
    responses.get(f"{BASE}/invoice_payments", json=listing([]))
    (change,) = connector.list_changes("payment", since=NOW - timedelta(days=1)).changes
    assert query(responses.calls[1])["expand[]"] == ["balance_transaction"]
    assert change.record.fee == Decimal("15.12")
    assert change.updated_at == datetime.fromtimestamp(1768900000, UTC)


@responses.activate
def test_payouts_come_with_their_balance_transactions(connector):
    responses.get(f"{BASE}/payouts", json=listing([load("payout")]))
    responses.get(f"{BASE}/balance_transactions", json=load("payout_balance_transactions"))
    (change,) = connector.list_changes("payout", since=None).changes
    assert query(responses.calls[1])["payout"] == ["po_1QgPayout00000000000001"]
    assert [line.kind for line in change.record.lines] == ["charge", "refund", "payout"]


@responses.activate
def test_credit_notes_from_events(connector):
    note = load("credit_note")
    responses.get(f"{BASE}/events", json=listing([event("evt_1", "credit_note.created", note, 1768900000)]))
    (change,) = connector.list_changes("credit_note", since=NOW - timedelta(days=3)).changes
    assert change.record.number == "HUD-0042-CN-01"
    assert query(responses.calls[0])["types[]"] == list(EVENT_TYPES["credit_note"])


# --- single reads ---------------------------------------------------------------------------------------
@responses.activate
def test_fetch_reads_one_invoice(connector, usd):
    responses.get(f"{BASE}/invoices/in_1QaUsdOpen0000000000001", json=usd)
    change = connector.fetch("invoice", "in_1QaUsdOpen0000000000001")
    assert change.record.total == Decimal("511.17")


@responses.activate
def test_fetch_of_a_missing_invoice_is_not_found(connector):
    body = {
        "error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "param": "id",
            "message": "No such invoice: 'in_nope'",
        }
    }
    responses.get(f"{BASE}/invoices/in_nope", json=body, status=404)
    with pytest.raises(NotFoundError):
        connector.fetch("invoice", "in_nope")


@responses.activate
def test_fetch_a_refund_by_its_id(connector):
    responses.get(f"{BASE}/refunds/re_3QeRefund00000000000001", json=load("refund"))
    assert connector.fetch("payment", "re_3QeRefund00000000000001").record.amount == Decimal(-11250)


def test_fetch_of_an_id_that_is_no_payment_is_not_found(connector):
    with pytest.raises(NotFoundError):
        connector.fetch("payment", "cus_123")


@responses.activate
def test_check_credentials_reads_one_invoice(connector):
    responses.get(f"{BASE}/invoices", json=listing([]))
    connector.check_credentials()
    assert query(responses.calls[0])["limit"] == ["1"]


def test_check_credentials_refuses_a_publishable_key(connector):
    connector.connection.credentials = {"api_key": "pk_test_123"}
    with pytest.raises(AuthNeededError):
        connector.check_credentials()


# --- reference lookups ----------------------------------------------------------------------------------
@responses.activate
def test_find_by_reference_searches_the_metadata(connector, usd):
    responses.get(
        f"{BASE}/invoices/search", json={"object": "search_result", "data": [usd], "has_more": False}
    )
    ref = connector.find_by_reference("invoice", "LL-INV-0042")
    assert (ref.external_id, ref.number, ref.status) == ("in_1QaUsdOpen0000000000001", "HUD-0042", "open")
    assert query(responses.calls[0])["query"] == ["metadata['ledgerlink_reference']:'LL-INV-0042'"]


@responses.activate
def test_find_by_reference_escapes_quotes(connector):
    responses.get(f"{BASE}/invoices/search", json={"object": "search_result", "data": [], "has_more": False})
    responses.get(f"{BASE}/invoices", json=listing([]))
    assert connector.find_by_reference("invoice", "O'Brien 1") is None
    assert query(responses.calls[0])["query"] == ["metadata['ledgerlink_reference']:'O\\'Brien 1'"]


@responses.activate
def test_find_by_reference_lists_recent_invoices_while_search_lags(connector, usd):
    responses.get(f"{BASE}/invoices/search", json={"object": "search_result", "data": [], "has_more": False})
    other = {**load("invoice_jpy_paid"), "metadata": {"ledgerlink_reference": "LL-OTHER"}}
    responses.get(f"{BASE}/invoices", json=listing([other, usd]))
    assert connector.find_by_reference("invoice", "LL-INV-0042").external_id == usd["id"]
    assert query(responses.calls[1])["created[gte]"] == [str(int(NOW.timestamp()) - 3600)]


# --- writes ---------------------------------------------------------------------------------------------
def test_render_builds_the_draft_its_items_and_finalisation():
    payload = StripeConnector.render("invoice", canonical_invoice(), CONTEXT)
    assert payload["invoice"] == {
        "customer": "cus_HudsonAnalytics01",
        "currency": "usd",
        "collection_method": "send_invoice",
        "days_until_due": 14,
        "auto_advance": False,
        "pending_invoice_items_behavior": "exclude",
        "effective_at": 1767312000,
        "description": "January work",
        "metadata": {"ledgerlink_reference": "LL-INV-7", "ledgerlink_number": "INV-7"},
    }
    assert payload["items"] == [
        {
            "currency": "usd",
            "description": "Consulting (hours)",
            "quantity": 3,
            "unit_amount_decimal": "15000",
            "tax_rates": ["txr_1QaNySalesTax0001"],
        },
        {"currency": "usd", "description": "Support plan (1.5 x 13.00)", "amount": 1950},
    ]
    assert payload["finalize"] is True


def test_render_of_yen_and_dinars_uses_their_minor_units():
    line = LineRecord("Workshop", Decimal(2), Decimal(22500), Decimal(45000), Decimal(0), Decimal(45000))
    payload = StripeConnector.render("invoice", canonical_invoice(currency="JPY", lines=(line,)), CONTEXT)
    assert payload["items"][0] == {
        "currency": "jpy",
        "description": "Workshop",
        "quantity": 2,
        "unit_amount_decimal": "22500",
        "tax_rates": ["txr_1QaNySalesTax0001"],
    }
    line = LineRecord("Fee", Decimal(3), Decimal("4.115"), Decimal("12.345"), Decimal(0), Decimal("12.345"))
    payload = StripeConnector.render(
        "invoice",
        canonical_invoice(currency="KWD", lines=(line,)),
        PushContext(reference="r", customer_id="cus_1"),
    )
    assert payload["items"][0]["unit_amount_decimal"] == "4115"


def test_render_refuses_tax_without_a_mapped_rate():
    with pytest.raises(ValidationError) as caught:
        StripeConnector.render(
            "invoice", canonical_invoice(), PushContext(reference="r", customer_id="cus_1")
        )
    assert caught.value.field == "lines[0].tax_code"


def test_render_needs_a_customer():
    with pytest.raises(ValidationError) as caught:
        StripeConnector.render("invoice", canonical_invoice(), PushContext(reference="r"))
    assert caught.value.field == "customer"


def test_a_draft_is_not_finalised():
    payload = StripeConnector.render("invoice", canonical_invoice(status="draft"), CONTEXT)
    assert payload["finalize"] is False


@responses.activate
def test_create_makes_the_draft_adds_items_and_finalises_each_with_its_own_key(connector, usd):
    payload = StripeConnector.render("invoice", canonical_invoice(), CONTEXT)
    draft = {**usd, "status": "draft", "number": None}
    responses.post(f"{BASE}/invoices", json=draft)
    responses.post(f"{BASE}/invoiceitems", json={"id": "ii_1", "object": "invoiceitem"})
    responses.post(f"{BASE}/invoiceitems", json={"id": "ii_2", "object": "invoiceitem"})
    responses.post(f"{BASE}/invoices/{usd['id']}/finalize", json=usd)
    ref = connector.create("invoice", payload, idempotency_key="push-9")
    assert (ref.external_id, ref.number, ref.status) == (usd["id"], "HUD-0042", "open")
    assert [call.request.headers["Idempotency-Key"] for call in responses.calls] == [
        "push-9:invoice",
        "push-9:item:0",
        "push-9:item:1",
        "push-9:finalize",
    ]
    item = dict(parse_qsl(responses.calls[1].request.body))
    assert item["customer"] == "cus_HudsonAnalytics01"
    assert item["invoice"] == usd["id"]
    assert item["tax_rates[]"] == "txr_1QaNySalesTax0001"
    assert dict(parse_qsl(responses.calls[0].request.body))["metadata[ledgerlink_reference]"] == "LL-INV-7"


@responses.activate
def test_void_voids_an_open_invoice(connector, usd):
    responses.get(f"{BASE}/invoices/{usd['id']}", json=usd)
    responses.post(f"{BASE}/invoices/{usd['id']}/void", json={**usd, "status": "void"})
    ref = connector.void("invoice", usd["id"], remote_version=invoice_version(usd), idempotency_key="void-1")
    assert ref.status == "void"
    assert responses.calls[1].request.headers["Idempotency-Key"] == "void-1"


@responses.activate
def test_void_refuses_when_the_invoice_changed_since_it_was_read(connector, usd):
    responses.get(f"{BASE}/invoices/{usd['id']}", json={**usd, "amount_paid": 100, "amount_remaining": 51017})
    with pytest.raises(ConflictError):
        connector.void("invoice", usd["id"], remote_version=invoice_version(usd), idempotency_key="void-1")
    assert len(responses.calls) == 1


@responses.activate
def test_void_of_an_already_void_invoice_changes_nothing(connector, usd):
    responses.get(f"{BASE}/invoices/{usd['id']}", json={**usd, "status": "void"})
    assert connector.void("invoice", usd["id"], remote_version="", idempotency_key="k").status == "void"
    assert len(responses.calls) == 1


@responses.activate
def test_void_of_a_draft_deletes_it(connector, usd):
    responses.get(f"{BASE}/invoices/{usd['id']}", json={**usd, "status": "draft"})
    responses.delete(
        f"{BASE}/invoices/{usd['id']}", json={"id": usd["id"], "object": "invoice", "deleted": True}
    )
    assert connector.void("invoice", usd["id"], remote_version="", idempotency_key="k").status == "deleted"


@responses.activate
def test_void_of_a_draft_already_deleted_by_a_lost_first_try_succeeds(connector, usd):
    responses.get(f"{BASE}/invoices/{usd['id']}", json={**usd, "status": "draft"})
    body = {
        "error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such invoice"}
    }
    responses.delete(f"{BASE}/invoices/{usd['id']}", json=body, status=404)
    assert connector.void("invoice", usd["id"], remote_version="", idempotency_key="k").status == "deleted"


def payment(amount="511.17", **changes):
    values = {
        "external_id": "",
        "reference": "BANK-1",
        "customer": None,
        "transaction_date": datetime(2026, 1, 20).date(),
        "currency": "USD",
        "amount": Decimal(amount),
        "allocations": (AllocationRecord("HUD-0042", Decimal(amount)),),
    }
    return PaymentRecord(**{**values, **changes})


@responses.activate
def test_record_payment_marks_the_invoice_paid_out_of_band(connector, usd):
    responses.get(f"{BASE}/invoices/{usd['id']}", json=usd)
    responses.post(f"{BASE}/invoices/{usd['id']}/pay", json={**usd, "status": "paid", "amount_remaining": 0})
    context = PushContext(invoice_ids={"HUD-0042": usd["id"]})
    ref = connector.record_payment(payment(), context, idempotency_key="pay-3")
    assert (ref.external_id, ref.status) == (usd["id"], "paid")
    sent = responses.calls[1].request
    assert parse_qsl(sent.body) == [("paid_out_of_band", "true")]
    assert sent.headers["Idempotency-Key"] == f"pay-3:{usd['id']}"


@responses.activate
def test_record_payment_on_a_paid_invoice_does_nothing_more(connector, usd):
    responses.get(f"{BASE}/invoices/{usd['id']}", json={**usd, "status": "paid", "amount_remaining": 0})
    ref = connector.record_payment(
        payment(), PushContext(invoice_ids={"HUD-0042": usd["id"]}), idempotency_key="k"
    )
    assert ref.status == "paid"
    assert len(responses.calls) == 1


@responses.activate
def test_record_payment_refuses_a_part_payment(connector, usd):
    responses.get(f"{BASE}/invoices/{usd['id']}", json=usd)
    with pytest.raises(ValidationError) as caught:
        connector.record_payment(
            payment("100.00"), PushContext(invoice_ids={"HUD-0042": usd["id"]}), idempotency_key="k"
        )
    assert (caught.value.field, caught.value.value) == ("allocations[0].amount", "100.00")


@responses.activate
def test_record_payment_refuses_another_currency(connector, usd):
    responses.get(f"{BASE}/invoices/{usd['id']}", json=usd)
    with pytest.raises(ValidationError) as caught:
        connector.record_payment(
            payment(currency="EUR"), PushContext(invoice_ids={"HUD-0042": usd["id"]}), idempotency_key="k"
        )
    assert caught.value.field == "currency"


def test_record_payment_needs_the_invoice_id(connector):
    with pytest.raises(ValidationError) as caught:
        connector.record_payment(payment(), PushContext(), idempotency_key="k")
    assert caught.value.field == "allocations[0].invoice_number"


@responses.activate
def test_record_payment_uses_the_allocation_s_own_invoice_id(connector, usd):
    kwd = copy.deepcopy(load("invoice_kwd_partial"))
    responses.get(f"{BASE}/invoices/{kwd['id']}", json=kwd)
    responses.post(f"{BASE}/invoices/{kwd['id']}/pay", json={**kwd, "status": "paid"})
    allocation = AllocationRecord("GLF-0003", Decimal("112.345"), invoice_external_id=kwd["id"])
    connector.record_payment(
        payment("112.345", currency="KWD", allocations=(allocation,)), PushContext(), idempotency_key="k"
    )
    assert responses.calls[1].request.url.endswith(f"/invoices/{kwd['id']}/pay")


def test_operations_outside_the_capabilities_are_refused(connector):
    with pytest.raises(ValidationError):
        connector.void("payment", "ch_1", remote_version="", idempotency_key="k")
