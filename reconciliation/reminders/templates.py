"""Reminder templates: a sandboxed engine, the context a template reads, checking and rendering."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any

from babel.numbers import format_currency
from django.conf import settings
from django.template import Context, Engine, Library, TemplateSyntaxError, defaultfilters, defaulttags
from django.template.base import FilterExpression, Node, Variable
from django.template.loader import render_to_string
from django.template.smartif import TokenBase
from django.utils.translation import to_locale

from connectors.money import currency_exponent
from reconciliation.models import Reminder, ReminderPolicy
from sync.models import Customer, Invoice

Stage = Reminder.Stage


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
