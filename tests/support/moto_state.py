"""Direct access to the embedded moto server's state, for seeding and checking big e2e tests.

Over HTTP, putting 5,000 objects or scanning 5,000 items takes tens of seconds on a loaded
machine; the test's subject (reconcile, ingest) still goes through HTTP, only the test's own
setup and final checks read and write moto's backends in-process.
"""

from __future__ import annotations

from typing import Any

from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID


def _s3() -> Any:
    return get_backend("s3")[DEFAULT_ACCOUNT_ID]["aws"]


def seed_objects(bucket: str, items: list[tuple[str, bytes]]) -> None:
    """Put objects without sending their notifications (as if notifications were off)."""
    backend = _s3()
    for key, body in items:
        backend.put_object(bucket, key, body, disable_notification=True)


def bucket_state(bucket: str) -> dict[str, tuple[int, str]]:
    """key -> (size, ETag without quotes) of the bucket's current objects."""
    keys = _s3().get_bucket(bucket).keys
    return {
        name: (int(obj.size), str(obj.etag).strip('"'))
        for name, obj in keys.items()
        if not getattr(obj, "is_delete_marker", False) and hasattr(obj, "size")
    }


def all_items(region: str, table: str) -> dict[str, dict[str, Any]]:
    """pk -> item (DynamoDB JSON) of every item of the table, system items included."""
    found = get_backend("dynamodb")[DEFAULT_ACCOUNT_ID][region].get_table(table)
    return {
        item.hash_key.value: item.to_json()["Attributes"] for item in list(found.items.values())
    }


def table_items(region: str, table: str, bucket: str | None = None) -> dict[str, dict[str, Any]]:
    """filename -> item (DynamoDB JSON) of the rows of `bucket` (None: of every bucket, for
    tables holding one); system items ("#...") left out."""
    return {
        item["filename"]["S"]: item
        for key, item in all_items(region, table).items()
        if not key.startswith("#") and (bucket is None or item["bucket"]["S"] == bucket)
    }


def live_state(region: str, table: str, bucket: str | None = None) -> dict[str, tuple[int, str]]:
    """filename -> (size, etag) of the live rows of `bucket` (None: of every bucket)."""
    return {
        key: (int(item["size"]["N"]), item.get("etag", {}).get("S", ""))
        for key, item in table_items(region, table, bucket).items()
        if "deleted" not in item
    }
