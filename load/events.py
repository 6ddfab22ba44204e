"""Lambda-shaped SQS events carrying S3 notifications, as AWS sends them, for benchmarks."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

REGION = "ap-south-1"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:serverless-event4-ingest"


def s3_record(
    key: str, *, bucket: str, size: int, sequencer: str, event_time: str
) -> dict[str, Any]:
    """One `ObjectCreated:Put` record in AWS's shape (key form-URL-encoded, with a sequencer)."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": event_time,
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {
            "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
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
            "object": {
                "key": quote_plus(key, safe="/"),
                "size": size,
                "eTag": uuid.uuid4().hex,
                "sequencer": sequencer,
            },
        },
    }


def sqs_record(body: str, sent_ms: int) -> dict[str, Any]:
    """One record of a Lambda SQS event."""
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "AQEB" + uuid.uuid4().hex,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(sent_ms),
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": str(sent_ms + 1),
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": REGION,
    }


def sqs_event(
    records: int, *, run: str, bucket: str = "serverless-event4", prefixes: int = 16
) -> dict[str, Any]:
    """A Lambda SQS event of `records` messages, each one S3 PUT record of a distinct key.

    Keys look like `bench/<run>/p07/file-000123.dat` (spread over `prefixes` folders);
    sequencers increase like S3's (hex, per key).
    """
    now = datetime.now(UTC)
    event_time = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    sent_ms = int(now.timestamp() * 1000)
    out = []
    for i in range(records):
        key = f"bench/{run}/p{i % prefixes:02d}/file {i:06d}.dat"
        record = s3_record(
            key,
            bucket=bucket,
            size=1024 + i,
            sequencer=f"{0x0062B3A4F1C0000000 + i:018X}",
            event_time=event_time,
        )
        out.append(sqs_record(json.dumps({"Records": [record]}), sent_ms))
    return {"Records": out}


def keys_of(event: dict[str, Any]) -> list[str]:
    """The decoded object keys of an event built by `sqs_event`."""
    from urllib.parse import unquote_plus

    return [
        unquote_plus(json.loads(r["body"])["Records"][0]["s3"]["object"]["key"])
        for r in event["Records"]
    ]
