"""What the totals need from a store: the ports, apart from their DynamoDB adapter
(`pipeline.adapters.dynamo.totals`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.totals.deltas import Totals

TOTALS_PREFIX = "#totals/"
"""Partition keys of counter items start with this ("#": a reserved, system item)."""


def totals_key(bucket: str, folder: str) -> str:
    """The partition key of the counter of `folder` ("" = the whole bucket) in `bucket`."""
    return f"{TOTALS_PREFIX}{bucket}/{folder}"


@dataclass(frozen=True, slots=True)
class StoredTotals:
    """A counter as read: its totals, how many updates made it (`updates`, the version a
    repair compares), and when the last one was stamped (epoch seconds, writer's clock)."""

    totals: Totals = field(default_factory=Totals)
    updates: int | None = None
    """None: no counter item (or one without a version): both read as 0 files, 0 bytes."""
    updated_at: float | None = None


class TotalsReader(Protocol):
    """Reads counters (the API; reconcile's dry run)."""

    def get(self, bucket: str, folder: str) -> StoredTotals: ...

    def get_many(self, bucket: str, folders: Sequence[str]) -> dict[str, StoredTotals]: ...


class TotalsRepairs(TotalsReader, Protocol):
    """Reads counters and sets one only if it is still the version read (reconcile)."""

    def set_if_unchanged(
        self, bucket: str, folder: str, totals: Totals, expected: StoredTotals
    ) -> bool: ...


@dataclass(frozen=True, slots=True)
class Refused:
    """A counter update refused by its watermark: the counter already holds the contributions
    of the shard up to `watermark` (its stored value; None when it has none)."""

    watermark: str | None


class WatermarkedCounters(Protocol):
    """Applies a folder's summed stream contributions once (the totals consumer)."""

    async def add(
        self, at: tuple[str, str], shard: str, change: Totals, *, first: str, last: str
    ) -> Refused | None:
        """Add `change` to the counter of `at` = (bucket, folder) and set its watermark of
        `shard` to `last`, only if that watermark is absent or lower than `first`; else
        change nothing and answer `Refused` with the stored watermark. Raises for any other
        failure (the outcome may be unknown: the caller retries, the condition decides)."""
        ...
