"""Listing walks equal S3's ListObjectsV2 (moto server) on 3,000 awkward keys with tombstones.

S3 holds the live keys; the table holds the same keys plus tombstones (some under the same
prefixes). Most walks run the API over the in-memory index (`FakeFileReader`, DynamoDB Query
rules); one set runs it over DynamoDB Local's table and index.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import boto3.dynamodb.types
import pytest

from pipeline.adapters.dynamo.reader import DynamoFileReader
from pipeline.adapters.dynamo.schema import create_files_table
from pipeline.core.model import Action, FileEvent
from pipeline.core.settings import Settings
from pipeline.local.dynamodb_local import DynamoDBLocal
from pipeline.local.moto_server import MotoServer
from pipeline.read.api import build_app
from tests.support.api import FakeFileReader, api_context, body, rest_event
from tests.support.listing import (
    DELIMITERS,
    PREFIXES,
    START_AFTERS,
    api_entries,
    awkward_keys,
    s3_walk,
)

REGION = "us-east-1"
KEYS = awkward_keys(3_000)
TOMBSTONES = [f"{k}~deleted" for k in KEYS[::5] if len(k.encode()) < 1_000] + ["a/", "é/0"]
LIVE = sorted(set(KEYS) - set(TOMBSTONES))
BUCKET = f"listing-ref-{uuid.uuid4().hex[:8]}"


def row(name: str, deleted: bool = False) -> dict[str, Any]:
    event = FileEvent(
        filename=name,
        bucket=BUCKET,
        action=Action.DELETE if deleted else Action.PUT,
        event_name="ObjectRemoved:Delete" if deleted else "ObjectCreated:Put",
        event_time="2026-11-25T10:00:00.000Z",
        size=len(name),
        etag="d41d8cd98f00b204e9800998ecf8427e",
    )
    return event.row(now=1_800_000_000, tombstone_ttl_s=86_400)


def clients(server: MotoServer | DynamoDBLocal, service: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        region_name=REGION,
        endpoint_url=server.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def s3(moto_server: MotoServer) -> Iterator[Any]:
    client = clients(moto_server, "s3")
    client.create_bucket(Bucket=BUCKET)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=BUCKET, Key=k, Body=b""), LIVE))
    yield client


@pytest.fixture(scope="module")
def s3_reference(s3: Any) -> Any:
    @functools.cache
    def walk(prefix: str, delimiter: str | None, start_after: str | None) -> list[Any]:
        return s3_walk(s3, BUCKET, prefix=prefix, delimiter=delimiter, start_after=start_after)

    return walk


@pytest.fixture(scope="module")
def fake() -> FakeFileReader:
    reader = FakeFileReader([row(k) for k in LIVE], bucket=BUCKET)
    for name in TOMBSTONES:
        reader.put(row(name, deleted=True))
    return reader


def api_walk(
    app: Any, limit: int, prefix: str, delimiter: str | None, start_after: str | None
) -> list[tuple[str, str]]:
    entries: list[tuple[str, str]] = []
    query: dict[str, str] = {"limit": str(limit), "prefix": prefix}
    if delimiter:
        query["delimiter"] = delimiter
    if start_after:
        query["start_after"] = start_after
    pages = 0
    while True:
        response = app.resolve(rest_event("/files", query=query), api_context())
        assert response["statusCode"] == 200, response["body"]
        page = body(response)
        pages += 1
        batch = list(api_entries(page))
        assert len(batch) <= limit
        if page["next_token"] is not None:
            assert batch, "an empty page with a next_token"
        entries += batch
        if page["next_token"] is None:
            return entries
        query["next_token"] = page["next_token"]
        assert pages <= len(KEYS) + 1


COMBOS = [
    (prefix, delimiter, start_after)
    for prefix in PREFIXES
    for delimiter in DELIMITERS
    for start_after in START_AFTERS
    if (start_after is None or delimiter in (None, "/")) and (prefix or delimiter != "%")
]


@pytest.mark.parametrize(("prefix", "delimiter", "start_after"), COMBOS)
def test_walks_over_the_index_equal_s3(
    s3_reference: Any,
    fake: FakeFileReader,
    prefix: str,
    delimiter: str | None,
    start_after: str | None,
) -> None:
    # Given S3's own listing of the live keys
    expected = s3_reference(prefix, delimiter, start_after)
    app = build_app(fake, Settings(table_name="files", tracked_bucket=BUCKET))
    # When the API is walked at each limit (limit 1 only where the walk is short)
    for limit in (7, 100, 1_000) if len(expected) > 400 else (1, 7, 100, 1_000):
        got = api_walk(app, limit, prefix, delimiter, start_after)
        # Then: the same keys and common prefixes, in the same order, each once
        assert got == expected, (limit, prefix, delimiter, start_after)
    if delimiter:
        prefixes = [name for kind, name in expected if kind == "prefix"]
        assert len(prefixes) == len(set(prefixes))


def test_a_full_walk_at_limit_one_equals_s3(s3_reference: Any, fake: FakeFileReader) -> None:
    app = build_app(fake, Settings(table_name="files", tracked_bucket=BUCKET))
    assert api_walk(app, 1, "", "/", None) == s3_reference("", "/", None)
    assert api_walk(app, 1, "a/", None, None) == s3_reference("a/", None, None)


@pytest.fixture(scope="module")
def table(dynamodb_local: DynamoDBLocal) -> Iterator[tuple[Any, str]]:
    client = clients(dynamodb_local, "dynamodb")
    name = f"files-listing-{uuid.uuid4().hex[:8]}"
    create_files_table(client, name)
    serializer = boto3.dynamodb.types.TypeSerializer()
    items = [row(k) for k in LIVE] + [row(t, deleted=True) for t in TOMBSTONES]
    for start in range(0, len(items), 25):
        requests = [
            {"PutRequest": {"Item": {k: serializer.serialize(v) for k, v in item.items()}}}
            for item in items[start : start + 25]
        ]
        client.batch_write_item(RequestItems={name: requests})
    yield client, name
    client.delete_table(TableName=name)


@pytest.mark.parametrize(
    ("prefix", "delimiter", "start_after", "limits"),
    [
        ("", None, None, (1_000,)),
        ("", "/", None, (100,)),
        ("a/", "/", "a/", (7,)),
        ("é/", None, None, (7,)),
    ],
)
def test_walks_over_dynamodb_local_equal_s3(
    s3_reference: Any,
    table: tuple[Any, str],
    prefix: str,
    delimiter: str | None,
    start_after: str | None,
    limits: tuple[int, ...],
) -> None:
    client, name = table
    app = build_app(
        DynamoFileReader(client, name), Settings(table_name=name, tracked_bucket=BUCKET)
    )
    expected = s3_reference(prefix, delimiter, start_after)
    for limit in limits:
        assert api_walk(app, limit, prefix, delimiter, start_after) == expected, limit
