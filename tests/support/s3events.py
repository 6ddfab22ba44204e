"""Builders of S3 notifications and Lambda-shaped SQS events, as AWS sends them."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote_plus

QUEUE_ARN = "arn:aws:sqs:ap-south-1:123456789012:serverless-event4-ingest"


def s3_record(
    key: str,
    *,
    event: str = "ObjectCreated:Put",
    bucket: str = "serverless-event4",
    size: int | None = 11,
    etag: str | None = "b1946ac92492d2347c6235b4d2611184",
    sequencer: str | None = None,
    event_time: str = "2026-11-24T10:00:00.000Z",
    version_id: str | None = None,
    encode: bool = True,
) -> dict[str, Any]:
    """One S3 record in AWS's sample-event shape (key form-URL-encoded like S3 does)."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/") if encode else key}
    if not event.startswith("ObjectRemoved"):
        if size is not None:
            obj["size"] = size
        if etag is not None:
            obj["eTag"] = etag
    if sequencer is not None:
        obj["sequencer"] = sequencer
    if version_id is not None:
        obj["versionId"] = version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "ap-south-1",
        "eventTime": event_time,
        "eventName": event,
        "userIdentity": {"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {
            "x-amz-request-id": "C3D13FE58DE4C810",
            "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "tracker",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
    }


def notification(*records: dict[str, Any]) -> str:
    """An S3 notification body holding `records`."""
    return json.dumps({"Records": list(records)})


TEST_EVENT = json.dumps(
    {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2026-11-24T10:00:00.000Z",
        "Bucket": "serverless-event4",
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }
)


def sns_envelope(body: str) -> str:
    """Wrap an S3 notification as SNS delivers it to SQS (raw delivery off)."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": "arn:aws:sns:ap-south-1:123456789012:s3-events",
            "Subject": "Amazon S3 Notification",
            "Message": body,
            "Timestamp": "2026-11-24T10:00:00.000Z",
        }
    )


def sqs_record(body: str, message_id: str | None = None) -> dict[str, Any]:
    """One record of a Lambda SQS event."""
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "AQEB" + uuid.uuid4().hex,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1732442400000",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1732442400001",
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "ap-south-1",
    }


def sqs_event(*bodies: str) -> dict[str, Any]:
    """A Lambda SQS event with one record per body."""
    return {"Records": [sqs_record(body) for body in bodies]}
