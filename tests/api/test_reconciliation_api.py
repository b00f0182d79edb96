"""Exceptions and overrides through the API, through the workflow service: the four-eyes rule holds."""

from __future__ import annotations

from decimal import Decimal

import pytest

from reconciliation.models import Override, ReconciliationException, Tag
from tests.factories import InvoiceFactory

pytestmark = pytest.mark.django_db


def exception(**kwargs):
    invoice = kwargs.pop("invoice", None) or InvoiceFactory()
    values = {
        "kind": "amount_mismatch",
        "fingerprint": f"fp-{invoice.pk}",
        "title": f"Invoice {invoice.number} differs",
        "object_type": "invoice",
        "object_id": invoice.pk,
        "document_number": invoice.number,
        "currency": "GBP",
        "amount_at_risk": Decimal("5.00"),
        "connection": invoice.source_connection,
    }
    values.update(kwargs)
    return ReconciliationException.objects.create(**values)


def test_list_filters_exceptions(shop, finance):
    _, http = shop
    urgent = exception(severity="high")
    urgent.tags.add(Tag.objects.create(name="urgent"))
    exception(kind="duplicate", amount_at_risk=Decimal("500.00"), assignee=finance)
    exception(state="resolved")

    def ids(query: str) -> list[int]:
        response = http.get(f"/api/v1/exceptions/?{query}")
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids("tag=urgent") == [urgent.pk]
    assert len(ids("kind=duplicate&kind=amount_mismatch")) == 3
    assert len(ids("open=true")) == 2
    assert len(ids("amount_at_risk_min=100")) == 1
    assert len(ids(f"assignee={finance.pk}")) == 1
    assert ids("severity=high") == [urgent.pk]
    assert ids("older_than_days=1") == []
    assert http.get(f"/api/v1/exceptions/{urgent.pk}/").json()["tags"] == ["urgent"]


def test_assign_tag_note_resolve_go_through_the_workflow(shop, finance):
    _, http = shop
    item = exception()
    url = f"/api/v1/exceptions/{item.pk}"
    assigned = http.post(f"{url}/assign/", {"assignee": finance.pk}, format="json").json()
    assert assigned["changed"] and assigned["exception"]["state"] == "assigned"
    assert assigned["exception"]["assignee"] == {"id": finance.pk, "username": finance.username}
    assert http.post(f"{url}/tag/", {"tags": ["vip", "vip"]}, format="json").json()["exception"]["tags"] == [
        "vip"
    ]
    note = http.post(f"{url}/notes/", {"body": "Called the customer"}, format="json")
    assert note.status_code == 201 and note.json()["body"] == "Called the customer"
    resolved = http.post(f"{url}/resolve/", {"reason": "credit note issued"}, format="json").json()
    assert resolved["exception"]["state"] == "resolved"
    again = http.post(f"{url}/resolve/", {}, format="json").json()
    assert again["changed"] is False
    detail = http.get(f"{url}/").json()
    assert detail["notes"][0]["body"] == "Called the customer"


def test_an_invalid_move_is_a_409_naming_both_states(shop):
    _, http = shop
    item = exception(state="resolved")
    response = http.post(f"/api/v1/exceptions/{item.pk}/move/", {"state": "in_review"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_move"
    assert "resolved" in response.json()["message"] and "in review" in response.json()["message"]


def test_ignoring_needs_a_reason(shop):
    _, http = shop
    item = exception()
    response = http.post(f"/api/v1/exceptions/{item.pk}/ignore/", {}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "reason"
    item.refresh_from_db()
    assert item.state == "open"


def _proposal(http, item) -> dict:
    response = http.post(
        "/api/v1/overrides/",
        {"action": "mark_paid", "reason": "paid by bank transfer", "exception": item.pk},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()


def test_a_client_linked_to_the_proposer_cannot_approve(make_client, accountant):
    _, http = make_client(person=accountant)
    proposal = _proposal(http, exception())
    assert proposal["proposed_by"]["username"] == accountant.username
    response = http.post(f"/api/v1/overrides/{proposal['id']}/approve/", {}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "four_eyes"
    assert Override.objects.get(pk=proposal["id"]).state == "proposed"


def test_another_accountant_approves_and_the_override_is_applied(make_client, accountant, finance):
    _, proposer = make_client(["work_exceptions", "read"], person=finance)
    item = exception()
    proposal = _proposal(proposer, item)
    _, approver = make_client(["approve_overrides"], person=accountant)
    response = approver.post(
        f"/api/v1/overrides/{proposal['id']}/approve/", {"comment": "seen the bank"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "applied"
    assert response.json()["decided_by"]["username"] == accountant.username


def test_approving_needs_the_acting_users_permission_as_well_as_the_scope(make_client, finance):
    _, proposer = make_client(["work_exceptions"], person=finance)
    proposal = _proposal(proposer, exception())
    _, unlinked = make_client(["approve_overrides"])  # its service user has no approve permission
    response = unlinked.post(f"/api/v1/overrides/{proposal['id']}/approve/", {}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "permission"


def test_rejecting_needs_a_comment_and_returns_the_exception_to_the_queue(make_client, accountant, finance):
    _, proposer = make_client(["work_exceptions"], person=finance)
    item = exception()
    proposal = _proposal(proposer, item)
    _, approver = make_client(["approve_overrides"], person=accountant)
    url = f"/api/v1/overrides/{proposal['id']}/reject/"
    assert approver.post(url, {}, format="json").status_code == 400
    rejected = approver.post(url, {"comment": "no remittance advice"}, format="json")
    assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
    item.refresh_from_db()
    assert item.state == "open"


def test_listing_overrides_names_their_clients_in_a_fixed_number_of_queries(make_client, finance):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _, proposer = make_client(["work_exceptions", "read"], person=finance, name="Billing")

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = proposer.get("/api/v1/overrides/")
        assert response.status_code == 200
        assert {row["proposed_via"] for row in response.json()["results"]} == {"Billing"}
        return len(captured)

    for _ in range(2):
        _proposal(proposer, exception())
    few = count()
    for _ in range(6):
        _proposal(proposer, exception())
    assert count() == few
