"""Reconcile's merge join, classification and race-safe repairs, against strict fakes.

Races are forced, not hoped for: `Repairer.before_write` runs between the checks (consistent
read, HeadObject) and the compare-and-swap writes, which is exactly where a concurrent event
hurts most; other tests apply the event after the repair (a delayed delivery).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from pipeline.core.model import ConditionalWrite
from pipeline.reconcile.merge import classify, merge_join, reconcile
from pipeline.reconcile.ports import Drift, DriftKind, S3Object, Summary
from pipeline.reconcile.repair import BACKFILL_EVENT, HIDE_EVENT, Repairer
from tests.support.reconcile_fakes import (
    TTL_S,
    FakeBucket,
    FakeCheckpoints,
    FakeTable,
    bucket_state,
    stop_after,
)


def repairer(bucket: FakeBucket, table: FakeTable, **kwargs: Any) -> Repairer:
    return Repairer(bucket.name, table, bucket, TTL_S, **kwargs)


def run(bucket: FakeBucket, table: FakeTable, **kwargs: Any) -> Summary:
    hook = kwargs.pop("before_write", None)
    confirm = kwargs.pop("confirm_missing", False)
    fixer = repairer(bucket, table, before_write=hook, confirm_missing=confirm)
    return reconcile(bucket, table, fixer, **kwargs)


def tracked(n: int, prefix: str = "k") -> tuple[FakeBucket, FakeTable]:
    """A bucket of `n` objects whose events all reached the table."""
    bucket, table = FakeBucket(), FakeTable()
    for i in range(n):
        table.apply(bucket.put(f"{prefix}{i:05d}", b"x" * (i % 7)))
    return bucket, table


# --- the join -----------------------------------------------------------------------------


def test_merge_join_pairs_keys_in_utf8_binary_order() -> None:
    # Given keys whose code-point order differs from naive expectations (case, accents, emoji)
    keys = sorted(["B", "a", "é", "z", "\U0001f600", "a/b", "a+b"])
    objs = [S3Object(k, 1) for k in keys if k != "z"]
    rows = [{"filename": k, "size": 1, "name_shard": "b/0"} for k in keys if k != "a"]
    # When they are joined
    joined = [(k, o is not None, r is not None) for k, o, r in merge_join(objs, rows)]
    # Then every key appears once, in order, with its side(s)
    assert [k for k, _, _ in joined] == keys
    assert ("z", False, True) in joined and ("a", True, False) in joined
    assert sorted(k.encode() for k in keys) == [k.encode() for k in keys]


def test_merge_join_refuses_an_unsorted_side() -> None:
    objs = [S3Object("b", 1), S3Object("a", 1)]
    with pytest.raises(ValueError, match="listing is out of order"):
        list(merge_join(objs, []))
    with pytest.raises(ValueError, match="index is out of order"):
        list(merge_join([], [{"filename": "b"}, {"filename": "a"}]))


@pytest.mark.parametrize(
    ("obj", "row", "kind"),
    [
        (S3Object("k", 3, '"e"'), None, DriftKind.MISSING),
        (None, {"filename": "k", "size": 3}, DriftKind.EXTRA),
        (S3Object("k", 3, '"e"'), {"filename": "k", "size": 3, "etag": "e"}, None),
        (S3Object("k", 3, '"e"'), {"filename": "k", "size": 4, "etag": "e"}, DriftKind.STALE),
        (S3Object("k", 3, '"e"'), {"filename": "k", "size": 3, "etag": "f"}, DriftKind.STALE),
        (
            S3Object("k", 3, "e", None, "v2"),
            {"filename": "k", "size": 3, "etag": "e", "version_id": "v1"},
            DriftKind.STALE,
        ),
        # LIST knows no version id: a row's version id alone is not drift
        (
            S3Object("k", 3, "e"),
            {"filename": "k", "size": 3, "etag": "e", "version_id": "v1"},
            None,
        ),
    ],
)
def test_classify(obj: S3Object | None, row: dict[str, Any] | None, kind: DriftKind | None) -> None:
    assert classify(obj, row) is kind


# --- whole runs ---------------------------------------------------------------------------


def test_repairs_missing_extra_and_stale_with_exact_counts() -> None:
    # Given 100 tracked objects, then: 10 rows lost, 5 rows for keys that do not exist,
    # 3 rows with wrong sizes, and 4 objects put while notifications were off
    bucket, table = tracked(100)
    for i in range(10):
        del table.items[f"k{i:05d}"]
    for i in range(5):
        table.items[f"ghost{i}"] = {
            "filename": f"ghost{i}",
            "size": 1,
            "name_shard": "b/1",
            "event_time": "2026-01-01T00:00:00.000Z",
        }
    for i in range(50, 53):
        table.items[f"k{i:05d}"]["size"] = 999
    for i in range(4):
        bucket.put(f"new{i}", b"abc")
    # When reconcile runs
    summary = run(bucket, table)
    # Then the table's live rows are the bucket, and the counts are exact
    assert table.live() == bucket_state(bucket)
    assert summary.report() | {"seconds": 0} == {
        "listed": 104,
        "rows": 95,
        "missing": 14,
        "extra": 5,
        "stale": 3,
        "repaired": 22,
        "skipped": 0,
        "failed": 0,
        "seconds": 0,
        "complete": True,
        "dry_run": False,
        "resumed_after": None,
        "failures": {},
        "drifted_keys": {
            "missing": {
                "keys": [f"k{i:05d}" for i in range(10)] + [f"new{i}" for i in range(4)],
                "more": 0,
            },
            "extra": {"keys": [f"ghost{i}" for i in range(5)], "more": 0},
            "stale": {"keys": [f"k{i:05d}" for i in range(50, 53)], "more": 0},
        },
    }
    # And hidden rows are tombstones (never listed again), backfilled rows are marked
    assert table.items["ghost0"]["deleted"] is True and "name_shard" not in table.items["ghost0"]
    assert table.items["ghost0"]["event_name"] == HIDE_EVENT
    assert table.items["new0"]["event_name"] == BACKFILL_EVENT
    # And a second run finds nothing
    again = run(bucket, table)
    assert again.drift == 0 and again.repaired == 0


def test_dry_run_reports_and_changes_nothing() -> None:
    bucket, table = tracked(20)
    del table.items["k00003"]
    table.items["k00004"]["size"] = 1234
    before = {k: dict(v) for k, v in table.items.items()}
    summary = reconcile(bucket, table, None, checkpoints=(cps := FakeCheckpoints()))
    assert (summary.missing, summary.extra, summary.stale, summary.repaired) == (1, 0, 1, 0)
    assert summary.dry_run and table.items == before and table.writes == []
    assert bucket.heads == [] and cps.saves == 0


def test_prefix_limits_both_sides() -> None:
    bucket, table = tracked(10, prefix="a/")
    for i in range(10):
        bucket.put(f"b/{i}", b"1")  # untracked, outside the prefix
    summary = run(bucket, table, prefix="a/")
    assert (summary.listed, summary.missing) == (10, 0)
    assert "b/0" not in table.items


def test_backfill_needs_no_head_and_confirm_missing_heads_first() -> None:
    bucket = FakeBucket()
    bucket.put("a", b"1")
    table = FakeTable()
    run(bucket, table)
    assert bucket.heads == [] and table.items["a"]["event_name"] == BACKFILL_EVENT
    # With an inventory (possibly behind the bucket), a missing key is confirmed first:
    table2 = FakeTable()
    stale_listing = FakeBucket()
    stale_listing.put("gone", b"1")
    stale_listing.objects.pop("gone")  # listed by the inventory, deleted since

    class Inventory:
        def iter_objects(self, prefix: str, start_after: str | None) -> Iterator[S3Object]:
            yield S3Object("gone", 1, "e", "2026-01-01T00:00:00.000Z")

    fixer = repairer(stale_listing, table2, confirm_missing=True)
    summary = reconcile(Inventory(), table2, fixer)
    assert stale_listing.heads == ["gone"] and table2.items == {}
    assert (summary.missing, summary.skipped, summary.repaired) == (1, 1, 0)


def test_failed_writes_are_counted_and_named() -> None:
    bucket, table = tracked(3)
    del table.items["k00001"]
    table.fail_keys.add("k00001")
    summary = run(bucket, table)
    assert summary.failed == 1 and summary.failures == {"k00001": "the conditional write failed"}


# --- races: a repair never overwrites a newer event, never resurrects a deleted key --------


def test_backfill_loses_to_a_create_written_between_check_and_write() -> None:
    # Given an object the table does not know
    bucket, table = FakeBucket(), FakeTable()
    bucket.put("k", b"old")

    # When its overwrite is uploaded and ingested just before reconcile's insert lands
    def race(writes: Sequence[ConditionalWrite]) -> None:
        table.apply(bucket.put("k", b"newer body"))

    summary = run(bucket, table, before_write=race)
    # Then the event's row stands (the insert required "no item") and the race is counted
    assert table.live() == bucket_state(bucket) == {"k": (10, table.items["k"]["etag"])}
    assert table.items["k"]["event_name"] == "ObjectCreated:Put"
    assert (summary.missing, summary.repaired, summary.skipped) == (1, 0, 1)


def test_backfill_never_resurrects_a_key_deleted_after_it_was_listed() -> None:
    bucket, table = FakeBucket(), FakeTable()
    bucket.put("k", b"1")

    def race(writes: Sequence[ConditionalWrite]) -> None:
        table.apply(bucket.delete("k"))  # deleted after listing; its event ingested first

    summary = run(bucket, table, before_write=race)
    assert table.live() == {} == bucket_state(bucket)
    assert table.items["k"]["deleted"] is True and summary.repaired == 0


def test_a_delete_event_delivered_after_the_backfill_still_wins() -> None:
    bucket, table = FakeBucket(), FakeTable()
    bucket.put("k", b"1")
    delayed = []

    def race(writes: Sequence[ConditionalWrite]) -> None:
        delayed.append(bucket.delete("k"))  # deleted now, its event arrives late

    summary = run(bucket, table, before_write=race)
    assert summary.repaired == 1 and "k" in table.live()
    # When the delayed delete event is ingested after the backfill
    assert table.apply(delayed[0]) is True
    # Then the key is gone: the backfill's version is lower than any real event
    assert table.live() == {} == bucket_state(bucket)


def test_an_old_create_delivered_late_replaces_the_backfill_and_the_next_run_corrects_it() -> None:
    # A backfilled row has the lowest version: even the event of an earlier write, delivered
    # late, is a real event and replaces it. The next run sees the row stale and corrects it
    # (with that event's version, so the events still order everything after it).
    bucket, table = FakeBucket(), FakeTable()
    old_event = bucket.put("k", b"first")
    later = bucket.put("k", b"second!")  # both events delayed
    run(bucket, table)
    assert table.items["k"]["seq"] == "0" * 64
    assert table.apply(old_event) is True
    assert table.live() != bucket_state(bucket)
    summary = run(bucket, table)
    assert (summary.stale, summary.repaired) == (1, 1)
    assert table.live() == bucket_state(bucket)
    assert table.apply(later) is True and table.live() == bucket_state(bucket)


def test_extra_row_is_hidden_only_if_still_as_read() -> None:
    # Given a row whose object was deleted (the delete event was lost)
    bucket, table = tracked(1)
    bucket.objects.clear()

    # When the object is uploaded again (and ingested) between HeadObject (404) and the write
    def race(writes: Sequence[ConditionalWrite]) -> None:
        table.apply(bucket.put("k00000", b"reborn"))

    summary = run(bucket, table, before_write=race)
    # Then the new upload stays visible: hiding lost the compare-and-swap
    assert table.live() == bucket_state(bucket) and summary.skipped == 1


def test_hidden_row_loses_to_a_later_create_delivered_late() -> None:
    bucket, table = tracked(1)
    bucket.objects.clear()
    late = []

    def race(writes: Sequence[ConditionalWrite]) -> None:
        late.append(bucket.put("k00000", b"reborn"))

    summary = run(bucket, table, before_write=race)
    assert summary.repaired == 1 and table.live() == {}
    table.apply(late[0])
    assert table.live() == bucket_state(bucket)


def test_tombstone_of_an_object_that_exists_again_is_replaced_with_its_version() -> None:
    # Given a deleted key, re-uploaded while notifications were lost
    bucket, table = FakeBucket(), FakeTable()
    table.apply(bucket.put("k", b"1"))
    delete = bucket.delete("k")
    table.apply(delete)
    bucket.put("k", b"22")  # its create event is lost
    summary = run(bucket, table)
    assert table.live() == bucket_state(bucket) and summary.repaired == 1
    assert table.items["k"]["sequencer"] == delete.sequencer  # the tombstone's version
    # A redelivery of the (older) delete does not hide it again
    assert table.apply(delete) is False and "k" in table.live()
    # A newer delete does
    table.apply(bucket.delete("k"))
    assert table.live() == {}


def test_tombstone_with_the_object_deleted_again_after_listing_is_left_alone() -> None:
    bucket, table = FakeBucket(), FakeTable()
    table.apply(bucket.put("k", b"1"))
    table.apply(bucket.delete("k"))
    bucket.put("k", b"22")
    joined: list[str] = []

    class DeletingAfterListing:
        """The bucket as listed; deleted again right after the listing."""

        def iter_objects(self, prefix: str, start_after: str | None) -> Iterator[S3Object]:
            for obj in list(bucket.iter_objects(prefix, start_after)):
                joined.append(obj.key)
                yield obj
            bucket.objects.clear()  # deleted after it was listed (delete event lost)

    fixer = repairer(bucket, table)
    summary = reconcile(DeletingAfterListing(), table, fixer)
    assert joined == ["k"] and bucket.heads == ["k"]
    assert table.live() == {} and summary.skipped == 1  # never resurrected


def test_stale_row_correction_loses_to_an_overwrite_between_check_and_write() -> None:
    bucket, table = tracked(1)
    table.items["k00000"]["size"] = 12345

    def race(writes: Sequence[ConditionalWrite]) -> None:
        assert writes[0].row["size"] == 0
        table.apply(bucket.put("k00000", b"overwritten"))

    summary = run(bucket, table, before_write=race)
    assert table.live() == bucket_state(bucket) and summary.skipped == 1


def test_stale_row_corrected_then_an_older_duplicate_does_not_undo_it() -> None:
    bucket, table = FakeBucket(), FakeTable()
    event = bucket.put("k", b"abc")
    table.apply(event)
    table.items["k"]["size"] = 1  # damaged by hand
    run(bucket, table)
    assert table.live() == bucket_state(bucket)
    assert table.apply(event) is False  # redelivery of the same event: not newer


def test_drift_fixed_by_an_event_after_the_join_is_skipped_without_head() -> None:
    bucket, table = tracked(2)
    table.items["k00001"]["size"] = 7

    def fix_then_check(batch: Sequence[Drift], summary: Summary) -> None:
        table.items["k00001"]["size"] = bucket.objects["k00001"].size  # an event fixed it
        original(batch, summary)

    fixer = repairer(bucket, table)
    original = fixer.repair
    fixer.repair = fix_then_check  # type: ignore[method-assign]
    summary = reconcile(bucket, table, fixer)
    assert (summary.stale, summary.skipped, summary.repaired) == (1, 1, 0)
    assert bucket.heads == []


# --- checkpoints --------------------------------------------------------------------------


def damaged(n: int) -> tuple[FakeBucket, FakeTable]:
    bucket, table = tracked(n)
    for i in range(0, n, 7):
        del table.items[f"k{i:05d}"]
    for i in range(3, n, 11):
        if f"k{i:05d}" in table.items:
            table.items[f"k{i:05d}"]["etag"] = "wrong"
    for i in range(0, n, 13):
        table.items[f"k{i:05d}x"] = {"filename": f"k{i:05d}x", "size": 0, "name_shard": "b/0"}
    return bucket, table


def test_a_stopped_run_resumes_from_its_checkpoint_and_ends_like_an_uninterrupted_one() -> None:
    # Given the same damage twice
    ref_bucket, ref_table = damaged(300)
    bucket, table = damaged(300)
    reference = run(ref_bucket, ref_table)
    checkpoints = FakeCheckpoints()
    # When a run is stopped three times midway, and resumed each time
    parts = []
    for stop in (100, 50, 120):
        part = run(
            bucket,
            table,
            checkpoints=checkpoints,
            should_stop=stop_after(stop),
            checkpoint_every=40,
            batch_size=16,
        )
        assert not part.complete and checkpoints.saved[""].after == part.last_key
        parts.append(part)
    final = run(bucket, table, checkpoints=checkpoints, batch_size=16)
    # Then it finishes with the same table and the same (cumulative) counts
    assert final.complete and checkpoints.saved == {}
    assert final.resumed_after == parts[-1].last_key
    assert ref_table.live() == table.live() == bucket_state(bucket)
    assert set(ref_table.items) == set(table.items)
    for name in ("listed", "rows", "missing", "extra", "stale", "repaired", "skipped"):
        assert getattr(final, name) == getattr(reference, name), name
    # And each resumed run listed only from its checkpoint on
    assert sum(1 for _ in bucket.iter_objects("", parts[0].last_key)) < len(bucket.objects)


def test_restart_ignores_the_checkpoint() -> None:
    bucket, table = tracked(50)
    checkpoints = FakeCheckpoints()
    run(bucket, table, checkpoints=checkpoints, should_stop=stop_after(10))
    full = run(bucket, table, checkpoints=checkpoints, restart=True)
    assert full.listed == 50 and full.resumed_after is None


# --- memory -------------------------------------------------------------------------------


class Generated:
    """n objects and n rows, generated lazily (every 10th row stale, every 50th key missing)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def iter_objects(self, prefix: str, start_after: str | None) -> Iterator[S3Object]:
        for i in range(self.n):
            yield S3Object(f"key/{i:09d}", i % 1000, f"{i:032x}", "2026-01-01T00:00:00.000Z")

    def iter_live(self, prefix: str, start_after: str | None) -> Iterator[dict[str, Any]]:
        for i in range(self.n):
            if i % 50:
                size = i % 1000 + (1 if i % 10 == 0 else 0)
                yield {
                    "filename": f"key/{i:09d}",
                    "size": size,
                    "etag": f"{i:032x}",
                    "name_shard": "b/0",
                }


class NullRepair:
    def read_rows(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {}

    def write_conditional(self, writes: Sequence[ConditionalWrite]) -> dict[str, Any]:
        return {w.row["filename"]: "written" for w in writes}

    def head_many(self, keys: Sequence[str]) -> dict[str, S3Object | None]:
        return {}


def peak_bytes(n: int) -> int:
    source = Generated(n)
    sink = NullRepair()
    fixer = Repairer("b", sink, sink, TTL_S)
    tracemalloc.start()
    try:
        summary = reconcile(source, source, fixer)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.listed == n
    return peak


def test_memory_stays_flat_as_the_key_count_grows() -> None:
    # Ten times the keys, the same peak (within noise): nothing grows with the bucket
    small, large = peak_bytes(5_000), peak_bytes(50_000)
    assert large < small * 1.5 + 64_000, (small, large)


def test_a_head_error_is_a_failure_never_a_404() -> None:
    bucket, table = tracked(2)
    bucket.objects.pop("k00001")

    class Failing(FakeBucket):
        def head_many(self, keys: Sequence[str]) -> dict[str, S3Object | None]:
            return {}  # S3 answered nothing (e.g. 503 after retries)

    fixer = Repairer(bucket.name, table, Failing(), TTL_S)
    summary = reconcile(bucket, table, fixer)
    assert summary.failed == 1 and summary.failures == {"k00001": "HeadObject failed"}
    assert "k00001" in table.live()  # not hidden on an error


def test_rows_of_another_bucket_are_left_alone() -> None:
    bucket, table = tracked(3)
    table.items["other"] = {
        "filename": "other",
        "bucket": "elsewhere",
        "size": 1,
        "name_shard": "b/0",
    }
    fixer = repairer(bucket, table)
    summary = reconcile(bucket, table, fixer, bucket=bucket.name)
    assert (summary.rows, summary.extra) == (3, 0) and "deleted" not in table.items["other"]
