"""The read API on DynamoDB Local over HTTP: full walks, tokens, names, failures."""

from __future__ import annotations

import importlib
import json
import math
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from pipeline.adapters.dynamo.reader import DynamoFileReader, make_client
from pipeline.adapters.dynamo.schema import create_files_table
from pipeline.core.model import shard_of
from pipeline.core.settings import Settings
from pipeline.local.dynamodb_local import DynamoDBLocal
from pipeline.read.api import TOKEN_MESSAGE, build_app
from tests.support.api import api_context, body, file_event, rest_event
from tests.support.lambda_context import FakeLambdaContext

REGION = "ap-south-1"
FILES = 2_500
TOMBSTONES = 250
ODD_NAMES = ["dir0/with space.txt", "dir1/a+b.txt", "dir2/100%.txt", "dir3/файл 字 🙂.bin"]


def name(i: int) -> str:
    return f"dir{i % 5}/file-{i:05d}.txt"


def put_all(client: Any, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        client.batch_write_item(RequestItems={table: requests})


def live_item(filename: str, size: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"uploads/{filename}"},
        "filename": {"S": filename},
        "name_shard": {"S": f"uploads/{shard_of(filename)}"},
        "bucket": {"S": "uploads"},
        "size": {"N": str(size)},
        "etag": {"S": f"etag-{size}"},
        "event_time": {"S": "2025-04-09T12:00:00.000Z"},
        "event_name": {"S": "ObjectCreated:Put"},
    }


def tombstone(filename: str) -> dict[str, Any]:
    return {
        "pk": {"S": f"uploads/{filename}"},
        "filename": {"S": filename},
        "bucket": {"S": "uploads"},
        "event_time": {"S": "2025-04-09T13:00:00.000Z"},
        "event_name": {"S": "ObjectRemoved:Delete"},
        "deleted": {"BOOL": True},
        "expires_at": {"N": "1900000000"},
    }


@pytest.fixture(scope="module")
def client(dynamodb_local: DynamoDBLocal) -> Any:
    return boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=dynamodb_local.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def big_table(client: Any) -> Iterator[str]:
    """2,500 files (some with awkward names) and 250 tombstones, shared by the read-only tests."""
    table = f"files-api-{uuid.uuid4().hex[:10]}"
    create_files_table(client, table)
    items = [live_item(name(i), i) for i in range(FILES - len(ODD_NAMES))]
    items += [live_item(n, 10_000 + i) for i, n in enumerate(ODD_NAMES)]
    items += [tombstone(f"dir{i % 5}/deleted-{i:04d}.txt") for i in range(TOMBSTONES)]
    put_all(client, table, items)
    yield table
    client.delete_table(TableName=table)


@pytest.fixture(scope="module")
def app(client: Any, big_table: str) -> APIGatewayRestResolver:
    return build_app(
        DynamoFileReader(client, big_table),
        Settings(table_name=big_table, tracked_bucket="uploads"),
    )


def expected_names() -> set[str]:
    return {name(i) for i in range(FILES - len(ODD_NAMES))} | set(ODD_NAMES)


def get(app: APIGatewayRestResolver, event: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = app.resolve(event, api_context())
    return response


def walk(
    app: APIGatewayRestResolver, limit: int, prefix: str | None = None
) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        query = {"limit": str(limit)}
        if prefix is not None:
            query["prefix"] = prefix
        if token is not None:
            query["next_token"] = token
        response = get(app, rest_event("/files", query=query))
        assert response["statusCode"] == 200, response["body"]
        page = body(response)
        pages.append(page)
        token = page["next_token"]
        if token is None:
            return pages
        assert len(pages) <= FILES + 1, "the walk does not end"


@pytest.mark.parametrize("limit", [100, 1000])
def test_walking_all_pages_returns_each_file_exactly_once(
    app: APIGatewayRestResolver, limit: int
) -> None:
    # When all pages are walked at this limit
    pages = walk(app, limit)
    # Then every file comes exactly once, no tombstone, pages are full but the last,
    # and only the last page has a null next_token
    names = [item["filename"] for page in pages for item in page["items"]]
    assert len(names) == len(set(names)) == FILES
    assert set(names) == expected_names()
    assert len(pages) == math.ceil(FILES / limit)
    assert all(len(page["items"]) == limit for page in pages[:-1])
    assert 0 < len(pages[-1]["items"]) <= limit
    assert all(page["next_token"] is not None for page in pages[:-1])
    items = [item for page in pages for item in page["items"]]
    assert all(type(item["size"]) is int for item in items)
    assert not any("deleted" in item or "expires_at" in item for item in items)


@pytest.mark.parametrize(
    ("limit", "prefix", "count"), [(1, "dir3/file-000", 20), (7, "dir3/", 500)]
)
def test_small_limit_walks_return_each_file_once_in_order(
    app: APIGatewayRestResolver, limit: int, prefix: str, count: int
) -> None:
    # (small limits over the whole table are walked against the in-memory index in
    # tests/integration/test_listing_s3.py; here a prefix keeps the number of pages small)
    pages = walk(app, limit, prefix=prefix)
    names = [item["filename"] for page in pages for item in page["items"]]
    assert names == sorted(n for n in expected_names() if n.startswith(prefix))
    assert len(names) == count and len(pages) == math.ceil(count / limit)


def test_a_prefix_walk_returns_exactly_that_directory(app: APIGatewayRestResolver) -> None:
    pages = walk(app, 97, prefix="dir3/")
    names = [item["filename"] for page in pages for item in page["items"]]
    assert len(names) == len(set(names))
    assert set(names) == {n for n in expected_names() if n.startswith("dir3/")}


def test_every_tampered_character_of_a_real_token_is_400(app: APIGatewayRestResolver) -> None:
    # Given a genuine token of the second page
    token = body(get(app, rest_event("/files", query={"limit": "7"})))["next_token"]
    assert get(app, rest_event("/files", query={"next_token": token}))["statusCode"] == 200
    # When any one character is changed (to two different replacements)
    for position, original in enumerate(token):
        for replacement in {"A", "_", "."} - {original}:
            tampered = token[:position] + replacement + token[position + 1 :]
            response = get(app, rest_event("/files", query={"next_token": tampered}))
            # Then the request is refused with a JSON message, never a 500
            assert response["statusCode"] == 400, (position, replacement, response["body"])
            assert body(response) == {"message": TOKEN_MESSAGE}


def test_a_token_of_one_prefix_is_refused_with_another(app: APIGatewayRestResolver) -> None:
    first = body(get(app, rest_event("/files", query={"limit": "5", "prefix": "dir1/"})))
    token = first["next_token"]
    for other in ({"prefix": "dir2/"}, {"prefix": "dir1"}, {}):
        response = get(app, rest_event("/files", query={"next_token": token, **other}))
        assert response["statusCode"] == 400
        assert body(response) == {"message": "next_token was issued for a different prefix"}
    response = get(app, rest_event("/files", query={"next_token": token, "prefix": "dir1/"}))
    assert response["statusCode"] == 200


@pytest.mark.parametrize("filename", [*ODD_NAMES, name(0), name(2_000)])
@pytest.mark.parametrize("safe", ["/", ""])
def test_get_finds_files_by_their_encoded_names(
    app: APIGatewayRestResolver, filename: str, safe: str
) -> None:
    response = get(app, file_event(filename, safe=safe))
    assert response["statusCode"] == 200, response["body"]
    item = body(response)
    assert item["filename"] == filename
    assert type(item["size"]) is int
    assert set(item) == {"filename", "bucket", "size", "etag", "event_time", "event_name"}


@pytest.mark.parametrize("filename", ["dir0/deleted-0000.txt", "nope.txt", "x" * 2_000])
def test_get_of_a_tombstone_or_missing_file_is_404(
    app: APIGatewayRestResolver, filename: str
) -> None:
    response = get(app, file_event(filename))
    assert response["statusCode"] == 404
    assert body(response) == {"message": "File not found"}


def test_a_walk_during_writes_misses_no_file_that_stayed(client: Any) -> None:
    # Given 600 files
    table = f"files-api-{uuid.uuid4().hex[:10]}"
    create_files_table(client, table)
    try:
        put_all(client, table, [live_item(f"f{i:04d}", i) for i in range(600)])
        app = build_app(
            DynamoFileReader(client, table), Settings(table_name=table, tracked_bucket="uploads")
        )
        stable = {f"f{i:04d}" for i in range(600)}
        seen: list[str] = []
        token: str | None = None
        step = 0
        # When, between pages, new files arrive and others are deleted
        while True:
            query = {"limit": "50"} | ({"next_token": token} if token else {})
            page = body(get(app, rest_event("/files", query=query)))
            seen += [item["filename"] for item in page["items"]]
            token = page["next_token"]
            if token is None:
                break
            step += 1
            victims = [f"f{(step * 53 + k) % 600:04d}" for k in range(3)]
            put_all(
                client,
                table,
                [live_item(f"new-{step}-{k}", k) for k in range(5)]
                + [tombstone(v) for v in victims],
            )
            stable -= set(victims)
        # Then no file that existed throughout was missed, and none came twice
        assert stable <= set(seen)
        assert len(seen) == len(set(seen))
    finally:
        client.delete_table(TableName=table)


def test_a_missing_table_is_a_generic_500(client: Any) -> None:
    app = build_app(
        DynamoFileReader(client, "no-such-table"),
        Settings(table_name="no-such-table", tracked_bucket="uploads"),
    )
    for event in (rest_event("/files"), file_event("a.txt")):
        response = get(app, event)
        assert response["statusCode"] == 500
        assert body(response) == {"message": "Internal server error"}


def test_an_unreachable_endpoint_is_a_503(aws_env: str) -> None:
    settings = Settings(
        table_name="files",
        region=REGION,
        endpoint_url="http://127.0.0.1:9",
        tracked_bucket="uploads",
    )
    app = build_app(DynamoFileReader(make_client(settings), "files"), settings)
    response = get(app, rest_event("/files"))
    assert response["statusCode"] == 503
    assert body(response) == {"message": "Service temporarily unavailable, retry later"}


# --- the Lambda entry point, cold-started from the environment ---------------------------


@pytest.fixture
def handler(table_name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "FileTrackerTest")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "file-tracker-api")
    monkeypatch.delenv("PAGE_TOKEN_SECRET", raising=False)
    monkeypatch.setenv("TRACKED_BUCKET", "uploads")
    import handlers.api

    return importlib.reload(handlers.api)


def emitted_metrics(output: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        record = json.loads(line)
        for directive in record["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "FileTrackerTest"
            for metric in directive["Metrics"]:
                value = record[metric["Name"]]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + (
                    sum(value) if isinstance(value, list) else value
                )
    return totals


def test_the_handler_serves_pages_and_files_and_emits_metrics(
    handler: ModuleType,
    dynamodb: Any,
    table_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given three files and a tombstone in the handler's table
    put_all(
        dynamodb,
        table_name,
        [live_item(n, i) for i, n in enumerate(["a.txt", "b c/d+e.txt", "ü.txt"])]
        + [tombstone("gone.txt")],
    )
    context = FakeLambdaContext(function_name="api")
    # When pages of 2 are read, one file is fetched and one bad request is made
    first = handler.lambda_handler(rest_event("/files", query={"limit": "2"}), context)
    token = body(first)["next_token"]
    second = handler.lambda_handler(
        rest_event("/files", query={"limit": "2", "next_token": token}), context
    )
    one = handler.lambda_handler(file_event("b c/d+e.txt"), context)
    bad = handler.lambda_handler(rest_event("/files", query={"limit": "1e3"}), context)
    # Then the pages hold the three files, the file is found, the bad request is a 400
    names = [i["filename"] for r in (first, second) for i in body(r)["items"]]
    assert sorted(names) == ["a.txt", "b c/d+e.txt", "ü.txt"]
    assert body(second)["next_token"] is None
    assert body(one)["filename"] == "b c/d+e.txt"
    assert bad["statusCode"] == 400
    # And EMF metrics were written for each invocation
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["PagesServed"] == 2
    assert metrics["ItemsReturned"] == 3
    assert metrics["BadRequests"] == 1


@pytest.mark.parametrize("filename", ["..", ".", "a//b", "x/../y", "/lead"])
def test_keys_with_dot_or_empty_segments_are_read_by_the_key_form(
    client: Any, big_table: str, app: APIGatewayRestResolver, filename: str
) -> None:
    # Given a key no URL path can carry (API Gateway normalizes dot and empty segments)
    put_all(client, big_table, [live_item(filename, 7)])
    try:
        # When it is asked for with GET /files?key=
        response = get(app, rest_event("/files", query={"key": filename}))
        # Then the page holds exactly that file
        assert response["statusCode"] == 200, response["body"]
        assert [item["filename"] for item in body(response)["items"]] == [filename]
    finally:
        client.delete_item(TableName=big_table, Key={"pk": {"S": f"uploads/{filename}"}})
