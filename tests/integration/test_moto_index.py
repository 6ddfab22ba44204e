"""The fast GSI Query (pipeline.local.moto_index) returns exactly what moto's own Query does."""

from __future__ import annotations

import random
import uuid
from typing import Any

import boto3
import pytest
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType

from pipeline.local import moto_index
from pipeline.local.moto_server import MotoServer
from tests.support.tables import create_filename_table

REGION = "eu-west-1"
ALPHABET = ["a", "b", "/", "é", "🙂", "\x01", "z"]


@pytest.fixture(scope="module")
def setup(moto_server: MotoServer) -> Any:
    client = boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=moto_server.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    name = f"files-index-{uuid.uuid4().hex[:8]}"
    create_filename_table(client, name)
    rnd = random.Random(5)
    names = {"".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(1, 6))) for _ in range(600)}
    requests = []
    for i, filename in enumerate(sorted(names)):
        item: dict[str, Any] = {
            "filename": {"S": filename},
            "pad": {"S": "x" * rnd.randint(0, 30_000)},
        }
        if i % 4:
            item["shard"] = {"N": str(rnd.randint(0, 3))}  # the rest: not in the sparse index
        requests.append({"PutRequest": {"Item": item}})
    for start in range(0, len(requests), 25):
        client.batch_write_item(RequestItems={name: requests[start : start + 25]})
    backend = dynamodb_backends["123456789012"][REGION]
    return client, name, backend.get_table(name), sorted(names)


def conditions(names: list[str], rnd: random.Random) -> list[tuple[str | None, list[str]]]:
    pick = lambda: rnd.choice(names)  # noqa: E731
    result: list[tuple[str | None, list[str]]] = [(None, [])]
    for op in ("=", "<", "<=", ">", ">=", "BEGINS_WITH"):
        result += [(op, [pick()]), (op, ["a"]), (op, ["\U0010ffff"])]
    result += [("BETWEEN", sorted([pick(), pick()])), ("BETWEEN", ["a", "b"])]
    return result


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the fast path fell back to moto's query")


def test_the_fast_query_equals_motos_query(setup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client, name, table, names = setup
    client.query(  # (re)hooks the write counter, should another patch have replaced it
        TableName=name,
        IndexName="by_name",
        KeyConditionExpression="#s = :s",
        ExpressionAttributeNames={"#s": "shard"},
        ExpressionAttributeValues={":s": {"N": "0"}},
    )
    assert moto_index._counting_writes()
    rnd = random.Random(9)
    compared = 0
    for shard in ("0", "1", "3", "7"):
        for op, values in conditions(names, rnd):
            for limit in (1, 2, 7, 100, 1_000):
                args = (
                    DynamoType({"N": shard}),
                    op,
                    [DynamoType({"S": v}) for v in values],
                    limit,
                    None,
                    True,
                    None,
                    "by_name",
                    False,
                )
                kwargs: dict[str, Any] = {
                    "hash_key_conditions": [("shard", DynamoType({"N": shard}))],
                    "range_key_conditions": [
                        ("filename", op, [DynamoType({"S": v}) for v in values])
                    ]
                    if op
                    else [],
                }
                slow = moto_index.original_query(table, *args, **kwargs)
                with monkeypatch.context() as patch:
                    patch.setattr(moto_index, "_ORIGINAL_QUERY", _refuse)
                    fast = moto_index._query(table, *args, **kwargs)
                assert [i.to_json() for i in fast[0]] == [i.to_json() for i in slow[0]]
                assert fast[1:] == slow[1:], (shard, op, values, limit)
                compared += 1
    assert compared > 300


def test_the_server_serves_fresh_results_after_writes(setup: Any) -> None:
    client, name, _, _ = setup

    def shard_names() -> list[str]:
        response = client.query(
            TableName=name,
            IndexName="by_name",
            KeyConditionExpression="#s = :s",
            ExpressionAttributeNames={"#s": "shard"},
            ExpressionAttributeValues={":s": {"N": "9"}},
        )
        return [i["filename"]["S"] for i in response["Items"]]

    assert shard_names() == []
    client.put_item(TableName=name, Item={"filename": {"S": "new"}, "shard": {"N": "9"}})
    assert shard_names() == ["new"]
    client.update_item(
        TableName=name,
        Key={"filename": {"S": "new"}},
        UpdateExpression="REMOVE #s",
        ExpressionAttributeNames={"#s": "shard"},
    )
    assert shard_names() == []


def test_writes_through_a_handler_installed_later_are_still_seen(
    setup: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given another patch that replaces the DynamoDB handler after ours (dropping our wrapper)
    from moto.dynamodb.responses import DynamoHandler

    client, name, _, _ = setup
    pristine = getattr(moto_index._call_action, "__wrapped__", None)
    assert pristine is not None
    query = {
        "TableName": name,
        "IndexName": "by_name",
        "KeyConditionExpression": "#s = :s",
        "ExpressionAttributeNames": {"#s": "shard"},
        "ExpressionAttributeValues": {":s": {"N": "11"}},
    }
    assert client.query(**query)["Items"] == []  # the sorted lists are built
    monkeypatch.setattr(DynamoHandler, "call_action", pristine)
    # When a row is written through it
    client.put_item(TableName=name, Item={"filename": {"S": "late"}, "shard": {"N": "11"}})
    # Then the next index query sees the write (the stale lists are not used) and re-hooks
    assert [i["filename"]["S"] for i in client.query(**query)["Items"]] == ["late"]
    assert moto_index._counting_writes()
    client.delete_item(TableName=name, Key={"filename": {"S": "late"}})
    assert client.query(**query)["Items"] == []
