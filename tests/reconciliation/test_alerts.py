"""Alerts: folded as they happen, mailed to integration admins as one digest per period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
import time_machine
from django.contrib.auth.models import Group

from connectors.models import Connection
from reconciliation import alerts
from reconciliation.models import Alert, ReconciliationException
from sync import jobs, roles
from sync.models import SyncJob, SyncProfile
from tests.factories import ConnectionFactory, UserFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 31, 9, 0, tzinfo=UTC)


@pytest.fixture
def admins():
    group = Group.objects.get(name=roles.INTEGRATION_ADMINS)
    people = [UserFactory(email="ops@example.com"), UserFactory(email="lead@example.com")]
    for user in people:
        user.groups.add(group)
    UserFactory(email="gone@example.com", is_active=False).groups.add(group)
    UserFactory(email="").groups.add(group)
    UserFactory(email="finance@example.com").groups.add(Group.objects.get(name=roles.FINANCE_STAFF))
    return people


def failed_job(profile=None) -> SyncJob:
    connection = ConnectionFactory()
    return SyncJob.objects.create(
        kind="sync", profile=profile, connection=connection, state="failed", attempts=3
    )


def test_repeats_fold_into_one_pending_alert():
    for n in range(3):
        alerts.alert_record(
            kind="job_failed", key="sync profile 1", subject=f"failed {n}", message=f"try {n}"
        )

    alert = Alert.objects.get()
    assert (alert.occurrences, alert.subject, alert.message) == (3, "failed 2", "try 2")


def test_many_job_failures_give_one_digest_email_to_the_integration_admins(admins, mailoutbox):
    source, destination = ConnectionFactory(), ConnectionFactory()
    profile = SyncProfile.objects.create(name="Shop to books", source=source, destination=destination)
    for _ in range(5):
        jobs.job_failed.send(sender=SyncJob, job=failed_job(profile), error="ValueError: bad mapping")
    jobs.job_failed.send(sender=SyncJob, job=failed_job(), error="AuthNeededError: refused")

    sent = alerts.alerts_digest_send()

    assert sent == 2  # the profile's five failures folded into one, plus the other connection's
    assert len(mailoutbox) == 1
    email = mailoutbox[0]
    assert sorted(email.to) == ["lead@example.com", "ops@example.com"]
    assert email.subject == "[Ledgerlink] 2 alerts: 2 failed jobs"
    assert "Pull and push job failed: Shop to books (5 times)" in email.body
    assert "ValueError: bad mapping" in email.body
    assert not Alert.objects.filter(sent_at=None).exists()
    assert alerts.alerts_digest_send() == 0 and len(mailoutbox) == 1


def test_a_job_that_fails_for_good_raises_an_alert():
    from sync.jobs import HANDLERS, job_run

    job = SyncJob.objects.create(kind="remind", params={"date": "2026-03-31"}, max_attempts=1)
    with mock.patch.dict(HANDLERS, {"remind": mock.Mock(side_effect=ValueError("template broke"))}):
        assert job_run(job.pk) == "failed"

    alert = Alert.objects.get()
    assert alert.kind == "job_failed" and alert.job_id == job.pk
    assert "ValueError: template broke" in alert.message


def test_a_digest_that_fails_to_send_leaves_the_alerts_pending(admins, mailoutbox):
    alerts.alert_record(kind="job_failed", key="a", subject="A failed")
    alerts.alert_record(kind="reauthorise", key="b", subject="B needs re-authorisation")

    failing = mock.patch("django.core.mail.EmailMessage.send", side_effect=OSError("smtp down"))
    with failing, pytest.raises(OSError, match="smtp down"):
        alerts.alerts_digest_send()
    assert Alert.objects.filter(sent_at=None).count() == 2

    assert alerts.alerts_digest_send() == 2
    assert len(mailoutbox) == 1 and "A failed" in mailoutbox[0].body and "B needs" in mailoutbox[0].body


def test_without_anyone_to_tell_the_alerts_wait(mailoutbox):
    alerts.alert_record(kind="job_failed", key="a", subject="A failed")

    assert alerts.alerts_digest_send() == 0
    assert mailoutbox == [] and Alert.objects.filter(sent_at=None).count() == 1


def test_after_a_digest_a_new_failure_opens_a_new_alert(admins, mailoutbox):
    alerts.alert_record(kind="job_failed", key="a", subject="A failed")
    alerts.alerts_digest_send()

    alerts.alert_record(kind="job_failed", key="a", subject="A failed again")

    assert Alert.objects.count() == 2
    assert Alert.objects.get(sent_at=None).occurrences == 1


def test_an_alert_folded_while_the_digest_was_written_stays_pending(admins, mailoutbox):
    with time_machine.travel(NOW, tick=False):
        alerts.alert_record(kind="job_failed", key="a", subject="A failed")
    real_send = alerts.EmailMessage.send

    def send_while_it_fails_again(message, *args, **kwargs):
        with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
            alerts.alert_record(kind="job_failed", key="a", subject="A failed again")
        return real_send(message, *args, **kwargs)

    later = time_machine.travel(NOW + timedelta(minutes=1), tick=False)
    with later, mock.patch.object(alerts.EmailMessage, "send", send_while_it_fails_again):
        assert alerts.alerts_digest_send() == 0

    alert = Alert.objects.get()
    assert alert.sent_at is None and alert.occurrences == 2


def test_a_connection_that_needs_reauthorisation_alerts_once():
    connection = ConnectionFactory(platform="xero", name="acme-xero", health="healthy")

    connection.health = Connection.Health.NEEDS_REAUTH
    connection.last_error = "the refresh token was refused (invalid_grant): use Connect again"
    connection.save(update_fields=["health", "last_error"])
    connection.save()  # still needing it: no second alert
    connection.credentials = {"token": {}}
    connection.save(update_fields=["credentials"])

    alert = Alert.objects.get()
    assert (alert.kind, alert.occurrences, alert.connection_id) == ("reauthorise", 1, connection.pk)
    assert alert.subject == "acme-xero needs re-authorisation"
    assert "invalid_grant" in alert.message


def test_a_connection_healthy_again_then_refused_again_alerts_again(admins, mailoutbox):
    connection = ConnectionFactory(health="needs_reauth")  # created so: it needs it from the start
    alerts.alerts_digest_send()
    for health in ("healthy", "needs_reauth"):
        connection.health = health
        connection.save()

    assert Alert.objects.filter(kind="reauthorise").count() == 2
    assert Alert.objects.filter(kind="reauthorise", sent_at=None).count() == 1


def test_a_connection_check_that_is_refused_alerts():
    from connectors.base import AuthNeededError
    from connectors.services import connection_check

    connection = ConnectionFactory(platform="csv", health="healthy")
    with mock.patch(
        "connectors.csv.connector.CsvConnector.check_credentials", side_effect=AuthNeededError("no")
    ):
        connection_check(connection=connection)

    assert Alert.objects.get().kind == "reauthorise"


def open_exceptions(count: int) -> None:
    start = ReconciliationException.objects.count()
    for n in range(start, start + count):
        ReconciliationException.objects.create(kind="amount_mismatch", fingerprint=f"fp{n}", title=f"#{n}")


def test_open_exceptions_at_the_threshold_alert_once_a_day_at_most(settings, admins, mailoutbox):
    settings.ALERT_EXCEPTION_THRESHOLD = 3
    open_exceptions(2)
    assert alerts.exceptions_threshold_check() is None

    open_exceptions(1)
    with time_machine.travel(NOW, tick=False):
        first = alerts.exceptions_threshold_check()
        open_exceptions(1)
        folded = alerts.exceptions_threshold_check()
        alerts.alerts_digest_send()
    with time_machine.travel(NOW + timedelta(hours=2), tick=False):
        quiet = alerts.exceptions_threshold_check()
    with time_machine.travel(NOW + timedelta(days=1, minutes=1), tick=False):
        next_day = alerts.exceptions_threshold_check()

    assert first.pk == folded.pk and folded.occurrences == 2
    assert folded.subject == "4 open exceptions (alert threshold 3)"
    assert "Amount differs: 4" in folded.message
    assert quiet is None
    assert next_day is not None and next_day.pk != first.pk
    assert "4 open exceptions" in mailoutbox[0].body


def test_a_zero_threshold_never_alerts(settings):
    settings.ALERT_EXCEPTION_THRESHOLD = 0
    open_exceptions(5)

    assert alerts.exceptions_threshold_check() is None


def test_the_scheduled_tick_checks_the_threshold_and_sends_the_digest(settings, admins, mailoutbox):
    settings.ALERT_EXCEPTION_THRESHOLD = 1
    open_exceptions(1)

    assert alerts.alerts_scheduled() == {"sent": 1}
    assert len(mailoutbox) == 1 and "1 open exceptions" in mailoutbox[0].body


def test_the_digest_is_scheduled_every_period(settings):
    from sync.schedules import _reminder_and_alert_schedules

    settings.ALERT_DIGEST_MINUTES = 15
    digest = next(item for item in _reminder_and_alert_schedules() if item.name == "ledgerlink:alerts digest")

    assert (digest.func, digest.schedule_type, digest.minutes) == (
        "reconciliation.alerts.alerts_scheduled",
        "I",
        15,
    )


def test_an_alert_is_never_in_two_digests_whatever_the_clocks_say(admins, mailoutbox):
    # another worker whose clock runs ahead folds the alert "after" this digest started reading
    with time_machine.travel(NOW, tick=False):
        alerts.alert_record(kind="job_failed", key="a", subject="A failed")
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        alerts.alert_record(kind="job_failed", key="a", subject="A failed again")

    with time_machine.travel(NOW + timedelta(minutes=1), tick=False):
        assert alerts.alerts_digest_send() == 1
    assert alerts.alerts_digest_send() == 0

    assert len(mailoutbox) == 1 and "A failed again" in mailoutbox[0].body
    assert Alert.objects.get().sent_at is not None
