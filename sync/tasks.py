"""django-q2 task entry points: they take ids, never objects, and are safe to run twice."""

from __future__ import annotations

from typing import Any

from sync import jobs


def job_run(job_id: int) -> str:
    return jobs.job_run(job_id)


def jobs_reap() -> dict[str, Any]:
    return jobs.jobs_reap()


def profile_scheduled(profile_id: int | str) -> int | None:
    job = jobs.profile_scheduled(int(profile_id))
    return job.pk if job else None
