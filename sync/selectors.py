"""Reads (and the one get-or-create the CSV commands need)."""

from __future__ import annotations

from connectors.models import Connection
from sync.models import Binding


def csv_connection_for(*, name: str) -> Connection:
    """The CSV connection called `name`, or a new unsaved one (saved once a file has been read)."""
    connection = Connection.objects.filter(name=name).first()
    if connection is None:
        return Connection(name=name, platform="csv", role=Connection.Role.SOURCE)
    if connection.platform != "csv":
        raise ValueError(f"connection {name!r} is a {connection.platform} connection, not a CSV one")
    return connection


def document_bindings(*, object_type: str, object_id: int) -> list[Binding]:
    """Every copy of a document: where it came from first, then where it was sent."""
    return list(
        Binding.objects.filter(object_type=object_type, object_id=object_id)
        .select_related("connection")
        .order_by("-is_origin", "first_seen_at")
    )
