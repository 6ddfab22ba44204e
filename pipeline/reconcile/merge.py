"""Reconcile the files table with the bucket: find drift, repair it without losing a race.

S3 says its notifications can be late and "might be lost", and recommends auditing an
event-built index with LIST or S3 Inventory. `reconcile` does that audit as a **streaming merge
join**: the bucket's current objects (ListObjectsV2 or an inventory, both in UTF-8 binary key
order) against the table's live rows (the sorted listing index, same order). Memory stays flat:
no key set is ever held, only one page of each side and one bounded batch of drift.

Drift, per key:
- **missing**: an object without a live row (never tracked, row lost, event lost);
- **extra**: a live row without an object (delete event lost, row written by hand);
- **stale**: both, but the row's size, ETag or version id differ from the object's.

Repairs race with ingest, which may apply real events for the same keys at any moment. Every
repair is a compare-and-swap on the row as read (consistently) just before, and carries a
version that any real event newer than that row beats:

- missing, no row at all: insert a *backfilled* row with the lowest possible version, only if
  no item exists. An event written meanwhile (create or delete) makes the insert fail; an event
  applied after it wins over the lowest version.
- missing, a tombstone: HeadObject. 404: the delete is real, nothing to do (a key deleted after
  it was listed is never resurrected). 200: the object exists *now*, so the create that followed
  the delete was lost: write the live row with the tombstone's own version, only if the tombstone
  is still exactly what was read. Redelivered events older than or equal to the tombstone still
  lose; every newer event still wins.
- extra or stale: HeadObject (after the consistent read). 404: hide the row (a tombstone with
  the row's version); 200 and different: correct the row (the row's version); 200 and equal:
  nothing to do. Again only if the row is still exactly what was read.

HeadObject is made after the row was read, so what it reports is at least as new as the row;
whatever happens after the read changes the row and makes the swap fail (the event wins), or
arrives later with a newer version and wins then.

A checkpoint (the last key fully handled) is saved as the join advances, so a run cut off
(Lambda timeout, Ctrl-C) resumes where it stopped; see `pipeline.adapters.dynamo.reconcile_store`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

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
from pipeline.totals.audit import TotalsAudit, TotalsReport
from pipeline.totals.deltas import ZERO, Totals, counted
from pipeline.totals.walk import FolderWalk

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
DEFAULT_BATCH = 200
"""Drifted keys repaired together (one consistent read, concurrent heads and writes)."""
CHECKPOINT_EVERY = 10_000
"""Keys compared between checkpoints (and on every stop)."""


class DriftKind(StrEnum):
    MISSING = "missing"
    EXTRA = "extra"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class S3Object:
    """One current object as S3 lists or heads it."""

    key: str
    size: int
    etag: str | None = None
    """Without quotes, as S3 notifications carry it."""
    last_modified: str | None = None
    """ISO 8601, UTC."""
    version_id: str | None = None
    """Only when the source knows it (HeadObject, an inventory with versions); LIST does not."""
    listed_at: float | None = field(default=None, compare=False)
    """Epoch seconds just before the LIST request that returned it (folder totals use it to
    tell whether a counter changed after the listing began); None for other sources."""


@dataclass(frozen=True, slots=True)
class Drift:
    """A key whose row disagrees with the bucket, as the merge join saw it."""

    kind: DriftKind
    key: str
    listed: S3Object | None
    row: dict[str, Any] | None


# --------------------------------------------------------------------------------- ports


class ObjectSource(Protocol):
    """The bucket's current objects, in UTF-8 binary key order."""

    def iter_objects(self, prefix: str, start_after: str | None) -> Iterator[S3Object]: ...


class ObjectHeads(Protocol):
    """HeadObject (current version) of many keys: an object, or None when S3 says 404.

    A key S3 could not answer for (error, throttling after retries) is left out of the result.
    """

    def head_many(self, keys: Sequence[str]) -> dict[str, S3Object | None]: ...


class LiveRows(Protocol):
    """One bucket's live rows in the table (no tombstones), in UTF-8 binary order of
    `filename` (the bucket's shards of the listing index: no other bucket's rows)."""

    def iter_live(self, prefix: str, start_after: str | None) -> Iterator[dict[str, Any]]: ...


class RowStore(Protocol):
    """Consistent reads and compare-and-swap writes of one bucket's whole rows, by object key
    (`filename`): the store builds the rows' `pk`, so it never reaches another bucket's."""

    def read_rows(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def write_conditional(self, writes: Sequence[ConditionalWrite]) -> dict[str, WriteOutcome]: ...


class CheckpointStore(Protocol):
    """Where a run's progress is kept between invocations (None: no checkpoint)."""

    def load(self, prefix: str) -> Checkpoint | None: ...

    def save(self, checkpoint: Checkpoint) -> None: ...

    def clear(self, prefix: str) -> None: ...


# --------------------------------------------------------------------------------- results


@dataclass
class Summary:
    """Counts of one run (cumulative over the invocations of a resumed run)."""

    listed: int = 0
    """Objects read from the bucket (or inventory)."""
    rows: int = 0
    """Live rows read from the table."""
    missing: int = 0
    extra: int = 0
    stale: int = 0
    repaired: int = 0
    skipped: int = 0
    """Drift that needed no write after the re-check, or where a newer event won the race."""
    failed: int = 0
    seconds: float = 0.0
    complete: bool = False
    """False when the run stopped early (time, signal); a checkpoint says where to resume."""
    dry_run: bool = False
    resumed_after: str | None = None
    last_key: str | None = None
    failures: dict[str, str] = field(default_factory=dict)
    """Up to `MAX_FAILURES_KEPT` keys that could not be repaired, with the reason."""
    totals: TotalsReport | None = None
    """The folder totals audit of this invocation (None when totals are not audited)."""
    drifted: dict[str, list[str]] = field(default_factory=dict)
    """Kind -> the first `MAX_DRIFTED_KEPT` drifted keys of this invocation, in key order."""
    settle_until: float | None = None
    """While folder-counter repairs wait for in-flight ingest: when the last is due (epoch s)."""
    settle_pending: int = 0
    """How many folder-counter repairs wait (with `settle_until`)."""

    @property
    def drift(self) -> int:
        return self.missing + self.extra + self.stale

    def name_drift(self, kind: str, key: str) -> None:
        """Keep `key` among the drifted keys named in the report (bounded per kind)."""
        named = self.drifted.setdefault(kind, [])
        if len(named) < MAX_DRIFTED_KEPT:
            named.append(key)

    def drifted_keys(self) -> dict[str, dict[str, Any]]:
        """Per kind: the keys named, and how many more drifted (`more`)."""
        return {
            kind: {
                "keys": list(self.drifted.get(kind, [])),
                "more": max(getattr(self, kind) - len(self.drifted.get(kind, [])), 0),
            }
            for kind in ("missing", "extra", "stale")
        }

    def report(self) -> dict[str, Any]:
        """The `--json` summary."""
        return {
            "listed": self.listed,
            "rows": self.rows,
            "missing": self.missing,
            "extra": self.extra,
            "stale": self.stale,
            "repaired": self.repaired,
            "skipped": self.skipped,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "complete": self.complete,
            "dry_run": self.dry_run,
            "resumed_after": self.resumed_after,
            "failures": dict(self.failures),
            **({"totals": self.totals.report()} if self.totals is not None else {}),
            "drifted_keys": self.drifted_keys(),
        }


MAX_FAILURES_KEPT = 20
MAX_DRIFTED_KEPT = 100
"""Drifted keys named per kind in a summary (the counts cover them all)."""


@dataclass
class Checkpoint:
    """The last key fully handled by a run over `prefix`, and the counts so far."""

    prefix: str
    after: str
    started_at: str
    counts: dict[str, int]
    seconds: float = 0.0

    @classmethod
    def of(cls, prefix: str, after: str, started_at: str, summary: Summary) -> Checkpoint:
        counts = {
            name: int(value)
            for name, value in asdict(summary).items()
            if name in COUNTED and isinstance(value, int)
        }
        return cls(prefix, after, started_at, counts, summary.seconds)


COUNTED = ("listed", "rows", "missing", "extra", "stale", "repaired", "skipped", "failed")


# --------------------------------------------------------------------------------- rows


def normalize_etag(etag: str | None) -> str | None:
    """S3 lists ETags in quotes, notifications without: compare them without."""
    if etag is None:
        return None
    return etag.strip().strip('"') or None


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


# --------------------------------------------------------------------------------- the join


def merge_join(
    objects: Iterable[S3Object], rows: Iterable[dict[str, Any]]
) -> Iterator[tuple[str, S3Object | None, dict[str, Any] | None]]:
    """Pair both sorted streams by key: (key, object or None, live row or None).

    Raises `ValueError` if either side is out of order (a source that does not sort as S3
    does would otherwise report drift that is not there).
    """
    obj_iter, row_iter = iter(objects), iter(rows)
    obj = next(obj_iter, None)
    row = next(row_iter, None)
    last_obj = last_row = ""
    while obj is not None or row is not None:
        if obj is not None and obj.key < last_obj:
            raise ValueError(f"the bucket listing is out of order at {obj.key[:80]!r}")
        if row is not None and row[FILENAME] < last_row:
            raise ValueError(f"the table's index is out of order at {row[FILENAME][:80]!r}")
        row_key = row[FILENAME] if row is not None else None
        if obj is not None and (row_key is None or obj.key < row_key):
            last_obj = obj.key
            yield obj.key, obj, None
            obj = next(obj_iter, None)
        elif obj is None or (row_key is not None and row_key < obj.key):
            assert row_key is not None
            last_row = row_key
            yield row_key, None, row
            row = next(row_iter, None)
        else:
            assert row_key is not None and obj is not None
            last_obj = last_row = obj.key
            yield obj.key, obj, row
            obj = next(obj_iter, None)
            row = next(row_iter, None)


def classify(obj: S3Object | None, row: dict[str, Any] | None) -> DriftKind | None:
    """The drift of one key as the join sees it, or None when the row matches the object."""
    if row is None:
        return DriftKind.MISSING
    if obj is None:
        return DriftKind.EXTRA
    return None if matches(obj, row) else DriftKind.STALE


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
                _fail(summary, drift.key, "HeadObject failed")
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
                _fail(summary, key, "the conditional write failed")

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


def _listed(obj: S3Object | None) -> Totals:
    """What a listed object counts for in the folder totals (one file of its size)."""
    return Totals(1, obj.size) if obj is not None else ZERO


def _no_time(walk: FolderWalk, key: str) -> float | None:
    """A folder entered at a row the bucket did not list: when the listing began is that of
    the enclosing open folder (the listing had reached past it), if known."""
    for entry in reversed(walk.open):
        if entry.listed_at is not None and key.startswith(entry.folder):
            return entry.listed_at
    return None


def _fail(summary: Summary, key: str, why: str) -> None:
    summary.failed += 1
    if len(summary.failures) < MAX_FAILURES_KEPT:
        summary.failures[key] = why


# --------------------------------------------------------------------------------- the run


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _settle_ticks(
    summary: Summary,
    totals: TotalsAudit,
    should_stop: Callable[[], bool],
    progress: Callable[[Summary], None] | None,
) -> Callable[[], bool]:
    """`should_stop` that also reports the folder totals' settle wait to `progress`."""

    def tick() -> bool:
        summary.settle_until, summary.settle_pending = totals.settle_until(), totals.pending
        if progress is not None:
            progress(summary)
        return should_stop()

    return tick


def reconcile(
    objects: ObjectSource,
    rows: LiveRows,
    repairer: Repairer | None,
    *,
    prefix: str = "",
    bucket: str | None = None,
    checkpoints: CheckpointStore | None = None,
    restart: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[Summary], None] | None = None,
    batch_size: int = DEFAULT_BATCH,
    checkpoint_every: int = CHECKPOINT_EVERY,
    progress_every: int = 1_000,
    totals: TotalsAudit | None = None,
) -> Summary:
    """Compare the bucket with the table under `prefix`; repair unless `repairer` is None.

    With `bucket`, live rows whose `bucket` attribute names another bucket are left alone.
    `repairer=None` is a dry run: drift is counted, nothing is read again or written (not
    even a checkpoint). Otherwise the run resumes from the checkpoint of `prefix` (unless
    `restart`), saves one every `checkpoint_every` keys and when `should_stop()` turns true,
    and clears it when the whole prefix was compared.

    With `totals`, the folder totals are recounted as the walk goes and compared with the
    counters (`pipeline.totals.audit`): drift of a folder's keys is repaired before the walk
    leaves the folder, so that each key counts for what the table holds after its repair.
    """
    started = time.monotonic()
    dry_run = repairer is None
    summary = Summary(dry_run=dry_run)
    start_after: str | None = None
    started_at = _now_iso()
    if checkpoints is not None and not dry_run:
        if restart:
            checkpoints.clear(prefix)
        else:
            saved = checkpoints.load(prefix)
            if saved is not None:
                start_after = saved.after
                started_at = saved.started_at
                summary.resumed_after = saved.after
                for name in COUNTED:
                    setattr(summary, name, int(saved.counts.get(name, 0)))
                started -= saved.seconds
    pending: list[Drift] = []
    since_checkpoint = 0
    last_key: str | None = start_after
    walk = FolderWalk() if totals is not None else None
    if totals is not None:
        totals.start(start_after)
        summary.totals = totals.report

    def flush() -> None:
        if not pending:
            return
        if walk is None:
            if repairer is not None:
                repairer.repair(pending, summary)
        elif repairer is None:  # dry run: count what the bucket listed
            for drift in pending:
                walk.count(drift.key, _listed(drift.listed))
        else:
            settled: dict[str, Totals | None] = {}
            repairer.repair(pending, summary, settled)
            for drift in pending:
                value = settled.get(drift.key)
                if value is None:
                    walk.doubt(drift.key, "a repair under it failed or lost a race")
                else:
                    walk.count(drift.key, value)
        pending.clear()

    def enter(key: str, obj: S3Object | None) -> None:
        """Move the folder walk to `key`, closing (after their drift is repaired) the
        folders it leaves and opening those it enters."""
        assert walk is not None and totals is not None
        if walk.closes_before(key):
            flush()
        closed, opened = walk.advance(key)
        for entry in closed:
            totals.closed(entry)
        for entry in opened:
            totals.opened(entry, obj.listed_at if obj is not None else _no_time(walk, key))
        totals.repair_due()

    def save() -> None:
        summary.seconds = time.monotonic() - started
        if checkpoints is not None and not dry_run and last_key is not None:
            checkpoints.save(Checkpoint.of(prefix, last_key, started_at, summary))

    live = rows.iter_live(prefix, start_after)
    if bucket is not None:  # rows another bucket's events wrote are not this bucket's drift
        live = (row for row in live if row.get("bucket", bucket) == bucket)
    joined = merge_join(objects.iter_objects(prefix, start_after), live)
    stopped = False
    for compared, (key, obj, row) in enumerate(joined, start=1):
        if walk is not None:
            enter(key, obj)
        if obj is not None:
            summary.listed += 1
        if row is not None:
            summary.rows += 1
        kind = classify(obj, row)
        if kind is None:
            if walk is not None:
                walk.count(key, _listed(obj))
        else:
            setattr(summary, kind.value, getattr(summary, kind.value) + 1)
            summary.name_drift(kind.value, key)
            pending.append(Drift(kind, key, obj, row))
            if len(pending) >= batch_size:
                flush()
        last_key = key
        since_checkpoint += 1
        if since_checkpoint >= checkpoint_every:
            flush()
            save()
            since_checkpoint = 0
        if progress is not None and compared % progress_every == 0:
            summary.last_key = key
            summary.seconds = time.monotonic() - started
            progress(summary)
        if should_stop():
            stopped = True
            break
    flush()
    if walk is not None and totals is not None:
        if not stopped:  # folders still open when a run stops were not walked whole
            for entry in walk.finish():
                totals.closed(entry)
        totals.finish(_settle_ticks(summary, totals, should_stop, progress))
        summary.settle_until, summary.settle_pending = None, 0
    summary.last_key = last_key
    summary.seconds = time.monotonic() - started
    if stopped:
        save()
    else:
        summary.complete = True
        if checkpoints is not None and not dry_run:
            checkpoints.clear(prefix)
    if progress is not None:
        progress(summary)
    return summary
