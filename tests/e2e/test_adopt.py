"""Adopting a bucket that already holds objects, on the local stack: EventBridge on (other
notification settings kept), a rule to the ingest queue, the first reconcile backfills; then
the bucket's events flow through EventBridge (AWS-shaped: pipeline/local/moto_eventbridge.py)."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from contextlib import redirect_stdout
from typing import Any
from urllib.parse import urlencode

import pytest

from pipeline.local.api_client import get
from pipeline.local.cli import main as cli
from pipeline.local.stack import Stack
from pipeline.local.template import read_stack_config
from tests.support import moto_state

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(engines: dict[str, Any]) -> Iterator[Stack]:
    config = (
        read_stack_config()
        .with_suffix(uuid.uuid4().hex[:8])
        .with_overrides(batching_window_s=0, function_timeout_s=5)
    )
    with Stack(config, pollers=1, **engines) as running:
        running.wait_until_idle(30)
        yield running


def test_adopt_keeps_other_notifications_backfills_and_then_follows_events(stack: Stack) -> None:
    # Given a bucket the stack did not create, with objects and a notification of its own
    s3 = stack.client("s3")
    legacy = f"legacy-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=legacy, CreateBucketConfiguration={"LocationConstraint": stack.region})
    sqs = stack.client("sqs")
    other = sqs.create_queue(QueueName=f"someone-else-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    other_arn = sqs.get_queue_attributes(QueueUrl=other, AttributeNames=["QueueArn"])
    theirs = {
        "QueueConfigurations": [
            {"QueueArn": other_arn["Attributes"]["QueueArn"], "Events": ["s3:ObjectCreated:*"]}
        ]
    }
    s3.put_bucket_notification_configuration(Bucket=legacy, NotificationConfiguration=theirs)
    for i in range(40):
        s3.put_object(Bucket=legacy, Key=f"old/{i:02d} é+.txt", Body=b"x" * i)

    # When it is adopted
    out = io.StringIO()
    with redirect_stdout(out):
        status = cli(
            [
                *("adopt", "--bucket", legacy, "--table", stack.table_name, "--json"),
                *("--endpoint-url", str(stack.endpoint_url), "--region", stack.region),
                *("--dynamodb-endpoint-url", str(stack.dynamodb_endpoint)),
                *("--queue-name", stack.queue_url.rsplit("/", 1)[-1]),
                *("--totals-settle", "5"),  # counter repairs wait the ingest timeout (5 s)
            ]
        )
    report = json.loads(out.getvalue())

    # Then the first reconcile backfilled every object, and the owner's notification stays
    assert status == 0
    assert (report["listed"], report["missing"], report["repaired"]) == (40, 40, 40)
    config = s3.get_bucket_notification_configuration(Bucket=legacy)
    assert "EventBridgeConfiguration" in config
    assert [q["QueueArn"] for q in config["QueueConfigurations"]] == [
        other_arn["Attributes"]["QueueArn"]
    ]
    live = moto_state.live_state(stack.client("dynamodb"), stack.table_name)
    assert live == moto_state.bucket_state(stack.moto, legacy)

    # And later uploads and deletes arrive through EventBridge and are applied
    s3.put_object(Bucket=legacy, Key="new/one two.txt", Body=b"hello")
    s3.delete_object(Bucket=legacy, Key="old/03 é+.txt")
    s3.put_object(Bucket=legacy, Key="old/04 é+.txt", Body=b"rewritten")
    stack.wait_until_idle(60)
    live = moto_state.live_state(stack.client("dynamodb"), stack.table_name)
    assert live == moto_state.bucket_state(stack.moto, legacy)
    item = moto_state.table_items(stack.client("dynamodb"), stack.table_name)["new/one two.txt"]
    assert item["event_name"] == {"S": "ObjectCreated:Put"}
    assert "seq" in item  # EventBridge events carry sequencers


def test_adopt_without_reconcile_registers_the_bucket(stack: Stack) -> None:
    # Given a bucket adopted with --no-reconcile (no backfill)
    s3 = stack.client("s3")
    adopted = f"fresh-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=adopted, CreateBucketConfiguration={"LocationConstraint": stack.region})
    status = cli(
        [
            *("adopt", "--bucket", adopted, "--table", stack.table_name, "--no-reconcile"),
            *("--endpoint-url", str(stack.endpoint_url), "--region", stack.region),
            *("--dynamodb-endpoint-url", str(stack.dynamodb_endpoint)),
            *("--queue-name", stack.queue_url.rsplit("/", 1)[-1]),
        ]
    )
    assert status == 0
    # When a file is uploaded to it
    s3.put_object(Bucket=adopted, Key="docs/a.txt", Body=b"hello")
    stack.wait_until_idle(60)
    # Then the API serves the bucket, its file and its totals (no 404 until a reconcile)
    query = urlencode({"bucket": adopted})
    listing = get(f"{stack.api_url}/files?{query}", signer=stack.signer)
    assert listing.status == 200, listing.body[:200]
    assert [f["filename"] for f in listing.json()["items"]] == ["docs/a.txt"]
    query = urlencode({"bucket": adopted, "prefix": "docs/"})
    totals = get(f"{stack.api_url}/summary?{query}", signer=stack.signer).json()
    assert (totals["files"], totals["bytes"]) == (1, 5)


def test_adopt_chooses_the_shards_and_the_bucket_s_rows_spread_over_them(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a bucket adopted with its own shard plan (readers' wait shortened: nothing of the
    # bucket was read before)
    s3 = stack.client("s3")
    adopted = f"wide-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=adopted, CreateBucketConfiguration={"LocationConstraint": stack.region})
    common = [
        *("adopt", "--bucket", adopted, "--table", stack.table_name, "--no-reconcile"),
        *("--endpoint-url", str(stack.endpoint_url), "--region", stack.region),
        *("--dynamodb-endpoint-url", str(stack.dynamodb_endpoint)),
        *("--queue-name", stack.queue_url.rsplit("/", 1)[-1]),
    ]
    assert cli([*common, "--index-shards", "0"]) == 2
    assert "--index-shards 0: a shard count must be a whole number from 1 to 256" in (
        capsys.readouterr().err
    )
    assert (
        cli([*common, "--index-shards", "16", "--feed-shards", "32", "--shards-wait-s", "0"]) == 0
    )
    assert "shard plan: 16 listing / 32 feed shards" in capsys.readouterr().err
    # When 60 files are uploaded to it
    names = [f"wide/{i:02d}.txt" for i in range(60)]
    for name in names:
        s3.put_object(Bucket=adopted, Key=name, Body=b"x")
    stack.wait_until_idle(60)
    # Then its rows use the plan's shards, beyond the defaults, and the API lists every file
    items = moto_state.table_items(stack.client("dynamodb"), stack.table_name, adopted)
    ours = [item for key, item in items.items() if key in names and "name_shard" in item]
    index = {int(item["name_shard"]["S"].rsplit("/", 1)[1]) for item in ours}
    feed = {int(item["feed_shard"]["S"].rsplit("/", 1)[1]) for item in ours}
    assert len(ours) == 60 and max(index) >= 8 and max(feed) >= 16
    query = urlencode({"bucket": adopted, "limit": "1000"})
    listing = get(f"{stack.api_url}/files?{query}", signer=stack.signer)
    assert [f["filename"] for f in listing.json()["items"]] == names


def test_events_of_an_untracked_bucket_are_acknowledged_and_not_stored(stack: Stack) -> None:
    # Given a bucket nobody adopted whose owner points its notifications at our queue
    s3 = stack.client("s3")
    foreign = f"someone-else-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=foreign, CreateBucketConfiguration={"LocationConstraint": stack.region})
    queue_arn = stack.resources.queue_arn
    s3.put_bucket_notification_configuration(
        Bucket=foreign,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    assert stack.poller is not None
    failed_before = stack.poller.stats.messages_failed
    # When objects are uploaded there
    for i in range(3):
        s3.put_object(Bucket=foreign, Key=f"x/{i}.bin", Body=b"z" * 10)
    stack.wait_until_idle(60)
    # Then the messages were acknowledged (nothing left, nothing failed) and nothing stored:
    # no row, no counter, and the API does not know the bucket
    scan = stack.client("dynamodb").get_paginator("scan")
    pages = scan.paginate(TableName=stack.table_name, ConsistentRead=True)
    keys = [item["pk"]["S"] for page in pages for item in page["Items"]]
    assert keys and not [pk for pk in keys if foreign in pk]  # no row, no #totals/ counter
    assert stack.poller.stats.messages_failed == failed_before
    query = urlencode({"bucket": foreign})
    assert get(f"{stack.api_url}/files?{query}", signer=stack.signer).status == 404
