"""OAuth from the admin against the QuickBooks sandbox over real HTTP: consent, callback, refresh."""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.db import connection as db_connection

from connectors import oauth
from connectors.base import AuthNeededError
from connectors.models import Connection
from connectors.services import connection_check
from sandbox import core
from sandbox.models import SandboxToken
from sync import roles
from tests.factories import ConnectionFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)
REALM = "4620816365100000001"


@pytest.fixture
def qbo(live_server):
    root = f"{live_server.url}/sandbox/quickbooks"
    return ConnectionFactory(
        platform="quickbooks",
        base_url=f"{root}/v3",
        credentials={"client_id": "app-1", "client_secret": "s3cret"},
        options={
            "oauth_authorize_url": f"{root}/oauth/authorize",
            "oauth_token_url": f"{root}/oauth/token",
            "home_currency": "USD",
        },
    )


def _user_in(group_name: str):
    roles.apply_roles(apps)  # transactional tests flush the groups the migration made
    user = UserFactory()
    user.groups.add(Group.objects.get(name=group_name))
    return user


@pytest.fixture
def integrator(client):
    user = _user_in(roles.INTEGRATION_ADMINS)
    client.force_login(user)
    return user


def _authorised(connection: Connection, *, expires_in: float) -> Connection:
    token = core.tokens_issue("quickbooks", REALM, "app-1")
    token["expires_at"] = time.time() + expires_in
    connection.credentials = {**connection.credentials, "token": token}
    connection.options = {**connection.options, "realmId": REALM}
    connection.save()
    return connection


def test_connect_goes_through_consent_and_stores_tokens_and_realm(client, integrator, qbo):
    page = client.get(f"/admin/connectors/connection/{qbo.pk}/change/")
    assert b'id="oauth-connect"' in page.content

    start = client.post(f"/connectors/{qbo.pk}/connect/")
    assert start.status_code == 302
    consent_url = urlsplit(start["Location"])
    query = {key: values[0] for key, values in parse_qs(consent_url.query).items()}
    assert query["client_id"] == "app-1"
    assert query["scope"] == "com.intuit.quickbooks.accounting"
    assert query["redirect_uri"].endswith("/connectors/oauth/callback/")

    assert client.get(f"{consent_url.path}?{consent_url.query}").status_code == 200
    allowed = client.post(consent_url.path, {**query, "account": REALM})
    callback = urlsplit(allowed["Location"])
    assert parse_qs(callback.query)["realmId"] == [REALM]

    done = client.get(f"{callback.path}?{callback.query}")
    assert done.status_code == 302
    qbo.refresh_from_db()
    assert qbo.options["realmId"] == REALM
    assert qbo.credentials["token"]["access_token"]
    assert qbo.credentials["token"]["refresh_token"]
    assert qbo.health == Connection.Health.HEALTHY


def test_a_callback_with_a_forged_state_is_refused(client, integrator, qbo):
    client.post(f"/connectors/{qbo.pk}/connect/")
    response = client.get("/connectors/oauth/callback/?code=abc&state=forged&realmId=1")
    assert response.status_code == 400
    qbo.refresh_from_db()
    assert "token" not in qbo.credentials


def test_only_integration_admins_may_connect(client, qbo):
    client.force_login(_user_in(roles.FINANCE_STAFF))
    assert client.post(f"/connectors/{qbo.pk}/connect/").status_code == 403


def test_two_workers_with_an_expired_token_refresh_it_once(qbo):
    _authorised(qbo, expires_in=-10)
    first_refresh = qbo.credentials["token"]["refresh_token"]
    tokens: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker():
        try:
            mine = Connection.objects.get(pk=qbo.pk)
            barrier.wait()
            tokens.append(oauth.access_token(mine))
        except BaseException as exc:
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors, errors
    assert len(set(tokens)) == 1
    # one refresh reached the provider; a second would have been refused (refresh tokens are single-use)
    assert SandboxToken.objects.filter(kind="refresh", used=True).count() == 1
    qbo.refresh_from_db()
    rotated = qbo.credentials["token"]["refresh_token"]
    assert rotated != first_refresh
    assert SandboxToken.objects.get(value=rotated).used is False
    assert qbo.health != Connection.Health.NEEDS_REAUTH


def test_a_refused_refresh_token_marks_the_connection_for_reauthorisation(qbo):
    _authorised(qbo, expires_in=-10)
    SandboxToken.objects.filter(kind="refresh").update(used=True)  # revoked at the provider
    with pytest.raises(AuthNeededError):
        oauth.access_token(Connection.objects.get(pk=qbo.pk))
    qbo.refresh_from_db()
    assert qbo.health == Connection.Health.NEEDS_REAUTH
    assert "Connect" in qbo.last_error


def test_a_fresh_token_is_used_without_refreshing(qbo):
    _authorised(qbo, expires_in=3000)
    assert oauth.access_token(qbo) == qbo.credentials["token"]["access_token"]
    assert not SandboxToken.objects.filter(kind="refresh", used=True).exists()


def test_test_connection_reports_healthy_then_needs_reauth(qbo):
    _authorised(qbo, expires_in=3000)
    core.seed("quickbooks", REALM)
    assert connection_check(connection=qbo) == Connection.Health.HEALTHY
    SandboxToken.objects.all().delete()  # the company disconnected the app
    assert connection_check(connection=Connection.objects.get(pk=qbo.pk)) == Connection.Health.NEEDS_REAUTH
    qbo.refresh_from_db()
    assert qbo.health == Connection.Health.NEEDS_REAUTH
    assert qbo.last_checked_at is not None
