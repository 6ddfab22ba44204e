"""The read side's DynamoDB adapter: Scan and GetItem behind `pipeline.listing.FileReader`.

Synchronous boto3: the read Lambda serves one request at a time and makes a handful of calls,
so an event loop buys nothing there. Botocore's standard retry mode retries throttling and 5xx
a few times; whatever still fails is translated into `StoreUnavailableError` (worth retrying
later) or `StoreError` (not), never passed on as a `ClientError`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from boto3.dynamodb.types import Binary, TypeDeserializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from pipeline.dynamo.errors import error_code, is_transient
from pipeline.listing import StoreError, StoreUnavailableError
from pipeline.model import DELETED, PARTITION_KEY
from pipeline.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

T = TypeVar("T")

_NOT_DELETED = "attribute_not_exists(#deleted)"
_deserializer = TypeDeserializer()


def make_client(settings: Settings) -> DynamoDBClient:
    """A boto3 DynamoDB client for the read Lambda (built once per container)."""
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=3,
        read_timeout=5,
        tcp_keepalive=True,
    )
    return boto3.client(
        "dynamodb", region_name=settings.region, endpoint_url=settings.endpoint_url, config=config
    )


def _plain(value: Any) -> Any:
    """JSON-friendly Python value: Decimal -> int/float, sets -> sorted lists, binary -> base64."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Binary):
        return base64.b64encode(value.__bytes__()).decode("ascii")  # type: ignore[arg-type]
    return value


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (attribute-value JSON) as plain Python values."""
    return {name: _plain(_deserializer.deserialize(value)) for name, value in item.items()}


class DynamoFileReader:
    """`FileReader` over the files table, with an injected boto3 client."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def scan(
        self, limit: int, start_after: str | None, prefix: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One Scan call: live rows (and under `prefix`) among `limit` evaluated ones."""
        params: dict[str, Any] = {
            "TableName": self._table,
            "Limit": limit,
            "FilterExpression": _NOT_DELETED,
            "ExpressionAttributeNames": {"#deleted": DELETED},
        }
        if prefix:
            params["FilterExpression"] = f"{_NOT_DELETED} AND begins_with(#filename, :prefix)"
            params["ExpressionAttributeNames"]["#filename"] = PARTITION_KEY
            params["ExpressionAttributeValues"] = {":prefix": {"S": prefix}}
        if start_after is not None:
            params["ExclusiveStartKey"] = {PARTITION_KEY: {"S": start_after}}
        response = _call(lambda: self._client.scan(**params))
        rows = [from_item(item) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return rows, (last[PARTITION_KEY]["S"] if last else None)

    def get(self, filename: str) -> dict[str, Any] | None:
        """GetItem of `filename`; None when absent or a tombstone."""
        response = _call(
            lambda: self._client.get_item(
                TableName=self._table, Key={PARTITION_KEY: {"S": filename}}
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
