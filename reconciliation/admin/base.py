"""What the triage admins share: the row limit of bulk actions, the capped paginator, the re-check service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.urls import reverse
from django.utils.functional import cached_property

from reconciliation.models import ReconciliationException

State = ReconciliationException.State
OPEN_WORK = "work"
# Bulk actions act on at most this many rows at once: the confirmation page lists each one.
BULK_LIMIT = 500
# The queue never counts more than this: "more than 10,000" is as useful as the exact figure, and
# counting a million rows on every page view is what makes a big queue slow.
COUNT_CAP = 10_000


class CappedPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows (a LIMITed subquery), whatever the table holds."""

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        return self.object_list.order_by()[: COUNT_CAP + 1].count()  # no sort needed to count


def _rows_refused(rows: list[Any], check: Callable[[Any], str]) -> list[dict[str, Any]]:
    return [{"row": row, "refused": check(row)} for row in rows]


def queue_url(**params: str) -> str:
    """The exception queue with filters, e.g. queue_url(kind="duplicate")."""
    base = reverse("admin:reconciliation_reconciliationexception_changelist")
    return f"{base}?{urlencode(params)}" if params else base
