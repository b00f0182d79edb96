"""Payment reminders: the schedule, what stops a reminder, templates, the preview, the job and the admin."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from io import StringIO
from unittest import mock

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from reconciliation import reminders
from reconciliation.models import ReconciliationException, Reminder, ReminderPolicy
from reconciliation.reminders import sending
from sync.models import Binding, Payment, PaymentAllocation, SyncJob
from tests.factories import ConnectionFactory, CustomerFactory, InvoiceFactory, UserFactory

pytestmark = pytest.mark.django_db

DUE = date(2026, 3, 31)  # InvoiceFactory's due date


def make_policy(**values) -> ReminderPolicy:
    defaults = {
        "name": "Standard",
        "days_before_due": 3,
        "on_due_date": True,
        "every_days_after": 7,
        "max_overdue_reminders": 2,
        "subject_template": "Invoice {{ invoice.number }} from {{ company_name }}",
        "body_template": "Dear {{ customer.name }},\n{{ invoice.amount_due }} is due {{ invoice.due_date }}.",
        "reply_to": "accounts@example.com",
    }
    return ReminderPolicy.objects.create(**{**defaults, **values})


def run(day: date) -> reminders.RunReport:
    return reminders.reminders_send(run_date=day)


def skipped_reason(invoice) -> str:
    reminder = Reminder.objects.get(invoice=invoice)
    assert reminder.state == Reminder.State.SKIPPED
    return reminder.reason


# --- schedule -------------------------------------------------------------------------------------------
def test_before_due_reminder_goes_out_the_set_number_of_days_before(mailoutbox):
    make_policy()
    invoice = InvoiceFactory()

    assert run(date(2026, 3, 27)).sent == 0
    report = run(date(2026, 3, 28))

    assert report.sent == 1 and len(mailoutbox) == 1
    email = mailoutbox[0]
    assert email.to == [invoice.customer.email]
    assert email.reply_to == ["accounts@example.com"]
    assert email.subject == f"Invoice {invoice.number} from Ledgerlink"
    assert "£120.00 is due 31 Mar 2026" in email.body
    assert email.alternatives and email.alternatives[0][1] == "text/html"
    reminder = Reminder.objects.get()
    assert (reminder.stage, reminder.scheduled_for, reminder.state) == (
        "before_due",
        date(2026, 3, 28),
        "sent",
    )
    assert reminder.sent_at is not None and reminder.recipient == invoice.customer.email


def test_on_due_date_reminder(mailoutbox):
    make_policy(days_before_due=None)
    InvoiceFactory()

    run(DUE)

    assert len(mailoutbox) == 1
    assert Reminder.objects.get().stage == Reminder.Stage.ON_DUE


def test_overdue_every_n_days_stops_after_the_maximum(mailoutbox):
    make_policy(days_before_due=None, on_due_date=False, every_days_after=7, max_overdue_reminders=2)
    InvoiceFactory()

    sent = {day: run(day).sent for day in [date(2026, 4, d) for d in range(1, 31)]}

    assert [day for day, count in sent.items() if count] == [date(2026, 4, 7), date(2026, 4, 14)]
    assert len(mailoutbox) == 2
    assert set(Reminder.objects.values_list("stage", flat=True)) == {"overdue"}


def test_a_second_run_the_same_day_sends_nothing(mailoutbox):
    make_policy()
    InvoiceFactory()

    first, second = run(DUE), run(DUE)

    assert (first.sent, second.sent, second.seen) == (1, 0, 0)
    assert len(mailoutbox) == 1
    assert Reminder.objects.count() == 1


def test_missed_days_are_caught_up_once_with_only_the_latest_reminder(mailoutbox):
    make_policy()  # 28 Mar before due, 31 Mar on due, 7 Apr and 14 Apr overdue
    InvoiceFactory()
    run(date(2026, 3, 28))
    # no run from 29 March to 7 April

    report = run(date(2026, 4, 8))
    again = run(date(2026, 4, 9))

    assert report.sent == 1 and again.sent == 0
    assert len(mailoutbox) == 2
    assert sorted(Reminder.objects.values_list("stage", "scheduled_for")) == [
        ("before_due", date(2026, 3, 28)),
        ("overdue", date(2026, 4, 7)),
    ]


def test_a_reminder_older_than_the_catch_up_window_is_dropped(mailoutbox, settings):
    settings.REMINDER_CATCH_UP_DAYS = 3
    make_policy(days_before_due=None, on_due_date=False)
    InvoiceFactory()

    assert run(date(2026, 4, 11)).seen == 0  # 7 April's reminder is four days old
    assert run(date(2026, 4, 14)).sent == 1
    assert mailoutbox[0].subject.startswith("Invoice")


def test_the_most_specific_policy_wins_so_a_customer_gets_one_reminder(mailoutbox):
    make_policy(name="Everyone")
    vip = make_policy(name="VIP", customer_group="vip", subject_template="VIP {{ invoice.number }}")
    InvoiceFactory(customer=CustomerFactory(group="vip"))
    InvoiceFactory()

    run(DUE)

    assert len(mailoutbox) == 2
    assert sorted(m.subject.split()[0] for m in mailoutbox) == ["Invoice", "VIP"]
    assert Reminder.objects.filter(policy=vip).count() == 1


def test_a_profile_policy_only_covers_invoices_from_its_source(mailoutbox):
    from sync.models import SyncProfile

    source = ConnectionFactory(platform="stripe")
    profile = SyncProfile.objects.create(
        name="p", source=source, destination=ConnectionFactory(platform="xero")
    )
    make_policy(profile=profile)
    mine = InvoiceFactory(source_connection=source)
    InvoiceFactory()  # another source

    run(DUE)

    assert [m.to for m in mailoutbox] == [[mine.customer.email]]


# --- a policy change never repeats a reminder ------------------------------------------------------------
def test_a_shorter_cadence_does_not_repeat_the_overdue_reminder_just_sent(mailoutbox):
    policy = make_policy(days_before_due=None, on_due_date=False, every_days_after=7, max_overdue_reminders=4)
    invoice = InvoiceFactory()
    assert run(date(2026, 4, 7)).sent == 1
    policy.every_days_after = 5
    policy.save()

    sent = {day: run(day).sent for day in [date(2026, 4, d) for d in range(8, 21)]}

    # the 5 April and 10 April dates fall within 5 days of 7 April's reminder; 15 April and 20 April do not
    assert [day for day, count in sent.items() if count] == [date(2026, 4, 15), date(2026, 4, 20)]
    assert len(mailoutbox) == 3
    skipped = Reminder.objects.get(invoice=invoice, scheduled_for=date(2026, 4, 5))
    assert skipped.state == Reminder.State.SKIPPED
    assert skipped.reason == (
        "the overdue reminder of 2026-04-07 (policy Standard) already went out; "
        "the next overdue reminder waits until 5 days after it"
    )


def test_a_more_specific_policy_added_later_does_not_repeat_the_same_stage(mailoutbox):
    make_policy(name="General", days_before_due=None, on_due_date=True, every_days_after=None)
    invoice = InvoiceFactory(customer=CustomerFactory(group=""))
    assert run(DUE).sent == 1
    invoice.customer.group = "vip"
    invoice.customer.save()
    vip = make_policy(name="VIP", customer_group="vip", days_before_due=None, every_days_after=3)

    assert run(date(2026, 4, 1)).sent == 0
    assert run(date(2026, 4, 3)).sent == 1  # the VIP policy's first overdue reminder: another stage

    assert len(mailoutbox) == 2
    skipped = Reminder.objects.get(policy=vip, stage="on_due")
    assert skipped.state == Reminder.State.SKIPPED
    assert skipped.reason == "the due-date reminder of 2026-03-31 (policy General) already went out"


def test_a_reminder_that_failed_under_the_old_policy_does_not_stop_the_new_one(mailoutbox):
    general = make_policy(name="General", days_before_due=None, every_days_after=None)
    invoice = InvoiceFactory(customer=CustomerFactory(group="vip"))
    Reminder.objects.create(
        policy=general, invoice=invoice, stage="on_due", scheduled_for=DUE, state="failed", reason="SMTP 451"
    )
    make_policy(name="VIP", customer_group="vip", days_before_due=None, every_days_after=None)

    assert run(DUE).sent == 1


def test_a_reminder_never_confirmed_under_the_old_policy_counts_as_sent(mailoutbox):
    general = make_policy(name="General", days_before_due=None, every_days_after=None)
    invoice = InvoiceFactory(customer=CustomerFactory(group="vip"))
    Reminder.objects.create(
        policy=general,
        invoice=invoice,
        stage="on_due",
        scheduled_for=DUE,
        state="failed",
        reason=reminders.UNCONFIRMED,
    )
    make_policy(name="VIP", customer_group="vip", days_before_due=None, every_days_after=None)

    assert run(DUE).sent == 0 and mailoutbox == []


# --- what stops a reminder ----------------------------------------------------------------------------
def bind(invoice, snapshot, *, platform="xero", name="acme-xero", **values) -> Binding:
    connection = ConnectionFactory(platform=platform, name=name)
    return Binding.objects.create(
        connection=connection,
        object_type="invoice",
        object_id=invoice.pk,
        external_id=f"ext-{invoice.pk}",
        snapshot=snapshot,
        **values,
    )


def test_skipped_when_a_connected_system_shows_it_paid(mailoutbox):
    make_policy()
    invoice = InvoiceFactory()
    bind(invoice, {"status": "paid", "amount_due": "0.00", "currency": "GBP"})

    report = run(DUE)

    assert (report.sent, report.skipped) == (0, 1) and mailoutbox == []
    assert "Xero (acme-xero) shows it paid" in skipped_reason(invoice)


@pytest.mark.parametrize("status", ["void", "deleted"])
def test_skipped_when_a_connected_system_shows_it_void_or_deleted(mailoutbox, status):
    make_policy()
    invoice = InvoiceFactory()
    bind(invoice, {"status": status}, platform="quickbooks", name="books")

    run(DUE)

    assert mailoutbox == []
    assert f"QuickBooks Online (books) shows it {status}" in skipped_reason(invoice)


def test_skipped_when_a_connected_system_shows_nothing_left_to_pay(mailoutbox):
    make_policy()
    invoice = InvoiceFactory()
    bind(invoice, {"status": "open", "amount_due": "0.00"})

    run(DUE)

    assert mailoutbox == []
    assert "Xero (acme-xero) shows amount due 0.00" in skipped_reason(invoice)


def test_an_unknown_or_open_snapshot_does_not_stop_the_reminder(mailoutbox):
    make_policy()
    bind(InvoiceFactory(), {})
    bind(InvoiceFactory(), {"status": "partially_paid", "amount_due": "60.00"}, name="other")

    assert run(DUE).sent == 2


def test_skipped_while_a_payment_for_it_is_pending(mailoutbox):
    make_policy()
    invoice = InvoiceFactory()
    stripe = ConnectionFactory(platform="stripe", name="shop")
    payment = Payment.objects.create(
        reference="PAY-77",
        customer=invoice.customer,
        transaction_date=DUE,
        currency="GBP",
        amount=Decimal("120.00"),
        status=Payment.Status.PENDING,
        source_connection=stripe,
    )
    PaymentAllocation.objects.create(payment=payment, invoice=invoice, amount=Decimal("120.00"))

    run(DUE)

    assert mailoutbox == []
    assert "Stripe (shop) shows payment PAY-77 pending" in skipped_reason(invoice)


def test_a_completed_payment_for_part_of_it_does_not_stop_the_reminder(mailoutbox):
    make_policy()
    invoice = InvoiceFactory()
    payment = Payment.objects.create(
        reference="PAY-1", transaction_date=DUE, currency="GBP", amount=Decimal(20), customer=invoice.customer
    )
    PaymentAllocation.objects.create(payment=payment, invoice=invoice, amount=Decimal(20))

    assert run(DUE).sent == 1


@pytest.mark.parametrize("by", ["invoice_id", "external_id"])
def test_skipped_when_a_system_shows_a_pending_payment_naming_it(mailoutbox, by):
    make_policy()
    invoice = InvoiceFactory()
    books = bind(invoice, {"status": "open", "amount_due": "120.00"})
    allocation = {"invoice_id": invoice.pk, "external_id": None, "amount": "120.00"}
    if by == "external_id":
        allocation = {"invoice_id": None, "external_id": books.external_id, "amount": "120.00"}
    Binding.objects.create(
        connection=books.connection,
        object_type="payment",
        object_id=999,
        external_id="pay-ext-1",
        snapshot={"reference": "BANK-9", "status": "pending", "allocations": [allocation]},
    )

    run(DUE)

    assert mailoutbox == []
    assert "Xero (acme-xero) shows payment BANK-9 pending" in skipped_reason(invoice)


def exception(kind, **values) -> ReconciliationException:
    return ReconciliationException.objects.create(
        kind=kind,
        fingerprint=f"{kind}-{ReconciliationException.objects.count()}",
        title=f"{kind} found",
        **values,
    )


def test_skipped_while_a_status_exception_on_it_is_open(mailoutbox):
    make_policy()
    invoice, other = InvoiceFactory(), InvoiceFactory()
    found = exception("status_mismatch", object_type="invoice", object_id=invoice.pk)
    exception("status_mismatch", object_type="invoice", object_id=other.pk, state="resolved")

    run(DUE)

    assert [m.to for m in mailoutbox] == [[other.customer.email]]
    assert f"open status exception #{found.pk}" in skipped_reason(invoice)


def test_skipped_while_money_from_the_customer_in_its_currency_is_unmatched(mailoutbox):
    make_policy()
    invoice = InvoiceFactory()
    dollars = InvoiceFactory(customer=invoice.customer, currency="USD")
    payment = Payment.objects.create(
        reference="P-5", customer=invoice.customer, transaction_date=DUE, currency="GBP", amount=Decimal(120)
    )
    found = exception("unmatched_payment", object_type="payment", object_id=payment.pk, currency="GBP")

    run(DUE)

    assert [m.to for m in mailoutbox] == [[dollars.customer.email]]  # the USD invoice still gets one
    assert f"open unmatched payment exception #{found.pk}" in skipped_reason(invoice)


def test_skipped_when_the_customer_has_no_email(mailoutbox):
    make_policy()
    invoice = InvoiceFactory(customer=CustomerFactory(email="", name="Cash Sales"))

    run(DUE)

    assert mailoutbox == []
    assert "customer Cash Sales has no email address" in skipped_reason(invoice)


@pytest.mark.parametrize("status", ["paid", "void", "deleted", "draft"])
def test_an_invoice_ledgerlink_holds_settled_is_not_reminded_about(mailoutbox, status):
    make_policy()
    InvoiceFactory(status=status)
    InvoiceFactory(amount_due=Decimal(0))

    assert run(DUE).seen == 0
    assert mailoutbox == [] and not Reminder.objects.exists()


def test_a_skipped_reminder_is_not_retried_later_the_same_day(mailoutbox):
    make_policy()
    invoice = InvoiceFactory()
    binding = bind(invoice, {"status": "paid"})
    run(DUE)
    binding.snapshot = {"status": "open", "amount_due": "120.00"}
    binding.save()

    assert run(DUE).seen == 0
    assert mailoutbox == []


# --- sending ------------------------------------------------------------------------------------------
def test_a_send_the_mail_server_refused_is_recorded_and_retried_by_the_next_run(mailoutbox):
    make_policy()
    InvoiceFactory()
    with mock.patch(
        "django.core.mail.EmailMultiAlternatives.send", side_effect=ConnectionRefusedError("smtp down")
    ):
        report = run(DUE)
    reminder = Reminder.objects.get()
    assert report.failed == 1 and reminder.state == "failed"
    assert "ConnectionRefusedError: smtp down" in reminder.reason

    retry = run(date(2026, 4, 1))

    assert retry.sent == 1 and len(mailoutbox) == 1
    reminder.refresh_from_db()
    assert reminder.state == "sent" and reminder.reason == ""


def test_a_send_that_was_never_confirmed_is_not_retried(mailoutbox):
    policy = make_policy()
    invoice = InvoiceFactory()
    Reminder.objects.create(
        policy=policy, invoice=invoice, stage="on_due", scheduled_for=DUE, state="failed",
        reason=reminders.UNCONFIRMED,
    )  # fmt: skip

    assert run(DUE).seen == 0
    assert mailoutbox == []


def test_one_broken_reminder_does_not_stop_the_others(mailoutbox):
    make_policy()
    first, second = InvoiceFactory(), InvoiceFactory()
    real_send = sending._send

    def send(item, connection, **kwargs):
        if item.invoice.pk == first.pk:
            raise ValueError("bad address")
        return real_send(item, connection, **kwargs)

    with mock.patch.object(sending, "_send", send):
        report = run(DUE)

    assert (report.sent, report.failed) == (1, 1)
    assert [m.to for m in mailoutbox] == [[second.customer.email]]


# --- templates ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("currency", "amount", "shown"),
    [
        ("JPY", Decimal("15000"), "15,000"),
        ("KWD", Decimal("12.345"), "12.345"),
        ("GBP", Decimal("7.5"), "£7.50"),
    ],
)
def test_amounts_show_the_currency_minor_units(mailoutbox, currency, amount, shown):
    make_policy(body_template="Due: {{ invoice.amount_due }} of {{ invoice.total }}")
    InvoiceFactory(currency=currency, amount_due=amount, total=amount)

    run(DUE)

    body = mailoutbox[0].body
    assert shown in body
    if currency == "JPY":
        assert "15,000." not in body and "15,000.0" not in body
    if currency == "KWD":
        assert "12.3450" not in body and "KWD" in body


def test_the_body_renders_dates_and_days_overdue(mailoutbox):
    make_policy(
        days_before_due=None,
        on_due_date=False,
        body_template='{{ invoice.due_date|date:"j F Y" }}; {{ days_overdue }} days late; {{ stage }}',
    )
    InvoiceFactory()

    run(date(2026, 4, 7))

    assert mailoutbox[0].body.strip() == "31 March 2026; 7 days late; overdue"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{{ invoice.totl }}", "unknown variable {{ invoice.totl }}"),
        ("{{ invoice.customer.invoices }}", "unknown variable {{ invoice.customer.invoices }}"),
        ("{% if secret %}x{% endif %}", "unknown variable {{ secret }}"),
        ("{{ invoice.number|default:other }}", "unknown variable {{ other }}"),
        ("{% if invoice.number %}", "does not compile"),
        ("{% debug %}", "does not compile"),
        ('{% include "admin/base.html" %}', "does not compile"),
        ("{% load static %}", "does not compile"),
    ],
)
def test_template_check_refuses_what_would_not_render_safely(text, problem):
    with pytest.raises(reminders.TemplateProblemError) as caught:
        reminders.template_check(text)
    assert problem in str(caught.value)


def test_template_check_accepts_loops_and_names_the_template_defines():
    reminders.template_check(
        "{% with late=days_overdue %}{{ late }}{% endwith %}{% for c in invoice.number %}{{ c }}"
        "{{ forloop.counter }}{% endfor %}{% now 'Y' as year %}{{ year }}"
    )
    reminders.template_check(reminders.DEMO_BODY)
    reminders.template_check(reminders.DEMO_SUBJECT)


def test_the_admin_form_names_the_field_and_the_problem(client):
    client.force_login(UserFactory(is_superuser=True))
    data = {
        "name": "Bad",
        "enabled": "on",
        "on_due_date": "on",
        "max_overdue_reminders": "3",
        "subject_template": "{% if %}",
        "body_template": "Pay {{ invoice.amount_owed }}",
    }

    response = client.post(reverse("admin:reconciliation_reminderpolicy_add"), data)

    assert response.status_code == 200
    page = response.content.decode()
    assert "Subject template: does not compile" in page
    assert "Body template: unknown variable {{ invoice.amount_owed }}" in page
    assert not ReminderPolicy.objects.exists()


def test_the_admin_form_saves_a_good_policy(client):
    client.force_login(UserFactory(is_superuser=True))
    data = {
        "name": "Good",
        "enabled": "on",
        "on_due_date": "on",
        "max_overdue_reminders": "3",
        "subject_template": reminders.DEMO_SUBJECT,
        "body_template": reminders.DEMO_BODY,
    }

    response = client.post(reverse("admin:reconciliation_reminderpolicy_add"), data)

    assert response.status_code == 302, response.content.decode()[:2000]
    assert ReminderPolicy.objects.get().name == "Good"


# --- preview ------------------------------------------------------------------------------------------
def preview_setup():
    make_policy()
    sent = InvoiceFactory(number="INV-SEND")
    skipped = InvoiceFactory(number="INV-SKIP")
    bind(skipped, {"status": "paid"})
    return sent, skipped


def test_the_preview_page_shows_what_would_be_sent_and_skipped_and_records_nothing(client, mailoutbox):
    preview_setup()
    client.force_login(UserFactory(is_superuser=True))

    page = client.get(reverse("admin:reconciliation_reminderpolicy_preview_all"), {"date": "2026-03-31"})

    text = page.content.decode()
    assert page.status_code == 200
    assert "INV-SEND" in text and "Invoice INV-SEND from Ledgerlink" in text
    assert "INV-SKIP" in text and "Xero (acme-xero) shows it paid" in text
    assert mailoutbox == [] and not Reminder.objects.exists()


def test_the_preview_of_one_policy_and_a_bad_date(client):
    preview_setup()
    other = make_policy(name="Other", customer_group="nobody")
    client.force_login(UserFactory(is_superuser=True))

    page = client.get(
        reverse("admin:reconciliation_reminderpolicy_preview", args=[other.pk]), {"date": "31/03"}
    )

    text = page.content.decode()
    assert "date &#x27;31/03&#x27; is not a date" in text
    assert "INV-SEND" not in text


def test_dry_run_lists_the_same_and_sends_nothing(mailoutbox):
    preview_setup()
    out = StringIO()

    call_command("send_reminders", "--dry-run", "--date", "2026-03-31", stdout=out)

    text = out.getvalue()
    assert "would send 1, skip 1" in text
    assert "send  INV-SEND" in text and "skip  INV-SKIP" in text and "shows it paid" in text
    assert mailoutbox == [] and not Reminder.objects.exists()


def test_the_command_sends_through_a_job(mailoutbox):
    preview_setup()
    out = StringIO()

    call_command("send_reminders", "--date", "2026-03-31", stdout=out)
    call_command("send_reminders", "--date", "2026-03-31", stdout=out)

    assert len(mailoutbox) == 1
    jobs = SyncJob.objects.filter(kind="remind").order_by("pk")
    assert [(j.state, j.created, j.skipped) for j in jobs] == [("succeeded", 1, 1), ("succeeded", 0, 0)]


def test_the_command_refuses_a_bad_date():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--date '2026-02-30' is not a date"):
        call_command("send_reminders", "--date", "2026-02-30")


# --- job and schedule ---------------------------------------------------------------------------------
def test_the_daily_job_sends_once_and_a_second_tick_the_same_day_sends_nothing(
    mailoutbox, django_capture_on_commit_callbacks
):
    make_policy()
    InvoiceFactory()
    with time_machine.travel(datetime(2026, 3, 31, 8, 0, tzinfo=UTC), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            first = reminders.reminders_scheduled()
        with django_capture_on_commit_callbacks(execute=True):
            second = reminders.reminders_scheduled()

    assert first and second and first != second
    jobs = SyncJob.objects.filter(kind="remind").order_by("pk")
    assert [job.state for job in jobs] == ["succeeded", "succeeded"]
    assert jobs[0].params == {"date": "2026-03-31"}
    assert len(mailoutbox) == 1
    assert Reminder.objects.get().job_id == first


def test_a_tick_while_a_run_is_queued_queues_nothing():
    SyncJob.objects.create(kind="remind", trigger="schedule")

    assert reminders.reminders_scheduled() is None


def test_the_schedule_follows_the_setting(settings):
    from sync.schedules import _reminder_and_alert_schedules

    settings.REMINDER_SCHEDULE_TIME = "07:30"
    names = {item.name: item for item in _reminder_and_alert_schedules()}
    daily = names["ledgerlink:payment reminders"]
    assert (daily.func, daily.schedule_type, str(daily.at)) == (
        "reconciliation.reminders.reminders_scheduled",
        "D",
        "07:30:00",
    )
    settings.REMINDER_SCHEDULE_TIME = ""
    assert "ledgerlink:payment reminders" not in {item.name for item in _reminder_and_alert_schedules()}


def test_the_next_run_is_today_before_the_schedule_time_and_tomorrow_after(settings):
    settings.REMINDER_SCHEDULE_TIME = "08:00"
    assert reminders.next_run_date(datetime(2026, 3, 31, 7, 59, tzinfo=UTC)) == date(2026, 3, 31)
    assert reminders.next_run_date(datetime(2026, 3, 31, 8, 0, tzinfo=UTC)) == date(2026, 4, 1)


def test_the_demo_policy_loads_twice_without_a_twin():
    first, created = reminders.policy_demo_ensure()
    again, created_again = reminders.policy_demo_ensure()

    assert created and not created_again and first.pk == again.pk


def test_send_a_test_email_to_me(client, mailoutbox):
    policy = make_policy()
    InvoiceFactory(number="INV-T")
    client.force_login(UserFactory(is_superuser=True, email="me@example.com"))

    client.post(
        reverse("admin:reconciliation_reminderpolicy_changelist"),
        {"action": "send_test_email", "_selected_action": [policy.pk]},
    )

    assert [m.to for m in mailoutbox] == [["me@example.com"]]
    assert mailoutbox[0].subject == "[Test] Invoice INV-T from Ledgerlink"
    assert not Reminder.objects.exists()


# --- admin lists --------------------------------------------------------------------------------------
def reminder_rows(count: int) -> None:
    policy = ReminderPolicy.objects.first() or make_policy()
    for index in range(count):
        invoice = InvoiceFactory()
        Reminder.objects.create(
            policy=policy, invoice=invoice, stage="on_due", scheduled_for=DUE,
            state=["sent", "skipped", "failed"][index % 3], reason="Xero (x) shows it paid",
        )  # fmt: skip


@pytest.mark.parametrize("model", ["reminder", "reminderpolicy", "alert"])
def test_list_pages_stay_within_a_fixed_number_of_queries(client, model):
    from reconciliation.alerts import alert_record

    client.force_login(UserFactory(is_superuser=True))
    url = reverse(f"admin:reconciliation_{model}_changelist")

    def grow(count):
        reminder_rows(count)
        for _ in range(count):
            make_policy(name=f"P{ReminderPolicy.objects.count()}", profile=None)
            alert_record(kind="job_failed", key=f"k{ReminderPolicy.objects.count()}", subject="failed")

    grow(2)
    with CaptureQueriesContext(db_connection) as few:
        assert client.get(url).status_code == 200
    grow(6)
    with CaptureQueriesContext(db_connection) as many:
        response = client.get(url)

    assert response.status_code == 200
    assert len(many) == len(few)


def test_the_reminder_list_searches_by_invoice_number_and_shows_the_reason(client):
    reminder_rows(3)
    number = Reminder.objects.first().invoice.number
    client.force_login(UserFactory(is_superuser=True))

    page = client.get(reverse("admin:reconciliation_reminder_changelist"), {"q": number}).content.decode()

    assert number in page and "Xero (x) shows it paid" in page
    assert "1 reminder" in page


def test_the_preview_stays_within_a_fixed_number_of_queries(client):
    make_policy()
    client.force_login(UserFactory(is_superuser=True))
    url = reverse("admin:reconciliation_reminderpolicy_preview_all")

    def grow(count):
        for _ in range(count):
            bind(InvoiceFactory(), {"status": "paid"}, name=f"books {Binding.objects.count()}")
            InvoiceFactory()

    grow(2)
    with CaptureQueriesContext(db_connection) as few:
        client.get(url, {"date": "2026-03-31"})
    grow(6)
    with CaptureQueriesContext(db_connection) as many:
        response = client.get(url, {"date": "2026-03-31"})

    assert response.content.decode().count("<strong>Send</strong>") == 8
    assert len(many) == len(few)
