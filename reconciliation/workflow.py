"""The one place exception states and overrides change: the admin, the API and commands all call these,
so the rules hold on every path.

Exceptions move through a small state machine (`TRANSITIONS`); a move to the state the exception is
already in is harmless and returns False. Overrides are maker-checker: one person proposes, another with
`reconciliation.approve_override` approves (which applies it through `sync.corrections`) or rejects.
Nobody decides their own proposal: the service refuses first, and a check constraint in the database
refuses whatever path gets past it. Every change saves through `save()` with the user and the reason in
history.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reconciliation.models import ExceptionNote, Override, ReconciliationException, Tag
from sync import corrections
from sync.corrections import CorrectionError

log = logging.getLogger(__name__)
State = ReconciliationException.State
Action = Override.Action
OverrideState = Override.State

# from -> the states it may move to. Resolved and ignored only reopen (and then start again from open).
TRANSITIONS: dict[str, frozenset[str]] = {
    State.OPEN: frozenset({State.ASSIGNED, State.IN_REVIEW, State.RESOLVED, State.IGNORED}),
    State.ASSIGNED: frozenset({State.OPEN, State.IN_REVIEW, State.RESOLVED, State.IGNORED}),
    State.IN_REVIEW: frozenset({State.OPEN, State.ASSIGNED, State.RESOLVED, State.IGNORED}),
    State.RESOLVED: frozenset({State.OPEN}),
    State.IGNORED: frozenset({State.OPEN}),
}
WORK = "reconciliation.change_reconciliationexception"
NOTE = "reconciliation.add_exceptionnote"
PROPOSE = "reconciliation.add_override"
APPROVE = "reconciliation.approve_override"
TAG_LENGTH = Tag._meta.get_field("name").max_length
EXTERNAL_ID_LENGTH = 255  # Binding.external_id
HISTORY_REASON_LENGTH = 100  # django-simple-history's history_change_reason column
# What each action needs besides a reason: a document, an exception.
DOCUMENT_ACTIONS = {Action.SET_FIELD, Action.FORCE_MATCH, Action.REPUSH, Action.VOID, Action.MARK_PAID}


class WorkflowError(Exception):
    """A refused move. `code` is a short slug for APIs; the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FourEyesError(WorkflowError):
    """The person deciding an override is the one who proposed it."""

    def __init__(self, message: str) -> None:
        super().__init__("four_eyes", message)


def override_expiry_days() -> int:
    return int(getattr(settings, "OVERRIDE_EXPIRY_DAYS", 7))


def _label(state: str) -> str:
    return str(dict(State.choices).get(state, state)).lower()


def _name(user: Any) -> str:
    return user.get_username() if user is not None else "the system"


def _require(user: Any, permission: str, doing: str) -> None:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        raise WorkflowError("permission", f"{doing} needs a signed-in, active user")
    if not user.has_perm(permission):
        raise WorkflowError(
            "permission", f"{_name(user)} may not {doing} (needs the permission {permission})"
        )


def _save(instance: Any, *, by: Any, reason: str) -> None:
    instance._history_user = by
    instance._change_reason = reason[:HISTORY_REASON_LENGTH]
    instance.save()


def _locked(exception: ReconciliationException) -> ReconciliationException:
    return ReconciliationException.objects.select_for_update().get(pk=exception.pk)


def _sync_back(target: Any, source: Any) -> None:
    """Copy a saved, locked copy's field values onto the instance the caller holds."""
    for field in source._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))


def _note(exception: ReconciliationException, body: str, by: Any) -> ExceptionNote:
    return ExceptionNote.objects.create(exception=exception, author=by, body=body)


# --- exceptions ---------------------------------------------------------------------------------------
def exception_move_error(exception: ReconciliationException, to_state: str, *, reason: str = "") -> str:
    """Why the move would be refused ("" when it is allowed or changes nothing): for previews."""
    if to_state not in TRANSITIONS:
        return f"{to_state!r} is not a state (one of: {', '.join(TRANSITIONS)})"
    current = exception.state
    if current == to_state:
        return ""
    if to_state not in TRANSITIONS[current]:
        hint = " (reopen it first)" if current in (State.RESOLVED, State.IGNORED) else ""
        return f"cannot move exception #{exception.pk} from {_label(current)} to {_label(to_state)}{hint}"
    if to_state == State.ASSIGNED and exception.assignee_id is None:
        return f"exception #{exception.pk} has nobody to be assigned to: assign it to someone"
    if to_state == State.IGNORED and not reason.strip():
        return f"ignoring exception #{exception.pk} needs a reason"
    return ""


def _move(exception: ReconciliationException, to_state: str, *, by: Any, reason: str) -> bool:
    """The move itself, on a locked row, without the permission check (for the services here)."""
    error = exception_move_error(exception, to_state, reason=reason)
    if error:
        code = "unknown_state" if to_state not in TRANSITIONS else "invalid_move"
        raise WorkflowError(code, error)
    if exception.state == to_state:
        return False
    now = timezone.now()
    from_state = exception.state
    if to_state in (State.RESOLVED, State.IGNORED):
        exception.resolved_at = now
        exception.resolved_by = by
        exception.resolved_by_system = False
    elif from_state in (State.RESOLVED, State.IGNORED):
        exception.resolved_at = None
        exception.resolved_by = None
        exception.resolved_by_system = False
    if to_state == State.OPEN and from_state == State.ASSIGNED:
        exception.assignee = None  # back in the queue for anyone
    exception.state = to_state
    verb = "reopened" if to_state == State.OPEN and from_state in (State.RESOLVED, State.IGNORED) else None
    summary = verb or f"{_label(from_state)} -> {_label(to_state)}"
    _save(exception, by=by, reason=f"{summary}: {reason}" if reason else summary)
    if reason:
        _note(exception, f"{summary.capitalize()}: {reason}", by)
    return True


@transaction.atomic
def exception_move(exception: ReconciliationException, to_state: str, *, by: Any, reason: str = "") -> bool:
    """Move the exception to `to_state`. False when it is already there; WorkflowError naming from and to
    when the move is not allowed."""
    _require(by, WORK, "work exceptions")
    locked = _locked(exception)
    moved = _move(locked, to_state, by=by, reason=reason.strip())
    _sync_back(exception, locked)
    return moved


def exception_resolve(exception: ReconciliationException, *, by: Any, reason: str = "") -> bool:
    return exception_move(exception, State.RESOLVED, by=by, reason=reason)


def exception_ignore(exception: ReconciliationException, *, by: Any, reason: str) -> bool:
    """Ignore it for good (a later check does not reopen it); a reason is required."""
    if not (reason or "").strip():
        raise WorkflowError("reason_required", f"ignoring exception #{exception.pk} needs a reason")
    return exception_move(exception, State.IGNORED, by=by, reason=reason)


def exception_reopen(exception: ReconciliationException, *, by: Any, reason: str = "") -> bool:
    return exception_move(exception, State.OPEN, by=by, reason=reason)


@transaction.atomic
def exception_assign(exception: ReconciliationException, *, assignee: Any, by: Any) -> bool:
    """Give the exception to `assignee` (None: back to the queue). An open one becomes assigned."""
    _require(by, WORK, "work exceptions")
    locked = _locked(exception)
    if locked.state in (State.RESOLVED, State.IGNORED):
        raise WorkflowError(
            "invalid_move",
            f"exception #{locked.pk} is {_label(locked.state)}: reopen it before assigning it",
        )
    if assignee is not None:
        if not assignee.is_active or not assignee.has_perm(WORK):
            raise WorkflowError(
                "invalid_assignee", f"{_name(assignee)} cannot work exceptions, so cannot be assigned one"
            )
        if locked.assignee_id == assignee.pk and locked.state != State.OPEN:
            return False
        locked.assignee = assignee
        if locked.state == State.OPEN:
            locked.state = State.ASSIGNED
        _save(locked, by=by, reason=f"assigned to {_name(assignee)}")
    else:
        if locked.assignee_id is None:
            return False
        locked.assignee = None
        if locked.state == State.ASSIGNED:
            locked.state = State.OPEN
        _save(locked, by=by, reason="unassigned")
    _sync_back(exception, locked)
    return True


def tag_names_clean(names: list[str] | str) -> list[str]:
    """Tag names from a list or a comma-separated string: trimmed, without repeats, each checked."""
    if isinstance(names, str):
        names = names.split(",")
    cleaned: list[str] = []
    for raw in names:
        name = str(raw).strip()
        if not name:
            continue
        if len(name) > TAG_LENGTH:
            raise WorkflowError("invalid_tag", f"tag {name!r} is longer than {TAG_LENGTH} characters")
        if name not in cleaned:
            cleaned.append(name)
    if not cleaned:
        raise WorkflowError("invalid_tag", "no tag names given")
    return cleaned


@transaction.atomic
def exception_tag(
    exception: ReconciliationException, names: list[str], *, by: Any, remove: bool = False
) -> bool:
    """Add (or remove) tags; new names become tags. False when nothing changed."""
    _require(by, WORK, "work exceptions")
    cleaned = tag_names_clean(names)
    locked = _locked(exception)
    current = set(locked.tags.values_list("name", flat=True))
    if remove:
        changing = [name for name in cleaned if name in current]
        if not changing:
            return False
        tags = list(Tag.objects.filter(name__in=changing))
    else:
        changing = [name for name in cleaned if name not in current]
        if not changing:
            return False
        if not by.has_perm("reconciliation.add_tag") and Tag.objects.filter(name__in=changing).count() < len(
            changing
        ):
            raise WorkflowError("permission", f"{_name(by)} may not create new tags")
        tags = [Tag.objects.get_or_create(name=name)[0] for name in changing]
    locked._history_user = by
    locked._change_reason = (
        f"untagged {', '.join(changing)}" if remove else f"tagged {', '.join(changing)}"
    )[:HISTORY_REASON_LENGTH]
    if remove:
        locked.tags.remove(*tags)
    else:
        locked.tags.add(*tags)
    return True


def exception_note(exception: ReconciliationException, body: str, *, by: Any) -> ExceptionNote:
    _require(by, NOTE, "add notes to exceptions")
    body = (body or "").strip()
    if not body:
        raise WorkflowError("empty_note", "a note needs some text")
    return _note(exception, body, by)


# --- overrides: proposing -----------------------------------------------------------------------------
def _decimal(raw: Any, field: str) -> Decimal:
    try:
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        raise WorkflowError("invalid_value", f"{field} {raw!r} is not a number") from None
    if not value.is_finite():
        raise WorkflowError("invalid_value", f"{field} {raw!r} is not a number")
    return value


def _document_number(object_type: str, object_id: int | None) -> str:
    if not object_type or object_id is None:
        return ""
    model = corrections.MODELS.get(object_type)
    document = model.objects.filter(pk=object_id).first() if model else None
    return str(getattr(document, "number", "") or getattr(document, "reference", "") or "")


def _correction(call: Any, **kwargs: Any) -> Any:
    try:
        return call(**kwargs)
    except CorrectionError as exc:
        raise WorkflowError("invalid_value", str(exc)) from None


def _plan(
    action: str,
    *,
    exception: ReconciliationException | None,
    object_type: str,
    object_id: int | None,
    field_name: str,
    after_value: Any,
    limit_amount: Any,
    reverts: Override | None,
) -> tuple[Any, Any, Decimal | None]:
    """Check a proposal against the document as it is now: (before, after, limit) or WorkflowError."""
    if action in DOCUMENT_ACTIONS and (not object_type or object_id is None):
        raise WorkflowError("document_required", f"a {action.replace('_', ' ')} override needs a document")
    if action != Action.ACCEPT_DIFFERENCE and object_type:
        document = _correction(corrections.document_get, object_type=object_type, object_id=object_id)
    if action == Action.SET_FIELD:
        if not field_name:
            raise WorkflowError("invalid_value", "field_name is required to set a field")
        _correction(corrections.field_allowed, object_type=object_type, field_name=field_name)
        currency = after_value if field_name == "currency" else document.currency
        parsed = _correction(
            corrections.field_value_parse,
            object_type=object_type,
            field_name=field_name,
            raw=after_value,
            currency=str(currency),
        )
        _correction(corrections.field_value_check, document=document, field_name=field_name, parsed=parsed)
        before = corrections.json_value(getattr(document, field_name))
        after = corrections.json_value(parsed)
        if before == after:
            raise WorkflowError("no_change", f"{field_name} is already {after!r}")
        return before, after, None
    if action == Action.ACCEPT_DIFFERENCE:
        if exception is None:
            raise WorkflowError(
                "exception_required", "accepting a difference needs the exception it is about"
            )
        if reverts is not None:
            # no limit: a reverting row must not count as an accepted difference in later runs
            return {"state": exception.state}, {"state": State.OPEN}, None
        if limit_amount in (None, ""):
            raise WorkflowError("invalid_value", "limit_amount is required to accept a difference")
        limit = _decimal(limit_amount, "limit_amount")
        if limit < 0:
            raise WorkflowError("invalid_value", f"limit_amount {limit_amount!r} is negative")
        at_risk = exception.amount_at_risk
        if at_risk is None:
            # a limit means nothing without an amount: accepting would swallow every later finding
            raise WorkflowError(
                "invalid_value",
                f"exception #{exception.pk} has no amount at risk, so there is no difference to accept "
                "within a limit: ignore it instead if it does not matter",
            )
        if abs(at_risk) > limit:
            raise WorkflowError(
                "over_limit",
                f"the difference {exception.currency} {abs(at_risk)} is above the limit "
                f"{exception.currency} {limit}",
            )
        before = {"amount_at_risk": corrections.json_value(at_risk), "state": exception.state}
        return before, {"limit_amount": corrections.json_value(limit)}, limit
    if action == Action.FORCE_MATCH:
        if reverts is not None:
            return reverts.after_value, reverts.before_value, None
        value = after_value if isinstance(after_value, dict) else {}
        raw_connection = value.get("connection")
        external_id = str(value.get("external_id") or "").strip()
        if raw_connection in (None, "") or not external_id:
            raise WorkflowError(
                "invalid_value",
                f"forcing a match needs {{'connection': id, 'external_id': ...}}, not {after_value!r}",
            )
        connection_id = _correction(corrections.id_parse, raw=raw_connection, field="connection")
        if len(external_id) > EXTERNAL_ID_LENGTH:
            raise WorkflowError(
                "invalid_value", f"external_id {external_id[:40]!r}... is longer than {EXTERNAL_ID_LENGTH}"
            )
        if not _connection_exists(connection_id):
            raise WorkflowError("invalid_value", f"connection {raw_connection!r} does not exist")
        conflict = corrections.binding_conflict(
            connection_id=connection_id, object_type=object_type, object_id=object_id, external_id=external_id
        )
        if conflict:
            raise WorkflowError("already_bound", conflict)
        from sync.models import Binding

        current = Binding.objects.filter(
            connection_id=connection_id, object_type=object_type, object_id=object_id
        ).first()
        before = {"connection": connection_id, "external_id": current.external_id if current else None}
        return before, {"connection": connection_id, "external_id": external_id}, None
    if action == Action.REPUSH:
        if reverts is not None:
            raise WorkflowError(
                "not_revertible", "a re-push cannot be undone: propose a void or a field change"
            )
        destination = after_value.get("destination") if isinstance(after_value, dict) else None
        if destination is not None:
            destination = _correction(corrections.id_parse, raw=destination, field="destination")
        if not corrections.push_profiles(document, object_type, destination_id=destination):
            raise WorkflowError(
                "no_profile",
                f"no enabled sync profile sends {object_type.replace('_', ' ')}s from "
                f"{document.source_connection or 'an unknown source'}",
            )
        return {"row_version": document.row_version}, {"destination": destination}, None
    if action == Action.VOID:
        if reverts is not None:
            return corrections.status_values(document), _restored_preview(document, reverts), None
        if document.status in corrections.GONE:
            raise WorkflowError(
                "invalid_value", f"{object_type.replace('_', ' ')} is already {document.status}"
            )
        return corrections.status_values(document), {"status": "void"}, None
    if action == Action.MARK_PAID:
        if object_type != "invoice":
            raise WorkflowError("invalid_value", f"only invoices can be marked paid, not a {object_type}")
        if reverts is not None:
            return corrections.status_values(document), _restored_preview(document, reverts), None
        if document.status in (*corrections.GONE, "paid"):
            raise WorkflowError("invalid_value", f"invoice {document.number} is {document.status}")
        return corrections.status_values(document), {"status": "paid", "amount_due": "0"}, None
    raise WorkflowError("invalid_action", f"action {action!r} is not one of: {', '.join(Action.values)}")


def _paid_by_hand(override: Override) -> bool:
    """Undoing a void of an invoice someone marked paid by hand (an applied "mark paid") keeps it paid."""
    return (
        override.action == Action.VOID
        and override.object_type == "invoice"
        and Override.objects.filter(
            object_type="invoice",
            object_id=override.object_id,
            action=Action.MARK_PAID,
            state=OverrideState.APPLIED,
        ).exists()
    )


def _restored_preview(document: Any, reverts: Override) -> dict[str, Any]:
    """What undoing `reverts` would write now; refused when the document moved on from what it left."""
    left = (reverts.after_value or {}).get("status")
    if document.status != left:
        raise WorkflowError(
            "stale",
            f"{reverts.object_type.replace('_', ' ')} {_document_label(document)} is now {document.status}, "
            f"not {left} as override #{reverts.pk} left it: it changed since, so there is nothing to undo",
        )
    values = corrections.status_restored(
        document, before=reverts.before_value, paid_by_hand=_paid_by_hand(reverts)
    )
    return {name: corrections.json_value(value) for name, value in values.items()}


def _document_label(document: Any) -> str:
    return str(getattr(document, "number", "") or getattr(document, "reference", "") or document.pk)


def _connection_exists(connection_id: Any) -> bool:
    from connectors.models import Connection

    return Connection.objects.filter(pk=connection_id).exists()


@transaction.atomic
def override_propose(
    *,
    by: Any,
    action: str,
    reason: str,
    exception: ReconciliationException | None = None,
    object_type: str = "",
    object_id: int | None = None,
    field_name: str = "",
    after_value: Any = None,
    limit_amount: Any = None,
    expires_at: datetime | None = None,
    reverts: Override | None = None,
) -> Override:
    """Propose a correction on an exception or a document; "before" is what the document holds now.
    An open exception it is about moves to "in review" while the proposal waits."""
    _require(by, PROPOSE, "propose overrides")
    reason = (reason or "").strip()
    if not reason:
        raise WorkflowError("reason_required", "an override needs a reason")
    if action not in Action.values:
        raise WorkflowError("invalid_action", f"action {action!r} is not one of: {', '.join(Action.values)}")
    if object_id is not None:
        object_id = _correction(corrections.id_parse, raw=object_id, field="object_id")
    if exception is not None:
        if object_type and (object_type, object_id) != (exception.object_type, exception.object_id):
            raise WorkflowError(
                "invalid_value",
                f"exception #{exception.pk} is about {exception.object_type} {exception.object_id}, "
                f"not {object_type} {object_id}",
            )
        object_type, object_id = exception.object_type, exception.object_id
    if object_type and object_type not in corrections.MODELS:
        raise WorkflowError(
            "invalid_value",
            f"object_type {object_type!r} cannot be corrected (one of: {', '.join(corrections.MODELS)})",
        )
    now = timezone.now()
    if expires_at is None:
        expires_at = now + timedelta(days=override_expiry_days())
    elif expires_at <= now:
        raise WorkflowError("invalid_value", f"expires_at {expires_at.isoformat()} is not in the future")
    if reverts is not None:
        # locked, so two reverts proposed at the same moment cannot both pass the "already waiting" check
        reverts = Override.objects.select_for_update().get(pk=reverts.pk)
        if action != reverts.action:
            raise WorkflowError(
                "invalid_value",
                f"override #{reverts.pk} is a {reverts.action}: its revert is one too, not {action}",
            )
        if reverts.state != OverrideState.APPLIED:
            raise WorkflowError(
                "not_revertible",
                f"override #{reverts.pk} is {reverts.get_state_display().lower()}, not applied",
            )
        if Override.objects.filter(reverts=reverts, state=OverrideState.PROPOSED).exists():
            raise WorkflowError("already_proposed", f"a revert of override #{reverts.pk} is already waiting")
        field_name = reverts.field_name
        after_value = reverts.before_value if action == Action.SET_FIELD else after_value
    before, after, limit = _plan(
        action,
        exception=exception,
        object_type=object_type,
        object_id=object_id,
        field_name=field_name,
        after_value=after_value,
        limit_amount=limit_amount,
        reverts=reverts,
    )
    override = Override(
        exception=exception,
        object_type=object_type or "",
        object_id=object_id,
        document_number=(
            _document_number(object_type, object_id) or (exception.document_number if exception else "")
        )[:100],
        action=action,
        field_name=field_name if action == Action.SET_FIELD else "",
        before_value=before,
        after_value=after,
        limit_amount=limit,
        reason=reason,
        proposed_by=by,
        expires_at=expires_at,
        reverts=reverts,
    )
    _save(override, by=by, reason=f"proposed: {reason}")
    if exception is not None:
        locked = _locked(exception)
        if locked.state in (State.OPEN, State.ASSIGNED):
            _move(locked, State.IN_REVIEW, by=by, reason="")
            _sync_back(exception, locked)
    return override


def override_revert(override: Override, *, by: Any, reason: str) -> Override:
    """Propose undoing an applied override; it needs approval like any other."""
    return override_propose(
        by=by,
        action=override.action,
        reason=reason,
        exception=override.exception,
        object_type=override.object_type,
        object_id=override.object_id,
        reverts=override,
    )


# --- four eyes: users who are one person ------------------------------------------------------------
# One human can reach the workflow as several users: an API client acts for its linked person, and whoever
# created or last configured it holds its tokens. Such a path puts the ids of every user it stands for on
# the acting user (`four_eyes_ids`) and registers here a lookup, override -> ids, of the users who stood
# behind a proposal. A decision is refused when the decider's users and the proposal's users meet.
PROPOSAL_PEOPLE_LOOKUPS: list[Any] = []


def four_eyes_people(user: Any) -> frozenset[int]:
    """Every user id that counts as `user` on the path it acts through."""
    ids = set(getattr(user, "four_eyes_ids", ()))
    if getattr(user, "pk", None) is not None:
        ids.add(user.pk)
    return frozenset(ids)


def _usernames(ids: frozenset[int]) -> str:
    from django.contrib.auth import get_user_model

    return ", ".join(sorted(get_user_model().objects.filter(pk__in=ids).values_list("username", flat=True)))


def override_proposal_people(override: Override) -> frozenset[int]:
    """Every user id that stood behind the proposal: its proposer, and whoever the lookups add."""
    ids = {override.proposed_by_id}
    for lookup in PROPOSAL_PEOPLE_LOOKUPS:
        ids.update(lookup(override))
    return frozenset(ids)


# --- overrides: deciding and applying -----------------------------------------------------------------
def _decidable(override: Override, by: Any, deciding: str) -> None:
    """Refuse a decision that is not allowed; an expired proposal is marked expired on the way."""
    if override.state != OverrideState.PROPOSED:
        raise WorkflowError(
            "already_decided", f"override #{override.pk} is already {override.get_state_display().lower()}"
        )
    if by is not None and override.proposed_by_id == getattr(by, "pk", None):
        raise FourEyesError(
            f"{_name(by)} proposed override #{override.pk} and cannot {deciding} it: another person must"
        )
    shared = four_eyes_people(by) & override_proposal_people(override) if by is not None else frozenset()
    if shared:
        raise FourEyesError(
            f"{_name(by)} cannot {deciding} override #{override.pk}: {_usernames(shared)} stood behind its "
            "proposal and stand behind this decision (through an API client that acts for them or that "
            "they created or configured): another person must"
        )
    _require(by, APPROVE, f"{deciding} overrides")


def _expired(override: Override) -> bool:
    return override.expires_at <= timezone.now()


def _expire(override: Override) -> None:
    with transaction.atomic():
        locked = Override.objects.select_for_update().get(pk=override.pk)
        if locked.state == OverrideState.PROPOSED:
            locked.state = OverrideState.EXPIRED
            _save(locked, by=None, reason="expired before a decision")
        _sync_back(override, locked)
    raise WorkflowError(
        "expired",
        f"override #{override.pk} expired on {override.expires_at:%Y-%m-%d %H:%M} UTC: propose it again",
    )


# --- overrides: is the proposal still about the document as it is? -----------------------------------
def override_now(override: Override, *, lock: bool = False) -> Any:
    """What the override's target holds now, in the shape of its `before_value` (None when a re-push, or
    when there is nothing to compare). CorrectionError when the document is gone."""
    action = override.action
    if action == Action.REPUSH:
        return None
    if action == Action.ACCEPT_DIFFERENCE:
        if override.exception_id is None:
            return None
        exceptions = ReconciliationException.objects
        exception = (exceptions.select_for_update() if lock else exceptions).get(pk=override.exception_id)
        return {"amount_at_risk": corrections.json_value(exception.amount_at_risk), "state": exception.state}
    document = corrections.document_get(override.object_type, override.object_id, lock=lock)
    if action == Action.SET_FIELD:
        return corrections.json_value(getattr(document, override.field_name))
    if action in (Action.VOID, Action.MARK_PAID):
        return corrections.status_values(document)
    if action == Action.FORCE_MATCH:
        from sync.models import Binding

        connection_id = (override.before_value or {}).get("connection")
        binding = Binding.objects.filter(
            connection_id=connection_id, object_type=override.object_type, object_id=override.object_id
        ).first()
        return {"connection": connection_id, "external_id": binding.external_id if binding else None}
    return None


def _same(before: Any, now: Any, *, numeric: bool) -> bool:
    # amounts are compared as numbers: "120.00" and "120.0000" are the same total
    if before == now:
        return True
    if not numeric or before is None or now is None:
        return False
    try:
        return Decimal(str(before)) == Decimal(str(now))
    except InvalidOperation:
        return False


def _numeric(override: Override, name: str) -> bool:
    from django.db.models import DecimalField

    if override.action != Action.SET_FIELD:
        return name in ("amount_due", "amount_at_risk")
    model = corrections.MODELS.get(override.object_type)
    return model is not None and isinstance(model._meta.get_field(name), DecimalField)


def override_stale_error(override: Override, now: Any) -> str:
    """Why the override no longer fits the document as it is `now` (see `override_now`): "" when it does.
    A proposal is checked against what it was made from, so an approval never writes over a newer value."""
    if override.action == Action.ACCEPT_DIFFERENCE:
        if override.reverts_id or override.limit_amount is None or now is None:
            return ""
        raw = now.get("amount_at_risk")
        currency = override.exception.currency if override.exception_id else ""
        if raw is None:
            return (
                f"exception #{override.exception_id} has no amount at risk now: there is no difference "
                "to accept"
            )
        if abs(Decimal(raw)) > override.limit_amount:
            return (
                f"the difference is now {currency} {abs(Decimal(raw))}, above the limit {currency} "
                f"{override.limit_amount}: propose again"
            )
        return ""
    before = override.before_value
    if now is None:
        return ""
    if override.action == Action.SET_FIELD:
        name = override.field_name
        if _same(before, now, numeric=_numeric(override, name)):
            return ""
        return f"{name} is now {now!r}; the proposal was made when it was {before!r}: propose again"
    before = before if isinstance(before, dict) else {}
    changed = [
        f"{name} is now {now.get(name)!r} (was {before.get(name)!r})"
        for name in before
        if not _same(before.get(name), now.get(name), numeric=_numeric(override, name))
    ]
    if not changed:
        return ""
    what = f"{override.object_type.replace('_', ' ')} {override.document_number or override.object_id}"
    return f"{what} changed since the proposal: {', '.join(changed)}: propose again"


def _fresh(override: Override) -> None:
    """WorkflowError "stale" unless the override still fits its document; locks what it reads."""
    try:
        message = override_stale_error(override, override_now(override, lock=True))
    except CorrectionError as exc:
        message = f"{exc}: propose again"
    if message:
        raise WorkflowError("stale", message)


def override_approve(override: Override, *, by: Any, comment: str = "") -> Override:
    """Approve and apply. FourEyesError when `by` proposed it; WorkflowError when it expired, was decided
    already, `by` may not approve, or the document changed since the proposal ("stale": nothing is
    recorded, propose again). An apply that fails leaves it approved with `apply_error` set and nothing of
    it written."""
    with transaction.atomic():
        locked = Override.objects.select_for_update().get(pk=override.pk)
        _decidable(locked, by, "approve")
        expired = _expired(locked)
        if not expired:
            _fresh(locked)
            locked.state = OverrideState.APPROVED
            locked.decided_by = by
            locked.decided_at = timezone.now()
            locked.decision_comment = (comment or "").strip()
            _save(locked, by=by, reason=f"approved: {comment}" if comment else "approved")
    if expired:
        _expire(override)
    _sync_back(override, locked)
    return _apply_approved(override, by=by, retry=False)


@transaction.atomic
def override_reject(override: Override, *, by: Any, comment: str) -> Override:
    """Reject with a comment saying why. The exception it was about goes back to whoever works it."""
    comment = (comment or "").strip()
    locked = Override.objects.select_for_update().get(pk=override.pk)
    _decidable(locked, by, "reject")
    if not comment:
        raise WorkflowError("comment_required", "rejecting an override needs a comment saying why")
    locked.state = OverrideState.REJECTED
    locked.decided_by = by
    locked.decided_at = timezone.now()
    locked.decision_comment = comment
    _save(locked, by=by, reason=f"rejected: {comment}")
    if locked.exception_id:
        exception = _locked(locked.exception)
        waiting = Override.objects.filter(exception_id=exception.pk, state=OverrideState.PROPOSED).exists()
        if exception.state == State.IN_REVIEW and not waiting:
            _move(exception, State.ASSIGNED if exception.assignee_id else State.OPEN, by=by, reason="")
        _note(
            exception,
            f"Override #{locked.pk} ({locked.get_action_display().lower()}) rejected: {comment}",
            by,
        )
    _sync_back(override, locked)
    return override


def override_apply(override: Override, *, by: Any) -> Override:
    """Apply an approved override again, after a failure. The checks of an approval hold: not by the
    proposer (FourEyesError), not after its expiry, not on a document that changed since the proposal
    ("stale", also recorded as its apply error). All of it or none of it is written."""
    _require(by, APPROVE, "apply overrides")
    return _apply_approved(override, by=by, retry=True)


def _retry_allowed(override: Override, by: Any) -> None:
    if override.proposed_by_id == getattr(by, "pk", None) or (
        four_eyes_people(by) & override_proposal_people(override)
    ):
        raise FourEyesError(
            f"{_name(by)} proposed override #{override.pk} and cannot apply it: another person must"
        )
    if _expired(override):
        raise WorkflowError(
            "expired",
            f"override #{override.pk} expired on {override.expires_at:%Y-%m-%d %H:%M} UTC before it could be "
            "applied: propose it again",
        )


def _apply_approved(override: Override, *, by: Any, retry: bool) -> Override:
    refused = ("not_approved", "four_eyes", "expired", "stale") if retry else ("not_approved",)
    try:
        with transaction.atomic():
            locked = Override.objects.select_for_update().get(pk=override.pk)
            if locked.state != OverrideState.APPROVED:
                raise WorkflowError(
                    "not_approved",
                    f"override #{locked.pk} is {locked.get_state_display().lower()}, not approved",
                )
            if retry:
                _retry_allowed(locked, by)
            _apply(locked, by=by)
            locked.state = OverrideState.APPLIED
            locked.applied_at = timezone.now()
            locked.apply_error = ""
            _save(locked, by=by, reason="applied")
            if locked.reverts_id:
                reverted = Override.objects.select_for_update().get(pk=locked.reverts_id)
                reverted.state = OverrideState.REVERTED
                _save(reverted, by=by, reason=f"reverted by override #{locked.pk}")
    except WorkflowError as exc:
        if exc.code == "stale" or exc.code not in refused:
            _apply_failed(override, by, exc.message)
        if exc.code in refused:
            raise
        return override
    except Exception as exc:  # whatever failed, the override must say so; its writes were rolled back
        log.exception("override %s could not be applied", override.pk)
        _apply_failed(override, by, str(exc) or type(exc).__name__)
        return override
    _sync_back(override, locked)
    return override


def _apply_failed(override: Override, by: Any, message: str) -> None:
    with transaction.atomic():
        locked = Override.objects.select_for_update().get(pk=override.pk)
        locked.apply_error = message[:4000]
        _save(locked, by=by, reason="could not be applied")
    _sync_back(override, locked)


def _apply(override: Override, *, by: Any) -> None:
    """Make the correction through the sync services; the exception it was about is resolved (a later
    check reopens it if the finding is still there)."""
    reason = f"override #{override.pk}: {override.reason}"
    action = override.action
    kwargs = {"object_type": override.object_type, "object_id": override.object_id}
    resolve = override.reverts_id is None  # a revert leaves the exception where it is
    _fresh(override)  # again, on the locked rows: the document may have changed since the approval
    try:
        if action == Action.SET_FIELD:
            corrections.document_field_set(
                **kwargs, field_name=override.field_name, value=override.after_value, by=by, reason=reason
            )
        elif action == Action.ACCEPT_DIFFERENCE:
            if override.reverts_id and override.exception_id:
                exception = _locked(override.exception)
                if exception.state in (State.RESOLVED, State.IGNORED):
                    _move(exception, State.OPEN, by=by, reason=f"override #{override.reverts_id} reverted")
        elif action == Action.FORCE_MATCH:
            if override.reverts_id:
                reverted = override.reverts
                corrections.document_unbind(
                    **kwargs,
                    connection_id=reverted.after_value["connection"],
                    external_id=reverted.after_value["external_id"],
                    restore=reverted.before_value.get("external_id"),
                )
            else:
                corrections.document_bind(
                    **kwargs,
                    connection_id=override.after_value["connection"],
                    external_id=override.after_value["external_id"],
                    by=by,
                    reason=reason,
                )
        elif action == Action.REPUSH:
            destination = (override.after_value or {}).get("destination")
            corrections.document_push(**kwargs, by=by, reason=reason, force=True, destination_id=destination)
            resolve = False  # the push resolves what it fixes
        elif action in (Action.VOID, Action.MARK_PAID) and override.reverts_id:
            reverted = override.reverts
            override.after_value = corrections.document_status_restore(
                **kwargs,
                left=(reverted.after_value or {}).get("status", ""),
                before=reverted.before_value,
                by=by,
                reason=reason,
                paid_by_hand=_paid_by_hand(reverted),
            )
        elif action == Action.VOID:
            corrections.document_void(**kwargs, by=by, reason=reason)
        elif action == Action.MARK_PAID:
            settled = corrections.invoice_mark_paid(invoice_id=override.object_id, by=by, reason=reason)
            override.after_value = {
                **(override.after_value or {}),
                "settled_manually": settled["settled_manually"],
            }
    except CorrectionError as exc:
        raise WorkflowError("apply_failed", str(exc)) from None
    if resolve and override.exception_id:
        exception = _locked(override.exception)
        if exception.is_open:
            _move(exception, State.RESOLVED, by=by, reason=f"override #{override.pk} applied")


def overrides_expire() -> int:
    """Mark proposals past their expiry as expired (they could not be approved anyway)."""
    count = 0
    for override in Override.objects.filter(state=OverrideState.PROPOSED, expires_at__lte=timezone.now()):
        with transaction.atomic():
            locked = Override.objects.select_for_update().get(pk=override.pk)
            if locked.state == OverrideState.PROPOSED:
                locked.state = OverrideState.EXPIRED
                _save(locked, by=None, reason="expired before a decision")
                count += 1
    return count
