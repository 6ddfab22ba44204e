"""Race-free ingest: conditional writes, forced interleavings, outages (in-memory DynamoDB).

Interleavings are forced, never hoped for: a client wrapper holds one invocation's writes
at a gate (`asyncio.Event`) until the other invocation has finished, so the older event's
write always reaches DynamoDB after the newer event's row is stored.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from pipeline.adapters.dynamo.statements import insert_statement, write_statement
from pipeline.adapters.dynamo.writer import ConditionalWrite, DynamoFileStore, WriteOutcome
from pipeline.core.model import LOWEST_SEQ, SEQ, SEQ_WIDTH, item_key, name_shard_of
from pipeline.core.retry import Backoff, Deadline, OpStats
from pipeline.core.settings import WriteMode
from pipeline.ingest.batch import MAX_ROUNDS, IngestResult, ingest
from tests.support.faults import InMemoryDynamo, StrictFaultyClient
from tests.support.interleave import Gate
from tests.support.s3events import notification, s3_record, sqs_record

TABLE = "files"
BUCKET = "serverless-event4"
"""The bucket of `message`'s events (`tests.support.s3events.s3_record`'s default)."""


def pk(key: str, bucket: str = BUCKET) -> str:
    return item_key(bucket, key)


TTL = 15 * 86_400
OLD_SEQ, NEW_SEQ = "0055AED6DCD90281E5", "0055AED6DCD90281F0"
OLDEST = "2026-11-24T09:00:00.000Z"
OLD_TIME, NEW_TIME = "2026-11-24T10:00:00.000Z", "2026-11-24T10:00:05.000Z"


def store_for(client: Any, **kwargs: Any) -> DynamoFileStore:
    return DynamoFileStore(
        client, TABLE, concurrency=8, backoff=Backoff(0.001, 0.01, random.Random(1)), **kwargs
    )


async def apply(
    client: Any, *records: dict[str, Any], deadline: Deadline | None = None, **kwargs: Any
) -> IngestResult:
    return await ingest(
        list(records),
        store_for(client, **kwargs),
        deadline or Deadline(30),
        tombstone_ttl_s=TTL,
        now=1e9,
    )


def plain(db: InMemoryDynamo, key: str, bucket: str = BUCKET) -> dict[str, Any] | None:
    item = db.tables.get(TABLE, {}).get(pk(key, bucket))
    if item is None:
        return None
    return {name: next(iter(value.values())) for name, value in item.items()}


def message(
    key: str,
    kind: str,
    *,
    seq: str | None,
    time: str,
    size: int = 1,
    bucket: str = BUCKET,
) -> dict[str, Any]:
    event = "ObjectCreated:Put" if kind == "create" else "ObjectRemoved:Delete"
    record = s3_record(key, event=event, size=size, sequencer=seq, event_time=time, bucket=bucket)
    suffix = "" if bucket == BUCKET else f"-{bucket}"
    return sqs_record(notification(record), f"{kind}-{seq or time}{suffix}")


# --- forced interleavings ----------------------------------------------------------------

CASES = [("create", "create"), ("create", "delete"), ("delete", "create")]


@pytest.mark.parametrize(("older_kind", "newer_kind"), CASES, ids=["-vs-".join(c) for c in CASES])
@pytest.mark.parametrize("ordering", ["sequencer", "event_time"])
@pytest.mark.parametrize("preexisting", [False, True], ids=["new-key", "existing-key"])
def test_the_older_invocation_reads_first_and_writes_last_and_loses(
    older_kind: str, newer_kind: str, ordering: str, preexisting: bool
) -> None:
    db = InMemoryDynamo()
    use_seq = ordering == "sequencer"
    if preexisting:  # an even older row is stored before both: the writes are UPDATEs
        asyncio.run(apply(db, message("k", "create", seq="00" if use_seq else None, time=OLDEST)))
    older = message("k", older_kind, seq=OLD_SEQ if use_seq else None, time=OLD_TIME, size=111)
    newer = message("k", newer_kind, seq=NEW_SEQ if use_seq else None, time=NEW_TIME, size=222)
    gate = Gate(db, OLD_SEQ if use_seq else OLD_TIME)

    async def scenario() -> tuple[IngestResult, IngestResult]:
        # Given the older event's invocation has read the key (nothing newer stored)
        # and its write is held back
        first = asyncio.create_task(apply(gate, older))
        await gate.reached.wait()
        # When the newer event's invocation runs to the end, then the older write lands
        second = await apply(db, newer)
        gate.release.set()
        return await first, second

    first, second = asyncio.run(scenario())
    # Then the newer event's row stays, nothing is reported failed, the stale one is skipped
    row = plain(db, "k")
    assert row is not None
    assert row["event_time"] == NEW_TIME
    assert bool(row.get("deleted")) is (newer_kind == "delete")
    if newer_kind == "create":
        assert row["size"] == "222"
    assert (first.failed_message_ids, second.failed_message_ids) == ([], [])
    assert (first.written + first.deleted, first.skipped, first.conflicts) == (0, 1, 1)
    assert second.written + second.deleted == 1
    assert gate.held == 1


@pytest.mark.parametrize(("older_kind", "newer_kind"), CASES, ids=["-vs-".join(c) for c in CASES])
@pytest.mark.parametrize("ordering", ["sequencer", "event_time"])
@pytest.mark.parametrize("preexisting", [False, True], ids=["new-key", "existing-key"])
def test_the_newer_invocation_reads_first_and_writes_last_and_wins(
    older_kind: str, newer_kind: str, ordering: str, preexisting: bool
) -> None:
    db = InMemoryDynamo()
    use_seq = ordering == "sequencer"
    if preexisting:  # an even older row is stored before both
        asyncio.run(apply(db, message("k", "create", seq="00" if use_seq else None, time=OLDEST)))
    older = message("k", older_kind, seq=OLD_SEQ if use_seq else None, time=OLD_TIME)
    newer = message("k", newer_kind, seq=NEW_SEQ if use_seq else None, time=NEW_TIME, size=9)
    gate = Gate(db, NEW_SEQ if use_seq else NEW_TIME)

    async def scenario() -> tuple[IngestResult, IngestResult]:
        first = asyncio.create_task(apply(gate, newer))
        await gate.reached.wait()
        second = await apply(db, older)  # the older one lands in between
        gate.release.set()
        return await first, second

    first, second = asyncio.run(scenario())
    row = plain(db, "k")
    assert row is not None and row["event_time"] == NEW_TIME
    assert bool(row.get("deleted")) is (newer_kind == "delete")
    assert (first.failed_message_ids, second.failed_message_ids) == ([], [])
    assert (first.written + first.deleted, second.written + second.deleted) == (1, 1)
    # Over an existing row with sequencers, the UPDATE's own condition ("seq" < ?) admits
    # the newer event at once; otherwise (INSERT, or compare-and-swap on eventTime-ordered
    # rows) it conflicts once and the re-read decides again.
    assert first.conflicts == (0 if use_seq and preexisting else 1)


# --- every combination of event and stored row -------------------------------------------

LEGACY_SEQ_ROW = {
    "sequencer": {"S": "0055AED6DCD90281EA"},
    "event_time": {"S": "2026-11-24T10:00:02.000Z"},
}
STORED: dict[str, dict[str, Any] | None] = {
    "nothing": None,
    "new-row": {
        "sequencer": {"S": "0055AED6DCD90281EA"},
        SEQ: {"S": "0055AED6DCD90281EA".ljust(SEQ_WIDTH, "0")},
        "event_time": {"S": "2026-11-24T10:00:02.000Z"},
        "size": {"N": "5"},
    },
    "new-tombstone": {
        "sequencer": {"S": "0055AED6DCD90281EA"},
        SEQ: {"S": "0055AED6DCD90281EA".ljust(SEQ_WIDTH, "0")},
        "event_time": {"S": "2026-11-24T10:00:02.000Z"},
        "deleted": {"BOOL": True},
        "expires_at": {"N": "1"},
    },
    "legacy-row": {**LEGACY_SEQ_ROW, "size": {"N": "5"}},
    "legacy-tombstone": {**LEGACY_SEQ_ROW, "deleted": {"BOOL": True}},
    "no-sequencer-row": {"event_time": {"S": "2026-11-24T10:00:02.000Z"}, "size": {"N": "5"}},
    "backfilled": {SEQ: {"S": LOWEST_SEQ}, "event_time": {"S": OLD_TIME}, "size": {"N": "5"}},
}
# (sequencer, eventTime) of the incoming event, and which stored rows it must replace
EVENTS = {
    "later-seq": ("0055AED6DCD90281F0", "2026-11-24T10:00:01.000Z"),
    "earlier-seq": ("0055AED6DCD90281E0", "2026-11-24T10:00:09.000Z"),
    "no-seq-later": (None, "2026-11-24T10:00:09.000Z"),
    "no-seq-earlier": (None, "2026-11-24T10:00:01.000Z"),
}
WINS = {
    # stored row kind: event kinds that replace it (sequencer when both have one, else time)
    "nothing": set(EVENTS),
    "new-row": {"later-seq", "no-seq-later"},
    "new-tombstone": {"later-seq", "no-seq-later"},
    "legacy-row": {"later-seq", "no-seq-later"},
    "legacy-tombstone": {"later-seq", "no-seq-later"},
    "no-sequencer-row": {"earlier-seq", "no-seq-later"},  # both by eventTime
    "backfilled": set(EVENTS),  # any sequencer beats LOWEST_SEQ; eventTimes are later
}


@pytest.mark.parametrize("kind", ["create", "delete"])
@pytest.mark.parametrize("event_name", sorted(EVENTS))
@pytest.mark.parametrize("stored_name", sorted(STORED))
def test_every_event_against_every_stored_row(stored_name: str, event_name: str, kind: str) -> None:
    # Given a stored row of each shape (or none)
    db = InMemoryDynamo()
    stored = STORED[stored_name]
    if stored is not None:
        db.tables[TABLE] = {pk("k"): {**identity("k"), **stored}}
    seq, time = EVENTS[event_name]
    # When an event arrives
    result = asyncio.run(apply(db, message("k", kind, seq=seq, time=time, size=77)))
    # Then it replaces the row exactly when it is newer, and is skipped (not failed) otherwise
    row = plain(db, "k")
    assert row is not None
    assert result.failed_message_ids == []
    if event_name in WINS[stored_name]:
        assert row["event_time"] == time
        assert row.get(SEQ) == (seq.ljust(SEQ_WIDTH, "0") if seq else None)
        assert row.get("sequencer") == seq
        assert bool(row.get("deleted")) is (kind == "delete")
        assert ("size" in row, "name_shard" in row) == ((kind == "create"),) * 2
        assert ("expires_at" in row) is (kind == "delete")
        assert (result.written + result.deleted, result.skipped) == (1, 0)
    else:
        assert row == plain_of(stored)
        assert (result.written + result.deleted, result.skipped) == (0, 1)


def identity(key: str) -> dict[str, Any]:
    """The key attributes of the item of `key` in `BUCKET` (attribute-value JSON)."""
    return {"pk": {"S": pk(key)}, "filename": {"S": key}, "bucket": {"S": BUCKET}}


def plain_of(stored: dict[str, Any] | None) -> dict[str, Any]:
    item = {**identity("k"), **(stored or {})}
    return {name: next(iter(value.values())) for name, value in item.items()}


def test_duplicate_deliveries_are_skipped_not_failed() -> None:
    db = InMemoryDynamo()
    put = message("k", "create", seq=OLD_SEQ, time=OLD_TIME)
    assert asyncio.run(apply(db, put)).written == 1
    again = asyncio.run(apply(db, put))
    assert (again.written, again.skipped, again.failed_message_ids) == (0, 1, [])


# --- the item changing between read and write --------------------------------------------


class Meddler:
    """Runs `meddle(db)` after each BatchGetItem: the stored item changes under the writer."""

    def __init__(self, inner: InMemoryDynamo, meddle: Callable[[InMemoryDynamo, int], None]):
        self.inner, self.meddle, self.reads = inner, meddle, 0

    async def batch_get_item(self, **kwargs: Any) -> Any:
        response = await self.inner.batch_get_item(**kwargs)
        self.reads += 1
        self.meddle(self.inner, self.reads)
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_tombstone_expiring_between_read_and_write_is_recreated() -> None:
    # Given a tombstone that DynamoDB's TTL deletes right after the writer read it
    db = InMemoryDynamo()
    asyncio.run(apply(db, message("k", "delete", seq=OLD_SEQ, time=OLD_TIME)))

    def expire(inner: InMemoryDynamo, reads: int) -> None:
        if reads == 1:
            del inner.tables[TABLE][pk("k")]

    client = Meddler(db, expire)
    # When a newer create is applied
    result = asyncio.run(apply(client, message("k", "create", seq=NEW_SEQ, time=NEW_TIME)))
    # Then the UPDATE finds no item (conflict), the re-read sees none, and an INSERT creates it
    assert (result.written, result.conflicts, result.failed_message_ids) == (1, 1, [])
    row = plain(db, "k")
    assert row is not None and row["sequencer"] == NEW_SEQ and "deleted" not in row
    assert client.reads == 2


def test_a_key_that_keeps_changing_fails_after_the_last_round() -> None:
    # Given a key rewritten (by "another invocation") after every read, always older
    db = InMemoryDynamo()

    def rewrite(inner: InMemoryDynamo, reads: int) -> None:
        inner.tables.setdefault(TABLE, {})[pk("hot")] = {
            **identity("hot"),
            "event_time": {"S": f"2026-11-24T09:00:{reads:02d}.000Z"},
        }

    client = Meddler(db, rewrite)
    # When an event without a sequencer (compare-and-swap only) is applied
    record = message("hot", "create", seq=None, time=NEW_TIME)
    result = asyncio.run(apply(client, record))
    # Then after MAX_ROUNDS conflicts its message fails (SQS redelivers it) with a reason
    assert result.failed_message_ids == [record["messageId"]]
    assert result.conflicts == MAX_ROUNDS == client.reads


def test_per_statement_throttling_is_retried_and_validation_fails_alone() -> None:
    client = StrictFaultyClient(InMemoryDynamo(), unprocessed_rate=0.3, seed=5)
    records = [message(f"f{i}", "create", seq=None, time=OLD_TIME) for i in range(200)]
    for i, record in enumerate(records):
        record["messageId"] = f"m{i}"
    records.append(sqs_record(notification(s3_record("huge", etag="e" * 500_000)), "huge"))
    result = asyncio.run(apply(client, *records))
    assert result.failed_message_ids == ["huge"]
    assert client.unprocessed > 0 and result.retries > 0
    assert len(client.inner.tables[TABLE]) == 200


OTHER = "other-bucket"
"""A second bucket tracked in the same table."""


@pytest.mark.parametrize(("older_kind", "newer_kind"), CASES, ids=["-vs-".join(c) for c in CASES])
@pytest.mark.parametrize("preexisting", [False, True], ids=["new-key", "existing-key"])
def test_the_same_key_in_another_bucket_never_beats_or_blocks_this_buckets_write(
    older_kind: str, newer_kind: str, preexisting: bool
) -> None:
    # Given the older event (bucket A) has been read and its write is held back
    db = InMemoryDynamo()
    if preexisting:  # both buckets already hold an even older row of the key
        for bucket in (BUCKET, OTHER):
            asyncio.run(apply(db, message("k", "create", seq="00", time=OLDEST, bucket=bucket)))
    older = message("k", older_kind, seq=OLD_SEQ, time=OLD_TIME, size=111)
    newer = message("k", newer_kind, seq=NEW_SEQ, time=NEW_TIME, size=222, bucket=OTHER)
    gate = Gate(db, OLD_SEQ)

    async def scenario() -> tuple[IngestResult, IngestResult]:
        first = asyncio.create_task(apply(gate, older))
        await gate.reached.wait()
        # When a newer event for the same key in bucket B is applied in between
        second = await apply(db, newer)
        gate.release.set()
        return await first, second

    first, second = asyncio.run(scenario())
    # Then they are two rows: A's holds A's (older) event, written without a conflict,
    # and B's holds B's
    mine, theirs = plain(db, "k"), plain(db, "k", OTHER)
    assert mine is not None and theirs is not None
    assert (mine["bucket"], mine["event_time"], mine["sequencer"]) == (BUCKET, OLD_TIME, OLD_SEQ)
    assert bool(mine.get("deleted")) is (older_kind == "delete")
    assert (theirs["bucket"], theirs["event_time"]) == (OTHER, NEW_TIME)
    assert bool(theirs.get("deleted")) is (newer_kind == "delete")
    assert (first.written + first.deleted, first.skipped, first.conflicts) == (1, 0, 0)
    assert (second.written + second.deleted, second.conflicts) == (1, 0)
    assert set(db.tables[TABLE]) == {pk("k"), pk("k", OTHER)}
    assert gate.held == 1


@pytest.mark.parametrize("mode", list(WriteMode), ids=[m.value for m in WriteMode])
def test_the_same_key_in_two_buckets_in_one_batch_is_two_rows(mode: WriteMode) -> None:
    # Given one batch with the key in two buckets: a create in A, a delete (older) in B,
    # and a stale duplicate of A's create
    db = InMemoryDynamo()
    records = [
        message("k", "create", seq=NEW_SEQ, time=NEW_TIME, size=5),
        message("k", "delete", seq=OLD_SEQ, time=OLD_TIME, bucket=OTHER),
        message("k", "create", seq="00", time=OLDEST, size=1),
    ]
    # When it is applied
    result = asyncio.run(
        ingest(records, store_for(db), Deadline(30), tombstone_ttl_s=TTL, now=1e9, mode=mode)
    )
    # Then each bucket's row holds its own newest event: B's older delete did not lose to A's
    mine, theirs = plain(db, "k"), plain(db, "k", OTHER)
    assert mine is not None and theirs is not None
    assert (mine["bucket"], mine["size"]) == (BUCKET, "5") and "deleted" not in mine
    assert mine["name_shard"] == name_shard_of(BUCKET, "k")
    assert (theirs["bucket"], theirs["deleted"], theirs["filename"]) == (OTHER, True, "k")
    assert "name_shard" not in theirs
    assert (result.written, result.deleted, result.skipped) == (1, 1, 1)
    assert result.failed_message_ids == []


# --- the API reconcile uses ----------------------------------------------------------------


def test_write_conditional_is_a_compare_and_swap() -> None:
    db = InMemoryDynamo()
    store = store_for(db)
    stats = OpStats()
    deadline = Deadline(10)
    ident = {"pk": "b/a", "filename": "a", "bucket": "b"}
    row_a = {**ident, "size": 1, "event_time": OLD_TIME, SEQ: LOWEST_SEQ}

    async def scenario() -> list[dict[str, WriteOutcome]]:
        first = await store.write_conditional([ConditionalWrite(row_a, None)], deadline, stats)
        again = await store.write_conditional([ConditionalWrite(row_a, None)], deadline, stats)
        current = (await store.read_rows(["b/a", "b/nope"], deadline, stats))["b/a"]
        stale = {**current, "event_time": NEW_TIME}
        row_b = {
            **ident,
            "deleted": True,
            "expires_at": 5,
            "event_time": NEW_TIME,
        }
        lost = await store.write_conditional([ConditionalWrite(row_b, stale)], deadline, stats)
        won = await store.write_conditional([ConditionalWrite(row_b, current)], deadline, stats)
        return [first, again, lost, won]

    first, again, lost, won = asyncio.run(scenario())
    assert first == {"b/a": WriteOutcome.WRITTEN}
    assert again == {"b/a": WriteOutcome.CONFLICT}  # expected=None: only if no item exists
    assert lost == {"b/a": WriteOutcome.CONFLICT}  # the stored version is not the expected one
    assert won == {"b/a": WriteOutcome.WRITTEN}
    # the whole row was replaced: attributes the new row lacks were removed
    assert plain(db, "a", "b") == {
        "pk": "b/a",
        "filename": "a",
        "bucket": "b",
        "deleted": True,
        "expires_at": "5",
        "event_time": NEW_TIME,
    }
    assert stats.failures == {} and stats.conflicts == 2


def test_statements_carry_values_only_as_parameters() -> None:
    evil = "a' OR 'x'='x\" --"
    write = ConditionalWrite(
        {"pk": f"{evil}/{evil}", "filename": evil, "bucket": evil, "size": 1}, {"event_time": evil}
    )
    statement = write_statement(TABLE, write)
    assert evil not in statement["Statement"]
    assert {"S": evil} in statement["Parameters"]
    with pytest.raises(ValueError, match="cannot be written"):
        insert_statement(TABLE, ("filename", "bad'name"))


# --- connection errors and timeouts --------------------------------------------------------


class FakeClock:
    """Monotonic time that only moves when someone sleeps (or a call takes time)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


ERRORS: list[Callable[[], Exception]] = [
    lambda: EndpointConnectionError(endpoint_url="https://dynamodb.ap-south-1.amazonaws.com"),
    lambda: ConnectTimeoutError(endpoint_url="https://dynamodb.ap-south-1.amazonaws.com"),
    lambda: ReadTimeoutError(endpoint_url="https://dynamodb.ap-south-1.amazonaws.com"),
    lambda: ConnectionClosedError(endpoint_url="https://dynamodb.ap-south-1.amazonaws.com"),
    lambda: ConnectionResetError(104, "Connection reset by peer"),
]


class Outage:
    """Every call fails with a network error until `clock` passes `until`; each failed call
    costs `cost_s` of (fake) time, like a connect timeout would."""

    def __init__(self, inner: Any, clock: FakeClock, until: float, cost_s: float = 0.5) -> None:
        self.inner, self.clock, self.until, self.cost_s = inner, clock, until, cost_s
        self.failed = 0

    def _maybe_fail(self) -> None:
        if self.clock.now < self.until:
            self.failed += 1
            self.clock.now += self.cost_s
            raise ERRORS[self.failed % len(ERRORS)]()

    async def batch_get_item(self, **kwargs: Any) -> Any:
        self._maybe_fail()
        return await self.inner.batch_get_item(**kwargs)

    async def batch_execute_statement(self, **kwargs: Any) -> Any:
        self._maybe_fail()
        return await self.inner.batch_execute_statement(**kwargs)


def test_a_20_second_outage_inside_the_budget_loses_nothing_and_fails_nothing() -> None:
    # Given DynamoDB unreachable for the first 20 s of an invocation with a 58 s budget
    clock = FakeClock()
    db = InMemoryDynamo()
    client = Outage(db, clock, until=20.0)
    records = [message(f"f{i}", "create", seq=f"{i + 1:04X}", time=OLD_TIME) for i in range(300)]
    for i, record in enumerate(records):
        record["messageId"] = f"m{i}"
    # When the batch is ingested (backoff capped at 2 s, as deployed)
    result = asyncio.run(
        ingest(
            records,
            DynamoFileStore(
                client, TABLE, concurrency=8, backoff=Backoff(0.025, 2.0), sleep=clock.sleep
            ),
            Deadline(58, clock=clock),
            tombstone_ttl_s=TTL,
            now=1e9,
        )
    )
    # Then every error type was met, every record is written and no message failed
    assert client.failed >= len(ERRORS)
    assert clock.now >= 20.0
    assert result.failed_message_ids == []
    assert result.written == 300
    assert len(db.tables[TABLE]) == 300


def test_an_outage_longer_than_the_budget_fails_the_messages_without_raising() -> None:
    clock = FakeClock()
    client = Outage(InMemoryDynamo(), clock, until=1e9)
    records = [message(f"f{i}", "create", seq=None, time=OLD_TIME) for i in range(3)]
    for i, record in enumerate(records):
        record["messageId"] = f"m{i}"
    result = asyncio.run(
        ingest(
            records,
            DynamoFileStore(client, TABLE, backoff=Backoff(0.025, 2.0), sleep=clock.sleep),
            Deadline(58, clock=clock),
            tombstone_ttl_s=TTL,
            now=1e9,
        )
    )
    assert result.failed_message_ids == ["m0", "m1", "m2"]
    assert clock.now <= 58 + 0.5  # no attempt started after the deadline


def test_a_stored_row_with_values_of_unexpected_types_fails_alone_or_is_repaired() -> None:
    # Given rows someone wrote by hand: a list as `deleted`, a number as `event_time`
    db = InMemoryDynamo()
    db.tables[TABLE] = {
        pk("odd"): {**identity("odd"), "deleted": {"L": []}, "event_time": {"S": OLD_TIME}},
        pk("num"): {**identity("num"), "event_time": {"N": "5"}},
    }
    records = [
        message("odd", "create", seq=None, time=NEW_TIME),
        message("ok", "create", seq=None, time=NEW_TIME),
    ]
    records.append(message("num", "create", seq=None, time=NEW_TIME))
    for i, record in enumerate(records):
        record["messageId"] = f"m{i}"
    # When events for them arrive with a good one
    result = asyncio.run(apply(db, *records))
    # Then the batch is not lost: the row that cannot be compared exactly fails alone,
    # the one with a numeric time is repaired, the good one is written
    assert result.failed_message_ids == ["m0"]
    assert plain(db, "ok") is not None
    assert plain(db, "num") is not None and plain(db, "num")["event_time"] == NEW_TIME


class RefusesOne:
    """Answers a per-statement ValidationError for `key` (the rest of the call is applied)."""

    def __init__(self, inner: InMemoryDynamo, key: str) -> None:
        self.inner, self.key = inner, key

    async def batch_execute_statement(self, Statements: list[dict[str, Any]]) -> Any:
        keep = [s for s in Statements if {"S": self.key} not in s["Parameters"]]
        answers = iter((await self.inner.batch_execute_statement(Statements=keep))["Responses"])
        error = {"Code": "ValidationError", "Message": "One or more parameter values were invalid"}
        return {
            "Responses": [
                {"TableName": TABLE, "Error": error}
                if {"S": self.key} in s["Parameters"]
                else next(answers)
                for s in Statements
            ]
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_statement_refused_by_validation_fails_only_its_message() -> None:
    db = InMemoryDynamo()
    records = [message(f"f{i}", "create", seq=None, time=OLD_TIME) for i in range(30)]
    for i, record in enumerate(records):
        record["messageId"] = f"m{i}"
    result = asyncio.run(apply(RefusesOne(db, pk("f7")), *records))
    assert result.failed_message_ids == ["m7"]
    assert result.written == 29 and pk("f7") not in db.tables[TABLE]
