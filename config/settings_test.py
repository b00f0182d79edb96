"""Test settings: the real settings with fast hashing, plain static storage and in-process jobs."""

import os

from config.settings import *  # noqa: F403
from config.settings import Q_CLUSTER, STORAGES

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
