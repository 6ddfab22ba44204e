"""Feed positions and the writer's stamping rule.

A position is `f"{epoch_ms:013d}.{h}"`: the writer's clock when it sent the write, then
`h`, 16 hex digits of SHA-256 of the row's identity (`{bucket}/{key}`). Positions are fixed
width, so they sort as strings in time order, and two rows stamped in the same millisecond
still have distinct positions (a total order; equal positions would need a 64-bit hash
collision within one millisecond).

The stamping rule (docs/api.md, "Change feed"): a write is stamped when it is sent, again
for every attempt, and its stamp must not be older than `settle_ms / 2` when the write has
landed. The writer cannot see when a write lands, only when DynamoDB answers: an answer
received within `settle_ms / 2` of the stamp proves it; a later answer, or none (a timeout,
a dropped connection: the write may land later), makes the writer stamp the row again
(`Stamper.late`). The reader returns only positions older than `settle_ms`, so by the time its
bound passes a stamp, the write with that stamp is in the table (and, with index propagation
under `settle_ms / 2`, in the index).
"""

from __future__ import annotations

import hashlib
import re
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pipeline.core.model import BUCKET, CHANGED, DELETED, FEED_SHARD, FEED_SHARDS, FILENAME, KIND

HASH_DIGITS = 16
MS_DIGITS = 13
POSITION_PATTERN = re.compile(rf"[0-9]{{{MS_DIGITS}}}\.[0-9a-f]{{{HASH_DIGITS}}}")
_LAST_HASH = "f" * HASH_DIGITS


class ChangeKind(StrEnum):
    """What a change did to its key."""

    CREATED = "created"
    """The key had no live row (none, or a tombstone) and now has one."""
    OVERWRITTEN = "overwritten"
    """The key had a live row and now has another version."""
    DELETED = "deleted"
    """The key's row became a tombstone."""


def row_hash(bucket: str, key: str) -> str:
    """The fixed-width hex hash of a row's identity, the tail of its positions."""
    identity = f"{bucket}/{key}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(identity).hexdigest()[:HASH_DIGITS]


def position(epoch_ms: int, bucket: str, key: str) -> str:
    """The feed position of a write of (`bucket`, `key`) stamped at `epoch_ms`."""
    return f"{epoch_ms:0{MS_DIGITS}d}.{row_hash(bucket, key)}"


def time_position(epoch_ms: int) -> str:
    """The greatest position of millisecond `epoch_ms`: a cursor at it has read that
    millisecond and everything before it."""
    return f"{max(epoch_ms, 0):0{MS_DIGITS}d}.{_LAST_HASH}"


def position_ms(value: str) -> int:
    """The millisecond a position was stamped at."""
    return int(value[:MS_DIGITS])


def is_position(value: object) -> bool:
    """Whether `value` is a well-formed position."""
    return isinstance(value, str) and POSITION_PATTERN.fullmatch(value) is not None


def position_tail(value: str) -> str:
    """The part of a position after its milliseconds (`.` and the row's hash)."""
    return value[MS_DIGITS:]


def feed_shard(bucket: str, key: str, shards: int = FEED_SHARDS) -> str:
    """The feed index partition of a row: `{bucket}/{crc32(key) mod shards}`."""
    return f"{bucket}/{zlib.crc32(key.encode('utf-8', 'surrogatepass')) % shards}"


def feed_shards_of(bucket: str, shards: int = FEED_SHARDS) -> list[str]:
    """Every feed index partition of `bucket`."""
    return [f"{bucket}/{n}" for n in range(shards)]


def kind_of(row: Mapping[str, Any], expected: Mapping[str, Any] | None) -> ChangeKind:
    """The kind of the change that writes `row` over `expected` (the row the writer read)."""
    if row.get(DELETED):
        return ChangeKind.DELETED
    if expected is None or expected.get(DELETED):
        return ChangeKind.CREATED
    return ChangeKind.OVERWRITTEN


@dataclass(frozen=True)
class Stamper:
    """The writer's side of the feed: positions from its clock, and the lateness rule.

    `clock` returns epoch seconds (`time.time`; tests pass a fake).
    """

    settle_ms: int
    clock: Callable[[], float] = time.time
    shards: int = FEED_SHARDS

    def now_ms(self) -> int:
        """The clock in whole milliseconds."""
        return int(self.clock() * 1000)

    def stamp(
        self,
        row: Mapping[str, Any],
        expected: Mapping[str, Any] | None,
        sent_ms: int,
    ) -> dict[str, Any]:
        """`row` with its feed attributes: position at `sent_ms`, shard and kind. A row that
        is not a file's (no bucket or key: a system item) is returned as it is."""
        bucket, key = row.get(BUCKET), row.get(FILENAME)
        if not isinstance(bucket, str) or not isinstance(key, str):
            return dict(row)
        stamped = dict(row)
        stamped[CHANGED] = position(sent_ms, bucket, key)
        planned = row.get(FEED_SHARD)  # the bucket's plan (ingest sets it), else ours
        stamped[FEED_SHARD] = (
            planned if isinstance(planned, str) else feed_shard(bucket, key, self.shards)
        )
        stamped[KIND] = kind_of(row, expected).value
        return stamped

    @property
    def max_landing_ms(self) -> int:
        """How long after its stamp a write may be acknowledged without a new stamp."""
        return self.settle_ms // 2

    def late(self, sent_ms: int) -> bool:
        """Whether an answer received now leaves it unproven that the write stamped at
        `sent_ms` landed within `max_landing_ms`: the row must be stamped again."""
        return self.now_ms() - sent_ms > self.max_landing_ms
