"""The read side serves (or leaves out) any value DynamoDB can store: never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.adapters.dynamo.reader import DynamoFileReader, from_item
from pipeline.core.fields import MAX_OBJECT_SIZE
from pipeline.core.model import shard_of
from pipeline.core.settings import Settings
from pipeline.read.api import build_app
from tests.support.api import api_context, body, file_event, rest_event

POISON: dict[str, dict[str, Any]] = {
    "size-1e38": {"size": {"N": "100000000000000000000000000000000000000"}},  # issue 10
    "size-9.99e125": {"size": {"N": "9.9999999999999999999999999999999999999E+125"}},
    "size-tiny": {"size": {"N": "-1E-130"}},
    "size-fraction": {"size": {"N": "1.5"}},
    "size-string": {"size": {"S": "12"}},
    "size-bool": {"size": {"BOOL": True}},
    "size-null": {"size": {"NULL": True}},
    "etag-number": {"size": {"N": "1"}, "etag": {"N": "7"}},
    "odd-types": {
        "size": {"N": "2"},
        "blob": {"B": b"\x00\xff"},
        "tags": {"SS": ["b", "a"]},
        "numbers": {"NS": ["1E+38", "0.5"]},
        "blobs": {"BS": [b"\x01"]},
        "deep": {"M": {"l": {"L": [{"N": "1E+100"}, {"NULL": True}, {"M": {}}]}}},
        "event_time": {"L": []},
    },
}


@pytest.fixture
def app(dynamodb: Any, table_name: str) -> Any:
    for name, attributes in POISON.items():
        item = {
            "pk": {"S": f"b-1/{name}"},
            "filename": {"S": name},
            "name_shard": {"S": f"b-1/{shard_of(name)}"},
            **attributes,
        }
        dynamodb.put_item(TableName=table_name, Item=item)
    return build_app(
        DynamoFileReader(dynamodb, table_name),
        Settings(table_name=table_name, tracked_bucket="b-1"),
    )


@pytest.mark.parametrize("name", sorted(POISON))
def test_any_stored_value_is_served_without_a_500(app: Any, name: str) -> None:
    # When the row is read alone
    response = app.resolve(file_event(name), api_context())
    # Then it is served; values the document cannot describe are left out
    assert response["statusCode"] == 200, response["body"]
    item = body(response)
    assert item["filename"] == name
    if "size" in item:
        assert type(item["size"]) is int and 0 <= item["size"] <= MAX_OBJECT_SIZE


def test_listings_through_poisoned_rows_are_200(app: Any) -> None:
    for limit in ("1", "1000"):
        query: dict[str, str] = {"limit": limit}
        seen: list[str] = []
        while True:
            response = app.resolve(rest_event("/files", query=query), api_context())
            assert response["statusCode"] == 200, response["body"]
            page = body(response)
            seen += [i["filename"] for i in page["items"]]
            if page["next_token"] is None:
                break
            query["next_token"] = page["next_token"]
        assert seen == sorted(POISON)


def test_the_decoder_never_raises_and_keeps_what_json_can_say() -> None:
    row = from_item(
        {
            "filename": {"S": "x"},
            **POISON["odd-types"],
            "big": {"N": "100000000000000000000000000000000000000"},
            "weird": {"X": "?"},
        }
    )
    assert row["big"] == 10**38
    assert row["tags"] == ["a", "b"] and row["numbers"] == [0.5, 10**38]
    assert row["blob"] == "AP8=" and row["deep"] == {"l": [10**100, None, {}]}
    assert "weird" not in row
