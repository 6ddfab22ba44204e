"""Versioned buckets and lifecycle expirations on the local stack, with real S3 operations.

The stack is template.yaml's with BucketVersioning=Enabled; moto notifies like AWS
(`pipeline.local.moto_s3_events`), lifecycle expirations are performed by its `expire`
(in moto's process). Every
notification S3 sends is also captured; after the live run, all of them are sent again, each
twice, shuffled. After each phase every key's row must equal HeadObject (no versionId), and
GET /files must list exactly the bucket's objects.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipeline.local import moto_s3_events
from pipeline.local.api_client import file_url, get
from pipeline.local.stack import Stack
from pipeline.local.template import read_stack_config
from tests.support.reliability import api_state, bucket_state, table_rows
from tests.support.s3spy import capture_notifications

pytestmark = pytest.mark.e2e

POLLERS = 3
"""Concurrent invocations, as Lambda runs them (writes are race-free: conditional)."""
NAMES = ["plain.txt", "with space/ä+b.bin", "emoji 🎉 %20.txt"]
"""Each case runs on one key per name (form-URL-encoding and UTF-8 in every case)."""


def expire(stack: Stack, bucket: str, key: str, version_id: str | None = None) -> str | None:
    """S3 lifecycle expires `key` (or its version), in moto's process."""
    if stack.moto is None:
        raise RuntimeError("lifecycle expirations need the embedded moto server")
    return stack.moto.call(moto_s3_events.expire, bucket, key, version_id=version_id)


def _stack(versioning: str, engines: dict[str, Any]) -> Stack:
    config = (
        read_stack_config(parameters={"BucketVersioning": versioning})
        .with_suffix(uuid.uuid4().hex[:8])
        .with_overrides(visibility_timeout_s=2, function_timeout_s=10, batching_window_s=0)
    )
    return Stack(config, pollers=POLLERS, **engines)


@pytest.fixture(scope="module")
def versioned(engines: dict[str, Any]) -> Iterator[Stack]:
    with _stack("Enabled", engines) as running:
        running.wait_until_idle(30)  # the s3:TestEvent
        yield running


def head(s3: Any, bucket: str, key: str) -> tuple[int, str, str] | None:
    """HeadObject without versionId: (size, etag, version id), or None (404)."""
    try:
        found = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 404, error
        return None
    return found["ContentLength"], found["ETag"].strip('"'), found.get("VersionId")


def row(item: dict[str, Any] | None) -> tuple[int, str, str] | None:
    """A table item in HeadObject's terms."""
    if item is None or item.get("deleted", {}).get("BOOL"):
        return None
    return int(item["size"]["N"]), item["etag"]["S"], item.get("version_id", {}).get("S")


def assert_table_equals_s3(stack: Stack, keys: set[str]) -> None:
    s3 = stack.client("s3")
    rows = table_rows(stack.client("dynamodb"), stack.table_name)
    expected = {key: head(s3, stack.bucket, key) for key in sorted(keys)}
    actual = {key: row(rows.get(key)) for key in sorted(keys)}
    assert actual == expected
    # and the API lists exactly the bucket's current objects, each with its size and ETag
    assert api_state(stack.api_url, limit=7) == bucket_state(s3, stack.bucket)


def resend_shuffled(stack: Stack, bodies: list[str], seed: int) -> None:
    """Every captured notification again, twice, in random order."""
    again = bodies * 2
    random.Random(seed).shuffle(again)
    sqs = stack.client("sqs")
    for start in range(0, len(again), 10):
        entries = [
            {"Id": str(i), "MessageBody": body} for i, body in enumerate(again[start : start + 10])
        ]
        sqs.send_message_batch(QueueUrl=stack.queue_url, Entries=entries)


def versions(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    """The key's versions and delete markers, newest first."""
    listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
    entries = [{**v, "Marker": False} for v in listed.get("Versions", []) if v["Key"] == key] + [
        {**m, "Marker": True} for m in listed.get("DeleteMarkers", []) if m["Key"] == key
    ]
    return sorted(entries, key=lambda v: v["LastModified"], reverse=True)


def test_every_versioned_case_and_lifecycle_ends_equal_to_head_object(versioned: Stack) -> None:
    stack = versioned
    s3 = stack.client("s3")
    bucket = stack.bucket
    keys: set[str] = set()

    def put(key: str, body: bytes) -> str:
        keys.add(key)
        return str(s3.put_object(Bucket=bucket, Key=key, Body=body)["VersionId"])

    # Given every case of issue 10 on a versioned bucket, performed with real S3 calls
    with capture_notifications(stack.moto, bucket) as captured:
        for n, name in enumerate(NAMES):
            # a noncurrent version deleted: unchanged
            old = put(f"noncurrent/{name}", b"old")
            put(f"noncurrent/{name}", b"newer content")
            s3.delete_object(Bucket=bucket, Key=f"noncurrent/{name}", VersionId=old)
            # the current version deleted: the previous one is current again
            put(f"current/{name}", b"previous" * (n + 1))
            top = put(f"current/{name}", b"top")
            s3.delete_object(Bucket=bucket, Key=f"current/{name}", VersionId=top)
            # a delete marker removed: visible again (S3 sends no ObjectCreated)
            put(f"marker/{name}", b"comes back")
            marker = s3.delete_object(Bucket=bucket, Key=f"marker/{name}")["VersionId"]
            s3.delete_object(Bucket=bucket, Key=f"marker/{name}", VersionId=marker)
            # a delete marker created: hidden
            put(f"hidden/{name}", b"hidden")
            s3.delete_object(Bucket=bucket, Key=f"hidden/{name}")
            # a later PUT: back
            put(f"back/{name}", b"first")
            s3.delete_object(Bucket=bucket, Key=f"back/{name}")
            put(f"back/{name}", b"second!")
            # the only version deleted: nothing left
            only = put(f"gone/{name}", b"only")
            s3.delete_object(Bucket=bucket, Key=f"gone/{name}", VersionId=only)
            # multi-delete: a marker on one key, a version of another
            put(f"multi-a/{name}", b"a")
            b_old = put(f"multi-b/{name}", b"b-old")
            put(f"multi-b/{name}", b"b-new")
            s3.delete_objects(
                Bucket=bucket,
                Delete={
                    "Objects": [
                        {"Key": f"multi-a/{name}"},
                        {"Key": f"multi-b/{name}", "VersionId": b_old},
                    ]
                },
            )
            # lifecycle: the current version expires (a marker), a noncurrent version
            # expires (unchanged), an expired object delete marker is removed (gone)
            put(f"lc-current/{name}", b"expires")
            expire(stack, bucket, f"lc-current/{name}")
            lc_old = put(f"lc-noncurrent/{name}", b"old")
            put(f"lc-noncurrent/{name}", b"stays")
            expire(stack, bucket, f"lc-noncurrent/{name}", version_id=lc_old)
            lc_only = put(f"lc-marker/{name}", b"x")
            lc_marker = s3.delete_object(Bucket=bucket, Key=f"lc-marker/{name}")["VersionId"]
            s3.delete_object(Bucket=bucket, Key=f"lc-marker/{name}", VersionId=lc_only)
            expire(stack, bucket, f"lc-marker/{name}", version_id=lc_marker)
            # copy and multipart: created with their version ids
            s3.copy_object(
                Bucket=bucket,
                Key=f"copy/{name}",
                CopySource={"Bucket": bucket, "Key": f"noncurrent/{name}"},
            )
            keys.add(f"copy/{name}")
        stack.wait_until_idle(60)

    # Then after the live delivery the table equals S3
    assert_table_equals_s3(stack, keys)
    assert len(captured) >= 25 * len(NAMES)
    names = {json.loads(body)["Records"][0]["eventName"] for body in captured}
    assert {
        "ObjectRemoved:Delete",
        "ObjectRemoved:DeleteMarkerCreated",
        "LifecycleExpiration:Delete",
        "LifecycleExpiration:DeleteMarkerCreated",
        "ObjectCreated:Copy",
    } <= names
    # and the cases ended as S3 says they must (not only "as the table says")
    name = NAMES[0]
    assert head(s3, bucket, f"noncurrent/{name}")[0] == len(b"newer content")  # type: ignore[index]
    assert head(s3, bucket, f"current/{name}")[0] == len(b"previous")  # type: ignore[index]
    assert head(s3, bucket, f"marker/{name}") is not None
    assert head(s3, bucket, f"hidden/{name}") is None
    assert head(s3, bucket, f"gone/{name}") is None and not versions(s3, bucket, f"gone/{name}")
    assert head(s3, bucket, f"lc-current/{name}") is None
    assert head(s3, bucket, f"lc-noncurrent/{name}") is not None
    assert not versions(s3, bucket, f"lc-marker/{name}")

    # When every notification is delivered again, twice, shuffled
    resend_shuffled(stack, captured, seed=10)
    stack.wait_until_idle(60)

    # Then nothing changed, nothing went to the DLQ, and the API serves the visible ones
    assert_table_equals_s3(stack, keys)
    dlq = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert dlq["Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert get(file_url(stack.api_url, f"marker/{name}")).status == 200
    assert get(file_url(stack.api_url, f"hidden/{name}")).status == 404


def test_shuffled_duplicates_alone_reach_the_same_state(versioned: Stack) -> None:
    # Given a history whose notifications are NOT delivered live (captured only)
    stack = versioned
    s3 = stack.client("s3")
    bucket = stack.bucket
    keys = {f"shuffled/{i}" for i in range(6)}
    with capture_notifications(stack.moto, bucket, deliver=False) as captured:
        for i, key in enumerate(sorted(keys)):
            first = s3.put_object(Bucket=bucket, Key=key, Body=b"1" * (i + 1))["VersionId"]
            s3.put_object(Bucket=bucket, Key=key, Body=b"22")
            if i % 3 == 0:
                s3.delete_object(Bucket=bucket, Key=key, VersionId=first)
            elif i % 3 == 1:
                marker = s3.delete_object(Bucket=bucket, Key=key)["VersionId"]
                if i % 2:
                    s3.delete_object(Bucket=bucket, Key=key, VersionId=marker)
            else:
                expire(stack, bucket, key)

    # When they arrive only now, each twice, in random order
    resend_shuffled(stack, captured, seed=3)
    stack.wait_until_idle(60)

    # Then every row equals HeadObject
    assert_table_equals_s3(stack, keys)


def test_lifecycle_expiration_on_an_unversioned_bucket_removes_the_file(
    engines: dict[str, Any],
) -> None:
    # Given the template's default (unversioned) bucket with two files
    with _stack("Suspended", engines) as stack:
        stack.wait_until_idle(30)
        s3 = stack.client("s3")
        for key in ("expiring.txt", "staying.txt"):
            s3.put_object(Bucket=stack.bucket, Key=key, Body=b"data")
        stack.wait_until_idle(30)

        # When lifecycle expires one of them
        with capture_notifications(stack.moto, stack.bucket) as captured:
            expire(stack, stack.bucket, "expiring.txt")
            stack.wait_until_idle(30)

        # Then S3 sent LifecycleExpiration:Delete (no ObjectRemoved) and the file is gone
        (body,) = captured
        assert json.loads(body)["Records"][0]["eventName"] == "LifecycleExpiration:Delete"
        assert_table_equals_s3(stack, {"expiring.txt", "staying.txt"})
        assert set(api_state(stack.api_url)) == {"staying.txt"}
