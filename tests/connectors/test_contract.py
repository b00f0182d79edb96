"""One contract for every registered connector: what it declares, it implements; bad input, clear errors."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import (
    OBJECT_TYPES,
    OPERATIONS,
    Connector,
    ConnectorError,
    OAuthConfig,
    RateLimit,
    ValidationError,
)
from connectors.registry import PLATFORMS, connector_class

# operation -> the methods a connector must override to offer it
METHODS = {
    "read": ("parse", "fetch"),
    "list_changes": ("list_changes",),
    "create": ("create", "render"),
    "update": ("update",),
    "void": ("void",),
    "delete": ("delete",),
    "record_payment": ("record_payment",),
    "webhook": ("verify_webhook",),
    "import_file": ("parse_file",),
    "export_file": (),
}
# Platforms Ledgerlink never calls: files come in (csv), or systems call Ledgerlink's REST API (api).
LOCAL = {"csv", "api"}
# Inbound only: documents arrive through Ledgerlink's own API, so nothing is declared as an operation.
INBOUND_ONLY = {"api"}
REMOTE = [slug for slug in sorted(PLATFORMS) if slug not in LOCAL]

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def overrides(cls: type[Connector], name: str) -> bool:
    method = getattr(cls, name, None)
    return method is not None and method.__qualname__.split(".")[0] != "Connector"


@pytest.mark.parametrize("slug", sorted(PLATFORMS))
def test_the_registry_maps_each_slug_to_its_connector(slug):
    cls = connector_class(slug)
    assert issubclass(cls, Connector)
    assert cls.platform == slug
    assert cls.label.strip()


@pytest.mark.parametrize("slug", sorted(PLATFORMS))
def test_declared_capabilities_are_known_and_implemented(slug):
    cls = connector_class(slug)
    assert cls.capabilities or slug in INBOUND_ONLY, f"{slug} declares no capabilities"
    for object_type, operations in cls.capabilities.items():
        assert isinstance(operations, frozenset)
        assert operations <= set(OPERATIONS), f"{slug}.{object_type}: unknown {operations - set(OPERATIONS)}"
        for operation in operations:
            for method in METHODS[operation]:
                assert overrides(cls, method), f"{slug} offers {object_type}.{operation} without {method}()"


@pytest.mark.parametrize("slug", REMOTE)
def test_remote_platforms_declare_their_url_limits_and_auth(slug):
    cls = connector_class(slug)
    assert cls.default_base_url.startswith("https://")
    assert cls.rate_limits and all(isinstance(limit, RateLimit) for limit in cls.rate_limits)
    assert any(not limit.concurrent for limit in cls.rate_limits)
    assert overrides(cls, "check_credentials")
    if cls.uses_oauth:
        assert isinstance(cls.oauth, OAuthConfig)
        assert cls.oauth.authorize_url.startswith("https://")
        assert cls.oauth.token_url.startswith("https://")
        assert cls.oauth.scopes


def _readable(slug: str) -> list[str]:
    cls = connector_class(slug)
    return [name for name in OBJECT_TYPES if cls.supports(name, "read")]


@pytest.mark.parametrize(("slug", "object_type"), [(s, o) for s in REMOTE for o in _readable(s)])
def test_an_empty_record_is_refused_with_a_validation_error(slug, object_type):
    with pytest.raises(ValidationError) as caught:
        connector_class(slug).parse(object_type, {})
    assert str(caught.value)


@pytest.mark.parametrize(("slug", "object_type"), [(s, o) for s in REMOTE for o in _readable(s)])
def test_any_json_either_parses_or_is_refused_with_a_connector_error(slug, object_type):
    cls = connector_class(slug)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.dictionaries(st.text(max_size=15), json_values, max_size=8))
    def check(raw):
        with contextlib.suppress(ConnectorError):
            cls.parse(object_type, raw)

    check()
