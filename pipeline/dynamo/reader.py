"""The read side's DynamoDB adapter: index Query and GetItem behind `pipeline.listing.IndexReader`.

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

from pipeline.dynamo.errors import error_code, is_transient
from pipeline.listing import (
    ShardQuery,
    ShardResult,
    StoreError,
    StoreUnavailableError,
    iter_live,
)
from pipeline.model import DELETED, INDEX_NAME, INDEX_SHARDS, PARTITION_KEY, SHARD_ATTRIBUTE
from pipeline.settings import Settings

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
        max_pool_connections=max(10, INDEX_SHARDS),  # one round queries every shard at once
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


def _key_condition(query: ShardQuery) -> tuple[str, dict[str, Any]]:
    values: dict[str, Any] = {":shard": {"N": str(query.shard)}}
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


class DynamoFileReader:
    """`IndexReader` over the files table and its `by_name` index, with an injected client."""

    def __init__(
        self, client: DynamoDBClient, table_name: str, *, shards: int = INDEX_SHARDS
    ) -> None:
        self._client = client
        self._table = table_name
        self._shards = shards
        self._pool: ThreadPoolExecutor | None = None

    @property
    def shards(self) -> int:
        """Number of index shards."""
        return self._shards

    def _query_one(self, query: ShardQuery) -> ShardResult:
        condition, values = _key_condition(query)
        names = {"#shard": SHARD_ATTRIBUTE}
        if query.low is not None or query.high is not None:
            names["#name"] = PARTITION_KEY
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
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._shards, thread_name_prefix="query")
        return list(self._pool.map(self._query_one, queries))

    def iter_live(
        self, prefix: str | None = None, start_after: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Live rows in ascending UTF-8 order of `filename`, from the index (all attributes)."""
        return iter_live(self, prefix, start_after)

    def get(self, filename: str) -> dict[str, Any] | None:
        """GetItem of `filename` (strongly consistent); None when absent or a tombstone."""
        response = _call(
            lambda: self._client.get_item(
                TableName=self._table, Key={PARTITION_KEY: {"S": filename}}, ConsistentRead=True
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
