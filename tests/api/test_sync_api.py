"""Profiles, jobs, bindings, lineage and connections through the API."""

from __future__ import annotations

import pytest

from sync.models import Binding, SyncJob, SyncProfile
from tests.api.conftest import invoice_body
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def profile():
    return SyncProfile.objects.create(
        name="Shop to books",
        source=ConnectionFactory(),
        destination=ConnectionFactory(platform="quickbooks"),
        object_types=["invoice"],
    )


def test_profiles_are_listed_and_read(shop, profile):
    _, http = shop
    listed = http.get("/api/v1/sync-profiles/").json()["results"]
    assert [p["name"] for p in listed] == ["Shop to books"]
    assert http.get(f"/api/v1/sync-profiles/{profile.pk}/").json()["destination"]["platform"] == "quickbooks"


def test_a_run_queues_a_job_triggered_by_the_api(shop, profile, django_capture_on_commit_callbacks):
    client, http = shop
    with django_capture_on_commit_callbacks(execute=False) as rings:
        response = http.post(f"/api/v1/sync-profiles/{profile.pk}/run/")
    assert response.status_code == 202
    job = SyncJob.objects.get(pk=response.json()["id"])
    assert (job.kind, job.trigger, job.state, job.profile, job.created_by) == (
        "sync",
        "api",
        "queued",
        profile,
        client.service_user,
    )
    assert len(rings) == 1  # the doorbell rings once the job is committed
    status = http.get(f"/api/v1/jobs/{job.pk}/").json()
    assert (status["state"], status["progress_percent"]) == ("queued", 0)
    assert [j["id"] for j in http.get("/api/v1/jobs/?trigger=api").json()["results"]] == [job.pk]


def test_a_disabled_profile_is_not_run(shop, profile):
    _, http = shop
    profile.enabled = False
    profile.save()
    response = http.post(f"/api/v1/sync-profiles/{profile.pk}/run/")
    assert response.status_code == 409 and response.json()["code"] == "profile_disabled"


def test_the_dry_run_answers_what_the_preview_says(shop, profile, monkeypatch):
    _, http = shop
    from sync import preview

    seen = {}

    def fake_preview(profile_, *, limit, document):
        seen.update(profile=profile_, limit=limit, document=document)
        return [
            preview.PreviewItem(
                "invoice",
                7,
                "Invoice INV-7",
                "create",
                payload={"DocNumber": "INV-7"},
                diff=[{"path": "(document)", "now": "not in the destination", "after": "created"}],
            )
        ]

    monkeypatch.setattr(preview, "profile_preview", fake_preview)
    response = http.post(
        f"/api/v1/sync-profiles/{profile.pk}/dry-run/",
        {"limit": 5, "object_type": "invoice", "object_id": 7},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert seen == {"profile": profile, "limit": 5, "document": ("invoice", 7)}
    assert response.json()[0]["payload"] == {"DocNumber": "INV-7"}
    half = http.post(
        f"/api/v1/sync-profiles/{profile.pk}/dry-run/", {"object_type": "invoice"}, format="json"
    )
    assert half.status_code == 400 and half.json()["errors"][0]["field"] == "object_id"


def test_a_source_id_finds_its_destination_id_and_back(shop):
    client, http = shop
    invoice = http.post("/api/v1/invoices/", invoice_body(), format="json").json()
    books = ConnectionFactory(platform="quickbooks")
    Binding.objects.create(
        connection=books, object_type="invoice", object_id=invoice["id"], external_id="QB-77"
    )
    forward = http.get(
        f"/api/v1/bindings/lookup/?connection={client.connection_id}&external_id=shop-1001"
    ).json()
    assert [(c["connection"]["id"], c["external_id"]) for c in forward[0]["copies"]] == [(books.pk, "QB-77")]
    back = http.get(f"/api/v1/bindings/lookup/?connection={books.pk}&external_id=QB-77").json()
    assert back[0]["source"]["external_id"] == "shop-1001" and back[0]["object_id"] == invoice["id"]
    assert http.get(f"/api/v1/bindings/lookup/?connection={books.pk}&external_id=nope").json() == []
    missing = http.get("/api/v1/bindings/lookup/?external_id=x")
    assert missing.status_code == 400 and missing.json()["errors"][0]["field"] == "connection"


def test_lineage_names_the_source_and_every_copy(shop):
    _, http = shop
    invoice = http.post("/api/v1/invoices/", invoice_body(), format="json").json()
    Binding.objects.create(
        connection=ConnectionFactory(), object_type="invoice", object_id=invoice["id"], external_id="XERO-1"
    )
    [lineage] = http.get("/api/v1/lineage/?q=INV-shop-1001").json()
    assert lineage["source"]["external_id"] == "shop-1001"
    assert [d["external_id"] for d in lineage["destinations"]] == ["XERO-1"]
    assert http.get("/api/v1/lineage/").status_code == 400


def test_connections_show_health_never_credentials(shop):
    _, http = shop
    connection = ConnectionFactory(credentials={"api_key": "sk_live_secret"})
    response = http.get(f"/api/v1/connections/{connection.pk}/")
    assert response.status_code == 200
    assert "credentials" not in response.json() and "sk_live_secret" not in response.content.decode()
    tested = http.post(f"/api/v1/connections/{connection.pk}/test/")
    assert tested.status_code == 200 and tested.json()["health"] == "healthy"
    assert tested.json()["last_checked_at"]
