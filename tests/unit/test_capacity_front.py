"""The capacity front's throughput rules (load/throughput.py, load/front.py), on a fake clock.

Each rule cites its AWS page in load/throughput.py: per partition-key value 1,000 WCU/s and
3,000 RCU/s on the table and on each GSI, 1 KB write units and 4 KB read units, a GSI's
throttle refusing the base table's write (back-pressure), a throttled request consuming
nothing, the per-key bucket holding `burst_s` of its rate.
"""

from __future__ import annotations

from typing import Any

import pytest

from load.front_ops import Front
from load.front_state import INDEX_MESSAGE, TABLE_MESSAGE, FrontError, FrontState
from load.throughput import READ, TABLE, WRITE, Limits, Meter, TokenBucket
from pipeline.adapters.dynamo.statements import write_statement
from pipeline.adapters.dynamo.writer import ConditionalWrite
from pipeline.core.model import Action, FileEvent

T = "files"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def front(limits: Limits) -> tuple[Front, Clock]:
    clock = Clock()
    return Front(FrontState(Meter(limits, clock=clock))), clock


def create(key: str, *, bucket: str = "b", size: int = 1) -> dict[str, Any]:
    event = FileEvent(
        key, bucket, Action.PUT, "ObjectCreated:Put", "2026-01-01T00:00:00.000Z", size
    )
    return write_statement(T, ConditionalWrite(event.row(now=0, tombstone_ttl_s=60), None))


def raw_insert(key: str, padding: int = 0) -> dict[str, Any]:
    """A row without index attributes (in neither index: sparse), `padding` bytes long."""
    return {
        "Statement": f"INSERT INTO \"{T}\" VALUE {{'pk': ?, 'pad': ?}}",
        "Parameters": [{"S": key}, {"S": "x" * padding}],
    }


def codes(response: dict[str, Any]) -> list[str | None]:
    return [answer.get("Error", {}).get("Code") for answer in response["Responses"]]


def test_a_key_value_past_its_write_rate_is_throttled_and_refills_with_time() -> None:
    # Given a table key that takes 10 WCU/s (1,000 at scale 1:100), no burst beyond 1 s
    api, clock = front(Limits(scale=100))
    # When 12 one-KB writes of that one key arrive within the same instant (UPDATE by INSERT
    # then conditional UPDATEs of the same key: each is a write of the key)
    first = api.batch_execute_statement({"Statements": [raw_insert("b/k")]})
    update = {
        "Statement": f'UPDATE "{T}" SET "pad"=? WHERE "pk"=?',
        "Parameters": [{"S": "y"}, {"S": "b/k"}],
    }
    answers = [codes(api.batch_execute_statement({"Statements": [update]}))[0] for _ in range(11)]
    # Then the first 10 units pass and the 11th and 12th are refused with on-demand's error
    assert codes(first) == [None]
    assert answers[:9] == [None] * 9
    assert answers[9:] == ["ThrottlingError", "ThrottlingError"]
    assert api.state.meter.throttled == {(WRITE, TABLE, "b/k"): 2}
    # And another key is not affected: the limit is per partition-key value
    assert codes(api.batch_execute_statement({"Statements": [raw_insert("b/other")]})) == [None]
    # When a tenth of a second passes, one unit has come back
    clock.now += 0.1
    assert codes(api.batch_execute_statement({"Statements": [update]})) == [None]
    assert codes(api.batch_execute_statement({"Statements": [update]})) == ["ThrottlingError"]


def test_write_units_follow_the_item_size_in_kb() -> None:
    # Given a key that takes 10 WCU/s
    api, _ = front(Limits(scale=100))
    # When a 3.5 KB item is written 3 times (4 WCU each: 12 > 10)
    statement = raw_insert("b/big", padding=3500)
    first = api.batch_execute_statement({"Statements": [statement]})
    again = [
        codes(
            api.batch_execute_statement(
                {
                    "Statements": [
                        {
                            "Statement": f'UPDATE "{T}" SET "pad"=? WHERE "pk"=?',
                            "Parameters": [{"S": "z" * 3500}, {"S": "b/big"}],
                        }
                    ]
                }
            )
        )[0]
        for _ in range(2)
    ]
    # Then the third is throttled: 4 + 4 units fit, 4 more do not
    assert codes(first) == [None]
    assert again == [None, "ThrottlingError"]
    assert api.state.meter.consumed[f"{WRITE}:{TABLE}"] == 8


def test_an_index_throttle_refuses_the_table_write_and_changes_nothing() -> None:
    # Given a table whose keys are all different but whose listing index shard is one key
    # value: 10 WCU/s per key value at 1:100 (each create: 1 KB in by_name, 1 in the table)
    api, _ = front(Limits(scale=100))
    keys = [f"k{i}" for i in range(400)]
    same_shard = [k for k in keys if _shard(k) == _shard("k0")]
    assert len(same_shard) >= 12
    # When 12 new files of that shard are created in one instant (12 distinct table keys)
    answers = []
    for key in same_shard[:12]:
        answers += codes(api.batch_execute_statement({"Statements": [create(key)]}))
    # Then the 11th and 12th are refused: back-pressure from the index, not the table's keys
    assert answers[:10] == [None] * 10
    assert answers[10:] == ["ThrottlingError", "ThrottlingError"]
    throttled = api.state.meter.throttled
    assert set(throttled) == {(WRITE, "by_name", f"b/{_shard('k0')}")}
    # And the refused writes are not in the table (nothing half-applied)
    assert f"b/{same_shard[10]}" not in api.state.items
    assert f"b/{same_shard[9]}" in api.state.items


def _shard(key: str) -> int:
    from pipeline.core.model import shard_of

    return shard_of(key)


def test_an_index_throttle_on_a_single_write_is_a_throttling_exception_naming_the_index() -> None:
    # Given a listing index shard with no write units left
    api, _ = front(Limits(scale=1000))  # 1 WCU/s per key value
    keys = [f"k{i}" for i in range(200)]
    first, second = [k for k in keys if _shard(k) == _shard("k0")][:2]
    api.execute_statement(create(first))
    # When a single ExecuteStatement would write the same shard again
    with pytest.raises(FrontError) as refused:
        api.execute_statement(create(second))
    # Then DynamoDB's on-demand throttle comes back, naming the index
    assert refused.value.code == "ThrottlingException"
    assert refused.value.message == INDEX_MESSAGE
    reasons = refused.value.extra["ThrottlingReasons"]
    assert reasons[0]["reason"] == "IndexWriteKeyRangeThroughputExceeded"


def test_a_failed_condition_consumes_the_tables_units_but_none_of_the_indexes() -> None:
    api, _ = front(Limits(scale=1))
    api.batch_execute_statement({"Statements": [create("a")]})
    # When the same INSERT is sent again (DuplicateItem)
    assert codes(api.batch_execute_statement({"Statements": [create("a")]})) == ["DuplicateItem"]
    # Then the table billed 2 writes, the listing index 1
    consumed = api.state.meter.consumed
    assert consumed[f"{WRITE}:{TABLE}"] == 2
    assert consumed[f"{WRITE}:by_name"] == 1


def test_batch_get_returns_throttled_keys_unprocessed_and_all_throttled_is_an_exception() -> None:
    # Given keys that take 3 RCU/s each at 1:1000 (3,000 / 1000)
    api, _ = front(Limits(scale=1000))
    request = {T: {"Keys": [{"pk": {"S": "b/x"}}, {"pk": {"S": "b/y"}}], "ConsistentRead": True}}
    for _ in range(3):  # 3 consistent reads of each (1 RCU each) use up both keys' budget
        assert api.batch_get_item({"RequestItems": request})["UnprocessedKeys"] == {}
    # When a fourth read of b/x arrives with a fresh key b/z
    mixed = {T: {"Keys": [{"pk": {"S": "b/x"}}, {"pk": {"S": "b/z"}}], "ConsistentRead": True}}
    response = api.batch_get_item({"RequestItems": mixed})
    # Then b/x comes back unprocessed (with the request's other parameters), b/z is read
    assert response["UnprocessedKeys"][T]["Keys"] == [{"pk": {"S": "b/x"}}]
    assert response["UnprocessedKeys"][T]["ConsistentRead"] is True
    # When every key of a request is refused: the on-demand ThrottlingException
    with pytest.raises(FrontError) as refused:
        api.batch_get_item({"RequestItems": request})
    assert refused.value.code == "ThrottlingException"
    assert refused.value.message == TABLE_MESSAGE
    assert api.state.meter.throttled[(READ, TABLE, "b/y")] == 1


def test_burst_allowance_is_the_buckets_capacity_and_unused_capacity_does_not_pile_up() -> None:
    # Given a bucket of 10 units/s holding 3 s of them (burst_s=3)
    bucket = TokenBucket(rate=10, capacity=30)
    # When it has been idle for a minute
    assert bucket.level(0.0) == 30
    bucket.take(30, 0.0)
    assert bucket.level(60.0) == 30  # capped: no more than burst_s of unused capacity
    # And a front whose keys burst 3 s: 30 one-KB writes pass at once, the 31st is refused
    api, _ = front(Limits(scale=100, burst_s=3))
    api.batch_execute_statement({"Statements": [raw_insert("b/k")]})
    update = {
        "Statement": f'UPDATE "{T}" SET "pad"=? WHERE "pk"=?',
        "Parameters": [{"S": "y"}, {"S": "b/k"}],
    }
    answers = [codes(api.batch_execute_statement({"Statements": [update]}))[0] for _ in range(30)]
    assert answers.count(None) == 29 and answers[-1] == "ThrottlingError"


def test_the_table_wide_quota_throttles_spread_keys() -> None:
    # Given a table-wide quota of 40 WRU/s (40,000 / 1000) and keys far from their own limit
    api, _ = front(Limits(scale=1000, key_wcu=100_000))
    answers = []
    for i in range(45):
        answers += codes(api.batch_execute_statement({"Statements": [raw_insert(f"b/{i}")]}))
    # Then the 41st write is refused by the table's quota
    assert answers.count(None) == 40
    assert api.state.meter.throttled == {(WRITE, TABLE, "*"): 5}


def test_per_invocation_keys_are_charged_one_nth() -> None:
    # Given 1:100 with the folder counters named per-invocation
    api, _ = front(Limits(scale=100, per_invocation=("#totals/",)))
    request = {
        "TableName": T,
        "Key": {"pk": {"S": "#totals/b/"}},
        "UpdateExpression": "ADD #f :one",
        "ExpressionAttributeNames": {"#f": "files"},
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }
    # When the counter is updated 1,000 times in an instant (1,000 WCU: one real second's)
    for _ in range(1000):
        api.update_item(request)
    # Then none is refused (each counts 1/100 of 10 WCU/s) and the item holds the sum
    assert api.state.meter.throttled == {}
    assert api.state.items["#totals/b/"]["files"] == {"N": "1000"}
    with pytest.raises(FrontError) as refused:
        api.update_item(request)
    assert refused.value.code == "ThrottlingException"


def test_an_update_whose_condition_fails_is_refused_and_changes_nothing() -> None:
    # Given a stored row
    api, _ = front(Limits(scale=1))
    api.batch_execute_statement({"Statements": [raw_insert("b/k")]})
    update = {
        "Statement": f'UPDATE "{T}" SET "pad"=? WHERE "pk"=? AND "pad"=?',
        "Parameters": [{"S": "new"}, {"S": "b/k"}, {"S": "not-what-is-stored"}],
    }
    # When a compare-and-swap expects another value, and another targets a missing key
    missing = {**update, "Parameters": [{"S": "new"}, {"S": "b/none"}, {"S": ""}]}
    answers = codes(api.batch_execute_statement({"Statements": [update, missing]}))
    # Then both are ConditionalCheckFailed and the row is unchanged
    assert answers == ["ConditionalCheckFailed", "ConditionalCheckFailed"]
    assert api.state.items["b/k"]["pad"] == {"S": ""}
    assert "b/none" not in api.state.items
