"""Daily summaries: what they share (kinds, numbering) and which day is closed."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from reconciliation.models import ReconciliationException
from sync import mapping
from sync.models import ObjectType, PushOperation, SummaryPosting, SyncProfile

Kind = SummaryPosting.Kind
ExceptionKind = ReconciliationException.Kind
Op = PushOperation.Operation
State = PushOperation.State
SUMMARY_CUSTOMER = "*summary*"  # the customer mapping row's source value for summaries
KIND_OF = {
    ObjectType.INVOICE: Kind.INVOICE,
    ObjectType.CREDIT_NOTE: Kind.CREDIT_NOTE,
    ObjectType.PAYMENT: Kind.PAYMENT,
}
TYPE_OF = {kind: object_type for object_type, kind in KIND_OF.items()}
PREFIX = {Kind.INVOICE: "DS", Kind.CREDIT_NOTE: "DSC", Kind.PAYMENT: "DSP"}
NOT_SALES = ("draft", "void", "deleted")


def summary_mode(profile: SyncProfile) -> bool:
    return profile.posting_mode == SyncProfile.PostingMode.DAILY_SUMMARY


# --- which day, and when it is closed -----------------------------------------------------------------
def grace_minutes() -> int:
    return int(settings.SYNC_SUMMARY_GRACE_MINUTES)


def summary_last_closed_day(now: datetime | None = None) -> date:
    """The newest day that may be posted: day D closes at midnight after it, local time, plus the grace
    period (late webhooks and pulls of the day land in it)."""
    local = timezone.localtime(now or timezone.now()) - timedelta(minutes=grace_minutes())
    return local.date() - timedelta(days=1)


def summary_number(
    kind: str, day: date, currency: str, deposit_account: str, table: mapping.MappingTable
) -> str:
    """The summary's number in the destination, and its lookup reference: the same inputs, the same
    number, so a create after a crash finds what an earlier attempt made."""
    body = f"{PREFIX[kind]}-{day.isoformat()}-{currency}"
    if deposit_account:
        body = f"{body}-{deposit_account}"
    return mapping.document_number(body, table)
