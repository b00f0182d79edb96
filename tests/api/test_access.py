"""Who may call what: tokens, scopes per endpoint, staff sessions with their permissions, throttling, and
the one error shape for every refusal."""

from __future__ import annotations

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from api.models import ApiClient
from api.services import api_tokens_revoke
from sync import roles
from tests.api.conftest import member

pytestmark = pytest.mark.django_db

# (method, path, scope that opens it); ids that do not exist: a 404 proves the scope check passed
ENDPOINTS = [
    ("get", "/api/v1/invoices/", "read"),
    ("get", "/api/v1/payments/99999/", "read"),
    ("get", "/api/v1/credit-notes/", "read"),
    ("post", "/api/v1/invoices/", "write_documents"),
    ("post", "/api/v1/payments/bulk/", "write_documents"),
    ("patch", "/api/v1/invoices/99999/", "write_documents"),
    ("post", "/api/v1/credit-notes/99999/void/", "write_documents"),
    ("get", "/api/v1/sync-profiles/", "read"),
    ("post", "/api/v1/sync-profiles/99999/run/", "run_syncs"),
    ("post", "/api/v1/sync-profiles/99999/dry-run/", "run_syncs"),
    ("get", "/api/v1/jobs/", "read"),
    ("get", "/api/v1/bindings/lookup/?connection=1&external_id=x", "read"),
    ("get", "/api/v1/lineage/?q=x", "read"),
    ("get", "/api/v1/connections/", "read"),
    ("post", "/api/v1/connections/99999/test/", "run_syncs"),
    ("get", "/api/v1/exceptions/", "read"),
    ("post", "/api/v1/exceptions/99999/resolve/", "work_exceptions"),
    ("post", "/api/v1/exceptions/99999/notes/", "work_exceptions"),
    ("get", "/api/v1/overrides/", "read"),
    ("post", "/api/v1/overrides/", "work_exceptions"),
    ("post", "/api/v1/overrides/99999/approve/", "approve_overrides"),
    ("post", "/api/v1/overrides/99999/reject/", "approve_overrides"),
]


@pytest.mark.parametrize(("method", "path", "scope"), ENDPOINTS)
def test_each_endpoint_needs_its_scope(make_client, method, path, scope):
    _, without = make_client(
        [
            s
            for s in ("read", "write_documents", "run_syncs", "work_exceptions", "approve_overrides")
            if s != scope
        ]
    )
    refused = getattr(without, method)(path, {}, format="json")
    assert refused.status_code == 403
    assert refused.json() == {
        "code": "permission_denied",
        "message": f"This API client lacks the {scope!r} scope.",
        "errors": [],
    }
    _, with_scope = make_client([scope])
    allowed = getattr(with_scope, method)(path, {}, format="json")
    assert allowed.status_code != 403, allowed.json()


def test_no_token_is_a_401_with_the_scheme(client):
    response = APIClient().get("/api/v1/invoices/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_wrong_token_is_refused(make_client):
    response = APIClient(HTTP_AUTHORIZATION="Bearer llk_nottherightone").get("/api/v1/invoices/")
    assert response.status_code == 401 and response.json()["code"] == "authentication_failed"


def test_an_inactive_client_and_a_revoked_token_are_refused(make_client):
    client, http = make_client(["read"])
    assert http.get("/api/v1/me/").status_code == 200
    client.active = False
    client.save()
    from api.services import api_client_saved

    api_client_saved(client)
    assert http.get("/api/v1/me/").status_code == 401
    client.active = True
    client.save()
    api_client_saved(client)
    assert http.get("/api/v1/me/").status_code == 200
    api_tokens_revoke(client=client)
    assert http.get("/api/v1/me/").status_code == 401


def test_tokens_are_stored_hashed(make_client):
    from knox.models import AuthToken

    client, http = make_client(["read"])
    token = http._credentials["HTTP_AUTHORIZATION"].split()[1]
    assert token.startswith("llk_")
    stored = AuthToken.objects.get(user=client.service_user)
    assert token not in (stored.digest, stored.token_key) and len(stored.digest) == 128


def test_me_names_the_client_and_the_acting_person(make_client, accountant):
    client, http = make_client(["read"], person=accountant)
    body = http.get("/api/v1/me/").json()
    assert body == {
        "client": client.name,
        "scopes": ["read"],
        "user": client.service_user.username,
        "acting_user": accountant.username,
        "connection": client.connection_id,
    }


def test_staff_sessions_use_their_django_permissions(client):
    client.force_login(member(roles.FINANCE_STAFF))
    assert client.get("/api/v1/invoices/").status_code == 200
    refused = client.post("/api/v1/sync-profiles/1/run/")
    assert refused.status_code == 403 and "sync.change_syncjob" in refused.json()["message"]


def test_a_session_of_a_non_staff_user_is_not_accepted(client):
    user = member(roles.FINANCE_STAFF, is_staff=False)
    client.force_login(user)
    assert client.get("/api/v1/invoices/").status_code == 401


def test_the_client_row_sets_its_own_throttle_rate(make_client):
    _, http = make_client(["read"], throttle_rate="2/minute")
    assert http.get("/api/v1/me/").status_code == 200
    assert http.get("/api/v1/me/").status_code == 200
    throttled = http.get("/api/v1/me/")
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "throttled" and int(throttled["Retry-After"]) > 0
    _, other = make_client(["read"], throttle_rate="2/minute")
    assert other.get("/api/v1/me/").status_code == 200  # counted per client


@override_settings(API_DEFAULT_THROTTLE_RATE="1/minute")
def test_without_a_rate_of_its_own_a_client_gets_the_default(make_client):
    _, http = make_client(["read"])
    assert http.get("/api/v1/me/").status_code == 200
    assert http.get("/api/v1/me/").status_code == 429


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/api/v1/no-such-thing/", 404, "not_found"),
        ("post", "/api/v1/invoices/1/void/extra/", 404, "not_found"),
        ("get", "/api/v1/invoices/424242/", 404, "not_found"),
        ("delete", "/api/v1/invoices/", 405, "method_not_allowed"),
        ("get", "/api/v1/invoices/?cursor=garbage", 404, "not_found"),
    ],
)
def test_every_error_is_the_one_json_shape(shop, method, path, status, code):
    _, http = shop
    response = getattr(http, method)(path)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"code", "message", "errors"} and response.json()["code"] == code


def test_a_missing_trailing_slash_is_named(shop):
    _, http = shop
    response = http.get("/api/v1/invoices")
    assert response.status_code == 404 and "/api/v1/invoices/" in response.json()["message"]


def test_a_body_that_is_not_json_is_a_400(shop):
    _, http = shop
    response = http.post("/api/v1/invoices/", data="{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "parse_error"


def test_service_users_hold_the_permissions_their_scopes_stand_for_but_never_approval(make_client):
    client, _ = make_client(["work_exceptions", "approve_overrides"])
    user = ApiClient.objects.get(pk=client.pk).service_user
    assert user.has_perm("reconciliation.change_reconciliationexception")
    assert not user.has_perm("reconciliation.approve_override")
    assert not user.has_perm("sync.add_invoice")
