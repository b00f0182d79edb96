"""API clients in the admin: created by integration admins, the token shown once, issued and revoked."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from knox.models import AuthToken
from rest_framework.test import APIClient

from api.models import ApiClient
from api.services import api_client_create
from sync import roles
from tests.api.conftest import member

pytestmark = pytest.mark.django_db


@pytest.fixture
def integrator(client):
    client.force_login(member(roles.INTEGRATION_ADMINS))
    return client


def _token(response) -> str:
    return re.search(r'value="(llk_[^"]+)"', response.content.decode()).group(1)


def test_creating_a_client_shows_its_token_once_and_the_token_works(integrator):
    response = integrator.post(
        reverse("admin:api_apiclient_add"),
        {
            "name": "Zapier",
            "scopes": ["read", "write_documents"],
            "throttle_rate": "",
            "active": "on",
        },
    )
    assert response.status_code == 200, response.content[:500]
    token = _token(response)
    assert "no-store" in response["Cache-Control"]
    client = ApiClient.objects.get(name="Zapier")
    assert client.connection.platform == "api" and client.service_user.has_usable_password() is False
    me = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}").get("/api/v1/me/")
    assert me.json()["client"] == "Zapier"
    page = integrator.get(reverse("admin:api_apiclient_change", args=[client.pk])).content.decode()
    assert token not in page and token[:15] in page  # only the stored prefix is ever shown again


def test_issue_a_new_token_and_revoke_them_all(integrator):
    client, first = api_client_create(name="CRM", scopes=["read"])
    url = reverse("admin:api_apiclient_new_token", args=[client.pk])
    assert "Issue a new token" in integrator.get(url).content.decode()
    second = _token(integrator.post(url))
    assert AuthToken.objects.filter(user=client.service_user).count() == 2
    integrator.post(reverse("admin:api_apiclient_revoke_tokens", args=[client.pk]))
    assert not AuthToken.objects.filter(user=client.service_user).exists()
    for token in (first, second):
        assert APIClient(HTTP_AUTHORIZATION=f"Bearer {token}").get("/api/v1/me/").status_code == 401


def test_a_bad_throttle_rate_is_refused_by_the_form(integrator):
    response = integrator.post(reverse("admin:api_apiclient_add"), {"name": "X", "throttle_rate": "fast"})
    assert response.status_code == 200 and "600/minute" in response.content.decode()
    assert not ApiClient.objects.exists()


def test_finance_staff_cannot_manage_clients(client):
    client.force_login(member(roles.FINANCE_STAFF))
    assert client.get(reverse("admin:api_apiclient_changelist")).status_code == 403


def test_the_list_page_stays_within_a_fixed_number_of_queries(integrator, django_assert_max_num_queries):
    for index in range(3):
        api_client_create(name=f"Client {index}", scopes=["read"])
    with django_assert_max_num_queries(12):
        integrator.get(reverse("admin:api_apiclient_changelist"))
    for index in range(3, 20):
        api_client_create(name=f"Client {index}", scopes=["read"])
    with django_assert_max_num_queries(12):
        assert integrator.get(reverse("admin:api_apiclient_changelist")).status_code == 200
