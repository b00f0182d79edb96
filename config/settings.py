"""Ledgerlink settings, read from the environment (12-factor).

Every setting is documented in README.md. A bad value stops start-up with an error naming the variable.
An optional `.env` file at the project root is read first (values in the real environment win).
"""

from __future__ import annotations

import re
import secrets
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlparse

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    raw = env.str(name, default=str(default)).strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use true or false")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = env.str(name, default=str(default)).strip()
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env.str(name, default=default).split(",") if item.strip()]


def env_url(name: str, default: str, *, schemes: set[str]) -> str:
    raw = env.str(name, default=default).strip()
    scheme = urlparse(raw).scheme
    if scheme not in schemes:
        allowed = ", ".join(sorted(schemes))
        raise ImproperlyConfigured(f"{name}={raw!r}: scheme {scheme!r} is not one of {allowed}")
    return raw


def _secret_key() -> str:
    """SECRET_KEY from the environment, or one generated once and kept under var/ (embedded default)."""
    configured = env.str("SECRET_KEY", default="").strip()
    if configured:
        if len(configured) < 32:
            raise ImproperlyConfigured("SECRET_KEY is too short: use at least 32 random characters")
        return configured
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
# Comma-separated Fernet keys, newest first; the newest encrypts, all decrypt (rotation).
ENCRYPTION_KEYS = env_list("ENCRYPTION_KEYS", "")

INSTALLED_APPS = [
    "config.apps.LedgerlinkAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "simple_history",
    "rangefilter",
    "connectors",
    "sync",
    "reconciliation",
    "sandbox",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -----------------------------------------------------------------------------------------
DATABASE_URL = env_url(
    "DATABASE_URL",
    f"sqlite:///{VAR_DIR / 'ledgerlink.sqlite3'}",
    schemes={"sqlite", "postgres", "postgresql", "pgsql"},
)
_db = env.db_url_config(DATABASE_URL)
if _db["ENGINE"] == "django.db.backends.sqlite3":
    if _db["NAME"] != ":memory:":
        Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    _db["OPTIONS"] = {
        # IMMEDIATE takes the write lock at BEGIN: concurrent read-then-write transactions queue up
        # instead of failing with "database is locked"; WAL lets readers run beside the writer.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    # Persistent connections: a reconnect per broker poll costs the worker several times its throughput.
    _db["CONN_MAX_AGE"] = env_int("CONN_MAX_AGE", 60, minimum=1)
    _db["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache, locks, rate limits ------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="").strip() or None
if REDIS_URL:
    env_url("REDIS_URL", REDIS_URL, schemes={"redis", "rediss", "unix"})
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "ledgerlink",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- jobs (django-q2, ORM broker: a task stays queued until a worker acknowledges it) ------------------
Q_WORKERS = env_int("Q_WORKERS", 2, minimum=1)
Q_TIMEOUT = env_int("Q_TIMEOUT", 600, minimum=10)
Q_CLUSTER = {
    "name": "ledgerlink",
    "orm": "default",
    "workers": Q_WORKERS,
    # queue_limit == workers keeps the local wait to one task, so retry > 2 * timeout is never hit early.
    "queue_limit": Q_WORKERS,
    "timeout": Q_TIMEOUT,
    "retry": Q_TIMEOUT * 2 + 60,
    "max_attempts": 3,
    "ack_failures": True,
    "catch_up": False,
    "poll": 1,
    "save_limit": 1000,
    "label": "Jobs (django-q2)",
}

# --- auth, i18n, static -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# The company's base currency: amounts at risk are also reported in it.
BASE_CURRENCY = env.str("BASE_CURRENCY", default="GBP").strip().upper()
if len(BASE_CURRENCY) != 3 or not BASE_CURRENCY.isalpha():
    raise ImproperlyConfigured(f"BASE_CURRENCY={BASE_CURRENCY!r} is not an ISO 4217 code")
# A proposed override nobody decided within this many days expires (it must be proposed again).
OVERRIDE_EXPIRY_DAYS = env_int("OVERRIDE_EXPIRY_DAYS", 7, minimum=1)

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
LOGIN_URL = "admin:login"

# --- email --------------------------------------------------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be true")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="ledgerlink@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- HTTPS (turn on behind TLS; `manage.py check --deploy` is clean with these set) ---------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if env_bool("BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO").upper()},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# --- REST API for external systems (/api/v1/, see docs/api.md) ----------------------------------------
# Tokens of API clients: hashed at rest, shown once, no expiry (revoked in the admin), sent as "Bearer".
REST_KNOX = {
    "TOKEN_TTL": None,
    "AUTH_HEADER_PREFIX": "Bearer",
    "TOKEN_PREFIX": "llk_",
    "AUTO_REFRESH": False,
}
# A retried write with the same Idempotency-Key gets the first answer for this many hours.
API_IDEMPOTENCY_TTL_HOURS = env_int("API_IDEMPOTENCY_TTL_HOURS", 24, minimum=1)
# A key whose first request has not answered after this many seconds (its worker died) may run again.
API_IDEMPOTENCY_LOCK_SECONDS = env_int("API_IDEMPOTENCY_LOCK_SECONDS", 300, minimum=10)
# Requests per client, unless the client's own row says otherwise ("N/second|minute|hour|day").
API_DEFAULT_THROTTLE_RATE = env.str("API_DEFAULT_THROTTLE_RATE", default="1200/minute").strip()
if not re.fullmatch(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)", API_DEFAULT_THROTTLE_RATE):
    raise ImproperlyConfigured(
        f"API_DEFAULT_THROTTLE_RATE={API_DEFAULT_THROTTLE_RATE!r} is not a rate like 1200/minute"
    )
API_BULK_MAX_DOCUMENTS = env_int("API_BULK_MAX_DOCUMENTS", 1000, minimum=1)
API_PAGE_SIZE = env_int("API_PAGE_SIZE", 100, minimum=1)
SPECTACULAR_SETTINGS = {
    "TITLE": "Ledgerlink API",
    "DESCRIPTION": "Push invoices, payments and credit notes into Ledgerlink, read sync status and "
    "bindings, run syncs, and work reconciliation exceptions and overrides. See docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "PREPROCESSING_HOOKS": ["api.schema.only_api_endpoints"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ObjectTypeEnum": "sync.models.ObjectType",
        "DocumentTypeEnum": ["invoice", "payment", "credit_note"],
        "SyncJobKindEnum": "sync.models.SyncJob.Kind",
        "SyncJobStateEnum": "sync.models.SyncJob.State",
        "ExceptionKindEnum": "reconciliation.models.ReconciliationException.Kind",
        "ExceptionStateEnum": "reconciliation.models.ReconciliationException.State",
        "OverrideStateEnum": "reconciliation.models.Override.State",
    },
}

# Built-in emulators of QuickBooks Online, Xero and Stripe under /sandbox/<platform>/ (demo and tests).
# Never turn this on in production: the sandboxes accept any client and keep fake books.
SANDBOX_ENABLED = env_bool("SANDBOX_ENABLED", False)
# Address the sandboxes are reached at by the connectors (the demo connections' base URLs).
SANDBOX_BASE_URL = env.str("SANDBOX_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
# The sandboxes' rate-limit periods times this (0.1: "60 a minute" becomes "60 in 6 seconds"), so tests and
# benchmarks meet the real limits in less time. Connections squeeze their side with the option
# `rate_limit_period_scale`.
SANDBOX_RATE_PERIOD_SCALE = env.float("SANDBOX_RATE_PERIOD_SCALE", default=1.0)
# The sandboxes' webhook retry delays times this (the platforms wait from 10 s to 6 h between tries), so a
# demo or a test sees retries and the final give-up in seconds.
SANDBOX_WEBHOOK_DELAY_SCALE = env.float("SANDBOX_WEBHOOK_DELAY_SCALE", default=1.0)

# The sync engine. A pull re-reads this many seconds before its cursor (records stamped out of order or
# written while the last pull ran are not lost; reading one twice costs nothing).
SYNC_PULL_OVERLAP_SECONDS = env_int("SYNC_PULL_OVERLAP_SECONDS", 300, minimum=0)
# A running job renews its lease after every page; a job whose lease ran out has lost its worker.
SYNC_JOB_LEASE_SECONDS = env_int("SYNC_JOB_LEASE_SECONDS", 300, minimum=30)
# A queued job nobody picked up within this many seconds gets its doorbell rung again by the reaper.
SYNC_JOB_REQUEUE_SECONDS = env_int("SYNC_JOB_REQUEUE_SECONDS", 120, minimum=10)
# Batches of creates one push keeps in flight at once, each on its own worker thread and database
# connection; never more than the destination allows at once (Xero 5 calls per tenant, QuickBooks 10 per
# realm). 1 sends them one after another.
SYNC_PUSH_CONCURRENCY = env_int("SYNC_PUSH_CONCURRENCY", 4, minimum=1)
# In daily-summary mode a day is posted only this many minutes after local midnight (late sales make it).
SYNC_SUMMARY_GRACE_MINUTES = env_int("SYNC_SUMMARY_GRACE_MINUTES", 60, minimum=0)

# Incoming webhooks (POST /webhooks/<connection id>/, docs/webhooks.md). A larger body is refused with 413
# before it is read; deliveries older than the retention are deleted by a daily schedule. The retention
# outlasts Stripe's 3 days of retries, so a late retry is still recognised as a duplicate.
WEBHOOK_MAX_BODY_BYTES = env_int("WEBHOOK_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
WEBHOOK_RETENTION_DAYS = env_int("WEBHOOK_RETENTION_DAYS", 30, minimum=4)

# Payment reminders and alerts (docs/reminders.md). Reminders go out daily at this server-local time
# ("HH:MM"; empty: no schedule, run `manage.py send_reminders` yourself). A reminder date missed because no
# run happened is caught up for this many days, then dropped as stale.
REMINDER_SCHEDULE_TIME = env.str("REMINDER_SCHEDULE_TIME", default="08:00").strip()
if REMINDER_SCHEDULE_TIME:
    try:
        _hour, _minute = (int(part) for part in REMINDER_SCHEDULE_TIME.split(":"))
        if not (0 <= _hour < 24 and 0 <= _minute < 60):
            raise ValueError
    except ValueError:
        raise ImproperlyConfigured(
            f"REMINDER_SCHEDULE_TIME={REMINDER_SCHEDULE_TIME!r} is not a time; use HH:MM, e.g. 08:00"
        ) from None
    REMINDER_SCHEDULE_TIME = f"{_hour:02d}:{_minute:02d}"
REMINDER_CATCH_UP_DAYS = env_int("REMINDER_CATCH_UP_DAYS", 7, minimum=1)
# The name reminder emails sign with ({{ company_name }} in the templates).
COMPANY_NAME = env.str("COMPANY_NAME", default="Ledgerlink").strip()
# Integration admins get one digest email of pending alerts every this many minutes.
ALERT_DIGEST_MINUTES = env_int("ALERT_DIGEST_MINUTES", 60, minimum=1)
# Alert when this many exceptions are open at once (0: never).
ALERT_EXCEPTION_THRESHOLD = env_int("ALERT_EXCEPTION_THRESHOLD", 100, minimum=0)


# Reconciliation (docs/reconciliation.md). Tolerances: money in the document's currency; the FX
# tolerance when a copy is in another currency or at another rate; dates in days. Severity of a finding
# follows its amount at risk in BASE_CURRENCY (medium, high and critical from these amounts).
def env_decimal(name: str, default: str, *, minimum: str = "0") -> Decimal:
    raw = env.str(name, default=default).strip()
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if not value.is_finite() or value < Decimal(minimum):
        raise ImproperlyConfigured(f"{name}={raw!r} must be a number of at least {minimum}")
    return value


RECONCILIATION_AMOUNT_TOLERANCE = env_decimal("RECONCILIATION_AMOUNT_TOLERANCE", "0.01")
RECONCILIATION_FX_TOLERANCE_PERCENT = env_decimal("RECONCILIATION_FX_TOLERANCE_PERCENT", "0.5")
RECONCILIATION_DATE_TOLERANCE_DAYS = env_int("RECONCILIATION_DATE_TOLERANCE_DAYS", 0, minimum=0)
RECONCILIATION_SEVERITY_MEDIUM_AMOUNT = env_decimal("RECONCILIATION_SEVERITY_MEDIUM_AMOUNT", "100")
RECONCILIATION_SEVERITY_HIGH_AMOUNT = env_decimal("RECONCILIATION_SEVERITY_HIGH_AMOUNT", "1000")
RECONCILIATION_SEVERITY_CRITICAL_AMOUNT = env_decimal("RECONCILIATION_SEVERITY_CRITICAL_AMOUNT", "10000")
if not (
    RECONCILIATION_SEVERITY_MEDIUM_AMOUNT
    <= RECONCILIATION_SEVERITY_HIGH_AMOUNT
    <= RECONCILIATION_SEVERITY_CRITICAL_AMOUNT
):
    raise ImproperlyConfigured("RECONCILIATION_SEVERITY_*_AMOUNT must rise from MEDIUM to HIGH to CRITICAL")
# A reconciliation of everything runs every this many minutes (0: no schedule).
RECONCILIATION_SCHEDULE_MINUTES = env_int("RECONCILIATION_SCHEDULE_MINUTES", 60, minimum=0)
# A document is not "missing" in a destination until it is this old (the push has had its chance).
RECONCILIATION_MISSING_AFTER_MINUTES = env_int("RECONCILIATION_MISSING_AFTER_MINUTES", 60, minimum=0)
# Documents per page of a run: each page is read with a few queries and written in one transaction.
RECONCILIATION_PAGE_SIZE = env_int("RECONCILIATION_PAGE_SIZE", 2000, minimum=1)

# Password given to demo users that `load_demo` creates (never use the demo users in production).
DEMO_PASSWORD = env.str("DEMO_PASSWORD", default="ledgerlink-demo")
