"""Shard plans in the bucket registry (`pipeline.core.shards`): read, cached, and changed.

- `CachedShardPlans` (aiobotocore, ingest) and `SyncShardPlans` (boto3, the read API): one
  GetItem of `#bucket/<name>` per bucket per `ttl_s`.
- `change_shards`: the two-step change of a tracked bucket's shards, loses no row and no
  token (see `pipeline.core.shards`): widen the readers (`read_*`: never lowered), wait longer
  than the caches (`ttl_s`), then switch the writers.

    python -m pipeline.adapters.dynamo.shard_plans --table files --bucket my-bucket \\
        --index 32 --feed 32
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from pipeline.adapters.dynamo.reader import from_item
from pipeline.core.model import BUCKET_RECORD_PREFIX, PARTITION_KEY, bucket_problem, bucket_record
from pipeline.core.shards import (
    FEED_ATTRIBUTE,
    INDEX_ATTRIBUTE,
    PLAN_ATTRIBUTES,
    READ_FEED_ATTRIBUTE,
    READ_INDEX_ATTRIBUTE,
    ShardPlan,
    shard_count_problem,
)

DEFAULT_TTL_S = 60.0


def _get_request(table: str, bucket: str, consistent: bool = False) -> dict[str, Any]:
    names = {f"#a{i}": name for i, name in enumerate(PLAN_ATTRIBUTES)}
    return {
        "TableName": table,
        "Key": {PARTITION_KEY: {"S": BUCKET_RECORD_PREFIX + bucket}},
        "ProjectionExpression": ", ".join(names),
        "ExpressionAttributeNames": names,
        "ConsistentRead": consistent,
    }


def plan_of_item(item: dict[str, Any] | None) -> ShardPlan:
    """The plan of a registry item (attribute-value JSON; None: the defaults)."""
    return ShardPlan.from_record(from_item(item) if item else None)


class _PlanCache:
    """Each bucket's plan kept `ttl_s` seconds (the readers' and the writers' caches)."""

    def __init__(
        self,
        client: Any,
        table: str,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client, self._table, self._ttl, self._clock = client, table, ttl_s, clock
        self._cache: dict[str, tuple[ShardPlan, float]] = {}

    def _cached(self, bucket: str) -> ShardPlan | None:
        cached = self._cache.get(bucket)
        if cached is not None and self._clock() - cached[1] < self._ttl:
            return cached[0]
        return None

    def _keep(self, bucket: str, response: dict[str, Any]) -> ShardPlan:
        plan = plan_of_item(response.get("Item"))
        self._cache[bucket] = (plan, self._clock())
        return plan


class CachedShardPlans(_PlanCache):
    """`ShardPlans` over an aiobotocore client."""

    async def plan(self, bucket: str) -> ShardPlan:
        """The plan of `bucket` (raises the SDK's error when it cannot be read)."""
        cached = self._cached(bucket)
        if cached is not None:
            return cached
        return self._keep(bucket, await self._client.get_item(**_get_request(self._table, bucket)))


class SyncShardPlans(_PlanCache):
    """The same over a boto3 client (the read API's readers)."""

    def plan(self, bucket: str) -> ShardPlan:
        """The plan of `bucket`."""
        cached = self._cached(bucket)
        if cached is not None:
            return cached
        return self._keep(bucket, self._client.get_item(**_get_request(self._table, bucket)))


def _set(client: Any, table: str, bucket: str, values: dict[str, int]) -> None:
    """SET `values` on the bucket's registry item (created, tracked, if it has none)."""
    record = bucket_record(bucket)
    assignments = {**{k: {"N": str(v)} for k, v in values.items()}}
    names = {f"#v{i}": name for i, name in enumerate(assignments)}
    names.update({f"#r{i}": name for i, name in enumerate(record) if name != PARTITION_KEY})
    values_json = {f":v{i}": value for i, value in enumerate(assignments.values())}
    values_json.update(
        {
            f":r{i}": {"S": value}
            for i, (name, value) in enumerate(record.items())
            if name != PARTITION_KEY
        }
    )
    sets = [f"#v{i} = :v{i}" for i in range(len(assignments))]
    sets += [
        f"#r{i} = if_not_exists(#r{i}, :r{i})"
        for i, name in enumerate(record)
        if name != PARTITION_KEY
    ]
    client.update_item(
        TableName=table,
        Key={PARTITION_KEY: {"S": record[PARTITION_KEY]}},
        UpdateExpression="SET " + ", ".join(sets),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values_json,
    )


def change_shards(
    client: Any,
    table: str,
    bucket: str,
    *,
    index: int,
    feed: int,
    wait_s: float = DEFAULT_TTL_S + 5,
    sleep: Callable[[float], None] = time.sleep,
) -> ShardPlan:
    """Change `bucket`'s shards (boto3 client): widen the readers, wait `wait_s` (longer than
    every cache, `SHARD_PLAN_TTL_S`), switch the writers. Returns the new plan."""
    for problem in (bucket_problem(bucket), shard_count_problem(index), shard_count_problem(feed)):
        if problem is not None:
            raise ValueError(problem)
    current = plan_of_item(client.get_item(**_get_request(table, bucket, True)).get("Item"))
    _set(
        client,
        table,
        bucket,
        {
            READ_INDEX_ATTRIBUTE: max(current.read_index, index),
            READ_FEED_ATTRIBUTE: max(current.read_feed, feed),
        },
    )
    sleep(wait_s)
    _set(client, table, bucket, {INDEX_ATTRIBUTE: index, FEED_ATTRIBUTE: feed})
    return plan_of_item(client.get_item(**_get_request(table, bucket, True)).get("Item"))


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline.adapters.dynamo.shard_plans`: change a bucket's shards."""
    import boto3

    parser = argparse.ArgumentParser(prog="python -m pipeline.adapters.dynamo.shard_plans")
    parser.add_argument("--table", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--index", type=int, required=True, help="listing-index shards")
    parser.add_argument("--feed", type=int, required=True, help="change-feed shards")
    parser.add_argument(
        "--wait-s", type=float, default=DEFAULT_TTL_S + 5, help="> SHARD_PLAN_TTL_S"
    )
    args = parser.parse_args(argv)
    plan = change_shards(
        boto3.client("dynamodb"),
        args.table,
        args.bucket,
        index=args.index,
        feed=args.feed,
        wait_s=args.wait_s,
    )
    print(plan)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
