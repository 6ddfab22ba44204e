"""The fields of an S3 event, checked: what both event shapes (S3's own, EventBridge's) share.

A value S3 could not have sent is a `NotificationError`: its message fails alone and, after
the queue's maxReceiveCount, lands in the DLQ.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from pipeline.model import sequencer_problem

MAX_OBJECT_SIZE = 10_000 * 5 * 1024**3
"""The largest object S3 can hold, in bytes: 53,687,091,200,000 (48.8 TiB).

S3's user guide ("Amazon S3 objects overview",
https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingObjects.html) says objects range
"from zero to 50 TB" (raised from 5 TB in late 2025) and that the actual maximum is 53.7 TB,
set by multipart upload: 10,000 parts x 5 GiB. A size above it cannot come from S3.
"""


class NotificationError(ValueError):
    """The message body is not an S3 event notification we can apply."""


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


def check_sequencer(value: str | None) -> str | None:
    """A sequencer DynamoDB can compare exactly (hex, at most SEQ_WIDTH digits), or None."""
    if value is not None and (problem := sequencer_problem(value)):
        raise NotificationError(problem)
    return value
