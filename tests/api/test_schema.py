"""The OpenAPI schema: valid without warnings, served with local docs, and the live API keeps to it."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_the_schema_validates_without_warnings(tmp_path):
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"), stdout=StringIO()
    )
    text = (tmp_path / "s.yaml").read_text()
    assert "Idempotency-Key" in text and "/api/v1/invoices/bulk/" in text and "clientToken" in text


def test_every_write_operation_documents_the_error_shape(client):
    schema = client.get("/api/v1/schema/?format=json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert {"401", "403", "429"} <= set(operation["responses"]), f"{method} {path}"
            if method in ("post", "put", "patch") and not path.endswith("/test/"):
                assert "400" in operation["responses"], f"{method} {path}"


def test_the_docs_are_served_from_local_assets(client):
    page = client.get("/api/v1/docs/").content.decode()
    assert "swagger-ui" in page and "cdn" not in page.lower()
    assert client.get("/api/v1/redoc/").status_code == 200
