"""QuickBooks Online as a platform: invoices, payments, credit memos and customers, both ways.

Translation lives in `parsing` (QuickBooks -> canonical) and `rendering` (canonical -> QuickBooks); all
HTTP in `client`. This module wires them to the connector contract.

Incremental reads: change data capture (`/cdc`) reports deletions but only looks back 30 days, so it is
used when `since` is within that window (less a safety margin); older cursors, and a first full read,
page through the query language by `MetaData.LastUpdatedTime`. Query pages are keyset pages: the next
page starts at the last change time seen, skipping the rows already read at exactly that time, so a
record updated while we page cannot shift the others past us.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, ClassVar

from django.utils import timezone

from connectors.base import (
    Change,
    ChangePage,
    ConflictError,
    Connector,
    ConnectorError,
    CreditNoteRecord,
    CustomerRecord,
    InvoiceRecord,
    NotFoundError,
    OAuthConfig,
    PaymentRecord,
    PermanentError,
    PushContext,
    RecordProblem,
    RemoteRef,
    ValidationError,
    WebhookResult,
)
from connectors.quickbooks import parsing, rendering, webhooks
from connectors.quickbooks.client import (
    BATCH_MAX_ITEMS,
    CDC_MAX_OBJECTS,
    PAGE_SIZE,
    RATE_LIMITS,
    QuickBooksClient,
    query_time,
    quote,
)

CDC_WINDOW = timedelta(days=30) - timedelta(hours=1)  # Intuit's 30 days, less clock skew
ENTITIES = {"invoice": "Invoice", "payment": "Payment", "credit_note": "CreditMemo", "customer": "Customer"}
REFERENCE_FIELDS = {
    "Invoice": "DocNumber",
    "CreditMemo": "DocNumber",
    "Payment": "PaymentRefNum",
    "Customer": "DisplayName",
}
REFERENCE_KINDS = {"item": "Item", "account": "Account", "tax_code": "TaxCode"}
ID_CHUNK = 100  # ids per `Id IN (...)` lookup


def _entity(object_type: str) -> str:
    try:
        return ENTITIES[object_type]
    except KeyError:
        raise PermanentError(f"QuickBooks does not handle {object_type!r} records") from None


class QuickBooksConnector(Connector):
    platform = "quickbooks"
    label = "QuickBooks Online"
    capabilities: ClassVar[dict[str, frozenset[str]]] = {
        "invoice": frozenset({"read", "list_changes", "create", "update", "void", "delete", "webhook"}),
        "credit_note": frozenset({"read", "list_changes", "create", "update", "delete", "webhook"}),
        "payment": frozenset(
            {"read", "list_changes", "create", "update", "void", "delete", "record_payment", "webhook"}
        ),
        "customer": frozenset({"read", "list_changes", "create", "update", "webhook"}),
    }
    uses_oauth = True
    oauth = OAuthConfig(
        authorize_url="https://appcenter.intuit.com/connect/oauth2",
        token_url="https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
        scopes=("com.intuit.quickbooks.accounting",),
        callback_params=("realmId",),
    )
    default_base_url = QuickBooksClient.default_base_url
    rate_limits = RATE_LIMITS
    line_mapping: ClassVar[dict[str, str]] = {"item": "required", "tax_code": "taxed"}
    reference_kinds: ClassVar[dict[str, str]] = {"account": "account", "tax_code": "tax_code", "item": "item"}
    reference_key = "id"
    customer_reference_is_name = True  # DisplayName is unique in QuickBooks and what find_by_reference reads
    batch_limit = BATCH_MAX_ITEMS  # creates per batch request (create_many)

    @cached_property
    def client(self) -> QuickBooksClient:
        return QuickBooksClient(self.connection)

    @property
    def home_currency(self) -> str:
        return str((self.connection.options or {}).get("home_currency") or "")

    # --- pure translation -------------------------------------------------------------------------------
    @classmethod
    def parse(
        cls,
        object_type: str,
        raw: dict[str, Any],
        *,
        home_currency: str = "",
        invoice_numbers: Mapping[str, str] | None = None,
    ) -> Any:
        """One record as the API returns it (bare, or inside its `{"Invoice": {...}}` envelope)."""
        entity = _entity(object_type)
        if isinstance(raw, dict) and isinstance(raw.get(entity), dict) and "Id" not in raw:
            raw = raw[entity]
        if not isinstance(raw, dict):
            raise ValidationError(f"a {entity} must be a JSON object", field=entity, value=raw)
        if parsing.is_deleted(raw):
            raise ValidationError(
                f"{entity} {raw.get('Id')} was deleted", field="status", value=raw.get("status")
            )
        try:
            if entity == "Invoice":
                return parsing.parse_invoice(raw, home_currency=home_currency)
            if entity == "CreditMemo":
                return parsing.parse_credit_memo(raw, home_currency=home_currency)
            if entity == "Payment":
                return parsing.parse_payment(
                    raw, home_currency=home_currency, invoice_numbers=invoice_numbers
                )
            return parsing.parse_customer(raw, home_currency=home_currency)
        except (TypeError, ValueError, AttributeError, KeyError, IndexError, ArithmeticError) as exc:
            # a shape no documented record has (a number where an object belongs, ...)
            raise ValidationError(f"unreadable {entity}: {type(exc).__name__}: {exc}", field=entity) from exc

    @classmethod
    def render(cls, object_type: str, record: Any, context: PushContext) -> dict[str, Any]:
        renderers = {
            "invoice": (InvoiceRecord, rendering.render_invoice),
            "credit_note": (CreditNoteRecord, rendering.render_credit_memo),
            "payment": (PaymentRecord, rendering.render_payment),
            "customer": (CustomerRecord, rendering.render_customer),
        }
        _entity(object_type)
        kind, render = renderers[object_type]
        if not isinstance(record, kind):
            raise TypeError(f"render({object_type!r}) needs a {kind.__name__}, not {type(record).__name__}")
        return render(record, context)

    # --- reads ------------------------------------------------------------------------------------------
    def check_credentials(self) -> None:
        self.client.company_info()

    def list_changes(
        self, object_type: str, *, since: datetime | None, page: str | None = None
    ) -> ChangePage:
        entity = _entity(object_type)
        mode, moment, start = _decode(page) if page else self._first_page(since)
        if mode == "cdc" and moment is not None:
            rows = self.client.cdc([entity], moment).get(entity, [])
            next_page = _after_cdc(rows, moment)
        else:
            where = f"MetaData.LastUpdatedTime >= {quote(query_time(moment))}" if moment else ""
            rows = self.client.query_page(
                entity, where=where, order_by="MetaData.LastUpdatedTime", start=start
            )
            next_page = _after_query(rows, moment, start)
        changes = self._changes(object_type, rows)
        times = [change.updated_at for change in changes if change.updated_at]
        return ChangePage(changes=changes, next_page=next_page, high_water=max(times) if times else None)

    def _first_page(self, since: datetime | None) -> tuple[str, datetime | None, int]:
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        if since is not None and timezone.now() - since < CDC_WINDOW:
            return "cdc", since, 1
        return "query", since, 1

    def fetch(self, object_type: str, external_id: str) -> Change:
        entity = _entity(object_type)
        row = self.client.read(entity, external_id)
        if not row:
            raise NotFoundError(f"QuickBooks has no {entity} {external_id}")
        return self._changes(object_type, [row])[0]

    def find_by_reference(self, object_type: str, reference: str) -> RemoteRef | None:
        entity = _entity(object_type)
        field = REFERENCE_FIELDS[entity]
        value = reference if field == "DisplayName" else rendering.short_reference(reference)
        rows = self.client.query_page(entity, where=f"{field} = {quote(value)}", order_by="Id", size=10)
        live = [row for row in rows if parsing.raw_status(entity, row) not in ("void", "deleted")]
        return _remote_ref(entity, (live or rows)[0]) if rows else None

    def reference_data(self, kind: str) -> list[dict[str, Any]]:
        """Items, accounts or tax codes (active ones) as plain dicts for mapping screens."""
        entity = REFERENCE_KINDS.get(kind.rstrip("s")) or REFERENCE_KINDS.get(kind)
        if entity is None:
            raise PermanentError(f"unknown reference data {kind!r}; known: {', '.join(REFERENCE_KINDS)}")
        return [_reference_row(entity, row) for row in self.client.query_all(entity)]

    # --- writes -----------------------------------------------------------------------------------------
    def create(self, object_type: str, payload: dict[str, Any], *, idempotency_key: str) -> RemoteRef:
        entity = _entity(object_type)
        return _remote_ref(entity, self.client.write(entity, payload, idempotency_key=idempotency_key))

    def create_many(
        self, object_type: str, payloads: Sequence[dict[str, Any]], *, idempotency_key: str
    ) -> list[RemoteRef | ConnectorError]:
        """Create up to `BATCH_MAX_ITEMS` records in one batch request: one result per payload, in the
        order given (matched by bId, whatever order QuickBooks answers in), a RemoteRef for each record
        made and, for each refused one, the error its item's Fault types to (a ValidationError naming
        the element, a ConflictError, ...), returned, not raised. A fault of the whole request raises."""
        entity = _entity(object_type)
        if len(payloads) > BATCH_MAX_ITEMS:
            raise ValueError(
                f"QuickBooks takes at most {BATCH_MAX_ITEMS} creates per batch, not {len(payloads)}"
            )
        if not payloads:
            return []
        items = [
            {"bId": str(index), "operation": "create", entity: payload}
            for index, payload in enumerate(payloads)
        ]
        answers = {
            str(answer.get("bId")): answer
            for answer in self.client.batch(items, idempotency_key=idempotency_key)
        }
        results: list[RemoteRef | ConnectorError] = []
        for item in items:
            answer = answers.get(item["bId"])
            if answer is None:
                raise PermanentError(
                    f"QuickBooks answered no item for bId {item['bId']} of a batch of {len(items)}"
                )
            fault = answer.get("Fault", answer.get("fault"))
            if fault is not None:
                label = f"{entity} bId {item['bId']}"
                results.append(self.client.item_error(fault, sent=item[entity], label=label))
            elif isinstance(answer.get(entity), dict):
                results.append(_remote_ref(entity, answer[entity]))
            else:
                raise PermanentError(
                    f"QuickBooks answered bId {item['bId']} with neither a {entity} nor a Fault"
                )
        return results

    def update(
        self,
        object_type: str,
        external_id: str,
        payload: dict[str, Any],
        *,
        remote_version: str,
        idempotency_key: str,
    ) -> RemoteRef:
        """A sparse update at `remote_version` (the SyncToken); a stale token is refused, not overwritten."""
        entity = _entity(object_type)
        if not remote_version:
            raise ConflictError(f"no SyncToken known for {entity} {external_id}: read it before updating")
        body = {**payload, "Id": external_id, "SyncToken": remote_version, "sparse": True}
        row = self.client.write(entity, body, idempotency_key=idempotency_key, operation="update")
        return _remote_ref(entity, row)

    def void(
        self, object_type: str, external_id: str, *, remote_version: str, idempotency_key: str
    ) -> RemoteRef:
        """Void an invoice (`operation=void`) or a payment (sparse update with `include=void`).

        Voiding is a deliberate act on the whole document, so without a known SyncToken the current one
        is read first; with one, a stale token is refused (ConflictError).
        """
        entity = _entity(object_type)
        if entity not in ("Invoice", "Payment"):
            raise PermanentError(f"QuickBooks cannot void a {entity}; delete it instead")
        token = remote_version or self._current_token(entity, external_id)
        if entity == "Invoice":
            body = {"Id": external_id, "SyncToken": token}
            row = self.client.write(entity, body, idempotency_key=idempotency_key, operation="void")
        else:
            body = {"Id": external_id, "SyncToken": token, "sparse": True}
            row = self.client.write(
                entity, body, idempotency_key=idempotency_key, operation="update", include="void"
            )
        return _remote_ref(entity, row)

    def delete(
        self, object_type: str, external_id: str, *, remote_version: str, idempotency_key: str
    ) -> RemoteRef:
        entity = _entity(object_type)
        if entity == "Customer":
            raise PermanentError("QuickBooks does not delete customers; make them inactive instead")
        body = {"Id": external_id, "SyncToken": remote_version or self._current_token(entity, external_id)}
        row = self.client.write(entity, body, idempotency_key=idempotency_key, operation="delete")
        return _remote_ref(entity, {**row, "status": "Deleted"})

    def record_payment(
        self, payment: PaymentRecord, context: PushContext, *, idempotency_key: str
    ) -> RemoteRef:
        payload = self.render("payment", payment, context)
        return self.create("payment", payload, idempotency_key=idempotency_key)

    def webhook_account(self) -> str | None:
        """Intuit sends every connected company's events for the app to one endpoint (`realmId`, or
        `intuitaccountid` in CloudEvents)."""
        realm = (self.connection.options or {}).get("realmId")
        return str(realm) if realm else None

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookResult:
        token = str((self.connection.credentials or {}).get("webhook_verifier_token") or "")
        return webhooks.verify(token, headers, body)

    # --- internals ------------------------------------------------------------------------------------
    def _current_token(self, entity: str, external_id: str) -> str:
        return str(self.client.read(entity, external_id).get("SyncToken") or "")

    def _invoice_numbers(self, rows: Iterable[dict[str, Any]]) -> dict[str, str]:
        """DocNumbers of the invoices payments are applied to (a payment line names only the id)."""
        ids = sorted({invoice_id for row in rows for invoice_id in parsing.linked_invoice_ids(row)})
        numbers: dict[str, str] = {}
        for offset in range(0, len(ids), ID_CHUNK):
            chunk = ids[offset : offset + ID_CHUNK]
            where = f"Id IN ({', '.join(quote(invoice_id) for invoice_id in chunk)})"
            for row in self.client.query_page(
                "Invoice", where=where, select="Id, DocNumber", size=len(chunk)
            ):
                numbers[str(row.get("Id"))] = str(row.get("DocNumber") or "")
        return numbers

    def _changes(self, object_type: str, rows: list[dict[str, Any]]) -> list[Change]:
        entity = _entity(object_type)
        numbers = self._invoice_numbers(rows) if entity == "Payment" else None
        return [self._change(object_type, entity, row, numbers) for row in rows]

    def _change(
        self, object_type: str, entity: str, row: dict[str, Any], numbers: Mapping[str, str] | None
    ) -> Change:
        external_id = str(row.get("Id") or "")
        common = {
            "object_type": object_type,
            "external_id": external_id,
            "remote_version": str(row.get("SyncToken") or ""),
            "updated_at": parsing.updated_at(row),
            "raw": row,
        }
        if parsing.is_deleted(row):
            return Change(deleted=True, **common)
        key = str(row.get("DocNumber") or row.get("PaymentRefNum") or external_id)
        try:
            record = self.parse(object_type, row, home_currency=self.home_currency, invoice_numbers=numbers)
        except ValidationError as exc:
            problem = RecordProblem(
                key=key,
                field=exc.field,
                raw="" if exc.value is None else str(exc.value),
                message=str(exc),
                location=f"{entity} {external_id}",
            )
            return Change(problem=problem, **common)
        return Change(record=record, **common)


# --- page tokens: "cdc|<since>" or "query|<since or empty>|<start position>" ---------------------------
def _encode(mode: str, moment: datetime | None, start: int = 1) -> str:
    return f"{mode}|{moment.isoformat() if moment else ''}|{start}"


def _decode(page: str) -> tuple[str, datetime | None, int]:
    try:
        mode, moment, start = page.split("|")
        return mode, datetime.fromisoformat(moment) if moment else None, int(start)
    except ValueError:
        raise PermanentError(f"not a QuickBooks page token: {page!r}") from None


def _second(moment: datetime | None) -> str:
    return query_time(moment) if moment else ""


def _after_cdc(rows: list[dict[str, Any]], since: datetime) -> str | None:
    """CDC answers at most 1000 objects: a full answer continues from its newest change."""
    if len(rows) < CDC_MAX_OBJECTS:
        return None
    times = [moment for moment in map(parsing.updated_at, rows) if moment]
    newest = max(times) if times else None
    if newest is not None and _second(newest) > _second(since):
        return _encode("cdc", newest)
    return _encode("query", since)  # 1000 changes in one second: page through them instead


def _after_query(rows: list[dict[str, Any]], since: datetime | None, start: int) -> str | None:
    if len(rows) < PAGE_SIZE:
        return None
    last = parsing.updated_at(rows[-1])
    if last is None or (since is not None and _second(last) == _second(since)):
        return _encode("query", since, start + len(rows))
    ties = sum(1 for row in rows if _second(parsing.updated_at(row)) == _second(last))
    return _encode("query", last, ties + 1)


def _remote_ref(entity: str, row: Mapping[str, Any]) -> RemoteRef:
    number = row.get("PaymentRefNum") if entity == "Payment" else row.get("DocNumber")
    if entity == "Customer":
        number = row.get("DisplayName")
    return RemoteRef(
        external_id=str(row.get("Id") or ""),
        number=str(number or ""),
        remote_version=str(row.get("SyncToken") or ""),
        status=parsing.raw_status(entity, row),
        raw=dict(row),
    )


def _reference_row(entity: str, row: Mapping[str, Any]) -> dict[str, Any]:
    common = {
        "id": str(row.get("Id") or ""),
        "name": str(row.get("Name") or ""),
        "active": row.get("Active", True),
    }
    if entity == "Item":
        return {
            **common,
            "code": str(row.get("Sku") or row.get("Name") or ""),
            "type": str(row.get("Type") or ""),
            "income_account": parsing.ref_value(row.get("IncomeAccountRef")),
        }
    if entity == "Account":
        return {
            **common,
            "code": str(row.get("AcctNum") or ""),
            "type": str(row.get("AccountType") or ""),
            "classification": str(row.get("Classification") or ""),
            "currency": parsing.ref_value(row.get("CurrencyRef")),
        }
    return {
        **common,
        "code": str(row.get("Name") or ""),
        "description": str(row.get("Description") or ""),
        "taxable": bool(row.get("Taxable", False)),
    }
