"""The read side's DynamoDB adapter: Query and GetItem behind `pipeline.read.ports.IndexReader`.

Synchronous boto3: the read Lambda serves one request at a time; the shard queries of one
round run on a small thread pool (boto3 clients are thread-safe). Botocore's standard retry
mode retries throttling and 5xx a few times; whatever still fails is translated into
`StoreUnavailableError` (worth retrying later) or `StoreError` (not), never passed on as a
`ClientError`. Items are decoded without boto3's Decimal context, which raises on numbers of
more than 38 digits: any value DynamoDB can store decodes to JSON-friendly Python.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from pipeline.adapters.dynamo.errors import error_code, is_transient
from pipeline.core.model import (
    BUCKET_RECORD_PREFIX,
    DELETED,
    FEED_SHARDS,
    FILENAME,
    INDEX_NAME,
    INDEX_SHARDS,
    PARTITION_KEY,
    REGISTRY_SHARD,
    SHARD_ATTRIBUTE,
    item_key,
    name_shard,
)
from pipeline.core.settings import Settings
from pipeline.read.listing import iter_live
from pipeline.read.ports import ShardQuery, ShardResult, StoreError, StoreUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

T = TypeVar("T")

_SKIP = object()


def make_client(settings: Settings) -> DynamoDBClient:
    """A boto3 DynamoDB client for the read Lambda (built once per container)."""
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=3,
        read_timeout=5,
        tcp_keepalive=True,
        max_pool_connections=max(10, INDEX_SHARDS, FEED_SHARDS),  # a round queries every shard
    )
    return boto3.client(
        "dynamodb", region_name=settings.region, endpoint_url=settings.endpoint_url, config=config
    )


def _number(text: str) -> int | float | None:
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError, TypeError):
        return None
    if not value.is_finite():
        return None
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def _value(attribute: Any) -> Any:
    """One attribute value as plain Python, or `_SKIP` when it is not a known shape."""
    if not isinstance(attribute, dict) or len(attribute) != 1:
        return _SKIP
    ((kind, raw),) = attribute.items()
    try:
        if kind == "S" and isinstance(raw, str):
            return raw
        if kind == "N" and isinstance(raw, str):
            number = _number(raw)
            return _SKIP if number is None else number
        if kind == "BOOL" and isinstance(raw, bool):
            return raw
        if kind == "NULL":
            return None
        if kind == "B":
            data = raw if isinstance(raw, bytes) else bytes(raw)
            return base64.b64encode(data).decode("ascii")
        if kind == "SS":
            return sorted(str(v) for v in raw)
        if kind == "NS":
            numbers = [_number(str(v)) for v in raw]
            return sorted(n for n in numbers if n is not None)
        if kind == "BS":
            return sorted(base64.b64encode(bytes(v)).decode("ascii") for v in raw)
        if kind == "L":
            values = [_value(v) for v in raw]
            return [v for v in values if v is not _SKIP]
        if kind == "M":
            return from_item(raw)
    except (TypeError, ValueError):
        return _SKIP
    return _SKIP


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (attribute-value JSON) as plain Python values; odd values left out."""
    row: dict[str, Any] = {}
    for name, attribute in item.items():
        value = _value(attribute)
        if value is not _SKIP:
            row[name] = value
    return row


def _key_condition(bucket: str, query: ShardQuery) -> tuple[str, dict[str, Any]]:
    values: dict[str, Any] = {":shard": {"S": name_shard(bucket, query.shard)}}
    condition = "#shard = :shard"
    if query.low is not None and query.high is not None:
        condition += " AND #name BETWEEN :low AND :high"
    elif query.low is not None:
        condition += " AND #name >= :low"
    elif query.high is not None:
        condition += " AND #name <= :high"
    if query.low is not None:
        values[":low"] = {"S": query.low}
    if query.high is not None:
        values[":high"] = {"S": query.high}
    return condition, values


class _Pool:
    """The shard queries' thread pool, shared by every bucket's reader and built on first use."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None

    def map(self, function: Callable[[Any], T], values: Sequence[Any]) -> list[T]:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._workers, thread_name_prefix="query"
            )
        return list(self._executor.map(function, values))


class DynamoFileReader:
    """`IndexReader` of one bucket's rows (its shards of the `by_name` index and its GetItems)
    and `FileIndex` of the table (`for_bucket`, the bucket registry), with an injected client.

    `bucket` None: a reader of the table only (`for_bucket` gives the readers of buckets).
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        bucket: str | None = None,
        *,
        shards: int = INDEX_SHARDS,
        _pool: _Pool | None = None,
        plans: Any = None,
    ) -> None:
        """`plans` (`SyncShardPlans`): each bucket's reader queries its plan's `read_index`
        shards; without, every bucket's `shards`."""
        self._plans = plans
        self._client = client
        self._table = table_name
        self._bucket = bucket
        self._shards = shards
        self._pool = _pool or _Pool(max(shards, 32) if plans is not None else shards)

    @property
    def shards(self) -> int:
        """Number of index shards per bucket."""
        return self._shards

    @property
    def bucket(self) -> str:
        """The bucket whose rows this reader reads."""
        if self._bucket is None:
            raise ValueError("this reader is not bound to a bucket: use for_bucket(bucket)")
        return self._bucket

    def for_bucket(self, bucket: str) -> DynamoFileReader:
        """The reader of `bucket`'s rows (same client and thread pool)."""
        shards = self._plans.plan(bucket).read_index if self._plans is not None else self._shards
        return DynamoFileReader(
            self._client, self._table, bucket, shards=shards, _pool=self._pool, plans=self._plans
        )

    def tracked_buckets(self) -> list[str]:
        """Buckets registered in the table (`#bucket/<name>` items), in name order."""
        names: list[str] = []
        params: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": INDEX_NAME,
            "KeyConditionExpression": "#shard = :shard",
            "ExpressionAttributeNames": {"#shard": SHARD_ATTRIBUTE},
            "ExpressionAttributeValues": {":shard": {"S": REGISTRY_SHARD}},
        }
        while True:
            response = _call(lambda: self._client.query(**params))
            for item in response.get("Items", []):
                name = from_item(item).get(FILENAME)
                if isinstance(name, str):
                    names.append(name)
            if "LastEvaluatedKey" not in response:
                return names
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def is_tracked(self, bucket: str) -> bool:
        """Whether `bucket` is registered in the table (one GetItem of `#bucket/<name>`)."""
        response = _call(
            lambda: self._client.get_item(
                TableName=self._table,
                Key={PARTITION_KEY: {"S": BUCKET_RECORD_PREFIX + bucket}},
                ProjectionExpression="#k",
                ExpressionAttributeNames={"#k": PARTITION_KEY},
            )
        )
        return bool(response.get("Item"))

    def _query_one(self, query: ShardQuery) -> ShardResult:
        condition, values = _key_condition(self.bucket, query)
        names = {"#shard": SHARD_ATTRIBUTE}
        if query.low is not None or query.high is not None:
            names["#name"] = FILENAME
        response = _call(
            lambda: self._client.query(
                TableName=self._table,
                IndexName=INDEX_NAME,
                KeyConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                Limit=query.limit,
            )
        )
        rows = [from_item(item) for item in response.get("Items", [])]
        return ShardResult(rows, more="LastEvaluatedKey" in response)

    def query(self, queries: Sequence[ShardQuery]) -> list[ShardResult]:
        """Run the shard queries of one round in parallel."""
        if len(queries) <= 1:
            return [self._query_one(q) for q in queries]
        return self._pool.map(self._query_one, queries)

    def iter_live(
        self, prefix: str | None = None, start_after: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The bucket's live rows in ascending UTF-8 order of `filename`, from the index."""
        return iter_live(self, prefix, start_after)

    def get(self, filename: str) -> dict[str, Any] | None:
        """GetItem of the bucket's `filename` (strongly consistent); None when absent or a
        tombstone."""
        key = item_key(self.bucket, filename)
        response = _call(
            lambda: self._client.get_item(
                TableName=self._table, Key={PARTITION_KEY: {"S": key}}, ConsistentRead=True
            )
        )
        item = response.get("Item")
        if not item:
            return None
        row = from_item(item)
        return None if row.get(DELETED) is True else row


def _call(operation: Callable[[], T]) -> T:
    """Run one DynamoDB call, translating SDK errors into the store's exception types."""
    try:
        return operation()
    except ClientError as exc:
        code = error_code(exc)
        if is_transient(exc):
            raise StoreUnavailableError(f"DynamoDB unavailable: {code}") from exc
        raise StoreError(f"DynamoDB refused the request: {code}") from exc
    except (BotoConnectionError, HTTPClientError) as exc:
        raise StoreUnavailableError(f"DynamoDB unreachable: {type(exc).__name__}") from exc
    except BotoCoreError as exc:
        raise StoreError(f"DynamoDB client error: {type(exc).__name__}") from exc
