"""Shard plans per bucket (pipeline/core/shards.py): what writers use, what readers must query."""

from __future__ import annotations

from pipeline.core.model import (
    FEED_SHARD,
    FEED_SHARDS,
    INDEX_SHARDS,
    SHARD_ATTRIBUTE,
    Action,
    FileEvent,
)
from pipeline.core.shards import ShardPlan, shard_count_problem
from pipeline.feed.positions import Stamper
from pipeline.ingest.batch import planned_row


def event(key: str) -> FileEvent:
    return FileEvent(key, "b", Action.PUT, "ObjectCreated:Put", "2026-01-01T00:00:00.000Z", 1)


def test_a_bucket_without_a_plan_uses_the_defaults_and_malformed_counts_are_ignored() -> None:
    assert ShardPlan.from_record(None) == ShardPlan(INDEX_SHARDS, FEED_SHARDS)
    plan = ShardPlan.from_record({"index_shards": 0, "feed_shards": "9", "read_index_shards": True})
    assert plan == ShardPlan()
    assert shard_count_problem(257) and shard_count_problem(0) and not shard_count_problem(32)


def test_readers_query_every_shard_any_plan_used_never_fewer_than_the_defaults() -> None:
    lowered = ShardPlan.from_record(
        {"index_shards": 4, "feed_shards": 4, "read_index_shards": 32, "read_feed_shards": 64}
    )
    assert (lowered.index, lowered.read_index, lowered.feed, lowered.read_feed) == (4, 32, 4, 64)
    assert ShardPlan(2, 2, 2, 2).read_index == INDEX_SHARDS  # default shards may hold rows
    assert ShardPlan(32, 64, 8, 8).read_feed == 64  # a plan's own count is always read


def test_rows_go_to_their_buckets_plan_and_the_stamper_keeps_the_planned_feed_shard() -> None:
    keys = [f"k{i}" for i in range(500)]
    plan = {"b": ShardPlan(32, 64, 32, 64)}
    rows = [Stamper(5000).stamp(planned_row(event(k), 0, 60, plan), None, 0) for k in keys]
    index = {int(r[SHARD_ATTRIBUTE].split("/")[1]) for r in rows}
    feed = {int(r[FEED_SHARD].split("/")[1]) for r in rows}
    assert index == set(range(32)) and feed == set(range(64))
    default = [Stamper(5000).stamp(planned_row(event(k), 0, 60, None), None, 0) for k in keys]
    assert {int(r[SHARD_ATTRIBUTE].split("/")[1]) for r in default} == set(range(INDEX_SHARDS))
    assert {int(r[FEED_SHARD].split("/")[1]) for r in default} == set(range(FEED_SHARDS))
