"""Shared Xero test fixtures: payloads in Xero's documented shapes, a connection to a fake tenant,
a connector without waits, and the official OpenAPI document (read from ../shared/vendor-specs,
loaded once per session)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.xero.client import XeroClient
from connectors.xero.connector import XeroConnector
from tests.factories import ConnectionFactory

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "xero"
API = "https://api.xero.com/api.xro/2.0"
TENANT = "fe79f7dd-b6d4-4a92-ba7b-538af6289c58"
WEBHOOK_KEY = "ledgerlink-test-webhook-key"


def repo_root() -> Path:
    here = Path(__file__).resolve()
    return next(parent for parent in here.parents if (parent / "manage.py").exists())


VENDOR_SPECS = repo_root().parent / "shared" / "vendor-specs" / "xero"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def vendor_file(name: str) -> Path:
    path = VENDOR_SPECS / name
    if not path.exists():
        pytest.skip(f"the vendor specs are not here ({path})")
    return path


class NoLimits:
    """Admits everything at once (the shared limiter has its own tests); remembers 429 penalties."""

    limits = ()

    def __init__(self) -> None:
        self.penalties: list[float] = []

    def acquire(self) -> str:
        return "slot"

    def release(self, token: str) -> None:
        pass

    def penalise(self, seconds: float) -> None:
        self.penalties.append(seconds)


@pytest.fixture
def connection(db):
    token = {"access_token": "access-1", "refresh_token": "refresh-1", "expires_at": int(time.time()) + 3600}
    return ConnectionFactory(
        platform="xero",
        base_url=API,
        credentials={
            "client_id": "app",
            "client_secret": "app-secret",
            "token": token,
            "webhook_key": WEBHOOK_KEY,
        },
        options={"tenant_id": TENANT},
    )


@pytest.fixture
def connector(connection):
    made = XeroConnector(connection)
    waits: list[float] = []
    made.client = XeroClient(connection, limiter=NoLimits(), sleep=waits.append)
    made.client.waits = waits
    return made


@pytest.fixture
def client(connector):
    return connector.client


# --- the official OpenAPI document -------------------------------------------------------------------
_LOADED: dict[str, Any] = {}


def _accounting_spec() -> dict[str, Any]:
    """The document, parsed once per session; skips the calling test when the vendor specs are absent."""
    if "spec" not in _LOADED:
        with vendor_file("xero_accounting.yaml").open("rb") as handle:
            _LOADED["spec"] = yaml.load(handle, Loader=yaml.CSafeLoader)
    return _LOADED["spec"]


@pytest.fixture(scope="session")
def accounting_spec() -> dict[str, Any]:
    return _accounting_spec()


def _schema_at(spec: dict[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _unknown_fields(spec: dict[str, Any], schema: Mapping[str, Any], value: Any, path: str) -> list[str]:
    """Keys the document does not declare (its schemas allow anything extra, so typos would pass)."""
    schema = _schema_at(spec, schema)
    found = []
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key not in schema["properties"]:
                found.append(f"{path}.{key}")
            else:
                found += _unknown_fields(spec, schema["properties"][key], item, f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += _unknown_fields(spec, schema["items"], item, f"{path}[{index}]")
    return found


@pytest.fixture(scope="session")
def request_validator():
    """validate(schema name, body): jsonschema against components/schemas (refs resolved inside the
    document), plus a check that every key is one the schema declares. Without the vendor specs the
    test is skipped at that call, after the checks before it have run."""
    from jsonschema import Draft7Validator, FormatChecker
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    uri = "urn:xero:accounting"
    registries: list[Registry] = []

    def validate(name: str, body: Any) -> None:
        spec = _accounting_spec()
        if not registries:
            resource = Resource.from_contents(spec, default_specification=DRAFT7)
            registries.append(Registry().with_resource(uri, resource))
        schema = {"$ref": f"{uri}#/components/schemas/{name}"}
        validator = Draft7Validator(schema, registry=registries[0], format_checker=FormatChecker())
        errors = sorted(validator.iter_errors(body), key=lambda error: list(error.absolute_path))
        assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
        unknown = _unknown_fields(spec, {"$ref": f"#/components/schemas/{name}"}, body, name)
        assert not unknown, f"fields the Xero schema does not declare: {unknown}"

    return validate
