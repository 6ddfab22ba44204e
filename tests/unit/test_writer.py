"""The ingest service and its DynamoDB adapter against a strict in-memory DynamoDB with faults.

Most tests run in both write modes: `conditional` (default: BatchGetItem + PartiQL
BatchExecuteStatement) and the opt-in `batch` (BatchWriteItem)."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest

from pipeline.adapters.dynamo.writer import DynamoFileStore
from pipeline.core.retry import Backoff, Deadline
from pipeline.core.settings import WriteMode
from pipeline.ingest.batch import IngestResult, ingest
from tests.support.faults import InMemoryDynamo, StrictFaultyClient
from tests.support.s3events import notification, s3_record, sqs_record

TABLE = "files"
TTL = 15 * 86_400


MODES = [WriteMode.CONDITIONAL, WriteMode.BATCH]


@pytest.fixture(params=MODES, ids=[m.value for m in MODES])
def mode(request: pytest.FixtureRequest) -> WriteMode:
    return WriteMode(request.param)


def run_ingest(
    records: list[dict[str, Any]],
    client: Any,
    *,
    budget_s: float = 30.0,
    concurrency: int = 8,
    mode: WriteMode = WriteMode.CONDITIONAL,
) -> IngestResult:
    store = DynamoFileStore(
        client, TABLE, concurrency=concurrency, backoff=Backoff(0.001, 0.01, random.Random(1))
    )
    return asyncio.run(
        ingest(records, store, Deadline(budget_s), tombstone_ttl_s=TTL, now=1e9, mode=mode)
    )


BUCKET = "serverless-event4"
"""The bucket of `s3_record`'s events."""


def stored(db: InMemoryDynamo) -> dict[str, dict[str, Any]]:
    """Rows by key (`pk` without `BUCKET/`: the events' bucket); each row's `pk` is checked."""
    rows = {}
    for key, item in db.tables.get(TABLE, {}).items():
        row = {name: next(iter(value.values())) for name, value in item.items()}
        assert key == row["pk"] == f"{row['bucket']}/{row['filename']}"
        rows[key.removeprefix(f"{BUCKET}/")] = row
    return rows


def test_creates_and_deletes_land_as_rows_and_tombstones(mode: WriteMode) -> None:
    # Given a batch with two creates and a delete of another file
    db = InMemoryDynamo()
    records = [
        sqs_record(notification(s3_record("a.txt", size=5), s3_record("b c.txt", size=7)), "m1"),
        sqs_record(notification(s3_record("gone.txt", event="ObjectRemoved:Delete")), "m2"),
    ]
    # When it is ingested
    result = run_ingest(records, db, mode=mode)
    # Then rows exist for the creates and a tombstone for the delete, and nothing failed
    rows = stored(db)
    assert result.failed_message_ids == []
    assert rows["a.txt"]["size"] == "5"
    assert rows["b c.txt"]["size"] == "7"
    assert rows["gone.txt"]["deleted"] is True
    assert rows["gone.txt"]["expires_at"] == str(int(1e9) + TTL)
    assert (result.written, result.deleted) == (2, 1)


def test_no_request_names_a_key_twice_and_newest_event_wins(mode: WriteMode) -> None:
    # Given 300 messages touching 60 keys several times each, with sequencers out of order
    rng = random.Random(7)
    client = StrictFaultyClient(InMemoryDynamo())
    records = []
    newest: dict[str, tuple[int, str]] = {}
    for i in range(300):
        key = f"k{i % 60}"
        seq = rng.randrange(1, 10**6)
        event = rng.choice(["ObjectCreated:Put", "ObjectRemoved:Delete"])
        body = notification(s3_record(key, event=event, size=i, sequencer=f"{seq:016X}"))
        records.append(sqs_record(body, f"m{i}"))
        if key not in newest or seq > newest[key][0]:
            newest[key] = (seq, event)
    # When ingested (StrictFaultyClient rejects duplicate keys like DynamoDB does)
    result = run_ingest(records, client, mode=mode)
    # Then every request had unique keys, ≤ 25 of them, and each key holds its newest event
    assert result.failed_message_ids == []
    assert all(len(keys) == len(set(keys)) <= 25 for keys in client.write_requests)
    rows = stored(client.inner)
    for key, (seq, event) in newest.items():
        assert rows[key]["sequencer"] == f"{seq:016X}"
        assert rows[key].get("deleted", False) is (event == "ObjectRemoved:Delete")


def test_stale_and_duplicate_events_do_not_overwrite_newer_rows(mode: WriteMode) -> None:
    # Given a table already holding a newer delete (tombstone) and a newer create
    db = InMemoryDynamo()
    run_ingest(
        [
            sqs_record(notification(s3_record("x", event="ObjectRemoved:Delete", sequencer="0B"))),
            sqs_record(notification(s3_record("y", size=2, sequencer="0B"))),
        ],
        db,
        mode=mode,
    )
    # When older events and an exact duplicate arrive later
    result = run_ingest(
        [
            sqs_record(notification(s3_record("x", size=1, sequencer="0A"))),
            sqs_record(notification(s3_record("y", size=1, sequencer="0A"))),
            sqs_record(notification(s3_record("y", size=2, sequencer="0B"))),
        ],
        db,
        mode=mode,
    )
    # Then nothing is written: the deleted file stays deleted and y keeps its newer size
    rows = stored(db)
    assert rows["x"]["deleted"] is True
    assert rows["y"]["size"] == "2"
    assert (result.written, result.skipped, result.failed_message_ids) == (0, 3, [])


def test_unprocessed_items_and_throttling_are_retried_until_written(mode: WriteMode) -> None:
    # Given DynamoDB leaving 30% of items unprocessed and throttling 20% of calls
    client = StrictFaultyClient(InMemoryDynamo(), unprocessed_rate=0.3, throttle_rate=0.2, seed=3)
    records = [sqs_record(notification(s3_record(f"f{i}")), f"m{i}") for i in range(500)]
    # When ingested
    result = run_ingest(records, client, mode=mode)
    # Then every file is written, thanks to retries
    assert result.failed_message_ids == []
    assert len(stored(client.inner)) == 500
    assert client.unprocessed > 0 and client.throttled > 0
    assert result.retries > 0


def test_items_that_never_succeed_fail_exactly_their_messages(mode: WriteMode) -> None:
    # Given two keys that stay unprocessed forever, one of them also touched by a second message
    client = StrictFaultyClient(
        InMemoryDynamo(), never_succeed={f"{BUCKET}/stuck-1", f"{BUCKET}/stuck-2"}
    )
    records = [sqs_record(notification(s3_record(f"ok{i}")), f"ok{i}") for i in range(60)]
    records.insert(10, sqs_record(notification(s3_record("stuck-1"), s3_record("fine")), "s1"))
    records.insert(30, sqs_record(notification(s3_record("stuck-2")), "s2"))
    records.append(
        sqs_record(notification(s3_record("stuck-1", event_time="2026-11-25T00:00:00Z")), "s3")
    )
    # When ingested with a short budget
    result = run_ingest(records, client, budget_s=1.0, mode=mode)
    # Then exactly the messages carrying the stuck keys fail, everything else is written
    assert result.failed_message_ids == ["s1", "s2", "s3"]
    rows = stored(client.inner)
    assert {f"ok{i}" for i in range(60)} | {"fine"} == set(rows)


def test_an_item_rejected_by_validation_is_isolated_from_its_request(mode: WriteMode) -> None:
    # Given a request of 25 items one of which DynamoDB rejects
    client = StrictFaultyClient(InMemoryDynamo(), invalid={f"{BUCKET}/bad-13"})
    records = [sqs_record(notification(s3_record(f"bad-{i}")), f"m{i}") for i in range(25)]
    # When ingested
    result = run_ingest(records, client, mode=mode)
    # Then only the culprit's message fails and the 24 others are written
    assert result.failed_message_ids == ["m13"]
    assert len(stored(client.inner)) == 24


def test_oversized_keys_and_items_fail_alone_without_a_request(mode: WriteMode) -> None:
    # Given a key over DynamoDB's 2,048-byte partition-key limit and a huge eTag among good ones
    client = StrictFaultyClient(InMemoryDynamo())
    records = [
        sqs_record(notification(s3_record("k" * 2049)), "long-key"),
        sqs_record(notification(s3_record("huge", etag="e" * 500_000)), "huge-item"),
        sqs_record(notification(s3_record("fine.txt")), "fine"),
    ]
    # When ingested
    result = run_ingest(records, client, mode=mode)
    # Then those two messages fail, the good one is written, no request carried the bad ones
    assert result.failed_message_ids == ["long-key", "huge-item"]
    assert set(stored(client.inner)) == {"fine.txt"}
    assert all("huge" not in keys for keys in client.write_requests)


def test_bad_bodies_fail_alone_and_test_events_are_skipped(mode: WriteMode) -> None:
    db = InMemoryDynamo()
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})
    records = [
        sqs_record("not json", "junk-1"),
        sqs_record(test_event, "test"),
        sqs_record(json.dumps({"hello": "world"}), "junk-2"),
        sqs_record(notification(s3_record("a.txt")), "good"),
    ]
    result = run_ingest(records, db, mode=mode)
    assert result.failed_message_ids == ["junk-1", "junk-2"]
    assert set(stored(db)) == {"a.txt"}
    assert result.skipped == 1


def test_requests_run_concurrently_up_to_the_configured_limit(mode: WriteMode) -> None:
    # Given a client that tracks how many calls are in flight
    class Slow(InMemoryDynamo):
        def __init__(self) -> None:
            super().__init__()
            self.in_flight = self.peak = 0

        async def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            await asyncio.sleep(0.01)
            self.in_flight -= 1
            return await super().batch_write_item(RequestItems=RequestItems)

        async def batch_execute_statement(
            self, Statements: list[dict[str, Any]], **kwargs: Any
        ) -> dict[str, Any]:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            await asyncio.sleep(0.01)
            self.in_flight -= 1
            return await super().batch_execute_statement(Statements, **kwargs)

    db = Slow()
    records = [sqs_record(notification(s3_record(f"f{i}")), f"m{i}") for i in range(1000)]
    # When ingested with concurrency 8
    result = run_ingest(records, db, concurrency=8, mode=mode)
    # Then 40 requests were spread over exactly 8 parallel slots
    assert result.failed_message_ids == []
    assert db.peak == 8
    assert len(stored(db)) == 1000
