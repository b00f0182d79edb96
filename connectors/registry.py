"""The explicit registry of platforms: slug -> connector class. Add a platform here and nowhere else."""

from __future__ import annotations

from importlib import import_module

from connectors.base import Connector

PLATFORMS: dict[str, str] = {
    "api": "connectors.api.connector.ApiConnector",
    "csv": "connectors.csv.connector.CsvConnector",
    "quickbooks": "connectors.quickbooks.connector.QuickBooksConnector",
    "stripe": "connectors.stripe.connector.StripeConnector",
    "xero": "connectors.xero.connector.XeroConnector",
}


class UnknownPlatformError(KeyError):
    pass


def connector_class(platform: str) -> type[Connector]:
    try:
        dotted = PLATFORMS[platform]
    except KeyError:
        known = ", ".join(sorted(PLATFORMS))
        raise UnknownPlatformError(f"unknown platform {platform!r}; known platforms: {known}") from None
    module_name, _, class_name = dotted.rpartition(".")
    return getattr(import_module(module_name), class_name)


def platform_choices() -> list[tuple[str, str]]:
    return [(slug, connector_class(slug).label) for slug in sorted(PLATFORMS)]
