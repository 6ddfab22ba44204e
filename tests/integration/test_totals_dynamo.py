"""Folder counters on moto over HTTP: ingest's ADDs through aiobotocore, the API's and
reconcile's reads and compare-and-swap through boto3, and a forced race of two invocations."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import pytest

from pipeline.adapters.dynamo.reader import DynamoFileReader
from pipeline.adapters.dynamo.totals import DynamoTotalsStore, DynamoTotalsWriter
from pipeline.adapters.dynamo.writer import DynamoFileStore
from pipeline.adapters.runtime import open_dynamodb_client
from pipeline.core.retry import Deadline
from pipeline.core.settings import Settings
from pipeline.ingest.batch import IngestResult, ingest
from pipeline.totals.deltas import Totals
from pipeline.totals.ports import StoredTotals
from tests.support.interleave import Gate
from tests.support.s3events import notification, s3_record, sqs_record

pytestmark = pytest.mark.integration

BUCKET = "serverless-event4"
SEQ1, SEQ2, SEQ3 = "0055AED6DCD90281E5", "0055AED6DCD90281F0", "0055AED6DCD9028200"


def message(key: str, seq: str, *, size: int = 10, delete: bool = False) -> dict[str, Any]:
    event = "ObjectRemoved:Delete" if delete else "ObjectCreated:Put"
    record = s3_record(key, event=event, size=size, sequencer=seq)
    return sqs_record(notification(record), f"{key}-{seq}")


async def apply(client: Any, table: str, *records: dict[str, Any], counters: Any = None) -> Any:
    store = DynamoFileStore(client, table)
    writer = DynamoTotalsWriter(counters or client, table)
    return await ingest(list(records), store, Deadline(30), tombstone_ttl_s=86_400, totals=writer)


def run(table: str, work: Any) -> Any:
    async def scenario() -> Any:
        async with AsyncExitStack() as stack:
            client = await open_dynamodb_client(stack, Settings.from_env())
            return await work(client)

    return asyncio.run(scenario())


def test_ingest_keeps_counters_that_the_api_reads(dynamodb: Any, table_name: str) -> None:
    async def work(client: Any) -> IngestResult:
        await apply(client, table_name, message("p/a", SEQ1), message("p/q/b", SEQ1, size=5))
        await apply(client, table_name, message("p/a", SEQ2, size=25))  # overwrite: +15
        await apply(client, table_name, message("p/a", SEQ2, size=25))  # duplicate: nothing
        result: IngestResult = await apply(client, table_name, message("p/q/b", SEQ3, delete=True))
        return result

    last = run(table_name, work)
    assert last.totals_updates == 3 and last.totals_lost == 0
    store = DynamoTotalsStore(dynamodb, table_name)
    assert store.get(BUCKET, "p/").totals == Totals(1, 25)
    assert store.get(BUCKET, "").totals == Totals(1, 25)
    assert store.get(BUCKET, "p/q/").totals == Totals(0, 0)
    assert store.get(BUCKET, "nothing/") == StoredTotals()
    many = store.get_many(BUCKET, ["p/", "p/q/", "x/"])
    assert {f: s.totals for f, s in many.items()} == {
        "p/": Totals(1, 25),
        "p/q/": Totals(0, 0),
        "x/": Totals(0, 0),
    }
    assert many["p/"].updates == 3 and many["p/"].updated_at is not None
    # counters are system items outside the listing index: the listing shows files only
    reader = DynamoFileReader(dynamodb, table_name).for_bucket(BUCKET)
    listed = [row["filename"] for row in reader.iter_live()]
    assert listed == ["p/a"]


def test_two_invocations_racing_on_one_create_count_it_once(dynamodb: Any, table_name: str) -> None:
    async def work(client: Any) -> None:
        gate = Gate(client, SEQ1)
        held = asyncio.create_task(
            apply(gate, table_name, message("r/k", SEQ1, size=7), counters=client)
        )
        await gate.reached.wait()
        await apply(client, table_name, message("r/k", SEQ1, size=7))
        gate.release.set()
        await held

    run(table_name, work)
    assert DynamoTotalsStore(dynamodb, table_name).get(BUCKET, "r/").totals == Totals(1, 7)


def test_a_repair_is_a_compare_and_swap_on_the_update_count(dynamodb: Any, table_name: str) -> None:
    store = DynamoTotalsStore(dynamodb, table_name)
    # no counter yet: set only while there is none
    assert store.set_if_unchanged(BUCKET, "d/", Totals(3, 30), StoredTotals())
    assert not store.set_if_unchanged(BUCKET, "d/", Totals(9, 9), StoredTotals())
    read = store.get(BUCKET, "d/")
    assert read.totals == Totals(3, 30) and read.updates == 1

    async def delta(client: Any) -> None:
        await apply(client, table_name, message("d/new", SEQ1, size=4))

    run(table_name, delta)  # an ingest delta lands after the read
    assert not store.set_if_unchanged(BUCKET, "d/", Totals(0, 0), read)  # never wipes it
    assert store.get(BUCKET, "d/").totals == Totals(4, 34)
    fresh = store.get(BUCKET, "d/")
    assert store.set_if_unchanged(BUCKET, "d/", Totals(1, 4), fresh)
    assert store.get(BUCKET, "d/").totals == Totals(1, 4)
