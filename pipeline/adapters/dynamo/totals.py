"""Folder counters in the files table: one item per (bucket, folder), never in an index.

Item: `{PARTITION_KEY}` = `#totals/{bucket}/{folder}`, `files` (N), `bytes` (N), `updates`
(N, +1 per update: the version a repair compares), `updated_at` (N, epoch seconds of the
writer's clock when it sent the last update).

- The totals function writes them, from the table's stream, with a watermark per stream
  shard (`pipeline.adapters.dynamo.stream_totals`): each change once, whatever fails.
- API and reconcile (`DynamoTotalsStore`, boto3): consistent GetItem / BatchGetItem, and
  reconcile's compare-and-swap `set_if_unchanged` (SET the counted values only while
  `updates` is still the version read).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
)

from pipeline.adapters.dynamo.errors import error_code, is_transient
from pipeline.adapters.dynamo.reader import from_item
from pipeline.core.model import PARTITION_KEY
from pipeline.read.ports import StoreError, StoreUnavailableError
from pipeline.totals.deltas import Totals
from pipeline.totals.ports import StoredTotals, totals_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

FILES, BYTES, UPDATES, UPDATED_AT = "files", "bytes", "updates", "updated_at"
GET_CHUNK = 100
"""BatchGetItem's limit on keys per call."""
MAX_ATTEMPTS = 5
_ADD = "ADD #f :f, #b :b, #u :one SET #t = :now"
_NAMES = {"#f": FILES, "#b": BYTES, "#u": UPDATES, "#t": UPDATED_AT}


def stored_of(item: dict[str, Any] | None) -> StoredTotals:
    """A counter item (attribute-value JSON) as `StoredTotals`; None is no counter."""
    if not item:
        return StoredTotals()
    row = from_item(item)

    def number(name: str) -> int:
        value = row.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    updates = row.get(UPDATES)
    stamp = row.get(UPDATED_AT)
    return StoredTotals(
        Totals(number(FILES), number(BYTES)),
        updates if isinstance(updates, int) and not isinstance(updates, bool) else None,
        float(stamp) if isinstance(stamp, int | float) and not isinstance(stamp, bool) else None,
    )


class DynamoTotalsStore:
    """`TotalsRepairs` (and `TotalsReader`) over a boto3 client: the API's and reconcile's."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name
        self.calls = 0

    def get(self, bucket: str, folder: str) -> StoredTotals:
        """The counter of `folder` (consistent read); no item reads as zero."""
        self.calls += 1
        response = _call(
            lambda: self._client.get_item(
                TableName=self._table,
                Key={PARTITION_KEY: {"S": totals_key(bucket, folder)}},
                ConsistentRead=True,
            )
        )
        return stored_of(response.get("Item"))

    def get_many(self, bucket: str, folders: Sequence[str]) -> dict[str, StoredTotals]:
        """The counters of `folders` (consistent BatchGetItem, 100 a call)."""
        found = {folder: StoredTotals() for folder in folders}
        by_key = {totals_key(bucket, folder): folder for folder in folders}
        keys = list(by_key)
        for start in range(0, len(keys), GET_CHUNK):
            pending: list[Any] = [
                {PARTITION_KEY: {"S": key}} for key in keys[start : start + GET_CHUNK]
            ]
            attempt = 0
            while pending:
                self.calls += 1
                request: Any = {self._table: {"Keys": pending, "ConsistentRead": True}}
                response = _call(lambda: self._client.batch_get_item(RequestItems=request))  # noqa: B023
                for item in response.get("Responses", {}).get(self._table, []):
                    folder = by_key.get(str(item.get(PARTITION_KEY, {}).get("S")))
                    if folder is not None:
                        found[folder] = stored_of(item)
                unprocessed: Any = response.get("UnprocessedKeys", {}).get(self._table, {})
                pending = list(unprocessed.get("Keys", []))
                if pending:
                    attempt += 1
                    if attempt > MAX_ATTEMPTS:
                        raise StoreUnavailableError("DynamoDB left counter reads unprocessed")
                    time.sleep(min(1.0, 0.05 * 2**attempt))
        return found

    def set_if_unchanged(
        self, bucket: str, folder: str, totals: Totals, expected: StoredTotals
    ) -> bool:
        """Set the counter to `totals` only if its `updates` is still `expected.updates`
        (absent when that is None); False when it changed (an update landed since)."""
        names = dict(_NAMES)
        values: dict[str, Any] = {
            ":f": {"N": str(totals.files)},
            ":b": {"N": str(totals.bytes)},
            ":one": {"N": "1"},
            ":now": {"N": f"{time.time():.3f}"},
        }
        if expected.updates is None:
            condition = "attribute_not_exists(#u)"
        else:
            condition = "#u = :u0"
            values[":u0"] = {"N": str(expected.updates)}
        self.calls += 1
        try:
            self._client.update_item(
                TableName=self._table,
                Key={PARTITION_KEY: {"S": totals_key(bucket, folder)}},
                UpdateExpression="SET #f = :f, #b = :b, #t = :now ADD #u :one",
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _call(operation: Callable[[], Any]) -> Any:
    """One read, SDK errors translated into the listing's store errors (the API maps them)."""
    try:
        return operation()
    except ClientError as exc:
        if is_transient(exc):
            raise StoreUnavailableError(f"DynamoDB unavailable: {error_code(exc)}") from exc
        raise StoreError(f"DynamoDB refused the request: {error_code(exc)}") from exc
    except BotoCoreError as exc:
        raise StoreUnavailableError(f"DynamoDB unreachable: {type(exc).__name__}") from exc
