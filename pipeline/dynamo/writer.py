"""The ingest side's DynamoDB adapter: BatchGetItem / BatchWriteItem with retries.

Every call goes through one retry loop: unprocessed items/keys and retryable errors are
retried with capped exponential backoff and full jitter while the invocation's deadline
allows; a ValidationException on a multi-item request is bisected until the item that
caused it stands alone, so one bad item never fails its neighbours. Whatever cannot be
done comes back as a set of failed keys, never as an exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp
from botocore.exceptions import ClientError, HTTPClientError

from pipeline.dynamo.errors import error_code, is_transient
from pipeline.model import MAX_ITEM_BYTES, MAX_KEY_BYTES, PARTITION_KEY
from pipeline.retry import Backoff, Deadline, OpStats

logger = logging.getLogger(__name__)

WRITE_CHUNK = 25
"""BatchWriteItem's limit on put/delete requests per call."""
GET_CHUNK = 100
"""BatchGetItem's limit on keys per call."""
SPLITTABLE_CODES = frozenset({"ValidationException", "ItemCollectionSizeLimitExceededException"})
VERSION_ATTRIBUTES = ("sequencer", "event_time", "deleted")

T = TypeVar("T")


def _attr(value: Any) -> dict[str, Any]:
    if value.__class__ is str:
        return {"S": value}
    if value.__class__ is bool:
        return {"BOOL": value}
    return {"N": str(value)}


def to_item(row: dict[str, Any]) -> dict[str, Any]:
    """Serialize a row of str/int/bool values to DynamoDB's attribute-value JSON."""
    return {name: _attr(value) for name, value in row.items()}


def from_attribute(value: dict[str, Any]) -> Any:
    """Deserialize one attribute value of the shapes this table stores."""
    if "S" in value:
        return value["S"]
    if "N" in value:
        return int(value["N"]) if value["N"].lstrip("-").isdigit() else float(value["N"])
    if "BOOL" in value:
        return value["BOOL"]
    return None


def item_size(row: dict[str, Any]) -> int:
    """DynamoDB's size of an item: attribute names plus values, UTF-8 bytes (an upper bound)."""
    total = 0
    for name, value in row.items():
        total += len(name.encode("utf-8"))
        total += 1 if isinstance(value, bool) else len(str(value).encode("utf-8"))
    return total


def check_row(row: dict[str, Any]) -> str | None:
    """Why DynamoDB would refuse this row, or None if it fits its limits."""
    key = str(row[PARTITION_KEY])
    if len(key) * 4 > MAX_KEY_BYTES and len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return f"partition key is {len(key.encode())} bytes, DynamoDB allows {MAX_KEY_BYTES}"
    characters = sum(len(name) + len(str(value)) for name, value in row.items())
    if characters * 4 <= MAX_ITEM_BYTES:  # UTF-8 takes at most 4 bytes a character
        return None
    size = item_size(row)
    if size > MAX_ITEM_BYTES:
        return f"item is {size} bytes, DynamoDB allows {MAX_ITEM_BYTES}"
    return None


def _is_retryable(error: BaseException) -> bool:
    if isinstance(error, ClientError):
        return is_transient(error)
    return isinstance(error, HTTPClientError | aiohttp.ClientError | asyncio.TimeoutError)


class DynamoFileStore:
    """Reads stored versions and writes rows of the files table through an aiobotocore client."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        concurrency: int = 16,
        backoff: Backoff | None = None,
    ) -> None:
        self._client = client
        self._table = table_name
        self._slots = asyncio.Semaphore(concurrency)
        self._backoff = backoff or Backoff()

    async def read_versions(
        self, keys: Sequence[str], deadline: Deadline, stats: OpStats
    ) -> dict[str, dict[str, Any]]:
        """Stored `sequencer`, `event_time` and `deleted` of each key that has a row."""
        found: dict[str, dict[str, Any]] = {}

        async def call(chunk: list[str]) -> list[str]:
            response = await self._client.batch_get_item(
                RequestItems={
                    self._table: {
                        "Keys": [{PARTITION_KEY: {"S": key}} for key in chunk],
                        "ProjectionExpression": "#k, #s, #t, #d",
                        "ExpressionAttributeNames": {
                            "#k": PARTITION_KEY,
                            "#s": "sequencer",
                            "#t": "event_time",
                            "#d": "deleted",
                        },
                        "ConsistentRead": True,
                    }
                }
            )
            for item in response.get("Responses", {}).get(self._table, []):
                row = {name: from_attribute(value) for name, value in item.items()}
                found[row[PARTITION_KEY]] = row
            unprocessed = response.get("UnprocessedKeys", {}).get(self._table, {})
            return [key[PARTITION_KEY]["S"] for key in unprocessed.get("Keys", [])]

        await asyncio.gather(
            *(
                self._run(list(keys[i : i + GET_CHUNK]), call, lambda key: key, deadline, stats)
                for i in range(0, len(keys), GET_CHUNK)
            )
        )
        return found

    async def write_rows(
        self, rows: Sequence[dict[str, Any]], deadline: Deadline, stats: OpStats
    ) -> None:
        """Put every row (unique keys); keys that could not be written land in `stats.failures`."""
        requests: list[dict[str, Any]] = []
        for row in rows:
            problem = check_row(row)
            if problem:
                stats.failures[row[PARTITION_KEY]] = problem
            else:
                requests.append({"PutRequest": {"Item": to_item(row)}})

        async def call(chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
            response = await self._client.batch_write_item(RequestItems={self._table: chunk})
            return list(response.get("UnprocessedItems", {}).get(self._table, []))

        def key_of(request: dict[str, Any]) -> str:
            return str(request["PutRequest"]["Item"][PARTITION_KEY]["S"])

        await asyncio.gather(
            *(
                self._run(requests[i : i + WRITE_CHUNK], call, key_of, deadline, stats)
                for i in range(0, len(requests), WRITE_CHUNK)
            )
        )

    async def _run(
        self,
        pending: list[T],
        call: Callable[[list[T]], Awaitable[list[T]]],
        key_of: Callable[[T], str],
        deadline: Deadline,
        stats: OpStats,
    ) -> None:
        """Call until nothing is pending, retrying and isolating failures; never raises."""
        attempt = 0
        while pending:
            if deadline.remaining() <= 0:
                self._fail(pending, key_of, stats, "out of time before DynamoDB accepted it")
                return
            try:
                async with self._slots:
                    stats.calls += 1
                    left = await call(pending)
            except Exception as error:
                if _is_retryable(error):
                    left = pending
                    reason = _describe(error)
                elif isinstance(error, ClientError) and error_code(error) in SPLITTABLE_CODES:
                    if len(pending) == 1:
                        self._fail(pending, key_of, stats, _describe(error))
                        return
                    middle = len(pending) // 2
                    await asyncio.gather(
                        self._run(pending[:middle], call, key_of, deadline, stats),
                        self._run(pending[middle:], call, key_of, deadline, stats),
                    )
                    return
                else:
                    self._fail(pending, key_of, stats, _describe(error))
                    return
            else:
                reason = "unprocessed (throttled)"
            if not left:
                return
            pending = left
            attempt += 1
            delay = self._backoff.delay(attempt)
            if delay >= deadline.remaining():
                self._fail(pending, key_of, stats, f"{reason}; no time left to retry")
                return
            stats.retries += 1
            await asyncio.sleep(delay)

    @staticmethod
    def _fail(pending: Sequence[T], key_of: Callable[[T], str], stats: OpStats, why: str) -> None:
        for entry in pending:
            stats.failures[key_of(entry)] = why


def _describe(error: BaseException) -> str:
    if isinstance(error, ClientError):
        message = str(error.response.get("Error", {}).get("Message", ""))[:200]
        return f"{error_code(error)}: {message}"
    return type(error).__name__
