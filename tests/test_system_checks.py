"""Django's system checks: every admin, model and URL declaration is valid, and the deploy checks are
clean with production settings (`manage.py check --deploy`, as the README promises)."""

from __future__ import annotations

from django.core.management import call_command
from django.test import override_settings


def test_system_checks_pass():
    call_command("check", fail_level="WARNING")


@override_settings(
    DEBUG=False,
    SECRET_KEY="k3Jx9vQ2mR7tW1pZ5sY8bN4cH6fL0aE3uG7iO2dV9wK5qT1xM8yB4nC6",
    ALLOWED_HOSTS=["books.example.com"],
    SECURE_SSL_REDIRECT=True,
    SESSION_COOKIE_SECURE=True,
    CSRF_COOKIE_SECURE=True,
    SECURE_HSTS_SECONDS=31536000,
    SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
    SECURE_HSTS_PRELOAD=True,
)
def test_deploy_checks_are_clean_with_production_settings(monkeypatch):
    # the browser tests allow sync ORM calls from Playwright's event loop; a deployment never does
    monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE", raising=False)
    call_command("check", deploy=True, fail_level="WARNING")
