"""Triage in the admin: the exception queue, each exception's fixes, and the override approval queue.

Every change goes through `reconciliation.workflow` (and, for documents, `sync.corrections`), one row at a
time, so the rules hold here as on the API. Bulk actions show a confirmation page that says what will
happen to each row, then report how many succeeded and which failed and why.

Modules, one per admin area (importing this package registers them all): `exceptions` (the exception
queue, one exception's page, tags), `filters` (the queue's filters), `actions` (the queue's bulk actions
with their confirmation pages), `overrides` (proposing, the approval queue), `reminders` (reminder
policies, reminders and alerts), `base` (what they share).
"""

from reconciliation.admin.actions import ExceptionBulkActions
from reconciliation.admin.base import (
    BULK_LIMIT,
    COUNT_CAP,
    OPEN_WORK,
    CappedPaginator,
    State,
    queue_url,
)
from reconciliation.admin.exceptions import ReconciliationExceptionAdmin, TagAdmin
from reconciliation.admin.filters import AgeFilter, AmountAtRiskFilter, AssigneeFilter, QueueStateFilter
from reconciliation.admin.overrides import ApprovalFilter, OverrideAdmin
from reconciliation.admin.reminders import (
    AlertAdmin,
    PendingFilter,
    ReadOnlyAdmin,
    ReminderAdmin,
    ReminderPolicyAdmin,
    ReminderPolicyForm,
)

__all__ = [
    "BULK_LIMIT",
    "COUNT_CAP",
    "OPEN_WORK",
    "AgeFilter",
    "AlertAdmin",
    "AmountAtRiskFilter",
    "ApprovalFilter",
    "AssigneeFilter",
    "CappedPaginator",
    "ExceptionBulkActions",
    "OverrideAdmin",
    "PendingFilter",
    "QueueStateFilter",
    "ReadOnlyAdmin",
    "ReconciliationExceptionAdmin",
    "ReminderAdmin",
    "ReminderPolicyAdmin",
    "ReminderPolicyForm",
    "State",
    "TagAdmin",
    "queue_url",
]
