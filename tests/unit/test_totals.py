"""Folder totals: folders of a key, deltas of row transitions, and the stream consumer's
counters under every forced failure (in-memory stream and counters with DynamoDB's
UpdateItem semantics, `tests.support.stream_sim`; the real adapter and consumer logic).

Failures are forced at each counter write in turn, never hoped for: a 500 not applied, a
write applied whose answer is lost, a timeout, and the invocation killed before or after
a write lands (then the batch redelivered, as Lambda's stream event source does).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from pipeline.adapters.dynamo.stream_totals import DynamoWatermarkedCounters
from pipeline.core.retry import Backoff, Deadline
from pipeline.totals import stream
from pipeline.totals.deltas import DeltaSum, Totals, counted, delta
from pipeline.totals.folders import MAX_DEPTH, ancestors, is_counted, is_folder
from tests.support.stream_sim import CounterClient, Killed, StreamTable

TABLE = "files"
BUCKET = "serverless-event4"
TTL = 15 * 86_400
OLD_SEQ, NEW_SEQ = "0055AED6DCD90281E5", "0055AED6DCD90281F0"
T0, T1 = "2026-11-24T10:00:00.000Z", "2026-11-24T10:00:05.000Z"

# --- folders and deltas --------------------------------------------------------------------


def test_a_key_counts_in_the_bucket_and_every_folder_above_it() -> None:
    assert ancestors("a/b/c.txt") == ["", "a/", "a/b/"]
    assert ancestors("top.txt") == [""]
    assert ancestors("a/") == ["", "a/"]  # a console "folder" object is under its own prefix
    assert ancestors("a//b") == ["", "a/", "a//"]
    assert ancestors("/x") == ["", "/"]


def test_folders_deeper_than_the_limit_are_not_counted() -> None:
    deep = "d/" * (MAX_DEPTH + 5) + "f"
    folders = ancestors(deep)
    assert len(folders) == MAX_DEPTH + 1 and folders[-1] == "d/" * MAX_DEPTH
    assert is_counted("d/" * MAX_DEPTH) and not is_counted("d/" * (MAX_DEPTH + 1))
    assert is_folder("") and is_folder("a/") and not is_folder("a")


def test_a_delta_is_the_change_of_live_files_and_bytes() -> None:
    live = {"size": 10}
    bigger = {"size": 25}
    tomb = {"deleted": True}
    assert delta(None, live) == Totals(1, 10)
    assert delta(live, bigger) == Totals(0, 15)
    assert delta(bigger, tomb) == Totals(-1, -25)
    assert delta(tomb, live) == Totals(1, 10)
    assert delta(tomb, tomb) == Totals() and delta(None, tomb) == Totals()
    assert counted({"size": True}) == Totals(1, 0)  # not a size: counted as a file of 0 bytes


def test_sums_are_per_bucket_and_folder_and_zero_sums_cost_nothing() -> None:
    sums = DeltaSum()
    sums.add_transition("b", "a/x/1", None, {"size": 5})
    sums.add_transition("b", "a/y/2", None, {"size": 7})
    sums.add_transition("b", "a/y/2", {"size": 7}, {"deleted": True})
    sums.add_transition("c", "a/x/1", {"size": 5}, {"size": 5})  # same size: nothing
    assert dict(sums.items()) == {
        ("b", ""): Totals(1, 5),
        ("b", "a/"): Totals(1, 5),
        ("b", "a/x/"): Totals(1, 5),
    }
    assert sums.transitions == 4 and len(sums) == 3


# --- the stream consumer: exactly once under every forced failure ---------------------------

FAULTS = ("500", "lost", "timeout", "kill-before", "kill-after")
KEYS = [f"{top}/{mid}/f{i}" for top in ("a", "z") for mid in ("p", "q") for i in range(3)]
KEYS += ["root-file", "a/direct"]


LOOP = asyncio.new_event_loop()
"""One loop for the thousands of batches these tests run (a new loop per batch is slow)."""


async def _no_sleep(_: float) -> None:
    return None


def reference(records: list[dict[str, Any]]) -> dict[str, Totals]:
    """What the counters must hold after `records`: their deltas summed, the simplest way."""
    sums: dict[str, Totals] = {}
    for record in records:
        data = record["dynamodb"]
        if data["Keys"]["pk"]["S"].startswith("#"):
            continue
        if id(record) not in _FOLDED:  # the record is kept with it: its id is not reused
            folded = stream.fold([record]).folders.items()
            _FOLDED[id(record)] = (record, [(f, c.contributions[0].change) for (_, f), c in folded])
        for folder, change in _FOLDED[id(record)][1]:
            sums[folder] = sums.get(folder, Totals()) + change
    return {f: t for f, t in sums.items() if t}


_FOLDED: dict[int, tuple[dict[str, Any], list[tuple[str, Totals]]]] = {}


def consume(
    table: StreamTable,
    client: CounterClient,
    *,
    batch_size: int,
    adapter_retries: bool = True,
    check_each_batch: bool = True,
) -> int:
    """Lambda's stream event source over every shard, parents first: a batch from the
    checkpoint; a killed invocation is redelivered whole; a reported failure moves the
    checkpoint to just before it. Returns the invocations made."""
    invocations = 0
    expected: dict[str, Totals] = {}  # the reference, over the records done so far

    def done(records: list[dict[str, Any]]) -> None:
        for folder, change in reference(records).items():
            expected[folder] = expected.get(folder, Totals()) + change

    for shard, records in table.shards.items():  # created parent-first
        checkpoint = 0
        while checkpoint < len(records):
            batch = records[checkpoint : checkpoint + batch_size]
            counters = DynamoWatermarkedCounters(
                client,
                TABLE,
                Deadline(60 if adapter_retries else 0.0),
                backoff=Backoff(base_s=0.001, cap_s=0.001),
                sleep=_no_sleep,
            )
            invocations += 1
            assert invocations < 10_000, "no progress"
            try:
                result = LOOP.run_until_complete(stream.apply_batch(batch, shard, counters))
            except Killed:
                client.revive()  # a new execution environment; the batch comes again
                continue
            if result.failed_seq is None:
                checkpoint += len(batch)
                done(batch)
            else:
                numbers = [r["dynamodb"]["SequenceNumber"] for r in batch]
                at = numbers.index(result.failed_seq)
                checkpoint += at
                done(batch[:at])
            if check_each_batch and result.failed_seq is None:
                # other folders of a partly failed batch may be ahead until its retry is done
                assert client.totals() == {f: t for f, t in expected.items() if t}
    return invocations


def scenario(seed: int, *, partitions: int = 1, rotate: bool = False) -> StreamTable:
    rng = random.Random(seed)
    random.seed(seed)
    table = StreamTable(partitions=partitions)
    table.churn(rng, 40, KEYS)
    table.system_write("#totals/b/a/")
    table.system_write("#bucket/b")
    if rotate:
        table.rotate()
    table.churn(rng, 40, KEYS)
    return table


def count_writes(table: StreamTable, batch_size: int) -> int:
    client = CounterClient()
    consume(table, client, batch_size=batch_size)
    return client.calls


def test_the_counters_equal_the_rows_after_a_clean_run() -> None:
    table = scenario(1)
    client = CounterClient()
    consume(table, client, batch_size=7)
    assert client.totals() == table.truth() and not client.negative_seen


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(
    "adapter_retries", [True, False], ids=["adapter-retries", "lambda-retries"]
)
def test_a_fault_at_every_counter_write_leaves_the_totals_exact(
    fault: str, adapter_retries: bool
) -> None:
    """Every counter write of the run, one at a time, fails in `fault`'s way; whether the
    adapter retries it or the batch is reported failed (Lambda retries from that record),
    the counters equal the rows in the end, after every batch, and never go negative."""
    table = scenario(2)
    writes = count_writes(table, batch_size=9)
    assert writes > 20
    for n in range(writes):
        client = CounterClient(faults={n: fault})
        consume(table, client, batch_size=9, adapter_retries=adapter_retries)
        assert client.totals() == table.truth(), f"fault {fault} at write {n}"
        assert not client.negative_seen


def test_many_faults_at_once_and_refusals_without_the_item_still_add_up() -> None:
    table = scenario(3)
    writes = count_writes(table, batch_size=5)
    rng = random.Random(3)
    for attempt in range(30):
        faults = {n: rng.choice(FAULTS) for n in rng.sample(range(writes * 2), writes // 2)}
        client = CounterClient(faults=faults, refusal_carries_item=attempt % 2 == 0)
        consume(table, client, batch_size=rng.randint(1, 12), adapter_retries=attempt % 3 > 0)
        assert client.totals() == table.truth() and not client.negative_seen


def test_replayed_and_overlapping_batches_add_nothing_twice() -> None:
    """Batches redelivered over ranges already applied (a retry, a bisected half, a range
    overlapping the last one) only add what is new."""
    table = scenario(4)
    ((shard, records),) = table.shards.items()
    client = CounterClient()
    rng = random.Random(4)

    def run(batch: list[dict[str, Any]]) -> None:
        counters = DynamoWatermarkedCounters(client, TABLE, Deadline(60), sleep=_no_sleep)
        result = asyncio.run(stream.apply_batch(batch, shard, counters))
        assert result.failed_seq is None

    end = 0
    while end < len(records):
        new_end = min(len(records), end + rng.randint(1, 10))
        start = max(0, end - rng.randint(0, 8))  # overlaps what was applied
        run(records[start:new_end])
        run(records[start:new_end])  # and the same batch again
        end = new_end
        assert client.totals() == reference(records[:end])
    assert client.totals() == table.truth() and not client.negative_seen


def test_shards_rotating_keep_a_watermark_each_and_stay_exact() -> None:
    """AWS rotates a table's shards (DynamoDB Local keeps one): changes of one item move
    from the parent shard to its child; parents are read first, as Lambda does."""
    table = scenario(5, partitions=3, rotate=True)
    assert len(table.shards) == 6
    client = CounterClient()
    consume(table, client, batch_size=4)
    assert client.totals() == table.truth()
    marks = {name for item in client.items.values() for name in item if name.startswith("wm:")}
    assert len(marks) > 3  # one watermark per shard that changed a counter


def test_system_items_and_unchanged_sizes_write_no_counter() -> None:
    table = StreamTable()
    table.system_write("#totals/b/")
    table.system_write("#bucket/other")
    table.put("a/x", 5)
    table.put("a/x", 5)  # same size: a change of nothing
    batch = stream.fold(next(iter(table.shards.values())))
    assert batch.ignored == 2 and batch.file_changes == 2
    assert sorted(batch.folders) == [("b", ""), ("b", "a/")]
    assert all(len(c.contributions) == 1 for c in batch.folders.values())


def test_a_stream_without_both_images_or_a_shard_fails_clearly() -> None:
    record = {
        "dynamodb": {
            "Keys": {"pk": {"S": "b/x"}},
            "SequenceNumber": "1" * 21,
            "StreamViewType": "KEYS_ONLY",
        }
    }
    with pytest.raises(stream.StreamRecordError, match="NEW_AND_OLD_IMAGES"):
        stream.fold([record])
    with pytest.raises(stream.StreamRecordError, match="TumblingWindowInSeconds"):
        stream.shard_of({"Records": [record]})


def test_sequence_numbers_compare_as_numbers_whatever_their_length() -> None:
    assert stream.padded("99" + "0" * 19) < stream.padded("1" + "0" * 21)
    with pytest.raises(stream.StreamRecordError):
        stream.padded("12a")


def test_watermarks_older_than_the_stream_retention_are_pruned() -> None:
    client = CounterClient()
    now = [1_000_000.0]
    table = StreamTable()
    table.put("a/x", 1)
    table.rotate()
    table.put("a/y", 2)
    (old_shard, old), (new_shard, new) = table.shards.items()

    def run(shard: str, batch: list[dict[str, Any]]) -> DynamoWatermarkedCounters:
        counters = DynamoWatermarkedCounters(
            client, TABLE, Deadline(60), sleep=_no_sleep, clock=lambda: now[0]
        )
        asyncio.run(stream.apply_batch(batch, shard, counters))
        return counters

    run(old_shard, old)
    now[0] += 27 * 3600
    counters = run(new_shard, new)
    item = client.items["#totals/b/a/"]
    assert f"wm:{new_shard}" in item and f"wm:{old_shard}" not in item
    assert counters.pruned == 2  # on "" and "a/"
    assert client.totals() == table.truth()
