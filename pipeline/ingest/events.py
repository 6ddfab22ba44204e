"""Parse SQS message bodies carrying S3 event notifications into `FileEvent`s.

Handles S3's own shape (form-URL-encoded keys, `s3:TestEvent`, several `Records` per
message), the same notification wrapped in an SNS envelope (S3 -> SNS -> SQS fan-out), and
S3 events routed through EventBridge (`pipeline.ingest.eventbridge`).
Anything else is a `NotificationError`: the message fails alone and, after the queue's
maxReceiveCount, lands in the DLQ.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipeline.core.fields import (
    NotificationError,
    check_sequencer,
    check_size,
    check_text,
    check_time,
    decode_key,
)
from pipeline.core.model import Action, FileEvent
from pipeline.ingest.eventbridge import parse_event

CREATE_PREFIXES = ("ObjectCreated:",)
DELETE_NAMES = frozenset(
    {
        "ObjectRemoved:Delete",
        "ObjectRemoved:DeleteMarkerCreated",
        "LifecycleExpiration:Delete",
        "LifecycleExpiration:DeleteMarkerCreated",
    }
)
# Valid S3 notifications that do not change whether an object exists: acknowledged, skipped.
IGNORED_PREFIXES = (
    "ObjectRestore:",
    "ObjectTagging:",
    "ObjectAcl:",
    "LifecycleTransition",
    "Replication:",
    "IntelligentTiering",
    "ReducedRedundancyLostObject",
)


@dataclass(frozen=True, slots=True)
class Notification:
    """What one SQS message says: zero or more file events, and how many records were skipped."""

    events: tuple[FileEvent, ...]
    skipped: int = 0
    test_event: bool = False


def _record(record: Any) -> FileEvent | None:
    if not isinstance(record, dict):
        raise NotificationError("each entry of Records must be an object")
    source = record.get("eventSource")
    if source is not None and source != "aws:s3":
        raise NotificationError(f"eventSource must be aws:s3, got {str(source)[:40]!r}")
    name = check_text(record.get("eventName"), "eventName")
    assert name is not None
    name = name.removeprefix("s3:")
    if name.startswith(CREATE_PREFIXES):
        action = Action.PUT
    elif name in DELETE_NAMES:
        action = Action.DELETE
    elif name.startswith(IGNORED_PREFIXES):
        return None
    else:
        raise NotificationError(f"unsupported eventName {name[:60]!r}")
    s3 = record.get("s3")
    if not isinstance(s3, dict):
        raise NotificationError("record has no s3 object")
    bucket, obj = s3.get("bucket"), s3.get("object")
    if not isinstance(bucket, dict) or not isinstance(obj, dict):
        raise NotificationError("record has no s3.bucket or s3.object")
    size = check_size(obj.get("size"))
    raw_key = check_text(obj.get("key"), "s3.object.key")
    assert raw_key is not None
    sequencer = check_sequencer(obj.get("sequencer"))
    return FileEvent(
        filename=decode_key(raw_key),
        bucket=check_text(bucket.get("name"), "s3.bucket.name") or "",
        action=action,
        event_name=name,
        event_time=check_time(record.get("eventTime"), "eventTime"),
        size=size if action is Action.PUT else None,
        etag=check_text(obj.get("eTag"), "s3.object.eTag", required=False)
        if action is Action.PUT
        else None,
        sequencer=sequencer,
        version_id=check_text(obj.get("versionId"), "s3.object.versionId", required=False),
    )


def _unwrap(document: Any) -> Any:
    """Return the S3 notification inside an SNS envelope, or the document itself."""
    if isinstance(document, dict) and document.get("Type") == "Notification":
        message = document.get("Message")
        if not isinstance(message, str):
            raise NotificationError("SNS envelope has no Message string")
        try:
            return json.loads(message)
        except ValueError:
            raise NotificationError("SNS Message is not JSON") from None
        except RecursionError:
            raise NotificationError("SNS Message is nested too deeply") from None
    return document


def parse_body(body: Any) -> Notification:
    """Parse one SQS message body; raise `NotificationError` if it is not an S3 notification."""
    if not isinstance(body, str):
        raise NotificationError("message body must be a string")
    try:
        document = json.loads(body)
    except ValueError:
        raise NotificationError("message body is not JSON") from None
    except RecursionError:
        raise NotificationError("message body is nested too deeply") from None
    document = _unwrap(document)
    if not isinstance(document, dict):
        raise NotificationError("message body is not a JSON object")
    if "detail-type" in document:  # S3 -> EventBridge -> SQS (adopted buckets)
        event = parse_event(document)
        return Notification(events=(event,) if event else (), skipped=0 if event else 1)
    if document.get("Event") == "s3:TestEvent" and "Records" not in document:
        return Notification(events=(), test_event=True)
    records = document.get("Records")
    if not isinstance(records, list) or not records:
        raise NotificationError("message body has no Records: not an S3 event notification")
    events: list[FileEvent] = []
    skipped = 0
    for record in records:
        event = _record(record)
        if event is None:
            skipped += 1
        else:
            events.append(event)
    return Notification(events=tuple(events), skipped=skipped)
