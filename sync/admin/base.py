"""What the sync admin pages share: links to a document's page, counted action outcomes, services looked up
when an action runs, read-only inlines, money columns."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from sync.money import money_str

# The admin page of each kind of canonical record, by Binding/PushOperation object_type.
DOCUMENT_ADMIN = {
    "invoice": "admin:sync_invoice_change",
    "credit_note": "admin:sync_creditnote_change",
    "payment": "admin:sync_payment_change",
    "customer": "admin:sync_customer_change",
    "summary_invoice": "admin:sync_summaryposting_change",
    "summary_credit_note": "admin:sync_summaryposting_change",
    "summary_payment": "admin:sync_summaryposting_change",
}


def document_admin_url(object_type: str, object_id: int | None) -> str:
    if object_type not in DOCUMENT_ADMIN or object_id is None:
        return ""
    return reverse(DOCUMENT_ADMIN[object_type], args=[object_id])


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)


class Outcomes:
    """What an action did to each object, reported as one counted message per outcome."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.done: list[str] = []
        self.skipped: list[str] = []
        self.failed: list[str] = []

    def run(
        self, objects: Iterable[Any], call: Callable[[Any], Any], describe: Callable[[Any, Any], str | None]
    ) -> None:
        """Call `call(obj)` for each; `describe(obj, result)` says what happened, None meaning skipped."""
        for obj in objects:
            try:
                result = call(obj)
            except Exception as exc:  # one bad object must not hide what happened to the others
                self.failed.append(f"{obj}: {exc}")
                continue
            text = describe(obj, result)
            if text is None:
                self.skipped.append(str(obj))
            else:
                self.done.append(text)

    def report(self, model_admin: admin.ModelAdmin, request: HttpRequest, skipped_reason: str = "") -> None:
        if self.done:
            model_admin.message_user(
                request, f"{self.verb}: {len(self.done)} ({'; '.join(self.done)})", messages.SUCCESS
            )
        if self.skipped:
            model_admin.message_user(
                request,
                f"{len(self.skipped)} {skipped_reason or 'skipped'}: {', '.join(self.skipped)}",
                messages.WARNING,
            )
        if self.failed:
            model_admin.message_user(
                request, f"{len(self.failed)} failed: {'; '.join(self.failed)}", messages.ERROR
            )


def _pretty(value: Any) -> str:
    return format_html(
        "<pre style='white-space:pre-wrap;max-height:24em;overflow:auto'>{}</pre>",
        json.dumps(value, indent=2, ensure_ascii=False, default=str),
    )


def _link(url: str, text: Any) -> str:
    return format_html('<a href="{}">{}</a>', url, text) if url else str(text)


def money_column(name: str, description: str = "") -> Any:
    """An admin column showing a money field at its document's currency precision."""

    @admin.display(description=description or name.replace("_", " "), ordering=name)
    def show(self: Any, obj: Any) -> str:
        return money_str(getattr(obj, name), obj.currency)

    return show


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False
