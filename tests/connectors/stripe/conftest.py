"""Shared pieces for the Stripe tests: recorded payloads, a connection, and a connector whose client
neither sleeps nor rate-limits."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.base import CustomerRecord, InvoiceRecord, LineRecord, PushContext
from connectors.stripe.client import StripeClient
from connectors.stripe.connector import StripeConnector
from tests.factories import ConnectionFactory

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "stripe"
# the official specs, kept next to the repository (not in it); tests that need them skip without them
VENDOR_SPECS = REPO.parent / "shared" / "vendor-specs" / "stripe"
BASE = "https://api.stripe.test/v1"
API_KEY = "sk_test_51LedgerlinkDemoKey"
WEBHOOK_SECRET = "whsec_test_secret"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def vendor_file(name: str) -> Path:
    path = VENDOR_SPECS / name
    if not path.exists():
        pytest.skip(f"the Stripe vendor specs are not available ({path})")
    return path


class NoLimits:
    """Admits every request at once; records what a 429 asked for."""

    def __init__(self) -> None:
        self.penalties: list[float] = []

    def acquire(self) -> str:
        return "token"

    def release(self, token: str) -> None:
        pass

    def penalise(self, seconds: float) -> None:
        self.penalties.append(seconds)


@pytest.fixture
def connection(db):
    return ConnectionFactory(
        platform="stripe",
        base_url=BASE,
        credentials={"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET},
    )


@pytest.fixture
def connector(connection):
    made = StripeConnector(connection)
    made.waits = []
    made.client = StripeClient(connection, limiter=NoLimits(), sleep=made.waits.append)
    return made


def canonical_invoice(**changes):
    values = {
        "external_id": "",
        "number": "INV-7",
        "customer": CustomerRecord(name="Hudson Analytics Inc"),
        "issue_date": date(2026, 1, 2),
        "due_date": date(2026, 1, 16),
        "currency": "USD",
        "status": "open",
        "lines": (
            LineRecord(
                "Consulting (hours)",
                Decimal(3),
                Decimal("150.00"),
                Decimal("450.00"),
                Decimal("39.94"),
                Decimal("489.94"),
            ),
            LineRecord(
                "Support plan",
                Decimal("1.5"),
                Decimal("13.00"),
                Decimal("19.50"),
                Decimal(0),
                Decimal("19.50"),
                line_number=2,
            ),
        ),
        "subtotal": Decimal("469.50"),
        "tax_total": Decimal("39.94"),
        "total": Decimal("509.44"),
        "amount_paid": Decimal(0),
        "amount_due": Decimal("509.44"),
        "memo": "January work",
    }
    return InvoiceRecord(**{**values, **changes})


CONTEXT = PushContext(
    reference="LL-INV-7",
    customer_id="cus_HudsonAnalytics01",
    lines=({"tax_code": "txr_1QaNySalesTax0001"}, {}),
)
