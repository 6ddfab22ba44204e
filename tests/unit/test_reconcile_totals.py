"""Reconcile recounts the folder totals as it walks and repairs the counters without ever
wiping a concurrent ingest delta (strict in-memory bucket, table and counters).

Races are forced at the points where they hurt: just before a counter's compare-and-swap
(`FakeTotals.before_set`), between a folder's walk and its repair (the settle time), and
between the listing and the counter read (a counter stamped after the listing began).
"""

from __future__ import annotations

import dataclasses
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.reconcile.merge import reconcile
from pipeline.reconcile.ports import S3Object, Summary
from pipeline.reconcile.repair import Repairer
from pipeline.totals.audit import STAMP_MARGIN_S, TotalsAudit
from pipeline.totals.deltas import Totals
from pipeline.totals.folders import ancestors
from tests.support.reconcile_fakes import TTL_S, FakeBucket, FakeCheckpoints, FakeTable, stop_after
from tests.support.totals import Clock, FakeTotals, expected_totals, ingest_with_totals

SETTLE = 60.0
KEYS = [
    "a.txt",
    "docs/readme.md",
    "photos/2024/01.jpg",
    "photos/2024/02.jpg",
    "photos/2025/01.jpg",
    "photos/cover.png",
    "videos/x/y/z.mp4",
]


class Listed:
    """`FakeBucket`'s listing, each object stamped with the clock's time as LIST does."""

    def __init__(self, bucket: FakeBucket, clock: Clock) -> None:
        self.bucket, self.clock = bucket, clock

    def iter_objects(self, prefix: str, start_after: str | None) -> Iterator[S3Object]:
        for obj in self.bucket.iter_objects(prefix, start_after):
            yield dataclasses.replace(obj, listed_at=self.clock.now)

    def head_many(self, keys: Any) -> Any:
        return self.bucket.head_many(keys)


class World:
    """A bucket tracked by ingest (rows and counters), and a clock."""

    def __init__(self, keys: list[str] = KEYS) -> None:
        self.clock = Clock()
        self.bucket, self.table, self.totals = FakeBucket(), FakeTable(), FakeTotals()
        self.totals.clock = self.clock.now
        for i, key in enumerate(keys):
            self.put(key, b"x" * (10 + i))
        self.clock.now += 100  # quiet since: the counters' stamps are older than the margin

    def put(self, key: str, body: bytes, *, add: bool = True) -> None:
        self.totals.clock = self.clock.now
        ingest_with_totals(self.table, self.totals, self.bucket.put(key, body), add=add)

    def delete(self, key: str, *, add: bool = True) -> None:
        self.totals.clock = self.clock.now
        ingest_with_totals(self.table, self.totals, self.bucket.delete(key), add=add)

    def truth(self) -> dict[str, Totals]:
        return expected_totals(
            [{"filename": o.key, "size": o.size} for o in self.bucket.objects.values()]
        )

    def counters(self) -> dict[str, Totals]:
        return {f: t.totals for (_, f), t in self.totals.counters.items() if t.totals}

    def audit(self, **kwargs: Any) -> TotalsAudit:
        return TotalsAudit(
            self.totals,
            self.bucket.name,
            settle_s=SETTLE,
            clock=self.clock,
            sleep=self.clock.sleep,
            **kwargs,
        )

    def reconcile(self, *, dry_run: bool = False, prefix: str = "", **kwargs: Any) -> Summary:
        source = Listed(self.bucket, self.clock)
        fixer = None if dry_run else Repairer(self.bucket.name, self.table, source, TTL_S)
        audit = kwargs.pop("audit", None) or self.audit(prefix=prefix, dry_run=dry_run)
        return reconcile(source, self.table, fixer, prefix=prefix, totals=audit, **kwargs)


def test_counters_kept_by_ingest_match_the_recount() -> None:
    world = World()
    summary = world.reconcile()
    assert summary.totals is not None
    folders = {f for key in KEYS for f in ancestors(key)}
    assert summary.totals.report() == {
        "folders": len(folders),
        "drift": 0,
        "repaired": 0,
        "skipped": 0,
        "drifted": {},
    }
    assert world.counters() == world.truth()


def test_counters_damaged_by_hand_are_repaired() -> None:
    world = World()
    world.totals.put("bucket", "photos/", Totals(999, 1))
    world.totals.put("bucket", "", Totals(0, 0))
    world.totals.put("bucket", "videos/x/", Totals(-3, 5))
    summary = world.reconcile()
    assert summary.totals is not None
    assert (summary.totals.drift, summary.totals.repaired) == (3, 3)
    assert summary.totals.drifted["photos/"]["counter_files"] == 999
    assert world.counters() == world.truth()
    again = world.reconcile()
    assert again.totals is not None and again.totals.drift == 0


def test_lost_deltas_and_lost_rows_are_both_repaired() -> None:
    world = World()
    world.put("photos/2024/03.jpg", b"y" * 7, add=False)  # row written, delta lost (a crash)
    world.bucket.put("docs/new.md", b"z" * 3)  # event lost: no row, no delta
    del world.table.items["a.txt"]  # row lost by hand (the counter still counts it)
    world.clock.now += 100
    summary = world.reconcile()
    assert summary.missing == 2 and summary.repaired == 2
    assert world.counters() == world.truth()


def test_dry_run_reports_totals_drift_and_writes_nothing() -> None:
    world = World()
    world.totals.put("bucket", "docs/", Totals(5, 5))
    summary = world.reconcile(dry_run=True)
    assert summary.totals is not None and summary.totals.drift == 1
    assert summary.report()["totals"]["drifted"] == {
        "docs/": {"counter_files": 5, "counter_bytes": 5, "files": 1, "bytes": 11}
    }
    assert world.totals.sets == [] and world.totals.totals("bucket", "docs/") == Totals(5, 5)


class LandsDuringWalk(Listed):
    """The listing; when the join pulls `at` (the key after the one it is handing out),
    `action` runs (an ingest invocation)."""

    def __init__(self, world: World, at: str, action: Any) -> None:
        super().__init__(world.bucket, world.clock)
        self.at, self.action = at, action

    def iter_objects(self, prefix: str, start_after: str | None) -> Iterator[S3Object]:
        for obj in list(super().iter_objects(prefix, start_after)):
            if obj.key == self.at:
                self.action()
            yield obj


@pytest.mark.parametrize("when", ["during-the-walk", "just-before-the-swap"])
def test_a_repair_racing_an_ingest_delta_does_not_wipe_it(when: str) -> None:
    # Given a damaged counter, and an upload into that folder whose delta lands after the
    # walk entered the folder: while the walk is inside it, or just before the repair's swap
    world = World()
    world.totals.put("bucket", "docs/", Totals(50, 50))

    def upload() -> None:
        world.put("docs/late.md", b"q" * 4)

    def delta_sent_before_the_listing() -> None:  # its stamp is old: only the swap sees it
        sent = world.clock.now - 100
        world.clock.now, now = sent, world.clock.now
        upload()
        world.clock.now = now

    audit = world.audit()
    source: Listed = Listed(world.bucket, world.clock)
    if when == "during-the-walk":
        source = LandsDuringWalk(world, "photos/2024/01.jpg", delta_sent_before_the_listing)
    else:
        world.totals.before_set = lambda bucket, folder: upload() if folder == "docs/" else None
    fixer = Repairer(world.bucket.name, world.table, source, TTL_S)
    summary = reconcile(source, world.table, fixer, totals=audit)
    # Then the repair is skipped and the delta is still in the counter
    assert summary.totals is not None and summary.totals.skipped >= 1
    assert world.totals.totals("bucket", "docs/") == Totals(51, 54)
    # And the next (quiet) run repairs the folder, delta included
    world.totals.before_set = None
    world.clock.now += 100
    world.reconcile()
    assert world.counters() == world.truth()


def test_a_delta_still_in_flight_when_the_walk_leaves_the_folder_is_not_counted_twice() -> None:
    """A row written before the walk read it, whose invocation adds its delta only later
    (ingest adds deltas at the end of an invocation): the repair waits the settle time, the
    late delta changes the counter's version, and the repair is skipped instead of setting a
    count that already includes the row."""
    world = World()
    world.totals.put("bucket", "", Totals(1, 1))  # drift, so that "" is due for a repair
    world.put("zz/new.bin", b"n" * 9, add=False)  # the row is there; its delta is pending
    world.clock.now += 100
    audit = world.audit()
    source = Listed(world.bucket, world.clock)
    fixer = Repairer(world.bucket.name, world.table, source, TTL_S)
    landed = []

    def sleep(seconds: float) -> None:  # the invocation finishes while reconcile waits
        world.clock.sleep(seconds)
        if not landed:
            for folder in ancestors("zz/new.bin"):
                world.totals.add("bucket", folder, Totals(1, 9))
            landed.append(True)

    audit._sleep = sleep
    summary = reconcile(source, world.table, fixer, totals=audit)
    assert summary.totals is not None and landed
    # Then both repairs ("" drifted by hand, zz/ had no counter) waited, saw the late delta
    # change the counter, and were skipped: the delta is counted once, nothing was set
    assert (summary.totals.drift, summary.totals.skipped, world.totals.sets) == (2, 2, [])
    assert world.totals.totals("bucket", "zz/") == Totals(1, 9)
    assert world.totals.totals("bucket", "") == Totals(2, 10)
    world.clock.now += 100
    world.reconcile()
    assert world.counters() == world.truth()


def test_a_counter_updated_after_the_listing_began_is_left_for_the_next_run() -> None:
    world = World()
    world.totals.put("bucket", "docs/", Totals(9, 9))
    world.totals.clock = world.clock.now - STAMP_MARGIN_S / 2  # stamped just before the walk
    world.totals.add("bucket", "docs/", Totals())  # an update with a recent stamp
    summary = world.reconcile()
    assert summary.totals is not None and summary.totals.skipped == 1
    assert world.totals.totals("bucket", "docs/") == Totals(9, 9)
    world.clock.now += 100
    world.reconcile()
    assert world.counters() == world.truth()


def test_a_failed_row_repair_keeps_its_folders_unrepaired() -> None:
    world = World()
    world.bucket.put("docs/lost.md", b"l")  # missing row; its repair will fail
    world.table.fail_keys.add("docs/lost.md")
    world.totals.put("bucket", "docs/", Totals(7, 7))
    world.clock.now += 100
    summary = world.reconcile()
    assert summary.failed == 1 and summary.totals is not None
    assert world.totals.totals("bucket", "docs/") == Totals(7, 7)  # left alone
    assert world.totals.totals("bucket", "photos/") == world.truth()["photos/"]


def test_a_prefix_run_audits_only_the_folders_under_it() -> None:
    world = World()
    world.totals.put("bucket", "photos/2024/", Totals(0, 0))
    world.totals.put("bucket", "", Totals(0, 0))
    summary = world.reconcile(prefix="photos/")
    assert summary.totals is not None
    assert summary.totals.folders == 3  # photos/, photos/2024/, photos/2025/; not ""
    assert world.totals.totals("bucket", "photos/2024/") == world.truth()["photos/2024/"]
    assert world.totals.totals("bucket", "") == Totals(0, 0)


def test_a_resumed_run_leaves_the_folders_around_its_start_alone() -> None:
    world = World()
    world.totals.put("bucket", "photos/", Totals(0, 0))
    world.totals.put("bucket", "videos/x/", Totals(0, 0))
    checkpoints = FakeCheckpoints()
    first = world.reconcile(checkpoints=checkpoints, should_stop=stop_after(4))
    assert not first.complete and first.last_key == "photos/2024/02.jpg"
    second = world.reconcile(checkpoints=checkpoints)
    assert second.complete
    assert world.totals.totals("bucket", "photos/") == Totals(0, 0)  # walked in two halves
    assert world.totals.totals("bucket", "videos/x/") == world.truth()["videos/x/"]


class Generated:
    """n objects in 97 folders of one subfolder each, generated lazily (the bucket side),
    with every third one also a row (the table side)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def _keys(self) -> Iterator[tuple[int, str]]:
        for i in range(self.n):
            yield i, f"d{i * 97 // self.n:02d}/s{i:07d}/f"

    def iter_objects(self, prefix: str, start_after: str | None) -> Iterator[S3Object]:
        for _, key in self._keys():
            yield S3Object(key, 1, "e", listed_at=0.0)

    def iter_live(self, prefix: str, start_after: str | None) -> Iterator[dict[str, Any]]:
        for i, key in self._keys():
            if i % 3 == 0:
                yield {"filename": key, "size": 1, "etag": "e", "shard": 0}


def test_memory_stays_flat_with_totals() -> None:
    def peak(n: int) -> int:
        source, totals = Generated(n), FakeTotals()
        audit = TotalsAudit(totals, "bucket", dry_run=True)
        tracemalloc.start()
        try:
            summary = reconcile(source, source, None, totals=audit)
            _, top = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert summary.totals is not None and summary.totals.folders == 97 + n + 1
        return top

    # Ten times the keys and folders, the same peak (within noise)
    small, large = peak(5_000), peak(50_000)
    assert large < small * 1.5 + 64_000, (small, large)
