"""The three roles: what each may see and do, through the real admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from reconciliation.models import Override
from sync import roles
from tests.factories import InvoiceFactory, UserFactory

pytestmark = pytest.mark.django_db


def member(group_name: str):
    user = UserFactory()
    user.groups.add(Group.objects.get(name=group_name))
    return user


def test_migration_creates_the_three_groups():
    assert set(Group.objects.values_list("name", flat=True)) >= {
        roles.INTEGRATION_ADMINS,
        roles.FINANCE_STAFF,
        roles.ACCOUNTANTS,
    }


@pytest.mark.parametrize(
    ("group_name", "permission", "allowed"),
    [
        (roles.INTEGRATION_ADMINS, "connectors.add_connection", True),
        (roles.INTEGRATION_ADMINS, "sync.change_syncprofile", True),
        (roles.INTEGRATION_ADMINS, "sync.add_mappingrow", True),
        (roles.INTEGRATION_ADMINS, "sync.change_invoice", False),
        (roles.INTEGRATION_ADMINS, "reconciliation.approve_override", False),
        (roles.FINANCE_STAFF, "sync.view_invoice", True),
        (roles.FINANCE_STAFF, "sync.change_invoice", True),
        (roles.FINANCE_STAFF, "reconciliation.change_reconciliationexception", True),
        (roles.FINANCE_STAFF, "reconciliation.add_override", True),
        (roles.FINANCE_STAFF, "reconciliation.approve_override", False),
        (roles.FINANCE_STAFF, "connectors.change_connection", False),
        (roles.ACCOUNTANTS, "reconciliation.approve_override", True),
        (roles.ACCOUNTANTS, "reconciliation.add_override", True),
        (roles.ACCOUNTANTS, "sync.view_invoice", True),
        (roles.ACCOUNTANTS, "connectors.add_connection", False),
    ],
)
def test_role_permissions(group_name, permission, allowed):
    assert member(group_name).has_perm(permission) is allowed


@pytest.mark.parametrize(
    ("group_name", "url_name", "status"),
    [
        (roles.FINANCE_STAFF, "admin:sync_invoice_changelist", 200),
        (roles.FINANCE_STAFF, "admin:reconciliation_reconciliationexception_changelist", 200),
        (roles.FINANCE_STAFF, "admin:connectors_connection_add", 403),
        (roles.INTEGRATION_ADMINS, "admin:connectors_connection_add", 200),
        (roles.INTEGRATION_ADMINS, "admin:sync_mappingset_add", 200),
        (roles.INTEGRATION_ADMINS, "admin:reconciliation_override_changelist", 403),
        (roles.ACCOUNTANTS, "admin:reconciliation_override_changelist", 200),
    ],
)
def test_admin_pages_follow_the_role(client, group_name, url_name, status):
    client.force_login(member(group_name))
    assert client.get(reverse(url_name)).status_code == status


def test_finance_staff_see_the_dashboard_and_a_staff_user_without_a_role_does_not(client):
    client.force_login(member(roles.FINANCE_STAFF))
    assert 'id="dashboard"' in client.get(reverse("admin:index")).content.decode()
    client.force_login(UserFactory())
    assert 'id="dashboard"' not in client.get(reverse("admin:index")).content.decode()


def test_database_refuses_an_override_decided_by_its_proposer():
    proposer = member(roles.ACCOUNTANTS)
    override = Override.objects.create(
        action=Override.Action.MARK_PAID,
        reason="paid by bank transfer",
        proposed_by=proposer,
        expires_at=timezone.now() + timedelta(days=1),
        object_type="invoice",
        object_id=InvoiceFactory().pk,
    )
    override.decided_by = proposer
    override.state = Override.State.APPROVED
    with pytest.raises(IntegrityError), transaction.atomic():
        override.save()
