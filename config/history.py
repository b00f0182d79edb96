"""History pages (django-simple-history) as people read them: a reference that was empty (an exception
nobody was assigned to yet, a profile without a mapping set) shows as "nobody" or "none", not as a
deleted record without a key."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin
from simple_history.models import DeletedObject, ModelChange, ModelChangeValue
from simple_history.template_utils import HistoricalRecordContextHelper


class HistoryContextHelper(HistoricalRecordContextHelper):
    def prepare_delta_change_value(self, change: ModelChange, value: ModelChangeValue) -> Any:
        value = super().prepare_delta_change_value(change, value)
        if isinstance(value, DeletedObject) and value.pk is None:
            return "nobody" if value.model is get_user_model() else "none"
        return value


class HistoryAdmin(SimpleHistoryAdmin):
    """SimpleHistoryAdmin whose history page says "nobody" or "none" for an empty reference."""

    def get_historical_record_context_helper(
        self, request: HttpRequest, historical_record: Any
    ) -> HistoricalRecordContextHelper:
        return HistoryContextHelper(self.model, historical_record)
