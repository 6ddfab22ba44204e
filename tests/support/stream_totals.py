"""Folder totals as the totals function keeps them: the table's stream read to its end."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import boto3

from pipeline.adapters.dynamo.schema import stream_arn
from pipeline.adapters.dynamo.stream_totals import DynamoWatermarkedCounters
from pipeline.adapters.runtime import open_dynamodb_client
from pipeline.core.retry import Deadline
from pipeline.core.settings import Settings
from pipeline.local.streams import DynamoStreamEventSource
from pipeline.totals.stream import apply_batch, shard_of


def run(work: Any) -> Any:
    """`work(client)` on an aiobotocore DynamoDB client of the environment's endpoint."""

    async def scenario() -> Any:
        async with AsyncExitStack() as stack:
            client = await open_dynamodb_client(stack, Settings.from_env())
            return await work(client)

    return asyncio.run(scenario())


def consume(
    dynamodb: Any, table: str, *, wrap: Callable[[Any], Any] | None = None
) -> DynamoStreamEventSource:
    """Read `table`'s stream to its end as Lambda's event source does, in this thread, with the
    real totals consumer (`wrap` wraps its client, e.g. to lose answers)."""

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        async def work(client: Any) -> dict[str, Any]:
            counters = DynamoWatermarkedCounters(
                wrap(client) if wrap else client, table, Deadline(30)
            )
            result = await apply_batch(event["Records"], shard_of(event), counters)
            return {"state": {}, **result.response()}

        answer: dict[str, Any] = run(work)
        return answer

    arn = stream_arn(dynamodb, table)
    assert arn is not None
    streams = boto3.client("dynamodbstreams", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    source = DynamoStreamEventSource(streams, arn, handler, batch_size=3, retry_delay_s=0)
    while source.poll_once():
        pass
    return source
