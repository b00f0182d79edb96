"""Four eyes across API clients: a client acts for a person only once they confirm it, and everyone who
can act through a client (its person, its service user, whoever created or last configured it) counts as
one person, so nobody proposes through one path and approves through another."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from rest_framework.test import APIClient

from api.models import ApiClient, OverrideClientStep
from api.services import (
    api_client_create,
    api_client_person_confirm,
    api_token_issue,
)
from reconciliation import workflow
from reconciliation.models import Override
from sync import roles
from tests.api.conftest import member
from tests.factories import InvoiceFactory, UserFactory
from tests.reconciliation.helpers import exception_for

pytestmark = pytest.mark.django_db

PROPOSE_SCOPES = ["work_exceptions", "read"]
APPROVE_SCOPES = ["approve_overrides", "read"]


def _http(token: str) -> APIClient:
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return http


def _propose(http: APIClient, exception) -> dict:
    response = http.post(
        "/api/v1/overrides/",
        {"action": "mark_paid", "reason": "paid by bank transfer", "exception": exception.pk},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()


def _approve(http: APIClient, proposal: dict):
    return http.post(f"/api/v1/overrides/{proposal['id']}/approve/", {}, format="json")


@pytest.fixture
def integrator():
    return member(roles.INTEGRATION_ADMINS)


@pytest.fixture
def clerk():
    return member(roles.FINANCE_STAFF)


@pytest.fixture
def accountant():
    return member(roles.ACCOUNTANTS)


@pytest.fixture
def invoice():
    return InvoiceFactory(status="open")


def test_an_integration_admin_linking_two_people_approves_nothing(integrator, clerk, accountant, invoice):
    """One integration admin links a clerk to client A and an accountant to client B,
    proposes through A and approves through B. The links wait for confirmation, so B cannot decide."""
    client_a, token_a = api_client_create(name="A", scopes=PROPOSE_SCOPES, person=clerk, by=integrator)
    client_b, token_b = api_client_create(name="B", scopes=APPROVE_SCOPES, person=accountant, by=integrator)
    assert not client_a.person_confirmed and not client_b.person_confirmed
    assert client_b.acting_user == client_b.service_user
    proposal = _propose(_http(token_a), exception_for(invoice))
    assert proposal["proposed_by"]["username"] == client_a.service_user.username  # not the clerk
    refused = _approve(_http(token_b), proposal)
    assert refused.status_code == 403
    assert refused.json()["code"] == "person_unconfirmed"
    assert Override.objects.get(pk=proposal["id"]).state == "proposed"
    invoice.refresh_from_db()
    assert invoice.status == "open"


def test_confirmed_links_do_not_help_the_admin_who_created_both_clients(
    integrator, clerk, accountant, invoice
):
    """Even once both people confirm, the admin who created both clients holds both tokens: one person."""
    client_a, token_a = api_client_create(name="A", scopes=PROPOSE_SCOPES, person=clerk, by=integrator)
    client_b, token_b = api_client_create(name="B", scopes=APPROVE_SCOPES, person=accountant, by=integrator)
    api_client_person_confirm(client_a, by=clerk)
    api_client_person_confirm(client_b, by=accountant)
    proposal = _propose(_http(token_a), exception_for(invoice))
    assert proposal["proposed_by"]["username"] == clerk.username
    refused = _approve(_http(token_b), proposal)
    assert refused.status_code == 403
    assert refused.json()["code"] == "four_eyes"
    assert integrator.username in refused.json()["message"]
    rejected = _http(token_b).post(
        f"/api/v1/overrides/{proposal['id']}/reject/", {"comment": "no"}, format="json"
    )
    assert rejected.status_code == 403 and rejected.json()["code"] == "four_eyes"
    assert Override.objects.get(pk=proposal["id"]).state == "proposed"
    invoice.refresh_from_db()
    assert invoice.status == "open"


def test_an_accountant_who_confirmed_their_client_approves_what_a_clerk_proposed(clerk, accountant, invoice):
    client_a, token_a = api_client_create(
        name="Billing", scopes=PROPOSE_SCOPES, person=clerk, by=member(roles.INTEGRATION_ADMINS)
    )
    client_b, token_b = api_client_create(
        name="Approvals", scopes=APPROVE_SCOPES, person=accountant, by=member(roles.INTEGRATION_ADMINS)
    )
    assert api_client_person_confirm(client_a, by=clerk) is True
    assert api_client_person_confirm(client_b, by=accountant) is True
    assert api_client_person_confirm(client_b, by=accountant) is False  # once is enough
    proposal = _propose(_http(token_a), exception_for(invoice))
    approved = _approve(_http(token_b), proposal)
    assert approved.status_code == 200, approved.json()
    body = approved.json()
    assert body["state"] == "applied"
    assert body["decided_by"]["username"] == accountant.username
    assert (body["proposed_via"], body["decided_via"]) == ("Billing", "Approvals")
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    override = Override.objects.get(pk=proposal["id"])
    reasons = list(override.history.values_list("history_change_reason", flat=True))
    assert any(r.startswith("approved") and r.endswith("(via API client Approvals)") for r in reasons)
    assert any(r.startswith("proposed") and r.endswith("(via API client Billing)") for r in reasons)
    steps = {row.step: row for row in OverrideClientStep.objects.filter(override=override)}
    assert set(steps["proposed"].people) >= {clerk.pk, client_a.service_user_id, client_a.created_by_id}
    assert steps["approved"].acting_user == accountant


def test_a_superusers_link_needs_no_confirmation(clerk, accountant, invoice):
    boss = UserFactory(is_superuser=True)
    client_b, token_b = api_client_create(name="B", scopes=APPROVE_SCOPES, person=accountant, by=boss)
    assert client_b.person_confirmed and client_b.person_confirmed_by == boss
    proposal = workflow.override_propose(
        by=clerk, action="mark_paid", reason="bank", exception=exception_for(invoice)
    )
    response = _approve(_http(token_b), {"id": proposal.pk})
    assert response.status_code == 200, response.json()
    assert response.json()["decided_via"] == "B"


def test_the_creator_of_a_client_cannot_approve_in_the_admin_what_the_client_proposed(clerk, invoice):
    """An integration admin who is also an accountant creates a client for a clerk, proposes through it,
    then approves in their own session: refused."""
    both = member(roles.INTEGRATION_ADMINS)
    both.groups.add(Group.objects.get(name=roles.ACCOUNTANTS))
    client_a, token_a = api_client_create(name="A", scopes=PROPOSE_SCOPES, person=clerk, by=both)
    api_client_person_confirm(client_a, by=clerk)
    proposal = Override.objects.get(pk=_propose(_http(token_a), exception_for(invoice))["id"])
    assert proposal.proposed_by == clerk
    with pytest.raises(workflow.FourEyesError) as refused:
        workflow.override_approve(proposal, by=both)
    assert both.username in refused.value.message
    proposal.refresh_from_db()
    assert proposal.state == "proposed"


def test_what_the_creator_proposed_in_the_admin_cannot_be_approved_through_their_client(accountant, invoice):
    """And the other way round: propose in the admin, approve through a client one created."""
    both = member(roles.INTEGRATION_ADMINS)
    both.groups.add(Group.objects.get(name=roles.FINANCE_STAFF))
    client_b, token_b = api_client_create(name="B", scopes=APPROVE_SCOPES, person=accountant, by=both)
    api_client_person_confirm(client_b, by=accountant)
    proposal = workflow.override_propose(
        by=both, action="mark_paid", reason="bank", exception=exception_for(invoice)
    )
    refused = _approve(_http(token_b), {"id": proposal.pk})
    assert refused.status_code == 403 and refused.json()["code"] == "four_eyes"
    # the accountant in their own session is another person: allowed
    workflow.override_approve(proposal, by=accountant)
    proposal.refresh_from_db()
    assert proposal.state == "applied"


def test_the_last_configurer_counts_as_the_client(clerk, accountant, invoice):
    """Whoever issues a client a token holds it: they join its people, and the link waits again."""
    other = member(roles.INTEGRATION_ADMINS)
    other.groups.add(Group.objects.get(name=roles.FINANCE_STAFF))
    client_b, _ = api_client_create(name="B", scopes=APPROVE_SCOPES, person=accountant, by=accountant)
    assert client_b.person_confirmed
    token = api_token_issue(client=client_b, by=other)
    client_b.refresh_from_db()
    assert client_b.configured_by == other and not client_b.person_confirmed
    api_client_person_confirm(client_b, by=accountant)
    proposal = workflow.override_propose(
        by=other, action="mark_paid", reason="bank", exception=exception_for(invoice)
    )
    refused = _approve(_http(token), {"id": proposal.pk})
    assert refused.status_code == 403 and refused.json()["code"] == "four_eyes"


def test_the_proposal_keeps_the_people_it_had_when_made(clerk, accountant, invoice):
    """Reconfiguring the proposing client later neither adds nor removes people behind the proposal."""
    first, second = member(roles.INTEGRATION_ADMINS), member(roles.INTEGRATION_ADMINS)
    client_a, token_a = api_client_create(name="A", scopes=PROPOSE_SCOPES, person=clerk, by=first)
    api_client_person_confirm(client_a, by=clerk)
    proposal = Override.objects.get(pk=_propose(_http(token_a), exception_for(invoice))["id"])
    api_token_issue(client=client_a, by=second)
    assert first.pk in workflow.override_proposal_people(proposal)
    assert second.pk not in workflow.override_proposal_people(proposal)


def test_only_the_person_or_a_superuser_confirms_a_link(integrator, accountant):
    client, _ = api_client_create(name="B", scopes=APPROVE_SCOPES, person=accountant, by=integrator)
    for intruder in (integrator, member(roles.ACCOUNTANTS), UserFactory(is_superuser=True, is_active=False)):
        with pytest.raises(PermissionDenied):
            api_client_person_confirm(client, by=intruder)
    client.refresh_from_db()
    assert not client.person_confirmed and client.acting_user == client.service_user


def test_the_database_refuses_a_confirmation_for_someone_else(accountant):
    client, _ = api_client_create(name="B", scopes=APPROVE_SCOPES, person=accountant, by=accountant)
    assert client.person_confirmed
    client.person = member(roles.ACCOUNTANTS)  # a path that forgets to drop the confirmation
    with pytest.raises(IntegrityError), transaction.atomic():
        client.save()
    assert ApiClient.objects.get(pk=client.pk).person == accountant
