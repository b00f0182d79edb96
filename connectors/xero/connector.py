"""Xero as a source and destination: sales invoices (ACCREC), their payments, credit notes (ACCRECCREDIT)
and contacts of one organisation. Translation lives in `records`, HTTP in `client`.

Versions: Xero has no version token on invoices, credit notes or contacts, so `UpdatedDateUTC` (as ISO
text) is the remote version. `update` and `void` read the record first and raise ConflictError when its
UpdatedDateUTC differs from the version the caller last saw. Between that read and the write there is a
short window Xero gives us no way to close; it is the best the API allows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any, ClassVar

from connectors.base import (
    AuthNeededError,
    Change,
    ChangePage,
    ConflictError,
    Connector,
    CreditNoteRecord,
    OAuthConfig,
    PaymentRecord,
    PermanentError,
    PushContext,
    RecordProblem,
    RemoteRef,
    ValidationError,
    WebhookResult,
)
from connectors.xero import records, webhooks
from connectors.xero.client import PRODUCTION_API_ROOT, RATE_LIMITS, XeroClient, item_error

# object type -> (collection, id field, list filter)
_COLLECTIONS: dict[str, tuple[str, str, dict[str, str]]] = {
    "invoice": ("Invoices", "InvoiceID", {"where": f'Type=="{records.SALES_INVOICE}"', "unitdp": "4"}),
    "credit_note": (
        "CreditNotes",
        "CreditNoteID",
        {"where": f'Type=="{records.SALES_CREDIT_NOTE}"', "unitdp": "4"},
    ),
    "payment": ("Payments", "PaymentID", {"where": f'PaymentType=="{records.SALES_PAYMENT}"'}),
    "customer": ("Contacts", "ContactID", {"includeArchived": "true"}),
}
_PARSERS: dict[str, Callable[[Any], Any]] = {
    "invoice": records.parse_invoice,
    "credit_note": records.parse_credit_note,
    "payment": records.parse_payment,
    "customer": records.parse_customer,
}
_RENDERERS: dict[str, Callable[[Any, PushContext], dict[str, Any]]] = {
    "invoice": records.render_invoice,
    "credit_note": records.render_credit_note,
    "payment": records.render_payment,
    "customer": records.render_customer,
}
_DOCUMENT_OPS = frozenset({"read", "list_changes", "create", "update", "void", "delete", "webhook"})


def _where_text(value: str) -> str:
    """A string literal for Xero's `where` filter."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class XeroConnector(Connector):
    platform = "xero"
    label = "Xero"
    capabilities = {
        "invoice": _DOCUMENT_OPS,
        "credit_note": _DOCUMENT_OPS,
        "payment": frozenset({"read", "list_changes", "record_payment", "void", "delete"}),
        "customer": frozenset({"read", "list_changes", "create", "update", "webhook"}),
    }
    uses_oauth = True
    oauth = OAuthConfig(
        authorize_url="https://login.xero.com/identity/connect/authorize",
        token_url="https://identity.xero.com/connect/token",
        # Granular scopes, the only ones Xero grants to apps created from 2 March 2026. Older apps ask
        # for the broad "accounting.transactions" (invoices, credit notes, payments; read-only form
        # "accounting.transactions.read") in place of accounting.invoices and accounting.payments,
        # and may do so until September 2027.
        scopes=(
            "openid",
            "profile",
            "email",
            "offline_access",
            "accounting.invoices",
            "accounting.payments",
            "accounting.contacts",
            "accounting.settings",
        ),
    )
    default_base_url = PRODUCTION_API_ROOT
    rate_limits = RATE_LIMITS
    line_mapping: ClassVar[dict[str, str]] = {"account": "required", "tax_code": "taxed", "item": "optional"}
    reference_kinds: ClassVar[dict[str, str]] = {
        "account": "accounts",
        "tax_code": "tax_rates",
        "item": "items",
    }
    reference_key = "code"
    batch_limit = 50

    @cached_property
    def client(self) -> XeroClient:
        return XeroClient(self.connection)

    # --- pure translation -----------------------------------------------------------------------------
    @classmethod
    def parse(cls, object_type: str, raw: dict[str, Any]) -> Any:
        parser = _PARSERS.get(object_type)
        if parser is None:
            raise ValidationError(
                f"Xero has no {object_type} records", field="object_type", value=object_type
            )
        try:
            return parser(raw)
        except (TypeError, AttributeError, KeyError, ArithmeticError) as exc:
            raise ValidationError(
                f"unexpected Xero {object_type} shape: {exc}", value=str(exc)[:200]
            ) from exc

    @classmethod
    def render(cls, object_type: str, record: Any, context: PushContext) -> dict[str, Any]:
        """One Invoice / CreditNote / Contact element as PUT sends it; for a payment the whole
        {"Payments": [...]} body (one Xero payment per invoice the payment is allocated to)."""
        renderer = _RENDERERS.get(object_type)
        if renderer is None:
            raise ValidationError(
                f"Xero cannot create {object_type} records", field="object_type", value=object_type
            )
        return renderer(record, context)

    @classmethod
    def render_allocations(cls, record: CreditNoteRecord, context: PushContext) -> dict[str, Any]:
        return records.render_allocations(record, context)

    # --- set-up ---------------------------------------------------------------------------------------
    def after_authorisation(self) -> None:
        """Choose the organisation: the one already chosen if this login still reaches it, else the first
        the login connected (GET /connections), kept as options["tenant_id"]."""
        tenants = [item for item in self.client.connections() if item.get("tenantType") == "ORGANISATION"]
        if not tenants:
            raise AuthNeededError("this Xero login has no organisation connected: connect again and pick one")
        options = dict(self.connection.options or {})
        chosen = next((t for t in tenants if t.get("tenantId") == options.get("tenant_id")), tenants[0])
        options["tenant_id"] = chosen["tenantId"]
        options["tenant_name"] = chosen.get("tenantName") or ""
        self.connection.options = options
        self.connection.save(update_fields=["options", "updated_at"])
        self.__dict__.pop("client", None)  # the limiter key follows the tenant

    def check_credentials(self) -> None:
        body = self.client.get("Organisation")
        if not (body or {}).get("Organisations"):
            raise PermanentError("Xero answered without the organisation")

    def reference_data(self, kind: str) -> list[dict[str, Any]]:
        """What mappings point at: "accounts" (code, name, type), "tax_rates" (code = TaxType, rate),
        "items" (code, name)."""
        if kind == "accounts":
            return [
                {
                    "id": item.get("AccountID", ""),
                    "code": item.get("Code", ""),
                    "name": item.get("Name", ""),
                    "type": item.get("Type", ""),
                    "tax_code": item.get("TaxType", ""),
                    "status": item.get("Status", ""),
                }
                for item in self.client.get_all("Accounts")
            ]
        if kind == "tax_rates":
            return [
                {
                    "code": item.get("TaxType", ""),
                    "name": item.get("Name", ""),
                    "rate": str(Decimal(repr(item.get("EffectiveRate", 0)))),
                    "status": item.get("Status", ""),
                }
                for item in self.client.get_all("TaxRates")
            ]
        if kind == "items":
            return [
                {
                    "id": item.get("ItemID", ""),
                    "code": item.get("Code", ""),
                    "name": item.get("Name", ""),
                    "description": item.get("Description", ""),
                }
                for item in self.client.get_all("Items")
            ]
        raise ValidationError(f"Xero has no reference data {kind!r}", field="kind", value=kind)

    # --- reads ----------------------------------------------------------------------------------------
    def _collection(self, object_type: str) -> tuple[str, str, dict[str, str]]:
        try:
            return _COLLECTIONS[object_type]
        except KeyError:
            raise PermanentError(f"Xero has no {object_type} records") from None

    def _change(self, object_type: str, raw: dict[str, Any], *, location: str = "") -> Change:
        _, id_field, _ = self._collection(object_type)
        external_id = str(raw.get(id_field) or "")
        common = {
            "remote_version": records.version_of(raw),
            "updated_at": records.updated_at(raw),
            "raw": raw,
        }
        try:
            record = self.parse(object_type, raw)
        except ValidationError as exc:
            key = raw.get("InvoiceNumber") or raw.get("CreditNoteNumber") or external_id
            problem = RecordProblem(
                key=str(key or ""),
                field=exc.field,
                raw="" if exc.value is None else str(exc.value),
                message=str(exc),
                location=location,
            )
            return Change(object_type, external_id, problem=problem, **common)
        deleted = getattr(record, "status", "") == "deleted"
        return Change(object_type, external_id, record=record, deleted=deleted, **common)

    def list_changes(
        self, object_type: str, *, since: datetime | None, page: str | None = None
    ) -> ChangePage:
        """Records changed since `since` (If-Modified-Since), oldest change first, up to 1000 a page.

        Pages are keyed by time, not by number: the next page asks again from just before the newest
        change seen (`{"since": ..., "page": 1}`). With numbered pages a record edited mid-pull moves to the
        end and shifts every later record back a page, so one of them would be skipped; keyed by time it
        cannot be. Only when a whole page shares one timestamp does the next page go by number.
        """
        collection, _, params = self._collection(object_type)
        cursor_since, number = self._page_cursor(page, since)
        items, more = self.client.get_page(collection, page=number, since=cursor_since, params=params)
        changes = [self._change(object_type, raw, location=f"page {number}") for raw in items]
        stamps = [change.updated_at for change in changes if change.updated_at]
        newest = max(stamps, default=None)
        next_page = None
        if more:
            if newest is not None and (
                cursor_since is None or newest > cursor_since + timedelta(milliseconds=1)
            ):
                next_page = json.dumps({"since": (newest - timedelta(milliseconds=1)).isoformat(), "page": 1})
            else:
                since_text = cursor_since.isoformat() if cursor_since else None
                next_page = json.dumps({"since": since_text, "page": number + 1})
        return ChangePage(changes, next_page=next_page, high_water=newest)

    @staticmethod
    def _page_cursor(page: str | None, since: datetime | None) -> tuple[datetime | None, int]:
        if not page:
            return since, 1
        try:
            cursor = json.loads(page)
            cursor_since = datetime.fromisoformat(cursor["since"]) if cursor.get("since") else None
            return cursor_since, int(cursor.get("page") or 1)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise PermanentError(f"{page!r} is not a Xero page cursor") from None

    def _get(self, object_type: str, external_id: str) -> dict[str, Any]:
        collection, _, params = self._collection(object_type)
        query = {"unitdp": params["unitdp"]} if "unitdp" in params else None
        return self.client.get_one(collection, external_id, params=query)

    def fetch(self, object_type: str, external_id: str) -> Change:
        if object_type == "payment" and "," in external_id:
            return self._fetch_payment_group(external_id.split(","))
        return self._change(object_type, self._get(object_type, external_id))

    def _fetch_payment_group(self, ids: Sequence[str]) -> Change:
        """A payment recorded against several invoices is one Xero payment per invoice: read as one."""
        parts = [self._change("payment", self._get("payment", payment_id)) for payment_id in ids]
        broken = next((part for part in parts if part.problem), None)
        if broken:
            return broken
        first: PaymentRecord = parts[0].record
        allocations = tuple(a for part in parts for a in part.record.allocations)
        live = [part.record for part in parts if part.record.status != "void"]
        merged = PaymentRecord(
            external_id=",".join(ids),
            reference=first.reference,
            customer=first.customer,
            transaction_date=first.transaction_date,
            currency=first.currency,
            amount=sum((a.amount for a in allocations), Decimal(0)),
            allocations=allocations,
            status="completed" if live else "void",
            raw=[part.raw for part in parts],
        )
        stamps = [part.updated_at for part in parts if part.updated_at]
        return Change(
            "payment", merged.external_id, record=merged, updated_at=max(stamps, default=None), raw=merged.raw
        )

    def _ref(self, object_type: str, raw: Mapping[str, Any]) -> RemoteRef:
        _, id_field, _ = self._collection(object_type)
        try:
            status = getattr(self.parse(object_type, dict(raw)), "status", "")
        except ValidationError:
            status = str(raw.get("Status") or raw.get("ContactStatus") or "").lower()
        return RemoteRef(
            external_id=str(raw.get(id_field) or ""),
            number=str(
                raw.get("InvoiceNumber") or raw.get("CreditNoteNumber") or raw.get("ContactNumber") or ""
            ),
            remote_version=records.version_of(raw),
            status=status,
            raw=dict(raw),
        )

    def _search(self, collection: str, params: dict[str, str]) -> list[dict[str, Any]]:
        items, _ = self.client.get_page(collection, page=1, params=params, page_size=100)
        # a live match first, then the most recently changed
        items.sort(key=lambda raw: records.updated_at(raw) or datetime.min.replace(tzinfo=UTC), reverse=True)
        items.sort(key=lambda raw: raw.get("Status") == "DELETED")
        return items

    def find_by_reference(self, object_type: str, reference: str) -> RemoteRef | None:
        """Invoices and credit notes by number, then by Reference; payments by Reference (several when a
        payment was split over invoices); contacts by ContactNumber."""
        if not reference:
            return None
        literal = _where_text(reference)
        if object_type == "invoice":
            kind = f'Type=="{records.SALES_INVOICE}"'
            found = (
                []
                if "," in reference
                else self._search("Invoices", {"InvoiceNumbers": reference, "where": kind})
            )
            found = found or self._search("Invoices", {"where": f"{kind} AND Reference=={literal}"})
        elif object_type == "credit_note":
            kind = f'Type=="{records.SALES_CREDIT_NOTE}"'
            found = self._search("CreditNotes", {"where": f"{kind} AND CreditNoteNumber=={literal}"})
            found = found or self._search("CreditNotes", {"where": f"{kind} AND Reference=={literal}"})
        elif object_type == "payment":
            where = f'PaymentType=="{records.SALES_PAYMENT}" AND Reference=={literal}'
            # Xero's order (the order they were made in), not re-sorted: a split payment's ids stay put
            items, _ = self.client.get_page("Payments", page=1, params={"where": where}, page_size=100)
            found = [raw for raw in items if raw.get("Status") != "DELETED"]
            if len(found) > 1:
                ref = self._ref("payment", found[0])
                ids = ",".join(str(raw.get("PaymentID")) for raw in found)
                return RemoteRef(external_id=ids, number=reference, status=ref.status, raw=found)
        elif object_type == "customer":
            found = self._search("Contacts", {"where": f"ContactNumber=={literal}"})
        else:
            raise PermanentError(f"Xero cannot look up {object_type} records")
        return self._ref(object_type, found[0]) if found else None

    # --- writes ---------------------------------------------------------------------------------------
    def _writable(self, object_type: str) -> tuple[str, str]:
        if object_type not in ("invoice", "credit_note", "customer"):
            raise PermanentError(f"Xero cannot create or update {object_type} records this way")
        collection, id_field, _ = self._collection(object_type)
        return collection, id_field

    @staticmethod
    def _write_params(object_type: str) -> dict[str, str]:
        params = {"summarizeErrors": "false"}
        if object_type != "customer":
            params["unitdp"] = "4"
        return params

    def create_many(
        self, object_type: str, payloads: Sequence[dict[str, Any]], *, idempotency_key: str
    ) -> list[RemoteRef | ValidationError]:
        """Create several records in one PUT (summarizeErrors=false): one result per payload, in order,
        a RemoteRef for each saved record and a ValidationError for each refused one."""
        collection, _ = self._writable(object_type)
        if not payloads:
            return []
        answer = self.client.write(
            "PUT",
            collection,
            {collection: list(payloads)},
            idempotency_key=idempotency_key,
            params=self._write_params(object_type),
        )
        items = answer.get(collection) or []
        if len(items) != len(payloads):
            raise PermanentError(f"Xero answered {len(items)} {collection} for {len(payloads)} sent")
        return [item_error(item) or self._ref(object_type, item) for item in items]

    def create(self, object_type: str, payload: dict[str, Any], *, idempotency_key: str) -> RemoteRef:
        result = self.create_many(object_type, [payload], idempotency_key=idempotency_key)[0]
        if isinstance(result, ValidationError):
            raise result
        return result

    def _check_version(self, raw: Mapping[str, Any], remote_version: str, external_id: str) -> None:
        current = records.version_of(raw)
        if remote_version and current and not records.same_version(current, remote_version):
            raise ConflictError(
                f"Xero record {external_id} changed at {current}, after version {remote_version} was read"
            )

    def _post(
        self, object_type: str, external_id: str, element: dict[str, Any], idempotency_key: str
    ) -> RemoteRef:
        collection, id_field = self._writable(object_type)
        params = {"unitdp": "4"} if object_type != "customer" else None
        answer = self.client.write(
            "POST",
            f"{collection}/{external_id}",
            {collection: [{**element, id_field: external_id}]},
            idempotency_key=idempotency_key,
            params=params,
        )
        items = answer.get(collection) or []
        if not items:
            raise PermanentError(f"Xero answered no {collection} record for {external_id}")
        error = item_error(items[0])
        if error:
            raise error
        return self._ref(object_type, items[0])

    def update(
        self,
        object_type: str,
        external_id: str,
        payload: dict[str, Any],
        *,
        remote_version: str,
        idempotency_key: str,
    ) -> RemoteRef:
        """POST the changed record; ConflictError when its UpdatedDateUTC is no longer `remote_version`."""
        self._writable(object_type)
        self._check_version(self._get(object_type, external_id), remote_version, external_id)
        return self._post(object_type, external_id, payload, idempotency_key)

    def _set_status(
        self, object_type: str, external_id: str, target: str, remote_version: str, idempotency_key: str
    ) -> RemoteRef:
        current = self._get(object_type, external_id)
        self._check_version(current, remote_version, external_id)
        status = current.get("Status")
        if status in ("VOIDED", "DELETED"):
            return self._ref(object_type, current)  # already gone: repeating the void changes nothing
        if target == "VOIDED" and status in records.DRAFT_STATUSES:
            target = "DELETED"  # Xero voids only approved documents; a draft is deleted instead
        return self._post(object_type, external_id, {"Status": target}, idempotency_key)

    def void(
        self, object_type: str, external_id: str, *, remote_version: str, idempotency_key: str
    ) -> RemoteRef:
        """Invoices and credit notes: VOIDED when approved (AUTHORISED, no payments), DELETED when still a
        draft. Payments cannot be voided in Xero: they are deleted, which reads back as status void."""
        if object_type == "payment":
            return self._delete_payments(external_id, idempotency_key)
        if object_type not in ("invoice", "credit_note"):
            raise PermanentError(f"Xero cannot void {object_type} records")
        return self._set_status(object_type, external_id, "VOIDED", remote_version, idempotency_key)

    def delete(
        self, object_type: str, external_id: str, *, remote_version: str = "", idempotency_key: str
    ) -> RemoteRef:
        """Status DELETED: Xero allows it for DRAFT and SUBMITTED documents, and for payments."""
        if object_type == "payment":
            return self._delete_payments(external_id, idempotency_key)
        if object_type not in ("invoice", "credit_note"):
            raise PermanentError(f"Xero cannot delete {object_type} records")
        return self._set_status(object_type, external_id, "DELETED", remote_version, idempotency_key)

    def _delete_payments(self, external_id: str, idempotency_key: str) -> RemoteRef:
        refs = []
        ids = [part for part in external_id.split(",") if part]
        for index, payment_id in enumerate(ids):
            key = idempotency_key if len(ids) == 1 else f"{idempotency_key}:{index}"
            answer = self.client.write(
                "POST", f"Payments/{payment_id}", {"Status": "DELETED"}, idempotency_key=key
            )
            items = answer.get("Payments") or []
            error = item_error(items[0]) if items else None
            if error:
                raise error
            refs.append(self._ref("payment", items[0]) if items else RemoteRef(payment_id, status="void"))
        if len(refs) == 1:
            return refs[0]
        return RemoteRef(external_id=external_id, status="void", raw=[ref.raw for ref in refs])

    def record_payment(
        self, payment: PaymentRecord, context: PushContext, *, idempotency_key: str
    ) -> RemoteRef:
        """PUT /Payments with one payment per allocated invoice, paid into context.deposit_account. The
        Reference (context.reference) lets find_by_reference see it after a crash. Several invoices give
        one id each, joined by commas in the RemoteRef."""
        body = self.render("payment", payment, context)
        answer = self.client.write(
            "PUT", "Payments", body, idempotency_key=idempotency_key, params={"summarizeErrors": "false"}
        )
        items = answer.get("Payments") or []
        if len(items) != len(body["Payments"]):
            raise PermanentError(f"Xero answered {len(items)} payments for {len(body['Payments'])} sent")
        errors = [(index, item_error(item)) for index, item in enumerate(items)]
        failed = [(index, error) for index, error in errors if error]
        if failed:
            index, error = failed[0]
            saved = [str(items[i].get("PaymentID")) for i, e in errors if not e]
            invoice = payment.allocations[index].invoice_number
            note = f" (recorded against the other invoices: {', '.join(saved)})" if saved else ""
            raise ValidationError(
                f"Xero refused the payment for invoice {invoice}: {error}{note}",
                field=error.field,
                value=error.value,
            )
        if len(items) == 1:
            return self._ref("payment", items[0])
        return RemoteRef(
            external_id=",".join(str(item.get("PaymentID")) for item in items),
            number=str(items[0].get("Reference") or ""),
            status="completed",
            raw=answer,
        )

    def allocate_credit_note(
        self, external_id: str, record: CreditNoteRecord, context: PushContext, *, idempotency_key: str
    ) -> list[RemoteRef]:
        """Apply a credit note (already in Xero as `external_id`) to invoices: PUT .../Allocations."""
        body = self.render_allocations(record, context)
        if not body["Allocations"]:
            return []
        answer = self.client.write(
            "PUT",
            f"CreditNotes/{external_id}/Allocations",
            body,
            idempotency_key=idempotency_key,
            params={"summarizeErrors": "false"},
        )
        items = answer.get("Allocations") or []
        for item in items:
            error = item_error(item)
            if error:
                raise error
        return [
            RemoteRef(
                external_id=str(item.get("AllocationID") or ""),
                number=str((item.get("Invoice") or {}).get("InvoiceNumber") or ""),
                status="applied",
                raw=item,
            )
            for item in items
        ]

    # --- webhooks -------------------------------------------------------------------------------------
    def webhook_account(self) -> str | None:
        """Xero sends every tenant's events for the app to the app's one webhook URL (`tenantId`)."""
        tenant = (self.connection.options or {}).get("tenant_id")
        return str(tenant) if tenant else None

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookResult:
        """See connectors.xero.webhooks: the key is the app's webhook key, kept in the credentials."""
        return webhooks.verify(
            str((self.connection.credentials or {}).get("webhook_key") or ""), headers, body
        )
