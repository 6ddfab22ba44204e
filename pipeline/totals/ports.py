"""What the totals need from a store: the ports, apart from their DynamoDB adapter
(`pipeline.adapters.dynamo.totals`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.core.retry import Deadline
from pipeline.totals.deltas import DeltaSum, Totals

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


@dataclass
class ApplyResult:
    """What became of one invocation's counter updates."""

    applied: int = 0
    """Counters updated (one UpdateItem each)."""
    lost: int = 0
    """Counter updates that failed or whose outcome is unknown (never retried: ADD is not
    idempotent); reconcile repairs them."""
    retries: int = 0
    """Updates sent again because DynamoDB surely did not apply them (throttling, no connection)."""
    throttles: int = 0
    """Updates DynamoDB throttled (each sent again while the deadline allows)."""


class TotalsWriter(Protocol):
    """Applies an invocation's summed deltas (ingest)."""

    async def apply(self, sums: DeltaSum, deadline: Deadline) -> ApplyResult: ...


class TotalsReader(Protocol):
    """Reads counters (the API; reconcile's dry run)."""

    def get(self, bucket: str, folder: str) -> StoredTotals: ...

    def get_many(self, bucket: str, folders: Sequence[str]) -> dict[str, StoredTotals]: ...


class TotalsRepairs(TotalsReader, Protocol):
    """Reads counters and sets one only if it is still the version read (reconcile)."""

    def set_if_unchanged(
        self, bucket: str, folder: str, totals: Totals, expected: StoredTotals
    ) -> bool: ...
