"""The HTTP layer: retries with backoff, Retry-After, uncertain writes, timeouts, recording, redaction."""

from __future__ import annotations

import json

import pytest
import requests
import responses

from connectors.base import (
    AuthNeededError,
    ConflictError,
    NotFoundError,
    RateLimit,
    RetryableError,
    UncertainError,
    ValidationError,
)
from connectors.http import HttpClient, retry_after_seconds
from connectors.models import HttpExchange
from connectors.ratelimit import RateLimiter
from connectors.recording import recording_for
from tests.factories import ConnectionFactory, SyncAttemptFactory

BASE = "https://api.example.test/v1"


class ExampleClient(HttpClient):
    platform = "example"
    default_base_url = BASE
    max_attempts = 4

    def auth_headers(self):
        return {"Authorization": "Bearer sekrit-token"}


class NoLimits(RateLimiter):
    def __init__(self):
        self.limits = ()
        self.penalties = []

    def acquire(self):
        return "t"

    def release(self, token):
        pass

    def penalise(self, seconds):
        self.penalties.append(seconds)


@pytest.fixture
def client(db):
    waits: list[float] = []
    limiter = NoLimits()
    made = ExampleClient(ConnectionFactory(), sleep=waits.append, limiter=limiter)
    made.waits = waits
    made.penalties = limiter.penalties
    return made


@responses.activate
def test_a_success_is_returned_and_recorded(client):
    responses.get(f"{BASE}/things", json={"ok": True})
    assert client.request("GET", "things").json() == {"ok": True}
    exchange = HttpExchange.objects.get()
    assert (exchange.method, exchange.status, exchange.retry) == ("GET", 200, 0)
    assert json.loads(exchange.response_body) == {"ok": True}


@responses.activate
def test_5xx_on_a_read_is_retried_with_growing_waits(client):
    responses.get(f"{BASE}/things", status=503)
    responses.get(f"{BASE}/things", status=502)
    responses.get(f"{BASE}/things", status=500)
    responses.get(f"{BASE}/things", json={"ok": True})
    assert client.request("GET", "things").status_code == 200
    assert len(client.waits) == 3
    # exponential: each wait's floor doubles (0.5, 1, 2) plus up to 0.5 s of jitter
    for wait, floor in zip(client.waits, (0.5, 1.0, 2.0), strict=True):
        assert floor <= wait <= floor + 0.5
    assert list(HttpExchange.objects.order_by("id").values_list("retry", flat=True)) == [0, 1, 2, 3]


@responses.activate
def test_retries_stop_after_max_attempts_and_raise_retryable(client):
    responses.get(f"{BASE}/things", status=503)
    with pytest.raises(RetryableError):
        client.request("GET", "things")
    assert len(responses.calls) == ExampleClient.max_attempts


@responses.activate
def test_429_waits_at_least_retry_after_and_blocks_the_key(client):
    responses.get(f"{BASE}/things", status=429, headers={"Retry-After": "7"})
    responses.get(f"{BASE}/things", json={})
    client.request("GET", "things")
    assert client.waits[0] >= 7
    assert client.penalties == [7.0]


@responses.activate
def test_a_retry_after_longer_than_the_inline_limit_is_not_slept_through(client):
    responses.get(f"{BASE}/things", status=429, headers={"Retry-After": "3600"})
    with pytest.raises(RetryableError) as caught:
        client.request("GET", "things")
    assert caught.value.retry_after == 3600
    assert client.waits == []


@responses.activate
def test_a_write_answered_with_5xx_is_uncertain_and_not_repeated(client):
    responses.post(f"{BASE}/things", status=500)
    with pytest.raises(UncertainError):
        client.request("POST", "things", json={"a": 1})
    assert len(responses.calls) == 1


@responses.activate
def test_an_idempotent_write_is_retried_on_5xx(client):
    responses.post(f"{BASE}/things", status=500)
    responses.post(f"{BASE}/things", json={"id": 1})
    assert client.request("POST", "things", json={}, idempotent=True).json() == {"id": 1}


@responses.activate
def test_a_write_rate_limited_with_429_is_retried_because_it_was_refused(client):
    responses.post(f"{BASE}/things", status=429)
    responses.post(f"{BASE}/things", json={"id": 1})
    assert client.request("POST", "things", json={}).json() == {"id": 1}


@responses.activate
def test_a_read_timeout_on_a_write_is_uncertain(client):
    responses.post(f"{BASE}/things", body=requests.ReadTimeout("read timed out"))
    with pytest.raises(UncertainError):
        client.request("POST", "things", json={})
    exchange = HttpExchange.objects.get()
    assert exchange.status is None and "ReadTimeout" in exchange.error


@responses.activate
def test_a_read_timeout_on_a_read_is_retried(client):
    responses.get(f"{BASE}/things", body=requests.ReadTimeout("read timed out"))
    responses.get(f"{BASE}/things", json={})
    assert client.request("GET", "things").status_code == 200


@responses.activate
def test_a_refused_connection_is_retried_even_for_a_write(client):
    responses.post(f"{BASE}/things", body=requests.ConnectionError("Connection refused"))
    responses.post(f"{BASE}/things", json={"id": 2})
    assert client.request("POST", "things", json={}).json() == {"id": 2}


def test_every_request_carries_a_timeout(client, monkeypatch):
    seen = {}

    def fake_send(prepared, **kwargs):
        seen.update(kwargs)
        response = requests.Response()
        response.status_code = 200
        response._content = b"{}"
        return response

    monkeypatch.setattr(client.session, "send", fake_send)
    client.request("GET", "things")
    assert seen["timeout"] == ExampleClient.timeout


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthNeededError), (404, NotFoundError), (409, ConflictError), (400, ValidationError)],
)
@responses.activate
def test_client_errors_are_typed_and_not_retried(client, status, error):
    responses.get(f"{BASE}/things", status=status, json={"message": "no"})
    with pytest.raises(error):
        client.request("GET", "things")
    assert len(responses.calls) == 1


@responses.activate
def test_a_401_refreshes_once_and_repeats(client, monkeypatch):
    refreshed = []
    monkeypatch.setattr(client, "refresh_auth", lambda: refreshed.append(1) or True)
    responses.get(f"{BASE}/things", status=401)
    responses.get(f"{BASE}/things", json={"ok": 1})
    assert client.request("GET", "things").json() == {"ok": 1}
    assert refreshed == [1]


@responses.activate
def test_secrets_are_redacted_in_the_log(client):
    responses.post(f"{BASE}/token", json={"access_token": "tok-abc", "refresh_token": "tok-def", "n": 1})
    client.request(
        "POST",
        "token?api_key=k1&page=2",
        data={"client_secret": "s", "grant_type": "refresh_token"},
        idempotent=True,
    )
    exchange = HttpExchange.objects.get()
    logged = json.dumps(
        [exchange.url, exchange.request_headers, exchange.request_body, exchange.response_body]
    )
    for secret in ("sekrit-token", "tok-abc", "tok-def", "k1", "client_secret=s&"):
        assert secret not in logged
    assert "page=2" in exchange.url
    assert json.loads(exchange.response_body)["n"] == 1


@responses.activate
def test_exchanges_are_recorded_against_the_running_attempt(client):
    attempt = SyncAttemptFactory()
    responses.get(f"{BASE}/things", json={})
    with recording_for(attempt.pk):
        client.request("GET", "things")
    client.request("GET", "things")
    assert list(HttpExchange.objects.order_by("id").values_list("attempt_id", flat=True)) == [
        attempt.pk,
        None,
    ]


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_seconds("12") == 12
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


@responses.activate
def test_the_limiter_is_consulted_before_every_request(db):
    limiter = RateLimiter("test:one", (RateLimit("second", 2, 1.0),), sleep=lambda s: None)
    calls = []
    original = limiter.acquire

    def counting():
        calls.append(1)
        return original()

    limiter.acquire = counting
    client = ExampleClient(ConnectionFactory(), limiter=limiter, sleep=lambda s: None)
    responses.get(f"{BASE}/things", status=503)
    responses.get(f"{BASE}/things", json={})
    client.request("GET", "things")
    assert len(calls) == 2
