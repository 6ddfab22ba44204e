"""Create the stack's resources on an emulator (moto, LocalStack), or find them on AWS."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from pipeline.adapters.dynamo.schema import create_files_table
from pipeline.local.template import StackConfig


@dataclass(frozen=True)
class Resources:
    """The physical resources the poller and the gateway work with."""

    bucket: str
    table: str
    queue_url: str
    queue_arn: str
    dlq_url: str | None = None


class ResourceError(RuntimeError):
    """The resources cannot be found or created."""


def queue_arn(sqs: Any, queue_url: str) -> str:
    """The ARN of a queue, from its URL."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def queue_policy(queue_arn: str, bucket: str, account_id: str) -> dict[str, Any]:
    """The policy letting the bucket (and only it) send notifications to the queue."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowBucketNotifications",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {
                    "ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"},
                    "StringEquals": {"aws:SourceAccount": account_id},
                },
            }
        ],
    }


def _create_bucket(s3: Any, bucket: str, region: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as error:
        if error.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise


def provision(s3: Any, sqs: Any, dynamodb: Any, config: StackConfig) -> Resources:
    """Create bucket (versioned as configured), queue + DLQ (redrive), queue policy, table and
    bucket notification.

    Idempotent where the services allow it (an existing bucket, queue or table is reused),
    so it can run against a LocalStack that already has them.
    """
    _create_bucket(s3, config.bucket, config.region)
    if config.bucket_versioning == "Enabled":  # a new bucket is unversioned (= Suspended)
        s3.put_bucket_versioning(
            Bucket=config.bucket, VersioningConfiguration={"Status": "Enabled"}
        )
    dlq_url = sqs.create_queue(
        QueueName=config.dlq_name,
        Attributes={"MessageRetentionPeriod": str(config.dlq_retention_s)},
    )["QueueUrl"]
    redrive = {
        "deadLetterTargetArn": queue_arn(sqs, dlq_url),
        "maxReceiveCount": str(config.max_receive_count),
    }
    url = sqs.create_queue(
        QueueName=config.queue_name,
        Attributes={
            "VisibilityTimeout": str(config.visibility_timeout_s),
            "MessageRetentionPeriod": str(config.queue_retention_s),
            "RedrivePolicy": json.dumps(redrive),
        },
    )["QueueUrl"]
    arn = queue_arn(sqs, url)
    account_id = arn.split(":")[4]
    sqs.set_queue_attributes(
        QueueUrl=url,
        Attributes={"Policy": json.dumps(queue_policy(arn, config.bucket, account_id))},
    )
    try:
        create_files_table(dynamodb, config.table)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceInUseException":
            raise
    s3.put_bucket_notification_configuration(
        Bucket=config.bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": list(config.notification_events)}]
        },
    )
    return Resources(config.bucket, config.table, url, arn, dlq_url)


def from_stack_outputs(cloudformation: Any, sqs: Any, stack_name: str) -> Resources:
    """The resources of a deployed stack, from its outputs (see template.yaml's Outputs)."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        raise ResourceError(f"cannot describe stack {stack_name!r}: {error}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs") or []}
    missing = {"BucketName", "TableName", "IngestQueueUrl"} - outputs.keys()
    if missing:
        raise ResourceError(f"stack {stack_name!r} lacks outputs {sorted(missing)}")
    url = outputs["IngestQueueUrl"]
    return Resources(
        bucket=outputs["BucketName"],
        table=outputs["TableName"],
        queue_url=url,
        queue_arn=outputs.get("IngestQueueArn") or queue_arn(sqs, url),
        dlq_url=outputs.get("DeadLetterQueueUrl"),
    )


def queue_counts(sqs: Any, queue_url: str) -> tuple[int, int, int]:
    """(visible, in flight, delayed) messages of a queue, approximately."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    visible, in_flight, delayed = (int(attributes.get(name, 0)) for name in names)
    return visible, in_flight, delayed
