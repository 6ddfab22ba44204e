"""Reconcile's repairs: the row each kind of drift calls for, written as a compare-and-swap on
the row as read, after HeadObject says what exists now (see `pipeline.reconcile.merge`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.model import (
    BUCKET,
    DELETED,
    EXPIRES_AT,
    FILENAME,
    LOWEST_SEQ,
    PARTITION_KEY,
    SEQ,
    SHARD_ATTRIBUTE,
    VERSION_ATTRIBUTES,
    ConditionalWrite,
    WriteOutcome,
    item_key,
    name_shard_of,
)
from pipeline.reconcile.ports import (
    Drift,
    ObjectHeads,
    RowStore,
    S3Object,
    Summary,
    normalize_etag,
)
from pipeline.totals.deltas import ZERO, Totals, counted

BACKFILL_EVENT = "Reconcile:Backfill"
"""`event_name` of a row reconcile created for an object no event had reported."""
REPAIR_EVENT = "Reconcile:Repair"
"""`event_name` of a row reconcile corrected (size, ETag or version id, or a lost create)."""
HIDE_EVENT = "Reconcile:Hide"
"""`event_name` of a tombstone reconcile wrote for a row whose object no longer exists."""
LOWEST_EVENT_TIME = "1970-01-01T00:00:00.000Z"
"""`event_time` of a backfilled row when the source gave no LastModified."""
ORDERING_ATTRIBUTES = tuple(a for a in VERSION_ATTRIBUTES if a not in (PARTITION_KEY, DELETED))
"""Attributes that order a row against events; repairs copy them from the row they replace."""
LOWEST_VERSION = {SEQ: LOWEST_SEQ}
"""The version of a backfilled row: any event with a sequencer is newer (`LOWEST_SEQ`)."""


# --------------------------------------------------------------------------------- rows


def matches(obj: S3Object, row: Mapping[str, Any]) -> bool:
    """Whether a live row describes `obj` (size, ETag, and version id when both know it)."""
    if row.get(DELETED) is True:
        return False
    if row.get("size") != obj.size:
        return False
    if normalize_etag(row.get("etag")) != normalize_etag(obj.etag):
        return False
    return not (obj.version_id and row.get("version_id") != obj.version_id)


def _version_of(row: Mapping[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in ORDERING_ATTRIBUTES if name in row}


def live_row(
    obj: S3Object, bucket: str, version: Mapping[str, Any], event_name: str
) -> dict[str, Any]:
    """The live row describing `obj`, carrying `version` (the row it replaces, or the lowest)."""
    row: dict[str, Any] = {
        PARTITION_KEY: item_key(bucket, obj.key),
        FILENAME: obj.key,
        BUCKET: bucket,
        "size": obj.size,
        "event_name": event_name,
        "event_time": obj.last_modified or LOWEST_EVENT_TIME,
        SHARD_ATTRIBUTE: name_shard_of(bucket, obj.key),
    }
    if obj.etag:
        row["etag"] = normalize_etag(obj.etag)
    if obj.version_id:
        row["version_id"] = obj.version_id
    row.update(version)
    return row


def backfill_row(obj: S3Object, bucket: str, lowest: Mapping[str, Any]) -> dict[str, Any]:
    """A row for an object no event reported, with the lowest version: every event beats it.

    Its `event_time` is the object's LastModified: an event for a later write carries a later
    eventTime, one for the very write that produced it an equal or later one (LastModified
    has whole seconds). `lowest` adds the store's own lowest version attributes, if it has any.
    """
    return live_row(obj, bucket, lowest, BACKFILL_EVENT)


def hidden_row(
    row: Mapping[str, Any], bucket: str, *, now: float, tombstone_ttl_s: int
) -> dict[str, Any]:
    """A tombstone replacing `bucket`'s live `row` (its object is gone), with the row's own
    version."""
    tombstone: dict[str, Any] = {
        PARTITION_KEY: item_key(bucket, row[FILENAME]),
        FILENAME: row[FILENAME],
        BUCKET: bucket,
        "event_name": HIDE_EVENT,
        DELETED: True,
        EXPIRES_AT: int(now) + tombstone_ttl_s,
    }
    if "version_id" in row:
        tombstone["version_id"] = row["version_id"]
    tombstone.update(_version_of(row))
    return tombstone


# --------------------------------------------------------------------------------- repair


@dataclass
class Repairer:
    """Repairs a batch of drift with consistent reads, HeadObject and compare-and-swap writes.

    `confirm_missing`: HeadObject even for keys without any row before inserting (for sources
    that may be behind the bucket, like an inventory; LIST is current, so it is off there).
    `before_write`: a hook called between the checks and the writes (tests force races there).
    """

    bucket: str
    store: RowStore
    heads: ObjectHeads
    tombstone_ttl_s: int
    lowest: Mapping[str, Any] = field(default_factory=lambda: dict(LOWEST_VERSION))
    confirm_missing: bool = False
    clock: Callable[[], float] = time.time
    before_write: Callable[[Sequence[ConditionalWrite]], None] | None = None

    def repair(
        self,
        batch: Sequence[Drift],
        summary: Summary,
        settled: dict[str, Totals | None] | None = None,
    ) -> None:
        """Repair `batch` (unique keys), counting repaired, skipped and failed in `summary`.

        `settled` receives, per key, what the table holds for it now as the folder totals
        count it (None: unknown, because the repair failed or an event won the race)."""
        if not batch:
            return
        settled = settled if settled is not None else {}
        current = self.store.read_rows([drift.key for drift in batch])
        need_head: list[Drift] = []
        writes: list[ConditionalWrite] = []
        for drift in batch:
            row = current.get(drift.key)
            if row is None and drift.listed is not None and not self.confirm_missing:
                writes.append(
                    ConditionalWrite(backfill_row(drift.listed, self.bucket, self.lowest), None)
                )
            elif row is None or row.get(DELETED) is True:
                if drift.listed is None:  # extra, and already hidden or gone: nothing to do
                    summary.skipped += 1
                    settled[drift.key] = ZERO
                else:  # listed, but a tombstone (or no row and we must confirm): ask S3
                    need_head.append(drift)
            elif drift.listed is not None and matches(drift.listed, row):
                summary.skipped += 1  # an event fixed it since the join read the index
                settled[drift.key] = counted(row)
            else:
                need_head.append(drift)
        heads = self.heads.head_many([drift.key for drift in need_head]) if need_head else {}
        for drift in need_head:
            if drift.key not in heads:  # S3 did not answer: never guess "gone" from an error
                summary.fail(drift.key, "HeadObject failed")
                settled[drift.key] = None
                continue
            row = current.get(drift.key)
            write = self._decide(drift, row, heads[drift.key])
            if write is None:
                summary.skipped += 1
                settled[drift.key] = counted(row)
            else:
                writes.append(write)
        if not writes:
            return
        if self.before_write is not None:
            self.before_write(writes)
        outcomes = self.store.write_conditional(writes)
        for write in writes:
            key = write.row[FILENAME]
            outcome = outcomes.get(key, WriteOutcome.FAILED)
            written = outcome == WriteOutcome.WRITTEN
            settled[write.row["filename"]] = counted(write.row) if written else None
            if outcome == WriteOutcome.WRITTEN:
                summary.repaired += 1
            elif outcome == WriteOutcome.CONFLICT:
                summary.skipped += 1
            else:
                summary.fail(key, "the conditional write failed")

    def _decide(
        self, drift: Drift, row: dict[str, Any] | None, head: S3Object | None
    ) -> ConditionalWrite | None:
        """The write that makes `row` describe what HeadObject saw, or None if it already does."""
        live = row is not None and row.get(DELETED) is not True
        if head is None:  # the object does not exist now
            if not live:
                return None
            assert row is not None
            return ConditionalWrite(
                hidden_row(
                    row, self.bucket, now=self.clock(), tombstone_ttl_s=self.tombstone_ttl_s
                ),
                row,
            )
        if live and row is not None and matches(head, row):
            return None
        if row is None:
            return ConditionalWrite(backfill_row(head, self.bucket, self.lowest), None)
        version = _version_of(row) or dict(self.lowest)
        return ConditionalWrite(live_row(head, self.bucket, version, REPAIR_EVENT), row)
