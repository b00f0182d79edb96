"""What a write flags about the documents themselves, for sources whose ids are not the documents' numbers."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from reconciliation.models import ReconciliationException
from sync.imports import after_write, page_write
from tests.factories import ConnectionFactory, SyncJobFactory
from tests.sync import engine

pytestmark = pytest.mark.django_db


def test_a_stated_total_that_differs_from_the_lines_is_flagged_when_the_id_is_not_the_number():
    stripe = ConnectionFactory(platform="stripe")
    job = SyncJobFactory(connection=stripe)
    clean = dataclasses.replace(engine.invoice_record(1), external_id="in_1", number="ACME-0001")
    wrong = dataclasses.replace(clean, total=clean.total + Decimal("10.00"))

    written, failed = page_write(stripe, job, [wrong])
    after_write(stripe, job, "invoice", [wrong], written)

    assert failed == []
    flagged = ReconciliationException.objects.get(kind="total_mismatch")
    assert flagged.document_number == "ACME-0001" and flagged.amount_at_risk == Decimal("10.00")

    written, _ = page_write(stripe, job, [clean])
    after_write(stripe, job, "invoice", [clean], written)
    flagged.refresh_from_db()
    assert flagged.state == "resolved" and flagged.resolved_by_system
