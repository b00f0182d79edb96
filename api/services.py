"""Writes the API makes: documents through the sync services, API clients and their tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from knox.models import AuthToken

from api.models import ApiClient
from connectors.models import Connection
from sync.imports import after_write, page_write
from sync.models import Binding, SyncJob
from sync.services import Record

PAGE_SIZE = 500


@dataclass
class ItemResult:
    """What became of one document a caller sent."""

    index: int
    external_id: str
    status: str = "rejected"  # created, updated, unchanged, rejected
    id: int | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def documents_write(
    *, connection: Connection, object_type: str, items: list[tuple[int, Record]], job: SyncJob | None = None
) -> list[ItemResult]:
    """Write validated records from one caller's connection, a page per transaction.

    A page that fails in the database is retried one document at a time (sync.imports.page_write), so one
    bad document never sinks the others; each failure also opens an exception. Payments and credit notes
    that name an invoice nobody knows yet are written and flagged (an unmatched-payment exception), as a
    file import does.
    """
    results = {index: ItemResult(index=index, external_id=record.external_id) for index, record in items}
    by_external = {record.external_id: index for index, record in items}
    for start in range(0, len(items), PAGE_SIZE):
        page = [record for _, record in items[start : start + PAGE_SIZE]]
        written, failed = page_write(connection, job, page)  # type: ignore[arg-type]
        failed_ids = {record.external_id for record in failed}
        ok = [record for record in page if record.external_id not in failed_ids]
        after_write(connection, job, object_type, ok, written)  # type: ignore[arg-type]
        for record in failed:
            results[by_external[record.external_id]].errors = [
                {
                    "field": "",
                    "message": "The document could not be written; an exception was opened.",
                    "value": None,
                }
            ]
        ids = dict(
            Binding.objects.filter(
                connection=connection, object_type=object_type, external_id__in=[r.external_id for r in ok]
            ).values_list("external_id", "object_id")
        )
        created = {doc.pk for doc in written.created}
        updated = {doc.pk for doc in written.updated}
        for record in ok:
            result = results[by_external[record.external_id]]
            result.id = ids.get(record.external_id)
            result.status = (
                "created" if result.id in created else "updated" if result.id in updated else "unchanged"
            )
        for record, invoice_number in written.unmatched_allocations:
            results[by_external[record.external_id]].warnings.append(
                f"invoice {invoice_number!r} is not known yet: the allocation waits, an exception was opened"
            )
        for record, _ in written.unallocated_payments:
            results[by_external[record.external_id]].warnings.append(
                "the payment is allocated to no invoice: an exception was opened"
            )
    return [results[index] for index, _ in items]


def origin_external_id(*, connection: Connection, object_type: str, object_id: int) -> str | None:
    """The caller's id for a document it wrote, None when the document came from elsewhere."""
    return (
        Binding.objects.filter(
            connection=connection, object_type=object_type, object_id=object_id, is_origin=True
        )
        .values_list("external_id", flat=True)
        .first()
    )


def bulk_job_start(*, connection: Connection, object_type: str, count: int, user: Any) -> SyncJob:
    now = timezone.now()
    return SyncJob.objects.create(
        kind=SyncJob.Kind.IMPORT,
        trigger=SyncJob.Trigger.API,
        state=SyncJob.State.RUNNING,
        connection=connection,
        created_by=user if getattr(user, "pk", None) else None,
        params={"object_type": object_type, "documents": count},
        attempts=1,
        started_at=now,
        progress_total=count,
        seen=count,
    )


def bulk_job_finish(job: SyncJob, results: list[ItemResult]) -> None:
    counts = {
        status: sum(1 for r in results if r.status == status)
        for status in ("created", "updated", "unchanged", "rejected")
    }
    job.created, job.updated, job.skipped, job.failed = (
        counts["created"],
        counts["updated"],
        counts["unchanged"],
        counts["rejected"],
    )
    job.progress_done = len(results)
    job.state = SyncJob.State.PARTIAL if counts["rejected"] else SyncJob.State.SUCCEEDED
    job.finished_at = timezone.now()
    job.save()


# --- API clients ----------------------------------------------------------------------------------------
def _username(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:100] or "client"
    username, suffix = f"api-{slug}", 1
    user_model = get_user_model()
    while user_model.objects.filter(username=username).exists():
        suffix += 1
        username = f"api-{slug}-{suffix}"
    return username


@transaction.atomic
def api_client_create(
    *,
    name: str,
    scopes: list[str],
    person: Any = None,
    throttle_rate: str = "",
    active: bool = True,
    by: Any = None,
) -> tuple[ApiClient, str]:
    """A new client with its service user and connection, and its first token (returned once)."""
    user = get_user_model().objects.create_user(username=_username(name), is_active=active)
    user.set_unusable_password()
    user.save(update_fields=["password"])
    connection = Connection.objects.create(
        name=f"API: {name}"[:100],
        platform="api",
        role=Connection.Role.SOURCE,
        health=Connection.Health.HEALTHY,
    )
    client = ApiClient(
        name=name,
        scopes=scopes,
        person=person,
        throttle_rate=throttle_rate,
        active=active,
        service_user=user,
        connection=connection,
        created_by=by if getattr(by, "pk", None) else None,
    )
    client.full_clean()
    client.save()
    api_client_permissions_sync(client)
    return client, api_token_issue(client=client)


def api_client_saved(client: ApiClient) -> None:
    """Keep the service user and the connection in step with the client (active, name)."""
    if client.service_user.is_active != client.active:
        client.service_user.is_active = client.active
        client.service_user.save(update_fields=["is_active"])
    wanted = f"API: {client.name}"[:100]
    if client.connection.name != wanted:
        client.connection.name = wanted
        client.connection.save(update_fields=["name", "updated_at"])
    api_client_permissions_sync(client)


def api_token_issue(*, client: ApiClient) -> str:
    """A new token for the client; the only time its text exists outside the caller's hands."""
    _, token = AuthToken.objects.create(user=client.service_user, expiry=None)
    return token


def api_tokens_revoke(*, client: ApiClient) -> int:
    deleted, _ = AuthToken.objects.filter(user=client.service_user).delete()
    return deleted


# What a client's service user may do, per scope: the workflow checks the acting user's permissions, so a
# client without a linked person acts with these. Approving is never granted through a scope: it needs a
# linked person (or a service user given the permission by hand), so a person answers for it.
SCOPE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "read": (
        "sync.view_invoice",
        "sync.view_payment",
        "sync.view_creditnote",
        "sync.view_customer",
        "sync.view_syncprofile",
        "sync.view_syncjob",
        "sync.view_binding",
        "connectors.view_connection",
        "reconciliation.view_reconciliationexception",
        "reconciliation.view_override",
        "reconciliation.view_exceptionnote",
        "reconciliation.view_tag",
    ),
    "write_documents": (
        "sync.add_invoice",
        "sync.change_invoice",
        "sync.add_payment",
        "sync.change_payment",
        "sync.add_creditnote",
        "sync.change_creditnote",
    ),
    "run_syncs": ("sync.change_syncjob", "connectors.change_connection"),
    "work_exceptions": (
        "reconciliation.change_reconciliationexception",
        "reconciliation.add_exceptionnote",
        "reconciliation.add_tag",
        "reconciliation.add_override",
    ),
    "approve_overrides": (),
}


def api_client_permissions_sync(client: ApiClient) -> None:
    from django.contrib.auth.models import Permission
    from django.db.models import Q

    codes = {code for scope in client.scopes or [] for code in SCOPE_PERMISSIONS.get(scope, ())}
    query = Q(pk__in=[])
    for code in codes:
        app_label, codename = code.split(".")
        query |= Q(content_type__app_label=app_label, codename=codename)
    client.service_user.user_permissions.set(Permission.objects.filter(query))
