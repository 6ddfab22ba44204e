"""`pipeline.local.moto_s3_events`: real boto3 S3 calls on the moto server notify like AWS.

Each test makes a bucket and a queue, performs S3 operations, and reads what landed in the
queue: the record shapes of ../DESIGN.md ("Versioned buckets") and AWS's event structure.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import boto3
import pytest

from pipeline.local import moto_s3_events
from pipeline.local.moto_s3_events import EMPTY_MD5, LifecycleError
from pipeline.local.moto_server import MotoServer
from tests.support.moto_state import patched

REGION = "ap-south-1"
EVENTS = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:LifecycleExpiration:*"]


@pytest.fixture
def clients(aws_env: str) -> tuple[Any, Any]:
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name=REGION)
    sqs = boto3.client("sqs", endpoint_url=aws_env, region_name=REGION)
    return s3, sqs


class Bucket:
    """A bucket notifying a fresh queue; `records()` drains what it sent so far."""

    def __init__(self, s3: Any, sqs: Any, *, versioned: bool) -> None:
        self.s3, self.sqs = s3, sqs
        self.name = f"events-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=self.name, CreateBucketConfiguration={"LocationConstraint": REGION})
        if versioned:
            s3.put_bucket_versioning(
                Bucket=self.name, VersioningConfiguration={"Status": "Enabled"}
            )
        self.queue = sqs.create_queue(QueueName=self.name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])
        s3.put_bucket_notification_configuration(
            Bucket=self.name,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {"QueueArn": arn["Attributes"]["QueueArn"], "Events": EVENTS}
                ]
            },
        )

    def records(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10)
            messages = got.get("Messages") or []
            if not messages:
                return out
            for message in messages:
                body = json.loads(message["Body"])
                out.extend(body.get("Records") or [])  # the s3:TestEvent has none
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])

    def put(self, key: str, body: bytes = b"hello") -> str:
        return str(self.s3.put_object(Bucket=self.name, Key=key, Body=body).get("VersionId"))


def md5(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()


def summary(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    obj = dict(record["s3"]["object"])
    obj.pop("sequencer", None)
    return record["eventName"], obj


def test_the_patch_is_installed_by_the_server(moto_server: MotoServer) -> None:
    assert patched(moto_server)["s3_events"]


def test_versioned_bucket_events_carry_version_ids_like_aws(clients: tuple[Any, Any]) -> None:
    # Given a versioned bucket with two versions of a key
    bucket = Bucket(*clients, versioned=True)
    s3 = bucket.s3
    v1 = bucket.put("a b+c.txt", b"one")
    v2 = bucket.put("a b+c.txt", b"two!")

    # When the old version is deleted, then a plain DELETE makes a marker, then it is removed
    s3.delete_object(Bucket=bucket.name, Key="a b+c.txt", VersionId=v1)
    marker = s3.delete_object(Bucket=bucket.name, Key="a b+c.txt")
    assert marker["DeleteMarker"] is True
    s3.delete_object(Bucket=bucket.name, Key="a b+c.txt", VersionId=marker["VersionId"])

    # Then the events are AWS's shapes: versionIds, empty-MD5 eTag on the marker, no sizes
    key = "a+b%2Bc.txt"
    assert [summary(r) for r in bucket.records()] == [
        (
            "ObjectCreated:Put",
            {"key": key, "size": 3, "eTag": md5(b"one"), "versionId": v1},
        ),
        (
            "ObjectCreated:Put",
            {"key": key, "size": 4, "eTag": md5(b"two!"), "versionId": v2},
        ),
        ("ObjectRemoved:Delete", {"key": key, "versionId": v1}),
        (
            "ObjectRemoved:DeleteMarkerCreated",
            {"key": key, "eTag": EMPTY_MD5, "versionId": marker["VersionId"]},
        ),
        ("ObjectRemoved:Delete", {"key": key, "versionId": marker["VersionId"]}),
    ]
    # And the object is visible again in S3, with no ObjectCreated event (as on AWS)
    assert s3.head_object(Bucket=bucket.name, Key="a b+c.txt")["VersionId"] == v2


def test_sequencers_are_aws_shaped_and_increase_per_key(clients: tuple[Any, Any]) -> None:
    # Given a key changed several times on a versioned bucket
    bucket = Bucket(*clients, versioned=True)
    for _ in range(3):
        bucket.put("k")
        bucket.s3.delete_object(Bucket=bucket.name, Key="k")

    # When the events are read
    sequencers = [r["s3"]["object"]["sequencer"] for r in bucket.records()]

    # Then each is 18 upper-case hex digits, strictly increasing in the order of the calls
    assert len(sequencers) == 6
    assert all(len(s) == 18 and s == s.upper() and int(s, 16) > 0 for s in sequencers)
    assert sequencers == sorted(set(sequencers))


def test_multi_delete_notifies_each_object(clients: tuple[Any, Any]) -> None:
    # Given a versioned bucket with two keys
    bucket = Bucket(*clients, versioned=True)
    va = bucket.put("a")
    bucket.put("b")
    bucket.records()

    # When one DeleteObjects call removes a's version and puts a marker on b
    bucket.s3.delete_objects(
        Bucket=bucket.name, Delete={"Objects": [{"Key": "a", "VersionId": va}, {"Key": "b"}]}
    )

    # Then one event per object, each with its version
    events = sorted((r["eventName"], r["s3"]["object"]["key"]) for r in bucket.records())
    assert events == [("ObjectRemoved:Delete", "a"), ("ObjectRemoved:DeleteMarkerCreated", "b")]


def test_multipart_and_copy_send_one_event_each_with_the_version(clients: tuple[Any, Any]) -> None:
    # Given a versioned bucket
    bucket = Bucket(*clients, versioned=True)
    s3 = bucket.s3

    # When an object is uploaded in parts, and then copied
    upload = s3.create_multipart_upload(Bucket=bucket.name, Key="big")
    part = s3.upload_part(
        Bucket=bucket.name, Key="big", UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 10
    )
    done = s3.complete_multipart_upload(
        Bucket=bucket.name,
        Key="big",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    copied = s3.copy_object(
        Bucket=bucket.name, Key="copy", CopySource={"Bucket": bucket.name, "Key": "big"}
    )

    # Then exactly one event per operation (no extra ObjectCreated:Put), each with its version
    records = bucket.records()
    assert [(r["eventName"], r["s3"]["object"].get("versionId")) for r in records] == [
        ("ObjectCreated:CompleteMultipartUpload", done["VersionId"]),
        ("ObjectCreated:Copy", copied["VersionId"]),
    ]
    assert records[0]["s3"]["object"]["size"] == 10


def test_unversioned_bucket_events_have_no_version_and_deletes_no_size(
    clients: tuple[Any, Any],
) -> None:
    # Given an unversioned bucket / When a key is put, then deleted
    bucket = Bucket(*clients, versioned=False)
    bucket.put("plain.txt")
    bucket.s3.delete_object(Bucket=bucket.name, Key="plain.txt")

    # Then no versionId anywhere, the delete has no size or eTag, both have sequencers
    records = bucket.records()
    assert [summary(r) for r in records] == [
        (
            "ObjectCreated:Put",
            {"key": "plain.txt", "size": 5, "eTag": md5(b"hello")},
        ),
        ("ObjectRemoved:Delete", {"key": "plain.txt"}),
    ]
    assert all("sequencer" in r["s3"]["object"] for r in records)


def test_lifecycle_expirations_send_lifecycle_events(
    clients: tuple[Any, Any], moto_server: MotoServer
) -> None:
    def expire(bucket: str, key: str, version_id: str | None = None) -> str | None:
        return moto_server.call(moto_s3_events.expire, bucket, key, version_id=version_id)

    # Given a versioned bucket with a key of two versions, and an unversioned bucket
    bucket = Bucket(*clients, versioned=True)
    v1 = bucket.put("k", b"one")
    bucket.put("k", b"two")
    plain = Bucket(*clients, versioned=False)
    plain.put("p")
    bucket.records(), plain.records()

    # When lifecycle expires the noncurrent version, then the current one (-> marker)
    assert expire(bucket.name, "k", version_id=v1) == v1
    marker = expire(bucket.name, "k")
    assert expire(bucket.name, "k") is None  # a current marker is left alone
    # and the unversioned object
    assert expire(plain.name, "p") is None

    # Then AWS's LifecycleExpiration events, and S3 shows the marker current
    assert [summary(r) for r in bucket.records()] == [
        ("LifecycleExpiration:Delete", {"key": "k", "versionId": v1}),
        (
            "LifecycleExpiration:DeleteMarkerCreated",
            {"key": "k", "eTag": EMPTY_MD5, "versionId": marker},
        ),
    ]
    assert [summary(r) for r in plain.records()] == [("LifecycleExpiration:Delete", {"key": "p"})]
    versions = bucket.s3.list_object_versions(Bucket=bucket.name)
    assert [m["VersionId"] for m in versions["DeleteMarkers"] if m["IsLatest"]] == [marker]


def test_lifecycle_refuses_what_s3_lifecycle_never_does(
    clients: tuple[Any, Any], moto_server: MotoServer
) -> None:
    def expire(bucket: str, key: str, version_id: str | None = None) -> str | None:
        return moto_server.call(moto_s3_events.expire, bucket, key, version_id=version_id)

    # Given a versioned key with one version and a marker on top
    bucket = Bucket(*clients, versioned=True)
    v1 = bucket.put("k")
    with pytest.raises(LifecycleError, match="current version"):
        expire(bucket.name, "k", version_id=v1)  # the current version, by id
    marker = expire(bucket.name, "k")
    assert marker is not None
    with pytest.raises(LifecycleError, match="current version"):
        expire(bucket.name, "k", version_id=marker)  # a marker with a version behind it
    with pytest.raises(LifecycleError, match="no version"):
        expire(bucket.name, "k", version_id="nope")

    # When the version behind it is expired, the lone marker can be (ExpiredObjectDeleteMarker)
    expire(bucket.name, "k", version_id=v1)
    assert expire(bucket.name, "k", version_id=marker) == marker
    assert [r["eventName"] for r in bucket.records()][-1] == "LifecycleExpiration:Delete"
