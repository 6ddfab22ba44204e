"""The ingest handler on a moto server: rows carry their feed position and kind, the feed
reads them back through the real `by_change` adapter, and every record written publishes its
event -> row lag through Powertools' EMF (flushed every 100 values)."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest

from pipeline.adapters.dynamo.feed import DynamoChangeIndex
from pipeline.feed.positions import is_position, position, position_ms, time_position
from pipeline.feed.reader import read_changes
from tests.support.lambda_context import FakeLambdaContext
from tests.support.s3events import notification, s3_record, sqs_event

BUCKET = "serverless-event4"


@pytest.fixture
def handler(table_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """handlers.ingest, cold-started against this test's table, metrics on."""
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "FileTrackerTest")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "file-tracker-ingest")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    import handlers.ingest

    module = importlib.reload(handlers.ingest)
    yield module
    module.runtime.close()


def _emf_documents(text: str) -> list[dict[str, Any]]:
    documents = []
    for line in text.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def test_every_record_written_publishes_its_lag_in_documents_of_at_most_100(
    handler: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given 250 creates whose events happened 3 s ago
    happened = datetime.now(UTC) - timedelta(seconds=3)
    event = sqs_event(
        *(notification(s3_record(f"lag/{n}", event_time=_iso(happened))) for n in range(250))
    )
    handler.metrics.clear_metrics()  # Powertools shares the metric set between instances
    capsys.readouterr()
    # When one invocation applies them
    before = time.time()
    handler.lambda_handler(event, FakeLambdaContext())
    after = time.time()
    # Then IngestLagMs has 250 values: two documents of 100 while adding, the rest at the end
    documents = _emf_documents(capsys.readouterr().out)
    lags = [d["IngestLagMs"] for d in documents if "IngestLagMs" in d]
    counts = [len(v) if isinstance(v, list) else 1 for v in lags]
    assert sum(counts) == 250 and max(counts) == 100 and len(counts) == 3
    values = [x for v in lags for x in (v if isinstance(v, list) else [v])]
    low = (before - happened.timestamp()) * 1000
    high = (after - happened.timestamp()) * 1000
    assert all(low - 2 <= x <= high + 2 for x in values)
    unit = {
        m["Name"]: m["Unit"]
        for d in documents
        for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        if m["Name"] == "IngestLagMs"
    }
    assert unit == {"IngestLagMs": "Milliseconds"}


def test_rows_carry_position_and_kind_and_the_feed_reads_them_back(
    handler: ModuleType, dynamodb: Any, table_name: str
) -> None:
    # Given a create, an overwrite of another key and a delete of a third
    start = time_position(int(time.time() * 1000) - 1)
    for body in (
        notification(s3_record("a", sequencer="01"), s3_record("b", sequencer="01")),
        notification(s3_record("c", sequencer="01")),
    ):
        handler.lambda_handler(sqs_event(body), FakeLambdaContext())
    handler.lambda_handler(
        sqs_event(
            notification(
                s3_record("b", sequencer="02", etag="new"),
                s3_record("c", event="ObjectRemoved:Delete", sequencer="02"),
            )
        ),
        FakeLambdaContext(),
    )
    # When the feed is read through the DynamoDB adapter (settle window passed)
    page = read_changes(
        DynamoChangeIndex(dynamodb, table_name),
        bucket=BUCKET,
        after=start,
        now_ms=int(time.time() * 1000) + 60_000,
        settle_ms=5_000,
        limit=100,
    )
    # Then each key appears once, at its latest change, with its kind
    kinds = {row["filename"]: row["kind"] for row in page.rows}
    assert kinds == {"a": "created", "b": "overwritten", "c": "deleted"}
    positions = [row["changed"] for row in page.rows]
    assert positions == sorted(positions) and all(is_position(p) for p in positions)
    assert next(r for r in page.rows if r["filename"] == "b")["etag"] == "new"
    # And a prefix reads only its keys
    only_a = read_changes(
        DynamoChangeIndex(dynamodb, table_name),
        bucket=BUCKET,
        after=start,
        now_ms=int(time.time() * 1000) + 60_000,
        settle_ms=5_000,
        limit=100,
        prefix="a",
    )
    assert [r["filename"] for r in only_a.rows] == ["a"]


class _Steps:
    """A clock that moves 4 s forward on every reading: every answer comes 'late' (W = 5 s)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        self.now += 4.0
        return self.now


def test_the_re_stamp_statement_runs_on_the_real_engine(dynamodb: Any, table_name: str) -> None:
    # Given the writer on the real engine, with a clock that makes every answer late
    import asyncio
    from contextlib import AsyncExitStack

    from pipeline.adapters.dynamo.writer import DynamoFileStore
    from pipeline.adapters.runtime import open_dynamodb_client
    from pipeline.core.model import ConditionalWrite, WriteOutcome, item_key
    from pipeline.core.retry import Deadline, OpStats
    from pipeline.core.settings import Settings
    from pipeline.feed.positions import Stamper

    clock = _Steps()
    row = {
        "pk": item_key(BUCKET, "restamped"),
        "filename": "restamped",
        "bucket": BUCKET,
        "event_time": "t",
        "size": 1,
    }

    async def write() -> tuple[Any, OpStats]:
        async with AsyncExitStack() as stack:
            client = await open_dynamodb_client(stack, Settings.from_env())
            store = DynamoFileStore(client, table_name, stamper=Stamper(5_000, clock))
            stats = OpStats()
            outcome = await store.write_conditional(
                [ConditionalWrite(row, None)], Deadline(30), stats
            )
            return outcome, stats

    outcome, stats = asyncio.run(write())
    # Then DynamoDB ran the conditional UPDATE ... SET "changed" each time: 5 re-stamps
    assert outcome == {row["pk"]: WriteOutcome.WRITTEN} and stats.restamps == 5
    assert not stats.failures
    item = dynamodb.get_item(TableName=table_name, Key={"pk": {"S": row["pk"]}})["Item"]
    assert item["changed"]["S"] > position(0, BUCKET, "restamped")
    assert position_ms(item["changed"]["S"]) >= int((clock.now - 8) * 1000)
