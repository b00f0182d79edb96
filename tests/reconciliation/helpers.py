"""Shared rows for triage tests: people in each role, exceptions about invoices."""

from __future__ import annotations

import itertools
from decimal import Decimal

from django.contrib.auth.models import Group

from reconciliation.models import ReconciliationException
from sync import roles
from tests.factories import InvoiceFactory, UserFactory

_fingerprints = itertools.count(1)


def member(group_name: str, **extra):
    user = UserFactory(**extra)
    user.groups.add(Group.objects.get(name=group_name))
    return user


def finance(**extra):
    return member(roles.FINANCE_STAFF, **extra)


def accountant(**extra):
    return member(roles.ACCOUNTANTS, **extra)


def exception_for(invoice=None, **values) -> ReconciliationException:
    invoice = invoice if invoice is not None else InvoiceFactory()
    defaults = {
        "kind": ReconciliationException.Kind.AMOUNT_MISMATCH,
        "fingerprint": f"test-{next(_fingerprints)}",
        "title": f"{invoice.number}: total differs",
        "object_type": "invoice",
        "object_id": invoice.pk,
        "document_number": invoice.number,
        "currency": invoice.currency,
        "amount_at_risk": Decimal("2.50"),
        "connection": invoice.source_connection,
    }
    return ReconciliationException.objects.create(**{**defaults, **values})
