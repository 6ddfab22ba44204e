"""Folder totals: folders of a key, deltas of applied transitions, and ingest's counters under
forced interleavings (in-memory DynamoDB with DynamoDB's conditional semantics).

Interleavings are forced, never hoped for: `Gate` holds one invocation's row writes after
its read until the other invocation has finished (`tests.support.interleave`).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from pipeline.adapters.dynamo.errors import surely_not_applied
from pipeline.adapters.dynamo.totals import MAX_ATTEMPTS, DynamoTotalsWriter
from pipeline.adapters.dynamo.writer import DynamoFileStore
from pipeline.core.model import PARTITION_KEY, item_key
from pipeline.core.retry import Backoff, Deadline
from pipeline.core.settings import WriteMode
from pipeline.ingest.batch import IngestResult, ingest
from pipeline.totals.deltas import DeltaSum, Totals, counted, delta
from pipeline.totals.folders import MAX_DEPTH, ancestors, is_counted, is_folder
from pipeline.totals.ports import totals_key
from tests.support.faults import InMemoryDynamo, client_error
from tests.support.interleave import Gate
from tests.support.s3events import notification, s3_record, sqs_record

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


# --- ingest's counters under forced interleavings ----------------------------------------


def message(
    key: str, kind: str = "create", *, seq: str | None = OLD_SEQ, time: str = T0, size: int = 100
) -> dict[str, Any]:
    event = "ObjectCreated:Put" if kind == "create" else "ObjectRemoved:Delete"
    record = s3_record(key, event=event, size=size, sequencer=seq, event_time=time)
    return sqs_record(notification(record), f"{kind}-{seq or time}-{size}")


def totals_of(db: InMemoryDynamo, folder: str, bucket: str = BUCKET) -> Totals:
    item = db.tables.get(TABLE, {}).get(totals_key(bucket, folder))
    if item is None:
        return Totals()
    return Totals(int(item["files"]["N"]), int(item["bytes"]["N"]))


async def run(
    client: Any,
    *records: dict[str, Any],
    counters: Any = None,
    mode: WriteMode = WriteMode.CONDITIONAL,
) -> IngestResult:
    backoff = Backoff(0.001, 0.01, random.Random(1))
    store = DynamoFileStore(client, TABLE, concurrency=8, backoff=backoff)
    writer = DynamoTotalsWriter(counters or client, TABLE, backoff=backoff)
    return await ingest(
        list(records), store, Deadline(30), tombstone_ttl_s=TTL, now=1e9, totals=writer, mode=mode
    )


def race(
    before: list[dict[str, Any]],
    first: list[dict[str, Any]],
    second: list[dict[str, Any]],
    marker: str,
) -> InMemoryDynamo:
    """After `before` is applied, `first`'s invocation reads, then its writes mentioning
    `marker` wait until `second`'s invocation has run to the end (counters included)."""
    db = InMemoryDynamo()

    async def scenario() -> None:
        if before:
            await run(db, *before)
        gate = Gate(db, marker)
        held = asyncio.create_task(run(gate, *first, counters=db))
        await gate.reached.wait()
        await run(db, *second)
        gate.release.set()
        result = await held
        assert result.failed_message_ids == [] and result.totals_lost == 0

    asyncio.run(scenario())
    return db


def test_two_invocations_racing_on_one_create_count_it_once() -> None:
    # Given the same create delivered to two invocations; both read "no row"
    # When one writes while the other's INSERT is held, then the held one lands
    db = race([], [message("photos/a.jpg")], [message("photos/a.jpg")], OLD_SEQ)
    # Then the file is counted once in every folder above it
    for folder in ("", "photos/"):
        assert totals_of(db, folder) == Totals(1, 100)


@pytest.mark.parametrize("preexisting", [False, True], ids=["new-key", "existing-key"])
def test_two_invocations_racing_with_different_events_count_the_winner_only(
    preexisting: bool,
) -> None:
    """Over an existing row, the held newer write must not apply through the `seq < ?`
    shortcut from a row that is gone: it conflicts, re-reads and counts from what it replaces."""
    before = [message("a/k", seq="00", size=40)] if preexisting else []
    older = message("a/k", seq=OLD_SEQ, size=100)
    newer = message("a/k", seq=NEW_SEQ, time=T1, size=250)
    assert totals_of(race(before, [older], [newer], OLD_SEQ), "a/") == Totals(1, 250)
    assert totals_of(race(before, [newer], [older], NEW_SEQ), "a/") == Totals(1, 250)


def test_a_delete_racing_a_create_leaves_nothing_counted() -> None:
    create = message("a/k", seq=OLD_SEQ)
    delete = message("a/k", "delete", seq=NEW_SEQ, time=T1)
    assert totals_of(race([], [create], [delete], OLD_SEQ), "a/") == Totals()
    assert totals_of(race([], [delete], [create], NEW_SEQ), "a/") == Totals()


def test_writes_without_sequencers_racing_at_one_event_time_count_the_size_they_replace() -> None:
    """Rows without sequencers and with equal event times differ only by size: the
    compare-and-swap compares it, else the held write would apply from a size that is gone."""
    db = InMemoryDynamo()
    asyncio.run(run(db, message("a/k", seq=None, time=T1, size=180)))
    held = message("a/k", seq=None, time=T1, size=333)
    between = message("a/k", seq=None, time=T1, size=55)

    async def scenario() -> None:
        gate = Gate(db, "333")
        task = asyncio.create_task(run(gate, held, counters=db))
        await gate.reached.wait()
        await run(db, between)  # 180 -> 55: the same version attributes as before
        gate.release.set()
        await task

    asyncio.run(scenario())
    row = db.tables[TABLE][item_key(BUCKET, "a/k")]
    assert totals_of(db, "a/") == Totals(1, int(row["size"]["N"]))


def test_a_duplicate_delivery_adds_nothing() -> None:
    db = InMemoryDynamo()
    first = asyncio.run(run(db, message("a/b/k")))
    again = asyncio.run(run(db, message("a/b/k"), message("a/b/k")))
    assert (first.totals_updates, again.totals_updates, again.skipped) == (3, 0, 2)
    assert totals_of(db, "a/b/") == Totals(1, 100)


def test_an_overwrite_adds_only_the_size_difference_and_a_delete_removes_the_file() -> None:
    db = InMemoryDynamo()
    asyncio.run(run(db, message("a/k", size=100), message("a/j", size=1)))
    asyncio.run(run(db, message("a/k", seq=NEW_SEQ, time=T1, size=130)))
    assert totals_of(db, "a/") == Totals(2, 131)
    asyncio.run(run(db, message("a/j", "delete", seq=NEW_SEQ, time=T1)))
    assert totals_of(db, "a/") == Totals(1, 130) and totals_of(db, "") == Totals(1, 130)


def test_one_invocation_updates_each_folder_once_however_many_keys_changed() -> None:
    db = InMemoryDynamo()
    calls: list[str] = []

    class Counting:
        async def update_item(self, **kwargs: Any) -> Any:
            calls.append(kwargs["Key"][PARTITION_KEY]["S"])
            return await db.update_item(**kwargs)

    records = [message(f"bulk/f{i:03d}", size=10) for i in range(250)]
    result = asyncio.run(run(db, *records, counters=Counting()))
    assert sorted(calls) == [totals_key(BUCKET, ""), totals_key(BUCKET, "bulk/")]
    assert result.totals_updates == 2 and totals_of(db, "bulk/") == Totals(250, 2500)


def test_the_batch_mode_counts_from_the_row_it_read() -> None:
    db = InMemoryDynamo()
    asyncio.run(run(db, message("a/k", size=5), mode=WriteMode.BATCH))
    asyncio.run(run(db, message("a/k", seq=NEW_SEQ, time=T1, size=8), mode=WriteMode.BATCH))
    assert totals_of(db, "a/") == Totals(1, 8)


# --- counter updates that fail: retried only when surely not applied, else counted lost ---


class Flaky:
    """Fails the first `failures` counter updates with `error`, then passes them through."""

    def __init__(self, db: InMemoryDynamo, error: BaseException, failures: int) -> None:
        self.db, self.error, self.failures, self.sent = db, error, failures, 0

    async def update_item(self, **kwargs: Any) -> Any:
        self.sent += 1
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        return await self.db.update_item(**kwargs)


THROTTLED = client_error("ThrottlingException", "Rate exceeded", operation="UpdateItem")
NO_CONNECTION = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
CONNECT_TIMEOUT = ConnectTimeoutError(endpoint_url="http://127.0.0.1:1")
READ_TIMEOUT = ReadTimeoutError(endpoint_url="http://127.0.0.1:1")
SERVER_ERROR = client_error("InternalServerError", "oops", 500, "UpdateItem")


@pytest.mark.parametrize("error", [THROTTLED, NO_CONNECTION, CONNECT_TIMEOUT], ids=type)
def test_an_update_dynamodb_surely_did_not_apply_is_sent_again(error: BaseException) -> None:
    db = InMemoryDynamo()
    flaky = Flaky(db, error, failures=1)
    result = asyncio.run(run(db, message("k"), counters=flaky))
    assert (result.totals_updates, result.totals_lost, flaky.sent) == (1, 0, 2)
    assert totals_of(db, "") == Totals(1, 100)


@pytest.mark.parametrize("error", [READ_TIMEOUT, SERVER_ERROR], ids=["read-timeout", "5xx"])
def test_an_update_of_unknown_outcome_is_never_sent_again_and_counted_lost(
    error: BaseException,
) -> None:
    db = InMemoryDynamo()
    flaky = Flaky(db, error, failures=1)
    result = asyncio.run(run(db, message("k"), counters=flaky))
    # the row is written and the message succeeds: the row is the source of truth
    assert result.failed_message_ids == [] and result.written == 1
    assert (result.totals_updates, result.totals_lost, flaky.sent) == (0, 1, 1)
    assert totals_of(db, "") == Totals()


def test_a_throttled_update_is_retried_until_it_lands_however_many_times_it_is_throttled() -> None:
    # Given a counter throttled 3 x MAX_ATTEMPTS times in a row (a hot folder), time to spare
    db = InMemoryDynamo()
    flaky = Flaky(db, THROTTLED, failures=3 * MAX_ATTEMPTS)
    result = asyncio.run(run(db, message("k"), counters=flaky))
    # Then it lands once: throttling is "not now", never a lost delta while time remains
    assert (result.totals_updates, result.totals_lost) == (1, 0)
    assert flaky.sent == 3 * MAX_ATTEMPTS + 1 and result.throttles == 3 * MAX_ATTEMPTS
    assert totals_of(db, "") == Totals(1, 100)


def test_a_connection_never_made_is_retried_at_most_max_attempts_times() -> None:
    db = InMemoryDynamo()
    flaky = Flaky(db, NO_CONNECTION, failures=MAX_ATTEMPTS + 1)
    result = asyncio.run(run(db, message("k"), counters=flaky))
    assert (result.totals_updates, result.totals_lost, flaky.sent) == (0, 1, MAX_ATTEMPTS)
    assert result.throttles == 0


def test_which_errors_are_safe_to_retry() -> None:
    assert surely_not_applied(THROTTLED) and surely_not_applied(NO_CONNECTION)
    assert not surely_not_applied(READ_TIMEOUT) and not surely_not_applied(SERVER_ERROR)
    assert not surely_not_applied(TimeoutError())


class AppliedButTimedOut:
    """Applies the first BatchExecuteStatement, then raises as if the answer never came."""

    def __init__(self, db: InMemoryDynamo) -> None:
        self.db, self.timed_out = db, False

    async def batch_execute_statement(self, **kwargs: Any) -> Any:
        response = await self.db.batch_execute_statement(**kwargs)
        if not self.timed_out:
            self.timed_out = True
            raise READ_TIMEOUT
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def test_a_row_write_of_unknown_outcome_found_applied_is_counted_as_a_lost_delta() -> None:
    # Given a row write that DynamoDB applied but whose answer was lost (a read timeout)
    db = InMemoryDynamo()
    result = asyncio.run(run(AppliedButTimedOut(db), message("a/k"), counters=db))
    # Then the retry conflicts with it, the re-read finds the event stored: skipped, and the
    # delta that nobody added is counted as lost (reconcile repairs it), never as a failure
    assert result.failed_message_ids == [] and result.skipped == 1
    assert result.totals_lost == 1 and totals_of(db, "a/") == Totals()
