"""API clients in the admin: created by integration admins, the token shown once, issued and revoked; a
linked person confirms the link from their own session before the client acts for them."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from knox.models import AuthToken
from rest_framework.test import APIClient

from api.models import ApiClient
from api.services import api_client_create, api_client_person_confirm
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
        api_client_create(name=f"Client {index}", scopes=["read"], person=member(roles.ACCOUNTANTS))
    with django_assert_max_num_queries(12):
        integrator.get(reverse("admin:api_apiclient_changelist"))
    for index in range(3, 20):
        person = member(roles.ACCOUNTANTS)
        api_client_create(name=f"Client {index}", scopes=["read"], person=person, by=person)
    with django_assert_max_num_queries(12):
        assert integrator.get(reverse("admin:api_apiclient_changelist")).status_code == 200


def _form(client: ApiClient, **changes) -> dict:
    data = {
        "name": client.name,
        "scopes": client.scopes,
        "person": client.person_id or "",
        "throttle_rate": client.throttle_rate,
        "active": "on" if client.active else "",
    }
    data.update(changes)
    return data


def test_an_integration_admin_can_name_a_person_but_the_client_does_not_act_for_them(integrator):
    accountant = member(roles.ACCOUNTANTS)
    response = integrator.post(
        reverse("admin:api_apiclient_add"),
        {"name": "Approvals", "scopes": ["approve_overrides"], "person": accountant.pk, "active": "on"},
    )
    assert response.status_code == 200, response.content[:500]
    client = ApiClient.objects.get(name="Approvals")
    assert client.person == accountant and not client.person_confirmed
    assert client.acting_user == client.service_user
    me = APIClient(HTTP_AUTHORIZATION=f"Bearer {_token(response)}").get("/api/v1/me/").json()
    assert me["acting_user"] == client.service_user.username
    page = integrator.get(reverse("admin:api_apiclient_change", args=[client.pk])).content.decode()
    assert f"Waiting for {accountant.username} to confirm" in page
    assert reverse("admin:api_apiclient_confirm_person", args=[client.pk]) in page


def test_only_the_person_confirms_the_link_from_their_own_session(integrator, client):
    accountant = member(roles.ACCOUNTANTS)
    api_client, token = api_client_create(
        name="Approvals",
        scopes=["approve_overrides", "read"],
        person=accountant,
        by=member(roles.INTEGRATION_ADMINS),
    )
    url = reverse("admin:api_apiclient_confirm_person", args=[api_client.pk])
    assert integrator.get(url).status_code == 403
    assert integrator.post(url, {"confirm": "1"}).status_code == 403
    assert not ApiClient.objects.get(pk=api_client.pk).person_confirmed
    client.force_login(accountant)
    page = client.get(url).content.decode()
    assert "Let Approvals act for" in page and "created or last configured" in page
    assert client.post(url, {"confirm": "1"}).status_code == 302
    api_client.refresh_from_db()
    assert api_client.person_confirmed and api_client.person_confirmed_by == accountant
    me = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}").get("/api/v1/me/").json()
    assert me["acting_user"] == accountant.username
    latest = api_client.history.first()
    assert (latest.history_user, latest.history_change_reason) == (
        accountant,
        f"link to {accountant} confirmed by {accountant}",
    )


def test_the_person_can_decline_the_link(client):
    accountant = member(roles.ACCOUNTANTS)
    api_client, _ = api_client_create(
        name="Approvals", scopes=["read"], person=accountant, by=member(roles.INTEGRATION_ADMINS)
    )
    client.force_login(accountant)
    client.post(reverse("admin:api_apiclient_confirm_person", args=[api_client.pk]), {"decline": "1"})
    api_client.refresh_from_db()
    assert api_client.person is None and api_client.acting_user == api_client.service_user


def test_linking_yourself_or_as_a_superuser_needs_no_confirmation(client):
    boss = member(roles.INTEGRATION_ADMINS, is_superuser=True)
    accountant = member(roles.ACCOUNTANTS)
    client.force_login(boss)
    client.post(
        reverse("admin:api_apiclient_add"), {"name": "X", "scopes": ["read"], "person": accountant.pk}
    )
    assert ApiClient.objects.get(name="X").person_confirmed
    admin_and_accountant = member(roles.INTEGRATION_ADMINS)
    admin_and_accountant.groups.add(*accountant.groups.all())
    client.force_login(admin_and_accountant)
    client.post(
        reverse("admin:api_apiclient_add"),
        {"name": "Y", "scopes": ["read"], "person": admin_and_accountant.pk},
    )
    assert ApiClient.objects.get(name="Y").person_confirmed


def test_a_new_person_or_wider_scopes_ask_for_confirmation_again(integrator):
    accountant, other = member(roles.ACCOUNTANTS), member(roles.ACCOUNTANTS)
    api_client, _ = api_client_create(name="Approvals", scopes=["read"], person=accountant, by=accountant)
    url = reverse("admin:api_apiclient_change", args=[api_client.pk])
    assert integrator.post(url, _form(api_client, throttle_rate="60/minute")).status_code == 302
    api_client.refresh_from_db()
    assert api_client.person_confirmed  # a change that gives it no new power keeps the link
    assert api_client.configured_by.groups.filter(name=roles.INTEGRATION_ADMINS).exists()
    integrator.post(url, _form(api_client, scopes=["read", "approve_overrides"]))
    api_client.refresh_from_db()
    assert api_client.scopes == ["read", "approve_overrides"] and not api_client.person_confirmed
    api_client_person_confirm(api_client, by=accountant)
    integrator.post(url, _form(api_client, person=other.pk))
    api_client.refresh_from_db()
    assert api_client.person == other and not api_client.person_confirmed
    assert api_client.acting_user == api_client.service_user


def test_a_token_issued_by_an_integration_admin_asks_for_confirmation_again(integrator):
    accountant = member(roles.ACCOUNTANTS)
    api_client, _ = api_client_create(name="Approvals", scopes=["read"], person=accountant, by=accountant)
    integrator.post(reverse("admin:api_apiclient_new_token", args=[api_client.pk]))
    api_client.refresh_from_db()
    assert not api_client.person_confirmed and api_client.configured_by is not None
    page = integrator.get(reverse("admin:api_apiclient_change", args=[api_client.pk])).content.decode()
    assert "Waiting for" in page


def test_an_integration_admin_can_unlink_a_person(integrator):
    accountant = member(roles.ACCOUNTANTS)
    api_client, _ = api_client_create(name="Approvals", scopes=["read"], person=accountant, by=accountant)
    url = reverse("admin:api_apiclient_release_person", args=[api_client.pk])
    assert "Unlink" in integrator.get(url).content.decode()
    integrator.post(url)
    api_client.refresh_from_db()
    assert api_client.person is None and not api_client.person_confirmed
