"""Every change to connections, profiles, mappings, documents, exceptions and overrides keeps history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reconciliation.models import Override, ReconciliationException
from sync.models import MappingRow, MappingSet, SyncProfile
from tests.factories import ConnectionFactory, InvoiceFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_connection_change_is_recorded_without_credentials():
    connection = ConnectionFactory(credentials={"api_key": "sk_live_secret"})
    connection.role = "destination"
    connection.save()
    assert connection.history.count() == 2
    assert connection.history.first().role == "destination"
    assert not hasattr(connection.history.first(), "credentials")


def test_profile_and_mapping_changes_are_recorded():
    source, destination = ConnectionFactory(), ConnectionFactory()
    mapping = MappingSet.objects.create(name="QBO mapping")
    row = MappingRow.objects.create(mapping_set=mapping, kind="tax_code", source_value="20", target_value="3")
    row.target_value = "4"
    row.save()
    profile = SyncProfile.objects.create(name="Shop to QBO", source=source, destination=destination)
    profile.enabled = False
    profile.save()
    assert [h.target_value for h in row.history.all()] == ["4", "3"]
    assert profile.history.count() == 2


def test_document_changes_keep_who_and_what():
    user = UserFactory()
    invoice = InvoiceFactory()
    invoice.status = "paid"
    invoice._history_user = user
    invoice.save()
    latest = invoice.history.first()
    assert latest.status == "paid"
    assert latest.history_user == user
    assert latest.diff_against(latest.prev_record).changed_fields == ["status"]


def test_exception_and_override_changes_are_recorded():
    user = UserFactory()
    exception = ReconciliationException.objects.create(kind="duplicate", fingerprint="x", title="Twice")
    exception.state = "assigned"
    exception.assignee = user
    exception.save()
    override = Override.objects.create(
        exception=exception,
        action="void",
        reason="duplicate of INV-1",
        proposed_by=user,
        expires_at=timezone.now() + timedelta(days=1),
    )
    override.state = "rejected"
    override.decided_by = UserFactory()
    override.save()
    assert exception.history.count() == 2
    assert [h.state for h in override.history.all()] == ["rejected", "proposed"]
