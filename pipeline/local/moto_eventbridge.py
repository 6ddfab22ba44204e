"""S3 -> EventBridge events from moto 5.2 in AWS's documented shape (for adopted buckets).

moto sends an S3 event to EventBridge when the bucket has EventBridge turned on, but its shape
differs from AWS's ("EventBridge event message structure", S3 user guide):

- `detail.object.etag`: AWS `etag`, moto `eTag`;
- `detail.object.sequencer`: AWS orders a key's events with it (16 lowercase hex digits in
  AWS's samples, `617f08299329d189`), moto sends one constant;
- `detail.reason`: AWS PutObject, CopyObject, DeleteObject..., moto `ObjectCreated`...;
- `detail.deletion-type` (Permanently Deleted / Delete Marker Created): absent in moto;
- `detail.object.size`: AWS only on creates, moto on deletes too;
- GetBucketNotificationConfiguration: AWS returns `EventBridgeConfiguration` when it is on,
  moto leaves it out (so a read-modify-write of the configuration would turn it off).

The replacement below builds AWS's shape, with a sequencer that grows for every event of the
process (so, per key, later events carry greater sequencers, as on AWS), and routes it through
moto's own rules (event patterns and targets unchanged). `time` is whole seconds, as in AWS's
samples (`2021-11-12T00:00:00Z`); the parser stores it, like S3 notifications' `eventTime`,
with milliseconds, and the sequencer uppercase (`pipeline.core.fields`).
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from typing import Any

from moto.s3 import notifications

_APPLIED = False
_counter = itertools.count(1)
_lock = threading.Lock()
CREATE_REASONS = {
    "Put": "PutObject",
    "Post": "POST Object",
    "Copy": "CopyObject",
    "CompleteMultipartUpload": "CompleteMultipartUpload",
}


def _sequencer() -> str:
    with _lock:
        return f"{0x6000000000000000 + next(_counter):016x}"


def aws_shaped_event(
    account_id: str, bucket: Any, event_name: str, key: Any
) -> dict[str, Any] | None:
    """The EventBridge event AWS sends for `event_name` on `key`; None for other event types."""
    name = str(getattr(event_name, "value", event_name)).removeprefix("s3:")
    family, _, kind = name.partition(":")
    obj: dict[str, Any] = {"key": key.name, "sequencer": _sequencer()}
    detail: dict[str, Any] = {
        "version": "0",
        "bucket": {"name": bucket.name},
        "object": obj,
        "request-id": "LOCALSTACK0000000",
        "requester": account_id,
        "source-ip-address": "127.0.0.1",
    }
    version_id = getattr(key, "version_id", None)
    if version_id and version_id != "null":
        obj["version-id"] = version_id
    if family == "ObjectCreated":
        detail_type = "Object Created"
        obj["size"] = int(key.size)
        obj["etag"] = str(key.etag).strip('"')
        detail["reason"] = CREATE_REASONS.get(kind, kind)
    elif family in ("ObjectRemoved", "LifecycleExpiration"):
        detail_type = "Object Deleted"
        detail["reason"] = "DeleteObject" if family == "ObjectRemoved" else "Lifecycle Expiration"
        marker = kind == "DeleteMarkerCreated"
        detail["deletion-type"] = "Delete Marker Created" if marker else "Permanently Deleted"
    else:
        return None
    return {
        "version": "0",
        "id": f"{next(_counter):08d}-0000-4000-8000-000000000000",
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": account_id,
        "time": time.time(),  # moto's rules format it (ISO 8601, whole seconds) on delivery
        "region": bucket.region_name,
        "resources": [bucket.arn],
        "detail": detail,
    }


def _send_event_bridge_message(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
    event = aws_shaped_event(account_id, bucket, event_name, key)
    if event is None:
        return
    try:
        from moto.events.models import events_backends

        backend = events_backends[account_id][bucket.region_name]
        for bus in list(backend.event_buses.values()):
            for rule in list(bus.rules.values()):
                payload: Any = copy.deepcopy(event)
                rule.send_to_targets(payload, transform_input=False)
    except Exception:
        return


def _patch_get_notification() -> None:
    from moto.s3.responses import S3Response

    original = S3Response.get_bucket_notification

    def get_bucket_notification(self: Any) -> Any:
        config = self.backend.get_bucket_notification_configuration(self.bucket_name)
        if config is None or getattr(config, "event_bridge", None) is None:
            return original(self)
        serialize = self.serialized

        def with_event_bridge(action_result: Any) -> Any:
            result = getattr(action_result, "result", None)
            if isinstance(result, dict):
                result["EventBridgeConfiguration"] = {}
            return serialize(action_result)

        self.serialized = with_event_bridge
        try:
            return original(self)
        finally:
            del self.serialized

    S3Response.get_bucket_notification = get_bucket_notification  # type: ignore[method-assign]


def apply() -> None:
    """Replace moto's S3 -> EventBridge message builder and notification GET (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    notifications._send_event_bridge_message = _send_event_bridge_message
    _patch_get_notification()
    _APPLIED = True
