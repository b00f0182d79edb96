"""Canonical records -> QuickBooks create bodies, each checked against Intuit's own schema (Finance.xsd).

The JSON body is turned into the XML element the schema describes (references `{"value", "name"}` become
element text with a `name` attribute, keys are put in the schema's order) and encoded with xmlschema in
strict mode, so a misspelt property, a property in the wrong place or a value of the wrong type fails.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from connectors.base import (
    AllocationRecord,
    CreditNoteRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    PaymentRecord,
    PushContext,
    ValidationError,
)
from connectors.quickbooks.connector import QuickBooksConnector
from connectors.quickbooks.rendering import short_reference
from tests.connectors.quickbooks.conftest import VENDOR_SPECS

xmlschema = pytest.importorskip("xmlschema")
NAMESPACE = "http://schema.intuit.com/finance/v3"
ENTITIES = ("Invoice", "Payment", "CreditMemo", "Customer")
render = QuickBooksConnector.render


@pytest.fixture(scope="module")
def schema():
    if not (VENDOR_SPECS / "Finance.xsd").exists():
        pytest.skip(f"the QuickBooks schema is not at {VENDOR_SPECS}")
    elements = "".join(f'<xs:element name="{name}" type="{name}"/>' for name in ENTITIES)
    source = (
        f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="{NAMESPACE}" '
        f'targetNamespace="{NAMESPACE}" elementFormDefault="qualified">'
        f'<xs:include schemaLocation="Finance.xsd"/>{elements}</xs:schema>'
    )
    return xmlschema.XMLSchema(source, base_url=str(VENDOR_SPECS))


def xml_shape(xsd_type: Any, value: Any, where: str) -> Any:
    """The JSON value in the shape xmlschema encodes for `xsd_type`, children in the schema's order."""
    if isinstance(value, list):
        return [xml_shape(xsd_type, item, f"{where}[{i}]") for i, item in enumerate(value)]
    if not xsd_type.is_complex():
        return value
    if xsd_type.has_simple_content() and xsd_type.attributes:  # a ReferenceType and the like
        assert isinstance(value, dict) and "value" in value, f"{where} must be an object with a value"
        return {"$": value["value"], **{f"@{key}": item for key, item in value.items() if key != "value"}}
    if not isinstance(value, dict):
        return value
    children = {element.local_name: element for element in xsd_type.content.iter_elements()}
    order = list(children)
    shaped: dict[str, Any] = {}
    if "sparse" in value:
        shaped["@sparse"] = value["sparse"]
    # unknown keys go last, where the strict encoder refuses them
    for key in sorted(
        (k for k in value if k != "sparse"), key=lambda k: order.index(k) if k in order else 10**6
    ):
        child = children.get(key)
        shaped[key] = xml_shape(child.type, value[key], f"{where}.{key}") if child is not None else value[key]
    return shaped


def validate(schema, entity: str, body: dict[str, Any]) -> None:
    data = xml_shape(schema.types[entity], body, entity)
    schema.encode(data, path=entity, validation="strict", namespaces={"": NAMESPACE})


def line(**changes) -> LineRecord:
    values = {
        "description": "Olive oil 5L",
        "quantity": Decimal(3),
        "unit_price": Decimal("32.50"),
        "subtotal": Decimal("97.50"),
        "tax_amount": Decimal("19.50"),
        "total": Decimal("117.00"),
        "tax_rate": Decimal(20),
    }
    return LineRecord(**{**values, **changes})


def invoice_record(**changes) -> InvoiceRecord:
    values = {
        "external_id": "src-1",
        "number": "INV-1001",
        "customer": CustomerRecord(name="Diego Rodriguez"),
        "issue_date": date(2025, 3, 2),
        "due_date": date(2025, 4, 1),
        "currency": "EUR",
        "status": "open",
        "lines": (
            line(),
            line(
                description="Delivery",
                quantity=Decimal(1),
                unit_price=Decimal("9.95"),
                subtotal=Decimal("9.95"),
                tax_amount=Decimal("1.99"),
                total=Decimal("11.94"),
            ),
        ),
        "subtotal": Decimal("107.45"),
        "tax_total": Decimal("21.49"),
        "total": Decimal("128.94"),
        "amount_paid": Decimal(0),
        "amount_due": Decimal("128.94"),
        "memo": "Spring order",
    }
    return InvoiceRecord(**{**values, **changes})


CONTEXT = PushContext(
    reference="INV-1001",
    customer_id="58",
    lines=({"item": "3", "tax_code": "2"}, {"item": "4", "tax_code": "2"}),
    deposit_account="2",
    invoice_ids={"INV-1001": "412", "INV-1002": "415"},
)


def test_an_invoice_renders_to_the_documented_create_body(schema):
    body = render("invoice", invoice_record(), CONTEXT)
    assert body == {
        "DocNumber": "INV-1001",
        "TxnDate": "2025-03-02",
        "DueDate": "2025-04-01",
        "CustomerRef": {"value": "58"},
        "CurrencyRef": {"value": "EUR"},
        "PrivateNote": "Spring order",
        "Line": [
            {
                "LineNum": 1,
                "Description": "Olive oil 5L",
                "Amount": 97.5,
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": "3"},
                    "Qty": 3,
                    "UnitPrice": 32.5,
                    "TaxCodeRef": {"value": "2"},
                },
            },
            {
                "LineNum": 2,
                "Description": "Delivery",
                "Amount": 9.95,
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": "4"},
                    "Qty": 1,
                    "UnitPrice": 9.95,
                    "TaxCodeRef": {"value": "2"},
                },
            },
        ],
    }
    validate(schema, "Invoice", body)


def test_the_schema_check_refuses_a_misspelt_property_and_a_wrong_type(schema):
    body = render("invoice", invoice_record(), CONTEXT)
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        validate(schema, "Invoice", {**body, "DocNumbr": "x"})
    broken = {**body, "Line": [{**body["Line"][0], "Amount": "a lot"}]}
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        validate(schema, "Invoice", broken)
    nested = {**body, "Line": [{**body["Line"][0], "SalesItemLineDetail": {"Quantity": 3}}]}
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        validate(schema, "Invoice", nested)
    with pytest.raises(AssertionError):
        validate(schema, "Invoice", {**body, "CustomerRef": "58"})


def test_a_payment_renders_links_to_the_mapped_invoices(schema):
    payment = PaymentRecord(
        external_id="ch_1",
        reference="ch_3Qx81",
        customer=None,
        transaction_date=date(2025, 3, 9),
        currency="EUR",
        amount=Decimal("125.00"),
        allocations=(
            AllocationRecord(invoice_number="INV-1001", amount=Decimal("100.00")),
            AllocationRecord(invoice_number="unknown", amount=Decimal("25.00"), invoice_external_id="415"),
        ),
    )
    body = render(
        "payment",
        payment,
        PushContext(
            reference="ch_3Qx81", customer_id="58", deposit_account="2", invoice_ids=CONTEXT.invoice_ids
        ),
    )
    assert body == {
        "CustomerRef": {"value": "58"},
        "TotalAmt": 125.0,
        "TxnDate": "2025-03-09",
        "CurrencyRef": {"value": "EUR"},
        "PaymentRefNum": "ch_3Qx81",
        "DepositToAccountRef": {"value": "2"},
        "Line": [
            {"Amount": 100.0, "LinkedTxn": [{"TxnId": "412", "TxnType": "Invoice"}]},
            {"Amount": 25.0, "LinkedTxn": [{"TxnId": "415", "TxnType": "Invoice"}]},
        ],
    }
    validate(schema, "Payment", body)


def test_a_payment_to_an_invoice_with_no_id_is_refused():
    payment = PaymentRecord(
        external_id="p",
        reference="r",
        customer=None,
        transaction_date=date(2025, 3, 9),
        currency="GBP",
        amount=Decimal(10),
        allocations=(AllocationRecord(invoice_number="nowhere", amount=Decimal(10)),),
    )
    with pytest.raises(ValidationError) as caught:
        render("payment", payment, PushContext(customer_id="1"))
    assert caught.value.field == "allocations[0].invoice_number"


def test_a_credit_note_renders_as_a_credit_memo_pointing_at_its_invoice(schema):
    base = invoice_record()
    note = CreditNoteRecord(
        external_id="cn-1",
        number="CN-7",
        customer=base.customer,
        issue_date=date(2025, 3, 10),
        currency="EUR",
        status="open",
        lines=base.lines[:1],
        subtotal=Decimal("97.50"),
        tax_total=Decimal("19.50"),
        total=Decimal("117.00"),
        remaining_credit=Decimal("117.00"),
        original_invoice_number="INV-1001",
    )
    body = render(
        "credit_note",
        note,
        PushContext(reference="CN-7", customer_id="58", lines=CONTEXT.lines, invoice_ids=CONTEXT.invoice_ids),
    )
    assert (body["DocNumber"], body["InvoiceRef"], "DueDate" in body) == ("CN-7", {"value": "412"}, False)
    validate(schema, "CreditMemo", body)


def test_a_customer_renders_with_email_currency_and_tax_number(schema):
    record = CustomerRecord(
        name="Tanaka Trading", email="ap@tanaka.example", tax_number="JP123", currency="JPY"
    )
    body = render("customer", record, PushContext())
    assert body == {
        "DisplayName": "Tanaka Trading",
        "PrimaryEmailAddr": {"Address": "ap@tanaka.example"},
        "CurrencyRef": {"value": "JPY"},
        "PrimaryTaxIdentifier": "JP123",
    }
    validate(schema, "Customer", body)


def test_a_sparse_update_body_is_valid_against_the_schema(schema):
    body = {"Id": "412", "SyncToken": "3", "sparse": True, "PrivateNote": "updated", "DueDate": "2025-05-01"}
    validate(schema, "Invoice", body)


def test_a_line_discounted_at_the_source_goes_as_one_unit_at_its_net_amount():
    discounted = line(quantity=Decimal(3), unit_price=Decimal("32.50"), subtotal=Decimal("90.00"))
    body = render("invoice", invoice_record(lines=(discounted,)), CONTEXT)
    detail = body["Line"][0]["SalesItemLineDetail"]
    assert (body["Line"][0]["Amount"], detail["Qty"], detail["UnitPrice"]) == (90.0, 1, 90.0)


def test_a_line_without_a_mapped_item_is_refused_naming_the_line():
    with pytest.raises(ValidationError) as caught:
        render("invoice", invoice_record(), PushContext(reference="INV-1001", customer_id="58"))
    assert caught.value.field == "lines[0].item"


def test_a_reference_longer_than_docnumber_allows_is_shortened_the_same_way_every_time():
    long = "shopify-order-1000000000042"
    assert len(short_reference(long)) == 21
    assert short_reference(long) == short_reference(long) != short_reference(long + "3")
    body = render(
        "invoice", invoice_record(), PushContext(reference=long, customer_id="58", lines=CONTEXT.lines)
    )
    assert body["DocNumber"] == short_reference(long)


def test_amounts_go_out_as_exact_json_numbers_in_any_currency():
    yen = invoice_record(
        currency="JPY",
        lines=(line(quantity=Decimal(2), unit_price=Decimal(7500), subtotal=Decimal(15000)),),
    )
    body = render("invoice", yen, CONTEXT)
    assert (body["Line"][0]["Amount"], body["Line"][0]["SalesItemLineDetail"]["UnitPrice"]) == (15000, 7500)
    dinar = invoice_record(
        currency="KWD",
        lines=(line(quantity=Decimal(1), unit_price=Decimal("1.125"), subtotal=Decimal("1.125")),),
    )
    assert render("invoice", dinar, CONTEXT)["Line"][0]["Amount"] == 1.125
