"""Schemathesis against the live schema, in-process over WSGI: no 5xx, and every answer matches the schema.

Each operation gets a bounded number of generated requests. The WSGI handler would call
close_old_connections at the start and end of every request, which inside a test's transaction marks the
connection unusable (PostgreSQL and SQLite alike); Django's own test client disconnects it for the same
reason, and so does this test.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 8
SCHEMA = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.fixture
def token(db):
    from api.services import api_client_create
    from tests.api.test_reconciliation_api import exception

    exception()  # something to list, read and work on
    _, token = api_client_create(
        name="Fuzz",
        scopes=["read", "write_documents", "work_exceptions", "run_syncs", "approve_overrides"],
        throttle_rate="100000/minute",
    )
    return token


@pytest.fixture
def in_test_transaction():
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_the_api_keeps_to_its_schema(operation, token, in_test_transaction, monkeypatch):
    # a dry run and a connection test would call remote platforms: not from a fuzzer
    monkeypatch.setattr("sync.preview.profile_preview", lambda *args, **kwargs: [])
    monkeypatch.setattr("connectors.services.connection_check", lambda **kwargs: "healthy")
    headers = {"Authorization": f"Bearer {token}"}

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case):
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)

    check()
