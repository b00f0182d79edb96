"""The demo's reminder policy."""

from __future__ import annotations

from reconciliation.models import ReminderPolicy

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
