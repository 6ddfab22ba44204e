"""At-least-once, out-of-order delivery: the table still ends equal to the bucket."""

from __future__ import annotations

import importlib
import random
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from pipeline.adapters.dynamo.totals import DynamoTotalsStore
from pipeline.totals.deltas import Totals
from tests.support.lambda_context import FakeLambdaContext
from tests.support.s3events import notification, s3_record, sqs_record
from tests.support.stream_totals import consume


@pytest.fixture
def handler(table_name: str) -> Iterator[ModuleType]:
    import handlers.ingest

    module = importlib.reload(handlers.ingest)
    yield module
    module.runtime.close()


def history(rng: random.Random, keys: int, operations: int) -> tuple[list[str], dict[str, Any]]:
    """Random creates/deletes over `keys` files, with S3-style increasing sequencers.

    Returns the notification bodies in the order S3 produced them and the final bucket:
    key -> (size, sequencer) of its latest create, for keys that exist at the end.
    """
    bucket: dict[str, tuple[int, str]] = {}
    bodies: list[str] = []
    clock = 0x0055AED6DCD90281E5
    for op in range(operations):
        key = f"k/{rng.randrange(keys)} ü+%.bin"
        clock += rng.randrange(1, 5000)
        sequencer = f"{clock:018X}"
        second = 10 + op // 100
        event_time = f"2026-11-24T10:{second // 60:02d}:{second % 60:02d}.000Z"
        if key in bucket and rng.random() < 0.4:
            bodies.append(
                notification(
                    s3_record(
                        key,
                        event="ObjectRemoved:Delete",
                        sequencer=sequencer,
                        event_time=event_time,
                    )
                )
            )
            del bucket[key]
        else:
            size = rng.randrange(10**6)
            bodies.append(
                notification(s3_record(key, size=size, sequencer=sequencer, event_time=event_time))
            )
            bucket[key] = (size, sequencer)
    return bodies, bucket


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_duplicated_shuffled_deliveries_converge_to_the_bucket(
    handler: ModuleType, dynamodb: Any, table_name: str, seed: int
) -> None:
    # Given 600 creates/deletes over 120 keys, every notification delivered twice,
    # in shuffled order, spread over batches of random sizes
    rng = random.Random(seed)
    bodies, bucket = history(rng, keys=120, operations=600)
    deliveries = bodies + bodies
    rng.shuffle(deliveries)
    batches = []
    while deliveries:
        size = rng.randrange(1, 60)
        batches.append(deliveries[:size])
        deliveries = deliveries[size:]

    # When every batch is handled, one invocation after another
    for batch in batches:
        event = {"Records": [sqs_record(body) for body in batch]}
        assert handler.lambda_handler(event, FakeLambdaContext()) == {"batchItemFailures": []}

    # Then the table's live rows are exactly the bucket's objects, each with its newest metadata
    rows = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table_name):
        for item in page["Items"]:
            if not item["pk"]["S"].startswith("#"):  # system items: folder counters
                rows[item["filename"]["S"]] = item
    live = {k: v for k, v in rows.items() if "deleted" not in v}
    assert set(live) == set(bucket)
    for key, (size, sequencer) in bucket.items():
        assert live[key]["sequencer"]["S"] == sequencer
        assert live[key]["size"]["N"] == str(size)
    # and every key that is gone is a tombstone, not a resurrected row
    assert all(rows[k]["deleted"]["BOOL"] for k in set(rows) - set(bucket))
    # and the folder counters, kept from the table's stream as the totals function keeps
    # them, hold exactly the bucket's files and bytes: every delivery twice, in any order,
    # each transition counted once
    consume(dynamodb, table_name)
    expected = Totals(len(bucket), sum(size for size, _ in bucket.values()))
    counters = DynamoTotalsStore(dynamodb, table_name)
    assert counters.get("serverless-event4", "").totals == expected
    assert counters.get("serverless-event4", "k/").totals == expected
