"""A throttling storm through the real ingest code loses nothing (issue 23).

The real ingest service (`pipeline.ingest.batch.ingest`: consistent reads, PartiQL
compare-and-swap, feed stamping; folder totals come from the table's stream, not from ingest)
with the real aiobotocore client talks to the capacity front
(`load.front`, its own process on 127.0.0.1) at scale 1:100: each listing-index and feed
shard takes 10 write units a second, so 300 creates into one bucket (8 shards of each index)
are throttled by the indexes (back-pressure on the table's writes) many times. The writer's
retry loop must carry every one of them within the invocation's time: no message reported
failed, every row exact.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import aioboto3
import pytest

from load.front import FrontProcess
from load.throughput import Limits
from pipeline.adapters.dynamo.writer import DynamoFileStore
from pipeline.adapters.runtime import client_config
from pipeline.core.retry import Deadline
from pipeline.feed.positions import Stamper
from pipeline.ingest.batch import IngestResult, ingest
from tests.support.s3events import notification, s3_record, sqs_record

pytestmark = pytest.mark.integration
TABLE, BUCKET, FILES = "files", "storm-bucket", 300


async def _ingest(url: str, records: list[dict[str, Any]]) -> IngestResult:
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            aioboto3.Session().client(
                "dynamodb",
                endpoint_url=url,
                region_name="ap-south-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                config=client_config(36),
            )
        )
        store = DynamoFileStore(client, TABLE, concurrency=32, stamper=Stamper(5_000))
        return await ingest(records, store, Deadline(40), tombstone_ttl_s=86_400)


def test_a_throttling_storm_through_the_real_writer_loses_nothing() -> None:
    # Given the front at 1:100 (10 WCU/s per key value of the table and of each index)
    records = [
        sqs_record(
            notification(
                s3_record(f"burst/f{i:04d}.bin", size=10, sequencer=f"00{i:016X}", bucket=BUCKET)
            )
        )
        for i in range(FILES)
    ]
    with FrontProcess(Limits(scale=100, per_invocation=("#totals/",))) as front:
        # When one invocation applies 300 creates into one bucket
        result = asyncio.run(_ingest(front.url, records))
        stats, dump = front.stats(), front.rows()
    # Then DynamoDB throttled the indexes' shards (back-pressure), and the writer retried
    throttled = {(t["kind"], t["element"]) for t in stats["throttled"]}
    assert ("write", "by_name") in throttled or ("write", "by_change") in throttled
    assert sum(t["count"] for t in stats["throttled"]) > 10
    assert result.retries > 0 and result.throttles > 0
    # And nothing was lost: no message failed, every row is there
    assert result.failed_message_ids == []
    assert result.written == FILES
    assert sorted(dump["rows"]) == sorted(f"{BUCKET}/burst/f{i:04d}.bin" for i in range(FILES))
