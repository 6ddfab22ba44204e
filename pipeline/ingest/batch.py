"""Apply a batch of SQS messages (S3 notifications) to the files table.

1. Parse every message; a bad one fails alone.
2. Collapse events per key to the newest (sequencer, then eventTime, then arrival order):
   one request may not name a key twice.
3. Read the stored version of those keys (consistently) and drop events older than (or equal
   to) what is stored: S3 delivers at least once and out of order. Dropped = skipped.
4. Write rows (creates) and tombstones (deletes), 25 per request, many requests in flight.
   Default (`WriteMode.CONDITIONAL`): each write holds only if the stored version is still
   the one read in 3 (or older by sequencer); a write refused because another invocation
   wrote the key in between goes back to 3 for that key (at most `MAX_ROUNDS` rounds), where
   it is written or, if now stale, skipped. Never reported as a failure for being stale.
   Opt-in `WriteMode.BATCH`: unconditional BatchWriteItem (not race-free).
5. Folder totals are not written here: the totals function derives them, exactly once, from
   the table's stream of row changes (`pipeline.totals.stream`); rows are the only truth.
   Events of a bucket nobody tracks (with `tracked`: not the stack's bucket, not registered)
   are acknowledged, counted (`untracked`) and not stored.
6. Map every key that could not be written back to every message that carried an event for it.

Bad input fails only its own message. The parser and the S3 adapter turn every malformed value
and every SDK error into a reason; beyond that, a last line of defence catches anything else
(a future bug) per message while parsing and per key while resolving and writing: those
messages are reported as failures with the error's type (never the message's content) and
SQS delivers them again, while the rest of the batch is applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Protocol

from pipeline.core.model import (
    DELETED,
    FEED_SHARD,
    FEED_SHARDS,
    PARTITION_KEY,
    ConditionalWrite,
    FileEvent,
    WriteOutcome,
    is_newer,
    parse_time,
)
from pipeline.core.retry import Deadline, OpStats
from pipeline.core.settings import WriteMode
from pipeline.core.shards import DEFAULT_PLAN, ShardPlan, ShardPlans
from pipeline.feed.positions import feed_shard
from pipeline.ingest.messages import Latest, bug, collapse, message_id_of, parse_messages
from pipeline.ingest.versions import Resolution, VersionResolver, needs_lookup

logger = logging.getLogger(__name__)

GROUP_SIZE = 100
"""Keys whose stored versions are read (one BatchGetItem) before their rows are written."""
GROUPS_IN_FLIGHT = 16
"""Groups being read, decided and written at once: enough to keep the store's request slots
busy, few enough that one invocation does not hold every row of its batch in memory."""
MAX_ROUNDS = 5
"""Read-decide-write rounds per key before giving up (SQS redelivers the message later)."""


class FileStore(Protocol):
    """What ingest needs from the table (`pipeline.adapters.dynamo.writer.DynamoFileStore`)."""

    async def read_versions(
        self, keys: Sequence[str], deadline: Deadline, stats: OpStats
    ) -> dict[str, dict[str, Any]]: ...

    async def write_rows(
        self, rows: Sequence[dict[str, Any]], deadline: Deadline, stats: OpStats
    ) -> None: ...

    async def write_conditional(
        self, writes: Sequence[ConditionalWrite], deadline: Deadline, stats: OpStats
    ) -> dict[str, WriteOutcome]: ...


class TrackedBuckets(Protocol):
    """Which buckets are tracked (`pipeline.adapters.dynamo.registry.DynamoBucketRegistry`)."""

    async def untracked(self, buckets: set[str], deadline: Deadline) -> set[str]:
        """The buckets of `buckets` nobody tracks; raises when that cannot be told."""
        ...


@dataclass
class IngestResult:
    """The outcome of one invocation, for the response and the metrics."""

    failed_message_ids: list[str] = field(default_factory=list)
    messages: int = 0
    written: int = 0
    deleted: int = 0
    skipped: int = 0
    """Records that changed nothing: test events, ignored event types, stale or duplicate events."""
    failed: int = 0
    """Records (keys) that could not be applied, plus bad messages."""
    retries: int = 0
    """DynamoDB calls repeated (throttling, unprocessed items, transient errors)."""
    calls: int = 0
    """DynamoDB calls made."""
    throttles: int = 0
    """DynamoDB calls (rows and counters) answered with throttling; each retried while the
    invocation's time allows: a message fails only when that time runs out."""
    conflicts: int = 0
    """Conditional writes refused because another writer changed the key: re-read, re-decided."""
    lookups: int = 0
    """S3 HeadObject calls made (version deletes on versioned buckets only)."""
    untracked: int = 0
    """Events of buckets nobody tracks: acknowledged, not stored."""
    restamps: int = 0
    """Rows stamped again for the change feed (late or missing acknowledgements)."""
    lags_ms: list[float] = field(default_factory=list)
    """Per record written (row or tombstone): milliseconds from the event's `eventTime` to
    DynamoDB's acknowledgement of the write (the freshness metric `IngestLagMs`)."""

    def response(self) -> dict[str, list[dict[str, str]]]:
        """The ReportBatchItemFailures response Lambda expects."""
        return {"batchItemFailures": [{"itemIdentifier": mid} for mid in self.failed_message_ids]}


async def ingest(
    records: Sequence[Mapping[str, Any]],
    store: FileStore,
    deadline: Deadline,
    *,
    tombstone_ttl_s: int,
    now: float | None = None,
    mode: WriteMode = WriteMode.CONDITIONAL,
    resolver: VersionResolver | None = None,
    plans: ShardPlans | None = None,
    tracked: TrackedBuckets | None = None,
) -> IngestResult:
    """Apply the SQS `records` to the table; never raises for bad message bodies.

    With a `resolver`, the newest event of each key is first checked against S3 where the
    event alone cannot tell the object's state (version deletes: `pipeline.ingest.versions`).
    With `plans`, each bucket's rows go to the index and feed shards of its plan
    (`pipeline.core.shards`); without, to the defaults.
    With `tracked`, events of untracked buckets are dropped (acknowledged, counted).
    """
    result = IngestResult(messages=len(records))
    parsed = parse_messages(records)
    failed, pairs = parsed.failed, parsed.pairs
    result.failed += len(failed)
    result.skipped += parsed.skipped
    if tracked is not None and pairs:
        pairs = await _drop_untracked(pairs, tracked, deadline, result, failed)
    latest = collapse(pairs)
    result.skipped += len(pairs) - len(latest)
    stats = OpStats()
    keys = list(latest)
    if resolver is not None:
        try:
            resolution = await resolver.resolve(
                (entry.event for entry in latest.values()), deadline
            )
        except Exception as error:  # a resolver bug: only the keys it had to look up fail
            reason = bug(error)
            resolution = Resolution(
                failures={k: reason for k, e in latest.items() if needs_lookup(e.event)}
            )
        for key, event in resolution.events.items():
            latest[key].event = event
        stats.failures.update(resolution.failures)
        result.lookups = resolution.lookups
        keys = [key for key in keys if key not in resolution.failures]
    apply = _apply_group_conditional if mode is WriteMode.CONDITIONAL else _apply_group
    groups = asyncio.Semaphore(GROUPS_IN_FLIGHT)
    at = time.time() if now is None else now
    plan_of = await _plans(plans, {entry.event.bucket for entry in latest.values()})

    async def bounded(group: list[Latest]) -> None:
        async with groups:
            try:
                await apply(group, store, deadline, stats, result, tombstone_ttl_s, at, plan_of)
            except Exception as error:  # a bug: this group's keys fail (redelivery is safe:
                reason = bug(error)  # a key already written skips its repeat as stale)
                for entry in group:
                    stats.failures.setdefault(entry.event.key, reason)

    await asyncio.gather(
        *(
            bounded([latest[key] for key in keys[i : i + GROUP_SIZE]])
            for i in range(0, len(keys), GROUP_SIZE)
        )
    )
    _report_failures(latest, stats, failed, result)
    result.retries += stats.retries
    result.throttles += stats.throttles
    result.calls, result.conflicts = stats.calls, stats.conflicts
    result.restamps = stats.restamps
    order = {message_id_of(record): index for index, record in enumerate(records)}
    result.failed_message_ids = sorted(failed, key=order.__getitem__)
    return result


def _report_failures(
    latest: Mapping[str, Latest], stats: OpStats, failed: set[str], result: IngestResult
) -> None:
    """Every key that could not be written fails every message that carried an event for it
    (logged once per message, with the key's reason)."""
    for key, reason in stats.failures.items():
        entry = latest[key]
        result.failed += 1
        for message_id in sorted(entry.message_ids):
            if message_id not in failed:
                logger.warning(
                    "Could not apply %s: %s",
                    entry.event.action.value,
                    reason,
                    extra={
                        "message_id": message_id,
                        "bucket": entry.event.bucket,
                        "object_key": entry.event.filename[:256],
                        "reason": reason,
                    },
                )
            failed.add(message_id)


async def _apply_group_conditional(
    group: list[Latest],
    store: FileStore,
    deadline: Deadline,
    stats: OpStats,
    result: IngestResult,
    tombstone_ttl_s: int,
    now: float,
    plan_of: Mapping[str, ShardPlan] | None = None,
) -> None:
    """Read, decide, write conditionally; keys whose write conflicted go round again."""
    pending = {entry.event.key: entry.event for entry in group}
    for _ in range(MAX_ROUNDS):
        stored = await store.read_versions(list(pending), deadline, stats)
        writes = []
        for key, event in list(pending.items()):
            if key in stats.failures:  # its version could not be read: SQS retries later
                del pending[key]
            elif not is_newer(event, stored.get(key)):
                result.skipped += 1  # stale or duplicate: done, never a failure
                del pending[key]
            else:
                row = planned_row(event, now, tombstone_ttl_s, plan_of)
                writes.append(ConditionalWrite(row, stored.get(key), ordered=True))
        if not writes:
            return
        outcomes = await store.write_conditional(writes, deadline, stats)
        for write in writes:
            key = write.row[PARTITION_KEY]
            outcome = outcomes[key]
            if outcome is WriteOutcome.CONFLICT:
                continue  # someone wrote it in between: read again
            del pending[key]
            if outcome is WriteOutcome.WRITTEN:
                _count_written(result, write.row, stats)
        if not pending:
            return
    for key in pending:
        stats.failures[key] = (
            f"the stored row changed under {MAX_ROUNDS} conditional writes in a row "
            "(concurrent writers); SQS delivers the message again"
        )


async def _apply_group(
    group: list[Latest],
    store: FileStore,
    deadline: Deadline,
    stats: OpStats,
    result: IngestResult,
    tombstone_ttl_s: int,
    now: float,
    plan_of: Mapping[str, ShardPlan] | None = None,
) -> None:
    """Opt-in batch mode: read the stored versions of up to 100 keys, then write those events
    that are newer with unconditional BatchWriteItem (not race-free)."""
    keys = [entry.event.key for entry in group]
    stored = await store.read_versions(keys, deadline, stats)
    rows = []
    for entry in group:
        event = entry.event
        if event.key in stats.failures:  # its version could not be read: retry later
            continue
        if not is_newer(event, stored.get(event.key)):
            result.skipped += 1
            continue
        rows.append(planned_row(event, now, tombstone_ttl_s, plan_of))
    await store.write_rows(rows, deadline, stats)
    for row in rows:
        if row[PARTITION_KEY] in stats.failures:
            continue
        _count_written(result, row, stats)


async def _plans(plans: ShardPlans | None, buckets: set[str]) -> dict[str, ShardPlan]:
    """Each bucket's shard plan; the defaults where it cannot be read (rows in the default
    shards are always read: `ShardPlan.read_index` never drops below them)."""
    plan_of: dict[str, ShardPlan] = {}
    for bucket in sorted(buckets):
        try:
            plan_of[bucket] = await plans.plan(bucket) if plans is not None else DEFAULT_PLAN
        except Exception as error:  # an unreadable plan slows the bucket, never fails it
            logger.warning("Shard plan of %s not read: %s", bucket, bug(error))
            plan_of[bucket] = DEFAULT_PLAN
    return plan_of


def planned_row(
    event: FileEvent, now: float, tombstone_ttl_s: int, plan_of: Mapping[str, ShardPlan] | None
) -> dict[str, Any]:
    """The row `event` writes, in the index and feed shards of its bucket's plan."""
    plan = (plan_of or {}).get(event.bucket, DEFAULT_PLAN)
    row = event.row(now=now, tombstone_ttl_s=tombstone_ttl_s, index_shards=plan.index)
    if plan.feed != FEED_SHARDS:  # the stamper puts the default count's shard itself
        row[FEED_SHARD] = feed_shard(event.bucket, event.filename, plan.feed)
    return row


async def _drop_untracked(
    pairs: list[tuple[str, FileEvent]],
    tracked: TrackedBuckets,
    deadline: Deadline,
    result: IngestResult,
    failed: set[str],
) -> list[tuple[str, FileEvent]]:
    """The events of tracked buckets; the others are counted and dropped. When the registry
    cannot be read, the messages of the buckets in doubt fail (SQS delivers them again)."""
    buckets = {event.bucket for _, event in pairs}
    try:
        foreign = await tracked.untracked(buckets, deadline)
    except Exception as error:  # in doubt: nothing dropped, nothing stored; retried later
        reason = f"could not tell whether the bucket is tracked ({type(error).__name__})"
        doubtful = {mid for mid, _ in pairs}
        for message_id in sorted(doubtful - failed):
            logger.warning("Could not apply: %s", reason, extra={"message_id": message_id})
        failed.update(doubtful)
        result.failed += len(doubtful)
        return []
    if not foreign:
        return pairs
    kept = [(mid, event) for mid, event in pairs if event.bucket not in foreign]
    result.untracked += len(pairs) - len(kept)
    logger.info(
        "Ignored %d event(s) of untracked bucket(s)",
        len(pairs) - len(kept),
        extra={"buckets": sorted(b[:63] for b in foreign)[:10]},
    )
    return kept


def _count_written(result: IngestResult, row: dict[str, Any], stats: OpStats) -> None:
    """Count a row written, and its event -> row lag when the store saw it land."""
    if row.get(DELETED):
        result.deleted += 1
    else:
        result.written += 1
    landed = stats.landed_at.get(row[PARTITION_KEY])
    event_time = row.get("event_time")
    if landed is not None and isinstance(event_time, str):
        lag = lag_ms(event_time, landed)
        if lag is not None:
            result.lags_ms.append(lag)


def lag_ms(event_time: str, landed: float) -> float | None:
    """Milliseconds from an event's ISO 8601 `eventTime` to `landed` (epoch seconds), at
    least 0 (clocks disagree by a little); None when the time cannot be read."""
    moment = parse_time(event_time)
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, round((landed - moment.timestamp()) * 1000, 1))
