"""DynamoDB's limits and Lambda's 6 MB payload never crash an invocation; logs stay lean."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.support.lambda_context import FakeLambdaContext
from tests.support.s3events import notification, s3_record, sqs_record


@pytest.fixture
def handler(table_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "INFO")
    # ~5,800 rows of 1 KB keys in one invocation, 32 writes in flight on one DynamoDB Local:
    # on a loaded box an answer came more than half the default settle (2.5 s) after its
    # stamp, the row was stamped again, five times, and its message failed (CI). The feed's
    # lateness rule is not what this test is about: a settle of 60 s leaves it 30 s.
    monkeypatch.setenv("FEED_SETTLE_MS", "60000")
    import handlers.ingest

    module = importlib.reload(handlers.ingest)
    yield module
    module.runtime.close()


def live_keys(dynamodb: Any, table: str) -> set[str]:
    keys = set()
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        keys |= {
            i["filename"]["S"]
            for i in page["Items"]
            if "deleted" not in i and not i["pk"]["S"].startswith("#")  # not counters
        }
    return keys


def test_a_6mb_batch_with_unstorable_items_fails_exactly_those_messages(
    handler: ModuleType, dynamodb: Any, table_name: str
) -> None:
    # Given a batch close to Lambda's 6 MB payload limit: 1,024-byte keys, plus one key over
    # DynamoDB's 2,048-byte partition-key limit and one item over its 400 KB item limit
    records = [
        sqs_record(notification(s3_record("x" * 2_100)), "key-too-long"),
        sqs_record(notification(s3_record("big", etag="e" * 410_000)), "item-too-big"),
    ]
    good = 0
    size = len(json.dumps({"Records": records}))
    while size < 5_800_000:
        key = f"{len(records):06d}/" + "k" * 1_017  # 1,024 bytes: S3's longest key
        records.append(sqs_record(notification(s3_record(key, sequencer=f"{good:08X}"))))
        size += len(json.dumps(records[-1])) + 2
        good += 1
    payload = len(json.dumps({"Records": records}))
    assert 5_800_000 <= payload <= 6 * 1024 * 1024

    # When the handler runs
    response = handler.lambda_handler({"Records": records}, FakeLambdaContext())

    # Then only the two unstorable messages are reported; every other file is written
    reported = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert reported == ["key-too-long", "item-too-big"]
    assert len(live_keys(dynamodb, table_name)) == good > 2_000


def test_logs_at_info_carry_no_message_bodies(
    handler: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    # Given malformed and valid messages whose bodies contain a marker
    marker = "BODY-MARKER-7f3a"
    records = [
        sqs_record(f"not json {marker}", "junk"),
        sqs_record(json.dumps({"Records": [{"eventName": "Bogus", "x": marker}]}), "bogus"),
        sqs_record(notification(s3_record(f"{marker}.txt")), "good"),
    ]
    # When the handler runs at log level INFO
    caplog.set_level(logging.INFO)
    response = handler.lambda_handler({"Records": records}, FakeLambdaContext())
    # Then failures are logged with their messageId, but no body text reaches the logs
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == ["junk", "bogus"]
    logged = [json.dumps(vars(r), default=str) for r in caplog.records]
    assert {r.__dict__.get("message_id") for r in caplog.records} >= {"junk", "bogus"}
    assert not [line for line in logged if marker in line]
