"""Events of buckets nobody tracks: acknowledged, counted, not stored (issue 22); and when the
registry cannot be read, nothing is dropped (the messages fail and come again)."""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline.adapters.dynamo.registry import DynamoBucketRegistry
from pipeline.adapters.dynamo.writer import DynamoFileStore
from pipeline.core.model import BUCKET_RECORD_PREFIX, PARTITION_KEY
from pipeline.core.retry import Deadline
from pipeline.ingest.batch import IngestResult, ingest
from tests.support.faults import InMemoryDynamo, client_error
from tests.support.s3events import notification, s3_record, sqs_record

TABLE = "files"
OWN = "serverless-event4"


class Registry:
    """What ingest needs to tell tracked buckets from others; `broken` = DynamoDB fails."""

    def __init__(self, tracked: set[str], broken: bool = False) -> None:
        self.tracked, self.broken, self.asked = tracked, broken, 0

    async def untracked(self, buckets: set[str], deadline: Any = None) -> set[str]:
        self.asked += 1
        if self.broken:
            raise client_error("InternalServerError", "boom", 500, "BatchGetItem")
        return buckets - self.tracked


def run(db: InMemoryDynamo, registry: Registry, *messages: dict[str, Any]) -> IngestResult:
    store = DynamoFileStore(db, TABLE)
    return asyncio.run(
        ingest(list(messages), store, Deadline(30), tombstone_ttl_s=86_400, tracked=registry)
    )


def message(key: str, bucket: str, mid: str) -> dict[str, Any]:
    return sqs_record(notification(s3_record(key, bucket=bucket)), mid)


def test_events_of_an_untracked_bucket_are_acknowledged_and_not_stored() -> None:
    db = InMemoryDynamo()
    result = run(
        db,
        Registry({OWN}),
        message("a/x", OWN, "m1"),
        message("a/y", "someone-else", "m2"),
        message("b/z", "someone-else", "m3"),
    )
    assert result.failed_message_ids == []  # acknowledged: SQS deletes them
    assert (result.written, result.untracked) == (1, 2)
    assert sorted(db.tables[TABLE]) == [f"{OWN}/a/x"]


def test_when_the_registry_cannot_be_read_nothing_is_dropped() -> None:
    db = InMemoryDynamo()
    result = run(db, Registry(set(), broken=True), message("a/y", "maybe-adopted", "m1"))
    assert result.failed_message_ids == ["m1"]  # SQS delivers it again
    assert result.untracked == 0 and not db.tables.get(TABLE)


class RegistryTable:
    """BatchGetItem on registry items, counting calls."""

    def __init__(self, registered: set[str]) -> None:
        self.registered, self.calls = registered, 0

    async def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        ((table, spec),) = RequestItems.items()
        found = [
            {PARTITION_KEY: key[PARTITION_KEY]}
            for key in spec["Keys"]
            if key[PARTITION_KEY]["S"][len(BUCKET_RECORD_PREFIX) :] in self.registered
        ]
        return {"Responses": {table: found}, "UnprocessedKeys": {}}


def test_the_registry_adapter_asks_only_for_buckets_it_does_not_know_yet() -> None:
    table = RegistryTable({"adopted"})
    registry = DynamoBucketRegistry(table, TABLE, OWN)

    async def ask(buckets: set[str]) -> set[str]:
        return await registry.untracked(buckets)

    assert asyncio.run(ask({OWN})) == set() and table.calls == 0  # the stack's own bucket
    assert asyncio.run(ask({"adopted", "other"})) == {"other"} and table.calls == 1
    assert asyncio.run(ask({"adopted"})) == set() and table.calls == 1  # remembered
    table.registered.add("other")  # adopted a moment ago: seen on its next event
    assert asyncio.run(ask({"other"})) == set() and table.calls == 2
