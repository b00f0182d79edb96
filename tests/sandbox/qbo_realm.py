"""The QuickBooks sandbox as one realm, for the sandbox's own tests: request shortcuts and a small book."""

from __future__ import annotations

import json
from typing import Any

from sandbox import core
from sandbox import quickbooks as qbo

REALM = "1234567890"
ROOT = f"/sandbox/quickbooks/v3/company/{REALM}"


class RealmApi:
    """GET/POST shortcuts to the sandbox as one realm, with a bearer token it gave out."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.token = core.tokens_issue("quickbooks", REALM, "app")["access_token"]

    def get(self, path: str, **params: Any) -> Any:
        params.setdefault("minorversion", "75")
        return self.client.get(f"{ROOT}/{path}", params, HTTP_AUTHORIZATION=f"Bearer {self.token}")

    def post(self, path: str, body: dict, **params: Any) -> Any:
        query = "&".join(f"{key}={value}" for key, value in {"minorversion": "75", **params}.items())
        return self.client.post(
            f"{ROOT}/{path}?{query}",
            json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {self.token}",
        )

    def query(self, statement: str) -> dict:
        answer = self.get("query", query=statement)
        assert answer.status_code == 200, answer.content
        return answer.json()["QueryResponse"]

    def batch(self, items: list[dict], **params: Any) -> Any:
        return self.post("batch", {"BatchItemRequest": items}, **params)

    def count(self, entity: str) -> int:
        return self.query(f"SELECT COUNT(*) FROM {entity}")["totalCount"]


def books_open(api: RealmApi) -> dict[str, str]:
    """A realm with a GBP customer, items and tax codes, and nothing else."""
    qbo._reference_data(REALM)
    customer = api.post("customer", {"DisplayName": "Cool Cars", "CurrencyRef": {"value": "GBP"}}).json()
    return {"customer": customer["Customer"]["Id"]}


def invoice_body(
    customer: str, *, qty: int = 2, price: float = 50.0, amount: float | None = None, tax_code: str = "2"
) -> dict:
    detail = {"ItemRef": {"value": "1"}, "Qty": qty, "UnitPrice": price, "TaxCodeRef": {"value": tax_code}}
    line = {
        "Amount": qty * price if amount is None else amount,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": detail,
    }
    return {"CustomerRef": {"value": customer}, "Line": [line], "TxnDate": "2025-07-01"}
