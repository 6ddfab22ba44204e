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
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from pipeline.core.model import (
    FILENAME,
)
from pipeline.reconcile.ports import (
    COUNTED,
    Checkpoint,
    CheckpointStore,
    Drift,
    DriftKind,
    LiveRows,
    ObjectSource,
    S3Object,
    Summary,
)
from pipeline.reconcile.repair import Repairer, matches
from pipeline.totals.audit import TotalsAudit
from pipeline.totals.deltas import ZERO, Totals
from pipeline.totals.walk import FolderWalk

DEFAULT_BATCH = 200
"""Drifted keys repaired together (one consistent read, concurrent heads and writes)."""
CHECKPOINT_EVERY = 10_000
"""Keys compared between checkpoints (and on every stop)."""


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
    run = _Run(repairer, prefix, checkpoints, batch_size, totals)
    start_after = run.resume(restart)
    live = rows.iter_live(prefix, start_after)
    if bucket is not None:  # rows another bucket's events wrote are not this bucket's drift
        live = (row for row in live if row.get("bucket", bucket) == bucket)
    joined = merge_join(objects.iter_objects(prefix, start_after), live)
    stopped = False
    since_checkpoint = 0
    for compared, (key, obj, row) in enumerate(joined, start=1):
        run.compare(key, obj, row)
        since_checkpoint += 1
        if since_checkpoint >= checkpoint_every:
            run.flush()
            run.save()
            since_checkpoint = 0
        if progress is not None and compared % progress_every == 0:
            run.summary.last_key = key
            run.summary.seconds = time.monotonic() - run.started
            progress(run.summary)
        if should_stop():
            stopped = True
            break
    run.finish(stopped, should_stop, progress)
    if progress is not None:
        progress(run.summary)
    return run.summary


class _Run:
    """The state of one reconcile pass: its summary, pending drift, folder walk, checkpoints."""

    def __init__(
        self,
        repairer: Repairer | None,
        prefix: str,
        checkpoints: CheckpointStore | None,
        batch_size: int,
        totals: TotalsAudit | None,
    ) -> None:
        self.repairer, self.prefix, self.checkpoints = repairer, prefix, checkpoints
        self.batch_size, self.totals = batch_size, totals
        self.dry_run = repairer is None
        self.summary = Summary(dry_run=self.dry_run)
        self.started = time.monotonic()
        self.started_at = _now_iso()
        self.pending: list[Drift] = []
        self.last_key: str | None = None
        self.walk = FolderWalk() if totals is not None else None

    def resume(self, restart: bool) -> str | None:
        """Where the pass starts: after the checkpoint of its prefix (unless `restart`)."""
        start_after: str | None = None
        if self.checkpoints is not None and not self.dry_run:
            if restart:
                self.checkpoints.clear(self.prefix)
            else:
                saved = self.checkpoints.load(self.prefix)
                if saved is not None:
                    start_after = saved.after
                    self.started_at = saved.started_at
                    self.summary.resumed_after = saved.after
                    for name in COUNTED:
                        setattr(self.summary, name, int(saved.counts.get(name, 0)))
                    self.started -= saved.seconds
        self.last_key = start_after
        if self.totals is not None:
            self.totals.start(start_after)
            self.summary.totals = self.totals.report
        return start_after

    def compare(self, key: str, obj: S3Object | None, row: dict[str, Any] | None) -> None:
        """Count one key of the join; queue its drift for repair."""
        if self.walk is not None:
            self.enter(key, obj)
        if obj is not None:
            self.summary.listed += 1
        if row is not None:
            self.summary.rows += 1
        kind = classify(obj, row)
        if kind is None:
            if self.walk is not None:
                self.walk.count(key, _listed(obj))
        else:
            setattr(self.summary, kind.value, getattr(self.summary, kind.value) + 1)
            self.summary.name_drift(kind.value, key)
            self.pending.append(Drift(kind, key, obj, row))
            if len(self.pending) >= self.batch_size:
                self.flush()
        self.last_key = key

    def flush(self) -> None:
        """Repair the pending drift (count it, in a dry run) and settle its folders' totals."""
        if not self.pending:
            return
        walk, repairer, summary = self.walk, self.repairer, self.summary
        if walk is None:
            if repairer is not None:
                repairer.repair(self.pending, summary)
        elif repairer is None:  # dry run: count what the bucket listed
            for drift in self.pending:
                walk.count(drift.key, _listed(drift.listed))
        else:
            settled: dict[str, Totals | None] = {}
            repairer.repair(self.pending, summary, settled)
            for drift in self.pending:
                value = settled.get(drift.key)
                if value is None:
                    walk.doubt(drift.key, "a repair under it failed or lost a race")
                else:
                    walk.count(drift.key, value)
        self.pending.clear()

    def enter(self, key: str, obj: S3Object | None) -> None:
        """Move the folder walk to `key`, closing (after their drift is repaired) the
        folders it leaves and opening those it enters."""
        walk, totals = self.walk, self.totals
        assert walk is not None and totals is not None
        if walk.closes_before(key):
            self.flush()
        closed, opened = walk.advance(key)
        for entry in closed:
            totals.closed(entry)
        for entry in opened:
            totals.opened(entry, obj.listed_at if obj is not None else _no_time(walk, key))
        totals.repair_due()

    def save(self) -> None:
        """Save a checkpoint after the last key handled (not in a dry run)."""
        self.summary.seconds = time.monotonic() - self.started
        if self.checkpoints is not None and not self.dry_run and self.last_key is not None:
            checkpoint = Checkpoint.of(self.prefix, self.last_key, self.started_at, self.summary)
            self.checkpoints.save(checkpoint)

    def finish(
        self,
        stopped: bool,
        should_stop: Callable[[], bool],
        progress: Callable[[Summary], None] | None,
    ) -> None:
        """Repair what is pending, close the folders, and checkpoint a stopped pass or clear
        the checkpoint of a complete one."""
        self.flush()
        if self.walk is not None and self.totals is not None:
            if not stopped:  # folders still open when a run stops were not walked whole
                for entry in self.walk.finish():
                    self.totals.closed(entry)
            self.totals.finish(_settle_ticks(self.summary, self.totals, should_stop, progress))
            self.summary.settle_until, self.summary.settle_pending = None, 0
        self.summary.last_key = self.last_key
        self.summary.seconds = time.monotonic() - self.started
        if stopped:
            self.save()
        else:
            self.summary.complete = True
            if self.checkpoints is not None and not self.dry_run:
                self.checkpoints.clear(self.prefix)
