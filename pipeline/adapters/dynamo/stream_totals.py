"""The totals consumer's DynamoDB adapter: watermarked counter updates (`WatermarkedCounters`).

A counter item `#totals/{bucket}/{folder}` holds `files`, `bytes`, `updates` (+1 per update:
the version reconcile's repair compares), `updated_at`, and one watermark attribute per
stream shard that ever changed it: `wm:{shardId}` = "{sequence number, 40 digits}@{epoch s}".
One UpdateItem per folder and batch:

    ADD files :f, bytes :b, updates 1  SET updated_at = :now, wm:{shard} = :mark
    CONDITION attribute_not_exists(wm:{shard}) OR wm:{shard} < :first

(":first" is 40 digits; a stored mark of the same number sorts after it because of its
"@..." tail, so a replay is refused.) A refusal answers the stored item
(ReturnValuesOnConditionCheckFailure=ALL_OLD), whose mark tells the caller which
contributions are already in. Every failure of unknown outcome (timeout, dropped connection,
5xx) is retried here within the deadline: the condition makes a retry of an applied update
a refusal, never a second addition.

Pruning: a shard's records live 24 h in the stream, so a mark older than `PRUNE_AFTER_S` can
never refuse anything again; each update reads the item back (ReturnValues=ALL_NEW, no extra
cost) and removes such marks with a conditional REMOVE (only while they are unchanged), so
items stay small as shards rotate (every few hours on AWS).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from pipeline.adapters.dynamo.errors import error_code
from pipeline.adapters.dynamo.retrying import is_retryable
from pipeline.core.model import PARTITION_KEY
from pipeline.core.retry import Backoff, Deadline, Sleep, real_sleep
from pipeline.totals.deltas import Totals
from pipeline.totals.ports import Refused, totals_key

logger = logging.getLogger(__name__)

WATERMARK_PREFIX = "wm:"
PRUNE_AFTER_S = 26 * 3600
"""Stream retention (24 h) plus a margin for a request still in flight."""
MAX_ATTEMPTS = 6
MAX_PRUNED = 20
"""Marks removed by one prune request at most (the rest go with the next update)."""
_UPDATE = "ADD #f :f, #b :b, #u :one SET #t = :now, #w = :mark"
_CONDITION = "attribute_not_exists(#w) OR #w < :first"


def watermark_name(shard: str) -> str:
    """The attribute holding `shard`'s watermark on a counter item."""
    return WATERMARK_PREFIX + shard


def _mark_time(value: Any) -> float | None:
    text = value.get("S") if isinstance(value, dict) else None
    if not isinstance(text, str) or "@" not in text:
        return None
    try:
        return float(text.rsplit("@", 1)[1])
    except ValueError:
        return None


class DynamoWatermarkedCounters:
    """`WatermarkedCounters` over an aiobotocore DynamoDB client."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        deadline: Deadline | None = None,
        *,
        backoff: Backoff | None = None,
        sleep: Sleep = real_sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table_name
        self._deadline = deadline or Deadline(60.0)
        self._backoff = backoff or Backoff()
        self._sleep = sleep
        self._clock = clock
        self.calls = 0
        self.retries = 0
        self.pruned = 0

    def with_deadline(self, deadline: Deadline) -> DynamoWatermarkedCounters:
        """The same adapter bound to one invocation's deadline."""
        return DynamoWatermarkedCounters(
            self._client,
            self._table,
            deadline,
            backoff=self._backoff,
            sleep=self._sleep,
            clock=self._clock,
        )

    async def add(
        self, at: tuple[str, str], shard: str, change: Totals, *, first: str, last: str
    ) -> Refused | None:
        """See `WatermarkedCounters.add`; retries failures of unknown outcome (safe: the
        watermark condition refuses an update already applied)."""
        key = {PARTITION_KEY: {"S": totals_key(*at)}}
        name = watermark_name(shard)
        request = {
            "TableName": self._table,
            "Key": key,
            "UpdateExpression": _UPDATE,
            "ConditionExpression": _CONDITION,
            "ExpressionAttributeNames": {
                "#f": "files",
                "#b": "bytes",
                "#u": "updates",
                "#t": "updated_at",
                "#w": name,
            },
            "ReturnValues": "ALL_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        attempt = 0
        while True:
            now = self._clock()
            request["ExpressionAttributeValues"] = {
                ":f": {"N": str(change.files)},
                ":b": {"N": str(change.bytes)},
                ":one": {"N": "1"},
                ":now": {"N": f"{now:.3f}"},
                ":mark": {"S": f"{last}@{int(now)}"},
                ":first": {"S": first},
            }
            attempt += 1
            self.calls += 1
            try:
                response = await self._client.update_item(**request)
            except ClientError as error:
                if error_code(error) == "ConditionalCheckFailedException":
                    return Refused(await self._stored_mark(error, key, name))
                if not is_retryable(error) or not await self._wait(attempt):
                    raise
                continue
            except Exception as error:
                if not is_retryable(error) or not await self._wait(attempt):
                    raise
                continue
            await self._prune(key, shard, response.get("Attributes") or {}, now)
            return None

    async def _wait(self, attempt: int) -> bool:
        """Back off before another attempt; False when out of attempts or time."""
        delay = self._backoff.delay(attempt)
        if attempt >= MAX_ATTEMPTS or delay >= self._deadline.remaining():
            return False
        self.retries += 1
        await self._sleep(delay)
        return True

    async def _stored_mark(self, error: ClientError, key: dict[str, Any], name: str) -> str | None:
        """The watermark a refusal met: from the refusal's item, else a consistent read."""
        item: Mapping[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
        if item is None:
            self.calls += 1
            got = await self._client.get_item(
                TableName=self._table,
                Key=key,
                ConsistentRead=True,
                ProjectionExpression="#w",
                ExpressionAttributeNames={"#w": name},
            )
            item = got.get("Item") or {}
        value = (item or {}).get(name)
        return value.get("S") if isinstance(value, dict) else None

    async def _prune(
        self, key: dict[str, Any], shard: str, item: Mapping[str, Any], now: float
    ) -> None:
        """Remove marks of other shards older than `PRUNE_AFTER_S` (best effort)."""
        stale = [
            (name, value)
            for name, value in item.items()
            if name.startswith(WATERMARK_PREFIX)
            and name != watermark_name(shard)
            and (stamp := _mark_time(value)) is not None
            and stamp < now - PRUNE_AFTER_S
        ][:MAX_PRUNED]
        if not stale:
            return
        names = {f"#m{i}": name for i, (name, _) in enumerate(stale)}
        values = {f":m{i}": value for i, (_, value) in enumerate(stale)}
        try:
            self.calls += 1
            await self._client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="REMOVE " + ", ".join(names),
                ConditionExpression=" AND ".join(f"#m{i} = :m{i}" for i in range(len(stale))),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except Exception as error:  # an optimisation: the next update tries again
            logger.info("Watermark pruning skipped: %s", type(error).__name__)
            return
        self.pruned += len(stale)
