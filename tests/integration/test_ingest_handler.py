"""The ingest Lambda handler against moto (S3, SQS) and DynamoDB Local over HTTP."""

from __future__ import annotations

import importlib
import random
from collections.abc import Iterator
from contextlib import AsyncExitStack
from types import ModuleType
from typing import Any

import pytest

from pipeline.adapters.dynamo.writer import DynamoFileStore
from pipeline.adapters.runtime import LoopRuntime, open_dynamodb_client
from pipeline.core.retry import Backoff
from tests.support.faults import StrictFaultyClient
from tests.support.lambda_context import FakeLambdaContext
from tests.support.s3events import TEST_EVENT, notification, s3_record, sqs_event, sqs_record


@pytest.fixture
def handler(table_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """handlers.ingest, cold-started against this test's table."""
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "FileTrackerTest")
    import handlers.ingest

    module = importlib.reload(handlers.ingest)
    yield module
    module.runtime.close()


def scan(dynamodb: Any, table: str) -> dict[str, dict[str, Any]]:
    """Every row of the table; system items (keys starting with "#": the folder counters)
    left out."""
    rows: dict[str, dict[str, Any]] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            if not item["pk"]["S"].startswith("#"):
                rows[item["filename"]["S"]] = item
    return rows


def live(rows: dict[str, dict[str, Any]]) -> set[str]:
    return {key for key, item in rows.items() if "deleted" not in item}


def test_a_thousand_notifications_leave_the_table_exactly_as_expected(
    handler: ModuleType, dynamodb: Any, table_name: str
) -> None:
    # Given 1,000 S3 notifications: creates, deletes of some of them, encoded and unicode
    # keys, one TestEvent and two malformed bodies
    rng = random.Random(42)
    names = [
        f"dir {i % 7}/файл+{i}%{rng.choice(['é', '字', '🙂', 'a b', '+'])}.txt" for i in range(800)
    ]
    bodies = [
        notification(s3_record(name, size=i, sequencer=f"{10 + i:08X}"))
        for i, name in enumerate(names)
    ]
    deleted = set(rng.sample(names, 150))
    bodies += [
        notification(s3_record(n, event="ObjectRemoved:Delete", sequencer=f"{5000 + i:08X}"))
        for i, n in enumerate(sorted(deleted))
    ]
    bodies += [notification(s3_record(f"extra/{i}.csv", size=1)) for i in range(47)]
    bodies += [TEST_EVENT, "{not json", '{"Records": "nope"}']
    event = sqs_event(*bodies)
    assert len(event["Records"]) == 1000
    malformed = {r["messageId"] for r in event["Records"][-2:]}

    # When the handler runs
    response = handler.lambda_handler(event, FakeLambdaContext())

    # Then exactly the malformed messages are reported and the table equals the bucket
    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == malformed
    rows = scan(dynamodb, table_name)
    expected = (set(names) - deleted) | {f"extra/{i}.csv" for i in range(47)}
    assert live(rows) == expected
    assert {k for k, item in rows.items() if item.get("deleted", {}).get("BOOL")} == deleted
    sample = names[3]
    if sample not in deleted:
        assert rows[sample]["size"]["N"] == "3"


def test_two_warm_invocations_in_a_row_succeed(
    handler: ModuleType, dynamodb: Any, table_name: str
) -> None:
    # Given a cold-started handler
    first = sqs_event(notification(s3_record("one.txt")))
    second = sqs_event(notification(s3_record("two.txt")))
    # When it is invoked twice (the second invocation warm, reusing loop and client)
    assert handler.lambda_handler(first, FakeLambdaContext()) == {"batchItemFailures": []}
    store_before = handler.runtime._state.value
    assert handler.lambda_handler(second, FakeLambdaContext()) == {"batchItemFailures": []}
    # Then both files are tracked and the same client was reused
    assert handler.runtime._state.value is store_before
    assert live(scan(dynamodb, table_name)) == {"one.txt", "two.txt"}


def faulty_runtime(module: ModuleType, **faults: Any) -> tuple[LoopRuntime[Any], list[Any]]:
    """A runtime whose store talks to DynamoDB Local through StrictFaultyClient."""
    wrappers: list[StrictFaultyClient] = []

    async def open_store(stack: AsyncExitStack) -> DynamoFileStore:
        client = await open_dynamodb_client(stack, module.settings)
        wrapper = StrictFaultyClient(client, **faults)
        wrappers.append(wrapper)
        return DynamoFileStore(
            wrapper, module.settings.table_name, concurrency=8, backoff=Backoff(0.001, 0.02)
        )

    return LoopRuntime(open_store), wrappers


def test_injected_unprocessed_items_and_throttling_are_retried_on_moto(
    handler: ModuleType, dynamodb: Any, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given DynamoDB (moto, made strict) leaving 30% unprocessed and throttling 10% of calls
    runtime, wrappers = faulty_runtime(handler, unprocessed_rate=0.3, throttle_rate=0.1, seed=5)
    monkeypatch.setattr(handler, "runtime", runtime)
    event = sqs_event(*(notification(s3_record(f"file-{i}")) for i in range(400)))
    # When the handler runs
    response = handler.lambda_handler(event, FakeLambdaContext())
    runtime.close()
    # Then everything is written, no request named a key twice
    assert response == {"batchItemFailures": []}
    assert live(scan(dynamodb, table_name)) == {f"file-{i}" for i in range(400)}
    (client,) = wrappers
    assert client.unprocessed > 0 and client.throttled > 0
    assert all(len(set(keys)) == len(keys) for keys in client.write_requests)


def test_items_that_never_succeed_are_reported_and_the_rest_written(
    handler: ModuleType, dynamodb: Any, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given one key DynamoDB never accepts and one it rejects as invalid, in shared requests
    runtime, _ = faulty_runtime(
        handler, never_succeed={"serverless-event4/stuck"}, invalid={"serverless-event4/invalid"}
    )
    monkeypatch.setattr(handler, "runtime", runtime)
    records = [sqs_record(notification(s3_record(f"ok-{i}")), f"ok-{i}") for i in range(30)]
    records[5] = sqs_record(notification(s3_record("stuck")), "stuck-message")
    records[17] = sqs_record(notification(s3_record("invalid")), "invalid-message")
    # When the handler runs with a short remaining time (6 s after the safety margin: ample for
    # the 28 good keys on a loaded machine; the stuck key retries until the budget is spent)
    response = handler.lambda_handler({"Records": records}, FakeLambdaContext(timeout_s=8))
    runtime.close()
    # Then those two messages and no others are reported, and the others are written
    reported = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert reported == ["stuck-message", "invalid-message"]
    expected = {f"ok-{i}" for i in range(30) if i not in (5, 17)}
    assert live(scan(dynamodb, table_name)) == expected


def test_sns_wrapped_notifications_are_applied(
    handler: ModuleType, dynamodb: Any, table_name: str
) -> None:
    from tests.support.s3events import sns_envelope

    event = sqs_event(sns_envelope(notification(s3_record("via sns.txt"))))
    assert handler.lambda_handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    assert live(scan(dynamodb, table_name)) == {"via sns.txt"}


def test_cold_start_without_table_name_fails_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import handlers.ingest
    from pipeline.core.settings import SettingsError

    monkeypatch.delenv("TABLE_NAME", raising=False)
    with pytest.raises(SettingsError, match="TABLE_NAME is required"):
        importlib.reload(handlers.ingest)
