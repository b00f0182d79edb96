"""Xero's dates: MS-JSON /Date(ms±hhmm)/ with offsets and negative epochs, ISO variants, date vs instant."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import ValidationError
from connectors.xero.records import same_version, version_of, xero_date, xero_datetime


def test_an_ms_json_instant_is_milliseconds_since_the_epoch_in_utc():
    assert xero_datetime("/Date(1552327126117+0000)/", field="UpdatedDateUTC") == datetime(
        2019, 3, 11, 17, 58, 46, 117000, tzinfo=UTC
    )


def test_an_ms_json_instant_without_offset_is_read_too():
    assert xero_datetime("/Date(1552327126164)/", field="DateTimeUTC") == datetime(
        2019, 3, 11, 17, 58, 46, 164000, tzinfo=UTC
    )


def test_the_offset_of_an_ms_json_instant_does_not_move_the_instant():
    # the milliseconds are UTC already; the suffix only says which clock the organisation keeps
    assert xero_datetime("/Date(1552327126117+1300)/", field="f") == xero_datetime(
        "/Date(1552327126117+0000)/", field="f"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/Date(0+0000)/", datetime(1970, 1, 1, tzinfo=UTC)),
        ("/Date(-86400000+0000)/", datetime(1969, 12, 31, tzinfo=UTC)),
        ("/Date(-1+0000)/", datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
        ("/Date(-62135596800000)/", datetime(1, 1, 1, tzinfo=UTC)),
    ],
)
def test_negative_epochs_are_instants_before_1970(raw, expected):
    assert xero_datetime(raw, field="Date") == expected


def test_a_date_field_is_the_day_midnight_utc_falls_on():
    assert xero_date("/Date(1539993600000+0000)/", field="Date") == date(2018, 10, 20)


def test_a_date_with_a_positive_offset_is_the_organisations_day():
    # 2019-03-11 00:00 in Auckland (UTC+13) is 2019-03-10T11:00Z: the day is the 11th, not the 10th
    assert xero_date("/Date(1552215600000+1300)/", field="Date") == date(2019, 3, 11)


def test_a_date_with_a_negative_offset_is_the_organisations_day():
    # 2019-03-10 20:00 in New York (UTC-04:00) is 2019-03-11T00:00Z
    assert xero_date("/Date(1552262400000-0400)/", field="Date") == date(2019, 3, 10)


def test_a_negative_epoch_date():
    assert xero_date("/Date(-86400000+0000)/", field="Date") == date(1969, 12, 31)


@pytest.mark.parametrize(
    "raw",
    [
        "2019-03-11",
        "2019-03-11T00:00:00",
        "2019-03-11 00:00:00",
        "2019-03-11T23:59:59.997",
        "2019-03-11T08:00:00+13:00",
    ],
)
def test_iso_dates_keep_their_own_calendar_day(raw):
    assert xero_date(raw, field="DateString") == date(2019, 3, 11)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2019-11-14 18:10:38+00:00", datetime(2019, 11, 14, 18, 10, 38, tzinfo=UTC)),
        ("2019-11-14T18:10:38", datetime(2019, 11, 14, 18, 10, 38, tzinfo=UTC)),
        ("2019-11-14T18:10:38.123Z", datetime(2019, 11, 14, 18, 10, 38, 123000, tzinfo=UTC)),
        ("2019-11-14T20:10:38+02:00", datetime(2019, 11, 14, 18, 10, 38, tzinfo=UTC)),
        ("2019-11-14", datetime(2019, 11, 14, tzinfo=UTC)),
    ],
)
def test_iso_instants_are_utc_and_a_naive_one_counts_as_utc(raw, expected):
    assert xero_datetime(raw, field="UpdatedDateUTCString") == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        None,
        1552327126117,
        "/Date(abc)/",
        "/Date(1552327126117+00)/",
        "11/03/2019",
        "2019-13-01",
        [],
    ],
)
def test_what_is_not_a_xero_date_is_refused_naming_field_and_value(raw):
    with pytest.raises(ValidationError) as caught:
        xero_date(raw, field="DueDate")
    assert caught.value.field == "DueDate"
    assert caught.value.value == raw


def test_an_instant_beyond_the_calendar_is_refused():
    with pytest.raises(ValidationError, match="out of range"):
        xero_datetime("/Date(999999999999999999+0000)/", field="Date")


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)))
def test_any_instant_written_as_ms_json_reads_back_to_the_millisecond(instant):
    millis = (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    parsed = xero_datetime(f"/Date({millis}+0000)/", field="f")
    assert parsed == instant.replace(microsecond=instant.microsecond // 1000 * 1000)
    assert parsed.tzinfo is not None


def test_the_version_is_updated_date_utc_as_iso_text():
    assert version_of({"UpdatedDateUTC": "/Date(1552327126117+0000)/"}) == "2019-03-11T17:58:46.117000+00:00"
    assert version_of({}) == ""


def test_versions_compare_as_instants_whatever_shape_they_were_kept_in():
    assert same_version("2019-03-11T17:58:46.117000+00:00", "/Date(1552327126117+0000)/")
    assert not same_version("2019-03-11T17:58:46.117000+00:00", "/Date(1552327126118+0000)/")
