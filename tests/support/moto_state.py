"""Direct access to the embedded engines' state, for seeding and checking big e2e tests.

Over HTTP, putting 5,000 objects takes tens of seconds on a loaded machine; the test's subject
(reconcile, ingest) still goes through HTTP, only the test's own setup and final checks read
and write moto's backends, in moto's process (`MotoServer.call`). The table is read from
DynamoDB Local with a plain Scan.
"""

from __future__ import annotations

from typing import Any

from pipeline.local.moto_server import MotoServer


def _s3() -> Any:
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID

    return get_backend("s3")[DEFAULT_ACCOUNT_ID]["aws"]


def _seed_objects(bucket: str, items: list[tuple[str, bytes]]) -> None:
    backend = _s3()
    for key, body in items:
        backend.put_object(bucket, key, body, disable_notification=True)


def _bucket_state(bucket: str) -> dict[str, tuple[int, str]]:
    keys = _s3().get_bucket(bucket).keys
    return {
        name: (int(obj.size), str(obj.etag).strip('"'))
        for name, obj in keys.items()
        if not getattr(obj, "is_delete_marker", False) and hasattr(obj, "size")
    }


def _patched() -> dict[str, bool]:
    from moto.s3 import models as s3_models
    from moto.s3 import notifications
    from moto.sqs import models as sqs_models

    from pipeline.local import moto_s3_events, moto_speedups

    return {
        "s3_events": moto_s3_events._APPLIED
        and notifications.send_event is moto_s3_events._send_event
        and s3_models.S3Backend.delete_object is moto_s3_events._delete_object,
        "speedups": moto_speedups._APPLIED
        and sqs_models.Queue.delete_message is moto_speedups._delete_message,
    }


def patched(moto: MotoServer) -> dict[str, bool]:
    """Which of the project's patches moto's process runs with."""
    return moto.call(_patched)


def seed_objects(moto: MotoServer | None, bucket: str, items: list[tuple[str, bytes]]) -> None:
    """Put objects without sending their notifications (as if notifications were off)."""
    _server(moto).call(_seed_objects, bucket, items)


def bucket_state(moto: MotoServer | None, bucket: str) -> dict[str, tuple[int, str]]:
    """key -> (size, ETag without quotes) of the bucket's current objects."""
    return _server(moto).call(_bucket_state, bucket)


def table_items(dynamodb: Any, table: str, bucket: str | None = None) -> dict[str, dict[str, Any]]:
    """filename -> item (DynamoDB JSON) of the rows of `bucket` (None: of every bucket, for
    tables holding one) by a consistent Scan; system items ("#...") left out."""
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    return {
        item["filename"]["S"]: item
        for page in pages
        for item in page["Items"]
        if not item["pk"]["S"].startswith("#") and (bucket is None or item["bucket"]["S"] == bucket)
    }


def live_state(dynamodb: Any, table: str, bucket: str | None = None) -> dict[str, tuple[int, str]]:
    """filename -> (size, etag) of the live rows of `bucket` (None: of every bucket)."""
    return {
        key: (int(item["size"]["N"]), item.get("etag", {}).get("S", ""))
        for key, item in table_items(dynamodb, table, bucket).items()
        if "deleted" not in item
    }


def _server(moto: MotoServer | None) -> MotoServer:
    if moto is None:
        raise RuntimeError("this check needs the embedded moto server")
    return moto
