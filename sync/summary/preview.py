"""The dry run of a daily-summary profile: what a run would post now, written nowhere."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from connectors.base import ConnectorError
from sync import mapping
from sync import push as pushing
from sync.models import Binding, ObjectType, SummaryPosting, SyncProfile
from sync.preview import PreviewItem
from sync.summary.base import KIND_OF, TYPE_OF, Op, summary_last_closed_day, summary_number
from sync.summary.compose import _day_groups, _days_to_compose, _members_hash
from sync.summary.push import summary_operation
from sync.summary.render import MembersBlocked, _label, summary_render


def summaries_preview(
    profile: SyncProfile, *, limit: int = 50, now: datetime | None = None
) -> list[PreviewItem]:
    """What a run would post now, summary by summary, without writing anything: days still to compose are
    composed in memory, summaries waiting are rendered from their members."""
    pusher = pushing.Pusher(profile, dry_run=True)
    last_day = summary_last_closed_day(now)
    items: list[PreviewItem] = []
    for object_type in (ObjectType.INVOICE, ObjectType.CREDIT_NOTE, ObjectType.PAYMENT):
        if object_type not in (profile.object_types or []):
            continue
        kind = KIND_OF[object_type]
        existing = {
            (p.day, p.currency, p.deposit_account): p
            for p in SummaryPosting.objects.filter(profile=profile, kind=kind)
        }
        for day in _days_to_compose(profile, object_type, last_day=last_day, date_range=None):
            groups, _ = _day_groups(
                profile, object_type, day, pusher.table, last_day=last_day, date_range=None
            )
            keys = {(currency, deposit) for currency, deposit in groups} | {
                (c, d) for (when, c, d) in existing if when == day
            }
            for currency, deposit in sorted(keys):
                documents = groups.get((currency, deposit), [])
                posting = existing.get((day, currency, deposit)) or SummaryPosting(
                    profile=profile,
                    kind=kind,
                    day=day,
                    currency=currency,
                    deposit_account=deposit,
                    number=summary_number(kind, day, currency, deposit, pusher.table),
                )
                changed = posting.pk is None or _members_hash(documents) != posting.members_hash
                item = _preview_item(pusher, posting, documents, changed=changed)
                if item is not None:
                    items.append(item)
                if len(items) >= limit:
                    return items
    return items


def _preview_item(
    pusher: pushing.Pusher, posting: SummaryPosting, documents: Sequence[Any], *, changed: bool
) -> PreviewItem | None:
    binding = None
    if posting.pk is not None:
        binding = Binding.objects.filter(
            connection_id=pusher.profile.destination_id, object_type=posting.kind, object_id=posting.pk
        ).first()
        if not changed and binding is not None and binding.document_version == posting.row_version:
            return None
    posting.member_count = len(documents)
    operation = summary_operation(posting, binding)
    if operation is None:
        return None
    item = PreviewItem(
        object_type=posting.kind,
        object_id=posting.pk or 0,
        label=f"{posting} ({len(documents)} documents, {posting.currency})",
        operation=operation,
        destination_id=binding.external_id if binding else "",
        members=[_label(d) for d in documents],
    )
    if operation == Op.VOID:
        item.diff = [{"path": "status", "now": "posted", "after": "void (no members left)"}]
        return item
    try:
        rendered = summary_render(pusher, posting, documents)
    except MembersBlocked as exc:
        item.problems = [
            f"{_label(d)}: {p.message}" for d, problems in exc.problems.items() for p in problems
        ]
        return item
    except mapping.MappingBlocked as exc:
        item.problems = [p.message for p in exc.problems]
        return item
    item.payload, item.groups = rendered.payload, rendered.groups
    if binding is None:
        item.diff = [{"path": "(document)", "now": "not in the destination", "after": "created"}]
        return item
    try:
        change = pusher.connector.fetch(TYPE_OF[posting.kind], binding.external_id)
    except ConnectorError as exc:
        item.problems = [f"could not read the destination's copy: {exc}"]
        return item
    item.diff = mapping.payload_diff(pushing.comparable(item.payload), pushing.unwrap(change.raw))
    return item
