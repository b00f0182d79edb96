"""POST /webhooks/<connection id>/: verified against the vendors' own test vectors, recorded once per event,
turned into the jobs `webhook_received` makes, and refused (with the status each platform expects, and no
trace beyond a bodiless record) when forged, stale, malformed, oversized or sent the wrong way."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
import time_machine
from django.core.handlers.wsgi import LimitedStream
from django.db import connection as db_connection
from django.db import connections
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from connectors import inbound
from connectors.base import Connector, ValidationError, WebhookError, WebhookEvent, WebhookResult
from connectors.models import Connection, WebhookDelivery
from sync import jobs as sync_jobs
from sync.models import SyncJob, SyncProfile
from tests.factories import ConnectionFactory, UserFactory

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
VENDOR_SPECS = REPO.parent / "shared" / "vendor-specs"
QB_TOKEN = "ledgerlink-test-verifier"
XERO_KEY = "ledgerlink-test-webhook-key"
STRIPE_SECRET = "whsec_ledgerlink_test"
REALM = "4620816365"

Outcome = WebhookDelivery.Outcome


# --- signing, as each platform does it --------------------------------------------------------------------
def qb_headers(body: bytes, token: str = QB_TOKEN) -> dict[str, str]:
    digest = hmac.new(token.encode(), body, hashlib.sha256).digest()
    return {"intuit-signature": base64.b64encode(digest).decode()}


def xero_headers(body: bytes, key: str = XERO_KEY) -> dict[str, str]:
    digest = hmac.new(key.encode(), body, hashlib.sha256).digest()
    return {"x-xero-signature": base64.b64encode(digest).decode()}


def stripe_headers(body: bytes, at: int | None = None, secret: str = STRIPE_SECRET) -> dict[str, str]:
    at = int(time.time()) if at is None else at
    v1 = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={at},v1={v1}"}


def vendor_file(*parts: str) -> Path:
    path = VENDOR_SPECS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"the vendor specs are not here ({path})")
    return path


def qb_legacy(*entities: tuple[str, str, str], realm: str = REALM) -> bytes:
    """A legacy eventNotifications body with (name, id, operation) entities."""
    return json.dumps(
        {
            "eventNotifications": [
                {
                    "realmId": realm,
                    "dataChangeEvent": {
                        "entities": [
                            {
                                "name": name,
                                "id": ident,
                                "operation": op,
                                "lastUpdated": "2026-03-01T10:00:00Z",
                            }
                            for name, ident, op in entities
                        ]
                    },
                }
            ]
        },
        separators=(",", ":"),
    ).encode()


def stripe_event(event_id: str = "evt_1", kind: str = "invoice", object_id: str = "in_1") -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "created": int(time.time()),
            "type": f"{kind}.paid",
            "data": {"object": {"id": object_id, "object": kind}},
        }
    ).encode()


# --- fixtures ---------------------------------------------------------------------------------------------
@pytest.fixture
def quickbooks(db):
    return ConnectionFactory(
        platform="quickbooks",
        credentials={"webhook_verifier_token": QB_TOKEN},
        options={"realmId": REALM},
    )


@pytest.fixture
def xero(db):
    return ConnectionFactory(platform="xero", credentials={"webhook_key": XERO_KEY})


@pytest.fixture
def stripe(db):
    return ConnectionFactory(platform="stripe", credentials={"webhook_secret": STRIPE_SECRET})


def profile_for(source: Connection, **values: Any) -> SyncProfile:
    return SyncProfile.objects.create(
        name=f"from {source.name}", source=source, destination=ConnectionFactory(platform="xero"), **values
    )


def post(client: Client, connection: Connection, body: bytes, headers: dict[str, str], **extra: Any):
    content_type = extra.pop("content_type", "application/json")
    return client.post(
        reverse("webhook_receive", args=[connection.pk]),
        data=body,
        content_type=content_type,
        headers=headers,
        **extra,
    )


def deliveries(connection: Connection, outcome: str | None = None) -> list[WebhookDelivery]:
    rows = WebhookDelivery.objects.filter(connection=connection).order_by("id")
    return list(rows.filter(outcome=outcome) if outcome else rows)


def nothing_changed(connection: Connection) -> None:
    """A refused request leaves one bodiless rejected row and touches nothing else."""
    assert SyncJob.objects.count() == 0
    (row,) = deliveries(connection)
    assert (row.outcome, row.event_id, row.body, row.job_ids) == (Outcome.REJECTED, "", "", [])
    connection.refresh_from_db()
    assert connection.last_webhook_at is None


# --- the vendors' own test vectors ------------------------------------------------------------------------
def test_quickbooks_legacy_vector_is_accepted_and_fetches_what_ledgerlink_syncs(client, quickbooks):
    vector = json.loads(
        vendor_file("quickbooks", "fixtures", "webhook_signature_test_vector.json").read_text()
    )
    body = vendor_file("quickbooks", "fixtures", vector["payload_file"]).read_bytes()
    quickbooks.credentials = {"webhook_verifier_token": vector["verifier_token"]}
    quickbooks.options = {"realmId": json.loads(body)["eventNotifications"][0]["realmId"]}
    quickbooks.save()
    profile = profile_for(quickbooks)

    response = post(client, quickbooks, body, {vector["header"]: vector["expected_signature_base64"]})

    assert response.status_code == 200
    assert response.json() == {"received": 2, "duplicates": 0}
    (job,) = SyncJob.objects.all()
    assert (job.profile, job.trigger, job.params) == (profile, "webhook", {"fetch": [["customer", "43"]]})
    rows = deliveries(quickbooks)
    assert [(r.object_type, r.external_id, r.action, r.outcome, r.job_ids) for r in rows] == [
        ("Vendor", "40", "updated", Outcome.PROCESSED, []),
        ("customer", "43", "created", Outcome.PROCESSED, [job.pk]),
    ]
    assert "not synced" in rows[0].reason
    assert rows[0].body == body.decode()


def test_quickbooks_cloudevents_vector_is_accepted(client, quickbooks):
    body = vendor_file("quickbooks", "fixtures", "webhook_cloudevents_payload.raw.json").read_bytes()
    quickbooks.options = {"realmId": "310687"}  # the company the vector's events are about
    quickbooks.save()
    response = post(client, quickbooks, body, qb_headers(body))
    assert response.status_code == 200
    (row,) = deliveries(quickbooks)
    assert (row.event_id, row.object_type, row.external_id, row.action, row.account, row.outcome) == (
        "d1a3aedd-9670-41bf-a4f9-c148a1cc4e03",
        "class",
        "1234",
        "created",
        "310687",
        Outcome.PROCESSED,
    )
    assert SyncJob.objects.count() == 0  # a class is not something Ledgerlink syncs


def test_quickbooks_cloudevents_of_documents_start_a_pull(client, quickbooks):
    body = (FIXTURES / "quickbooks" / "webhook_cloudevents.json").read_bytes()
    response = post(
        client, quickbooks, body, qb_headers(body), content_type="application/cloudevents-batch+json"
    )
    assert response.status_code == 200
    (job,) = SyncJob.objects.all()
    assert (job.kind, job.connection, job.trigger) == ("pull", quickbooks, "webhook")
    assert job.params == {"fetch": [["invoice", "240"], ["credit_note", "73"]]}


def test_xero_vector_gets_the_empty_200_xero_wants(client, xero):
    vector = json.loads(vendor_file("xero", "webhook_signature_test_vector.json").read_text())
    body = vendor_file("xero", "webhook_creditnote_create.raw.json").read_bytes()
    xero.credentials = {"webhook_key": vector["webhook_key"]}
    xero.save()

    response = post(client, xero, body, {vector["header"]: vector["expected_signature_base64"]})

    assert (response.status_code, response.content) == (200, b"")
    (row,) = deliveries(xero)
    assert (row.object_type, row.external_id, row.outcome) == (
        "ACCPAYCREDIT",
        "55d84274-a3da-4829-a7c0-0cab601b95cc",
        Outcome.PROCESSED,
    )


def test_stripe_vector_is_accepted_at_its_own_time(client, stripe):
    vector = json.loads(vendor_file("stripe", "webhook_signature_test_vector.json").read_text())
    body = vendor_file("stripe", vector["payload_file"]).read_bytes()
    stripe.credentials = {"webhook_secret": vector["secret"]}
    stripe.save()
    with time_machine.travel(datetime.fromtimestamp(vector["timestamp"] + 60, UTC), tick=False):
        response = post(client, stripe, body, {"Stripe-Signature": vector["Stripe-Signature"]})
    assert response.status_code == 200
    (row,) = deliveries(stripe)
    assert (row.event_id, row.object_type, row.outcome) == (
        "evt_test_webhook",
        "terminal.reader",
        "processed",
    )


def test_stripe_vector_is_stale_after_300_seconds(client, stripe):
    vector = json.loads(vendor_file("stripe", "webhook_signature_test_vector.json").read_text())
    body = vendor_file("stripe", vector["payload_file"]).read_bytes()
    stripe.credentials = {"webhook_secret": vector["secret"]}
    stripe.save()
    with time_machine.travel(datetime.fromtimestamp(vector["timestamp"] + 301, UTC), tick=False):
        response = post(client, stripe, body, {"Stripe-Signature": vector["Stripe-Signature"]})
    assert response.status_code == 400
    nothing_changed(stripe)
    assert "tolerance" in deliveries(stripe)[0].reason


# --- processing: exactly the jobs webhook_received makes, once --------------------------------------------
def test_a_valid_webhook_creates_exactly_the_jobs_webhook_received_makes(client, stripe, monkeypatch):
    profile = profile_for(stripe)
    calls = []

    def spy(connection, events):
        made = real(connection, events)
        calls.append((connection.pk, list(events), made))
        return made

    real = sync_jobs.webhook_received
    monkeypatch.setattr(sync_jobs, "webhook_received", spy)
    body = (FIXTURES / "stripe" / "event_invoice_paid.json").read_bytes()

    response = post(client, stripe, body, stripe_headers(body))

    assert response.status_code == 200
    ((connection_id, events, made),) = calls
    assert connection_id == stripe.pk
    assert [(e.event_id, e.object_type, e.external_id) for e in events] == [
        ("evt_1QhInvoicePaid000000001", "invoice", "in_1QbJpyPaid0000000000001")
    ]
    assert list(SyncJob.objects.order_by("pk")) == made
    (job,) = made
    assert (job.profile, job.kind, job.trigger) == (profile, "sync", "webhook")
    assert deliveries(stripe)[0].job_ids == [job.pk]


def test_a_replay_is_acknowledged_and_creates_no_job(client, stripe):
    profile_for(stripe)
    body = stripe_event("evt_replayed")
    assert post(client, stripe, body, stripe_headers(body)).status_code == 200
    assert SyncJob.objects.count() == 1

    again = post(client, stripe, body, stripe_headers(body))

    assert again.status_code == 200
    assert again.json() == {"received": 1, "duplicates": 1}
    assert SyncJob.objects.count() == 1
    first, second = deliveries(stripe)
    assert (first.outcome, second.outcome) == (Outcome.PROCESSED, Outcome.DUPLICATE)
    assert second.job_ids == []
    assert second.event_id == first.event_id == "evt_replayed"


def test_a_batch_of_seen_and_new_events_processes_only_the_new(client, quickbooks):
    first = qb_legacy(("Invoice", "1", "Update"))
    post(client, quickbooks, first, qb_headers(first))
    SyncJob.objects.update(state="running", attempts=1)  # claimed, so the next events need a job of their own
    batch = qb_legacy(("Invoice", "1", "Update"), ("Invoice", "2", "Update"), ("Payment", "9", "Create"))

    response = post(client, quickbooks, batch, qb_headers(batch))

    assert response.json() == {"received": 3, "duplicates": 1}
    newest = SyncJob.objects.order_by("-pk").first()
    assert newest.params == {"fetch": [["invoice", "2"], ["payment", "9"]]}
    assert SyncJob.objects.count() == 2
    outcomes = [(r.external_id, r.outcome) for r in deliveries(quickbooks)[1:]]
    assert sorted(outcomes) == [("1", "duplicate"), ("2", "processed"), ("9", "processed")]


def test_an_event_repeated_in_one_request_is_processed_once(client, quickbooks):
    body = qb_legacy(("Invoice", "5", "Update"), ("Invoice", "5", "Update"))
    response = post(client, quickbooks, body, qb_headers(body))
    assert response.json() == {"received": 2, "duplicates": 1}
    assert [r.outcome for r in deliveries(quickbooks)] == [Outcome.PROCESSED, Outcome.DUPLICATE]
    assert "same request" in deliveries(quickbooks)[1].reason
    assert SyncJob.objects.get().params == {"fetch": [["invoice", "5"]]}


def test_the_same_event_id_on_another_connection_is_processed_there_too(client, stripe):
    other = ConnectionFactory(platform="stripe", credentials={"webhook_secret": STRIPE_SECRET})
    body = stripe_event("evt_shared")
    post(client, stripe, body, stripe_headers(body))
    post(client, other, body, stripe_headers(body))
    assert [r.outcome for r in deliveries(stripe) + deliveries(other)] == ["processed", "processed"]
    assert SyncJob.objects.count() == 2


# --- one app, several accounts: events naming another realm, tenant or connected account ----------------
def two_realms() -> bytes:
    """One Intuit request carrying the changes of two companies, as an app's single endpoint gets them."""
    document = json.loads(qb_legacy(("Invoice", "240", "Update")))
    other = json.loads(
        qb_legacy(("Invoice", "240", "Update"), ("Customer", "7", "Create"), realm="9130000001")
    )
    document["eventNotifications"] += other["eventNotifications"]
    return json.dumps(document, separators=(",", ":")).encode()


def test_events_of_another_company_go_to_the_connection_of_that_company(client, quickbooks):
    sibling = ConnectionFactory(
        platform="quickbooks",
        credentials={"webhook_verifier_token": QB_TOKEN},
        options={"realmId": "9130000001"},
    )
    body = two_realms()

    response = post(client, quickbooks, body, qb_headers(body))

    assert response.json() == {"received": 3, "duplicates": 0}
    ours = deliveries(quickbooks)
    assert [(r.account, r.external_id, r.outcome) for r in ours] == [
        (REALM, "240", Outcome.PROCESSED),
        ("9130000001", "240", Outcome.ROUTED),
        ("9130000001", "7", Outcome.ROUTED),
    ]
    assert f"passed to connection #{sibling.pk}" in ours[1].reason and ours[1].job_ids == []
    assert str(deliveries(sibling)[0].request_id) in ours[1].reason
    theirs = deliveries(sibling)
    assert [(r.external_id, r.outcome) for r in theirs] == [("240", "processed"), ("7", "processed")]
    jobs = {job.connection_id: job.params["fetch"] for job in SyncJob.objects.all()}
    assert jobs == {quickbooks.pk: [["invoice", "240"]], sibling.pk: [["invoice", "240"], ["customer", "7"]]}

    post(client, quickbooks, body, qb_headers(body))  # Intuit retries the same request
    assert [r.outcome for r in deliveries(sibling)][2:] == ["duplicate", "duplicate"]
    assert SyncJob.objects.count() == 2


@pytest.mark.parametrize(
    ("sibling_values", "why"),
    [
        ({}, "no quickbooks connection here is for that account"),
        ({"credentials": {"webhook_verifier_token": "another-app"}}, "does not verify this request"),
    ],
)
def test_events_of_another_company_no_connection_may_take_are_ignored_and_fetch_nothing(
    client, quickbooks, sibling_values, why
):
    if sibling_values:
        values = {"credentials": {"webhook_verifier_token": QB_TOKEN}, **sibling_values}
        ConnectionFactory(platform="quickbooks", options={"realmId": "9130000001"}, **values)
    body = two_realms()

    assert post(client, quickbooks, body, qb_headers(body)).status_code == 200

    rows = deliveries(quickbooks)
    assert [(r.account, r.outcome) for r in rows] == [
        (REALM, Outcome.PROCESSED),
        ("9130000001", Outcome.IGNORED),
        ("9130000001", Outcome.IGNORED),
    ]
    assert "names account '9130000001', not this connection's (4620816365)" in rows[1].reason
    assert why in rows[1].reason
    (job,) = SyncJob.objects.all()
    assert (job.connection_id, job.params["fetch"]) == (quickbooks.pk, [["invoice", "240"]])
    assert WebhookDelivery.objects.exclude(connection=quickbooks).count() == 0


@pytest.mark.parametrize(
    ("sibling_values", "why"),
    [
        ({"health": Connection.Health.DISABLED}, "of that account is disabled"),
        ({"credentials": {}}, "cannot verify it yet"),
    ],
)
def test_events_for_a_connection_that_cannot_take_them_yet_make_the_platform_send_again(
    client, quickbooks, sibling_values, why
):
    """As that connection's own endpoint would answer: 503, so Intuit retries the whole request later."""
    values = {"credentials": {"webhook_verifier_token": QB_TOKEN}, **sibling_values}
    sibling = ConnectionFactory(platform="quickbooks", options={"realmId": "9130000001"}, **values)
    body = two_realms()

    response = post(client, quickbooks, body, qb_headers(body))

    assert response.status_code == 503 and response["Retry-After"]
    (row,) = deliveries(quickbooks)
    assert row.outcome == Outcome.REJECTED and why in row.reason
    assert SyncJob.objects.count() == 0 and deliveries(sibling) == []

    sibling.health, sibling.credentials = Connection.Health.HEALTHY, {"webhook_verifier_token": QB_TOKEN}
    sibling.save()
    assert post(client, quickbooks, body, qb_headers(body)).status_code == 200  # the retry, once fixed
    assert [r.outcome for r in deliveries(sibling)] == ["processed", "processed"]
    assert SyncJob.objects.count() == 2


def test_a_xero_event_of_another_tenant_is_not_fetched_from_this_one(client, xero):
    xero.options = {"tenant_id": "0a8f3b6e-1c2d-4e5f-8a9b-7c6d5e4f3a2b"}
    xero.save()
    event = {
        "resourceUrl": "https://api.xero.com/api.xro/2.0/Invoices/7e0c3f4e-5d3c-4b7b-9d4f-2b8e3a1c6f00",
        "resourceId": "7e0c3f4e-5d3c-4b7b-9d4f-2b8e3a1c6f00",
        "eventDateUtc": "2026-03-01T10:00:00.000",
        "eventType": "UPDATE",
        "eventCategory": "INVOICE",
        "tenantId": "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f",
        "tenantType": "ORGANISATION",
    }
    body = json.dumps(
        {"events": [event], "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "QWERTYUIOP"}
    ).encode()

    assert (post(client, xero, body, xero_headers(body)).status_code, SyncJob.objects.count()) == (200, 0)
    (row,) = deliveries(xero)
    assert (row.account, row.outcome) == ("c2cc9b6e-9458-4c7d-93cc-f02b81b0594f", Outcome.IGNORED)


def test_a_connection_that_does_not_say_its_account_takes_every_event(client, quickbooks):
    quickbooks.options = {}
    quickbooks.save()
    body = two_realms()
    post(client, quickbooks, body, qb_headers(body))
    assert {r.outcome for r in deliveries(quickbooks)} == {Outcome.PROCESSED}


def test_a_stripe_connection_of_one_connected_account_ignores_the_others(client, stripe):
    stripe.options = {"stripe_account": "acct_1Ours"}
    stripe.save()
    events = []
    for event_id, account in (("evt_ours", "acct_1Ours"), ("evt_theirs", "acct_1Theirs"), ("evt_own", "")):
        event = json.loads(stripe_event(event_id))
        if account:
            event["account"] = account
        events.append(json.dumps(event).encode())
    for body in events:
        assert post(client, stripe, body, stripe_headers(body)).status_code == 200
    rows = deliveries(stripe)
    assert [(r.event_id, r.outcome) for r in rows] == [
        ("evt_ours", Outcome.PROCESSED),
        ("evt_theirs", Outcome.IGNORED),
        ("evt_own", Outcome.IGNORED),  # the platform account's own event is not the connected account's
    ]
    assert "names no account (the platform's own)" in rows[2].reason
    assert SyncJob.objects.count() == 1


def test_a_verified_webhook_is_a_sign_of_life_and_leaves_health_alone(client, stripe):
    stripe.health = Connection.Health.NEEDS_REAUTH
    stripe.save()
    history_rows = stripe.history.count()
    body = stripe_event()
    post(client, stripe, body, stripe_headers(body))
    stripe.refresh_from_db()
    assert stripe.last_webhook_at is not None
    assert stripe.health == Connection.Health.NEEDS_REAUTH  # a webhook says nothing of our API access
    assert stripe.history.count() == history_rows


# --- handshakes -------------------------------------------------------------------------------------------
INTENT = b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"YSXCMKAQBJOEMGUZEPFZ"}'


def test_xero_intent_to_receive_with_a_good_signature_gets_an_empty_200(client, xero):
    response = post(client, xero, INTENT, xero_headers(INTENT))
    assert (response.status_code, response.content) == (200, b"")
    (row,) = deliveries(xero)
    assert (row.outcome, row.event_id, row.status) == (Outcome.PROCESSED, "", 200)
    assert SyncJob.objects.count() == 0


def test_xero_intent_to_receive_with_a_bad_signature_gets_an_empty_401(client, xero):
    response = post(client, xero, INTENT, xero_headers(INTENT, key="not-the-key"))
    assert (response.status_code, response.content) == (401, b"")
    nothing_changed(xero)


class HandshakeConnector(Connector):
    """A platform that confirms its subscriptions with a validation token (as Business Central does) and
    signs nothing: its notices carry a shared client state instead."""

    platform = "handshake_test"
    label = "Handshake test"
    capabilities: ClassVar[dict[str, frozenset[str]]] = {"invoice": frozenset({"read", "webhook"})}
    webhook_validation_param = "validationToken"

    def verify_webhook(self, headers, body):
        notices = json.loads(body)["value"]
        if any(n.get("clientState") != self.connection.credentials.get("client_state") for n in notices):
            raise WebhookError("clientState does not match", status=401)
        if any("resource" not in n for n in notices):
            raise ValidationError("a notification without resource", field="resource", value=None)
        return WebhookResult(
            events=[
                WebhookEvent(f"{n['resource']}:{n['changeType']}", "invoice", n["resource"], n["changeType"])
                for n in notices
            ]
        )


@pytest.fixture
def handshake(db, monkeypatch):
    from connectors import registry

    monkeypatch.setitem(registry.PLATFORMS, "handshake_test", f"{__name__}.HandshakeConnector")
    return ConnectionFactory(platform="handshake_test", credentials={"client_state": "s3cret"})


def test_a_validation_token_is_echoed_as_plain_text(client, handshake):
    url = reverse("webhook_receive", args=[handshake.pk]) + "?validationToken=Zm9vYmFy%2B1"
    response = client.post(url, data=b"", content_type="text/plain")
    assert (response.status_code, response.content) == (200, b"Zm9vYmFy+1")
    assert response["Content-Type"].startswith("text/plain")
    assert SyncJob.objects.count() == 0


def test_without_the_token_the_connectors_own_check_runs(client, handshake):
    body = json.dumps({"value": [{"clientState": "s3cret", "resource": "inv-1", "changeType": "updated"}]})
    assert post(client, handshake, body.encode(), {}).status_code == 200
    assert SyncJob.objects.get().params == {"fetch": [["invoice", "inv-1"]]}
    forged = body.replace("s3cret", "guess")
    assert post(client, handshake, forged.encode(), {}).status_code == 401


def test_a_connector_error_on_a_verified_body_is_a_bad_request(client, handshake):
    body = json.dumps({"value": [{"clientState": "s3cret", "changeType": "updated"}]}).encode()
    response = post(client, handshake, body, {})
    assert response.status_code == 400
    nothing_changed(handshake)


def test_the_validation_token_is_not_echoed_for_platforms_that_do_not_declare_it(client, stripe):
    url = reverse("webhook_receive", args=[stripe.pk]) + "?validationToken=abc"
    response = client.post(url, data=b"{}", content_type="application/json")
    assert response.status_code == 400  # Stripe's refusal of an unsigned request
    assert b"abc" not in response.content


# --- refusals ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("platform", "sign", "expected"),
    [
        ("quickbooks", lambda body: qb_headers(body, token="someone-else"), 401),
        ("xero", lambda body: xero_headers(body, key="someone-else"), 401),
        ("stripe", lambda body: stripe_headers(body, secret="whsec_someone_else"), 400),
        ("quickbooks", lambda body: {}, 401),
        ("stripe", lambda body: {}, 400),
    ],
)
def test_a_forged_webhook_gets_the_platforms_status_and_changes_nothing(
    client, quickbooks, xero, stripe, platform, sign, expected
):
    connection = {"quickbooks": quickbooks, "xero": xero, "stripe": stripe}[platform]
    profile_for(connection)
    body = {
        "quickbooks": qb_legacy(("Invoice", "1", "Update")),
        "xero": json.dumps({"events": [], "entropy": "X"}).encode(),
        "stripe": stripe_event(),
    }[platform]
    response = post(client, connection, body, sign(body))
    assert response.status_code == expected
    nothing_changed(connection)


def test_a_forged_webhook_is_logged_without_its_secrets_and_with_a_short_body(client, stripe, caplog):
    body = stripe_event() + b" " * 10 + b"x" * 5000
    headers = stripe_headers(body, secret="whsec_forger")
    with caplog.at_level(logging.WARNING, logger="connectors.inbound"):
        post(client, stripe, body, headers)
    (record,) = [r for r in caplog.records if r.name == "connectors.inbound"]
    message = record.getMessage()
    assert "status=400" in message and f"connection={stripe.pk}" in message
    signature = headers["Stripe-Signature"].split("v1=")[1]
    assert signature not in message
    assert STRIPE_SECRET not in message and "whsec_forger" not in message
    assert "x" * (inbound.LOGGED_BODY_CHARS + 1) not in message
    assert "no v1 signature matches" in message


def test_a_stale_stripe_signature_is_refused(client, stripe):
    body = stripe_event()
    response = post(client, stripe, body, stripe_headers(body, at=int(time.time()) - 301))
    assert response.status_code == 400
    nothing_changed(stripe)


@pytest.mark.parametrize(
    "body", [b"not json", b'{"eventNotifications": [{"dataChangeEvent": "x"}]}', b"[{}]"]
)
def test_a_signed_but_malformed_body_is_a_bad_request(client, quickbooks, body):
    response = post(client, quickbooks, body, qb_headers(body))
    assert response.status_code == 400
    nothing_changed(quickbooks)


def test_a_signed_stripe_event_whose_object_is_not_an_object_is_a_bad_request(client, stripe):
    body = json.dumps({"id": "evt_x", "type": "invoice.paid", "data": {"object": "in_1"}}).encode()
    assert post(client, stripe, body, stripe_headers(body)).status_code == 400
    nothing_changed(stripe)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "text/html; charset=utf-8"]
)
def test_content_that_is_not_json_is_a_bad_request_before_any_check(client, quickbooks, content_type):
    body = qb_legacy(("Invoice", "1", "Update"))
    response = post(client, quickbooks, body, qb_headers(body), content_type=content_type)
    assert response.status_code == 400
    assert b"is not JSON" in response.content
    nothing_changed(quickbooks)


def test_an_oversized_body_is_refused_with_413(client, quickbooks, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 2048
    body = qb_legacy(*[("Invoice", str(n), "Update") for n in range(100)])
    assert len(body) > 2048
    response = post(client, quickbooks, body, qb_headers(body))
    assert response.status_code == 413
    nothing_changed(quickbooks)


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.taken += len(chunk)
        return chunk


def test_an_oversized_body_is_refused_before_it_is_read(quickbooks, settings, monkeypatch):
    settings.WEBHOOK_MAX_BODY_BYTES = 1024
    monkeypatch.setattr(
        "connectors.quickbooks.connector.QuickBooksConnector.verify_webhook",
        lambda *args: pytest.fail("an oversized body reached verification"),
    )
    data = b"{" + b" " * 10_000_000 + b"}"
    stream = CountingStream(data)
    request = RequestFactory().generic("POST", f"/webhooks/{quickbooks.pk}/", content_type="application/json")
    request.META["CONTENT_LENGTH"] = str(len(data))
    request._stream = LimitedStream(stream, len(data))
    response = inbound.webhook_receive(request, quickbooks.pk)
    assert response.status_code == 413
    assert stream.taken == 0


def test_a_body_without_a_length_is_read_no_further_than_the_limit(quickbooks, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 1024
    data = b"{" + b" " * 5000 + b"}"
    stream = CountingStream(data)
    request = RequestFactory().generic("POST", f"/webhooks/{quickbooks.pk}/", content_type="application/json")
    request.META["CONTENT_LENGTH"] = ""  # chunked: no length to go by
    request._stream = LimitedStream(stream, len(data))
    response = inbound.webhook_receive(request, quickbooks.pk)
    assert response.status_code == 413
    assert stream.taken <= 1025


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_a_wrong_method_is_405(client, stripe, method):
    response = getattr(client, method)(reverse("webhook_receive", args=[stripe.pk]))
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert not WebhookDelivery.objects.exists()


def test_an_unknown_connection_is_404(client, db):
    response = client.post(
        reverse("webhook_receive", args=[987654]), data=b"{}", content_type="application/json"
    )
    assert response.status_code == 404
    assert not WebhookDelivery.objects.exists()


def test_a_connection_whose_platform_has_no_webhooks_is_404(client, db):
    csv = ConnectionFactory(platform="csv")
    response = client.post(
        reverse("webhook_receive", args=[csv.pk]), data=b"{}", content_type="application/json"
    )
    assert response.status_code == 404


def test_a_disabled_connection_asks_the_platform_to_retry_later(client, stripe, monkeypatch):
    stripe.health = Connection.Health.DISABLED
    stripe.save()
    profile_for(stripe)
    monkeypatch.setattr(
        "connectors.stripe.connector.StripeConnector.verify_webhook",
        lambda *args: pytest.fail("a disabled connection verified a webhook"),
    )
    body = stripe_event()
    response = post(client, stripe, body, stripe_headers(body))
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    nothing_changed(stripe)
    assert deliveries(stripe)[0].reason == "the connection is disabled"


def test_the_endpoint_needs_no_session_and_no_csrf_token(db, stripe):
    csrf_checking = Client(enforce_csrf_checks=True)
    body = stripe_event()
    assert post(csrf_checking, stripe, body, stripe_headers(body)).status_code == 200


# --- crashes and races ------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_crash_after_recording_loses_nothing_and_the_retry_is_a_duplicate(stripe, monkeypatch):
    rung: list[int] = []
    monkeypatch.setattr(sync_jobs, "_ring", rung.append)
    profile_for(stripe)

    def crash(*args):
        raise RuntimeError("the worker died before answering")

    monkeypatch.setattr(inbound, "_answer", crash)
    client = Client(raise_request_exception=False)
    body = stripe_event("evt_crash")

    response = post(client, stripe, body, stripe_headers(body))

    assert response.status_code == 500
    (job,) = SyncJob.objects.all()  # committed, and its doorbell rang
    assert rung == [job.pk]
    assert [r.outcome for r in deliveries(stripe)] == [Outcome.PROCESSED]

    monkeypatch.undo()
    monkeypatch.setattr(sync_jobs, "_ring", rung.append)
    retry = post(Client(), stripe, body, stripe_headers(body))
    assert retry.status_code == 200
    assert retry.json()["duplicates"] == 1
    assert SyncJob.objects.count() == 1
    assert rung == [job.pk]


@pytest.mark.django_db(transaction=True)
def test_a_crash_inside_the_transaction_leaves_no_trace_so_the_retry_processes_it(stripe, monkeypatch):
    rung: list[int] = []
    monkeypatch.setattr(sync_jobs, "_ring", rung.append)
    profile_for(stripe)

    def crash(*args, **kwargs):
        raise RuntimeError("the database went away mid-write")

    monkeypatch.setattr(WebhookDelivery.objects, "bulk_create", crash)
    body = stripe_event("evt_midway")
    assert post(Client(raise_request_exception=False), stripe, body, stripe_headers(body)).status_code == 500
    assert (SyncJob.objects.count(), WebhookDelivery.objects.count(), rung) == (0, 0, [])

    monkeypatch.undo()
    monkeypatch.setattr(sync_jobs, "_ring", rung.append)
    assert (
        post(
            Client(), stripe, stripe_event("evt_midway"), stripe_headers(stripe_event("evt_midway"))
        ).status_code
        == 200
    )
    assert SyncJob.objects.count() == 1
    assert len(rung) == 1


@pytest.mark.django_db(transaction=True)
def test_twin_deliveries_at_the_same_moment_are_processed_once(stripe, monkeypatch):
    monkeypatch.setattr(sync_jobs, "_ring", lambda job_id: None)
    profile_for(stripe)
    body = stripe_event("evt_twin")
    start = threading.Barrier(2)
    statuses: list[int] = []

    def deliver() -> None:
        try:
            start.wait()
            statuses.append(post(Client(), stripe, body, stripe_headers(body)).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200, 200]
    assert sorted(r.outcome for r in deliveries(stripe)) == [Outcome.DUPLICATE, Outcome.PROCESSED]
    assert SyncJob.objects.count() == 1


def test_a_twin_that_committed_after_our_look_up_turns_ours_into_a_duplicate(stripe, monkeypatch):
    """The unique index is the last word: our look-up missed the twin (it committed just after), our
    insert is refused, and the request is recorded again with the event as a duplicate and no job."""
    profile_for(stripe)
    event = WebhookEvent("evt_raced", "invoice", "in_1", "paid")
    inbound.delivery_accept(connection=stripe, events=[event])  # the twin
    real_filter = WebhookDelivery.objects.filter
    stale_reads = []

    def stale_first_look_up(*args, **kwargs):
        if not stale_reads and kwargs.get("outcome") == Outcome.PROCESSED:
            stale_reads.append(kwargs)
            return real_filter(pk__in=[])  # what a look-up before the twin's commit saw
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(WebhookDelivery.objects, "filter", stale_first_look_up)
    report = inbound.delivery_accept(connection=stripe, events=[event])

    assert stale_reads
    assert (report.processed, report.duplicates, report.job_ids) == (0, 1, [])
    assert SyncJob.objects.count() == 1
    assert sorted(r.outcome for r in deliveries(stripe)) == [Outcome.DUPLICATE, Outcome.PROCESSED]


# --- retention, admin, roles, schedule --------------------------------------------------------------------
def test_the_purge_deletes_what_is_older_than_the_retention_and_can_run_twice(stripe, settings):
    settings.WEBHOOK_RETENTION_DAYS = 30
    body = stripe_event("evt_old")
    with time_machine.travel(timezone.now() - timedelta(days=31), tick=False):
        inbound.delivery_accept(
            connection=stripe, events=[WebhookEvent("evt_old", "invoice", "in_1", "paid")], body=body
        )
    inbound.delivery_accept(connection=stripe, events=[WebhookEvent("evt_new", "invoice", "in_2", "paid")])
    assert inbound.deliveries_purge() == 1
    assert inbound.deliveries_purge() == 0
    assert [r.event_id for r in deliveries(stripe)] == ["evt_new"]


def test_the_purge_is_a_declared_daily_schedule():
    from sync.schedules import SYSTEM

    (item,) = [item for item in SYSTEM if item.func == "connectors.inbound.deliveries_purge"]
    assert item.schedule_type == "D"
    module, _, name = item.func.rpartition(".")
    assert callable(getattr(__import__(module, fromlist=[name]), name))


@pytest.fixture
def admin_client(client, db):
    client.force_login(UserFactory(is_superuser=True))
    return client


def _fill(connection: Connection, count: int) -> None:
    events = [WebhookEvent(f"evt_{connection.pk}_{n}", "invoice", f"in_{n}", "paid") for n in range(count)]
    inbound.delivery_accept(connection=connection, events=events, body=b'{"big": "body"}')
    inbound.delivery_reject(connection=connection, reason="forged", status=401)


def test_the_delivery_list_stays_within_a_fixed_number_of_queries(admin_client, stripe, quickbooks):
    url = reverse("admin:connectors_webhookdelivery_changelist")
    _fill(stripe, 2)
    with CaptureQueriesContext(db_connection) as few:
        assert admin_client.get(url).status_code == 200
    _fill(quickbooks, 40)
    with CaptureQueriesContext(db_connection) as many:
        response = admin_client.get(url)
    assert response.status_code == 200
    assert len(many) == len(few)
    # the list never loads the (up to 1 MiB) bodies
    assert not any('"connectors_webhookdelivery"."body"' in q["sql"] for q in many.captured_queries)


def test_the_delivery_page_is_read_only_and_shows_the_request_body(admin_client, stripe):
    _fill(stripe, 2)
    second = WebhookDelivery.objects.filter(outcome=Outcome.PROCESSED).order_by("id")[1]
    page = admin_client.get(reverse("admin:connectors_webhookdelivery_change", args=[second.pk]))
    assert page.status_code == 200
    assert b"{&quot;big&quot;: &quot;body&quot;}" in page.content
    assert b'name="_save"' not in page.content
    rejected = WebhookDelivery.objects.get(outcome=Outcome.REJECTED)
    page = admin_client.get(reverse("admin:connectors_webhookdelivery_change", args=[rejected.pk]))
    assert b"not kept for refused requests" in page.content
    assert admin_client.get(reverse("admin:connectors_webhookdelivery_add")).status_code == 403


@pytest.mark.parametrize(("group", "allowed"), [("Integration admins", True), ("Finance staff", False)])
def test_integration_admins_may_read_deliveries(db, group, allowed):
    from django.contrib.auth.models import Group

    user = UserFactory()
    user.groups.add(Group.objects.get(name=group))
    assert user.has_perm("connectors.view_webhookdelivery") is allowed
    assert not user.has_perm("connectors.change_webhookdelivery")


def test_an_intuit_event_naming_no_company_stays_with_the_connection(client, quickbooks):
    body = qb_legacy(("Invoice", "240", "Update"), realm="")
    assert post(client, quickbooks, body, qb_headers(body)).status_code == 200
    (row,) = deliveries(quickbooks)
    assert (row.account, row.outcome) == ("", Outcome.PROCESSED)
