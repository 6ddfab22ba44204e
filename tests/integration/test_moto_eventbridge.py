"""The local engine's S3 -> EventBridge events have AWS's documented shape (moto 5.2 fixed)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import boto3

from pipeline.core.model import Action
from pipeline.ingest.events import parse_body
from tests.conftest import REGION


def test_events_are_aws_shaped_ordered_and_parse(aws_env: str) -> None:
    kwargs: dict[str, Any] = {"region_name": REGION, "endpoint_url": aws_env}
    s3, sqs, events = (boto3.client(name, **kwargs) for name in ("s3", "sqs", "events"))
    bucket = f"eb-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    url = sqs.create_queue(QueueName=f"eb-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    assert "EventBridgeConfiguration" in s3.get_bucket_notification_configuration(Bucket=bucket)
    rule = f"r-{uuid.uuid4().hex[:8]}"
    pattern = {"source": ["aws.s3"], "detail": {"bucket": {"name": [bucket]}}}
    events.put_rule(Name=rule, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])

    s3.put_object(Bucket=bucket, Key="a b+c.txt", Body=b"hello")
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "a b+c.txt"})
    s3.delete_object(Bucket=bucket, Key="a b+c.txt")
    bodies = []
    while len(bodies) < 3:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        bodies += [m["Body"] for m in messages.get("Messages", [])]
    documents = [json.loads(body) for body in bodies]
    put, copied, deleted = sorted(documents, key=lambda d: d["detail"]["object"]["sequencer"])

    assert put["detail-type"] == "Object Created" and put["source"] == "aws.s3"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", put["time"])  # AWS: whole seconds
    assert re.fullmatch(r"[0-9a-f]{16}", put["detail"]["object"]["sequencer"])  # AWS's sample form
    assert put["detail"]["reason"] == "PutObject"
    assert put["detail"]["object"] == {
        "key": "a b+c.txt",
        "size": 5,
        "etag": "5d41402abc4b2a76b9719d911017c592",
        "sequencer": put["detail"]["object"]["sequencer"],
    }
    assert copied["detail"]["reason"] == "CopyObject"
    assert deleted["detail-type"] == "Object Deleted"
    assert deleted["detail"]["reason"] == "DeleteObject"
    assert deleted["detail"]["deletion-type"] == "Permanently Deleted"
    assert "size" not in deleted["detail"]["object"]
    (event,) = parse_body(bodies[documents.index(deleted)]).events
    assert event.action is Action.DELETE and event.filename == "a b+c.txt"

    # and the rows they make hold the forms S3 notifications' rows hold
    (created,) = parse_body(bodies[documents.index(put)]).events
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", created.event_time)
    assert created.event_time.startswith(put["time"][:-1])
    assert created.sequencer == put["detail"]["object"]["sequencer"].upper()
