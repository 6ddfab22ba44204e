"""Reconcile's repairs on moto carry their change feed position, and follow the writer's rule:
a repair answered later than W/2 after its stamp is stamped again."""

from __future__ import annotations

from typing import Any

from pipeline.adapters.dynamo.reconcile_store import DynamoRowStore
from pipeline.core.model import ConditionalWrite, WriteOutcome, item_key
from pipeline.feed.positions import Stamper, position, position_ms

T0 = 1_800_000_000.0
BUCKET = "repair-bucket"


class SteppingClock:
    """Returns the next of `times` on each call, then the last one forever."""

    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0) if len(self.times) > 1 else self.times[0]


def test_a_repair_carries_position_shard_and_kind(dynamodb: Any, table_name: str) -> None:
    store = DynamoRowStore(dynamodb, table_name, BUCKET, stamper=Stamper(5_000, lambda: T0))
    row = {
        "pk": item_key(BUCKET, "k"),
        "filename": "k",
        "bucket": BUCKET,
        "size": 1,
        "event_time": "T1",
    }
    assert store.write_conditional([ConditionalWrite(row, None)]) == {"k": WriteOutcome.WRITTEN}
    stored = store.read_rows(["k"])["k"]
    assert stored["changed"] == position(int(T0 * 1000), BUCKET, "k")
    assert stored["kind"] == "created" and stored["feed_shard"].startswith(f"{BUCKET}/")
    newer = {**row, "size": 2, "sequencer": "0A"}
    assert store.write_conditional([ConditionalWrite(newer, stored)])["k"] is WriteOutcome.WRITTEN
    assert store.read_rows(["k"])["k"]["kind"] == "overwritten"


def test_a_repair_answered_late_is_stamped_again(dynamodb: Any, table_name: str) -> None:
    # Given a clock that reads T0 when the put is sent and T0 + 10 s when its answer is seen
    clock = SteppingClock(T0, T0 + 10, T0 + 10)
    store = DynamoRowStore(dynamodb, table_name, BUCKET, stamper=Stamper(5_000, clock))
    row = {
        "pk": item_key(BUCKET, "late"),
        "filename": "late",
        "bucket": BUCKET,
        "size": 1,
        "event_time": "T1",
    }
    # When the repair is written
    assert store.write_conditional([ConditionalWrite(row, None)])["late"] is WriteOutcome.WRITTEN
    # Then the row carries a position stamped after the late answer, not the first one
    stored = store.read_rows(["late"])["late"]
    assert position_ms(stored["changed"]) == int((T0 + 10) * 1000)
    assert stored["changed"].endswith(position(0, BUCKET, "late")[13:])
