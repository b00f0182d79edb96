"""Payment reminders: which invoices are due a reminder, which must not get one (and why), and the email.

Schedule. A policy gives every invoice fixed reminder dates counted from its due date: `days_before_due`
before it, the due date itself, then every `every_days_after` days after it, at most
`max_overdue_reminders` times. A run on day T looks, per invoice, at the latest of those dates in the
catch-up window (T - REMINDER_CATCH_UP_DAYS, T]. If that date has no `Reminder` row yet, the run sends it
(or records why it skipped it); earlier dates it missed are stale and never sent. So a run that did not
happen is made up once by the next one, with only the latest reminder, and a second run the same day
finds the row and sends nothing.

Exactly once. The row is claimed (inserted, unique per policy, invoice, stage and date) before the email
leaves, so two runs at once cannot both send it. An error reported by the mail backend is recorded as
`failed` and retried by the next run while the date is in the window; a run that died between claiming
and sending leaves the row `failed` as unconfirmed and it is not retried: a customer is never emailed
twice for one reminder.

Which policy. An invoice follows the most specific enabled policy that matches it (profile and customer
group, then group, then profile, then a catch-all; ties by name), so a customer never gets two reminders
for one invoice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from babel.numbers import format_currency
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import IntegrityError, transaction
from django.template import Context, Engine, Library, TemplateSyntaxError, defaultfilters, defaulttags
from django.template.base import FilterExpression, Node, Variable
from django.template.loader import render_to_string
from django.template.smartif import TokenBase
from django.utils import timezone
from django.utils.translation import to_locale

from connectors.money import currency_exponent
from reconciliation.models import ReconciliationException, Reminder, ReminderPolicy
from sync.jobs import job_enqueue
from sync.models import Binding, Customer, Invoice, ObjectType, Payment, PaymentAllocation, SyncJob

log = logging.getLogger(__name__)

Stage = Reminder.Stage
OWED = (Invoice.Status.OPEN, Invoice.Status.PARTIALLY_PAID)
SETTLED = {"paid", "void", "deleted"}
PENDING_PAYMENT = {"pending", "processing"}
UNCONFIRMED = "Sending started but was never confirmed; not retried, so the customer is never emailed twice."
CHUNK = 500


# --- templates ----------------------------------------------------------------------------------------
# Tags that only shape text. Left out: load, include, extends, debug (it prints the whole context), url,
# csrf_token, and anything that reaches files or other code.
SAFE_TAGS = (
    "autoescape", "comment", "cycle", "filter", "firstof", "for", "if", "ifchanged", "now", "regroup",
    "resetcycle", "spaceless", "templatetag", "verbatim", "widthratio", "with",
)  # fmt: skip


class TemplateProblemError(ValueError):
    """A reminder template that does not compile, or names a variable the context does not have."""


@cache
def _engine(autoescape: bool) -> Engine:
    """A template engine with no loaders and no libraries: policy text can only read its context."""
    library = Library()
    library.filters.update(defaultfilters.register.filters)
    library.tags.update({name: defaulttags.register.tags[name] for name in SAFE_TAGS})
    engine = Engine(loaders=[], libraries={}, autoescape=autoescape)
    engine.template_builtins = [library]
    return engine


def money_format(value: Decimal, currency: str) -> str:
    """An amount as the currency writes it, at its ISO 4217 minor unit: JP¥1,500, £12.30, KWD12.345."""
    quantized = value.quantize(Decimal(1).scaleb(-currency_exponent(currency)))
    return format_currency(quantized, currency, locale=to_locale(settings.LANGUAGE_CODE))


def reminder_context(invoice: Invoice, *, stage: str, run_date: date) -> dict[str, Any]:
    """Everything a template can read: plain values only, so no lookup reaches another model."""
    money = lambda value: money_format(value, invoice.currency)  # noqa: E731
    due = invoice.due_date or run_date
    customer = invoice.customer
    return {
        "invoice": {
            "number": invoice.number,
            "issue_date": invoice.issue_date,
            "due_date": invoice.due_date,
            "currency": invoice.currency,
            "subtotal": money(invoice.subtotal),
            "tax_total": money(invoice.tax_total),
            "total": money(invoice.total),
            "amount_paid": money(invoice.amount_paid),
            "amount_due": money(invoice.amount_due),
            "status": invoice.get_status_display(),
            "memo": invoice.memo,
        },
        "customer": {"name": customer.name, "email": customer.email},
        "company_name": settings.COMPANY_NAME,
        "today": run_date,
        "stage": stage,
        "days_overdue": max(0, (run_date - due).days),
        "days_until_due": max(0, (due - run_date).days),
    }


def _sample_context() -> dict[str, Any]:
    customer = Customer(name="Sample Customer Ltd", email="accounts@example.com")
    invoice = Invoice(
        number="INV-0001",
        customer=customer,
        currency=settings.BASE_CURRENCY,
        issue_date=date(2026, 1, 1),
        due_date=date(2026, 1, 31),
        subtotal=Decimal(100),
        tax_total=Decimal(20),
        total=Decimal(120),
        amount_paid=Decimal(20),
        amount_due=Decimal(100),
    )
    return reminder_context(invoice, stage=Stage.OVERDUE, run_date=date(2026, 2, 7))


def template_variables() -> list[str]:
    """The names a template may use, for help texts and error messages."""
    names = []
    for key, value in _sample_context().items():
        names += [f"{key}.{sub}" for sub in value] if isinstance(value, dict) else [key]
    return names


def _variables(value: Any, depth: int = 0) -> Iterator[Variable]:
    if depth > 8:
        return
    if isinstance(value, Variable):
        yield value
    elif isinstance(value, FilterExpression):
        yield from _variables(value.var, depth + 1)
        for _func, args in value.filters:
            for lookup, arg in args:
                if lookup:
                    yield from _variables(arg, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _variables(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _variables(item, depth + 1)
    elif isinstance(value, TokenBase):  # an {% if %} condition: literals and operators
        for name in ("value", "first", "second"):
            yield from _variables(getattr(value, name, None), depth + 1)


def _bound_names(nodes: Iterable[Node]) -> set[str]:
    """Names the template itself defines ({% for x in ... %}, {% with x=... %}, ... as x)."""
    names = {"forloop"}
    for node in nodes:
        names.update(getattr(node, "loopvars", None) or [])
        names.update(getattr(node, "extra_context", None) or {})
        for attr in ("asvar", "variable_name", "var_name"):
            if isinstance(getattr(node, attr, None), str):
                names.add(getattr(node, attr))
    return names


def template_check(text: str) -> None:
    """Compile the text and check every variable it reads exists; TemplateProblemError says what is wrong."""
    try:
        template = _engine(False).from_string(text)
    except TemplateSyntaxError as exc:
        raise TemplateProblemError(f"does not compile: {exc}") from None
    sample = _sample_context()
    nodes = template.nodelist.get_nodes_by_type(Node)
    bound = _bound_names(nodes)
    for node in nodes:
        for name, value in vars(node).items():
            if name in ("token", "origin", "nodelist") or name.startswith("nodelist"):
                continue
            for variable in _variables(value):
                _check_variable(variable, sample, bound)
    try:
        template.render(Context(sample, autoescape=False))
    except Exception as exc:  # a filter given a bad argument, and the like
        raise TemplateProblemError(f"does not render: {type(exc).__name__}: {exc}") from None


def _check_variable(variable: Variable, sample: dict[str, Any], bound: set[str]) -> None:
    lookups = variable.lookups
    if not lookups or lookups[0] in bound:
        return
    known = ", ".join(template_variables())
    dotted = ".".join(lookups)
    if lookups[0] not in sample:
        raise TemplateProblemError(f"unknown variable {{{{ {dotted} }}}}; known: {known}")
    value = sample[lookups[0]]
    if isinstance(value, dict) and len(lookups) > 1 and lookups[1] not in value:
        raise TemplateProblemError(f"unknown variable {{{{ {dotted} }}}}; known: {known}")


def reminder_render(policy: ReminderPolicy, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text body, HTML body) from the policy's templates."""
    subject = _engine(False).from_string(policy.subject_template).render(Context(context, autoescape=False))
    body = _engine(False).from_string(policy.body_template).render(Context(context, autoescape=False))
    html = render_to_string("reconciliation/reminder_email.html", {"body": body, "subject": subject})
    return " ".join(subject.split())[:255], body.strip() + "\n", html


# --- schedule -----------------------------------------------------------------------------------------
def policy_slots(policy: ReminderPolicy, due: date) -> list[tuple[str, date]]:
    """Every reminder date the policy gives an invoice due on `due`, in date order."""
    slots = []
    if policy.days_before_due:
        slots.append((Stage.BEFORE_DUE, due - timedelta(days=policy.days_before_due)))
    if policy.on_due_date:
        slots.append((Stage.ON_DUE, due))
    if policy.every_days_after:
        slots += [
            (Stage.OVERDUE, due + timedelta(days=policy.every_days_after * k))
            for k in range(1, policy.max_overdue_reminders + 1)
        ]
    return slots


def slot_due(policy: ReminderPolicy, due: date, run_date: date, window: int) -> tuple[str, date] | None:
    """The latest reminder date in (run_date - window, run_date], or None."""
    eligible = [slot for slot in policy_slots(policy, due) if run_date - timedelta(days=window) < slot[1]]
    eligible = [slot for slot in eligible if slot[1] <= run_date]
    return eligible[-1] if eligible else None


def catch_up_days() -> int:
    return int(getattr(settings, "REMINDER_CATCH_UP_DAYS", 7))


def schedule_time() -> time | None:
    raw = getattr(settings, "REMINDER_SCHEDULE_TIME", "")
    return time.fromisoformat(raw) if raw else None


def next_run_date(now: datetime | None = None) -> date:
    """The day the next scheduled run will handle: today before the schedule time, else tomorrow."""
    local = timezone.localtime(now or timezone.now())
    at = schedule_time()
    if at is None or local.time() < at:
        return local.date()
    return local.date() + timedelta(days=1)


def _specificity(policy: ReminderPolicy) -> tuple[int, int]:
    return (1 if policy.customer_group else 0, 1 if policy.profile_id else 0)


def _matches(policy: ReminderPolicy, invoice: Invoice) -> bool:
    if policy.profile_id and invoice.source_connection_id != policy.profile.source_id:  # type: ignore[union-attr]
        return False
    return not policy.customer_group or invoice.customer.group == policy.customer_group


def governing_policy(invoice: Invoice, policies: list[ReminderPolicy]) -> ReminderPolicy | None:
    """The most specific enabled policy that matches the invoice (policies come ordered by name)."""
    best = None
    for policy in policies:
        if _matches(policy, invoice) and (best is None or _specificity(policy) > _specificity(best)):
            best = policy
    return best


def _candidates(policy: ReminderPolicy, run_date: date, window: int) -> Any:
    """Owed invoices whose due date puts one of the policy's reminder dates in the window."""
    offsets = [-(policy.days_before_due or 0)] if policy.days_before_due else []
    offsets += [0] if policy.on_due_date else []
    if policy.every_days_after and policy.max_overdue_reminders:
        offsets += [policy.every_days_after, policy.every_days_after * policy.max_overdue_reminders]
    if not offsets:
        return Invoice.objects.none()
    queryset = Invoice.objects.filter(
        status__in=OWED,
        amount_due__gt=0,
        due_date__gt=run_date - timedelta(days=window + max(offsets)),
        due_date__lte=run_date - timedelta(days=min(offsets)),
    )
    if policy.profile_id:
        queryset = queryset.filter(source_connection_id=policy.profile.source_id)  # type: ignore[union-attr]
    if policy.customer_group:
        queryset = queryset.filter(customer__group=policy.customer_group)
    return queryset.select_related("customer", "source_connection").order_by("due_date", "pk")


# --- what stops a reminder ----------------------------------------------------------------------------
def _system(connection: Any) -> str:
    """The platform and the connection name as finance staff know them: "Xero (acme-xero)"."""
    if connection is None:
        return "Ledgerlink"
    return f"{connection.platform_label} ({connection.name})"


def _is_zero(raw: Any) -> bool:
    try:
        return raw not in (None, "") and Decimal(str(raw)) <= 0
    except InvalidOperation:
        return False  # not a number: the snapshot does not tell


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def suppressions(invoices: list[Invoice]) -> dict[int, list[str]]:
    """Why each invoice must not be reminded about now (an empty list: it may be).

    A fixed number of queries whatever the number of invoices (per chunk of 500).
    """
    reasons: dict[int, list[str]] = {invoice.pk: [] for invoice in invoices}
    by_id = {invoice.pk: invoice for invoice in invoices}
    ids = list(by_id)
    for invoice in invoices:
        if invoice.status not in OWED or invoice.amount_due <= 0:
            reasons[invoice.pk].append(
                f"Ledgerlink shows it {invoice.status}, amount due {invoice.amount_due}"
            )
        if not invoice.customer.email:
            reasons[invoice.pk].append(f"customer {invoice.customer.name} has no email address")

    # Each copy of the invoice elsewhere, as last read from or written to that system.
    invoice_at: dict[tuple[int, str], int] = {}
    for chunk in _chunks(ids):
        bindings = Binding.objects.filter(object_type=ObjectType.INVOICE, object_id__in=chunk)
        for binding in bindings.select_related("connection"):
            invoice_at[(binding.connection_id, binding.external_id)] = binding.object_id
            snapshot, where = binding.snapshot or {}, _system(binding.connection)
            if binding.remote_deleted:
                reasons[binding.object_id].append(f"{where} shows it deleted")
            elif snapshot.get("status") in SETTLED:
                reasons[binding.object_id].append(f"{where} shows it {snapshot['status']}")
            elif _is_zero(snapshot.get("amount_due")):
                reasons[binding.object_id].append(f"{where} shows amount due {snapshot['amount_due']}")

    # Payments on their way: pending in Ledgerlink, or pending in any system's copy of a payment.
    for chunk in _chunks(ids):
        allocations = PaymentAllocation.objects.filter(invoice_id__in=chunk, payment__status="pending")
        for allocation in allocations.select_related("payment__source_connection"):
            payment = allocation.payment
            reasons[allocation.invoice_id].append(
                f"{_system(payment.source_connection)} shows payment {payment.reference} pending"
            )
    pending = Binding.objects.filter(object_type=ObjectType.PAYMENT, snapshot__status__in=PENDING_PAYMENT)
    for binding in pending.select_related("connection"):
        snapshot = binding.snapshot
        for allocation in snapshot.get("allocations") or []:
            if not isinstance(allocation, dict):
                continue
            invoice_id = allocation.get("invoice_id")
            if invoice_id not in reasons:
                invoice_id = invoice_at.get((binding.connection_id, str(allocation.get("external_id") or "")))
            if invoice_id in reasons:
                reference = snapshot.get("reference") or binding.external_number or binding.external_id
                reasons[invoice_id].append(
                    f"{_system(binding.connection)} shows payment {reference} {snapshot['status']}"
                )

    # Findings someone still has to settle.
    open_exceptions = ReconciliationException.objects.filter(state__in=ReconciliationException.OPEN_STATES)
    for chunk in _chunks(ids):
        mismatches = open_exceptions.filter(
            kind=ReconciliationException.Kind.STATUS_MISMATCH,
            object_type=ObjectType.INVOICE,
            object_id__in=chunk,
        )
        for exception in mismatches:
            reasons[exception.object_id].append(f"open status exception #{exception.pk}: {exception.title}")
    unmatched = list(open_exceptions.filter(kind=ReconciliationException.Kind.UNMATCHED_PAYMENT))
    payment_ids = [e.object_id for e in unmatched if e.object_type == ObjectType.PAYMENT and e.object_id]
    payments = {
        row["pk"]: row
        for row in Payment.objects.filter(pk__in=payment_ids).values("pk", "customer_id", "currency")
    }
    for exception in unmatched:
        payment = payments.get(exception.object_id) if exception.object_type == ObjectType.PAYMENT else None
        customer_id = payment["customer_id"] if payment else None
        named = str((exception.details or {}).get("customer") or "").lower()
        currency = exception.currency or (payment["currency"] if payment else "")
        for invoice in invoices:
            customer = invoice.customer
            same = customer_id == customer.pk or (
                named and named in {customer.email.lower(), customer.name.lower()}
            )
            if same and currency == invoice.currency:
                reasons[invoice.pk].append(
                    f"open unmatched payment exception #{exception.pk} for this customer in {currency}: "
                    f"{exception.title}"
                )
    return reasons


# --- planning and sending -----------------------------------------------------------------------------
@dataclass
class Planned:
    """One reminder the run would handle: send it, or skip it for the reasons given."""

    policy: ReminderPolicy
    invoice: Invoice
    stage: str
    scheduled_for: date
    reasons: list[str] = field(default_factory=list)
    retry: Reminder | None = None
    subject: str = ""
    body: str = ""
    html: str = ""

    @property
    def action(self) -> str:
        return "skip" if self.reasons else "send"

    @property
    def recipient(self) -> str:
        return self.invoice.customer.email

    @property
    def stage_label(self) -> str:
        return Stage(self.stage).label

    @property
    def amount_due(self) -> str:
        return money_format(self.invoice.amount_due, self.invoice.currency)


def reminders_plan(*, run_date: date, policies: Iterable[ReminderPolicy] | None = None) -> list[Planned]:
    """What a run on `run_date` would send and skip, and why. Reads only; the preview shows this."""
    window = catch_up_days()
    enabled = list(ReminderPolicy.objects.filter(enabled=True).select_related("profile").order_by("name"))
    wanted = enabled if policies is None else [p for p in enabled if p.pk in {q.pk for q in policies}]
    planned: list[Planned] = []
    for policy in wanted:
        due: list[Planned] = []
        for invoice in _candidates(policy, run_date, window):
            slot = slot_due(policy, invoice.due_date, run_date, window)
            if slot is None or governing_policy(invoice, enabled) != policy:
                continue
            due.append(Planned(policy=policy, invoice=invoice, stage=slot[0], scheduled_for=slot[1]))
        recorded: dict[tuple[int, str, date], Reminder] = {}
        for chunk in _chunks([item.invoice.pk for item in due]):
            rows = Reminder.objects.filter(
                policy=policy, invoice_id__in=chunk, scheduled_for__gt=run_date - timedelta(days=window)
            )
            recorded.update({(row.invoice_id, row.stage, row.scheduled_for): row for row in rows})
        for item in due:
            row = recorded.get((item.invoice.pk, item.stage, item.scheduled_for))
            if row is None:
                planned.append(item)
            elif row.state == Reminder.State.FAILED and row.reason != UNCONFIRMED:
                item.retry = row
                planned.append(item)
    why = suppressions([item.invoice for item in planned])
    for item in planned:
        item.reasons = why[item.invoice.pk]
        if item.action == "send":
            context = reminder_context(item.invoice, stage=item.stage, run_date=run_date)
            try:
                item.subject, item.body, item.html = reminder_render(item.policy, context)
            except Exception as exc:  # a template broken outside the admin form: this one fails, not the run
                item.reasons = [f"the policy's template does not render: {type(exc).__name__}: {exc}"]
    return planned


@dataclass
class RunReport:
    seen: int = 0
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    messages: list[str] = field(default_factory=list)


def _claim(item: Planned, job: SyncJob | None, state: str, reason: str) -> Reminder | None:
    """Record the reminder before anything leaves; None when another run got there first."""
    values = {
        "state": state,
        "reason": reason,
        "recipient": item.recipient,
        "subject": item.subject,
        "body": item.body,
        "job": job,
    }
    if item.retry is not None:
        claimed = (
            Reminder.objects.filter(pk=item.retry.pk, state=Reminder.State.FAILED)
            .exclude(reason=UNCONFIRMED)
            .update(**values)
        )
        return Reminder.objects.get(pk=item.retry.pk) if claimed else None
    try:
        with transaction.atomic():
            return Reminder.objects.create(
                policy=item.policy,
                invoice=item.invoice,
                stage=item.stage,
                scheduled_for=item.scheduled_for,
                **values,
            )
    except IntegrityError:
        return None


def _send(item: Planned, connection: Any, *, to: str = "") -> None:
    policy = item.policy
    message = EmailMultiAlternatives(
        subject=item.subject,
        body=item.body,
        from_email=policy.from_email or settings.DEFAULT_FROM_EMAIL,
        to=[to or item.recipient],
        reply_to=[policy.reply_to] if policy.reply_to else None,
        connection=connection,
    )
    message.attach_alternative(item.html, "text/html")
    message.send(fail_silently=False)


def reminders_send(
    *,
    run_date: date,
    job: SyncJob | None = None,
    heartbeat: Callable[[int], None] | None = None,
) -> RunReport:
    """Send what `reminders_plan` lists and record each one: sent, skipped with its reasons, or failed.

    A problem with one reminder is recorded on it; the others go on.
    """
    report = RunReport()
    plan = reminders_plan(run_date=run_date)
    if job is not None:
        SyncJob.objects.filter(pk=job.pk).update(progress_total=len(plan))
    connection = get_connection()
    try:
        connection.open()
    except Exception:  # each send retries the connection and records its own error
        log.warning("could not open the mail connection", exc_info=True)
    try:
        for item in plan:
            report.seen += 1
            _handle(item, job, connection, report)
            if heartbeat is not None:
                heartbeat(1)
    finally:
        connection.close()
    report.messages.insert(
        0, f"{run_date}: {report.sent} sent, {report.skipped} skipped, {report.failed} failed"
    )
    return report


def _handle(item: Planned, job: SyncJob | None, connection: Any, report: RunReport) -> None:
    label = f"invoice {item.invoice.number} ({item.stage_label.lower()} {item.scheduled_for})"
    if item.reasons:
        if _claim(item, job, Reminder.State.SKIPPED, "; ".join(item.reasons)) is not None:
            report.skipped += 1
        return
    reminder = _claim(item, job, Reminder.State.FAILED, UNCONFIRMED)
    if reminder is None:
        return  # another run is handling it
    try:
        _send(item, connection)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        Reminder.objects.filter(pk=reminder.pk).update(state=Reminder.State.FAILED, reason=error)
        report.failed += 1
        report.messages.append(f"{label}: {error}")
        return
    Reminder.objects.filter(pk=reminder.pk).update(
        state=Reminder.State.SENT, reason="", sent_at=timezone.now()
    )
    report.sent += 1


def policy_test_send(policy: ReminderPolicy, *, to: str) -> str:
    """Email the policy's reminder to `to` (not the customer), rendered for the next invoice it would remind
    about, or for a sample invoice. Records nothing. Returns what it was rendered for."""
    if not to:
        raise ValueError("your user has no email address: add one to receive a test email")
    run_date = timezone.localdate()
    enabled = list(ReminderPolicy.objects.filter(enabled=True).select_related("profile"))
    invoice = next(
        (
            invoice
            for invoice in _candidates(policy, run_date + timedelta(days=365), 730)
            if governing_policy(invoice, enabled) in (policy, None)
        ),
        None,
    )
    if invoice is None:
        context, label = _sample_context(), "a sample invoice"
    else:
        stage = Stage.OVERDUE if invoice.due_date < run_date else Stage.ON_DUE  # type: ignore[operator]
        context = reminder_context(invoice, stage=stage, run_date=run_date)
        label = f"invoice {invoice.number}"
    subject, body, html = reminder_render(policy, context)
    item = Planned(policy=policy, invoice=Invoice(), stage=context["stage"], scheduled_for=run_date)
    item.subject, item.body, item.html = f"[Test] {subject}"[:255], body, html
    _send(item, None, to=to)
    return label


# --- jobs ---------------------------------------------------------------------------------------------
def reminders_job(job: SyncJob, heartbeat: Callable[[int], None]) -> RunReport:
    """The handler of "remind" jobs: the run date is fixed when the job is queued, so a retry keeps it."""
    raw = (job.params or {}).get("date")
    run_date = date.fromisoformat(raw) if raw else timezone.localdate()
    report = reminders_send(run_date=run_date, job=job, heartbeat=heartbeat)
    SyncJob.objects.filter(pk=job.pk).update(
        seen=report.seen, created=report.sent, skipped=report.skipped, failed=report.failed
    )
    return report


def reminders_enqueue(*, trigger: str, run_date: date | None = None, user: Any = None) -> SyncJob | None:
    """Queue a reminder run; None while one is already queued or running."""
    with transaction.atomic():
        active = (SyncJob.State.QUEUED, SyncJob.State.RUNNING)
        if SyncJob.objects.filter(kind=SyncJob.Kind.REMIND, state__in=active).exists():
            return None
        job = job_enqueue(
            kind=SyncJob.Kind.REMIND,
            trigger=trigger,
            params={"date": (run_date or timezone.localdate()).isoformat()},
            user=user,
        )
    return job


def reminders_scheduled() -> int | None:
    """The daily schedule's tick (django-q2 task)."""
    job = reminders_enqueue(trigger=SyncJob.Trigger.SCHEDULE)
    return job.pk if job else None


# --- demo ---------------------------------------------------------------------------------------------
DEMO_POLICY = "Standard payment reminders"
DEMO_SUBJECT = (
    "{% if stage == 'overdue' %}Overdue: {% endif %}invoice {{ invoice.number }} from {{ company_name }}"
)
DEMO_BODY = """Dear {{ customer.name }},

{% if stage == 'before_due' %}A friendly reminder that invoice {{ invoice.number }} for {{ invoice.amount_due }} is due on {{ invoice.due_date|date:"j F Y" }}, in {{ days_until_due }} day{{ days_until_due|pluralize }}.{% elif stage == 'on_due' %}Invoice {{ invoice.number }} for {{ invoice.amount_due }} is due today.{% else %}Invoice {{ invoice.number }} was due on {{ invoice.due_date|date:"j F Y" }} and {{ invoice.amount_due }} is still outstanding ({{ days_overdue }} day{{ days_overdue|pluralize }} overdue).{% endif %}

Invoice total: {{ invoice.total }}
Paid so far: {{ invoice.amount_paid }}
Amount due: {{ invoice.amount_due }}

If you have already paid, thank you, and please ignore this email.

Kind regards,
{{ company_name }}
"""  # noqa: E501


def policy_demo_ensure() -> tuple[ReminderPolicy, bool]:
    """The demo's reminder policy (created once; edits made in the admin are kept)."""
    return ReminderPolicy.objects.get_or_create(
        name=DEMO_POLICY,
        defaults={
            "days_before_due": 3,
            "on_due_date": True,
            "every_days_after": 7,
            "max_overdue_reminders": 3,
            "subject_template": DEMO_SUBJECT,
            "body_template": DEMO_BODY,
        },
    )
