"""Shared fixtures: a CSV file on disk, and running `csv_import` the way a user would."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


@pytest.fixture
def csv_file(tmp_path):
    """Write text (or bytes) to a new file under tmp_path and return its path."""
    counter = iter(range(1, 10_000))

    def write(content: str | bytes, name: str | None = None, encoding: str = "utf-8") -> Path:
        path = tmp_path / (name or f"import_{next(counter)}.csv")
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content.encode(encoding))
        return path

    return write


def run_import(path, *args: str) -> tuple[int, str, str]:
    """`csv_import PATH *args` -> (exit code, stdout, stderr); a CommandError's message goes to stderr."""
    out, err = StringIO(), StringIO()
    try:
        call_command("csv_import", str(path), *args, stdout=out, stderr=err)
    except CommandError as exc:
        err.write(str(exc))
        return exc.returncode, out.getvalue(), err.getvalue()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        return code, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _fresh_shared_limits():
    """Rate-limit and lease state in Redis outlives a test's database; start each test without it."""
    from django.conf import settings

    if not getattr(settings, "REDIS_URL", ""):
        yield
        return
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)

    def clear() -> None:
        for pattern in ("ledgerlink:ratelimit:*", "ledgerlink:lease:*"):
            # never a lock: another test run sharing this Redis database may be holding it right now
            keys = [k for k in client.scan_iter(match=pattern, count=500) if not k.endswith(b":lock")]
            if keys:
                client.delete(*keys)

    clear()
    yield
    clear()
