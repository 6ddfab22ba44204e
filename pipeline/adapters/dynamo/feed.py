"""The change feed's DynamoDB adapter: Query on the `by_change` index behind `ChangeIndex`.

One Query per shard of a bucket, `feed_shard = :shard AND changed BETWEEN :low AND :high`,
ascending. BETWEEN is inclusive and a page resumes strictly after its cursor, so `:low` is
the cursor with a `0` appended: positions all have one width, so every position greater
than the cursor is greater than that string, and the cursor itself is less. A `prefix` is a
FilterExpression (`begins_with`): DynamoDB reads, and charges for, every row of the range and
drops the others after reading them; `Limit` counts rows read, so a filtered shard may stop
early and report where (`covered`, from `LastEvaluatedKey`). The shards of one page run in
parallel on a small thread pool; errors are translated as the listing's are
(`pipeline.adapters.dynamo.reader`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pipeline.adapters.dynamo.reader import _call, from_item
from pipeline.core.model import CHANGED, FEED_INDEX_NAME, FEED_SHARD, FILENAME
from pipeline.feed.reader import ShardPage, ShardRange

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoChangeIndex:
    """`ChangeIndex` over the files table's `by_change` index, with an injected client."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name
        self._pool: ThreadPoolExecutor | None = None

    def _query_one(self, query: ShardRange) -> ShardPage:
        names = {"#shard": FEED_SHARD, "#changed": CHANGED}
        values: dict[str, Any] = {
            ":shard": {"S": query.shard},
            ":low": {"S": query.after + "0"},
            ":high": {"S": query.upto},
        }
        extra: dict[str, Any] = {}
        if query.prefix:
            names["#key"] = FILENAME
            values[":prefix"] = {"S": query.prefix}
            extra["FilterExpression"] = "begins_with(#key, :prefix)"
        response = _call(
            lambda: self._client.query(
                TableName=self._table,
                IndexName=FEED_INDEX_NAME,
                KeyConditionExpression="#shard = :shard AND #changed BETWEEN :low AND :high",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                Limit=query.limit,
                **extra,
            )
        )
        rows = [from_item(item) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        covered = str(last[CHANGED]["S"]) if last and CHANGED in last else None
        return ShardPage(rows, covered, int(response.get("ScannedCount", len(rows))))

    def query_changes(self, ranges: Sequence[ShardRange]) -> list[ShardPage]:
        """Run the shard queries of one page in parallel."""
        if len(ranges) <= 1:
            return [self._query_one(r) for r in ranges]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=len(ranges), thread_name_prefix="feed")
        return list(self._pool.map(self._query_one, ranges))
