"""Daily summaries: a profile in daily-summary mode posts one document per day and currency, not one per sale.

What A2X and Link My Books do for shops and gateways: the books get, per closed day and currency,
- one summary invoice whose lines are the day's invoice lines grouped by what the destination books
  them to (revenue account or item, tax code, tax rate), each group's amounts the exact sum of its lines;
- one summary credit note of the day's credit notes, grouped the same way;
- one summary payment per deposit account (the payment method's mapping), applied to the summary
  invoices that hold the invoices its payments paid.

Rules (docs/sync.md, "Daily summaries", says why):
- A document belongs to the day of its issue date (payments: transaction date). A day is posted only once
  it is closed: after midnight in `settings.TIME_ZONE` plus `SYNC_SUMMARY_GRACE_MINUTES`.
- Members: live documents of the profile's source (invoices and credit notes neither draft, void nor
  deleted; completed payments applied to an invoice), not before the cut-over date, and not already in the
  destination one by one. A document is in at most one summary per profile (`SummaryMember`).
- A member that changes after its day was posted (amount, date, void) changes its summary's version: the
  summary is re-posted as an update carrying the remote version, a conflict if the destination changed it;
  a summary left with no members is voided there.
- A summary is complete or not posted: a member the mapping cannot place holds its summary back, with a
  `mapping_missing` exception naming the member and the value. Other days and currencies go on.
- The customer of every summary is the destination customer mapped from the source value `*summary*`.
- Exactly once as any push: a `PushOperation` per summary version, whose deterministic number
  ("{prefix}DS-2026-11-20-USD{suffix}") is what the lookup before a create finds it by.

Modules: `base` (kinds, numbering, which day is closed), `compose` (membership: the summaries of a day in
step with its documents), `render` (a summary's record and payload), `push` (through the outbox),
`preview` (the dry run).
"""

from sync.summary.base import (
    KIND_OF,
    NOT_SALES,
    PREFIX,
    SUMMARY_CUSTOMER,
    TYPE_OF,
    ExceptionKind,
    Kind,
    Op,
    State,
    grace_minutes,
    summary_last_closed_day,
    summary_mode,
    summary_number,
)
from sync.summary.compose import summaries_compose
from sync.summary.preview import summaries_preview
from sync.summary.push import (
    SummaryConnector,
    summaries_due_count,
    summaries_push,
    summary_operation,
    summary_push,
)
from sync.summary.render import MembersBlocked, Rendered, summary_render

__all__ = [
    "KIND_OF",
    "NOT_SALES",
    "PREFIX",
    "SUMMARY_CUSTOMER",
    "TYPE_OF",
    "ExceptionKind",
    "Kind",
    "MembersBlocked",
    "Op",
    "Rendered",
    "State",
    "SummaryConnector",
    "grace_minutes",
    "summaries_compose",
    "summaries_due_count",
    "summaries_preview",
    "summaries_push",
    "summary_last_closed_day",
    "summary_mode",
    "summary_number",
    "summary_operation",
    "summary_push",
    "summary_render",
]
