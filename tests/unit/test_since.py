"""`since` (GET /changes, `watch --since`): one documented ISO 8601 profile (RFC 3339's, the
time optional), everything else a 400 / a one-line CLI error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.feed.service import BadSinceError, parse_since
from pipeline.local.cli import main


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


T = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "moment"),
    [
        ("2026-12-04T10:00:00Z", T),
        ("2026-12-04t10:00:00z", T),  # RFC 3339 allows lowercase t and z
        ("2026-12-04T10:00Z", T),
        ("2026-12-04T10:00:00", T),  # no zone: UTC
        ("2026-12-04T10:00:00.5Z", T + timedelta(milliseconds=500)),
        ("2026-12-04T10:00:00.123456789Z", T + timedelta(microseconds=123456)),
        ("2026-12-04T15:30:00+05:30", T),
        ("2026-12-04T05:00:00-05:00", T),
        ("2026-12-04", datetime(2026, 12, 4, tzinfo=UTC)),
    ],
)
def test_the_profile_accepts(value: str, moment: datetime) -> None:
    assert parse_since(value) == ms(moment)


@pytest.mark.parametrize(
    "value",
    [
        "2026-W49",  # week date
        "2026-W49-5",
        "2026-338",  # ordinal date
        "20261204T100000Z",  # basic format
        "2026-12-04 10:00:00Z",  # a space for T
        "2026-12-04T10:00:00Z\x00",  # a trailing NUL
        " 2026-12-04T10:00:00Z",
        "2026-12-04T10:00:00Z ",
        "2026-12-04T24:00:00Z",
        "2026-12-04T10:00:60Z",
        "2026-02-30T10:00:00Z",
        "2026-12-04T10:00:00+0530",
        "2026-12-04T10:00:00+24:00",
        "2026-12-04T10",
        "2026-12-04T10:00:00.Z",
        "\uff12\uff10\uff12\uff16-12-04",  # non-ASCII (fullwidth) digits
        "yesterday",
        "",
    ],
)
def test_the_profile_refuses(value: str) -> None:
    with pytest.raises(BadSinceError):
        parse_since(value)


def test_watch_refuses_a_since_outside_the_profile_before_any_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["watch", "--since", "2026-W49", "--api-url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --since '2026-W49': not an ISO 8601 time: YYYY-MM-DD")
