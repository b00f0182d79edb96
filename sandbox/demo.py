"""Demo connections to the built-in sandboxes: a Stripe source, QuickBooks and Xero destinations.

Each sandbox account is seeded with data once, and the OAuth connections get a token pair straight from
the sandbox (the demo has no browser to click "Allow" in; the Connect button still works for real).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from connectors.models import Connection
from sandbox import core

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


def demo_profile(source: Connection) -> Any:
    """A manual profile from the demo CSV source to the QuickBooks sandbox, its mapping filled in from
    the sandbox company's own items and tax codes (they share this database), so "Dry run" and "Run now"
    work on the first visit."""
    from sandbox.models import SandboxRecord
    from sync.models import MappingRow, MappingSet, SyncProfile

    destination = Connection.objects.filter(name="QuickBooks Online (sandbox)").first()
    if destination is None:
        return None
    realm = destination.options.get("realmId", "")
    items = SandboxRecord.objects.filter(platform="quickbooks", account=realm, kind="Item")
    services = next((row.record_id for row in items if row.data.get("Name") == "Services"), "")
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
