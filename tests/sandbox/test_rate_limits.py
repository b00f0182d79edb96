"""Rate limits over real HTTP: the shared limiter keeps several workers under the platform's limit, and
a 429 is retried no sooner than its Retry-After."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection as db_connection

from connectors.base import RateLimit
from connectors.models import Connection, HttpExchange
from connectors.quickbooks.client import QuickBooksClient
from connectors.xero.client import XeroClient
from sandbox import core
from sandbox import quickbooks as quickbooks_sandbox
from sandbox import xero as xero_sandbox
from sandbox.models import SandboxHit
from tests.connectors.test_ratelimit import window_max
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db(transaction=True)
REALM = quickbooks_sandbox.DEFAULT_ACCOUNT
TENANT = xero_sandbox.DEFAULT_ACCOUNT


def _oauth_connection(platform: str, account: str, base_url: str, options: dict) -> Connection:
    token = core.tokens_issue(platform, account, "app-1")
    return ConnectionFactory(
        platform=platform,
        base_url=base_url,
        credentials={"client_id": "app-1", "client_secret": "s", "token": token},
        options=options,
    )


def test_workers_sharing_a_connection_never_exceed_the_platform_limit(live_server, monkeypatch):
    limits = (RateLimit("per second", 4, 1.0), RateLimit("concurrent", 2, concurrent=True))
    monkeypatch.setattr(quickbooks_sandbox, "RATE_LIMITS", limits)
    monkeypatch.setattr(QuickBooksClient, "rate_limits", limits)
    core.seed("quickbooks", REALM)
    connection = _oauth_connection(
        "quickbooks",
        REALM,
        f"{live_server.url}/sandbox/quickbooks/v3",
        {"realmId": REALM, "home_currency": "GBP"},
    )
    errors: list[BaseException] = []

    def worker():
        try:
            client = QuickBooksClient(Connection.objects.get(pk=connection.pk))
            for _ in range(4):
                client.company_info()
        except BaseException as exc:
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors, errors
    hits = list(SandboxHit.objects.filter(platform="quickbooks").values_list("at", "status"))
    assert len(hits) == 12
    assert {status for _, status in hits} == {200}, "the platform never had to refuse a request"
    assert window_max([at for at, _ in hits], 1.0) <= 4


def test_a_429_is_retried_after_retry_after(live_server, monkeypatch):
    monkeypatch.setattr(xero_sandbox, "RATE_LIMITS", (RateLimit("minute", 2, 2.0),))
    monkeypatch.setattr(XeroClient, "rate_limits", ())  # a client that does not know the limit
    connection = _oauth_connection(
        "xero", TENANT, f"{live_server.url}/sandbox/xero/api.xro/2.0", {"tenant_id": TENANT}
    )
    client = XeroClient(connection)
    started = time.time()
    for _ in range(3):
        client.request("GET", "Accounts")
    hits = list(SandboxHit.objects.filter(platform="xero").order_by("at").values_list("at", "status"))
    statuses = [status for _, status in hits]
    assert statuses.count(429) >= 1 and statuses[-1] == 200
    refused = next(at for at, status in hits if status == 429)
    retried = next(at for at, status in hits if at > refused)
    told = HttpExchange.objects.filter(connection=connection, status=429).first().response_headers
    retry_after = float(told["Retry-After"])
    assert retry_after >= 1
    assert told["X-Rate-Limit-Problem"] == "minute"
    # the platform said how long to wait; the client waited at least that
    assert retried - refused >= retry_after - 0.05
    assert time.time() - started < 30
