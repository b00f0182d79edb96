"""Dry run: what a profile would send, document by document, and how it differs from the destination now
(for a two-way profile, also the payments recorded in the destination that would go back to the source).

Nothing is written anywhere: no operation, no binding, no customer. Reads of the destination (to show the
difference for documents it already has) do go out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connectors.base import ConnectorError
from sync import mapping, twoway
from sync import push as pushing
from sync.models import Binding, PushOperation, SyncProfile

Op = PushOperation.Operation


@dataclass
class PreviewItem:
    object_type: str
    object_id: int
    label: str
    operation: str
    payload: Any = None
    diff: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    destination_id: str = ""
    # a daily summary: the documents it sums, and its lines per placement (or payment per invoice)
    members: list[str] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)


def _item(
    pusher: pushing.Pusher, object_type: str, document: Any, binding: Binding | None
) -> PreviewItem | None:
    operation = pushing.operation_for(object_type, document, binding)
    if operation is None:
        return None
    item = PreviewItem(
        object_type=object_type,
        object_id=document.pk,
        label=pushing.document_label(object_type, document),
        operation=operation,
        destination_id=binding.external_id if binding else "",
    )
    try:
        _, _, item.payload = pusher.prepare(object_type, document, operation, binding)
    except mapping.MappingBlocked as exc:
        item.problems = [problem.message for problem in exc.problems]
        return item
    except pushing.Unmatched as exc:
        item.problems = [str(exc)]
        return item
    if binding is None:
        item.diff = [{"path": "(document)", "now": "not in the destination", "after": "created"}]
        return item
    try:
        change = pusher.connector.fetch(object_type, binding.external_id)
    except ConnectorError as exc:
        item.problems = [f"could not read the destination's copy: {exc}"]
        return item
    if operation in (Op.VOID, Op.DELETE):
        item.diff = [{"path": "status", "now": getattr(change.record, "status", ""), "after": "void"}]
    else:
        item.diff = mapping.payload_diff(pushing.comparable(item.payload), pushing.unwrap(change.raw))
    return item


def profile_preview(
    profile: SyncProfile, *, limit: int = 50, document: tuple[str, int] | None = None
) -> list[PreviewItem]:
    """Up to `limit` documents the profile would push now, or the one `document` (object type, id)."""
    if profile.posting_mode == SyncProfile.PostingMode.DAILY_SUMMARY and document is None:
        from sync.summary import summaries_preview  # built on this module: imported when used

        return summaries_preview(profile, limit=limit)
    pusher = pushing.Pusher(profile, dry_run=True)
    items: list[PreviewItem] = []
    types = [document[0]] if document else [t for t in pushing.ORDER if t in (profile.object_types or [])]
    for object_type in types:
        if object_type == "customer":
            continue
        model = pushing.MODELS[object_type]
        if document:
            queryset = model.objects.filter(pk=document[1])
        else:
            queryset = pushing.candidates(profile, object_type)
        for doc in queryset[: max(0, limit - len(items))]:
            binding = Binding.objects.filter(
                connection_id=profile.destination_id, object_type=object_type, object_id=doc.pk
            ).first()
            item = _item(pusher, object_type, doc, binding)
            if item is None and document:
                item = PreviewItem(object_type, doc.pk, pushing.document_label(object_type, doc), "none")
                item.problems = ["nothing to send: the destination is up to date or the document is void"]
            if item is not None:
                items.append(item)
        if len(items) >= limit:
            break
    if document is None:
        items += _back_items(profile, limit=limit - len(items))
    return items


def _back_items(profile: SyncProfile, *, limit: int) -> list[PreviewItem]:
    """Two-way profiles: the payments recorded in the destination that would go back to the source."""
    items = []
    for payment, payload, problems in twoway.back_preview(profile, limit=limit):
        label = pushing.document_label("payment", payment)
        item = PreviewItem(
            object_type="payment",
            object_id=payment.pk,
            label=f"{label}, recorded in {profile.destination}",
            operation=f"record at {profile.source}",
            payload=payload,
            problems=problems,
        )
        item.diff = [{"path": "(payment)", "now": f"not at {profile.source}", "after": "recorded there"}]
        items.append(item)
    return items
