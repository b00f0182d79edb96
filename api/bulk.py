"""Checking the documents of a bulk request: each on its own, a thousand at a time, quickly.

DRF's serializer machinery costs about 150 microseconds of CPU per invoice (a field object, a validator
list and an exception frame per value), more than the database write of the same invoice. So each input
serializer is compiled once into a plan of plain converters that accept the common, well-formed shape of
each value (a string for a string, an int for an int, an ISO date) and give exactly what the serializer
would give. Anything else, and every document the serializer's own `validate` refuses, goes through the
serializer itself: errors are the serializer's, word for word, and a value the plan does not know is
never guessed at. A serializer the plan cannot mirror (an unknown field type or validator, a
`validate_<field>` method, a dotted source) is not compiled at all: its documents all take the slow path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from functools import cache
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import (
    EmailValidator,
    MaxLengthValidator,
    MaxValueValidator,
    MinLengthValidator,
    MinValueValidator,
    ProhibitNullCharactersValidator,
)
from rest_framework import ISO_8601, serializers
from rest_framework.fields import SkipField, empty
from rest_framework.settings import api_settings
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from api.documents import DocumentKind
from api.errors import field_errors
from api.fields import CurrencyField, DecimalInputField
from api.services import ItemResult

Converter = Callable[[Any], Any]
SKIP = object()  # the key is left out of the validated data, as DRF's SkipField does
_BAD_CHARACTERS = re.compile("[\x00\ud800-\udfff]")  # what DRF's CharField validators refuse
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CHAR_VALIDATORS = (
    MaxLengthValidator,
    MinLengthValidator,
    ProhibitNullCharactersValidator,
    ProhibitSurrogateCharactersValidator,
    EmailValidator,
)


class Slow(Exception):
    """The value is not one the plan is sure of: the serializer decides."""


class Unsupported(Exception):
    """The serializer does something the plan cannot mirror."""


# --- compiling a serializer into converters -------------------------------------------------------------
def _with_empty(field: serializers.Field, convert: Converter) -> Converter:
    """A missing key and null as `Field.validate_empty_values` takes them (bulk writes are never partial)."""
    required, allow_null = field.required, field.allow_null
    default = field.default
    if callable(default) and getattr(default, "requires_context", False):
        raise Unsupported(f"{field.field_name}: a default that needs its context")
    null_as_blank = getattr(field, "null_as_blank", False)

    def converter(value: Any) -> Any:
        if value is empty:
            if required:
                raise Slow
            if default is empty:
                return SKIP
            return default() if callable(default) else default
        if value is None:
            if null_as_blank:
                return ""
            if not allow_null:
                raise Slow
            return None
        return convert(value)

    return converter


def _char(field: serializers.CharField) -> Converter:
    for validator in field.validators:
        if type(validator) not in _CHAR_VALIDATORS:
            raise Unsupported(f"{field.field_name}: validator {type(validator).__name__}")
    emails = [v for v in field.validators if isinstance(v, EmailValidator)]
    allow_blank, trim = field.allow_blank, field.trim_whitespace
    longest, shortest = field.max_length, field.min_length
    currency = isinstance(field, CurrencyField)

    def convert(value: Any) -> str:
        if type(value) is not str:
            raise Slow  # DRF also takes numbers for strings; rare enough to leave to it
        text = value.strip() if trim else value
        if value == "" or (trim and not text):
            if allow_blank:
                return ""
            raise Slow
        if currency:
            try:
                text = field.to_internal_value(text)
            except serializers.ValidationError:
                raise Slow from None
        if (longest is not None and len(text) > longest) or (shortest is not None and len(text) < shortest):
            raise Slow
        if _BAD_CHARACTERS.search(text):
            raise Slow
        for validator in emails:
            try:
                validator(text)
            except DjangoValidationError:
                raise Slow from None
        return text

    return convert


def _decimal(field: DecimalInputField) -> Converter:
    if field.validators:
        raise Unsupported(f"{field.field_name}: validators")

    def convert(value: Any) -> Any:
        try:
            return field.to_internal_value(value)
        except serializers.ValidationError:
            raise Slow from None

    return convert


def _date(field: serializers.DateField) -> Converter:
    formats = getattr(field, "input_formats", api_settings.DATE_INPUT_FORMATS)
    if field.validators or ISO_8601 not in formats:
        raise Unsupported(f"{field.field_name}: not an ISO 8601 date field")

    def convert(value: Any) -> date:
        if type(value) is not str or len(value) != 10 or not _ISO_DATE.fullmatch(value):
            raise Slow
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise Slow from None

    return convert


def _choice(field: serializers.ChoiceField) -> Converter:
    if field.validators:
        raise Unsupported(f"{field.field_name}: validators")
    choices = dict(field.choice_strings_to_values)
    allow_blank = field.allow_blank

    def convert(value: Any) -> Any:
        if type(value) is not str:
            raise Slow
        if value == "" and allow_blank:
            return ""
        try:
            return choices[value]
        except KeyError:
            raise Slow from None

    return convert


def _integer(field: serializers.IntegerField) -> Converter:
    lowest, highest = field.min_value, field.max_value
    if any(type(v) not in (MinValueValidator, MaxValueValidator) for v in field.validators):
        raise Unsupported(f"{field.field_name}: validators")

    def convert(value: Any) -> int:
        if type(value) is not int:
            raise Slow
        if (lowest is not None and value < lowest) or (highest is not None and value > highest):
            raise Slow
        return value

    return convert


def _list(field: serializers.ListSerializer) -> Converter:
    if field.validators or type(field).validate is not serializers.ListSerializer.validate:
        raise Unsupported(f"{field.field_name}: list validation")
    item = _serializer(field.child)  # type: ignore[arg-type]
    allow_empty, longest, shortest = field.allow_empty, field.max_length, field.min_length

    def convert(value: Any) -> list[Any]:
        if type(value) is not list:
            raise Slow
        if (not value and not allow_empty) or (longest is not None and len(value) > longest):
            raise Slow
        if shortest is not None and len(value) < shortest:
            raise Slow
        return [item(element) for element in value]

    return convert


_LEAVES: dict[type, Callable[[Any], Converter]] = {
    serializers.CharField: _char,
    serializers.EmailField: _char,
    CurrencyField: _char,
    DecimalInputField: _decimal,
    serializers.DateField: _date,
    serializers.ChoiceField: _choice,
    serializers.IntegerField: _integer,
}


def _field(field: serializers.Field) -> Converter:
    if field.read_only or field.source != field.field_name:
        raise Unsupported(f"{field.field_name}: read-only or with a source of its own")
    if isinstance(field, serializers.ListSerializer):
        return _with_empty(field, _list(field))
    if isinstance(field, serializers.Serializer):
        return _with_empty(field, _serializer(field))
    leaf = _LEAVES.get(type(field))
    if leaf is None:
        raise Unsupported(f"{field.field_name}: {type(field).__name__}")
    return _with_empty(field, leaf(field))


def _serializer(serializer: serializers.Serializer) -> Converter:
    """A serializer's fields in its order, then its own `validate` (whose refusal the serializer words)."""
    kind = type(serializer)
    if kind.to_internal_value is not serializers.Serializer.to_internal_value or serializer.validators:
        raise Unsupported(f"{kind.__name__}: its own to_internal_value or validators")
    plan = []
    for name, field in serializer.fields.items():
        if getattr(serializer, f"validate_{name}", None) is not None:
            raise Unsupported(f"{kind.__name__}.validate_{name}")
        plan.append((name, _field(field)))
    validate = serializer.validate if kind.validate is not serializers.Serializer.validate else None

    def convert(value: Any) -> dict[str, Any]:
        if type(value) is not dict:
            raise Slow
        attrs = {}
        for name, converter in plan:
            result = converter(value.get(name, empty))
            if result is not SKIP:
                attrs[name] = result
        if validate is not None:
            try:
                attrs = validate(attrs)
            except (serializers.ValidationError, DjangoValidationError, SkipField):
                raise Slow from None
        return attrs

    return convert


@cache
def input_plan(input_class: type[serializers.Serializer]) -> Converter | None:
    """The compiled plan of an input serializer, or None when it cannot be mirrored."""
    try:
        return _serializer(input_class())
    except Unsupported:
        return None


def _validated(plan: Converter | None, serializer: serializers.Serializer, data: Any) -> dict[str, Any]:
    """`serializer.run_validation(data)`, by the plan where it is sure of the document."""
    if plan is not None:
        try:
            return plan(data)
        except Slow:
            pass
    return serializer.run_validation(data)


# --- a batch --------------------------------------------------------------------------------------------
def documents_check(
    kind: DocumentKind, documents: list[Any]
) -> tuple[dict[int, ItemResult], list[tuple[int, Any]]]:
    """Each document checked on its own: (results of the refused ones by index, (index, record) of the
    rest). A document repeating an external_id earlier in the batch is refused, naming that index."""
    plan = input_plan(kind.input)
    fallback = kind.input()  # one serializer for the whole batch: building one costs as much as a check
    results: dict[int, ItemResult] = {}
    valid: list[tuple[int, Any]] = []
    seen: dict[str, int] = {}
    for index, data in enumerate(documents):
        try:
            record = kind.record(_validated(plan, fallback, data))
        except serializers.ValidationError as exc:
            external_id = data.get("external_id") if isinstance(data, dict) else None
            results[index] = ItemResult(
                index=index,
                external_id=external_id if isinstance(external_id, str) else None,  # type: ignore[arg-type]
                errors=field_errors(exc.detail, data),
            )
            continue
        if record.external_id in seen:
            results[index] = ItemResult(
                index=index,
                external_id=record.external_id,
                errors=[
                    {
                        "field": "external_id",
                        "message": f"already in this batch at index {seen[record.external_id]}",
                        "value": record.external_id,
                    }
                ],
            )
            continue
        seen[record.external_id] = index
        valid.append((index, record))
    return results, valid
