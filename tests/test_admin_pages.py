"""Every admin list page: opens for a superuser, and stays within a fixed number of queries."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import UserFactory, populate

MODELS = sorted(f"{model._meta.app_label}.{model._meta.model_name}" for model in admin.site._registry)


def _changelist(client, label: str) -> tuple[int, int]:
    app_label, model_name = label.split(".")
    url = reverse(f"admin:{app_label}_{model_name}_changelist")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    return response.status_code, len(queries)


@pytest.fixture
def superuser_client(client):
    client.force_login(UserFactory(is_superuser=True))
    return client


def test_every_model_of_the_project_has_an_admin_page():
    project_models = {
        label for label in MODELS if label.split(".")[0] in {"connectors", "sync", "reconciliation"}
    }
    expected = {
        "connectors.connection", "sync.customer", "sync.invoice", "sync.payment", "sync.paymentallocation",
        "sync.creditnote", "sync.binding", "sync.syncprofile", "sync.mappingset", "sync.mappingrow",
        "sync.syncjob", "sync.syncattempt", "reconciliation.reconciliationexception",
        "reconciliation.override", "reconciliation.tag",
    }  # fmt: skip
    assert expected <= project_models


@pytest.mark.django_db
@pytest.mark.parametrize("label", MODELS)
def test_list_page_query_count_does_not_grow_with_rows(superuser_client, label):
    populate(2)
    status, few = _changelist(superuser_client, label)
    assert status == 200
    populate(6)
    status, many = _changelist(superuser_client, label)
    assert status == 200
    assert many == few, f"{label}: {few} queries with 2 rows of each model, {many} with 8"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "label", ["sync.invoice", "sync.payment", "sync.creditnote", "reconciliation.reconciliationexception"]
)
def test_document_change_page_opens(superuser_client, label):
    populate(1)
    app_label, model_name = label.split(".")
    model = admin.site._registry and next(m for m in admin.site._registry if m._meta.label_lower == label)
    obj = model.objects.first()
    response = superuser_client.get(reverse(f"admin:{app_label}_{model_name}_change", args=[obj.pk]))
    assert response.status_code == 200
    history = superuser_client.get(reverse(f"admin:{app_label}_{model_name}_history", args=[obj.pk]))
    assert history.status_code == 200


@pytest.mark.django_db
def test_invoice_page_shows_lines_and_lineage(superuser_client):
    populate(1)
    from sync.models import Invoice

    invoice = Invoice.objects.get()
    page = superuser_client.get(reverse("admin:sync_invoice_change", args=[invoice.pk])).content.decode()
    assert "Olive oil 5L" in page
    assert "Lineage" in page
    assert invoice.source_connection.name in page
