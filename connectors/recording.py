"""Every request a connector makes is recorded, with its secrets redacted, against the sync attempt that
made it. The sync engine says which attempt is running with `recording_for(attempt_id)`; HTTP made
outside any attempt (a "Test connection" click, the OAuth callback) is recorded against the connection
alone.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

logger = logging.getLogger(__name__)

_current_attempt: contextvars.ContextVar[int | None] = contextvars.ContextVar("attempt", default=None)

MAX_BODY = 64 * 1024
REDACTED = "[redacted]"
# header and field names whose values never reach the log
SECRET_NAME = re.compile(
    r"authorization|cookie|token|secret|password|api[-_]?key|signature|client[-_]?assertion|code_verifier"
    r"|^code$",
    re.IGNORECASE,
)


@contextlib.contextmanager
def recording_for(attempt_id: int | None) -> Iterator[None]:
    marker = _current_attempt.set(attempt_id)
    try:
        yield
    finally:
        _current_attempt.reset(marker)


def current_attempt_id() -> int | None:
    return _current_attempt.get()


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: REDACTED if SECRET_NAME.search(name) else str(value) for name, value in headers.items()}


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED if SECRET_NAME.search(str(key)) else _redact_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact_json(item) for item in value]
    return value


def redact_body(body: bytes | str | None) -> str:
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        text = json.dumps(_redact_json(json.loads(text)), ensure_ascii=False)
    except ValueError:
        if "=" in text and "\n" not in text.strip():  # form-encoded
            pairs = parse_qsl(text, keep_blank_values=True)
            if pairs:
                text = urlencode([(k, REDACTED if SECRET_NAME.search(k) else v) for k, v in pairs], safe="[]")
    if len(text) > MAX_BODY:
        text = text[:MAX_BODY] + f"... [{len(text) - MAX_BODY} more characters]"
    return text


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = urlencode(
        [
            (k, REDACTED if SECRET_NAME.search(k) else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="[]",
    )
    return urlunsplit(parts._replace(query=query))


def exchange_record(
    *,
    connection_id: int,
    method: str,
    url: str,
    request_headers: Mapping[str, str],
    request_body: bytes | str | None,
    status: int | None = None,
    response_headers: Mapping[str, str] | None = None,
    response_body: bytes | str | None = None,
    error: str = "",
    retry: int = 0,
    duration_ms: int = 0,
) -> None:
    from connectors.models import HttpExchange

    try:
        HttpExchange.objects.create(
            connection_id=connection_id,
            attempt_id=current_attempt_id(),
            method=method,
            url=redact_url(url),
            request_headers=redact_headers(request_headers),
            request_body=redact_body(request_body),
            status=status,
            response_headers=redact_headers(response_headers or {}),
            response_body=redact_body(response_body),
            error=error,
            retry=retry,
            duration_ms=duration_ms,
        )
    except Exception:  # the log must never break the request it describes
        logger.exception("could not record the HTTP exchange %s %s", method, redact_url(url))
