"""Test settings: the real settings with fast hashing, plain static storage and in-process jobs."""

import os
from urllib.parse import urlsplit, urlunsplit

from config.settings import *  # noqa: F403
from config.settings import CACHES, Q_CLUSTER, REDIS_URL, STORAGES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# django-q2 reads Q_CLUSTER once on import, so tests set it here rather than with override_settings.
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
ENCRYPTION_KEYS = [
    "qK8sT0m9X1uS2a3Hc5RZp2uV7yW0eJkT6yDqf9bR1mE=",  # a fixed test key, never used outside tests
]
# whitenoise looks for STATIC_ROOT at start-up; tests serve static files through the finders instead.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
SANDBOX_ENABLED = True
# A file, not shared-cache memory, for the test database: threads (live server, concurrent workers) then
# get SQLite's real locking (WAL, IMMEDIATE, busy timeout) instead of "database table is locked".
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # one file per run, so two runs side by side do not share it (pytest-django removes it afterwards)
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}  # noqa: F405

# Each pytest-xdist worker gets its own Redis database: connection ids start again in every test database,
# so two workers would otherwise share (and clear) each other's rate-limit and lease keys.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if REDIS_URL and _worker.startswith("gw") and urlsplit(REDIS_URL).scheme in {"redis", "rediss"}:
    _parts = urlsplit(REDIS_URL)
    _db = (int(_parts.path.strip("/") or 0) + int(_worker[2:])) % 16
    REDIS_URL = urlunsplit(_parts._replace(path=f"/{_db}"))
    CACHES = {**CACHES, "default": {**CACHES["default"], "LOCATION": REDIS_URL}}
