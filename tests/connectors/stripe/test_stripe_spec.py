"""Every request the connector sends, checked against Stripe's OpenAPI spec (spec3.yaml, read once per test
session from the vendor specs next to the repository; skipped without them): the operation exists, each
form or query parameter is one the operation takes, nested keys exist, and values have the declared type,
enum and length.

The spec is the 2023-08-16 API; `invoice_payments` came later (2025) and is checked against the parameters
the current API documents instead.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
import time_machine
import yaml

from connectors.base import AllocationRecord, PaymentRecord, PushContext
from connectors.stripe.connector import StripeConnector
from tests.connectors.stripe.conftest import BASE, CONTEXT, canonical_invoice, load, vendor_file

NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
# operations newer than spec3.yaml, with the query parameters the current API reference lists
NEWER_THAN_SPEC = {
    ("get", "/v1/invoice_payments"): {
        "created",
        "ending_before",
        "expand",
        "invoice",
        "limit",
        "payment",
        "starting_after",
        "status",
    },
}


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    with vendor_file("spec3.yaml").open("rb") as handle:
        return yaml.load(handle, Loader=yaml.CSafeLoader)


def nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Form pairs back into the structure they encode (`a[b]`, `a[]`, `a[0][b]`)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = [key.split("[", 1)[0], *re.findall(r"\[([^\]]*)\]", key)]
        node: Any = out
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            following = None if last else parts[index + 1]
            if following == "" and index + 1 == len(parts) - 1:
                node.setdefault(part, []).append(value)
                break
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _lists(out)


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        value = {key: _lists(item) for key, item in value.items()}
        if value and all(key.isdigit() for key in value):
            return [value[key] for key in sorted(value, key=int)]
    return value


def check(spec: dict[str, Any], value: Any, schema: dict[str, Any], where: str) -> None:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                check(spec, value, option, where)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{where}: {value!r} matches no allowed shape ({'; '.join(errors)})")
    kind = schema.get("type")
    if kind == "object":
        assert isinstance(value, dict), f"{where}: expected an object, sent {value!r}"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                check(spec, item, properties[key], f"{where}[{key}]")
            elif isinstance(extra, dict):
                check(spec, item, extra, f"{where}[{key}]")
            else:
                raise AssertionError(f"{where}: unknown key {key!r}")
        missing = set(schema.get("required", ())) - set(value)
        assert not missing, f"{where}: missing {sorted(missing)}"
    elif kind == "array":
        assert isinstance(value, list), f"{where}: expected an array, sent {value!r}"
        for index, item in enumerate(value):
            check(spec, item, schema.get("items", {}), f"{where}[{index}]")
    else:
        assert isinstance(value, str), f"{where}: expected a scalar, sent {value!r}"
        if kind == "integer":
            assert re.fullmatch(r"-?\d+", value), f"{where}: {value!r} is not an integer"
        elif kind == "boolean":
            assert value in ("true", "false"), f"{where}: {value!r} is not a boolean"
        elif kind == "number":
            Decimal(value)
        if "enum" in schema:
            assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
        if "maxLength" in schema:
            assert len(value) <= schema["maxLength"], f"{where}: longer than {schema['maxLength']}"
        if schema.get("format") == "decimal":
            Decimal(value)


def operation(spec: dict[str, Any], method: str, path: str) -> tuple[str, dict[str, Any] | None]:
    paths = spec["paths"]
    if path in paths:
        return path, paths[path].get(method)
    for template, item in paths.items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", r"[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method in item:
            return template, item[method]
    return path, None


def validate(spec: dict[str, Any], calls) -> list[str]:
    checked = []
    for call in calls:
        method = call.request.method.lower()
        url = urlsplit(call.request.url)
        template, op = operation(spec, method, url.path)
        query = nested(parse_qsl(url.query, keep_blank_values=True))
        if op is None:
            allowed = NEWER_THAN_SPEC.get((method, url.path))
            assert allowed is not None, f"{method.upper()} {url.path} is not a Stripe operation"
            assert set(query) <= allowed, f"{url.path}: unknown parameters {set(query) - allowed}"
            checked.append(f"{method.upper()} {url.path}")
            continue
        parameters = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
        for name, value in query.items():
            assert name in parameters, f"{method.upper()} {template}: unknown query parameter {name!r}"
            check(spec, value, parameters[name]["schema"], name)
        if method == "post":
            body = nested(parse_qsl(call.request.body or "", keep_blank_values=True))
            schema = op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
            check(spec, body, schema, f"POST {template}")
        checked.append(f"{method.upper()} {template}")
    return checked


def listing(data, has_more=False):
    return {"object": "list", "data": data, "has_more": has_more, "url": "/v1/x"}


@responses.activate
def test_reads_send_only_parameters_the_spec_knows(spec, connector):
    usd = load("invoice_usd_open")
    with time_machine.travel(NOW, tick=False):
        responses.get(
            f"{BASE}/events",
            json=listing(
                [
                    {
                        "id": "evt_1",
                        "object": "event",
                        "type": "invoice.paid",
                        "created": 1768900000,
                        "data": {"object": usd},
                    }
                ]
            ),
        )
        responses.get(f"{BASE}/events", json=listing([]))
        connector.list_changes("invoice", since=NOW - timedelta(days=1))
        connector.list_changes(
            "invoice", since=NOW - timedelta(days=1), page=f"events:evt_1:{NOW.timestamp()}"
        )
        for object_type in ("credit_note", "payout", "customer"):
            connector.list_changes(object_type, since=NOW - timedelta(days=1))
        responses.get(f"{BASE}/invoices", json=listing([usd]))
        connector.list_changes("invoice", since=None)
        responses.get(f"{BASE}/charges", json=listing([load("charge")]))
        responses.get(f"{BASE}/invoice_payments", json=listing([load("invoice_payment")]))
        responses.get(f"{BASE}/refunds", json=listing([load("refund")]))
        page = connector.list_changes("payment", since=None)
        connector.list_changes("payment", since=None, page=page.next_page)
        responses.get(f"{BASE}/payouts", json=listing([load("payout")]))
        responses.get(f"{BASE}/balance_transactions", json=load("payout_balance_transactions"))
        connector.list_changes("payout", since=None)
        responses.get(
            f"{BASE}/invoices/search", json={"object": "search_result", "data": [], "has_more": False}
        )
        connector.find_by_reference("invoice", "LL-INV-0042")
        responses.get(f"{BASE}/charges/ch_3QdCharge00000000000001", json=load("charge"))
        connector.fetch("payment", "ch_3QdCharge00000000000001")
        responses.get(f"{BASE}/refunds/re_3QeRefund00000000000001", json=load("refund"))
        connector.fetch("payment", "re_3QeRefund00000000000001")
    checked = validate(spec, responses.calls)
    assert {
        "GET /v1/events",
        "GET /v1/invoices",
        "GET /v1/charges",
        "GET /v1/refunds",
        "GET /v1/payouts",
        "GET /v1/balance_transactions",
        "GET /v1/invoices/search",
        "GET /v1/invoice_payments",
        "GET /v1/charges/{charge}",
        "GET /v1/refunds/{refund}",
    } <= set(checked)


@responses.activate
def test_writes_send_bodies_the_spec_accepts(spec, connector):
    usd = load("invoice_usd_open")
    responses.post(f"{BASE}/invoices", json={**usd, "status": "draft"})
    responses.post(f"{BASE}/invoiceitems", json={"id": "ii_1", "object": "invoiceitem"})
    responses.post(f"{BASE}/invoices/{usd['id']}/finalize", json=usd)
    connector.create(
        "invoice", StripeConnector.render("invoice", canonical_invoice(), CONTEXT), idempotency_key="k"
    )
    responses.get(f"{BASE}/invoices/{usd['id']}", json=usd)
    responses.post(f"{BASE}/invoices/{usd['id']}/pay", json={**usd, "status": "paid"})
    payment = PaymentRecord(
        "",
        "BANK-1",
        None,
        NOW.date(),
        "USD",
        Decimal("511.17"),
        allocations=(AllocationRecord("HUD-0042", Decimal("511.17"), invoice_external_id=usd["id"]),),
    )
    connector.record_payment(payment, PushContext(), idempotency_key="k2")
    responses.post(f"{BASE}/invoices/{usd['id']}/void", json={**usd, "status": "void"})
    connector.void("invoice", usd["id"], remote_version="", idempotency_key="k3")
    checked = validate(spec, responses.calls)
    assert {
        "POST /v1/invoices",
        "POST /v1/invoiceitems",
        "POST /v1/invoices/{invoice}/finalize",
        "POST /v1/invoices/{invoice}/pay",
        "POST /v1/invoices/{invoice}/void",
    } <= set(checked)


def test_the_checker_catches_what_stripe_would_refuse(spec):
    schema = spec["paths"]["/v1/invoices"]["post"]["requestBody"]["content"][
        "application/x-www-form-urlencoded"
    ]
    with pytest.raises(AssertionError, match="unknown key 'colour'"):
        check(spec, {"customer": "cus_1", "colour": "red"}, schema["schema"], "POST /v1/invoices")
    with pytest.raises(AssertionError, match="not an integer"):
        check(spec, {"days_until_due": "soon"}, schema["schema"], "POST /v1/invoices")
    with pytest.raises(AssertionError, match="not in"):
        check(spec, {"pending_invoice_items_behavior": "sometimes"}, schema["schema"], "POST /v1/invoices")


def test_the_form_decoder_reads_what_the_encoder_writes():
    from connectors.stripe.client import encode_form

    params = {"a": {"b": ["x", "y"], "c": {"d": "1"}}, "lines": [{"type": "t", "amount": "5"}], "e": "f"}
    assert nested(encode_form(params)) == params
