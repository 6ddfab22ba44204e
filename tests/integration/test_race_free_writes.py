"""Race-free conditional writes over HTTP on AWS's DynamoDB Local (the local stack's engine).

The same forced interleavings as tests/unit/test_conditional_writes.py, against the engine
the stack runs; the PartiQL semantics they rely on are pinned by
tests/integration/test_partiql_semantics.py.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import pytest

from pipeline.adapters.dynamo.writer import ConditionalWrite, DynamoFileStore, WriteOutcome
from pipeline.adapters.runtime import open_dynamodb_client
from pipeline.core.model import LOWEST_SEQ, SEQ, SEQ_WIDTH
from pipeline.core.retry import Deadline, OpStats
from pipeline.core.settings import Settings
from pipeline.ingest.batch import IngestResult, ingest
from tests.support.interleave import Gate
from tests.support.s3events import notification, s3_record, sqs_record

pytestmark = pytest.mark.integration

OLDEST = "0055AED6DCD9028100"
OLD_SEQ, NEW_SEQ = "0055AED6DCD90281E5", "0055AED6DCD90281F0"
CASES = [("create", "create"), ("create", "delete"), ("delete", "create")]


BUCKET, OTHER = "serverless-event4", "other-bucket"


def message(kind: str, seq: str, size: int = 1, bucket: str = BUCKET) -> dict[str, Any]:
    event = "ObjectCreated:Put" if kind == "create" else "ObjectRemoved:Delete"
    record = s3_record("k.txt", event=event, size=size, sequencer=seq, bucket=bucket)
    return sqs_record(notification(record))


async def with_client(table: str, work: Any) -> Any:
    async with AsyncExitStack() as stack:
        client = await open_dynamodb_client(stack, Settings.from_env())
        return await work(client)


async def apply(client: Any, table: str, record: dict[str, Any]) -> IngestResult:
    store = DynamoFileStore(client, table)
    return await ingest([record], store, Deadline(30), tombstone_ttl_s=86_400)


def get(dynamodb: Any, table: str, bucket: str = BUCKET) -> dict[str, Any]:
    key = {"pk": {"S": f"{bucket}/k.txt"}}
    item: dict[str, Any] = dynamodb.get_item(TableName=table, Key=key)["Item"]
    return item


@pytest.mark.parametrize(("older_kind", "newer_kind"), CASES, ids=["-vs-".join(c) for c in CASES])
@pytest.mark.parametrize("held", ["older", "newer"])
@pytest.mark.parametrize("preexisting", [False, True], ids=["new-key", "existing-key"])
def test_forced_interleavings_newest_wins(
    dynamodb: Any, table_name: str, older_kind: str, newer_kind: str, held: str, preexisting: bool
) -> None:
    older, newer = message(older_kind, OLD_SEQ, 111), message(newer_kind, NEW_SEQ, 222)
    first_record, second_record = (older, newer) if held == "older" else (newer, older)

    async def scenario(client: Any) -> tuple[IngestResult, IngestResult]:
        if preexisting:
            await apply(client, table_name, message("create", OLDEST))
        gate = Gate(client, OLD_SEQ if held == "older" else NEW_SEQ)
        # Given one invocation has read the key and its write is held back
        first = asyncio.create_task(apply(gate, table_name, first_record))
        await gate.reached.wait()
        # When the other invocation runs to the end, then the held write lands
        second = await apply(client, table_name, second_record)
        gate.release.set()
        return await first, second

    first, second = asyncio.run(with_client(table_name, scenario))
    # Then the newest event's row is stored and no message is reported failed
    item = get(dynamodb, table_name)
    assert item["sequencer"]["S"] == NEW_SEQ
    assert item[SEQ]["S"] == NEW_SEQ.ljust(SEQ_WIDTH, "0")
    assert ("deleted" in item) is (newer_kind == "delete")
    assert ("name_shard" in item, "size" in item) == ((newer_kind == "create"),) * 2
    assert first.failed_message_ids == second.failed_message_ids == []
    applied = [r.written + r.deleted for r in (first, second)]
    if held == "older":  # its write came last: refused, re-read, skipped as stale
        assert (first.skipped, applied) == (1, [0, 1])
    else:  # the older landed first (it was newest then); the held newer one replaced it
        assert applied == [1, 1]


@pytest.mark.parametrize(("older_kind", "newer_kind"), CASES, ids=["-vs-".join(c) for c in CASES])
@pytest.mark.parametrize("preexisting", [False, True], ids=["new-key", "existing-key"])
def test_the_same_key_in_two_buckets_are_two_rows_under_forced_interleaving(
    dynamodb: Any, table_name: str, older_kind: str, newer_kind: str, preexisting: bool
) -> None:
    older, newer = message(older_kind, OLD_SEQ, 111), message(newer_kind, NEW_SEQ, 222, OTHER)

    async def scenario(client: Any) -> tuple[IngestResult, IngestResult]:
        if preexisting:
            for bucket in (BUCKET, OTHER):
                await apply(client, table_name, message("create", OLDEST, bucket=bucket))
        gate = Gate(client, OLD_SEQ)
        # Given one invocation has read the key in bucket A and its write is held back
        first = asyncio.create_task(apply(gate, table_name, older))
        await gate.reached.wait()
        # When another invocation writes a newer event of the same key in bucket B
        second = await apply(client, table_name, newer)
        gate.release.set()
        return await first, second

    first, second = asyncio.run(with_client(table_name, scenario))
    # Then A's held (older) write still lands, without a conflict: B's row is another row
    mine, theirs = get(dynamodb, table_name), get(dynamodb, table_name, OTHER)
    assert (mine["bucket"]["S"], mine["sequencer"]["S"]) == (BUCKET, OLD_SEQ)
    assert ("deleted" in mine) is (older_kind == "delete")
    assert (theirs["bucket"]["S"], theirs["sequencer"]["S"]) == (OTHER, NEW_SEQ)
    assert ("deleted" in theirs) is (newer_kind == "delete")
    assert (first.written + first.deleted, first.conflicts) == (1, 0)
    assert (second.written + second.deleted, second.conflicts) == (1, 0)
    assert first.failed_message_ids == second.failed_message_ids == []


@pytest.mark.parametrize("newer", [True, False])
def test_rows_written_before_seq_existed_keep_working(
    dynamodb: Any, table_name: str, newer: bool
) -> None:
    # Given a row in today's shape: raw sequencer, no `seq`
    legacy = {
        "pk": {"S": f"{BUCKET}/k.txt"},
        "filename": {"S": "k.txt"},
        "bucket": {"S": BUCKET},
        "size": {"N": "5"},
        "event_time": {"S": "2026-11-24T10:00:00.000Z"},
        "event_name": {"S": "ObjectCreated:Put"},
        "sequencer": {"S": "0055AED6DCD90281EA"},
    }
    dynamodb.put_item(TableName=table_name, Item=legacy)
    seq = NEW_SEQ if newer else OLD_SEQ
    # When a newer / older delete arrives
    result = asyncio.run(
        with_client(table_name, lambda c: apply(c, table_name, message("delete", seq)))
    )
    # Then the newer one replaces the row (now with `seq`), the older one is skipped
    item = get(dynamodb, table_name)
    assert result.failed_message_ids == []
    if newer:
        assert item["deleted"]["BOOL"] is True and item[SEQ]["S"].startswith(NEW_SEQ)
        assert "size" not in item
    else:
        assert item == legacy
        assert result.skipped == 1


def test_write_conditional_compare_and_swap_on_dynamodb_local(
    dynamodb: Any, table_name: str
) -> None:
    ident = {"pk": "b/k.txt", "filename": "k.txt", "bucket": "b"}
    row = {**ident, "size": 1, "event_time": "t", SEQ: LOWEST_SEQ}

    async def scenario(client: Any) -> list[Any]:
        store = DynamoFileStore(client, table_name)
        stats, deadline = OpStats(), Deadline(30)
        first = await store.write_conditional([ConditionalWrite(row, None)], deadline, stats)
        again = await store.write_conditional([ConditionalWrite(row, None)], deadline, stats)
        current = (await store.read_rows(["b/k.txt"], deadline, stats))["b/k.txt"]
        changed = {**row, "size": 2, "etag": "e"}
        stale = {**current, SEQ: "1".ljust(SEQ_WIDTH, "0")}
        lost = await store.write_conditional([ConditionalWrite(changed, stale)], deadline, stats)
        won = await store.write_conditional([ConditionalWrite(changed, current)], deadline, stats)
        return [first, again, lost, won, stats]

    first, again, lost, won, stats = asyncio.run(with_client(table_name, scenario))
    assert [first, again, lost, won] == [
        {"b/k.txt": WriteOutcome.WRITTEN},
        {"b/k.txt": WriteOutcome.CONFLICT},
        {"b/k.txt": WriteOutcome.CONFLICT},
        {"b/k.txt": WriteOutcome.WRITTEN},
    ]
    assert stats.failures == {}
    item = get(dynamodb, table_name, "b")
    assert item["size"] == {"N": "2"} and item["etag"] == {"S": "e"}
