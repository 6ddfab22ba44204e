"""Parse S3 events delivered through Amazon EventBridge (the route for adopted buckets).

Turning on EventBridge for a bucket leaves its other notification settings alone; a rule then
sends the bucket's events to the ingest queue, one EventBridge event per SQS message body:

    {"version": "0", "detail-type": "Object Created", "source": "aws.s3", "time": "...",
     "resources": ["arn:aws:s3:::bucket"],
     "detail": {"bucket": {"name": "bucket"},
                "object": {"key": "k", "size": 5, "etag": "...", "version-id": "...",
                           "sequencer": "617f08299329d189"},
                "reason": "PutObject"}}

The shape differs from S3's own notification (AWS's samples: S3 user guide, "EventBridge event
message structure"; mapping of S3 event types to detail types: "Amazon EventBridge mapping and
troubleshooting"):

- `detail-type` "Object Created" (`reason`: PutObject, POST Object, CopyObject,
  CompleteMultipartUpload) and "Object Deleted" (`reason`: DeleteObject or Lifecycle
  Expiration; `deletion-type`: Permanently Deleted or Delete Marker Created) change which
  objects exist; the other detail types (restore, storage class, access tier, ACL, tags) do not
  and are skipped.
- Field names are kebab-case (`version-id`, `deletion-type`), `etag` is lower-case, the time
  is the envelope's `time` (whole seconds); `sequencer` orders events for a key as in S3's own
  notifications. Rows store both in the forms S3's own notifications give them (time with
  milliseconds, sequencer uppercase: `pipeline.core.fields`), whichever route an event took.
- The key: unlike S3's notification (form-URL-encoded, `red+flower.jpg`), AWS's documentation of
  the EventBridge shape says nothing about encoding, and its samples, Powertools'
  `S3EventBridgeNotificationObject.key` and moto all carry the key as is. We take it as is
  (`KEYS_ARE_ENCODED`). Were AWS to encode it, a key with special characters would be tracked
  under its encoded name: the next reconcile finds that row extra (hides it) and the real key
  missing (backfills it), so nothing stays wrong.
"""

from __future__ import annotations

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

SOURCE = "aws.s3"
CREATED = "Object Created"
DELETED = "Object Deleted"
IGNORED_DETAIL_TYPES = frozenset(
    {
        "Object Restore Initiated",
        "Object Restore Completed",
        "Object Restore Expired",
        "Object Storage Class Changed",
        "Object Access Tier Changed",
        "Object ACL Updated",
        "Object Tags Added",
        "Object Tags Deleted",
    }
)
CREATE_REASONS = {
    "PutObject": "ObjectCreated:Put",
    "POST Object": "ObjectCreated:Post",
    "CopyObject": "ObjectCreated:Copy",
    "CompleteMultipartUpload": "ObjectCreated:CompleteMultipartUpload",
}
DELETE_NAMES = {
    ("DeleteObject", "Permanently Deleted"): "ObjectRemoved:Delete",
    ("DeleteObject", "Delete Marker Created"): "ObjectRemoved:DeleteMarkerCreated",
    ("Lifecycle Expiration", "Permanently Deleted"): "LifecycleExpiration:Delete",
    ("Lifecycle Expiration", "Delete Marker Created"): "LifecycleExpiration:DeleteMarkerCreated",
}
KEYS_ARE_ENCODED = False
"""See the module docstring: EventBridge's `detail.object.key` is taken as the object key."""


class EventBridgeError(NotificationError):
    """The document is an EventBridge event, but not an S3 object event we can apply."""


def is_eventbridge(document: dict[str, Any]) -> bool:
    """Whether a message body is an EventBridge event (rather than an S3 notification)."""
    return "detail-type" in document and "detail" in document


def _name(detail_type: str, detail: dict[str, Any]) -> tuple[Action, str]:
    reason = check_text(detail.get("reason"), "detail.reason", required=False)
    if detail_type == CREATED:
        if reason is None:
            return Action.PUT, "ObjectCreated:Put"
        return Action.PUT, CREATE_REASONS.get(reason, f"ObjectCreated:{reason[:40]}")
    deletion = check_text(detail.get("deletion-type"), "detail.deletion-type", required=False)
    name = DELETE_NAMES.get((reason or "DeleteObject", deletion or "Permanently Deleted"))
    if name is None:
        raise EventBridgeError(
            f"unsupported Object Deleted reason/deletion-type {str(reason)[:40]!r}/"
            f"{str(deletion)[:40]!r}"
        )
    return Action.DELETE, name


def parse_event(document: dict[str, Any]) -> FileEvent | None:
    """The file event an EventBridge S3 event carries; None for types that change nothing.

    Raises `EventBridgeError` for anything that is not a well-formed S3 object event.
    """
    if document.get("source") != SOURCE:
        raise EventBridgeError(
            f"EventBridge event source must be {SOURCE}, got {str(document.get('source'))[:40]!r}"
        )
    detail_type = check_text(document.get("detail-type"), "detail-type")
    assert detail_type is not None
    if detail_type in IGNORED_DETAIL_TYPES:
        return None
    if detail_type not in (CREATED, DELETED):
        raise EventBridgeError(f"unsupported detail-type {detail_type[:60]!r}")
    detail = document.get("detail")
    if not isinstance(detail, dict):
        raise EventBridgeError("detail must be an object")
    bucket, obj = detail.get("bucket"), detail.get("object")
    if not isinstance(bucket, dict) or not isinstance(obj, dict):
        raise EventBridgeError("detail has no bucket or object")
    action, name = _name(detail_type, detail)
    key = check_text(obj.get("key"), "detail.object.key")
    assert key is not None
    if KEYS_ARE_ENCODED:  # pragma: no cover - see the module docstring
        key = decode_key(key)
    creates = action is Action.PUT
    return FileEvent(
        filename=key,
        bucket=check_text(bucket.get("name"), "detail.bucket.name") or "",
        action=action,
        event_name=name,
        event_time=check_time(document.get("time"), "time"),
        size=check_size(obj.get("size"), "detail.object.size") if creates else None,
        etag=check_text(obj.get("etag"), "detail.object.etag", required=False) if creates else None,
        sequencer=check_sequencer(obj.get("sequencer"), "detail.object.sequencer"),
        version_id=check_text(obj.get("version-id"), "detail.object.version-id", required=False),
    )
