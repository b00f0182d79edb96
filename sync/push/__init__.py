"""Push: canonical documents to a profile's destination through the outbox, exactly once.

Every write is a `PushOperation` whose idempotency key is derived from (profile, document, document
version, operation). The protocol for each one:

1. If any operation for the document was ever sent and never settled (`in_flight`, `uncertain`,
   `retry_scheduled`), look the document up by its deterministic reference first, and bind what is found.
2. Commit the operation `in_flight` (attempts counted) before the request leaves.
3. Send it with the key as the platform's idempotency header (`requestid`, `Idempotency-Key`).
4. Straight after success, commit the binding (destination id, version) and `succeeded` in one
   transaction. A lost answer (timeout or 5xx after the request left) is `uncertain`: never resent blind.

Updates carry the remote version (SyncToken, UpdatedDateUTC): a destination changed since we wrote it
raises a conflict exception instead of being overwritten. Dependencies go first: the customer before
the invoice, invoices before credit notes and payments, credit allocations after both.

The package: `common` (states, crash points, the run's report), `records` (hub rows as canonical
records), `copies` (comparing what was sent with a destination's copy), `planning` (the mapping
snapshot, candidates, one outbox operation per write), `outbox` (the protocol for one write), `batches`
(the protocol for creates sent several to a request) and `pusher` (a run of one profile). A test kills
the worker at the outbox's crash points through `sync.push.common.CRASH_HOOK`.
"""

from __future__ import annotations

from sync.push.common import (
    DATE_FIELDS,
    DONE,
    GONE,
    MODELS,
    ORDER,
    UNSETTLED,
    Prepared,
    PushPaused,
    PushReport,
    Unmatched,
    operation_key,
)
from sync.push.copies import comparable, unwrap
from sync.push.outbox import _bound_id, _exception, _settle, _succeed, execute
from sync.push.planning import _operation, _pages, _unsettled, candidates, mapping_url, operation_for
from sync.push.pusher import Pusher, operations_reset, push_run
from sync.push.records import document_label

__all__ = [
    "DATE_FIELDS",
    "DONE",
    "GONE",
    "MODELS",
    "ORDER",
    "UNSETTLED",
    "Prepared",
    "PushPaused",
    "PushReport",
    "Pusher",
    "Unmatched",
    "_bound_id",
    "_exception",
    "_operation",
    "_pages",
    "_settle",
    "_succeed",
    "_unsettled",
    "candidates",
    "comparable",
    "document_label",
    "execute",
    "mapping_url",
    "operation_for",
    "operation_key",
    "operations_reset",
    "push_run",
    "unwrap",
]
