"""Reads (and the one get-or-create the CSV commands need)."""

from __future__ import annotations

from connectors.models import Connection


def csv_connection_get_or_create(*, name: str) -> Connection:
    """The CSV connection called `name`, created as a source if it does not exist yet."""
    connection, _ = Connection.objects.get_or_create(
        name=name, defaults={"platform": "csv", "role": Connection.Role.SOURCE}
    )
    if connection.platform != "csv":
        raise ValueError(f"connection {name!r} is a {connection.platform} connection, not a CSV one")
    return connection
