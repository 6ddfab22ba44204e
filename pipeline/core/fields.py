"""The fields of an S3 event, checked: what both event shapes (S3's own, EventBridge's) share.

A value S3 could not have sent is a `NotificationError`: its message fails alone and, after
the queue's maxReceiveCount, lands in the DLQ.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from pipeline.core.model import sequencer_problem

MAX_OBJECT_SIZE = 10_000 * 5 * 1024**3
"""The largest object S3 can hold, in bytes: 53,687,091,200,000 (48.8 TiB).

S3's user guide ("Amazon S3 objects overview",
https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingObjects.html) says objects range
"from zero to 50 TB" (raised from 5 TB in late 2025) and that the actual maximum is 53.7 TB,
set by multipart upload: 10,000 parts x 5 GiB. A size above it cannot come from S3.
"""


class NotificationError(ValueError):
    """The message body is not an S3 event notification we can apply."""


def check_text(value: Any, what: str, *, required: bool = True) -> str | None:
    """A non-empty, UTF-8-encodable string; None for an absent optional field (`required` off).

    Any other JSON value (number, list, object, boolean, empty string) is a `NotificationError`.
    """
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        shown = "empty" if value == "" else type(value).__name__
        raise NotificationError(f"{what} must be a non-empty string, got {shown}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise NotificationError(f"{what} is not valid UTF-8") from None
    return value


def check_time(value: Any, what: str) -> str:
    """An ISO 8601 time, in the one form rows store: UTC with milliseconds, as S3 notifications
    send it (`2026-12-04T10:00:00.123Z`). EventBridge sends whole seconds (`...:00Z`): stored
    as `.000Z`. A time without an offset is taken as UTC; finer digits are cut to milliseconds.
    """
    text = check_text(value, what)
    assert text is not None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise NotificationError(f"{what} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise NotificationError(f"{what} is out of range") from None
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def decode_key(raw: str) -> str:
    """Decode an S3 notification key (form-URL-encoded: `+` is a space, `%2B` is `+`)."""
    try:
        key = unquote_plus(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise NotificationError("s3.object.key does not decode to UTF-8") from None
    if not key:
        raise NotificationError("s3.object.key is empty")
    return key


def check_size(value: Any, what: str = "s3.object.size") -> int | None:
    """A size S3 could have sent: absent, or an integer in [0, MAX_OBJECT_SIZE]."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        negative = isinstance(value, int) and not isinstance(value, bool)
        shown = "a negative number" if negative else type(value).__name__
        raise NotificationError(f"{what} must be a non-negative integer, got {shown}")
    if value > MAX_OBJECT_SIZE:
        raise NotificationError(
            f"{what} is larger than S3's maximum object size ({MAX_OBJECT_SIZE} bytes)"
        )
    return value


def check_sequencer(value: Any, what: str = "s3.object.sequencer") -> str | None:
    """A sequencer DynamoDB can compare exactly (hex, at most SEQ_WIDTH digits), or None.

    Stored in one form whatever the route: uppercase, like S3's own notifications send it
    (EventBridge's samples are lowercase; S3's rule compares them case-insensitively).
    """
    text = value if value == "" else check_text(value, what, required=False)
    if text is not None and (problem := sequencer_problem(text)):
        raise NotificationError(problem)
    return text.upper() if text is not None else None
