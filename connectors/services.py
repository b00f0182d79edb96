"""Writes on connections: health checks and what the OAuth flow stores."""

from __future__ import annotations

from django.utils import timezone

from connectors.base import AuthNeededError, ConnectorError, RetryableError
from connectors.models import Connection


def connection_check(*, connection: Connection) -> Connection.Health:
    """Call the platform with the stored credentials and record the connection's health.

    healthy: the call worked; needs re-authorisation: the credentials were refused or are missing;
    degraded: the platform could not be reached or answered with an error; disabled stays disabled.
    """
    if connection.health == Connection.Health.DISABLED:
        return connection.health
    try:
        connection.connector().check_credentials()
    except AuthNeededError as exc:
        health, error = Connection.Health.NEEDS_REAUTH, str(exc)
    except RetryableError as exc:
        health, error = Connection.Health.DEGRADED, str(exc)
    except ConnectorError as exc:
        health, error = Connection.Health.DEGRADED, str(exc)
    except NotImplementedError:
        health, error = Connection.Health.HEALTHY, ""  # nothing to call (file-based platforms)
    else:
        health, error = Connection.Health.HEALTHY, ""
    connection.refresh_from_db(fields=["credentials", "options"])
    connection.health = health
    connection.last_error = error[:2000]
    connection.last_checked_at = timezone.now()
    connection._change_reason = "connection test"
    connection.save(update_fields=["health", "last_error", "last_checked_at", "updated_at"])
    return health
