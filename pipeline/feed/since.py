"""The one ISO 8601 profile `since` accepts (GET /changes and `watch --since`).

RFC 3339's profile of ISO 8601, with the time optional:

    YYYY-MM-DD                                  midnight UTC of that day
    YYYY-MM-DDTHH:MM[:SS[.F]][Z|±HH:MM]         F: 1 to 9 digits; no zone = UTC

`T` and `Z` may be lowercase (RFC 3339 allows it). Nothing else: no space for `T`, no
week (`2026-W49`) or ordinal (`2026-338`) dates, no basic format (`20261204T1000`), no
hour 24 or leap second, no surrounding spaces or control characters.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

PROFILE = "YYYY-MM-DD, optionally THH:MM[:SS[.fraction]] and Z or ±HH:MM (no zone: UTC)"
_SINCE = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[Tt](?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<zone>[Zz]|[+-]\d{2}:\d{2})?)?",
    re.ASCII,
)


def parse_iso_time(value: str) -> datetime:
    """The aware datetime of `value` in the profile above; ValueError otherwise."""
    match = _SINCE.fullmatch(value)
    if match is None:
        raise ValueError(f"not an ISO 8601 time ({PROFILE})")
    day = datetime.strptime(match["date"], "%Y-%m-%d")  # checks month and day ranges
    if match["hour"] is None:
        return day.replace(tzinfo=UTC)
    hour, minute, second = int(match["hour"]), int(match["minute"]), int(match["second"] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"not an ISO 8601 time ({PROFILE})")
    micros = int((match["fraction"] or "0").ljust(9, "0")[:6])
    moment = day.replace(hour=hour, minute=minute, second=second, microsecond=micros)
    return moment.replace(tzinfo=_zone(match["zone"]))


def _zone(text: str | None) -> timezone:
    if text is None or text in "Zz":
        return UTC
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 23 or minutes > 59:
        raise ValueError(f"not an ISO 8601 time ({PROFILE})")
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if text[0] == "-" else offset)


def since_ms(value: str) -> int:
    """Epoch milliseconds of a `since` value (the profile above); ValueError otherwise."""
    return int(parse_iso_time(value).timestamp() * 1000)
