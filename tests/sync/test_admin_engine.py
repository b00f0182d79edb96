"""The sync engine's admin: jobs and their actions, the outbox, profiles, mappings, reference data.

The services the actions call (`sync.jobs`, `sync.preview`, `sync.reference`) are replaced by fakes: these
tests are about the admin calling them and reporting, not about what they do.
"""

from __future__ import annotations

import importlib
import sys
import types
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from sync import roles
from sync.models import MappingRow, MappingSet, PushOperation, ReferenceData, SyncCursor, SyncJob, SyncProfile
from tests.factories import ConnectionFactory, InvoiceFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def service(monkeypatch):
    """Replace `module.function` with a fake; a module that does not exist yet is created for the test."""

    def install(dotted: str, fake):
        module_name, _, name = dotted.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            module = types.ModuleType(module_name)
            monkeypatch.setitem(sys.modules, module_name, module)
        monkeypatch.setattr(module, name, fake, raising=False)
        return fake

    return install


class Recorder:
    def __init__(self, result=None, error: Exception | None = None):
        self.calls: list[tuple[tuple, dict]] = []
        self.result, self.error = result, error

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        if self.error:
            raise self.error
        return self.result(*args, **kwargs) if callable(self.result) else self.result


def member(group_name: str):
    user = UserFactory()
    user.groups.add(Group.objects.get(name=group_name))
    return user


def texts(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def profile():
    source = ConnectionFactory(name="Shop")
    destination = ConnectionFactory(name="Books")
    return SyncProfile.objects.create(name="Shop to books", source=source, destination=destination)


def make_job(profile, **fields) -> SyncJob:
    return SyncJob.objects.create(kind="sync", profile=profile, connection=profile.source, **fields)


def run_action(client, model: str, action: str, objects, **extra):
    url = reverse(f"admin:sync_{model}_changelist")
    data = {"action": action, "_selected_action": [obj.pk for obj in objects], **extra}
    return client.post(url, data)


# --- job list ---------------------------------------------------------------------------------------------


def test_job_list_shows_progress_counts_and_attempts(admin_client, profile):
    make_job(profile, state="running", progress_total=200, progress_done=50, seen=50, created=40, attempts=2)

    page = admin_client.get(reverse("admin:sync_syncjob_changelist")).content.decode()

    assert '<progress max="100" value="25"' in page
    assert "50 of 200" in page
    assert "Running" in page and "Pull and push" in page


def test_job_list_filters_by_state_kind_and_trigger(admin_client, profile):
    make_job(profile, state="failed", trigger="webhook")
    make_job(profile, state="succeeded")

    response = admin_client.get(
        reverse("admin:sync_syncjob_changelist"),
        {"state__exact": "failed", "kind__exact": "sync", "trigger__exact": "webhook"},
    )

    assert response.status_code == 200
    assert [job.state for job in response.context["cl"].result_list] == ["failed"]


def _job_list_queries(client) -> int:
    with CaptureQueriesContext(db_connection) as queries:
        assert client.get(reverse("admin:sync_syncjob_changelist")).status_code == 200
    return len(queries)


def test_job_list_queries_do_not_grow_with_jobs(admin_client, django_assert_max_num_queries):
    def jobs(count: int) -> None:
        for _ in range(count):
            make_job(
                SyncProfile.objects.create(
                    name=f"P{SyncProfile.objects.count()}",
                    source=ConnectionFactory(),
                    destination=ConnectionFactory(),
                )
            )

    jobs(1)
    one = _job_list_queries(admin_client)
    jobs(19)
    with django_assert_max_num_queries(one):
        admin_client.get(reverse("admin:sync_syncjob_changelist"))


def push_operation(profile, job=None, index: int = 1, **fields) -> PushOperation:
    invoice = InvoiceFactory()
    return PushOperation.objects.create(
        profile=profile,
        connection=profile.destination,
        object_type="invoice",
        object_id=invoice.pk,
        document_version=1,
        operation="create",
        idempotency_key=f"key-{index}",
        reference=f"REF-{index}",
        job=job,
        payload={"DocNumber": f"REF-{index}", "Line": [{"Amount": "10.00"}]},
        response={"Invoice": {"Id": f"QB-{index}"}},
        **fields,
    )


def test_job_page_lists_its_push_operations_and_links_to_all(admin_client, profile):
    job = make_job(profile)
    operation = push_operation(profile, job=job, state="failed", error="Account 4000 is archived")

    page = admin_client.get(reverse("admin:sync_syncjob_change", args=[job.pk])).content.decode()

    assert "Account 4000 is archived" in page
    assert reverse("admin:sync_pushoperation_change", args=[operation.pk]) in page
    assert reverse("admin:sync_pushoperation_changelist") + f"?job__id__exact={job.pk}" in page


# --- job actions ------------------------------------------------------------------------------------------


def test_run_again_calls_the_service_per_job_and_reports(admin_client, profile, service):
    first, second = make_job(profile, state="failed"), make_job(profile, state="succeeded")
    rerun = service("sync.jobs.job_rerun", Recorder(result=lambda job, user: make_job(profile)))

    response = run_action(admin_client, "syncjob", "run_again", [first, second])

    assert response.status_code == 302
    assert sorted(args[0].pk for args, _ in rerun.calls) == [first.pk, second.pk]
    assert all(kwargs["user"].username == "admin" for _, kwargs in rerun.calls)
    assert any(text.startswith("Queued again: 2") for text in texts(response))


def test_cancel_reports_jobs_it_could_not_cancel(admin_client, profile, service):
    running, finished = make_job(profile, state="running"), make_job(profile, state="succeeded")
    service("sync.jobs.job_cancel", Recorder(result=lambda job, user: job.state == "running"))

    response = run_action(admin_client, "syncjob", "cancel", [running, finished])

    messages = texts(response)
    assert f"Cancelled: 1 (#{running.pk})" in messages
    assert any("not cancelled" in text and f"#{finished.pk}" in text for text in messages)


def test_retry_failed_items_reports_new_job_and_failures(admin_client, profile, service):
    job, broken = make_job(profile, state="partial"), make_job(profile, state="partial")

    def retry(target, user):
        if target.pk == broken.pk:
            raise ValueError("profile disabled")
        return make_job(profile)

    service("sync.jobs.operations_retry", Recorder(result=retry))

    messages = texts(run_action(admin_client, "syncjob", "retry_failed", [job, broken]))

    assert any(text.startswith("Retrying: 1") for text in messages)
    assert any("1 failed" in text and "profile disabled" in text for text in messages)


def test_job_actions_need_the_change_permission(client, profile, service):
    job = make_job(profile, state="failed")
    rerun = service("sync.jobs.job_rerun", Recorder(result=lambda job, user: make_job(profile)))
    client.force_login(member(roles.FINANCE_STAFF))  # may view jobs, not run them

    run_action(client, "syncjob", "run_again", [job])

    assert rerun.calls == []


def test_integration_admins_may_run_job_actions(client, profile, service):
    job = make_job(profile, state="failed")
    rerun = service("sync.jobs.job_rerun", Recorder(result=lambda job, user: make_job(profile)))
    client.force_login(member(roles.INTEGRATION_ADMINS))

    run_action(client, "syncjob", "run_again", [job])

    assert len(rerun.calls) == 1


def test_job_actions_work_with_the_real_job_service(admin_client, profile):
    jobs = pytest.importorskip("sync.jobs", reason="sync.jobs (the job service) is not installed yet")
    assert callable(jobs.job_rerun)
    failed, queued = make_job(profile, state="failed"), make_job(profile, state="queued")

    run_action(admin_client, "syncjob", "run_again", [failed])
    run_action(admin_client, "syncjob", "cancel", [queued])

    copy = SyncJob.objects.exclude(pk__in=[failed.pk, queued.pk]).get()
    assert (copy.kind, copy.trigger, copy.profile, copy.created_by.username) == (
        "sync",
        "manual",
        profile,
        "admin",
    )
    queued.refresh_from_db()
    assert queued.state == "cancelled"


# --- push operations --------------------------------------------------------------------------------------


def test_push_operation_list_filters_and_searches(admin_client, profile):
    job = make_job(profile)
    failed = push_operation(profile, job=job, index=1, state="failed")
    push_operation(profile, job=job, index=2, state="succeeded")
    url = reverse("admin:sync_pushoperation_changelist")

    by_state = admin_client.get(url, {"state__exact": "failed", "operation__exact": "create"})
    by_key = admin_client.get(url, {"q": "key-1"})
    by_job = admin_client.get(url, {"job__id__exact": job.pk, "object_type__exact": "invoice"})

    assert list(by_state.context["cl"].result_list) == [failed]
    assert list(by_key.context["cl"].result_list) == [failed]
    assert by_job.context["cl"].result_count == 2


def test_push_operation_page_is_read_only_with_pretty_json_and_links(admin_client, profile):
    job = make_job(profile)
    operation = push_operation(profile, job=job)

    page = admin_client.get(reverse("admin:sync_pushoperation_change", args=[operation.pk])).content.decode()

    assert "&quot;DocNumber&quot;: &quot;REF-1&quot;" in page  # indented JSON
    assert reverse("admin:sync_invoice_change", args=[operation.object_id]) in page
    assert reverse("admin:sync_syncjob_change", args=[job.pk]) in page
    assert 'name="_save"' not in page
    assert admin_client.get(reverse("admin:sync_pushoperation_add")).status_code == 403
    assert (
        admin_client.get(reverse("admin:sync_pushoperation_delete", args=[operation.pk])).status_code == 403
    )


def test_push_operation_list_queries_do_not_grow(admin_client, profile, django_assert_max_num_queries):
    push_operation(profile, job=make_job(profile), index=0)
    with CaptureQueriesContext(db_connection) as one:
        admin_client.get(reverse("admin:sync_pushoperation_changelist"))
    for index in range(1, 20):
        push_operation(profile, job=make_job(profile), index=index)

    with django_assert_max_num_queries(len(one)):
        admin_client.get(reverse("admin:sync_pushoperation_changelist"))


# --- profiles ---------------------------------------------------------------------------------------------


def test_run_now_enqueues_a_manual_sync_per_profile(admin_client, profile, service):
    enqueue = service("sync.jobs.job_enqueue", Recorder(result=lambda **kwargs: make_job(kwargs["profile"])))

    response = run_action(admin_client, "syncprofile", "run_now", [profile])

    [(args, kwargs)] = enqueue.calls
    assert args == ()
    assert kwargs["kind"] == "sync" and kwargs["trigger"] == "manual" and kwargs["profile"] == profile
    assert kwargs["user"].username == "admin"
    assert any(text.startswith("Queued: 1 (Shop to books as job #") for text in texts(response))


def test_finance_cannot_run_a_profile(client, profile, service):
    enqueue = service("sync.jobs.job_enqueue", Recorder(result=lambda **kwargs: make_job(kwargs["profile"])))
    client.force_login(member(roles.FINANCE_STAFF))

    run_action(client, "syncprofile", "run_now", [profile])

    assert enqueue.calls == []


def preview_item(**fields):
    invoice = InvoiceFactory(number="INV-77")
    defaults = {
        "object_type": "invoice",
        "object_id": invoice.pk,
        "label": "Invoice INV-77",
        "operation": "update",
        "payload": {"DocNumber": "INV-77", "TotalAmt": "120.00"},
        "diff": [{"path": "TotalAmt", "now": "100.00", "after": "120.00"}],
        "problems": ["No tax code mapped for rate 7.5%"],
        "destination_id": "QB-77",
    }
    return SimpleNamespace(**{**defaults, **fields})


def test_dry_run_action_renders_payload_diff_and_problems(admin_client, profile, service):
    item = preview_item()
    preview = service("sync.preview.profile_preview", Recorder(result=[item]))

    response = run_action(admin_client, "syncprofile", "dry_run", [profile])

    assert response.status_code == 200
    assert response.templates[0].name == "admin/sync/dry_run.html"
    page = response.content.decode()
    [(args, kwargs)] = preview.calls
    assert args == (profile,) and kwargs == {"limit": 50}
    assert "&quot;TotalAmt&quot;: &quot;120.00&quot;" in page
    assert "<td><code>TotalAmt</code></td><td>100.00</td><td>120.00</td>" in page
    assert "No tax code mapped for rate 7.5%" in page
    assert reverse("admin:sync_invoice_change", args=[item.object_id]) in page


def test_dry_run_page_from_the_profile_page_shows_a_failed_preview(admin_client, profile, service):
    service("sync.preview.profile_preview", Recorder(error=RuntimeError("destination unreachable")))

    change_page = admin_client.get(
        reverse("admin:sync_syncprofile_change", args=[profile.pk])
    ).content.decode()
    dry_run_url = reverse("admin:sync_syncprofile_dry_run", args=[profile.pk])
    response = admin_client.get(dry_run_url)

    assert dry_run_url in change_page
    assert response.status_code == 200
    assert "RuntimeError: destination unreachable" in response.content.decode()


# --- mappings and reference data --------------------------------------------------------------------------


@pytest.fixture
def mapping_set():
    books = ConnectionFactory(name="Books")
    mapping = MappingSet.objects.create(name="Books mapping", destination=books)
    for kind, code, name in [
        ("account", "4000", "Sales"),
        ("account", "4010", "Shipping income"),
        ("account", "4999", "Old sales"),
        ("tax_code", "TAX20", "VAT 20%"),
    ]:
        ReferenceData.objects.create(connection=books, kind=kind, code=code, name=name, active=code != "4999")
    return mapping


def test_mapping_row_offers_the_destinations_reference_data(admin_client, mapping_set):
    MappingRow.objects.create(
        mapping_set=mapping_set, kind="revenue_account", source_value="*", target_value="4000"
    )

    response = admin_client.get(reverse("admin:sync_mappingset_change", args=[mapping_set.pk]))
    page = response.content.decode()

    assert '<select name="rows-0-target_value"' in page
    assert '<option value="4000" selected>Sales (4000)</option>' in page
    assert '<option value="4010">Shipping income (4010)</option>' in page
    assert "VAT 20%" not in page.split('name="rows-0-target_value"')[1].split("</select>")[0]
    assert 'list="id_rows-1-target_value_choices"' in page  # the new row: free text with suggestions


def test_mapping_row_is_free_text_without_reference_data(admin_client):
    mapping = MappingSet.objects.create(name="Fresh", destination=ConnectionFactory())
    MappingRow.objects.create(mapping_set=mapping, kind="tax_code", source_value="20", target_value="TAX20")

    page = admin_client.get(reverse("admin:sync_mappingset_change", args=[mapping.pk])).content.decode()

    assert '<input type="text" name="rows-0-target_value" value="TAX20"' in page


def mapping_post(mapping: MappingSet, rows: list[dict]) -> dict:
    existing = [row for row in rows if row.get("id")]
    data = {
        "name": mapping.name,
        "description": mapping.description,
        "destination": mapping.destination_id,
        "number_prefix": "",
        "number_suffix": "",
        "rows-TOTAL_FORMS": len(rows),
        "rows-INITIAL_FORMS": len(existing),
        "rows-MIN_NUM_FORMS": 0,
        "rows-MAX_NUM_FORMS": 1000,
    }
    for index, row in enumerate(rows):
        for key in ("id", "kind", "source_value", "target_value", "target_label"):
            data[f"rows-{index}-{key}"] = row.get(key, "")
        data[f"rows-{index}-mapping_set"] = mapping.pk
    return data


def test_mapping_rejects_a_value_the_destination_does_not_have(admin_client, mapping_set):
    url = reverse("admin:sync_mappingset_change", args=[mapping_set.pk])
    rows = [{"kind": "revenue_account", "source_value": "*", "target_value": "9999"}]

    response = admin_client.post(url, mapping_post(mapping_set, rows))

    assert response.status_code == 200  # the form again, with the error
    assert "Target value &#x27;9999&#x27; is not a known account of Books" in response.content.decode()
    assert not MappingRow.objects.exists()


def test_mapping_rejects_an_inactive_value(admin_client, mapping_set):
    url = reverse("admin:sync_mappingset_change", args=[mapping_set.pk])
    rows = [{"kind": "payment_method", "source_value": "card", "target_value": "4999"}]

    response = admin_client.post(url, mapping_post(mapping_set, rows))

    assert "the account is inactive" in response.content.decode()
    assert not MappingRow.objects.exists()


def test_mapping_accepts_a_known_value_and_fills_its_label(admin_client, mapping_set):
    url = reverse("admin:sync_mappingset_change", args=[mapping_set.pk])
    rows = [{"kind": "tax_code", "source_value": "20", "target_value": "TAX20"}]

    response = admin_client.post(url, mapping_post(mapping_set, rows))

    assert response.status_code == 302
    row = MappingRow.objects.get()
    assert (row.target_value, row.target_label) == ("TAX20", "VAT 20%")


def test_mapping_keeps_free_text_for_a_kind_without_reference_data(admin_client, mapping_set):
    url = reverse("admin:sync_mappingset_change", args=[mapping_set.pk])
    rows = [{"kind": "customer", "source_value": "*", "target_value": "CUST-1"}]

    assert admin_client.post(url, mapping_post(mapping_set, rows)).status_code == 302
    assert MappingRow.objects.get().target_value == "CUST-1"


def test_refresh_reference_data_button_calls_the_service(admin_client, mapping_set, service):
    refresh = service(
        "sync.reference.reference_data_refresh", Recorder(result={"account": 12, "tax_code": 3})
    )
    change_url = reverse("admin:sync_mappingset_change", args=[mapping_set.pk])
    button_url = reverse("admin:sync_mappingset_refresh_reference", args=[mapping_set.pk])

    assert button_url in admin_client.get(change_url).content.decode()
    response = admin_client.post(button_url)

    assert response.status_code == 302 and response["Location"] == change_url
    assert refresh.calls == [((mapping_set.destination,), {})]
    assert "Reference data refreshed: 1 (Books: Account: 12, Tax code: 3)" in texts(response)


def test_refresh_reference_data_action_refreshes_each_destination_once(admin_client, mapping_set, service):
    twin = MappingSet.objects.create(name="Twin", destination=mapping_set.destination)
    refresh = service("sync.reference.reference_data_refresh", Recorder(result={"account": 1}))

    run_action(admin_client, "mappingset", "refresh_reference_data", [mapping_set, twin])

    assert len(refresh.calls) == 1


def test_reference_data_and_cursors_are_read_only(admin_client, mapping_set):
    SyncCursor.objects.create(connection=mapping_set.destination, object_type="invoice")

    listing = admin_client.get(reverse("admin:sync_referencedata_changelist"), {"q": "Sales"})

    assert listing.status_code == 200
    assert {ref.code for ref in listing.context["cl"].result_list} == {"4000", "4999"}
    assert admin_client.get(reverse("admin:sync_referencedata_add")).status_code == 403
    assert admin_client.get(reverse("admin:sync_synccursor_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:sync_synccursor_add")).status_code == 403


def test_stand_alone_mapping_row_page_checks_the_value_too(admin_client, mapping_set):
    data = {"mapping_set": mapping_set.pk, "kind": "tax_code", "source_value": "5", "target_value": "TAX5"}

    response = admin_client.post(reverse("admin:sync_mappingrow_add"), data)

    assert "Target value &#x27;TAX5&#x27; is not a known tax code of Books" in response.content.decode()
    assert not MappingRow.objects.exists()
