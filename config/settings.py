"""Ledgerlink settings, read from the environment (12-factor).

Every setting is documented in README.md. A bad value stops start-up with an error naming the variable.
An optional `.env` file at the project root is read first (values in the real environment win).
"""

from __future__ import annotations

import secrets
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
    "django_q",
    "simple_history",
    "rangefilter",
    "connectors",
    "sync",
    "reconciliation",
    "sandbox",
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

# The sync engine. A pull re-reads this many seconds before its cursor (records stamped out of order or
# written while the last pull ran are not lost; reading one twice costs nothing).
SYNC_PULL_OVERLAP_SECONDS = env_int("SYNC_PULL_OVERLAP_SECONDS", 300, minimum=0)
# A running job renews its lease after every page; a job whose lease ran out has lost its worker.
SYNC_JOB_LEASE_SECONDS = env_int("SYNC_JOB_LEASE_SECONDS", 300, minimum=30)
# A queued job nobody picked up within this many seconds gets its doorbell rung again by the reaper.
SYNC_JOB_REQUEUE_SECONDS = env_int("SYNC_JOB_REQUEUE_SECONDS", 120, minimum=10)

# Password given to demo users that `load_demo` creates (never use the demo users in production).
DEMO_PASSWORD = env.str("DEMO_PASSWORD", default="ledgerlink-demo")
