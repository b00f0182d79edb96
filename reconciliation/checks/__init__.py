"""The reconciliation run: every canonical document against each of its copies, page by page.

`reconcile()` first asks the sync mirror to re-read each destination's copies (binding snapshots), then
pages through canonical invoices, credit notes and payments with a keyset on id. Per page it loads the
documents' bindings (one query), their allocations (payments), their places in daily summaries (profiles
that post a summary per day and currency) and, for copies that are not in place, what holds them back;
builds `rules.Document` / `rules.Copy` values; the pure rules in reconciliation/rules/ judge them, and
`services.findings_record` writes the page's findings in one transaction. Then it pages through the
posted daily summaries, comparing each one's totals with its members'. Memory is bounded by the page
size, whatever the number of documents.

Scope: with a profile, documents from its source and their copies on its destination; without one, every
document that has a copy (or should have one, by an enabled profile) on any connection other than its
origin; with `document`, that one document (or daily summary).

Modules: `scope` (what is read), `values` (the rules' values for a page), `summaries` (posted summaries
against their members), `run` (the run and its report).
"""

from reconciliation.checks.run import ReconcileReport, reconcile, reconcile_job
from reconciliation.checks.scope import DATE_FIELD, FIELDS, MODELS, Scope, page_size, scope_build, tolerances

__all__ = [
    "DATE_FIELD",
    "FIELDS",
    "MODELS",
    "ReconcileReport",
    "Scope",
    "page_size",
    "reconcile",
    "reconcile_job",
    "scope_build",
    "tolerances",
]
