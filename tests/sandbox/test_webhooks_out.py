"""Webhooks the sandboxes send, over real HTTP: a change in a sandbox reaches `POST /webhooks/<id>/` on a
live server, signed the platform's way, and starts a job; retries with backoff, give-up, Xero's intent to
receive, both QuickBooks shapes, the Stripe and developer-portal subscription APIs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from urllib.parse import urlencode

import pytest
import requests

from connectors.models import Connection, WebhookDelivery
from connectors.stripe.client import encode_form
from sandbox import core, webhooks
from sandbox.models import SandboxWebhook, SandboxWebhookDelivery
from sync import jobs
from sync.models import SyncJob, SyncProfile
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk_test_webhooks_out"
REALM = "4620816365257778299"
TENANT = "0a8f3b6e-1c2d-4e5f-8a9b-7c6d5e4f3a99"
SCALE = 0.0001  # the platforms' retry delays (10 s to 6 h) in tenths of milliseconds to a few seconds


@pytest.fixture(autouse=True)
def quick_retries(settings):
    settings.SANDBOX_WEBHOOK_DELAY_SCALE = SCALE
    yield
    # nothing may still be sending when the test database goes away
    assert webhooks.deliveries_idle(timeout=60)


@pytest.fixture
def rung(monkeypatch):
    """The jobs' doorbells: recorded instead of running the jobs inside the webhook's request."""
    calls: list[int] = []
    monkeypatch.setattr(jobs, "_ring", calls.append)
    return calls


class Receiver:
    """A tiny HTTP endpoint that records what it is sent and answers `status` (or waits for `gate`)."""

    def __init__(self, status: int | list[int] = 200, body: bytes = b"") -> None:
        self.statuses = list(status) if isinstance(status, list) else [status]
        self.body = body
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.gate: threading.Event | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                receiver.requests.append((dict(self.headers), self.rfile.read(length)))
                if receiver.gate is not None:
                    receiver.gate.wait(30)
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self.gate is not None:
            self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(status: int | list[int] = 200, body: bytes = b"") -> Receiver:
        made.append(Receiver(status, body))
        return made[-1]

    yield make
    assert webhooks.deliveries_idle(timeout=60)
    for one in made:
        one.close()


# --- helpers --------------------------------------------------------------------------------------------
class Stripe:
    def __init__(self, server_url: str) -> None:
        self.root = f"{server_url}/sandbox/stripe/v1"
        self.headers = {"Authorization": f"Bearer {KEY}"}

    def post(self, path: str, params: dict | None = None) -> requests.Response:
        return requests.post(
            f"{self.root}/{path}",
            data=urlencode(encode_form(params or {})),
            headers={**self.headers, "Content-Type": "application/x-www-form-urlencoded"},
            timeout=30,
        )

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.root}/{path}", headers=self.headers, timeout=30)

    def delete(self, path: str) -> requests.Response:
        return requests.delete(f"{self.root}/{path}", headers=self.headers, timeout=30)

    def customer(self) -> dict:
        return self.post("customers", {"name": "Albion Bakeries Ltd", "email": "ap@albion.example"}).json()

    def invoice(self, customer: dict) -> dict:
        params = {"customer": customer["id"], "currency": "gbp", "collection_method": "send_invoice"}
        return self.post("invoices", {**params, "days_until_due": 30}).json()


def stripe_source(server_url: str, secret: str = "") -> Connection:
    return ConnectionFactory(
        name="Stripe (sandbox)",
        platform="stripe",
        role=Connection.Role.SOURCE,
        base_url=f"{server_url}/sandbox/stripe/v1",
        credentials={"api_key": KEY, "webhook_secret": secret},
    )


def hook_url(server_url: str, connection: Connection) -> str:
    return f"{server_url}/webhooks/{connection.pk}/"


def stripe_subscribed(server_url: str, events=("invoice.created", "invoice.paid")) -> tuple[Connection, dict]:
    """A Stripe source whose sandbox account sends `events` to its webhook URL, secret stored."""
    connection = stripe_source(server_url)
    endpoint = Stripe(server_url).post(
        "webhook_endpoints", {"url": hook_url(server_url, connection), "enabled_events": list(events)}
    )
    assert endpoint.status_code == 200, endpoint.text
    connection.credentials = {**connection.credentials, "webhook_secret": endpoint.json()["secret"]}
    connection.save()
    return connection, endpoint.json()


def profile_from(source: Connection, **extra) -> SyncProfile:
    destination = ConnectionFactory(platform="quickbooks", role=Connection.Role.DESTINATION)
    return SyncProfile.objects.create(
        name=f"{source.name} to QuickBooks",
        source=source,
        destination=destination,
        object_types=["invoice", "payment", "credit_note"],
        **extra,
    )


def sent(webhook: SandboxWebhook) -> list[SandboxWebhookDelivery]:
    return list(SandboxWebhookDelivery.objects.filter(webhook=webhook).order_by("pk"))


def portal(server_url: str, platform: str, method: str = "POST", path: str = "", **body) -> requests.Response:
    return requests.request(
        method,
        f"{server_url}/sandbox/{platform}/developer/webhooks{path}",
        json=body if method == "POST" else None,
        auth=("ledgerlink-test", "secret"),
        timeout=30,
    )


# --- Stripe ---------------------------------------------------------------------------------------------
def test_a_stripe_invoice_created_in_the_sandbox_reaches_the_endpoint_signed_and_starts_a_job(
    live_server, rung
):
    connection, endpoint = stripe_subscribed(live_server.url)
    profile = profile_from(connection)
    api = Stripe(live_server.url)

    invoice = api.invoice(api.customer())
    assert webhooks.deliveries_idle()

    (delivery,) = sent(SandboxWebhook.objects.get(public_id=endpoint["id"]))
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("delivered", 1, 200)
    (received,) = WebhookDelivery.objects.filter(connection=connection)
    assert (received.outcome, received.object_type, received.external_id) == (
        "processed",
        "invoice",
        invoice["id"],
    )
    assert received.action == "created"
    (job,) = SyncJob.objects.filter(profile=profile)
    assert (job.kind, job.trigger, job.params) == ("sync", "webhook", {"fetch": [["invoice", invoice["id"]]]})
    assert rung == [job.pk]
    assert received.job_ids == [job.pk]


def test_paying_a_stripe_invoice_starts_a_payment_triggered_job(live_server, rung):
    connection, _ = stripe_subscribed(live_server.url, events=("invoice.paid", "charge.succeeded"))
    profile = profile_from(connection)
    api = Stripe(live_server.url)
    customer = api.customer()
    invoice = api.invoice(customer)
    api.post("invoiceitems", {"customer": customer["id"], "invoice": invoice["id"], "amount": 1200})
    api.post(f"invoices/{invoice['id']}/finalize")
    assert webhooks.deliveries_idle()
    assert not SyncJob.objects.exists()  # neither event is subscribed to until the invoice is paid

    paid = api.post(f"invoices/{invoice['id']}/pay")
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    assert webhooks.deliveries_idle()

    kinds = sorted(WebhookDelivery.objects.filter(connection=connection).values_list("object_type", "action"))
    assert kinds == [("invoice", "paid"), ("payment", "succeeded")]
    triggers = sorted(SyncJob.objects.filter(profile=profile).values_list("trigger", flat=True))
    assert triggers == ["payment", "webhook"]


def test_the_stripe_body_and_signature_are_stripes(live_server, receiver):
    endpoint = receiver()
    api = Stripe(live_server.url)
    made = api.post("webhook_endpoints", {"url": endpoint.url, "enabled_events": ["*"]}).json()
    assert made["object"] == "webhook_endpoint" and made["secret"].startswith("whsec_")
    assert made["status"] == "enabled" and made["enabled_events"] == ["*"]

    customer = api.customer()
    assert webhooks.deliveries_idle()

    (headers, body) = endpoint.requests[0]
    event = json.loads(body)
    assert (event["object"], event["type"], event["data"]["object"]["id"]) == (
        "event",
        "customer.created",
        customer["id"],
    )
    assert event["pending_webhooks"] == 1 and event["livemode"] is False
    parts = dict(part.split("=", 1) for part in headers["Stripe-Signature"].split(","))
    expected = hmac.new(made["secret"].encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    assert parts["v1"] == expected
    assert headers["Content-Type"].startswith("application/json")
    # the endpoint's secret is shown once, at creation
    assert "secret" not in api.get(f"webhook_endpoints/{made['id']}").json()


def test_a_forged_secret_is_refused_by_the_endpoint_and_starts_nothing(live_server, rung):
    connection, endpoint = stripe_subscribed(live_server.url)
    profile_from(connection)
    SandboxWebhook.objects.filter(public_id=endpoint["id"]).update(secret="whsec_forged_by_someone_else")
    api = Stripe(live_server.url)

    api.invoice(api.customer())
    assert webhooks.deliveries_idle()

    refused = WebhookDelivery.objects.filter(connection=connection)
    assert refused.count() == 4  # the first try and Stripe's three retries (test mode)
    assert set(refused.values_list("outcome", "status")) == {("rejected", 400)}
    assert "no v1 signature matches" in refused.first().reason
    (delivery,) = sent(SandboxWebhook.objects.get(public_id=endpoint["id"]))
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("failed", 4, 400)
    assert not SyncJob.objects.exists() and rung == []


def test_a_non_2xx_answer_is_retried_with_backoff_and_then_given_up(live_server, receiver):
    endpoint = receiver(status=503)
    api = Stripe(live_server.url)
    made = api.post("webhook_endpoints", {"url": endpoint.url, "enabled_events": ["invoice.created"]}).json()

    api.invoice(api.customer())
    assert webhooks.deliveries_idle()

    (delivery,) = sent(SandboxWebhook.objects.get(public_id=made["id"]))
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("failed", 4, 503)
    assert len(endpoint.requests) == 4
    assert len({body for _, body in endpoint.requests}) == 1  # the same event every time, signed anew
    tries = delivery.log
    waits = [
        (datetime.fromisoformat(t["next_attempt_at"]) - datetime.fromisoformat(t["at"])).total_seconds()
        for t in tries[:-1]
    ]
    assert waits == pytest.approx([d * SCALE for d in webhooks.PLATFORMS["stripe"].retry_delays])
    for before, after in itertools.pairwise(tries):  # never sooner than the backoff said
        assert datetime.fromisoformat(after["at"]) >= datetime.fromisoformat(before["next_attempt_at"])
    assert "next_attempt_at" not in tries[-1]


def test_a_retry_answered_2xx_is_delivered_and_not_sent_again(live_server, receiver):
    endpoint = receiver(status=[503, 502, 200])
    api = Stripe(live_server.url)
    api.post("webhook_endpoints", {"url": endpoint.url, "enabled_events": ["customer.created"]})

    api.customer()
    assert webhooks.deliveries_idle()

    delivery = SandboxWebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("delivered", 3, 200)
    assert [attempt["status"] for attempt in delivery.log] == [503, 502, 200]
    assert len(endpoint.requests) == 3


def test_a_disabled_connection_answers_503_and_the_retry_after_it_is_enabled_gets_through(live_server, rung):
    connection, endpoint = stripe_subscribed(live_server.url, events=("invoice.created",))
    profile_from(connection)
    Connection.objects.filter(pk=connection.pk).update(health=Connection.Health.DISABLED)
    hook = SandboxWebhook.objects.get(public_id=endpoint["id"])
    api = Stripe(live_server.url)

    api.invoice(api.customer())
    for _ in range(500):  # wait for the first try, then enable the connection before the retries end
        if WebhookDelivery.objects.filter(connection=connection, status=503).exists():
            break
        threading.Event().wait(0.01)
    Connection.objects.filter(pk=connection.pk).update(health=Connection.Health.HEALTHY)
    assert webhooks.deliveries_idle()

    (delivery,) = sent(hook)
    assert delivery.state == "delivered" and delivery.log[0]["status"] == 503
    assert SyncJob.objects.filter(trigger="webhook").count() == 1


def test_the_sandbox_answers_before_its_webhook_is_answered(live_server, receiver):
    endpoint = receiver()
    endpoint.gate = threading.Event()  # the endpoint holds every request until released
    api = Stripe(live_server.url)
    api.post("webhook_endpoints", {"url": endpoint.url, "enabled_events": ["customer.created"]})

    customer = api.customer()

    assert customer["object"] == "customer"
    assert SandboxWebhookDelivery.objects.get().state in ("pending", "sending")
    endpoint.gate.set()
    assert webhooks.deliveries_idle()
    assert SandboxWebhookDelivery.objects.get().state == "delivered"


def test_a_refused_request_queues_no_webhook(live_server, receiver):
    endpoint = receiver()
    api = Stripe(live_server.url)
    api.post("webhook_endpoints", {"url": endpoint.url, "enabled_events": ["*"]})

    refused = api.post("invoices", {"customer": "cus_nobody", "currency": "gbp"})

    assert refused.status_code == 400
    assert not SandboxWebhookDelivery.objects.exists() and endpoint.requests == []


def test_stripe_refuses_a_bad_endpoint_naming_the_field(live_server):
    api = Stripe(live_server.url)
    bad_url = api.post("webhook_endpoints", {"url": "ftp://example.com", "enabled_events": ["*"]})
    assert bad_url.status_code == 400 and bad_url.json()["error"]["param"] == "url"
    assert "ftp://example.com" in bad_url.json()["error"]["message"]
    no_events = api.post("webhook_endpoints", {"url": "https://example.com/hook"})
    assert no_events.status_code == 400 and no_events.json()["error"]["param"] == "enabled_events"


def test_stripe_endpoints_list_update_and_delete(live_server, receiver):
    endpoint = receiver()
    api = Stripe(live_server.url)
    made = api.post("webhook_endpoints", {"url": endpoint.url, "enabled_events": ["customer.created"]}).json()
    listed = api.get("webhook_endpoints").json()
    assert [item["id"] for item in listed["data"]] == [made["id"]] and listed["object"] == "list"

    disabled = api.post(f"webhook_endpoints/{made['id']}", {"disabled": "true"}).json()
    assert disabled["status"] == "disabled"
    api.customer()
    assert not SandboxWebhookDelivery.objects.exists()

    gone = api.delete(f"webhook_endpoints/{made['id']}").json()
    assert gone == {"id": made["id"], "object": "webhook_endpoint", "deleted": True}
    assert api.get(f"webhook_endpoints/{made['id']}").status_code == 404


# --- Xero -----------------------------------------------------------------------------------------------
def xero_destination(server_url: str, key: str) -> Connection:
    core.seed("xero", TENANT)
    return ConnectionFactory(
        name="Xero (sandbox)",
        platform="xero",
        role=Connection.Role.DESTINATION,
        base_url=f"{server_url}/sandbox/xero/api.xro/2.0",
        credentials={"webhook_key": key, "token": core.tokens_issue("xero", TENANT, "t")},
        options={"tenant_id": TENANT},
    )


def xero_contact(server_url: str, name: str) -> str:
    token = core.tokens_issue("xero", TENANT, "t")["access_token"]
    created = requests.put(
        f"{server_url}/sandbox/xero/api.xro/2.0/Contacts",
        json={"Contacts": [{"Name": name}]},
        headers={"Authorization": f"Bearer {token}", "xero-tenant-id": TENANT},
        timeout=30,
    )
    assert created.status_code == 200, created.text
    return created.json()["Contacts"][0]["ContactID"]


def test_a_xero_subscription_is_confirmed_by_intent_to_receive_and_then_sends_events(live_server, rung):
    connection = xero_destination(live_server.url, "xero-webhook-key-for-tests")
    made = portal(
        live_server.url,
        "xero",
        account=TENANT,
        url=hook_url(live_server.url, connection),
        webhook_key="xero-webhook-key-for-tests",
    )
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "intent_required"
    assert webhooks.deliveries_idle()

    hook = SandboxWebhook.objects.get(public_id=made.json()["id"])
    assert hook.status == "enabled" and hook.confirmed_at is not None, hook.status_reason
    handshakes = WebhookDelivery.objects.filter(connection=connection)
    assert sorted(handshakes.values_list("outcome", flat=True)) == ["processed"] * 2 + ["rejected"] * 2

    contact_id = xero_contact(live_server.url, "Harbour Street Deli Ltd")
    assert webhooks.deliveries_idle()

    event = WebhookDelivery.objects.get(connection=connection, external_id=contact_id)
    assert (event.outcome, event.object_type, event.action) == ("processed", "customer", "created")
    body = json.loads(sent(hook)[-1].body)
    assert (body["firstEventSequence"], body["lastEventSequence"]) == (1, 1)
    assert body["events"][0]["tenantType"] == "ORGANISATION" and len(body["entropy"]) == 20


def test_a_xero_subscription_stays_unconfirmed_when_the_endpoint_answers_wrong(live_server, receiver):
    always_ok = receiver(status=200)
    made = portal(live_server.url, "xero", account=TENANT, url=always_ok.url)
    assert webhooks.deliveries_idle()

    hook = SandboxWebhook.objects.get(public_id=made.json()["id"])
    assert hook.status == "intent_required" and hook.confirmed_at is None
    assert "incorrectly signed request got 200; expected 401" in hook.status_reason
    (check,) = sent(hook)
    assert (check.kind, check.state) == ("intent", "failed")
    assert len(always_ok.requests) == 2  # stopped at the first wrong answer
    signed_body = always_ok.requests[0][1]
    assert json.loads(signed_body)["events"] == []
    expected = base64.b64encode(hmac.new(hook.secret.encode(), signed_body, hashlib.sha256).digest()).decode()
    assert always_ok.requests[0][0]["x-xero-signature"] == expected

    # no events go to a subscription that has not passed the check
    xero_contact(live_server.url, "Kyoto Table Ltd")
    assert SandboxWebhookDelivery.objects.count() == 1 and len(always_ok.requests) == 2


def test_a_xero_endpoint_answering_with_a_body_fails_intent_to_receive(live_server, receiver):
    chatty = receiver(status=401, body=b"nope")
    made = portal(live_server.url, "xero", account=TENANT, url=chatty.url)
    assert webhooks.deliveries_idle()
    hook = SandboxWebhook.objects.get(public_id=made.json()["id"])
    assert hook.status == "intent_required" and "correctly signed request got 401" in hook.status_reason


# --- QuickBooks -----------------------------------------------------------------------------------------
def quickbooks_connection(server_url: str, name: str, token: str) -> Connection:
    return ConnectionFactory(
        name=name,
        platform="quickbooks",
        role=Connection.Role.DESTINATION,
        base_url=f"{server_url}/sandbox/quickbooks/v3",
        credentials={"webhook_verifier_token": token},
        options={"realmId": REALM},
    )


def quickbooks_invoice(server_url: str) -> dict:
    token = core.tokens_issue("quickbooks", REALM, "t")["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    root = f"{server_url}/sandbox/quickbooks/v3/company/{REALM}"
    body = {
        "CustomerRef": {"value": "1"},
        "Line": [
            {
                "Amount": 80.0,
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
            }
        ],
    }
    created = requests.post(f"{root}/invoice?minorversion=75", json=body, headers=headers, timeout=30)
    assert created.status_code == 200, created.text
    return created.json()["Invoice"]


@pytest.mark.parametrize("shape", ["legacy", "cloudevents"])
def test_a_quickbooks_invoice_is_announced_in_either_shape(live_server, rung, shape):
    core.seed("quickbooks", REALM)
    connection = quickbooks_connection(live_server.url, f"QuickBooks {shape}", "verifier-token-" + shape)
    made = portal(
        live_server.url,
        "quickbooks",
        account=REALM,
        url=hook_url(live_server.url, connection),
        events=["Invoice"],
        format=shape,
        verifier_token="verifier-token-" + shape,
    )
    assert made.status_code == 201 and made.json()["status"] == "enabled"

    invoice = quickbooks_invoice(live_server.url)
    assert webhooks.deliveries_idle()

    (delivery,) = sent(SandboxWebhook.objects.get(public_id=made.json()["id"]))
    assert delivery.state == "delivered"
    body = json.loads(delivery.body)
    if shape == "legacy":
        entity = body["eventNotifications"][0]["dataChangeEvent"]["entities"][0]
        assert body["eventNotifications"][0]["realmId"] == REALM
        assert (entity["name"], entity["id"], entity["operation"]) == ("Invoice", invoice["Id"], "Create")
        assert entity["lastUpdated"].endswith("Z")
    else:
        (event,) = body
        assert (event["type"], event["intuitentityid"], event["intuitaccountid"]) == (
            "qbo.invoice.created.v1",
            invoice["Id"],
            REALM,
        )
    received = WebhookDelivery.objects.get(connection=connection)
    assert (received.outcome, received.object_type, received.external_id, received.action) == (
        "processed",
        "invoice",
        invoice["Id"],
        "created",
    )
    (job,) = SyncJob.objects.filter(connection=connection)  # no profile reads it: a pull of that invoice
    assert (job.kind, job.params) == ("pull", {"fetch": [["invoice", invoice["Id"]]]})


def test_quickbooks_void_and_delete_are_announced_as_such(live_server, receiver):
    core.seed("quickbooks", REALM)
    endpoint = receiver()
    portal(live_server.url, "quickbooks", account=REALM, url=endpoint.url, events=["Invoice"])
    invoice = quickbooks_invoice(live_server.url)
    token = core.tokens_issue("quickbooks", REALM, "t")["access_token"]
    root = f"{live_server.url}/sandbox/quickbooks/v3/company/{REALM}"
    headers = {"Authorization": f"Bearer {token}"}
    voided = requests.post(
        f"{root}/invoice?operation=void",
        json={"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]},
        headers=headers,
        timeout=30,
    ).json()["Invoice"]
    requests.post(
        f"{root}/invoice?operation=delete",
        json={"Id": invoice["Id"], "SyncToken": voided["SyncToken"]},
        headers=headers,
        timeout=30,
    )
    assert webhooks.deliveries_idle()

    operations = [
        json.loads(body)["eventNotifications"][0]["dataChangeEvent"]["entities"][0]["operation"]
        for _, body in endpoint.requests
    ]
    assert operations == ["Create", "Void", "Delete"]
    for headers_sent, body in endpoint.requests:
        token_ = SandboxWebhook.objects.get().secret
        expected = base64.b64encode(hmac.new(token_.encode(), body, hashlib.sha256).digest()).decode()
        assert headers_sent["intuit-signature"] == expected


def test_quickbooks_holds_later_notifications_until_the_first_is_acknowledged(live_server, receiver):
    core.seed("quickbooks", REALM)
    endpoint = receiver(status=500)
    portal(live_server.url, "quickbooks", account=REALM, url=endpoint.url, events=["Invoice"])
    first, second = quickbooks_invoice(live_server.url), quickbooks_invoice(live_server.url)
    assert webhooks.deliveries_idle()

    older, newer = SandboxWebhookDelivery.objects.order_by("pk")
    assert older.attempts == 1 + len(webhooks.PLATFORMS["quickbooks"].retry_delays)
    assert older.state == newer.state == "failed"
    ids = [
        json.loads(body)["eventNotifications"][0]["dataChangeEvent"]["entities"][0]["id"]
        for _, body in endpoint.requests
    ]
    # every try of the first before any of the second
    assert ids == [first["Id"]] * older.attempts + [second["Id"]] * newer.attempts


def test_the_developer_portal_refuses_bad_settings_naming_the_field(live_server):
    bad_format = portal(live_server.url, "quickbooks", account=REALM, url="https://x.example/h", format="xml")
    assert bad_format.status_code == 400 and bad_format.json()["field"] == "format"
    bad_entity = portal(
        live_server.url, "quickbooks", account=REALM, url="https://x.example/h", events=["Bill"]
    )
    assert bad_entity.status_code == 400
    assert (bad_entity.json()["field"], bad_entity.json()["value"]) == ("events[0]", "Bill")
    no_account = portal(live_server.url, "xero", url="https://x.example/h")
    assert no_account.status_code == 400 and no_account.json()["field"] == "account"
    anonymous = requests.post(f"{live_server.url}/sandbox/xero/developer/webhooks", json={}, timeout=30)
    assert anonymous.status_code == 401
    assert not SandboxWebhook.objects.exists()


# --- the demo -------------------------------------------------------------------------------------------
def test_the_demo_subscribes_stripe_and_a_stripe_invoice_starts_the_demo_profile(live_server, settings, rung):
    from django.core.management import call_command

    settings.SANDBOX_BASE_URL = live_server.url
    call_command("load_demo", "--no-users", stdout=StringIO())
    first = (
        list(SandboxWebhook.objects.values_list("public_id", "url", "secret", "events")),
        list(SyncProfile.objects.order_by("name").values_list("name", "on_webhook", "on_payment")),
    )
    call_command("load_demo", "--no-users", stdout=StringIO())
    again = (
        list(SandboxWebhook.objects.values_list("public_id", "url", "secret", "events")),
        list(SyncProfile.objects.order_by("name").values_list("name", "on_webhook", "on_payment")),
    )
    assert first == again
    source = Connection.objects.get(name="Stripe (sandbox)")
    (hook,) = SandboxWebhook.objects.all()
    assert hook.url == hook_url(live_server.url, source)
    assert hook.secret == source.credentials["webhook_secret"]
    profile = SyncProfile.objects.get(name="Stripe to QuickBooks (sandbox)")
    assert (profile.source, profile.on_webhook, profile.on_payment) == (source, True, True)

    api = Stripe(live_server.url)
    api.headers = {"Authorization": f"Bearer {source.credentials['api_key']}"}
    invoice = api.invoice(api.customer())
    assert webhooks.deliveries_idle()

    (job,) = SyncJob.objects.filter(profile=profile)
    assert (job.trigger, job.params) == ("webhook", {"fetch": [["invoice", invoice["id"]]]})


# --- admin ----------------------------------------------------------------------------------------------
def _queries(client, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_the_webhook_admin_lists_stay_within_a_fixed_number_of_queries(admin_client):
    from django.utils import timezone

    def add(count: int) -> None:
        for _ in range(count):
            hook = webhooks.webhook_subscribe(platform="stripe", account=KEY, url="https://x.example/h")
            SandboxWebhookDelivery.objects.create(
                webhook=hook, next_attempt_at=timezone.now(), state="failed"
            )

    add(1)
    few = [
        _queries(admin_client, f"/admin/sandbox/{m}/") for m in ("sandboxwebhook", "sandboxwebhookdelivery")
    ]
    add(6)
    many = [
        _queries(admin_client, f"/admin/sandbox/{m}/") for m in ("sandboxwebhook", "sandboxwebhookdelivery")
    ]
    assert few == many


def test_the_admin_makes_a_subscription_with_a_secret_and_refuses_a_bad_event(admin_client):
    made = admin_client.post(
        "/admin/sandbox/sandboxwebhook/add/",
        {"platform": "quickbooks", "account": REALM, "url": "https://x.example/h", "events": '["Invoice"]'},
    )
    assert made.status_code == 302, made.content.decode()[:2000]
    hook = SandboxWebhook.objects.get()
    assert hook.secret and hook.payload_format == "legacy" and hook.status == "enabled"

    refused = admin_client.post(
        "/admin/sandbox/sandboxwebhook/add/",
        {"platform": "xero", "account": TENANT, "url": "https://x.example/h", "events": '["PAYMENT"]'},
    )
    assert refused.status_code == 200 and "PAYMENT" in refused.content.decode()
    assert SandboxWebhook.objects.count() == 1
