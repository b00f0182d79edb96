"""`Idempotency-Key` on writes: the first request with a key runs, every retry gets its answer.

1. The key is reserved first, in a transaction of its own (unique per caller and key), so a concurrent
   retry finds it taken and is told to wait (409) instead of running the write a second time.
2. The write and the stored answer commit together: an answer is on record exactly when its write is.
   A reservation whose run died without answering (nothing committed) can be taken over after
   API_IDEMPOTENCY_LOCK_SECONDS; the answer is stored only by the run that still holds it.
3. A retry with the same body (and method and path) gets the stored status and body with
   `Idempotent-Replayed: true`; another body with the same key is refused (422).
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from api.errors import ApiError
from api.models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEPT_HEADERS = ("Location",)
State = IdempotencyKey.State


def request_digest(request: Request) -> str:
    try:
        data = request.data
    except Exception:
        data = None
    if hasattr(data, "lists"):
        data = {key: values for key, values in data.lists()}
    body = json.dumps(data, sort_keys=True, cls=JSONEncoder, separators=(",", ":"))
    text = "\x1f".join([request.method or "", request.path, body])
    return hashlib.sha256(text.encode()).hexdigest()


def _key_of(request: Request) -> str | None:
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > 255:
        raise ApiError(
            f"{HEADER} must be 1 to 255 characters, got {len(key)}.",
            code="invalid_idempotency_key",
            errors=[{"field": HEADER, "message": "1 to 255 characters", "value": raw[:300]}],
        )
    return key


def idempotency_reserve(*, user: Any, key: str, request: Request, owner: str) -> tuple[IdempotencyKey, bool]:
    """Reserve `key` for this run. Returns (row, replay): replay is True when the row holds an answer.

    Raises ApiError 422 when the key was used for another request, 409 while its first run is going on.
    """
    digest = request_digest(request)
    for _ in range(3):
        now = timezone.now()
        try:
            with transaction.atomic():
                row = IdempotencyKey.objects.create(
                    user=user,
                    key=key,
                    method=request.method or "",
                    path=request.path[:500],
                    request_hash=digest,
                    owner=owner,
                    locked_at=now,
                    expires_at=now + timedelta(hours=settings.API_IDEMPOTENCY_TTL_HOURS),
                )
            return row, False
        except IntegrityError:
            pass
        row = IdempotencyKey.objects.filter(user=user, key=key).first()
        if row is None:
            continue  # released between our insert and our read: try again
        if row.expires_at <= now:
            IdempotencyKey.objects.filter(pk=row.pk, expires_at=row.expires_at).delete()
            continue
        if row.request_hash != digest:
            raise ApiError(
                f"This {HEADER} was used with a different request ({row.method} {row.path}, another body); "
                "use a new key for a new request.",
                code="idempotency_key_reused",
                status_code=422,
                errors=[{"field": HEADER, "message": "already used for a different request", "value": key}],
            )
        if row.state == State.COMPLETED:
            return row, True
        stale = now - timedelta(seconds=settings.API_IDEMPOTENCY_LOCK_SECONDS)
        if row.locked_at < stale and IdempotencyKey.objects.filter(
            pk=row.pk, state=State.IN_PROGRESS, locked_at=row.locked_at
        ).update(owner=owner, locked_at=now):
            row.owner, row.locked_at = owner, now
            return row, False
        raise ApiError(
            f"A request with this {HEADER} is still being processed; retry it later for its answer.",
            code="idempotency_in_progress",
            status_code=409,
        )
    raise ApiError(
        f"This {HEADER} is changing hands; retry.", code="idempotency_in_progress", status_code=409
    )


def _store(row: IdempotencyKey, owner: str, response: Response) -> None:
    # JSON text, ASCII-escaped: a NUL or an odd code point the caller sent back in an error cannot break it
    body = json.dumps(response.data, cls=JSONEncoder) if response.data is not None else ""
    headers = {name: response[name] for name in KEPT_HEADERS if response.has_header(name)}
    stored = IdempotencyKey.objects.filter(pk=row.pk, owner=owner, state=State.IN_PROGRESS).update(
        state=State.COMPLETED,
        response_status=response.status_code,
        response_body=body,
        response_headers=headers,
    )
    if not stored:
        # Another run took the key over (this one looked dead): its answer wins, this write rolls back.
        raise ApiError(
            f"A retry with this {HEADER} took over the request; retry it for its answer.",
            code="idempotency_in_progress",
            status_code=409,
        )


def _release(row: IdempotencyKey, owner: str) -> None:
    IdempotencyKey.objects.filter(pk=row.pk, owner=owner, state=State.IN_PROGRESS).delete()


def replay_response(row: IdempotencyKey) -> Response:
    response = Response(
        json.loads(row.response_body) if row.response_body else None, status=row.response_status
    )
    for name, value in (row.response_headers or {}).items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


class _Unstored(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def idempotent(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Wrap a write handler of an APIView: honour `Idempotency-Key` when the request carries one."""

    @functools.wraps(handler)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = _key_of(request)
        if key is None:
            return handler(view, request, *args, **kwargs)
        owner = uuid.uuid4().hex
        row, replay = idempotency_reserve(user=request.user, key=key, request=request, owner=owner)
        if replay:
            return replay_response(row)
        try:
            with transaction.atomic():
                try:
                    with transaction.atomic():
                        response = handler(view, request, *args, **kwargs)
                except Exception as exc:
                    response = view.handle_exception(exc)
                if response.status_code >= 500:
                    raise _Unstored(response)
                _store(row, owner, response)
        except _Unstored as unstored:
            _release(row, owner)  # a server error is not an answer: a retry may run again
            return unstored.response
        except BaseException:
            _release(row, owner)
            raise
        return response

    return wrapper


def idempotency_keys_purge() -> int:
    """Delete expired keys; returns how many."""
    deleted, _ = IdempotencyKey.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
