"""Idempotency-Key: a retry gets the first answer and changes nothing; another body is refused; concurrent
retries never both run."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection as db_connection
from django.utils import timezone

from api.idempotency import idempotency_keys_purge
from api.models import IdempotencyKey
from sync.models import Invoice, SyncJob, SyncProfile
from tests.api.conftest import invoice_body
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db


def test_a_retry_with_the_same_body_gets_the_first_answer_and_writes_nothing(shop):
    _, http = shop
    first = http.post("/api/v1/invoices/", invoice_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = http.post("/api/v1/invoices/", invoice_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert again["Location"] == first["Location"]
    assert Invoice.objects.get().row_version == 1


def test_without_the_key_the_same_post_is_an_update_not_a_replay(shop):
    _, http = shop
    http.post("/api/v1/invoices/", invoice_body(), format="json")
    again = http.post("/api/v1/invoices/", invoice_body(memo="x"), format="json")
    assert again.status_code == 200 and "Idempotent-Replayed" not in again


def test_the_same_key_with_another_body_is_refused_with_422(shop):
    _, http = shop
    http.post("/api/v1/invoices/", invoice_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    other = http.post(
        "/api/v1/invoices/", invoice_body(memo="changed"), format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert other.json()["errors"][0] == {
        "field": "Idempotency-Key",
        "message": "already used for a different request",
        "value": "k-2",
    }
    assert Invoice.objects.get().memo == ""


def test_an_error_answer_is_replayed_too(shop):
    _, http = shop
    bad = invoice_body(currency="XYZ")
    first = http.post("/api/v1/invoices/", bad, format="json", HTTP_IDEMPOTENCY_KEY="k-3")
    again = http.post("/api/v1/invoices/", bad, format="json", HTTP_IDEMPOTENCY_KEY="k-3")
    assert first.status_code == again.status_code == 400
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"


def test_keys_belong_to_their_client(make_client):
    _, one = make_client(["write_documents"])
    _, two = make_client(["write_documents"])
    assert (
        one.post("/api/v1/invoices/", invoice_body(), format="json", HTTP_IDEMPOTENCY_KEY="same").status_code
        == 201
    )
    answer = two.post("/api/v1/invoices/", invoice_body(memo="x"), format="json", HTTP_IDEMPOTENCY_KEY="same")
    assert answer.status_code == 201 and "Idempotent-Replayed" not in answer


def test_a_profile_run_retried_with_its_key_queues_one_job(make_client, django_capture_on_commit_callbacks):
    _, http = make_client(["run_syncs", "read"])
    profile = SyncProfile.objects.create(
        name="Shop to books",
        source=ConnectionFactory(),
        destination=ConnectionFactory(),
        object_types=["invoice"],
    )
    with django_capture_on_commit_callbacks(execute=False):
        first = http.post(f"/api/v1/sync-profiles/{profile.pk}/run/", HTTP_IDEMPOTENCY_KEY="run-1")
        again = http.post(f"/api/v1/sync-profiles/{profile.pk}/run/", HTTP_IDEMPOTENCY_KEY="run-1")
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert SyncJob.objects.filter(profile=profile).count() == 1


def test_a_key_longer_than_255_characters_is_refused(shop):
    _, http = shop
    response = http.post("/api/v1/invoices/", invoice_body(), format="json", HTTP_IDEMPOTENCY_KEY="k" * 256)
    assert response.status_code == 400 and response.json()["code"] == "invalid_idempotency_key"


def test_a_server_error_releases_the_key_so_a_retry_runs(shop, monkeypatch):
    _, http = shop
    from api.views import documents

    real = documents.documents_write
    monkeypatch.setattr(documents, "documents_write", lambda **kwargs: 1 / 0)
    failed = http.post("/api/v1/invoices/", invoice_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-5")
    assert failed.status_code == 500 and failed.json()["code"] == "server_error"
    assert not IdempotencyKey.objects.filter(key="k-5").exists()
    monkeypatch.setattr(documents, "documents_write", real)
    retry = http.post("/api/v1/invoices/", invoice_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-5")
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry


def test_keys_expire_and_are_purged(shop):
    _, http = shop
    http.post("/api/v1/invoices/", invoice_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-6")
    with time_machine.travel(timezone.now() + timedelta(hours=23)):
        assert idempotency_keys_purge() == 0
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        call_command("api_idempotency_purge", stdout=open("/dev/null", "w"))  # noqa: SIM115
        assert not IdempotencyKey.objects.exists()
        again = http.post(
            "/api/v1/invoices/", invoice_body(memo="new day"), format="json", HTTP_IDEMPOTENCY_KEY="k-6"
        )
        assert again.status_code == 200 and "Idempotent-Replayed" not in again


def test_an_expired_key_is_taken_again_without_the_purge(shop):
    _, http = shop
    http.post("/api/v1/invoices/", invoice_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-7")
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        again = http.post(
            "/api/v1/invoices/", invoice_body(memo="x"), format="json", HTTP_IDEMPOTENCY_KEY="k-7"
        )
    assert again.status_code == 200 and Invoice.objects.get().memo == "x"


def test_the_purge_is_scheduled():
    from sync.schedules import SYSTEM

    assert any(item.func == "api.tasks.idempotency_keys_expire" for item in SYSTEM)


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_never_both_run(shop, monkeypatch):
    """The first request is held inside its write while a retry with the same key arrives. PostgreSQL: the
    retry finds the key reserved and is told to wait (409). SQLite: writers queue, so the retry waits for
    the first to commit and gets its answer. Either way the write runs once."""
    _, http = shop
    from rest_framework.test import APIClient

    from api.views import documents

    retry_http = APIClient()
    retry_http.credentials(**http._credentials)
    real = documents.documents_write
    inside, release = threading.Event(), threading.Event()
    calls = []

    def held(**kwargs):
        calls.append(1)
        inside.set()
        assert release.wait(30)
        return real(**kwargs)

    monkeypatch.setattr(documents, "documents_write", held)
    answers = {}

    def send(name: str, client) -> None:
        try:
            answers[name] = client.post(
                "/api/v1/invoices/", invoice_body(), format="json", HTTP_IDEMPOTENCY_KEY="c-1"
            )
        finally:
            db_connection.close()

    first = threading.Thread(target=send, args=("first", http))
    first.start()
    try:
        assert inside.wait(30)
        if db_connection.vendor == "postgresql":
            send("retry", retry_http)
        else:
            retry = threading.Thread(target=send, args=("retry", retry_http))
            retry.start()
    finally:
        release.set()
        first.join(60)
    if db_connection.vendor != "postgresql":
        retry.join(60)
    assert answers["first"].status_code == 201
    if db_connection.vendor == "postgresql":
        assert answers["retry"].status_code == 409
        assert answers["retry"].json()["code"] == "idempotency_in_progress"
    else:
        assert answers["retry"].status_code == 201 and answers["retry"]["Idempotent-Replayed"] == "true"
    after = http.post("/api/v1/invoices/", invoice_body(), format="json", HTTP_IDEMPOTENCY_KEY="c-1")
    assert after.status_code == 201 and after["Idempotent-Replayed"] == "true"
    assert after.json() == answers["first"].json()
    assert len(calls) == 1 and Invoice.objects.count() == 1


def test_a_reservation_whose_run_died_is_taken_over_after_the_lock_time(shop):
    """A run that died after reserving committed nothing; after API_IDEMPOTENCY_LOCK_SECONDS a retry runs."""
    client, http = shop
    from rest_framework.test import APIRequestFactory

    from api.idempotency import idempotency_reserve

    request = APIRequestFactory().post("/api/v1/invoices/", invoice_body(), format="json")
    from rest_framework.parsers import JSONParser
    from rest_framework.request import Request

    idempotency_reserve(
        user=client.service_user, key="dead", request=Request(request, parsers=[JSONParser()]), owner="gone"
    )
    during = http.post("/api/v1/invoices/", invoice_body(), format="json", HTTP_IDEMPOTENCY_KEY="dead")
    assert during.status_code == 409
    with time_machine.travel(timezone.now() + timedelta(seconds=301)):
        later = http.post("/api/v1/invoices/", invoice_body(), format="json", HTTP_IDEMPOTENCY_KEY="dead")
    assert later.status_code == 201 and Invoice.objects.count() == 1
