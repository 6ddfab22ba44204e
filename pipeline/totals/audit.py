"""Reconcile's side of the folder totals: recount each folder as the walk leaves it, compare
with its counter, and repair the counter without ever wiping a concurrent stream delta.

Per audited folder F (the walk is in S3 key order, so F's keys are contiguous):

1. When the walk enters F, its counter is read (consistently): files, bytes, `updates` (the
   number of updates that made it) and `updated_at` (when the last one was sent).
2. While the walk is inside F, each key counts for what the table holds for it once the
   walk is done with it: the listed object when its row matched, the row a repair wrote, or
   nothing when the object is gone. A key whose repair failed or lost a race makes F
   doubtful: no repair of F in this run.
3. When the walk leaves F, the count is compared with the counter. A difference is drift.
   The repair is a compare-and-swap: set the counter to the count only if `updates` still
   has the value read in 1. It waits `settle_s` (the totals' lag behind the rows: the
   table stream's consumer) plus `margin_s` (`SETTLE_MARGIN_S`) after F's walk ended, so
   that every row change of F made before the walk read it has reached the counter by then:
   a delta that
   landed since 1 changes `updates` and the repair is skipped (rows this run repaired
   included: their deltas come through the stream too); one that had landed before 1 is
   in the counter read and in what S3 listed.
4. F is skipped (left for the next run) when its counter was updated less than
   `stamp_margin_s` (`STAMP_MARGIN_S`) before the listing of F began (a change S3 had not
   listed yet could already be in the counter), when the source cannot say when it listed
   (an inventory), or when F was not walked whole in this run (resumed inside it, or
   outside `--prefix`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.totals.deltas import Totals
from pipeline.totals.ports import StoredTotals, TotalsReader, TotalsRepairs
from pipeline.totals.walk import OpenFolder

SETTLE_MARGIN_S = 5.0
"""Added to the settle time: a counter update sent just before may still be applied a
moment later."""
STAMP_MARGIN_S = 20.0
"""How much older than the listing a counter's last update must be for the folder to be
repaired: an update's request time out (15 s: connect + read) plus clock skew."""
MAX_DRIFTED_KEPT = 20


@dataclass
class TotalsReport:
    """Counts of the totals audit of one run."""

    folders: int = 0
    """Folders walked whole and compared with their counters."""
    drift: int = 0
    """Of those, counters that differed from the count."""
    repaired: int = 0
    skipped: int = 0
    """Drifted counters left for the next run (updated meanwhile, doubtful, or out of time)."""
    drifted: dict[str, dict[str, int]] = field(default_factory=dict)
    """Up to `MAX_DRIFTED_KEPT` drifted folders: counter and count."""

    def report(self) -> dict[str, object]:
        return {
            "folders": self.folders,
            "drift": self.drift,
            "repaired": self.repaired,
            "skipped": self.skipped,
            "drifted": dict(self.drifted),
        }


@dataclass
class _Due:
    folder: str
    counted: Totals
    expected: StoredTotals
    at: float


class TotalsAudit:
    """Reads counters as folders open, compares and repairs them as they close.

    `store` is a `TotalsRepairs` (or only a `TotalsReader` for a dry run). Only folders this
    run walks whole are audited: under `prefix`, and not around the key a resumed run starts
    after (`start`).
    `settle_s`, `margin_s` and `stamp_margin_s` are `pipeline.core.settings.TotalsTiming`'s.
    """

    def __init__(
        self,
        store: TotalsReader | TotalsRepairs,
        bucket: str,
        *,
        prefix: str = "",
        dry_run: bool = False,
        settle_s: float = 60.0,
        margin_s: float = SETTLE_MARGIN_S,
        stamp_margin_s: float = STAMP_MARGIN_S,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._bucket = bucket
        self._prefix = prefix
        self._start_after: str | None = None
        self._dry_run = dry_run
        self._settle_s = settle_s
        self._margin_s = margin_s
        self._stamp_margin_s = stamp_margin_s
        self._clock = clock
        self._sleep = sleep
        self._due: deque[_Due] = deque()
        self.report = TotalsReport()

    def start(self, start_after: str | None) -> None:
        """The walk starts after `start_after` (a resumed run): folders around it are partial."""
        self._start_after = start_after

    def audited(self, folder: str) -> bool:
        """Whether this run walks `folder` whole."""
        if not folder.startswith(self._prefix):
            return False
        return self._start_after is None or not self._start_after.startswith(folder)

    def opened(self, entry: OpenFolder, listed_at: float | None) -> None:
        """The walk entered `entry.folder` (its first key was listed at `listed_at`)."""
        entry.audited = self.audited(entry.folder)
        if not entry.audited:
            return
        entry.listed_at = listed_at
        entry.stored = self._store.get(self._bucket, entry.folder)

    def closed(self, entry: OpenFolder) -> None:
        """The walk left `entry.folder`: compare, and schedule a repair if it drifted."""
        if not entry.audited or entry.stored is None:
            return
        report = self.report
        report.folders += 1
        stored = entry.stored
        if entry.counted == stored.totals:
            return
        report.drift += 1
        if len(report.drifted) < MAX_DRIFTED_KEPT:
            report.drifted[entry.folder] = {
                "counter_files": stored.totals.files,
                "counter_bytes": stored.totals.bytes,
                "files": entry.counted.files,
                "bytes": entry.counted.bytes,
            }
        if self._dry_run:
            return
        if entry.doubt is not None or not self._quiet(entry):
            report.skipped += 1
            return
        due = self._clock() + self._settle_s + self._margin_s
        self._due.append(_Due(entry.folder, entry.counted, stored, due))
        self.repair_due()

    def _quiet(self, entry: OpenFolder) -> bool:
        """Whether no counter update can be newer than the listing of the folder."""
        stamp = entry.stored.updated_at if entry.stored is not None else None
        if entry.listed_at is None:
            return False
        return stamp is None or stamp < entry.listed_at - self._stamp_margin_s

    def repair_due(self) -> None:
        """Apply the repairs whose settle time has passed."""
        now = self._clock()
        while self._due and self._due[0].at <= now:
            self._apply(self._due.popleft())

    @property
    def pending(self) -> int:
        """Repairs waiting for their settle time."""
        return len(self._due)

    def settle_until(self) -> float | None:
        """When the last waiting repair is due (clock seconds), or None."""
        return self._due[-1].at if self._due else None

    def finish(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Wait for the pending repairs' settle times and apply them; those still waiting
        when `should_stop()` turns true are skipped (left for the next run)."""
        while self._due:
            if should_stop():
                self.report.skipped += len(self._due)
                self._due.clear()
                return
            wait = self._due[0].at - self._clock()
            if wait > 0:
                self._sleep(min(wait, 1.0))
            self.repair_due()

    def _apply(self, due: _Due) -> None:
        store = self._store
        assert hasattr(store, "set_if_unchanged")
        if store.set_if_unchanged(self._bucket, due.folder, due.counted, due.expected):
            self.report.repaired += 1
        else:
            self.report.skipped += 1
