"""The one choke point for connector HTTP: timeouts, retries with backoff, rate limits, recording.

A platform's `client.py` subclasses `HttpClient` and fills in three hooks: `auth_headers` (credentials
for one request), `error_for` (the platform's error shapes -> typed errors) and, for OAuth platforms,
`refresh_auth` (called once when a request comes back 401).

Retry rules, in one place:
- a connection that could not be opened, a 429 and (for requests that are safe to repeat) a 5xx or a
  read timeout are retried with exponential backoff and jitter, waiting at least what `Retry-After` says;
- a write that is not idempotent and whose answer was lost (read timeout, connection dropped, 5xx) raises
  `UncertainError` at once: it may have happened, so the caller must look it up before trying again;
- a wait longer than `max_inline_wait` (Xero's daily limit, say) is not slept through: the
  `RetryableError` goes up with its `retry_after` so the job can be rescheduled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from connectors.base import (
    AuthNeededError,
    ConflictError,
    ConnectorError,
    NotFoundError,
    PermanentError,
    RateLimit,
    RetryableError,
    UncertainError,
    ValidationError,
    limits_scaled,
)
from connectors.ratelimit import RateLimiter
from connectors.recording import exchange_record

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
USER_AGENT = "Ledgerlink/0.1 (+https://github.com/ledgerlink)"


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


class HttpClient:
    platform: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""
    rate_limits: ClassVar[tuple[RateLimit, ...]] = ()
    timeout: ClassVar[tuple[float, float]] = (5.0, 30.0)  # connect, read
    max_attempts: ClassVar[int] = 5
    backoff: ClassVar[float] = 0.5  # first wait in seconds, doubled each retry
    backoff_cap: ClassVar[float] = 30.0
    max_inline_wait: ClassVar[float] = 60.0

    def __init__(
        self,
        connection: Any,
        *,
        session: requests.Session | None = None,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.connection = connection
        self.base_url = (connection.base_url or self.default_base_url).rstrip("/")
        self.session = session or requests.Session()
        self.sleep = sleep
        self.limiter = limiter or RateLimiter(
            self.limiter_key(), self.scaled(self.rate_limits), sleep=sleep, max_wait=self.max_inline_wait
        )

    def scaled(self, limits: tuple[RateLimit, ...]) -> tuple[RateLimit, ...]:
        """The platform's limits, squeezed into shorter periods when the connection's
        `rate_limit_period_scale` option says so (sandboxes and benchmarks only)."""
        options = getattr(self.connection, "options", None) or {}
        return limits_scaled(limits, float(options.get("rate_limit_period_scale", 1)))

    # --- hooks ----------------------------------------------------------------------------------------
    def limiter_key(self) -> str:
        """Whose limits these are; per connection unless the platform counts per company/tenant."""
        return f"{self.platform}:{self.connection.pk}"

    def auth_headers(self) -> dict[str, str]:
        return {}

    def refresh_auth(self) -> bool:
        """Called once after a 401: return True when new credentials are worth one more try."""
        return False

    def error_for(self, response: requests.Response) -> ConnectorError | None:
        """Map an answer to a typed error (None when it is a success). Platforms refine this."""
        status = response.status_code
        if status < 400:
            return None
        message = f"{self.platform} answered {status}: {response.text[:500]}"
        if status == 429:
            return RetryableError(
                message, retry_after=retry_after_seconds(response.headers.get("Retry-After"))
            )
        if status >= 500:
            return RetryableError(
                message, retry_after=retry_after_seconds(response.headers.get("Retry-After"))
            )
        if status == 401:
            return AuthNeededError(message)
        if status == 404:
            return NotFoundError(message)
        if status in (409, 412):
            return ConflictError(message)
        if status in (400, 422):
            return ValidationError(message)
        return PermanentError(message)

    # --- the request ----------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> requests.Response:
        """Send one request, retrying what is safe to retry; returns a 2xx/3xx response or raises.

        `idempotent`: repeating the request cannot do the work twice (GET, or a write carrying an
        idempotency key the platform honours). Defaults to True for safe methods only.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in SAFE_METHODS
        tries = {"n": 0}

        def send() -> requests.Response:
            retry = tries["n"]
            tries["n"] += 1
            response = self._send(method, path, params, json, data, headers, idempotent, retry)
            if response.status_code == 401 and self.refresh_auth():
                response = self._send(method, path, params, json, data, headers, idempotent, retry)
            error = self.error_for(response)
            if error is None:
                return response
            if isinstance(error, RetryableError) and response.status_code == 429:
                self.limiter.penalise(error.retry_after or self.backoff)
            elif isinstance(error, RetryableError) and not idempotent:
                raise UncertainError(str(error), retry_after=error.retry_after) from error
            raise error

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(self._should_retry),
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(send)

    def _should_retry(self, exc: BaseException) -> bool:
        if not isinstance(exc, RetryableError) or isinstance(exc, UncertainError):
            return False
        return exc.retry_after is None or exc.retry_after <= self.max_inline_wait

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(multiplier=self.backoff, max=self.backoff_cap, jitter=self.backoff)(
            state
        )
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        return max(backoff, retry_after or 0.0)

    def _send(
        self,
        method: str,
        path: str,
        params: Any,
        json: Any,
        data: Any,
        headers: Mapping[str, str] | None,
        idempotent: bool,
        retry: int,
    ) -> requests.Response:
        all_headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **self.auth_headers()}
        all_headers.update(headers or {})
        prepared = self.session.prepare_request(
            requests.Request(method, self.url(path), params=params, json=json, data=data, headers=all_headers)
        )
        token = self.limiter.acquire()
        started = time.monotonic()
        try:
            response = self.session.send(prepared, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            elapsed = int((time.monotonic() - started) * 1000)
            self._record(prepared, None, retry, elapsed, error=f"{type(exc).__name__}: {exc}")
            raise self._transport_error(exc, idempotent) from exc
        finally:
            self.limiter.release(token)
        self._record(prepared, response, retry, int((time.monotonic() - started) * 1000))
        return response

    def _transport_error(self, exc: requests.RequestException, idempotent: bool) -> ConnectorError:
        never_sent = isinstance(exc, requests.ConnectTimeout) or (
            isinstance(exc, requests.ConnectionError) and _refused(exc)
        )
        if never_sent or idempotent:
            return RetryableError(f"{self.platform}: {type(exc).__name__}: {exc}")
        return UncertainError(
            f"{self.platform}: no answer to a write ({type(exc).__name__}); it may have happened"
        )

    def _record(
        self,
        prepared: requests.PreparedRequest,
        response: requests.Response | None,
        retry: int,
        duration_ms: int,
        *,
        error: str = "",
    ) -> None:
        exchange_record(
            connection_id=self.connection.pk,
            method=prepared.method or "",
            url=prepared.url or "",
            request_headers=dict(prepared.headers),
            request_body=prepared.body,
            status=response.status_code if response is not None else None,
            response_headers=dict(response.headers) if response is not None else None,
            response_body=response.content if response is not None else None,
            error=error,
            retry=retry,
            duration_ms=duration_ms,
        )


def _refused(exc: requests.ConnectionError) -> bool:
    """True when the connection was never established (so the request never reached the platform)."""
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    name = type(reason).__name__
    return name in {"NewConnectionError", "NameResolutionError", "ConnectTimeoutError"} or (
        "Connection refused" in str(exc) or "Name or service not known" in str(exc)
    )
