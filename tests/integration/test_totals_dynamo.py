"""Folder totals on DynamoDB Local: ingest writes rows (PartiQL), the table's stream carries
them, the totals consumer applies them with watermarked UpdateItems; the API's and
reconcile's reads and compare-and-swap through boto3.

DynamoDB Local emits stream records for PartiQL writes and UpdateItem alike (checked here);
it keeps one shard, so shard rotation is tested on the in-memory stream
(tests/unit/test_totals.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from pipeline.adapters.dynamo.reader import DynamoFileReader
from pipeline.adapters.dynamo.stream_totals import DynamoWatermarkedCounters
from pipeline.adapters.dynamo.totals import DynamoTotalsStore
from pipeline.adapters.dynamo.writer import DynamoFileStore
from pipeline.core.retry import Deadline
from pipeline.ingest.batch import ingest
from pipeline.local.streams import DynamoStreamEventSource
from pipeline.totals.deltas import Totals
from pipeline.totals.ports import Refused, StoredTotals
from pipeline.totals.stream import padded
from tests.support.s3events import notification, s3_record, sqs_record
from tests.support.stream_totals import consume as read_stream
from tests.support.stream_totals import run

pytestmark = pytest.mark.integration

BUCKET = "serverless-event4"
SEQ1, SEQ2, SEQ3 = "0055AED6DCD90281E5", "0055AED6DCD90281F0", "0055AED6DCD9028200"


def message(key: str, seq: str, *, size: int = 10, delete: bool = False) -> dict[str, Any]:
    event = "ObjectRemoved:Delete" if delete else "ObjectCreated:Put"
    record = s3_record(key, event=event, size=size, sequencer=seq)
    return sqs_record(notification(record), f"{key}-{seq}")


def write(table: str, *records: dict[str, Any]) -> None:
    async def work(client: Any) -> None:
        store = DynamoFileStore(client, table)
        result = await ingest(list(records), store, Deadline(30), tombstone_ttl_s=86_400)
        assert result.failed_message_ids == []

    run(work)


class AnswerLost:
    """Sends every `every`-th UpdateItem and then loses its answer (a read timeout)."""

    def __init__(self, inner: Any, every: int = 2) -> None:
        self.inner, self.every, self.calls = inner, every, 0

    async def update_item(self, **request: Any) -> Any:
        self.calls += 1
        answer = await self.inner.update_item(**request)
        if self.calls % self.every == 1:
            raise ReadTimeoutError(endpoint_url="http://dynamodb-local")
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def consume(dynamodb: Any, table: str, *, lose_answers: bool = False) -> DynamoStreamEventSource:
    """Read the table's stream to its end as Lambda's event source does, in this thread."""
    return read_stream(dynamodb, table, wrap=AnswerLost if lose_answers else None)


def test_the_stream_of_partiql_writes_keeps_counters_the_api_reads(
    dynamodb: Any, table_name: str
) -> None:
    # Given rows written, overwritten, duplicated and deleted by ingest (PartiQL statements)
    write(table_name, message("p/a", SEQ1), message("p/q/b", SEQ1, size=5))
    write(table_name, message("p/a", SEQ2, size=25))  # overwrite: +15
    write(table_name, message("p/a", SEQ2, size=25))  # duplicate: no change, no record
    write(table_name, message("p/q/b", SEQ3, delete=True))
    # When the stream is consumed in batches of 3, every other counter answer lost
    source = consume(dynamodb, table_name, lose_answers=True)
    # Then the counters equal the rows, and the API reads them
    assert source.stats.records >= 4 and source.stats.failed_invocations == 0
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
    # And consuming the whole stream again (a replay from the trim horizon) changes nothing
    again = consume(dynamodb, table_name)
    assert again.stats.records > source.stats.records - 4  # counters' own changes too
    assert store.get(BUCKET, "p/").totals == Totals(1, 25)
    # counters are system items outside the listing index: the listing shows files only
    reader = DynamoFileReader(dynamodb, table_name).for_bucket(BUCKET)
    assert [row["filename"] for row in reader.iter_live()] == ["p/a"]


def test_a_watermarked_update_applies_once_and_a_refusal_carries_the_watermark(
    dynamodb: Any, table_name: str
) -> None:
    first, last = padded("1" * 21), padded("1" * 20 + "5")

    async def work(client: Any) -> list[Any]:
        counters = DynamoWatermarkedCounters(client, table_name, Deadline(30))
        answers = [
            await counters.add((BUCKET, "w/"), "shard-1", Totals(2, 20), first=first, last=last),
            await counters.add((BUCKET, "w/"), "shard-1", Totals(2, 20), first=first, last=last),
            await counters.add((BUCKET, "w/"), "shard-2", Totals(1, 1), first=first, last=first),
        ]
        return [*answers, counters.calls]

    applied, replayed, other_shard, calls = run(work)
    assert applied is None and other_shard is None
    assert isinstance(replayed, Refused) and replayed.watermark is not None
    assert replayed.watermark.startswith(last + "@")
    assert calls == 3  # DynamoDB Local returns the item with the refusal: no extra read
    assert DynamoTotalsStore(dynamodb, table_name).get(BUCKET, "w/").totals == Totals(3, 21)


def test_a_repair_is_a_compare_and_swap_on_the_update_count(dynamodb: Any, table_name: str) -> None:
    store = DynamoTotalsStore(dynamodb, table_name)
    # no counter yet: set only while there is none
    assert store.set_if_unchanged(BUCKET, "d/", Totals(3, 30), StoredTotals())
    assert not store.set_if_unchanged(BUCKET, "d/", Totals(9, 9), StoredTotals())
    read = store.get(BUCKET, "d/")
    assert read.totals == Totals(3, 30) and read.updates == 1
    write(table_name, message("d/new", SEQ1, size=4))
    consume(dynamodb, table_name)  # a stream delta lands after the read
    assert not store.set_if_unchanged(BUCKET, "d/", Totals(0, 0), read)  # never wipes it
    assert store.get(BUCKET, "d/").totals == Totals(4, 34)
    fresh = store.get(BUCKET, "d/")
    assert store.set_if_unchanged(BUCKET, "d/", Totals(1, 4), fresh)
    assert store.get(BUCKET, "d/").totals == Totals(1, 4)
