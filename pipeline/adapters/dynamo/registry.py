"""The registry of tracked buckets: one system item `#bucket/<name>` per bucket in the table.

`adopt` and every repairing `reconcile` register their bucket; the read API answers for the
stack's own bucket (`TRACKED_BUCKET`) and registered ones, and 404s for any other. The items
carry `name_shard = "#bucket"`, so one Query of the listing index lists the tracked buckets
(`DynamoFileReader.tracked_buckets`), and their `pk` starts with "#", so nothing mistakes
them for files (`pipeline.core.model.is_system_key`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipeline.adapters.dynamo.writer import to_item
from pipeline.core.model import bucket_problem, bucket_record


def register_bucket(client: Any, table_name: str, bucket: str, *, by: str) -> None:
    """Record `bucket` as tracked (idempotent: a second call only refreshes `registered_by`)."""
    problem = bucket_problem(bucket)
    if problem is not None:
        raise ValueError(problem)
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    client.put_item(
        TableName=table_name,
        Item=to_item(bucket_record(bucket, registered_by=by, registered_at=now)),
    )
