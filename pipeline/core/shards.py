"""Shards per bucket: how many partition-key values a bucket's rows spread over in the listing
index (`name_shard` = `<bucket>/<n>`) and in the change feed index (`feed_shard`).

Each key value of an index takes at most 1,000 write units a second (DynamoDB, per partition-
key value), so a bucket's creates are capped near `index_shards` x 1,000/s by the listing index
and `feed_shards` x 1,000/s by the feed (docs/performance.md, "Capacity"). The plan lives in
the bucket's registry item (`#bucket/<name>`, `pipeline.adapters.dynamo.registry`); a bucket without
one (or without these attributes) uses the defaults, `pipeline.core.model.INDEX_SHARDS` and
`pipeline.feed.positions.FEED_SHARDS`.

Changing a tracked bucket's shards loses no row and no page token, because
- a row keeps the shard it was written under until it is written again, so readers query
  `read_index` / `read_feed` shards: the largest count ever planned (never fewer than the
  defaults), a superset of every shard that may hold a row;
- listing page tokens and feed cursors are positions (a file name, a feed position), not
  shard numbers: a page resumes after its position in whatever shards are read.
Writers and readers cache the plan (`SHARD_PLAN_TTL_S`), so the change is two steps (`python
-m pipeline.adapters.dynamo.shard_plans`): widen the readers first (`read_*`), wait longer than the
cache, then switch the writers (`index`, `feed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.core.model import FEED_SHARDS, INDEX_SHARDS

MAX_SHARDS = 256
"""The most shards a plan may name (a listing page queries every shard in parallel)."""
INDEX_ATTRIBUTE, FEED_ATTRIBUTE = "index_shards", "feed_shards"
READ_INDEX_ATTRIBUTE, READ_FEED_ATTRIBUTE = "read_index_shards", "read_feed_shards"
PLAN_ATTRIBUTES = (INDEX_ATTRIBUTE, FEED_ATTRIBUTE, READ_INDEX_ATTRIBUTE, READ_FEED_ATTRIBUTE)


def shard_count_problem(value: object) -> str | None:
    """Why `value` cannot be a shard count, or None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SHARDS:
        return f"a shard count must be a whole number from 1 to {MAX_SHARDS}"
    return None


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """Shards writers use now (`index`, `feed`) and the shards readers must query."""

    index: int = INDEX_SHARDS
    feed: int = FEED_SHARDS
    read_index_at_least: int = INDEX_SHARDS
    read_feed_at_least: int = FEED_SHARDS

    @property
    def read_index(self) -> int:
        """Listing-index shards a reader queries: every shard any plan ever wrote."""
        return max(INDEX_SHARDS, self.index, self.read_index_at_least)

    @property
    def read_feed(self) -> int:
        """Feed-index shards a reader queries."""
        return max(FEED_SHARDS, self.feed, self.read_feed_at_least)

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> ShardPlan:
        """The plan of a registry item (plain values); defaults for what it lacks or holds
        malformed (a malformed count is never written: `shard_count_problem`)."""

        def count(name: str, default: int) -> int:
            value = (record or {}).get(name)
            return (
                value if isinstance(value, int) and shard_count_problem(value) is None else default
            )

        return cls(
            count(INDEX_ATTRIBUTE, INDEX_SHARDS),
            count(FEED_ATTRIBUTE, FEED_SHARDS),
            count(READ_INDEX_ATTRIBUTE, INDEX_SHARDS),
            count(READ_FEED_ATTRIBUTE, FEED_SHARDS),
        )


DEFAULT_PLAN = ShardPlan()


class ShardPlans(Protocol):
    """The writers' port: each bucket's plan (cached by the adapter)."""

    async def plan(self, bucket: str) -> ShardPlan:
        """The plan of `bucket` (the defaults when it has none)."""
        ...
