"""Each reconciliation rule on its own: pure functions over snapshots, no database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from reconciliation import rules
from reconciliation.rules import Copy, Document, Tolerances

TOL = Tolerances(base_currency="GBP")


def invoice(**values) -> Document:
    base = {
        "number": "INV-1",
        "currency": "GBP",
        "total": Decimal("120.00"),
        "tax_total": Decimal("20.00"),
        "amount_paid": Decimal("0.00"),
        "amount_due": Decimal("120.00"),
        "status": "open",
        "issue_date": date(2026, 3, 1),
        "due_date": date(2026, 3, 31),
        "customer": "buyer@example.com",
        "exchange_rate": None,
    }
    expected = values.pop("expected", True)
    return Document(
        "invoice", 7, {**base, **values}, source_connection_id=1, source_name="Shop", expected=expected
    )


def copy(**values) -> Copy:
    base = {
        "number": "LL-INV-1",
        "currency": "GBP",
        "total": "120.00",
        "tax_total": "20.00",
        "amount_paid": "0.00",
        "amount_due": "120.00",
        "status": "open",
        "issue_date": "2026-03-01",
        "due_date": "2026-03-31",
        "customer": "buyer@example.com",
        "exchange_rate": None,
    }
    return Copy(2, "Ledger", {**base, **values}, external_id="99")


def payment(allocations=None, **values) -> Document:
    base = {
        "reference": "PAY-1",
        "currency": "GBP",
        "amount": Decimal("120.00"),
        "status": "completed",
        "transaction_date": date(2026, 3, 5),
        "customer": "buyer@example.com",
        "allocations": allocations
        if allocations is not None
        else [{"invoice_id": 7, "amount": Decimal("120.00"), "invoice_status": "paid"}],
    }
    return Document("payment", 9, {**base, **values}, source_connection_id=1, source_name="Stripe")


def payment_copy(allocations, **values) -> Copy:
    base = {
        "reference": "PAY-1",
        "currency": "GBP",
        "amount": "120.00",
        "status": "completed",
        "transaction_date": "2026-03-05",
        "customer": "buyer@example.com",
        "allocations": allocations,
    }
    return Copy(2, "Ledger", {**base, **values}, external_id="P99")


def test_every_kind_a_rule_opens_is_an_exception_kind():
    from reconciliation.models import ReconciliationException

    assert set(rules.RULE_KINDS.values()) <= set(ReconciliationException.Kind.values)
    assert set(rules.KINDS) <= set(ReconciliationException.Kind.values)


# --- presence -----------------------------------------------------------------------------------------
def test_missing_when_a_destination_expected_to_hold_the_document_has_no_copy():
    finding = rules.missing(invoice(), Copy(2, "Ledger", bound=False), TOL)

    assert finding is not None
    assert (finding.kind, finding.connection_id, finding.amount_at_risk) == (
        "missing_in_destination",
        2,
        Decimal("120.00"),
    )
    assert "missing in Ledger" in finding.title
    assert finding.severity == "high"


def test_missing_when_the_copy_was_deleted_there():
    finding = rules.missing(invoice(), Copy(2, "Ledger", {"status": "deleted"}, deleted=True), TOL)

    assert finding is not None and "deleted in Ledger" in finding.title


@pytest.mark.parametrize(
    ("doc", "destination"),
    [
        (invoice(), Copy(2, "Ledger", {})),  # bound, values unknown: present is all we can say
        (invoice(expected=False), Copy(2, "Ledger", bound=False)),  # void, or too new to be pushed
        (invoice(), Copy(2, "Ledger", bound=False, expected=False)),  # before the profile's cut-over
    ],
)
def test_not_missing(doc, destination):
    assert rules.missing(doc, destination, TOL) is None


def test_a_copy_whose_values_are_unknown_is_judged_on_presence_only():
    checked = rules.document_check(invoice(total=Decimal("999")), [Copy(2, "Ledger", {})], TOL)

    assert checked.findings == []
    assert checked.judged[2] == {"missing"}


# --- money --------------------------------------------------------------------------------------------
def test_amount_differs_beyond_the_tolerance():
    finding = rules.amount(invoice(), copy(total="110.00"), TOL)

    assert finding is not None
    assert finding.kind == "amount_mismatch"
    assert finding.amount_at_risk == Decimal("10.00")
    assert finding.amount_at_risk_base == Decimal("10.00")
    assert finding.details["fields"]["total"] == {"canonical": "120.00", "copies": {"Ledger": "110.00"}}
    assert finding.details["connection"] == "Ledger" and finding.details["external_id"] == "99"


def test_amount_within_the_rounding_tolerance_agrees():
    assert rules.amount(invoice(), copy(total="120.01"), TOL) is None
    assert rules.amount(invoice(), copy(total="120.02"), TOL) is not None
    assert rules.amount(invoice(), copy(total="120.02"), Tolerances(amount=Decimal("0.05"))) is None


def test_amount_of_a_copy_booked_in_the_base_currency_is_compared_at_the_rate_within_the_fx_tolerance():
    doc = invoice(currency="USD", total=Decimal("100.00"), exchange_rate=Decimal("0.8"))

    assert rules.amount(doc, copy(currency="GBP", total="80.30"), TOL) is None  # 0.375% off
    finding = rules.amount(doc, copy(currency="GBP", total="81.00"), TOL)  # 1.25% off
    assert finding is not None
    assert finding.amount_at_risk == Decimal("1.25")  # in USD: 1.00 GBP at 0.8
    assert finding.amount_at_risk_base == Decimal("1.0000")


def test_a_copy_in_another_currency_without_a_rate_is_the_currency_rule_s_finding_only():
    doc = invoice(currency="USD", total=Decimal("100.00"))
    other = copy(currency="EUR", total="93.00")

    assert rules.amount(doc, other, TOL) is None
    finding = rules.currency(doc, other, TOL)
    assert finding is not None and finding.kind == "currency_mismatch"
    assert finding.details["fields"]["currency"] == {"canonical": "USD", "copies": {"Ledger": "EUR"}}
    assert finding.amount_at_risk_base is None  # USD without a rate: no base amount
    assert rules.currency(invoice(), copy(currency="gbp"), TOL) is None


def test_booked_at_another_exchange_rate_beyond_the_fx_tolerance():
    doc = invoice(currency="USD", total=Decimal("1000.00"), exchange_rate=Decimal("0.80"))

    assert rules.amount(doc, copy(currency="USD", total="1000.00", exchange_rate="0.802"), TOL) is None
    finding = rules.amount(doc, copy(currency="USD", total="1000.00", exchange_rate="0.82"), TOL)
    assert finding is not None
    assert "exchange_rate" in finding.details["fields"]
    assert finding.amount_at_risk_base == Decimal("20.0000")


def test_tax_differs():
    finding = rules.tax(invoice(), copy(tax_total="24.00"), TOL)

    assert finding is not None and finding.kind == "tax_mismatch"
    assert finding.amount_at_risk == Decimal("4.00")
    assert rules.tax(invoice(), copy(), TOL) is None


# --- status -------------------------------------------------------------------------------------------
def test_paid_at_the_source_unpaid_in_the_ledger():
    doc = invoice(status="paid", amount_paid=Decimal("120.00"), amount_due=Decimal("0.00"))

    finding = rules.status(doc, copy(status="open"), TOL)

    assert finding is not None and finding.kind == "status_mismatch"
    assert finding.amount_at_risk == Decimal("120.00")
    assert finding.severity == "high"
    assert "paid here, unpaid in Ledger" in finding.title
    assert finding.details["fields"]["status"] == {"canonical": "paid", "copies": {"Ledger": "open"}}


def test_partially_paid_recorded_as_paid():
    doc = invoice(status="partially_paid", amount_paid=Decimal("50.00"), amount_due=Decimal("70.00"))

    finding = rules.status(doc, copy(status="paid", amount_due="0.00", amount_paid="120.00"), TOL)

    assert finding is not None
    assert finding.amount_at_risk == Decimal("70.00")
    assert "recorded as paid" in finding.title


def test_the_amount_still_due_differs_with_the_same_status():
    doc = invoice(status="partially_paid", amount_paid=Decimal("50.00"), amount_due=Decimal("70.00"))
    other = copy(status="partially_paid", amount_paid="100.00", amount_due="20.00")

    finding = rules.status(doc, other, TOL)

    assert finding is not None and finding.amount_at_risk == Decimal("50.00")


def test_a_total_that_differs_is_the_amount_rule_s_finding_not_a_status_one():
    checked = rules.document_check(invoice(), [copy(total="115.00", amount_due="115.00")], TOL)

    assert [f.kind for f in checked.findings] == ["amount_mismatch"]


def test_a_copy_holding_exactly_the_document_s_values_is_judged_clean_by_every_rule():
    doc = Document("invoice", 7, dict(copy().values), source_connection_id=1)

    checked = rules.document_check(doc, [copy()], TOL)

    assert checked.findings == []
    assert checked.judged[2] == {"missing", *rules.VALUE_RULES["invoice"]}


def test_void_at_the_source_still_live_in_the_ledger():
    finding = rules.status(invoice(status="void", amount_due=Decimal(0)), copy(status="open"), TOL)

    assert finding is not None and "void here" in finding.title
    assert finding.amount_at_risk == Decimal("120.00")


@pytest.mark.parametrize(("ours", "theirs"), [("draft", "open"), ("void", "deleted"), ("paid", "paid")])
def test_statuses_that_mean_the_same(ours, theirs):
    due = Decimal("0.00") if ours in ("paid", "void") else Decimal("120.00")
    other = copy(status=theirs, amount_due=str(due))

    assert rules.status(invoice(status=ours, amount_due=due), other, TOL) is None


def test_a_completed_payment_pending_in_the_ledger():
    finding = rules.status(payment(), payment_copy([], status="pending"), TOL)

    assert finding is not None and finding.amount_at_risk == Decimal("120.00")


# --- dates and customers ------------------------------------------------------------------------------
def test_a_date_differs_beyond_the_tolerance_in_days():
    other = copy(issue_date="2026-03-02")

    finding = rules.dates(invoice(), other, TOL)
    assert finding is not None and finding.kind == "date_mismatch"
    assert finding.severity == "low"  # same month
    assert rules.dates(invoice(), other, Tolerances(date_days=1)) is None


def test_a_date_in_another_period_is_more_severe_and_a_missing_due_date_differs():
    finding = rules.dates(invoice(), copy(issue_date="2026-02-28", due_date=None), TOL)

    assert finding is not None
    assert finding.severity == "medium"
    assert set(finding.details["fields"]) == {"issue_date", "due_date"}
    assert finding.amount_at_risk is None


def test_customer_differs_compared_like_with_like():
    finding = rules.customer(invoice(), copy(customer="someone@else.com"), TOL)

    assert finding is not None and finding.kind == "customer_mismatch"
    assert finding.amount_at_risk == Decimal("120.00")
    assert rules.customer(invoice(), copy(customer="  BUYER@example.com "), TOL) is None
    assert rules.customer(invoice(), copy(customer="Buyer Ltd"), TOL) is None  # a name, not an email


# --- payments -----------------------------------------------------------------------------------------
def test_a_completed_payment_applied_to_no_live_invoice_is_unmatched():
    assert rules.unmatched_payment(payment(), TOL) is None
    finding = rules.unmatched_payment(payment(allocations=[]), TOL)
    assert finding is not None
    assert (finding.kind, finding.connection_id, finding.amount_at_risk) == (
        "unmatched_payment",
        1,
        Decimal("120.00"),
    )
    void_only = [{"invoice_id": 7, "amount": Decimal("120.00"), "invoice_status": "void"}]
    assert rules.unmatched_payment(payment(allocations=void_only), TOL) is not None
    assert rules.unmatched_payment(payment(allocations=[], status="pending"), TOL) is None


def test_a_payment_copy_applied_to_no_invoice_or_another_one():
    same = [{"invoice_id": 7, "external_id": "99", "amount": "120.00"}]
    assert rules.allocation(payment(), payment_copy(same), TOL) is None

    unapplied = rules.allocation(payment(), payment_copy([]), TOL)
    assert unapplied is not None and unapplied.kind == "unmatched_payment"
    assert unapplied.connection_id == 2 and "not applied to any invoice" in unapplied.title

    elsewhere = rules.allocation(
        payment(), payment_copy([{"invoice_id": None, "external_id": "77", "amount": "120.00"}]), TOL
    )
    assert elsewhere is not None and elsewhere.amount_at_risk == Decimal("120.00")


def test_an_unmatched_payment_is_not_also_missing_in_its_destination():
    checked = rules.document_check(payment(allocations=[]), [Copy(2, "Ledger", bound=False)], TOL)

    assert [f.rule for f in checked.findings] == ["unmatched_payment"]
    assert "missing" in checked.judged[2]  # judged: a missing finding from before is resolved


# --- duplicates ---------------------------------------------------------------------------------------
def test_the_later_of_two_documents_with_one_number_from_one_source_is_the_duplicate():
    assert rules.duplicate_at_source(invoice(), [], TOL) is None
    finding = rules.duplicate_at_source(invoice(), [3], TOL)

    assert finding is not None and finding.kind == "duplicate"
    assert finding.connection_id == 1 and finding.details["duplicate_of"] == [3]


def test_a_destination_record_duplicating_the_bound_copy():
    finding = rules.duplicate_in_destination(
        invoice(), copy(), {"external_id": "100", "total": "120.00"}, TOL
    )

    assert finding.kind == "duplicate" and finding.connection_id == 2
    assert finding.identity[-1] == "100"
    assert "twice (99 and 100)" in finding.title


def test_destination_duplicates_found_by_an_incremental_read_are_not_judged_clean_elsewhere():
    records = {2: [{"external_id": "100"}]}

    incremental = rules.document_check(invoice(), [copy()], TOL, destination_duplicates=records)
    full = rules.document_check(invoice(), [copy()], TOL, duplicates_read_in_full=[2])

    assert [f.rule for f in incremental.findings] == ["duplicate_in_destination"]
    assert "duplicate_in_destination" not in incremental.judged[2]
    assert full.findings == [] and "duplicate_in_destination" in full.judged[2]


# --- identity, severity, base currency ---------------------------------------------------------------
def test_identity_holds_no_value_that_changes():
    first = rules.amount(invoice(), copy(total="110.00"), TOL)
    second = rules.amount(invoice(total=Decimal("130.00")), copy(total="100.00"), TOL)

    assert first is not None and second is not None
    assert first.identity == second.identity == ("amount_mismatch", "invoice", 7, 2)


def test_one_finding_per_kind_and_copy_from_a_document_check():
    other = copy(total="100.00", tax_total="0.00", currency="GBP", status="paid", customer="x@y.z")

    checked = rules.document_check(invoice(), [other], TOL)

    assert sorted(f.kind for f in checked.findings) == [
        "amount_mismatch",
        "customer_mismatch",
        "status_mismatch",
        "tax_mismatch",
    ]
    assert len({f.identity for f in checked.findings}) == 4


@pytest.mark.parametrize(
    ("at_risk", "expected"),
    [("5", "low"), ("100", "medium"), ("1000", "high"), ("10000", "critical"), (None, "medium")],
)
def test_severity_follows_the_amount_at_risk(at_risk, expected):
    value = Decimal(at_risk) if at_risk is not None else None

    assert rules.severity("medium", value, TOL, by_amount=at_risk is not None) == expected


def test_severity_of_a_kind_is_raised_never_lowered_by_the_amount():
    assert rules.severity("high", Decimal("1"), TOL) == "high"
    assert rules.severity("low", Decimal("20000"), TOL) == "critical"


def test_amount_in_the_base_currency():
    assert rules.to_base(Decimal("10"), "GBP", None, "GBP") == Decimal("10")
    assert rules.to_base(Decimal("10"), "USD", "0.8", "GBP") == Decimal("8.0000")
    assert rules.to_base(Decimal("10"), "USD", None, "GBP") is None


# --- what holds a document back -------------------------------------------------------------------------
def test_missing_names_what_holds_the_document_back():
    holds = (
        rules.Hold("exception", 12, "mapping_missing", "No tax code for 7.7"),
        rules.Hold("operation", 34, "blocked", "waiting for the customer"),
    )
    finding = rules.missing(invoice(), Copy(2, "Ledger", bound=False, holds=holds), TOL)

    assert finding is not None
    assert finding.title.endswith("held back by mapping missing (exception #12)")
    assert "exception #12): No tax code for 7.7; outbox operation #34 blocked: waiting" in finding.message
    assert finding.details["held_by"] == [
        {"exception": 12, "kind": "mapping_missing", "text": "No tax code for 7.7"},
        {"operation": 34, "state": "blocked", "text": "waiting for the customer"},
    ]
    assert finding.identity == rules.missing(invoice(), Copy(2, "Ledger", bound=False), TOL).identity


# --- daily summaries ----------------------------------------------------------------------------------
def in_summary(**values) -> Copy:
    held = rules.InSummary(day="2026-03-01", currency="GBP", **values)
    return Copy(2, "Ledger", bound=False, summary=held, external_id=held.external_id)


def test_a_sale_in_no_posted_summary_is_missing_naming_the_day_and_currency():
    finding = rules.missing(invoice(), in_summary(), TOL)

    assert finding is not None and finding.kind == "missing_in_destination"
    assert finding.title == "Invoice INV-1 of 2026-03-01 (GBP) is in no daily summary posted to Ledger"
    assert finding.details["summary"] == {"day": "2026-03-01", "currency": "GBP"}


def test_a_sale_in_a_summary_never_posted_names_the_summary():
    finding = rules.missing(invoice(), in_summary(summary_id=5, number="DS-2026-03-01-GBP"), TOL)

    assert finding is not None and "its daily summary DS-2026-03-01-GBP is not in Ledger" in finding.title


def test_a_member_of_a_posted_summary_is_present():
    copy = in_summary(summary_id=5, number="DS", posted=True, counted_version=1, current_version=1)

    assert rules.missing(invoice(), copy, TOL) is None
    assert rules.summary_member(invoice(), copy, TOL) is None


@pytest.mark.parametrize(
    ("versions", "found"),
    [
        ({"counted_version": 1, "current_version": 2}, "version 1 counted, now 2"),
        (
            {
                "counted_version": 2,
                "current_version": 2,
                "summary_version": 3,
                "posted_version": 2,
                "changed_since_posted": True,
            },
            "still holds version 2",
        ),
        ({"counted_version": 2, "current_version": 2, "summary_version": 3, "posted_version": 2}, None),
        ({"counted_version": 2, "current_version": 2, "summary_version": 2, "posted_version": 2}, None),
    ],
)
def test_a_member_changed_after_its_summary_was_posted(versions, found):
    copy = in_summary(summary_id=5, number="DS", posted=True, **versions)

    finding = rules.summary_member(invoice(), copy, TOL)

    if found is None:
        assert finding is None  # unchanged itself: another member moved the summary on
    else:
        assert finding is not None and found in finding.message
        assert (finding.kind, finding.details["rule"]) == ("missing_in_destination", "summary_member")


def summary(**values) -> Document:
    base = {"number": "DS-2026-03-01-GBP", "currency": "GBP", "total": "240.00", "tax_total": "40.00"}
    return Document("summary_invoice", 5, {**base, **values})


def test_a_summary_whose_members_add_up_to_another_total():
    finding = rules.summary_total(
        summary(), {"total": Decimal("270.00"), "tax_total": Decimal("45.00")}, Copy(2, "Ledger", {}), TOL
    )

    assert finding is not None
    assert (finding.kind, finding.identity) == (
        "amount_mismatch",
        ("amount_mismatch", "summary_invoice", 5, 2),
    )
    assert finding.amount_at_risk == Decimal("30.00") and finding.severity == "low"
    assert finding.details["fields"]["tax_total"] == {"canonical": "45.00", "copies": {"composed": "40.00"}}
    assert finding.title == "Summary invoice DS-2026-03-01-GBP: members add up to 270.00 GBP, 240.00 composed"


def test_a_summary_held_with_other_totals_in_the_destination():
    copy = Copy(2, "Ledger", {"currency": "GBP", "total": "200.00", "tax_total": "40.00"})

    finding = rules.summary_total(
        summary(), {"total": Decimal("240.00"), "tax_total": Decimal("40.00")}, copy, TOL
    )

    assert finding is not None and finding.amount_at_risk == Decimal("40.00")
    assert finding.details["fields"] == {
        "total": {"canonical": "240.00", "copies": {"composed": "240.00", "Ledger": "200.00"}}
    }


def test_a_summary_agreeing_with_its_members_within_the_tolerance():
    copy = Copy(2, "Ledger", {"currency": "GBP", "total": "240.01", "tax_total": "40.00"})

    assert (
        rules.summary_total(summary(), {"total": Decimal("240.00"), "tax_total": Decimal("40")}, copy, TOL)
        is None
    )


# --- duplicate payments -------------------------------------------------------------------------------
def test_a_payment_is_a_duplicate_by_its_processor_transaction_id_not_its_reference():
    repeated = payment(processor_transaction_id="ch_9")

    finding = rules.duplicate_at_source(repeated, [3], TOL)

    assert finding is not None and finding.kind == "duplicate"
    assert finding.details["processor_transaction_id"] == "ch_9"
    assert rules.duplicate_at_source(payment(processor_transaction_id=""), [3], TOL) is None
