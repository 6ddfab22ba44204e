"""Reading the change feed: the settle bound, the merge of the index's shards, the cursor rule.

One page of the feed of a bucket after position `after`, at reader time `now`:

1. `bound` = the greatest position of millisecond `now - settle_ms`. Nothing newer is read:
   a write stamped at or before `bound` has landed and is visible in the index by now (the
   writer's rule, `pipeline.feed.positions`). If `bound <= after` (a reader clock behind the
   cursor), the page is empty and the cursor stays where it is.
2. Every shard of the bucket is queried for `after < changed <= bound`, ascending, at most
   `limit` rows each (with `prefix`, filtered by key prefix after reading).
3. The shards' rows are merged by position. A shard that stopped early (its `Limit` or
   DynamoDB's 1 MB) has read its range only up to the position where it stopped, `covered`;
   the page keeps only rows up to the lowest such position, so every position up to the
   page's end has been read in every shard.
4. `next_cursor` = the last position returned when the page is full, else the end of what was
   read in every shard (`bound` when no shard stopped early). It never goes backwards, and an
   empty page still moves it forward when time has passed.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.core.model import CHANGED, FEED_SHARDS, FILENAME, PARTITION_KEY
from pipeline.feed.positions import feed_shards_of, time_position


@dataclass(frozen=True, slots=True)
class ShardRange:
    """One shard's query: positions in (`after`, `upto`], ascending, at most `limit` rows
    examined; `prefix` keeps only keys starting with it (a filter: rows it drops still count
    as read)."""

    shard: str
    after: str
    upto: str
    limit: int
    prefix: str | None = None


@dataclass(frozen=True, slots=True)
class ShardPage:
    """A shard's answer: its rows in ascending position, and, when it stopped before the end
    of its range, the last position it examined (`covered`; None = the whole range)."""

    rows: list[dict[str, Any]]
    covered: str | None = None
    read: int = 0
    """Rows DynamoDB read (before the prefix filter)."""


class ChangeIndex(Protocol):
    """The feed index (`pipeline.adapters.dynamo.feed.DynamoChangeIndex`; a fake in tests)."""

    def query_changes(self, ranges: Sequence[ShardRange]) -> list[ShardPage]:
        """One answer per range, in order (the ranges may run in parallel)."""
        ...


@dataclass
class ChangePage:
    """Rows of one page, in ascending position, and the position to resume after."""

    rows: list[dict[str, Any]]
    next_position: str
    bound: str
    queries: int = 0
    rows_read: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def settle_bound(now_ms: int, settle_ms: int) -> str:
    """The newest position a reader at `now_ms` may return."""
    return time_position(now_ms - settle_ms)


def read_changes(
    index: ChangeIndex,
    *,
    bucket: str,
    after: str,
    now_ms: int,
    settle_ms: int,
    limit: int,
    prefix: str | None = None,
    shards: int = FEED_SHARDS,
) -> ChangePage:
    """One page of the feed of `bucket` strictly after position `after` (module docstring)."""
    bound = settle_bound(now_ms, settle_ms)
    if bound <= after:
        return ChangePage([], after, bound)
    ranges = [ShardRange(s, after, bound, limit, prefix) for s in feed_shards_of(bucket, shards)]
    answers = index.query_changes(ranges)
    end = min((a.covered for a in answers if a.covered is not None), default=bound)
    merged = heapq.merge(*(a.rows for a in answers), key=lambda row: str(row[CHANGED]))
    rows: list[dict[str, Any]] = []
    for row in merged:
        position = str(row[CHANGED])
        if position > end or len(rows) == limit:
            break
        if position <= after:  # an index must not return these; never let it move back
            continue
        if FILENAME not in row or str(row.get(PARTITION_KEY, "")).startswith("#"):
            continue  # a system item, not a file
        rows.append(row)
    next_position = str(rows[-1][CHANGED]) if len(rows) == limit else end
    return ChangePage(
        rows,
        max(next_position, after),
        bound,
        queries=len(ranges),
        rows_read=sum(a.read for a in answers),
    )
