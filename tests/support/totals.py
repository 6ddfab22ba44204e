"""An in-memory folder-counter store (`TotalsRepairs`) and totals computed from rows."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pipeline.totals.deltas import Totals, counted
from pipeline.totals.folders import ancestors
from pipeline.totals.ports import StoredTotals


class FakeTotals:
    """Counters with DynamoDB's semantics for what the adapters do: `add` is an atomic ADD
    (+1 to `updates`), `set_if_unchanged` a conditional SET on `updates`.

    `before_set(bucket, folder)` runs just before a conditional set is checked (tests land
    an ingest delta there to force the race)."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, str], StoredTotals] = {}
        self.lock = threading.Lock()
        self.gets = 0
        self.batch_gets: list[list[str]] = []
        self.sets: list[tuple[str, str, Totals]] = []
        self.before_set: Callable[[str, str], None] | None = None
        self.clock = 0.0

    def add(self, bucket: str, folder: str, change: Totals) -> None:
        with self.lock:
            old = self.counters.get((bucket, folder), StoredTotals())
            self.counters[(bucket, folder)] = StoredTotals(
                old.totals + change, (old.updates or 0) + 1, self.clock
            )

    def put(self, bucket: str, folder: str, totals: Totals) -> None:
        """Damage a counter by hand (like a PutItem would: no version bump semantics)."""
        with self.lock:
            old = self.counters.get((bucket, folder), StoredTotals())
            self.counters[(bucket, folder)] = StoredTotals(totals, old.updates, old.updated_at)

    def get(self, bucket: str, folder: str) -> StoredTotals:
        self.gets += 1
        return self.counters.get((bucket, folder), StoredTotals())

    def get_many(self, bucket: str, folders: Sequence[str]) -> dict[str, StoredTotals]:
        self.batch_gets.append(list(folders))
        return {f: self.counters.get((bucket, f), StoredTotals()) for f in folders}

    def set_if_unchanged(
        self, bucket: str, folder: str, totals: Totals, expected: StoredTotals
    ) -> bool:
        if self.before_set is not None:
            self.before_set(bucket, folder)
        with self.lock:
            current = self.counters.get((bucket, folder), StoredTotals())
            if current.updates != expected.updates:
                return False
            self.counters[(bucket, folder)] = StoredTotals(
                totals, (current.updates or 0) + 1, self.clock
            )
            self.sets.append((bucket, folder, totals))
            return True

    def totals(self, bucket: str, folder: str) -> Totals:
        return self.counters.get((bucket, folder), StoredTotals()).totals


def expected_totals(rows: Iterable[Mapping[str, Any]], key: str = "filename") -> dict[str, Totals]:
    """Totals per folder computed from whole rows (or S3 objects as {key, size})."""
    sums: dict[str, Totals] = {}
    for row in rows:
        for folder in ancestors(str(row[key])):
            sums[folder] = sums.get(folder, Totals()) + counted(row)
    return sums


class Clock:
    """A fake wall clock: `sleep` advances it."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def ingest_with_totals(table: Any, totals: FakeTotals, event: Any, *, add: bool = True) -> bool:
    """What the ingest Lambda does with one event on reconcile's `FakeTable`: write the row if
    the event is newer, and (with `add`) add the transition's delta to the counters."""
    old = table.items.get(event.filename)
    old = dict(old) if old is not None else None
    if not table.apply(event):
        return False
    if add:
        change = counted(table.items[event.filename]) - counted(old)
        if change:
            for folder in ancestors(event.filename):
                totals.add(event.bucket, folder, change)
    return True
