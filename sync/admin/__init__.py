"""The sync engine in the admin: documents, bindings and their lineage, jobs, the outbox, mappings.

Admin actions call services (`sync.jobs`, `sync.preview`, `sync.reference`), imported when the action
runs, so the admin still loads while a service module is missing; one object at a time, reporting what
succeeded and what failed.

Modules, one per admin area (importing this package registers them all): `documents` (customers, invoices,
credit notes, payments and allocations), `bindings` (bindings and the lookup page), `mappings` (mapping
sets, rows, reference data), `profiles` (run now, reconcile now, dry run), `jobs` (jobs, attempts, pull
cursors), `outbox` (push operations), `summaries` (daily summary postings), `base` (what they share).
"""

from sync.admin.base import DOCUMENT_ADMIN, Outcomes, ReadOnlyInline, document_admin_url, money_column
from sync.admin.bindings import EXCEPTION_CHANGE, BindingAdmin, lineage_card
from sync.admin.documents import (
    AllocationInline,
    CreditAllocationInline,
    CreditNoteAdmin,
    CreditNoteLineInline,
    CustomerAdmin,
    DocumentAdmin,
    InvoiceAdmin,
    InvoiceLineInline,
    LineageMixin,
    LineInline,
    PaymentAdmin,
    PaymentAllocationAdmin,
    PaymentAllocationInline,
)
from sync.admin.jobs import (
    HttpExchangeInline,
    SyncAttemptAdmin,
    SyncAttemptInline,
    SyncCursorAdmin,
    SyncJobAdmin,
)
from sync.admin.mappings import (
    REFERENCE_KIND,
    MappingRowAdmin,
    MappingRowForm,
    MappingRowFormSet,
    MappingRowInline,
    MappingSetAdmin,
    ReferenceDataAdmin,
    ReferenceSuggestInput,
)
from sync.admin.outbox import PushOperationAdmin
from sync.admin.profiles import SyncProfileAdmin
from sync.admin.summaries import SummaryMemberInline, SummaryPostingAdmin

__all__ = [
    "DOCUMENT_ADMIN",
    "EXCEPTION_CHANGE",
    "REFERENCE_KIND",
    "AllocationInline",
    "BindingAdmin",
    "CreditAllocationInline",
    "CreditNoteAdmin",
    "CreditNoteLineInline",
    "CustomerAdmin",
    "DocumentAdmin",
    "HttpExchangeInline",
    "InvoiceAdmin",
    "InvoiceLineInline",
    "LineInline",
    "LineageMixin",
    "MappingRowAdmin",
    "MappingRowForm",
    "MappingRowFormSet",
    "MappingRowInline",
    "MappingSetAdmin",
    "Outcomes",
    "PaymentAdmin",
    "PaymentAllocationAdmin",
    "PaymentAllocationInline",
    "PushOperationAdmin",
    "ReadOnlyInline",
    "ReferenceDataAdmin",
    "ReferenceSuggestInput",
    "SummaryMemberInline",
    "SummaryPostingAdmin",
    "SyncAttemptAdmin",
    "SyncAttemptInline",
    "SyncCursorAdmin",
    "SyncJobAdmin",
    "SyncProfileAdmin",
    "document_admin_url",
    "lineage_card",
    "money_column",
]
