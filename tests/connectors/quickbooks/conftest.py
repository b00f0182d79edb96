"""QuickBooks test setup: recorded payloads, a connection to a fake realm, a connector without waits."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.connector import QuickBooksConnector
from tests.factories import ConnectionFactory

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "quickbooks"
BASE = "https://qbo.example.test/v3"
REALM = "4620816365"
COMPANY = f"{BASE}/company/{REALM}"
VERIFIER = "ledgerlink-test-verifier"


def repo_root() -> Path:
    here = Path(__file__).resolve()
    return next(parent for parent in here.parents if (parent / "manage.py").exists())


VENDOR_SPECS = repo_root().parent / "shared" / "vendor-specs" / "quickbooks"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture(name: str) -> Any:
    return json.loads(fixture_bytes(name))


class NoLimits:
    """A limiter that admits everything at once (the shared limiter has its own tests)."""

    limits = ()

    def acquire(self) -> str:
        return "slot"

    def release(self, token: str) -> None:
        pass

    def penalise(self, seconds: float) -> None:
        pass


@pytest.fixture
def connection(db):
    token = {"access_token": "access-1", "refresh_token": "refresh-1", "expires_at": int(time.time()) + 3600}
    return ConnectionFactory(
        platform="quickbooks",
        base_url=BASE,
        credentials={
            "client_id": "app",
            "client_secret": "app-secret",
            "token": token,
            "webhook_verifier_token": VERIFIER,
        },
        options={"realmId": REALM, "home_currency": "GBP"},
    )


@pytest.fixture
def connector(connection):
    made = QuickBooksConnector(connection)
    made.client = QuickBooksClient(connection, limiter=NoLimits(), sleep=lambda seconds: None)
    return made


@pytest.fixture
def client(connector):
    return connector.client
