"""API clients with tokens, and invoice bodies the way an external system sends them."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from api.models import Scope
from api.services import api_client_create, api_client_person_confirm
from sync import roles
from tests.factories import UserFactory

ALL_SCOPES = list(Scope.values)


@pytest.fixture(autouse=True)
def _own_throttle_counts(settings):
    """Throttle counts live in the cache (Redis when configured), keyed by client id; ids repeat across
    test databases and workers, so each test counts under a prefix of its own (keys expire by themselves)."""
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["KEY_PREFIX"] = f"ledgerlink-test-{uuid.uuid4().hex}"
    settings.CACHES = caches


def member(group_name: str, **kwargs: Any):
    user = UserFactory(**kwargs)
    user.groups.add(Group.objects.get(name=group_name))
    return user


@pytest.fixture
def make_client():
    """make_client(scopes=[...], person=None, name=...) -> (ApiClient, APIClient sending its token).
    A linked person confirms the link, as they would from their own session."""
    counter = iter(range(1, 1000))

    def make(scopes: list[str] | None = None, **kwargs: Any) -> tuple[Any, APIClient]:
        kwargs.setdefault("name", f"Shop {next(counter)}")
        client, token = api_client_create(scopes=ALL_SCOPES if scopes is None else scopes, **kwargs)
        if client.person_id is not None:
            api_client_person_confirm(client, by=client.person)
        http = APIClient()
        http.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client, http

    return make


@pytest.fixture
def shop(make_client):
    """A client with every scope but approving (the usual shop or billing tool)."""
    return make_client([s for s in ALL_SCOPES if s != "approve_overrides"], name="Shop")


@pytest.fixture
def accountant():
    return member(roles.ACCOUNTANTS)


@pytest.fixture
def finance():
    return member(roles.FINANCE_STAFF)


def invoice_body(external_id: str = "shop-1001", **overrides: Any) -> dict[str, Any]:
    body = {
        "external_id": external_id,
        "number": f"INV-{external_id}",
        "customer": {"name": "Acme Ltd", "email": "ap@acme.example"},
        "issue_date": "2026-03-01",
        "due_date": "2026-03-31",
        "currency": "GBP",
        "lines": [
            {
                "description": "Olive oil 5L",
                "quantity": "2",
                "unit_price": "50.00",
                "tax_rate": "20",
                "tax_amount": "20.00",
            },
            {"description": "Delivery", "quantity": 1, "unit_price": "9.99", "tax_amount": "0"},
        ],
    }
    body.update(overrides)
    return body


def payment_body(external_id: str = "pay-1", **overrides: Any) -> dict[str, Any]:
    body = {
        "external_id": external_id,
        "reference": f"PAY-{external_id}",
        "customer": {"name": "Acme Ltd", "email": "ap@acme.example"},
        "transaction_date": "2026-03-05",
        "currency": "GBP",
        "amount": "129.99",
        "allocations": [{"invoice_external_id": "shop-1001", "amount": "129.99"}],
        "method": "card",
    }
    body.update(overrides)
    return body


def credit_note_body(external_id: str = "cn-1", **overrides: Any) -> dict[str, Any]:
    body = {
        "external_id": external_id,
        "number": f"CN-{external_id}",
        "customer": {"name": "Acme Ltd", "email": "ap@acme.example"},
        "issue_date": "2026-03-06",
        "currency": "GBP",
        "original_invoice_number": "INV-shop-1001",
        "lines": [{"description": "Damaged bottle", "unit_price": "10.00", "tax_amount": "2.00"}],
    }
    body.update(overrides)
    return body
