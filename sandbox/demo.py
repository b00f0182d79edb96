"""Demo connections to the built-in sandboxes: a Stripe source, QuickBooks and Xero destinations.

Each sandbox account is seeded with data once, and the OAuth connections get a token pair straight from
the sandbox (the demo has no browser to click "Allow" in; the Connect button still works for real). The
Stripe sandbox account sends its webhooks to the Stripe connection's endpoint, signed with the connection's
webhook secret, and a profile from Stripe to QuickBooks runs on each of them.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from connectors.models import Connection
from sandbox import core, webhooks
from sandbox.models import SandboxWebhook

CLIENT_ID = "ledgerlink-demo"
CLIENT_SECRET = "ledgerlink-demo-secret"  # the sandbox's own fake app, not a real credential


def _account(platform: str, fallback: str) -> str:
    return getattr(core.platform_module(platform), "DEFAULT_ACCOUNT", fallback)


def demo_connections(base_url: str) -> list[tuple[Connection, bool]]:
    """Create (or find) the three sandbox connections; returns (connection, seeded now) pairs."""
    root = f"{base_url.rstrip('/')}/sandbox"
    stripe_key = _account("stripe", "sk_test_ledgerlink_demo")
    realm = _account("quickbooks", "9341453051187036")
    tenant = _account("xero", "3f1d2c9e-7a55-4c0b-9a7e-5d3b1f0e2a61")
    specs: list[dict[str, Any]] = [
        {
            "name": "Stripe (sandbox)",
            "platform": "stripe",
            "role": Connection.Role.SOURCE,
            "base_url": f"{root}/stripe/v1",
            "account": stripe_key,
            "credentials": {"api_key": stripe_key, "webhook_secret": "whsec_ledgerlink_demo"},
            "options": {},
        },
        {
            "name": "QuickBooks Online (sandbox)",
            "platform": "quickbooks",
            "role": Connection.Role.DESTINATION,
            "base_url": f"{root}/quickbooks/v3",
            "account": realm,
            "credentials": {"webhook_verifier_token": "ledgerlink-demo-verifier"},
            "options": {"realmId": realm, "home_currency": "GBP"},
        },
        {
            "name": "Xero (sandbox)",
            "platform": "xero",
            "role": Connection.Role.DESTINATION,
            "base_url": f"{root}/xero/api.xro/2.0",
            "account": tenant,
            "credentials": {"webhook_key": "ledgerlink-demo-webhook-key"},
            "options": {"tenant_id": tenant},
        },
    ]
    made = []
    for spec in specs:
        with transaction.atomic():
            connection, _ = Connection.objects.get_or_create(
                name=spec["name"],
                defaults={"platform": spec["platform"], "role": spec["role"], "base_url": spec["base_url"]},
            )
            seeded = False
            if not connection.options.get("sandbox_seeded"):
                core.seed(spec["platform"], spec["account"])
                seeded = True
            credentials = {**spec["credentials"], **(connection.credentials or {})}
            options = {**spec["options"], **(connection.options or {}), "sandbox_seeded": True}
            if connection.connector().uses_oauth:
                options.setdefault("oauth_authorize_url", f"{root}/{spec['platform']}/oauth/authorize")
                options.setdefault("oauth_token_url", f"{root}/{spec['platform']}/oauth/token")
                credentials.setdefault("client_id", CLIENT_ID)
                credentials.setdefault("client_secret", CLIENT_SECRET)
                if "token" not in credentials:
                    credentials["token"] = core.tokens_issue(spec["platform"], spec["account"], CLIENT_ID)
            connection.credentials = credentials
            connection.options = options
            connection.base_url = spec["base_url"]
            connection.save()
        made.append((connection, seeded))
    return made


def _services_item(destination: Connection) -> str:
    """The QuickBooks sandbox company's "Services" item (they share this database)."""
    from sandbox.models import SandboxRecord

    realm = destination.options.get("realmId", "")
    items = SandboxRecord.objects.filter(platform="quickbooks", account=realm, kind="Item")
    return next((row.record_id for row in items if row.data.get("Name") == "Services"), "")


def demo_profile(source: Connection) -> Any:
    """A manual profile from the demo CSV source to the QuickBooks sandbox, its mapping filled in from
    the sandbox company's own items and tax codes (they share this database), so "Dry run" and "Run now"
    work on the first visit."""
    from sync.models import MappingRow, MappingSet, SyncProfile

    destination = Connection.objects.filter(name="QuickBooks Online (sandbox)").first()
    if destination is None:
        return None
    services = _services_item(destination)
    with transaction.atomic():
        mapping, created = MappingSet.objects.get_or_create(
            name="Wholesale CSV to QuickBooks (sandbox)",
            defaults={"destination": destination, "number_prefix": "WH-"},
        )
        if created:
            rows = [("tax_code", "20", "2"), ("tax_code", "0", "3"), ("tax_code", "5", "5")]
            rows += [("tax_code", "none", "4"), ("item", "*", services)] if services else []
            for kind, source_value, target in rows:
                MappingRow.objects.create(
                    mapping_set=mapping, kind=kind, source_value=source_value, target_value=target
                )
        profile, _ = SyncProfile.objects.get_or_create(
            name="Wholesale CSV to QuickBooks (sandbox)",
            defaults={
                "source": source,
                "destination": destination,
                "object_types": ["invoice", "payment", "credit_note"],
                "mapping_set": mapping,
            },
        )
    return profile


# what a Stripe source is synced on: new, finalised, paid, voided invoices, credit notes and refunds
DEMO_STRIPE_EVENTS = (
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "credit_note.created",
    "credit_note.voided",
    "charge.refunded",
)


def demo_stripe_webhook(base_url: str) -> tuple[SandboxWebhook | None, bool]:
    """Subscribe the Stripe sandbox account to the Stripe connection's webhook URL, with the secret the
    connection verifies; (subscription, made now). A subscription to that URL already there is kept."""
    source = Connection.objects.filter(name="Stripe (sandbox)", platform="stripe").first()
    if source is None:
        return None, False
    url = f"{base_url.rstrip('/')}{reverse('webhook_receive', args=[source.pk])}"
    account = str((source.credentials or {}).get("api_key") or _account("stripe", "sk_test_ledgerlink_demo"))
    with transaction.atomic():
        found = SandboxWebhook.objects.filter(platform="stripe", account=account, url=url).first()
        if found is not None:
            return found, False
        secret = str((source.credentials or {}).get("webhook_secret") or "")
        hook = webhooks.webhook_subscribe(
            platform="stripe",
            account=account,
            url=url,
            events=DEMO_STRIPE_EVENTS,
            secret=secret,
            description="Ledgerlink demo: the Stripe (sandbox) connection",
            public_id=f"we_Sbx{core.next_number('stripe', account, 'we'):010d}",
        )
        if not secret:
            source.credentials = {**(source.credentials or {}), "webhook_secret": hook.secret}
            source.save()
    return hook, True


def demo_stripe_profile() -> Any:
    """Stripe to the QuickBooks sandbox, run by the Stripe sandbox's webhooks (on_webhook, on_payment).
    Its cut-over date is the day the demo was loaded: the seeded history is left alone, and what is made
    or paid in the Stripe sandbox from then on is synced as it happens."""
    from sync.models import MappingRow, MappingSet, SyncProfile

    source = Connection.objects.filter(name="Stripe (sandbox)", platform="stripe").first()
    destination = Connection.objects.filter(name="QuickBooks Online (sandbox)").first()
    if source is None or destination is None:
        return None
    items = _services_item(destination)
    with transaction.atomic():
        mapping, created = MappingSet.objects.get_or_create(
            name="Stripe to QuickBooks (sandbox)", defaults={"destination": destination}
        )
        if created:
            rows = [("tax_code", "20", "2"), ("tax_code", "0", "3"), ("tax_code", "5", "5")]
            rows += [("tax_code", "none", "4"), ("item", "*", items)] if items else []
            for kind, source_value, target in rows:
                MappingRow.objects.create(
                    mapping_set=mapping, kind=kind, source_value=source_value, target_value=target
                )
        profile, _ = SyncProfile.objects.get_or_create(
            name="Stripe to QuickBooks (sandbox)",
            defaults={
                "source": source,
                "destination": destination,
                "object_types": ["invoice", "payment", "credit_note"],
                "mapping_set": mapping,
                "cutover_date": timezone.localdate(),
                "on_webhook": True,
                "on_payment": True,
            },
        )
    return profile
