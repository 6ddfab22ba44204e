"""The read side's ports: what the listing needs from an index of live files
(`IndexReader`, `FileIndex`; adapter `pipeline.adapters.dynamo.reader`) and its errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class StoreError(Exception):
    """The file store failed in a way a retry will not fix (permissions, missing table...)."""


class StoreUnavailableError(StoreError):
    """The file store is throttling or unreachable: the request may succeed if retried."""


@dataclass(frozen=True, slots=True)
class ShardQuery:
    """One Query of the index: shard `shard`, names in `[low, high]` (None: open), `limit` rows."""

    shard: int
    low: str | None
    high: str | None
    limit: int


@dataclass(frozen=True, slots=True)
class ShardResult:
    """Rows of one shard query in ascending name order; `more`: the query stopped early."""

    rows: list[dict[str, Any]]
    more: bool


class IndexReader(Protocol):
    """Read access to the files table and its sorted listing index."""

    @property
    def shards(self) -> int:
        """Number of index shards (`pipeline.core.model.INDEX_SHARDS`)."""
        ...

    def query(self, queries: Sequence[ShardQuery]) -> list[ShardResult]:
        """Run the queries (in parallel where possible); results in the same order."""
        ...

    def get(self, filename: str) -> dict[str, Any] | None:
        """The row of `filename` (strongly consistent), or None when absent or a tombstone."""
        ...


class FileIndex(Protocol):
    """The read API's port: the table's buckets and a reader of each."""

    def for_bucket(self, bucket: str) -> IndexReader:
        """The reader of `bucket`'s rows."""
        ...

    def tracked_buckets(self) -> list[str]:
        """Buckets registered in the table, in name order."""
        ...

    def is_tracked(self, bucket: str) -> bool:
        """Whether `bucket` is registered in the table."""
        ...


FileReader = FileIndex
"""The read API's port (name kept for the handlers and tests)."""
