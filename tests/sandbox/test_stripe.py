"""The Stripe sandbox: its routes through Django's test client (auth, lists and paging, the invoice life
cycle, card and out-of-band payments, refunds, credit notes, events, idempotency keys, errors, limits)
and the connector against it over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest

from connectors.base import AllocationRecord, PaymentRecord, PushContext, RateLimit, RetryableError
from connectors.stripe.client import encode_form
from connectors.stripe.connector import StripeConnector
from sandbox import stripe as sandbox_stripe
from sandbox.models import SandboxHit
from tests.connectors.stripe.conftest import canonical_invoice
from tests.factories import ConnectionFactory

KEY = "sk_test_sandbox_suite"
ROOT = "/sandbox/stripe/v1"
AUTH = {"Authorization": f"Bearer {KEY}"}


class Api:
    """Form-encoded requests with the key, the way Stripe clients send them."""

    def __init__(self, client, key: str = KEY) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"}

    def get(self, path: str, params: dict | None = None, **headers):
        query = f"?{urlencode(encode_form(params))}" if params else ""
        return self.client.get(f"{ROOT}/{path}{query}", headers={**self.headers, **headers})

    def post(self, path: str, params: dict | None = None, *, key: str | None = None):
        headers = {**self.headers, **({"Idempotency-Key": key} if key else {})}
        body = urlencode(encode_form(params or {}))
        return self.client.post(
            f"{ROOT}/{path}", body, content_type="application/x-www-form-urlencoded", headers=headers
        )

    def delete(self, path: str):
        return self.client.delete(f"{ROOT}/{path}", headers=self.headers)


@pytest.fixture
def api(client, db):
    return Api(client)


@pytest.fixture
def customer(api):
    return api.post("customers", {"name": "Albion Bakeries Ltd", "email": "ap@albion.example"}).json()


def draft(api, customer, currency="gbp", **extra):
    params = {
        "customer": customer["id"],
        "currency": currency,
        "collection_method": "send_invoice",
        "days_until_due": 30,
        "metadata": {"ledgerlink_reference": "LL-1"},
        **extra,
    }
    invoice = api.post("invoices", params).json()
    api.post(
        "invoiceitems",
        {
            "customer": customer["id"],
            "invoice": invoice["id"],
            "quantity": 3,
            "unit_amount_decimal": "1500",
            "description": "Bread",
            "tax_rates": ["txr_sbx_gb_vat20"],
        },
    )
    return api.get(f"invoices/{invoice['id']}").json()


def finalized(api, customer, **extra):
    invoice = draft(api, customer, **extra)
    return api.post(f"invoices/{invoice['id']}/finalize").json()


# --- authentication and errors --------------------------------------------------------------------------
def test_a_request_without_a_key_gets_stripe_s_401(client, db):
    response = client.get(f"{ROOT}/invoices")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "did not provide an API key" in response.json()["error"]["message"]


@pytest.mark.parametrize("key", ["sk_live_realkey1234", "pk_test_publishable1", "nonsense"])
def test_a_key_that_is_not_a_test_secret_key_is_refused(client, db, key):
    response = client.get(f"{ROOT}/invoices", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 401
    assert "Invalid API Key provided" in response.json()["error"]["message"]


def test_basic_auth_with_the_key_as_user_name_works(client, db):
    import base64

    token = base64.b64encode(f"{KEY}:".encode()).decode()
    assert client.get(f"{ROOT}/invoices", headers={"Authorization": f"Basic {token}"}).status_code == 200


def test_each_key_is_its_own_account(client, api, customer):
    other = Api(client, "sk_test_someone_else")
    assert other.get(f"customers/{customer['id']}").status_code == 404
    assert api.get(f"customers/{customer['id']}").status_code == 200


def test_an_unknown_object_is_a_resource_missing_404(api):
    response = api.get("invoices/in_nope")
    assert response.status_code == 404
    assert response.json()["error"] | {"request_log_url": None} == {
        "type": "invalid_request_error",
        "code": "resource_missing",
        "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
        "message": "No such invoice: 'in_nope'",
        "param": "id",
        "request_log_url": None,
    }
    assert response["Request-Id"].startswith("req_")


def test_an_unknown_parameter_is_named(api, customer):
    response = api.post("invoices", {"customer": customer["id"], "colour": "red"})
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (
        "parameter_unknown",
        "colour",
    )


def test_a_bad_integer_is_named(api, customer):
    response = api.post(
        "invoices",
        {"customer": customer["id"], "collection_method": "send_invoice", "days_until_due": "soon"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "days_until_due"


def test_a_missing_customer_is_named(api):
    response = api.post("invoices", {"customer": "cus_nobody"})
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (
        "resource_missing",
        "customer",
    )


# --- the invoice life cycle ------------------------------------------------------------------------------
def test_an_invoice_is_drafted_itemised_and_finalised(api, customer):
    invoice = draft(api, customer)
    assert (invoice["status"], invoice["number"], invoice["currency"]) == ("draft", None, "gbp")
    (line,) = invoice["lines"]["data"]
    assert (line["amount"], line["quantity"], line["pricing"]["unit_amount_decimal"]) == (4500, 3, "1500")
    assert line["taxes"][0]["amount"] == 900
    assert line["parent"]["type"] == "invoice_item_details"
    assert (invoice["subtotal"], invoice["total"], invoice["amount_due"], invoice["amount_remaining"]) == (
        4500,
        5400,
        5400,
        5400,
    )
    assert invoice["total_taxes"][0]["tax_rate_details"]["tax_rate"] == "txr_sbx_gb_vat20"
    done = api.post(f"invoices/{invoice['id']}/finalize").json()
    assert done["status"] == "open"
    assert done["number"].endswith("-0001")
    assert done["due_date"] == done["status_transitions"]["finalized_at"] + 30 * 86400
    assert "charge" not in done and "paid" not in done


def test_zero_and_three_decimal_currencies_stay_in_minor_units(api, customer):
    yen = api.post(
        "invoices",
        {
            "customer": customer["id"],
            "currency": "jpy",
            "collection_method": "send_invoice",
            "days_until_due": 7,
        },
    ).json()
    api.post(
        "invoiceitems",
        {"customer": customer["id"], "invoice": yen["id"], "quantity": 2, "unit_amount_decimal": "22500"},
    )
    assert api.get(f"invoices/{yen['id']}").json()["total"] == 45000
    dinar = api.post(
        "invoices",
        {
            "customer": customer["id"],
            "currency": "kwd",
            "collection_method": "send_invoice",
            "days_until_due": 7,
        },
    ).json()
    api.post("invoiceitems", {"customer": customer["id"], "invoice": dinar["id"], "amount": 12345})
    assert api.get(f"invoices/{dinar['id']}").json()["total"] == 12345


def test_items_cannot_be_added_to_a_finalised_invoice(api, customer):
    invoice = finalized(api, customer)
    response = api.post("invoiceitems", {"customer": customer["id"], "invoice": invoice["id"], "amount": 100})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "invoice"


def test_paying_out_of_band_marks_the_invoice_paid_without_a_charge(api, customer):
    invoice = finalized(api, customer)
    paid = api.post(f"invoices/{invoice['id']}/pay", {"paid_out_of_band": True}).json()
    assert (paid["status"], paid["amount_paid"], paid["amount_remaining"]) == ("paid", 5400, 0)
    assert api.get("charges").json()["data"] == []
    again = api.post(f"invoices/{invoice['id']}/pay", {"paid_out_of_band": True})
    assert again.status_code == 400


def test_paying_by_card_leaves_a_charge_a_fee_and_an_invoice_payment(api, customer):
    invoice = finalized(api, customer)
    api.post(f"invoices/{invoice['id']}/pay")
    (charge,) = api.get("charges", {"expand": ["data.balance_transaction"]}).json()["data"]
    txn = charge["balance_transaction"]
    assert (charge["amount"], charge["status"], txn["fee"], txn["net"]) == (5400, "succeeded", 187, 5213)
    payments = api.get(
        "invoice_payments",
        {
            "payment": {"type": "payment_intent", "payment_intent": charge["payment_intent"]},
            "expand": ["data.invoice"],
        },
    ).json()["data"]
    assert [(p["amount_paid"], p["status"], p["invoice"]["number"]) for p in payments] == [
        (5400, "paid", invoice["number"])
    ]
    assert "_payout" not in txn


def test_nested_expansions_follow_ids_up_to_four_levels(api, customer):
    invoice = finalized(api, customer)
    api.post(f"invoices/{invoice['id']}/pay")
    (payment,) = api.get("invoice_payments", {"invoice": invoice["id"]}).json()["data"]
    expanded = api.get(
        f"invoice_payments/{payment['id']}",
        {"expand": ["invoice", "payment.payment_intent.latest_charge.balance_transaction"]},
    ).json()
    assert expanded["invoice"]["number"] == invoice["number"]
    assert expanded["payment"]["payment_intent"]["latest_charge"]["balance_transaction"]["fee"] == 187
    listed = api.get("invoice_payments", {"expand": ["data.payment.payment_intent.latest_charge"]})
    assert listed.json()["data"][0]["payment"]["payment_intent"]["latest_charge"]["object"] == "charge"
    # when listing, `data` is one of the four levels
    deeper = api.get(
        "invoice_payments", {"expand": ["data.payment.payment_intent.latest_charge.balance_transaction"]}
    )
    assert (deeper.status_code, deeper.json()["error"]["param"]) == (400, "expand")


def test_a_void_invoice_is_void_and_a_paid_one_cannot_be_voided(api, customer):
    invoice = finalized(api, customer)
    voided = api.post(f"invoices/{invoice['id']}/void").json()
    assert (voided["status"], voided["amount_remaining"]) == ("void", 0)
    paid = finalized(api, customer)
    api.post(f"invoices/{paid['id']}/pay", {"paid_out_of_band": True})
    assert api.post(f"invoices/{paid['id']}/void").status_code == 400


def test_a_deleted_draft_is_gone(api, customer):
    invoice = draft(api, customer)
    assert api.delete(f"invoices/{invoice['id']}").json() == {
        "id": invoice["id"],
        "object": "invoice",
        "deleted": True,
    }
    assert api.get(f"invoices/{invoice['id']}").status_code == 404
    assert (
        api.get("events", {"type": "invoice.deleted"}).json()["data"][0]["data"]["object"]["id"]
        == invoice["id"]
    )


def test_a_refund_reduces_the_charge(api, customer):
    invoice = finalized(api, customer)
    api.post(f"invoices/{invoice['id']}/pay")
    (charge,) = api.get("charges").json()["data"]
    refund = api.post("refunds", {"charge": charge["id"], "amount": 1000}).json()
    assert (refund["amount"], refund["status"], refund["charge"]) == (1000, "succeeded", charge["id"])
    assert api.get(f"charges/{charge['id']}").json()["amount_refunded"] == 1000
    too_much = api.post("refunds", {"charge": charge["id"], "amount": 5000})
    assert (too_much.status_code, too_much.json()["error"]["param"]) == (400, "amount")


def test_a_credit_note_on_an_open_invoice_lowers_what_is_due(api, customer):
    invoice = finalized(api, customer)
    note = api.post(
        "credit_notes", {"invoice": invoice["id"], "amount": 1400, "reason": "order_change"}
    ).json()
    assert (note["status"], note["pre_payment_amount"], note["post_payment_amount"], note["total"]) == (
        "issued",
        1400,
        0,
        1400,
    )
    after = api.get(f"invoices/{invoice['id']}").json()
    assert (after["amount_remaining"], after["pre_payment_credit_notes_amount"]) == (4000, 1400)
    api.post(f"credit_notes/{note['id']}/void")
    assert api.get(f"invoices/{invoice['id']}").json()["amount_remaining"] == 5400


def test_a_credit_note_after_payment_must_say_where_the_money_goes(api, customer):
    invoice = finalized(api, customer)
    api.post(f"invoices/{invoice['id']}/pay")
    line = invoice["lines"]["data"][0]["id"]
    lines = [{"type": "invoice_line_item", "invoice_line_item": line}]
    refused = api.post("credit_notes", {"invoice": invoice["id"], "lines": lines})
    assert refused.status_code == 400
    note = api.post(
        "credit_notes",
        {"invoice": invoice["id"], "lines": lines, "refund_amount": 3000, "credit_amount": 2400},
    ).json()
    assert (note["post_payment_amount"], note["refunds"][0]["amount_refunded"], note["total"]) == (
        5400,
        3000,
        5400,
    )
    assert api.get(f"customers/{customer['id']}").json()["balance"] == -2400


# --- lists, search, events ------------------------------------------------------------------------------
def test_lists_page_newest_first_with_starting_after(api, customer):
    ids = [api.post("invoices", {"customer": customer["id"]}).json()["id"] for _ in range(5)]
    first = api.get("invoices", {"limit": 2}).json()
    assert (first["object"], first["url"], first["has_more"]) == ("list", "/v1/invoices", True)
    assert [inv["id"] for inv in first["data"]] == ids[::-1][:2]
    rest = api.get("invoices", {"limit": 2, "starting_after": first["data"][-1]["id"]}).json()
    assert [inv["id"] for inv in rest["data"]] == ids[::-1][2:4]
    last = api.get("invoices", {"limit": 2, "starting_after": rest["data"][-1]["id"]}).json()
    assert ([inv["id"] for inv in last["data"]], last["has_more"]) == ([ids[0]], False)


def test_limit_must_be_between_1_and_100(api):
    assert api.get("invoices", {"limit": 101}).json()["error"]["param"] == "limit"


def test_search_finds_invoices_by_metadata(api, customer):
    invoice = draft(api, customer, metadata={"ledgerlink_reference": "O'Brien 7"})
    draft(api, customer)
    found = api.get("invoices/search", {"query": "metadata['ledgerlink_reference']:'O\\'Brien 7'"}).json()
    assert (found["object"], [inv["id"] for inv in found["data"]]) == ("search_result", [invoice["id"]])
    assert api.get("invoices/search", {"query": "amount>5"}).status_code == 400


def test_every_state_change_leaves_an_event(api, customer):
    invoice = finalized(api, customer)
    api.post(f"invoices/{invoice['id']}/pay")
    types = [event["type"] for event in api.get("events", {"limit": 100}).json()["data"]]
    for expected in (
        "customer.created",
        "invoice.created",
        "invoiceitem.created",
        "invoice.finalized",
        "payment_intent.succeeded",
        "charge.succeeded",
        "invoice_payment.paid",
        "invoice.paid",
    ):
        assert expected in types
    paid = api.get("events", {"types": ["invoice.paid", "invoice.voided"]}).json()["data"]
    assert [(e["type"], e["data"]["object"]["status"]) for e in paid] == [("invoice.paid", "paid")]


def test_events_filter_by_created(api, customer):
    api.post("invoices", {"customer": customer["id"]})
    future = int(datetime.now(UTC).timestamp()) + 3600
    assert api.get("events", {"created": {"gte": future}}).json()["data"] == []
    assert api.get("events", {"created": {"gte": future - 7200}}).json()["data"]


# --- idempotency, limits, faults ------------------------------------------------------------------------
def test_a_repeated_key_replays_the_first_answer(api, customer):
    params = {"customer": customer["id"], "metadata": {"ledgerlink_reference": "LL-9"}}
    first = api.post("invoices", params, key="create-9")
    again = api.post("invoices", params, key="create-9")
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert len(api.get("invoices").json()["data"]) == 1


def test_a_key_reused_with_other_parameters_is_an_idempotency_error(api, customer):
    api.post("invoices", {"customer": customer["id"]}, key="create-10")
    response = api.post("invoices", {"customer": customer["id"], "description": "other"}, key="create-10")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "idempotency_error"


def test_too_many_requests_get_stripe_s_429(api, monkeypatch):
    monkeypatch.setattr(sandbox_stripe, "RATE_LIMITS", (RateLimit("test", 2, 60.0),))
    statuses = [api.get("invoices").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    error = api.get("invoices").json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "rate_limit")


def test_the_server_error_has_stripe_s_shape():
    response = sandbox_stripe.server_error()
    assert response.status_code == 500
    assert b'"api_error"' in response.content


# --- demo data ------------------------------------------------------------------------------------------
@pytest.fixture
def seeded(api):
    sandbox_stripe.seed(KEY)
    return api


def test_the_demo_data_covers_currencies_states_payments_and_payouts(seeded):
    invoices = seeded.get("invoices", {"limit": 100}).json()["data"]
    assert len(invoices) == 20
    assert {inv["currency"] for inv in invoices} == {"gbp", "eur", "usd", "jpy", "kwd"}
    assert {inv["status"] for inv in invoices} == {"draft", "open", "paid", "void", "uncollectible"}
    assert seeded.get("refunds").json()["data"]
    assert len(seeded.get("credit_notes").json()["data"]) == 2
    payouts = seeded.get("payouts").json()["data"]
    assert {payout["currency"] for payout in payouts} == {"gbp", "eur", "usd", "jpy", "kwd"}
    for payout in payouts:
        txns = seeded.get("balance_transactions", {"payout": payout["id"], "limit": 100}).json()["data"]
        assert sum(txn["net"] for txn in txns if txn["type"] != "payout") == payout["amount"]
        assert [txn["amount"] for txn in txns if txn["type"] == "payout"] == [-payout["amount"]]


def test_the_demo_data_is_the_same_every_time(client, db):
    sandbox_stripe.seed("sk_test_first_account")
    sandbox_stripe.seed("sk_test_first_account_again")
    one = Api(client, "sk_test_first_account").get("invoices", {"limit": 100}).json()["data"]
    two = Api(client, "sk_test_first_account_again").get("invoices", {"limit": 100}).json()["data"]
    assert len(one) == len(two)
    assert [(inv["currency"], inv["status"]) for inv in one] == [
        (inv["currency"], inv["status"]) for inv in two
    ]


# --- the connector against the sandbox over real HTTP ----------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_the_connector_works_against_the_sandbox(live_server):
    key = "sk_test_live_server_run"
    sandbox_stripe.seed(key)
    connection = ConnectionFactory(
        platform="stripe",
        base_url=f"{live_server.url}{ROOT}",
        credentials={"api_key": key, "webhook_secret": "whsec_x"},
    )
    connector = StripeConnector(connection)
    connector.check_credentials()

    # everything, page by page
    changes, page = [], None
    while True:
        result = connector.list_changes("invoice", since=None, page=page)
        changes += result.changes
        page = result.next_page
        if page is None:
            break
    assert len(changes) == 20 and not [c for c in changes if c.problem]
    statuses = {c.record.status for c in changes}
    assert {"draft", "open", "paid", "void"} <= statuses
    kwd = next(c.record for c in changes if c.record.currency == "KWD" and c.record.status == "paid")
    assert kwd.total.as_tuple().exponent == -3

    # card payments with fees and their invoices; payouts with their balance transactions
    payments = []
    page = None
    while True:
        result = connector.list_changes("payment", since=None, page=page)
        payments += [c.record for c in result.changes]
        page = result.next_page
        if page is None:
            break
    charges = [p for p in payments if p.external_id.startswith("ch_")]
    assert charges and all(p.fee and p.fee > 0 and p.allocations for p in charges)
    assert any(p.amount < 0 for p in payments)
    payouts = connector.list_changes("payout", since=None).changes
    assert all(
        sum(line.net for line in c.record.lines if line.kind != "payout") == c.record.amount for c in payouts
    )

    # create, find, fetch, pay, void
    dollars = next(c.record for c in changes if c.record.currency == "USD")
    context = PushContext(
        reference="LL-E2E-1",
        customer_id=dollars.customer.external_id,
        lines=({"tax_code": "txr_sbx_us_ny8875"}, {}),
    )
    invoice = canonical_invoice()
    payload = StripeConnector.render("invoice", invoice, context)
    ref = connector.create("invoice", payload, idempotency_key="e2e-create-1")
    assert connector.create("invoice", payload, idempotency_key="e2e-create-1").external_id == ref.external_id
    assert connector.find_by_reference("invoice", "LL-E2E-1").external_id == ref.external_id
    fetched = connector.fetch("invoice", ref.external_id).record
    assert (fetched.status, fetched.total, fetched.number) == ("open", Decimal("509.44"), ref.number)
    payment = PaymentRecord(
        "",
        "BANK-1",
        None,
        fetched.issue_date,
        fetched.currency,
        fetched.amount_due,
        allocations=(AllocationRecord(fetched.number, fetched.amount_due),),
    )
    paid = connector.record_payment(
        payment, PushContext(invoice_ids={fetched.number: ref.external_id}), idempotency_key="e2e-pay-1"
    )
    assert paid.status == "paid"
    assert connector.fetch("invoice", ref.external_id).record.status == "paid"

    open_one = next(c for c in changes if c.record.status == "open")
    voided = connector.void(
        "invoice", open_one.external_id, remote_version=open_one.remote_version, idempotency_key="e2e-void-1"
    )
    assert voided.status == "void"

    # and the events of the last minutes tell what changed
    recent = connector.list_changes("invoice", since=datetime.now(UTC) - timedelta(minutes=5))
    by_id = {c.external_id: c.record.status for c in recent.changes}
    assert by_id[ref.external_id] == "paid"
    assert by_id[open_one.external_id] == "void"
    assert recent.high_water is not None
    assert SandboxHit.objects.filter(platform="stripe", account=key, status=200).exists()


@pytest.mark.django_db(transaction=True)
def test_a_lost_answer_to_a_keyed_write_is_repeated_safely(live_server):
    from sandbox import core

    key = "sk_test_lost_answer_run"
    connection = ConnectionFactory(
        platform="stripe", base_url=f"{live_server.url}{ROOT}", credentials={"api_key": key}
    )
    connector = StripeConnector(connection)
    connector.client.timeout = (5.0, 0.5)
    connector.client.sleep = lambda seconds: None
    customer = connector.client.post("customers", {"name": "Lost Answer Ltd"}, idempotency_key="c-1")
    core.fault_add("stripe", "lost_response", method="POST", path=r"^v1/invoices$", delay_ms=1500)
    invoice = connector.client.post("invoices", {"customer": customer["id"]}, idempotency_key="lost-1")
    listed = connector.client.list_page("invoices", {"customer": customer["id"]})[0]
    assert [row["id"] for row in listed] == [invoice["id"]]


def test_a_sandbox_429_is_retried_by_the_client(live_server, monkeypatch, transactional_db):
    monkeypatch.setattr(sandbox_stripe, "RATE_LIMITS", (RateLimit("test", 1, 60.0),))
    connection = ConnectionFactory(
        platform="stripe", base_url=f"{live_server.url}{ROOT}", credentials={"api_key": "sk_test_limited_run"}
    )
    connector = StripeConnector(connection)
    connector.client.sleep = lambda seconds: None
    connector.client.max_inline_wait = 0.01
    connector.client.get("invoices")
    with pytest.raises(RetryableError):
        connector.client.get("invoices")
