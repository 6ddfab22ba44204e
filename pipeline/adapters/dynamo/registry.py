"""The registry of tracked buckets: one system item `#bucket/<name>` per bucket in the table.

`adopt` and every repairing `reconcile` register their bucket; the read API answers for the
stack's own bucket (`TRACKED_BUCKET`) and registered ones, and 404s for any other. The items
carry `name_shard = "#bucket"`, so one Query of the listing index lists the tracked buckets
(`DynamoFileReader.tracked_buckets`), and their `pk` starts with "#", so nothing mistakes
them for files (`pipeline.core.model.is_system_key`).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from pipeline.adapters.dynamo.writer import to_item
from pipeline.core.model import BUCKET_RECORD_PREFIX, PARTITION_KEY, bucket_problem, bucket_record


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


class DynamoBucketRegistry:
    """`TrackedBuckets` for ingest over an aiobotocore client: the stack's own bucket is
    always tracked; any other is looked up (`#bucket/<name>`, consistent BatchGetItem).
    Registered buckets are remembered for the container's life (a registration is never
    withdrawn); an unregistered one is asked again on its next event, so a bucket adopted
    a moment ago is tracked from its next batch on."""

    def __init__(self, client: Any, table_name: str, own_bucket: str | None) -> None:
        self._client = client
        self._table = table_name
        self._known: set[str] = {own_bucket} if own_bucket else set()
        self.lookups = 0

    async def untracked(self, buckets: set[str], deadline: Any = None) -> set[str]:
        """The buckets of `buckets` nobody tracks; raises on a DynamoDB error."""
        unknown = sorted(buckets - self._known)
        for start in range(0, len(unknown), 100):
            chunk = unknown[start : start + 100]
            keys: list[Any] = [
                {PARTITION_KEY: {"S": BUCKET_RECORD_PREFIX + name}} for name in chunk
            ]
            while keys:
                self.lookups += 1
                response = await self._client.batch_get_item(
                    RequestItems={
                        self._table: {
                            "Keys": keys,
                            "ConsistentRead": True,
                            "ProjectionExpression": "#k",
                            "ExpressionAttributeNames": {"#k": PARTITION_KEY},
                        }
                    }
                )
                for item in response.get("Responses", {}).get(self._table, []):
                    self._known.add(item[PARTITION_KEY]["S"][len(BUCKET_RECORD_PREFIX) :])
                keys = response.get("UnprocessedKeys", {}).get(self._table, {}).get("Keys", [])
                if keys:  # throttled: a short pause, then the rest
                    await asyncio.sleep(0.05)
        return {name for name in buckets if name not in self._known}
