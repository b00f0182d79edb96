"""Ledgerlink's own REST API as a platform: documents external systems push in (see docs/api.md).

Inbound only: each API client has a connection of this platform, so what it sends has an origin binding
(the caller's own id), but Ledgerlink never calls out to it, so it declares no operations.
"""

from __future__ import annotations

from connectors.base import Connector


class ApiConnector(Connector):
    platform = "api"
    label = "REST API client (inbound)"
    capabilities: dict[str, frozenset[str]] = {}

    def check_credentials(self) -> None:
        """Nothing to call: the client authenticates to Ledgerlink, not the other way round."""
