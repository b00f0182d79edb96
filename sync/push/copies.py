"""Comparing what was sent with the copy a destination holds (only the fields sent count)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sync import mapping

# keys a destination adds or rotates on its own: not a difference when verifying an update
VOLATILE_KEYS = {"SyncToken", "sparse", "Id", "MetaData", "UpdatedDateUTC"}
# lines a destination adds to a document of its own accord: never a difference from what was sent
PLATFORM_LINES = {"SubTotalLineDetail"}
MS_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")


def comparable(payload: Any) -> Any:
    if isinstance(payload, dict):
        return {k: comparable(v) for k, v in payload.items() if k not in VOLATILE_KEYS}
    if isinstance(payload, list):
        return [comparable(v) for v in payload]
    return payload


def copy_matches(sent: Any, raw: Any) -> bool:
    """Does the destination's copy (`raw`, as read) still hold what was sent? Only what the payload
    carries is compared, against the matching fields of the copy: keys the platform adds or rotates
    (ids, versions, balances, links to payments) and lines it adds of its own (QuickBooks' subtotal
    line) are not differences; a line someone added, removed or changed there is."""
    return _matches(comparable(sent), unwrap(raw))


def _matches(sent: Any, copy: Any) -> bool:
    if isinstance(sent, dict):
        if not isinstance(copy, dict):
            return False
        # a key the copy does not echo back says nothing either way
        return all(_matches(value, copy[key]) for key, value in sent.items() if key in copy)
    if isinstance(sent, list):
        if not isinstance(copy, list):
            return False
        own = [item for item in copy if not _platform_line(item)]
        return len(own) == len(sent) and all(_matches(a, b) for a, b in zip(sent, own, strict=True))
    if sent is None or sent == "":
        return copy is None or copy == ""
    return not mapping.payload_diff(sent, copy) or _same_day(sent, copy)


def _platform_line(item: Any) -> bool:
    return isinstance(item, dict) and item.get("DetailType") in PLATFORM_LINES


def _same_day(sent: Any, copy: Any) -> bool:
    """An ISO date sent, read back in the platform's own form (Xero's "/Date(1790812800000+0000)/")."""
    if not isinstance(sent, str) or not isinstance(copy, str):
        return False
    match = MS_DATE.fullmatch(copy.strip())
    if match is None:
        return False
    day = datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC).date()
    return day.isoformat() == sent[:10]


def unwrap(raw: Any) -> Any:
    """A record's body without the platform's envelope ({"Invoice": {...}}, {"Invoices": [x]})."""
    if isinstance(raw, dict) and len(raw) <= 2:
        for value in raw.values():
            if isinstance(value, dict):
                return value
            if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
                return value[0]
    return raw
