"""moto's SQS with the faster checks of `pipeline.local.moto_speedups` still behaves like SQS."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from pipeline.local.moto_server import MotoServer
from tests.support.moto_state import patched


@pytest.fixture
def sqs(aws_env: str) -> Any:
    return boto3.client("sqs", endpoint_url=aws_env, region_name="ap-south-1")


def counts(sqs: Any, url: str) -> tuple[int, int, int]:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        int(attributes["ApproximateNumberOfMessagesDelayed"]),
    )


def test_speedups_are_installed_by_the_server(moto_server: MotoServer) -> None:
    assert patched(moto_server)["speedups"]


def test_visible_in_flight_and_delayed_messages_are_counted_and_received_as_sqs_does(
    sqs: Any,
) -> None:
    # Given a queue with one ready, one delayed and one in-flight message
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="in-flight")
    received = sqs.receive_message(QueueUrl=url, VisibilityTimeout=60)["Messages"]
    sqs.send_message(QueueUrl=url, MessageBody="ready")
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    # Then the counts say 1 visible, 1 not visible, 1 delayed
    assert counts(sqs, url) == (1, 1, 1)
    # And only the ready message can be received
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)
    assert [m["Body"] for m in again["Messages"]] == ["ready"]
    # And an in-flight message comes back once its visibility is reset
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"], VisibilityTimeout=0
    )
    back = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)
    assert [m["Body"] for m in back["Messages"]] == ["in-flight"]


def test_delete_is_idempotent_and_rejects_unknown_handles(sqs: Any) -> None:
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="a")
    sqs.send_message(QueueUrl=url, MessageBody="b")
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)
    handles = {m["Body"]: m["ReceiptHandle"] for m in received["Messages"]}
    # Deleting works, and deleting the same message again is accepted
    sqs.delete_message(QueueUrl=url, ReceiptHandle=handles["a"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=handles["a"])
    assert counts(sqs, url) == (0, 1, 0)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=handles["b"])
    assert counts(sqs, url) == (0, 0, 0)
    # An unknown handle is an error
    with pytest.raises(ClientError) as error:
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
    assert "ReceiptHandleIsInvalid" in str(error.value)
