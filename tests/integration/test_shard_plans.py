"""Changing a tracked bucket's shards loses no row and no page token (pipeline/core/shards.py).

On DynamoDB Local: files written under the default plan (8 listing and 32 feed shards), a
listing walk and a feed walk begun, the plan changed with the documented two-step procedure
(`change_shards`: widen the readers, then switch the writers), more files written under the
new plan, and the walks continued with their tokens: every file exactly once, in order; the
feed has every change. Then the plan is lowered and nothing disappears either.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from typing import Any

import pytest

from pipeline.adapters.dynamo.feed import DynamoChangeIndex
from pipeline.adapters.dynamo.reader import DynamoFileReader, make_client
from pipeline.adapters.dynamo.registry import register_bucket
from pipeline.adapters.dynamo.shard_plans import CachedShardPlans, SyncShardPlans, change_shards
from pipeline.adapters.dynamo.writer import DynamoFileStore
from pipeline.adapters.runtime import open_dynamodb_client
from pipeline.core.model import FEED_SHARDS, INDEX_SHARDS
from pipeline.core.retry import Deadline
from pipeline.core.settings import Settings
from pipeline.core.shards import ShardPlan
from pipeline.feed.positions import Stamper
from pipeline.ingest.batch import ingest
from pipeline.read.api import build_app, feed_for
from tests.support.api import api_context, body, rest_event
from tests.support.s3events import notification, s3_record, sqs_record

pytestmark = pytest.mark.integration
BUCKET = "plan-bucket"
SETTLE_MS = 5_000
"""The production feed settle: a write answered more than half of it after its stamp is
stamped again, and 1 s (500 ms) was too tight for DynamoDB Local on a loaded box (every
write restamped until the deadline ran out, in CI)."""
SINCE = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))


def names(indexes: range) -> list[str]:
    return [f"d/f{i:04d}.txt" for i in indexes]


def create_all(keys: list[str], first_seq: int) -> Any:
    records = [
        sqs_record(
            notification(s3_record(k, size=1, sequencer=f"{first_seq + i:018X}", bucket=BUCKET))
        )
        for i, k in enumerate(keys)
    ]

    async def run() -> Any:
        async with AsyncExitStack() as stack:
            client = await open_dynamodb_client(stack, Settings.from_env())
            store = DynamoFileStore(
                client, Settings.from_env().table_name, stamper=Stamper(SETTLE_MS)
            )
            plans = CachedShardPlans(client, Settings.from_env().table_name, ttl_s=0)
            return await ingest(records, store, Deadline(120), tombstone_ttl_s=60, plans=plans)

    result = asyncio.run(run())
    outcome = {k: v for k, v in vars(result).items() if k != "failed_message_ids"}
    assert result.failed_message_ids == [] and result.written == len(keys), outcome


def walk(
    app: Any, limit: int, token: str | None = None, pages: int = 10_000
) -> tuple[list[str], str | None]:
    seen: list[str] = []
    for _ in range(pages):
        query = {"limit": str(limit), "bucket": BUCKET}
        if token is not None:
            query["next_token"] = token
        response = app.resolve(rest_event("/files", query=query), api_context())
        assert response["statusCode"] == 200, response["body"]
        page = body(response)
        seen += [item["filename"] for item in page["items"]]
        token = page["next_token"]
        if token is None:
            break
    return seen, token


def changes(app: Any, cursor: str | None = None) -> tuple[list[str], str]:
    seen: list[str] = []
    while True:
        query = {"limit": "100", "bucket": BUCKET}
        query.update({"cursor": cursor} if cursor else {"since": SINCE})
        response = app.resolve(rest_event("/changes", query=query), api_context())
        assert response["statusCode"] == 200, response["body"]
        page = body(response)
        seen += [item["key"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not page["items"]:
            return seen, cursor


def test_raising_then_lowering_the_shards_keeps_every_row_and_every_token(
    table_name: str, dynamodb: Any
) -> None:
    settings = Settings(table_name=table_name, tracked_bucket=BUCKET, feed_settle_ms=SETTLE_MS)
    client = make_client(Settings.from_env())
    plans = SyncShardPlans(client, table_name, ttl_s=0)
    feed = feed_for(DynamoChangeIndex(client, table_name), settings)
    feed.shards_of = lambda bucket: plans.plan(bucket).read_feed
    app = build_app(DynamoFileReader(client, table_name, plans=plans), settings, feed=feed)
    # Given a bucket tracked with the default plan and 200 files written under it
    register_bucket(dynamodb, table_name, BUCKET, by="test")
    create_all(names(range(0, 400, 2)), 1)
    time.sleep(SETTLE_MS / 1000 + 0.1)  # the feed's settle window
    # And a listing walk and a feed walk begun under it
    first, token = walk(app, 50, pages=2)
    assert len(first) == 100 and token is not None
    early_changes, cursor = changes(app)
    assert len(early_changes) == 200
    # When the plan goes to 32 listing and 64 feed shards by the two-step procedure (caches of
    # 0 s here)
    plan = change_shards(
        dynamodb, table_name, BUCKET, index=32, feed=64, wait_s=0, sleep=lambda s: None
    )
    assert plan == ShardPlan(32, 64, 32, 64)
    # And 200 more files land, interleaved by name with the first ones
    create_all(names(range(1, 400, 2)), 1000)
    time.sleep(SETTLE_MS / 1000 + 0.1)
    stored = dynamodb.scan(TableName=table_name)["Items"]
    shards = {
        int(i["name_shard"]["S"].rsplit("/", 1)[1])
        for i in stored
        if "name_shard" in i and i["pk"]["S"].startswith(BUCKET)
    }
    assert max(shards) >= INDEX_SHARDS  # the new files use the new shards
    feed_shards = {
        int(i["feed_shard"]["S"].rsplit("/", 1)[1])
        for i in stored
        if "feed_shard" in i and i["pk"]["S"].startswith(BUCKET)
    }
    assert max(feed_shards) >= FEED_SHARDS  # beyond the default plan's
    # Then the walk goes on from its token: every file exactly once, in order
    rest, end = walk(app, 50, token)
    assert end is None
    # (files created behind its cursor are not its business: S3's ListObjectsV2 alike)
    assert first == names(range(0, 200, 2))
    assert rest == [n for n in names(range(400)) if n > first[-1]]
    whole, _ = walk(app, 1000)
    assert whole == names(range(400))
    # (a reader blind to the plan, querying the 8 default shards, misses the new shards' rows)
    blind = build_app(DynamoFileReader(client, table_name), settings, feed=feed)
    assert len(walk(blind, 1000)[0]) < 400
    # And the feed continues from its cursor with exactly the 200 later changes
    later_changes, _ = changes(app, cursor)
    assert sorted(later_changes) == names(range(1, 400, 2))
    # When the plan is lowered to 4 shards, nothing disappears: readers keep reading 32
    plan = change_shards(
        dynamodb, table_name, BUCKET, index=4, feed=4, wait_s=0, sleep=lambda s: None
    )
    assert (plan.index, plan.read_index, plan.feed, plan.read_feed) == (4, 32, 4, 64)
    again, _ = walk(app, 1000)
    assert again == names(range(400))
    # And re-registering the bucket (reconcile does) keeps its plan
    register_bucket(dynamodb, table_name, BUCKET, by="reconcile")
    assert plans.plan(BUCKET) == plan
