"""OAuth2 authorization-code flow and token refresh for connections (Authlib does the protocol).

Credentials of an OAuth connection (encrypted at rest):
    {"client_id": ..., "client_secret": ..., "token": {"access_token", "refresh_token", "expires_at", ...},
     plus the platform's webhook secret}
The callback's extra parameters (QuickBooks `realmId`) and what the connector learns after consent (Xero
tenant id) go to `Connection.options`, where people can see them.

Refresh happens once at a time per connection: under a lease (connectors.locks) the token is read
again, and if another worker refreshed it meanwhile, that token is used. The rotated refresh token is
saved in the same transaction, under the connection's row lock, as the new access token, so the stored
pair is always one the provider issued together.

Endpoints default to the platform's (`Connector.oauth`); `options["oauth_authorize_url"]` and
`options["oauth_token_url"]` point a connection elsewhere (the platform's sandbox environment).
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from django.db import transaction
from django.utils import timezone

from connectors.base import AuthNeededError, OAuthConfig, RetryableError
from connectors.http import HttpClient
from connectors.locks import lease
from connectors.recording import exchange_record

REFRESH_MARGIN = 120  # seconds before expiry at which a token counts as expired
TIMEOUT = (5.0, 30.0)


def oauth_config(connection: Any) -> OAuthConfig:
    config = connection.connector().oauth
    if config is None:
        raise AuthNeededError(f"{connection.platform} does not use OAuth")
    return config


def _endpoints(connection: Any) -> tuple[str, str]:
    config = oauth_config(connection)
    options = connection.options or {}
    return (
        options.get("oauth_authorize_url") or config.authorize_url,
        options.get("oauth_token_url") or config.token_url,
    )


def _session(connection: Any, redirect_uri: str | None = None) -> OAuth2Session:
    config = oauth_config(connection)
    credentials = connection.credentials or {}
    if not credentials.get("client_id") or not credentials.get("client_secret"):
        raise AuthNeededError(
            f"connection {connection.name!r} has no client_id/client_secret: enter the app's keys first"
        )
    return OAuth2Session(
        client_id=credentials["client_id"],
        client_secret=credentials["client_secret"],
        scope=" ".join(config.scopes),
        redirect_uri=redirect_uri,
        token_endpoint_auth_method=config.token_endpoint_auth_method,
    )


def authorization_url(connection: Any, *, redirect_uri: str) -> tuple[str, str]:
    """The provider's consent page for this connection and the `state` to check on the way back."""
    authorize_url, _ = _endpoints(connection)
    state = secrets.token_urlsafe(24)
    extra = oauth_config(connection).extra_authorize_params
    url, _ = _session(connection, redirect_uri).create_authorization_url(authorize_url, state=state, **extra)
    return url, state


def _stamp(token: dict[str, Any]) -> dict[str, Any]:
    token = dict(token)
    if "expires_at" not in token and token.get("expires_in"):
        token["expires_at"] = int(time.time()) + int(token["expires_in"])
    return token


def _record(connection: Any, token_url: str, status: int | None, error: str = "") -> None:
    exchange_record(
        connection_id=connection.pk,
        method="POST",
        url=token_url,
        request_headers={"Authorization": "Basic"},
        request_body="grant_type=[token request]",
        status=status,
        error=error,
    )


def authorization_complete(connection: Any, *, redirect_uri: str, params: dict) -> None:
    """Exchange the callback's code for tokens and store them (and the callback's extra parameters)."""
    _, token_url = _endpoints(connection)
    session = _session(connection, redirect_uri)
    try:
        token = session.fetch_token(token_url, code=params.get("code", ""), timeout=TIMEOUT)
    except OAuthError as exc:
        _record(connection, token_url, 400, f"{exc.error}: {exc.description}")
        raise AuthNeededError(f"the provider refused the authorisation code: {exc.error}") from exc
    except requests.RequestException as exc:
        _record(connection, token_url, None, str(exc))
        raise RetryableError(f"could not reach the token endpoint: {exc}") from exc
    _record(connection, token_url, 200)
    config = oauth_config(connection)
    with transaction.atomic():
        locked = type(connection).objects.select_for_update().get(pk=connection.pk)
        locked.credentials = {**(locked.credentials or {}), "token": _stamp(token)}
        options = dict(locked.options or {})
        for name in config.callback_params:
            if params.get(name):
                options[name] = params[name]
        locked.options = options
        locked.health = locked.Health.HEALTHY
        locked.last_error = ""
        locked.save()
    connection.refresh_from_db()
    connection.connector().after_authorisation()


def _fresh(token: dict[str, Any]) -> bool:
    return (
        bool(token.get("access_token")) and float(token.get("expires_at") or 0) - time.time() > REFRESH_MARGIN
    )


def access_token(connection: Any) -> str:
    token = (connection.credentials or {}).get("token") or {}
    if _fresh(token):
        return token["access_token"]
    return token_refresh(connection)["access_token"]


def token_refresh(connection: Any, *, rejected: str | None = None) -> dict[str, Any]:
    """A usable token, refreshing it if needed; once at a time per connection.

    `rejected` is an access token the platform just refused: it is refreshed even if it looks fresh,
    unless another worker has already replaced it. The refresh runs under a lease on the connection, with
    the token read again inside it; the HTTP call holds no database transaction, and the new access token
    and the rotated refresh token are then saved together under the connection's row lock.
    """
    model = type(connection)
    with lease(f"oauth-refresh:{connection.pk}", ttl=60, wait=45):
        credentials = dict(model.objects.get(pk=connection.pk).credentials or {})
        token = credentials.get("token") or {}
        if _fresh(token) and token.get("access_token") != rejected:
            connection.credentials = credentials
            return token
        if not token.get("refresh_token"):
            failure = AuthNeededError(f"connection {connection.name!r} is not authorised: use Connect")
        else:
            _, token_url = _endpoints(connection)
            try:
                new = _session(connection).refresh_token(
                    token_url, refresh_token=token["refresh_token"], timeout=TIMEOUT
                )
            except OAuthError as exc:
                _record(connection, token_url, 400, f"{exc.error}: {exc.description}")
                failure = AuthNeededError(f"the refresh token was refused ({exc.error}): use Connect again")
            except requests.RequestException as exc:
                _record(connection, token_url, None, str(exc))
                raise RetryableError(f"could not reach the token endpoint: {exc}") from exc
            else:
                _record(connection, token_url, 200)
                token = {**_stamp(new), "refresh_token": new.get("refresh_token") or token["refresh_token"]}
                with transaction.atomic():
                    locked = model.objects.select_for_update().get(pk=connection.pk)
                    locked.credentials = {**(locked.credentials or {}), "token": token}
                    locked.skip_history_when_saving = True  # a refresh is not a configuration change
                    locked.save(update_fields=["credentials", "updated_at"])
                connection.credentials = locked.credentials
                return token
        with transaction.atomic():
            locked = model.objects.select_for_update().get(pk=connection.pk)
            locked.health = locked.Health.NEEDS_REAUTH
            locked.last_error = str(failure)
            locked.last_checked_at = timezone.now()
            locked.save(update_fields=["health", "last_error", "last_checked_at", "updated_at"])
    connection.health = connection.Health.NEEDS_REAUTH
    connection.last_error = str(failure)
    raise failure


class OAuthHttpClient(HttpClient):
    """An HttpClient whose requests carry the connection's OAuth bearer token, refreshed when due."""

    def auth_headers(self) -> dict[str, str]:
        token = access_token(self.connection)
        self._sent().token = token
        return {"Authorization": f"Bearer {token}"}

    def refresh_auth(self) -> bool:
        token_refresh(self.connection, rejected=getattr(self._sent(), "token", None))
        return True

    def _sent(self) -> threading.local:
        """The token this thread sent last: a push's batches share one client across worker threads, and
        a 401 must name the token its own request carried."""
        return self.__dict__.setdefault("_sent_tokens", threading.local())
