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

from pipeline.adapters.dynamo.statements import to_item
from pipeline.core.model import BUCKET_RECORD_PREFIX, PARTITION_KEY, bucket_problem, bucket_record
from pipeline.core.shards import (
    FEED_ATTRIBUTE,
    INDEX_ATTRIBUTE,
    PLAN_ATTRIBUTES,
    READ_FEED_ATTRIBUTE,
    READ_INDEX_ATTRIBUTE,
    ShardPlan,
)


def register_bucket(
    client: Any, table_name: str, bucket: str, *, by: str, shards: ShardPlan | None = None
) -> None:
    """Record `bucket` as tracked (idempotent: a second call only refreshes `registered_by`,
    keeping the bucket's shard plan). `shards`: the plan chosen when the bucket is first
    tracked (`pipeline.core.shards`; change it later with
    `pipeline.adapters.dynamo.shard_plans`)."""
    problem = bucket_problem(bucket)
    if problem is not None:
        raise ValueError(problem)
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    item = to_item(bucket_record(bucket, registered_by=by, registered_at=now))
    key = item.pop(PARTITION_KEY)
    if shards is not None:  # only where none is planned yet: a plan changes in two steps
        item.update(
            {
                INDEX_ATTRIBUTE: {"N": str(shards.index)},
                FEED_ATTRIBUTE: {"N": str(shards.feed)},
                READ_INDEX_ATTRIBUTE: {"N": str(shards.read_index)},
                READ_FEED_ATTRIBUTE: {"N": str(shards.read_feed)},
            }
        )
    names = {f"#a{i}": name for i, name in enumerate(item)}
    planned = set(PLAN_ATTRIBUTES)
    sets = [
        f"#a{i} = if_not_exists(#a{i}, :a{i})" if name in planned else f"#a{i} = :a{i}"
        for i, name in enumerate(item)
    ]
    client.update_item(
        TableName=table_name,
        Key={PARTITION_KEY: key},
        UpdateExpression="SET " + ", ".join(sets),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":a{i}": value for i, value in enumerate(item.values())},
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
