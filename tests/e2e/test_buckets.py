"""Two buckets in one table on the local stack (issue 18, "Many buckets, one index").

The stack's own bucket (S3 notifications) and an adopted one (EventBridge) share 100 keys.
Creates, overwrites and deletes go to both while each bucket is reconciled; then each
bucket's `GET /files?bucket=` walk equals its ListObjectsV2 (keys, sizes, ETags).

"Never changed by the other bucket" is observed, not inferred from the end state: a spy on
the two write adapters (ingest's `DynamoFileStore.write_conditional`, reconcile's
`DynamoRowStore._put`) records every row written, and every body uploaded names its bucket,
so every ETag identifies the bucket its content came from. Each recorded write must carry a
`pk` of its own bucket, and content (ETag) uploaded to that bucket's key; reconcile's writes
also come from the store of that bucket.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import redirect_stdout
from typing import Any

import pytest

from pipeline.adapters.dynamo import reconcile_store, writer
from pipeline.core.model import WriteOutcome
from pipeline.local.api_client import list_files
from pipeline.local.cli import main as cli
from pipeline.local.stack import Stack
from pipeline.local.template import read_stack_config
from tests.support.idle import IDLE_TOTALS_TIMING

pytestmark = pytest.mark.e2e

KEYS = [f"shared/{i % 7}/key {i:03d}{' é' if i % 23 == 0 else ''}+.txt" for i in range(100)]


class Spy:
    """Every row the two write adapters wrote: (adapter, store's bucket or None, row)."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str | None, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def record(self, adapter: str, bucket: str | None, row: dict[str, Any]) -> None:
        with self.lock:
            self.writes.append((adapter, bucket, dict(row)))


@pytest.fixture(scope="module")
def spy() -> Iterator[Spy]:
    found = Spy()
    patch = pytest.MonkeyPatch()
    conditional = writer.DynamoFileStore.write_conditional
    put = reconcile_store.DynamoRowStore._put

    async def write_conditional(self: Any, writes: Any, deadline: Any, stats: Any) -> Any:
        outcomes = await conditional(self, writes, deadline, stats)
        for write in writes:
            if outcomes.get(write.row["pk"]) is WriteOutcome.WRITTEN:
                found.record("ingest", None, write.row)
        return outcomes

    def put_one(self: Any, write: Any) -> Any:
        outcome = put(self, write)
        if outcome is WriteOutcome.WRITTEN:
            found.record("reconcile", self.bucket, write.row)
        return outcome

    patch.setattr(writer.DynamoFileStore, "write_conditional", write_conditional)
    patch.setattr(reconcile_store.DynamoRowStore, "_put", put_one)
    yield found
    patch.undo()


@pytest.fixture(scope="module")
def stack(spy: Spy, engines: dict[str, Any]) -> Iterator[Stack]:
    config = (
        read_stack_config()
        .with_suffix(uuid.uuid4().hex[:8])
        .with_overrides(batching_window_s=0, visibility_timeout_s=10, function_timeout_s=30)
    )
    with Stack(
        config, pollers=2, in_process=True, **engines
    ) as running:  # the spy sees the handlers
        running.wait_until_idle(30)
        yield running


def body(bucket: str, key: str, version: int) -> bytes:
    return f"{bucket}|{key}|{version}|".encode() * (1 + version % 3)


def reconcile(stack: Stack, bucket: str) -> dict[str, Any]:
    args = ["reconcile", "--json", "--endpoint-url", str(stack.endpoint_url)]
    args += ["--dynamodb-endpoint-url", str(stack.dynamodb_endpoint)]
    args += ["--bucket", bucket, "--table", stack.table_name, "--region", stack.region]
    args += ["--checkpoint-path", f"/file-tracker/{stack.table_name}/{bucket}/"]
    # rows are this test's subject; folder totals (and their settle wait of the ingest timeout
    # after each folder's walk) are proven in test_totals.py
    args += ["--no-totals"]
    out = io.StringIO()
    with redirect_stdout(out):
        status = cli(args)
    assert status in (0, 3), out.getvalue()
    report: dict[str, Any] = json.loads(out.getvalue())
    return report


def listed(stack: Stack, bucket: str) -> dict[str, tuple[int, str]]:
    """ListObjectsV2 of the bucket: key -> (size, ETag without quotes)."""
    s3 = stack.client("s3")
    found: dict[str, tuple[int, str]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = (obj["Size"], obj["ETag"].strip('"'))
    return found


def walked(stack: Stack, bucket: str) -> dict[str, tuple[int, str]]:
    items = list_files(stack.api_url, limit=37, signer=stack.signer, bucket=bucket)
    assert all(item["bucket"] == bucket for item in items)
    names = [item["filename"] for item in items]
    assert names == sorted(names, key=lambda n: n.encode()) and len(set(names)) == len(names)
    return {item["filename"]: (item["size"], item["etag"]) for item in items}


def test_two_buckets_sharing_keys_stay_apart_through_events_and_repairs(
    stack: Stack, spy: Spy
) -> None:
    s3 = stack.client("s3")
    own, adopted = stack.bucket, f"adopted-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=adopted, CreateBucketConfiguration={"LocationConstraint": stack.region})
    uploaded: dict[tuple[str, str], set[str]] = {}

    def upload(bucket: str, key: str, version: int) -> None:
        data = body(bucket, key, version)
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        uploaded.setdefault((bucket, key), set()).add(hashlib.md5(data).hexdigest())

    # Given both buckets hold the same 100 keys (different content), the adopted one from
    # before it was adopted
    for key in KEYS:
        upload(adopted, key, 0)
        upload(own, key, 0)
    # When the second bucket is adopted (EventBridge on, rule to the queue, backfill); its
    # objects had no events, so no ingest delta of its counters can be in flight
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(out):
        for name, value in IDLE_TOTALS_TIMING.items():
            patch.setenv(name, value)
        status = cli(
            [
                *("adopt", "--bucket", adopted, "--table", stack.table_name, "--json"),
                *("--endpoint-url", str(stack.endpoint_url), "--region", stack.region),
                *("--dynamodb-endpoint-url", str(stack.dynamodb_endpoint)),
                *("--queue-name", stack.queue_url.rsplit("/", 1)[-1]),
            ]
        )
    assert status == 0, out.getvalue()
    assert json.loads(out.getvalue())["repaired"] == 100
    stack.wait_until_idle(60)

    # And overwrites and deletes flow into both while both are reconciled
    def traffic() -> None:
        for i, key in enumerate(KEYS):
            for bucket in (own, adopted) if i % 2 else (adopted, own):
                if i % 5 == 4:
                    s3.delete_object(Bucket=bucket, Key=key)
                elif i % 5 != 3 or bucket == own:  # key 3, 8, ...: overwritten in one only
                    upload(bucket, key, 1 + i % 4)

    flowing = threading.Thread(target=traffic)
    flowing.start()
    during = [reconcile(stack, own), reconcile(stack, adopted)]
    flowing.join(120)
    stack.wait_until_idle(90)
    after = [reconcile(stack, own), reconcile(stack, adopted)]
    stack.wait_until_idle(60)

    # Then each bucket's walk through the API is exactly its listing
    for bucket in (own, adopted):
        expected = listed(stack, bucket)
        assert len(expected) == 80
        assert walked(stack, bucket) == expected, bucket
    assert all(report["failed"] == 0 for report in during + after)

    # And every row ever written belongs to the bucket whose event or repair wrote it
    assert spy.writes, "the spy saw no write: it would prove nothing"
    by_bucket: dict[str, int] = {}
    for adapter, store_bucket, row in spy.writes:
        bucket, key = row["bucket"], row["filename"]
        assert row["pk"] == f"{bucket}/{key}", (adapter, row)
        if adapter == "reconcile":
            assert store_bucket == bucket, (store_bucket, row)
        if not row.get("deleted"):
            assert row["name_shard"].startswith(f"{bucket}/"), row
            assert row["etag"] in uploaded[(bucket, key)], (adapter, row)  # its bucket's content
        by_bucket[bucket] = by_bucket.get(bucket, 0) + 1
    assert set(by_bucket) == {own, adopted}
    writers = {(adapter, row["bucket"]) for adapter, _, row in spy.writes}
    assert {("ingest", own), ("ingest", adopted), ("reconcile", adopted)} <= writers
