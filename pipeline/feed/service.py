"""`GET /changes` without HTTP: first cursors, retention, pages and the items' shape."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.core.fields import MAX_OBJECT_SIZE
from pipeline.core.model import BUCKET, CHANGED, FEED_SHARDS, FILENAME, KIND
from pipeline.feed.cursors import CursorCodec
from pipeline.feed.positions import position_ms, time_position
from pipeline.feed.reader import ChangeIndex, ChangePage, read_changes
from pipeline.feed.since import since_ms

ITEM_FIELDS = ("size", "etag", "version_id", "event_time", "sequencer")
"""Fields of a change copied from its row when present and well-typed."""


SINCE_MESSAGE = "since must be an ISO 8601 time such as 2026-12-04T10:00:00Z"


def expired_message(what: str, retention_days: int) -> str:
    """The 410 message for a `cursor` or `since` older than the retention."""
    advice = "restart with since=" if what == "cursor" else "pass a later since"
    return f"{what} is older than the feed's retention ({retention_days} days): {advice}"


class CursorExpiredError(Exception):
    """The cursor (or `since`) is older than the feed's retention: start again with `since`."""


class BadSinceError(ValueError):
    """`since` is not an ISO 8601 time."""


def parse_since(value: str) -> int:
    """Epoch milliseconds of an ISO 8601 time in the profile of `pipeline.feed.since`
    (`2026-12-04T10:00:00Z`; no zone = UTC)."""
    try:
        return since_ms(value)
    except ValueError:
        raise BadSinceError(SINCE_MESSAGE) from None


def change_view(row: dict[str, Any]) -> dict[str, Any] | None:
    """A row as the feed shows it, or None if it is not a file's row."""
    key = row.get(FILENAME)
    bucket = row.get(BUCKET)
    if not isinstance(key, str) or not key or not isinstance(bucket, str):
        return None
    item: dict[str, Any] = {
        "key": key,
        "bucket": bucket,
        "kind": str(row.get(KIND, "")),
        "position": str(row[CHANGED]),
    }
    for name in ITEM_FIELDS:
        value = row.get(name)
        if name == "size":
            if type(value) is int and 0 <= value <= MAX_OBJECT_SIZE:
                item[name] = value
        elif isinstance(value, str):
            item[name] = value
    return item


@dataclass
class ChangeFeed:
    """The feed of one table over its index (`ChangeIndex`)."""

    index: ChangeIndex
    cursors: CursorCodec
    settle_ms: int
    retention_ms: int
    clock: Callable[[], float] = time.time
    shards: int = FEED_SHARDS
    shards_of: Callable[[str], int] | None = None
    """Feed shards to read of a bucket (its plan's `read_feed`); None: `shards` for all."""

    def start(self, since_ms: int | None, now_ms: int) -> str:
        """The position a new consumer starts after: just before `since`, else the settle
        bound of now (the newest position a page may return now)."""
        if since_ms is None:
            return time_position(now_ms - self.settle_ms)
        if since_ms < now_ms - self.retention_ms:
            raise CursorExpiredError(expired_message("since", self.retention_days))
        return time_position(min(since_ms, now_ms) - 1)  # a future since: from now

    @property
    def retention_days(self) -> int:
        """The retention in whole days (for messages)."""
        return self.retention_ms // 86_400_000

    def page(
        self,
        *,
        bucket: str,
        limit: int,
        prefix: str | None = None,
        cursor: str | None = None,
        since: str | None = None,
    ) -> tuple[dict[str, Any], ChangePage]:
        """The response body of one page, and the page (for metrics)."""
        now_ms = int(self.clock() * 1000)
        if cursor is not None:
            after = self.cursors.decode(cursor, bucket, prefix)
            if position_ms(after) < now_ms - self.retention_ms:
                raise CursorExpiredError(expired_message("cursor", self.retention_days))
        else:
            after = self.start(parse_since(since) if since is not None else None, now_ms)
        page = read_changes(
            self.index,
            bucket=bucket,
            after=after,
            now_ms=now_ms,
            settle_ms=self.settle_ms,
            limit=limit,
            prefix=prefix,
            shards=self.shards_of(bucket) if self.shards_of is not None else self.shards,
        )
        items = [view for row in page.rows if (view := change_view(row)) is not None]
        body = {
            "items": items,
            "next_cursor": self.cursors.encode(page.next_position, bucket, prefix),
        }
        return body, page
