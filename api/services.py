"""Writes the API makes: documents through the sync services, API clients and their tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from knox.models import AuthToken

from api.models import ApiClient, OverrideClientStep
from connectors.models import Connection
from sync.imports import after_write, page_write
from sync.models import Binding, SyncJob
from sync.services import Record

PAGE_SIZE = 500
HISTORY_REASON_LENGTH = 100  # django-simple-history's history_change_reason column


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


def _human(user: Any) -> Any:
    return user if getattr(user, "pk", None) is not None else None


def api_client_person_may_confirm(by: Any, person: Any) -> bool:
    """Only the person themselves, or a superuser, may make a client act for someone."""
    if by is None or person is None or not getattr(by, "is_active", False):
        return False
    return by.pk == person.pk or bool(by.is_superuser)


def _link_confirm(client: ApiClient, by: Any) -> None:
    client.confirmed_person = client.person
    client.person_confirmed_by = by
    client.person_confirmed_at = timezone.now()


def _link_reset(client: ApiClient) -> None:
    client.confirmed_person = None
    client.person_confirmed_by = None
    client.person_confirmed_at = None


def _save(client: ApiClient, *, by: Any, reason: str) -> None:
    client._history_user = _human(by)  # type: ignore[attr-defined]
    client._change_reason = reason[:HISTORY_REASON_LENGTH]  # type: ignore[attr-defined]
    client.save()


def _link_note(client: ApiClient) -> str:
    if client.person_id is None:
        return ""
    if client.person_confirmed:
        return f"acts for {client.person}"
    return f"waits for {client.person} to confirm the link"


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
    """A new client with its service user and connection, and its first token (returned once).

    A person linked by anyone but themselves or a superuser waits for their confirmation
    (`api_client_person_confirm`); until then the client acts as its service user.
    """
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
        created_by=_human(by),
        configured_by=_human(by),
    )
    if person is not None and api_client_person_may_confirm(by, person):
        _link_confirm(client, by)
    client.full_clean()
    _save(client, by=by, reason=" ".join(["created", _link_note(client)]).strip())
    api_client_permissions_sync(client)
    return client, _token_new(client)


@transaction.atomic
def api_client_configure(client: ApiClient, *, by: Any) -> ApiClient:
    """Save a client whose settings `by` edited (name, scopes, person, rate, active).

    `by` becomes its last configurer (the four-eyes rule counts them as the client). A new person, or
    wider scopes, need the person's confirmation again unless `by` is that person or a superuser.
    """
    stored = ApiClient.objects.select_for_update().get(pk=client.pk)
    for name in ("confirmed_person_id", "person_confirmed_by_id", "person_confirmed_at"):
        setattr(client, name, getattr(stored, name))  # a confirmation made since the form was read stands
    changes = []
    may_confirm = api_client_person_may_confirm(by, client.person if client.person_id else None)
    if client.person_id != stored.person_id:
        _link_reset(client)
        if may_confirm:
            _link_confirm(client, by)
        changes.append(_link_note(client) or f"{stored.person} unlinked")
    elif client.person_confirmed and not may_confirm and set(client.scopes or []) - set(stored.scopes or []):
        _link_reset(client)
        changes.append(f"wider scopes: {_link_note(client)}")
    client.configured_by = _human(by)
    client.full_clean()
    _save(client, by=by, reason="; ".join(["configured", *changes]))
    api_client_saved(client)
    return client


@transaction.atomic
def api_client_person_confirm(client: ApiClient, *, by: Any) -> bool:
    """`by` (the linked person, or a superuser) confirms that the client acts for the person.

    Raises PermissionDenied for anyone else. Returns False when it was confirmed already.
    """
    locked = ApiClient.objects.select_for_update(of=("self",)).select_related("person").get(pk=client.pk)
    if locked.person_id is None:
        raise PermissionDenied(f"API client {locked.name} is linked to nobody: there is nothing to confirm")
    if not api_client_person_may_confirm(by, locked.person):
        raise PermissionDenied(
            f"only {locked.person} (or a superuser) can confirm that API client {locked.name} acts for them"
        )
    if locked.person_confirmed:
        return False
    _link_confirm(locked, by)
    _save(locked, by=by, reason=f"link to {locked.person} confirmed by {by}")
    _copy_link(client, locked)
    return True


@transaction.atomic
def api_client_person_release(client: ApiClient, *, by: Any) -> bool:
    """Unlink the person: the client acts as its service user again. The person, a superuser, or
    whoever may change API clients may do it (it only takes power away). Returns False when unlinked."""
    locked = ApiClient.objects.select_for_update(of=("self",)).select_related("person").get(pk=client.pk)
    if locked.person_id is None:
        return False
    allowed = by is not None and by.is_active and by.has_perm("api.change_apiclient")
    if not (allowed or api_client_person_may_confirm(by, locked.person)):
        raise PermissionDenied(f"{by} may not unlink {locked.person} from API client {locked.name}")
    person = locked.person
    locked.person = None
    _link_reset(locked)
    _save(locked, by=by, reason=f"{person} unlinked by {by}")
    _copy_link(client, locked)
    return True


LINK_FIELDS = ["person", "confirmed_person", "person_confirmed_by", "person_confirmed_at", "configured_by"]


def _copy_link(target: ApiClient, source: ApiClient) -> None:
    """The caller's instance sees what the locked copy saved."""
    if target is not source:
        target.refresh_from_db(fields=LINK_FIELDS)


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


@transaction.atomic
def api_token_issue(*, client: ApiClient, by: Any = None) -> str:
    """A new token for the client; the only time its text exists outside the caller's hands.

    Whoever receives it holds the client: they become its last configurer, and a token issued by anyone
    but the linked person (or a superuser) needs the person to confirm the link again.
    """
    if _human(by) is not None:
        locked = ApiClient.objects.select_for_update(of=("self",)).select_related("person").get(pk=client.pk)
        locked.configured_by = by
        reason = "token issued"
        if locked.person_confirmed and not api_client_person_may_confirm(by, locked.person):
            _link_reset(locked)
            reason = f"token issued: {_link_note(locked)}"
        _save(locked, by=by, reason=reason)
        _copy_link(client, locked)
    return _token_new(client)


def _token_new(client: ApiClient) -> str:
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


# --- overrides through API clients ----------------------------------------------------------------------
def override_client_step_record(*, override: Any, step: str, acting: Any) -> OverrideClientStep | None:
    """Record that `acting` took this step of the override through an API client, with every user the
    four-eyes rule counts as them. Nothing for a staff user's session (the override names them already)."""
    from reconciliation.workflow import four_eyes_people

    client = getattr(acting, "_api_client", None)
    if client is None:
        return None
    return OverrideClientStep.objects.create(
        override=override,
        step=step,
        client=client,
        client_name=client.name,
        acting_user=acting,
        people=sorted(four_eyes_people(acting)),
    )


def override_client_people(override: Any) -> list[int]:
    """The users behind a proposal made through an API client (registered with the workflow)."""
    rows = OverrideClientStep.objects.filter(
        override_id=override.pk, step=OverrideClientStep.Step.PROPOSED
    ).values_list("people", flat=True)
    return [pk for people in rows for pk in people]


def history_reason_name_client(sender: Any, instance: Any, history_instance: Any, **kwargs: Any) -> None:
    """A change to an exception or override made through an API client names the client in history."""
    from reconciliation.models import Override, ReconciliationException

    client = getattr(history_instance.history_user, "_api_client", None)
    if client is None or not isinstance(instance, (Override, ReconciliationException)):
        return
    suffix = f"via API client {client.name}"
    reason = history_instance.history_change_reason or ""
    if reason:
        suffix = f" ({suffix})"
        reason = reason[: max(HISTORY_REASON_LENGTH - len(suffix), 0)]
    history_instance.history_change_reason = (reason + suffix)[:HISTORY_REASON_LENGTH]
