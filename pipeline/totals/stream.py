"""Folder totals derived from the table's own change stream, applied exactly once.

Every change of a file row reaches the table's DynamoDB Stream once, in order per item, with
its old and new image (NEW_AND_OLD_IMAGES). The totals consumer (`handlers/totals.py`) gets a
batch of records of ONE shard, in shard order, and:

1. turns each record of a file row into a contribution: (sequence number, delta of the row's
   old image -> new image), counted in every folder of the key (`ancestors`); system items
   (`#totals/...`, `#bucket/...`) and anything that is not a file row add nothing;
2. per folder, applies the sum of its contributions with ONE conditional update that also
   moves the folder's watermark for this shard (the sequence number of the last contribution
   applied) — only if the stored watermark is lower than the first contribution's number
   (`WatermarkedCounters.add`). A zero sum is written too: skipping it would be wrong when
   part of it is already in the counter (a retry from inside an earlier batch), which only
   the watermark can tell;
3. when that condition fails, the store answers the stored watermark: contributions up to it
   are already in the counter; the rest (if any) is applied the same way.

4. when a write fails, the batch is reported failed from the first contribution not applied;
   Lambda retries from there (records before it are done for good).

Invariant, per (counter, shard): the counter holds exactly the contributions of that shard
whose sequence number is <= the watermark.
A retried, replayed or bisected batch therefore adds nothing twice, and a batch whose
invocation died between two counter writes is completed by its redelivery. Each row's
applied changes are an ordered prefix of its history, whose sum is what the row counts for
now (>= 0): a counter is never negative.

Sequence numbers are decimal strings of 21 to 40 digits; they are compared zero-padded to
`SEQ_DIGITS` (string order = numeric order).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.model import BUCKET, DELETED, FILENAME, PARTITION_KEY, is_system_key
from pipeline.totals.deltas import ZERO, FolderKey, Totals, counted
from pipeline.totals.folders import ancestors
from pipeline.totals.ports import Refused, WatermarkedCounters

logger = logging.getLogger(__name__)

SEQ_DIGITS = 40
"""DynamoDB Streams sequence numbers are at most 40 digits long."""
MAX_ROUNDS = 5
"""Refusals of one folder's update in a row before the batch is reported failed."""


class StreamRecordError(ValueError):
    """A record the consumer cannot read (not a DynamoDB stream record, no images)."""


def padded(sequence_number: object) -> str:
    """A sequence number in its fixed-width comparable form."""
    if not isinstance(sequence_number, str) or not sequence_number.isdigit():
        raise StreamRecordError(f"bad SequenceNumber {str(sequence_number)[:60]!r}")
    if len(sequence_number) > SEQ_DIGITS:
        raise StreamRecordError("SequenceNumber longer than 40 digits")
    return sequence_number.zfill(SEQ_DIGITS)


def shard_of(event: Mapping[str, Any]) -> str:
    """The shard of a Lambda DynamoDB stream event: its `shardId`, which Lambda sends with a
    tumbling window (`TumblingWindowInSeconds`, template.yaml). Records alone do not name
    their shard, and a watermark must be per shard: without it the batch fails, clearly."""
    shard = event.get("shardId")
    if not isinstance(shard, str) or not shard or len(shard) > 200:
        raise StreamRecordError(
            "event without a shardId: the totals function needs its DynamoDB event source "
            "with TumblingWindowInSeconds set (Lambda names the shard only then)"
        )
    return shard


def _plain(image: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The attributes a row counts by, from a stream image (attribute-value JSON)."""
    if image is None:
        return None
    row: dict[str, Any] = {}
    for name in (PARTITION_KEY, BUCKET, FILENAME):
        value = image.get(name)
        if isinstance(value, dict) and isinstance(value.get("S"), str):
            row[name] = value["S"]
    deleted = image.get(DELETED)
    if isinstance(deleted, dict) and deleted.get("BOOL") is True:
        row[DELETED] = True
    size = image.get("size")
    if isinstance(size, dict) and isinstance(size.get("N"), str):
        try:
            row["size"] = int(size["N"])
        except ValueError:
            row["size"] = 0
    return row


@dataclass(frozen=True, slots=True)
class Contribution:
    """One record's change of one folder."""

    seq: str
    change: Totals


@dataclass
class FolderChanges:
    """A folder's contributions in one batch, in shard order."""

    contributions: list[Contribution] = field(default_factory=list)

    def after(self, watermark: str | None) -> list[Contribution]:
        """The contributions not yet in a counter whose watermark is `watermark`."""
        if watermark is None:
            return list(self.contributions)
        mark = watermark[:SEQ_DIGITS]
        return [c for c in self.contributions if c.seq > mark]


@dataclass
class StreamBatch:
    """A batch of one shard, folded into per-folder contributions."""

    records: int = 0
    file_changes: int = 0
    """Records of file rows (system items and foreign items are ignored)."""
    ignored: int = 0
    first_seq: str | None = None
    folders: dict[FolderKey, FolderChanges] = field(default_factory=dict)


def fold(records: Sequence[Mapping[str, Any]]) -> StreamBatch:
    """Fold a batch (Lambda's DynamoDB event `Records`, one shard, in order) into contributions.

    Raises `StreamRecordError` for a record without images (the stream must be
    NEW_AND_OLD_IMAGES) or with a bad sequence number: the batch fails and is retried."""
    batch = StreamBatch(records=len(records))
    last = ""
    for record in records:
        data = record.get("dynamodb")
        if not isinstance(data, dict):
            raise StreamRecordError("record without a 'dynamodb' member: not a DynamoDB stream")
        seq = padded(data.get("SequenceNumber"))
        if seq <= last:
            raise StreamRecordError("records out of shard order")
        last = seq
        batch.first_seq = batch.first_seq or seq
        key = ((data.get("Keys") or {}).get(PARTITION_KEY) or {}).get("S")
        if not isinstance(key, str) or is_system_key(key):
            batch.ignored += 1
            continue
        view = data.get("StreamViewType")
        if view is not None and view != "NEW_AND_OLD_IMAGES":
            raise StreamRecordError(f"stream view {view!r}: totals need NEW_AND_OLD_IMAGES")
        old, new = _plain(data.get("OldImage")), _plain(data.get("NewImage"))
        row = new or old
        if row is None or "bucket" not in row or FILENAME not in row:
            batch.ignored += 1
            continue
        batch.file_changes += 1
        change = counted(new) - counted(old)
        if not change:
            continue
        for folder in ancestors(row[FILENAME]):
            at = (row[BUCKET], folder)
            batch.folders.setdefault(at, FolderChanges()).contributions.append(
                Contribution(seq, change)
            )
    return batch


@dataclass
class StreamResult:
    """What one invocation did to the counters."""

    records: int = 0
    file_changes: int = 0
    updates: int = 0
    """Counter updates applied (one UpdateItem each)."""
    replayed: int = 0
    """Folder updates refused because the counter already held (some of) them."""
    failed_seq: str | None = None
    """The lowest sequence number (as Lambda sent it) from which the batch must be retried;
    None when every folder was applied."""
    failures: list[str] = field(default_factory=list)

    def response(self) -> dict[str, list[dict[str, str]]]:
        """The ReportBatchItemFailures response: retry from `failed_seq`."""
        if self.failed_seq is None:
            return {"batchItemFailures": []}
        return {"batchItemFailures": [{"itemIdentifier": self.failed_seq}]}


def _total(contributions: Sequence[Contribution]) -> Totals:
    total = ZERO
    for contribution in contributions:
        total = total + contribution.change
    return total


@dataclass(frozen=True, slots=True)
class _FolderOutcome:
    unapplied_from: str | None = None
    """The first contribution not applied (a write failed): retry from it."""


async def _apply_folder(
    store: WatermarkedCounters,
    shard: str,
    at: FolderKey,
    changes: FolderChanges,
    result: StreamResult,
) -> _FolderOutcome:
    """Apply one folder's contributions (see `apply_batch`)."""
    pending = changes.contributions
    for _ in range(MAX_ROUNDS):
        total = _total(pending)  # written even when zero: it moves the watermark (see doc)
        try:
            answer = await store.add(at, shard, total, first=pending[0].seq, last=pending[-1].seq)
        except Exception as error:  # outcome unknown or refused: retried from this folder
            result.failures.append(f"{type(error).__name__} on a counter of {at[0]}")
            logger.warning(
                "Folder counter not updated (batch retried from here): %s",
                type(error).__name__,
                extra={"bucket": at[0], "folder": at[1][:256], "shard": shard},
            )
            return _FolderOutcome(unapplied_from=pending[0].seq)
        if not isinstance(answer, Refused):
            result.updates += 1
            return _FolderOutcome()
        result.replayed += 1
        pending = changes.after(answer.watermark)
        if not pending:
            return _FolderOutcome()
    result.failures.append(f"counter of {at[0]} refused {MAX_ROUNDS} updates in a row")
    return _FolderOutcome(unapplied_from=pending[0].seq)


async def apply_batch(
    records: Sequence[Mapping[str, Any]],
    shard: str,
    store: WatermarkedCounters,
    *,
    concurrency: int = 16,
) -> StreamResult:
    """Fold `records` (one shard's batch) and apply each folder's sum once (see module doc).

    Never raises for a failed counter write: the result names the record to retry from."""
    batch = fold(records)
    result = StreamResult(records=batch.records, file_changes=batch.file_changes)
    slots = asyncio.Semaphore(concurrency)

    async def one(at: FolderKey, changes: FolderChanges) -> _FolderOutcome:
        async with slots:
            return await _apply_folder(store, shard, at, changes, result)

    outcomes = await asyncio.gather(*(one(at, ch) for at, ch in sorted(batch.folders.items())))
    failed = [o.unapplied_from for o in outcomes if o.unapplied_from is not None]
    if failed:
        lowest = min(failed)
        originals = {
            padded(record["dynamodb"]["SequenceNumber"]): str(record["dynamodb"]["SequenceNumber"])
            for record in records
        }
        result.failed_seq = originals[lowest]
    return result
