"""End to end on the local stack: S3 -> SQS -> poller -> ingest handler -> table -> API."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.local.api_client import file_url, get, list_files
from pipeline.local.stack import Stack
from pipeline.local.template import read_stack_config

pytestmark = pytest.mark.e2e

AWKWARD = [
    "hello.txt",
    "with space.txt",
    "plus+sign.txt",
    "percent%20literal.txt",
    "100% done.csv",
    "räksmörgås.pdf",
    "日本語/ファイル.txt",
    "emoji 🎉.txt",
    "nested/deeper/still deeper/file.txt",
    "a+b=c&d?e#f.txt",
    "trailing space .txt",
    "~tilde/(parens)/[brackets].txt",
]


@pytest.fixture(scope="module")
def stack(engines: dict[str, Any]) -> Iterator[Stack]:
    """The real handlers on a stack of their own (unique names: moto's backends are global).

    Short visibility timeout so retries and the DLQ happen within the test; the rest is
    template.yaml's.
    """
    config = (
        read_stack_config()
        .with_suffix(uuid.uuid4().hex[:8])
        .with_overrides(visibility_timeout_s=2, function_timeout_s=10, batching_window_s=0)
    )
    with Stack(config, pollers=2, **engines) as running:
        running.wait_until_idle(30)  # the s3:TestEvent sent when the notification was set up
        yield running


def put(stack: Stack, names: list[str]) -> None:
    s3 = stack.client("s3")
    for name in names:
        s3.put_object(Bucket=stack.bucket, Key=name, Body=name.encode())


def tracked(stack: Stack) -> set[str]:
    return {item["filename"] for item in list_files(stack.api_url, limit=37)}


def test_awkward_names_are_tracked_and_served(stack: Stack) -> None:
    # Given objects with awkward keys and many plain ones
    names = AWKWARD + [f"bulk/{i:04d} file+{i}.dat" for i in range(150)]
    put(stack, names)
    # When the pipeline has drained the queue
    stack.wait_until_idle(60)
    # Then GET /files pages list exactly those names, and each is served by GET /files/{name}
    others = ("del/", "poison-neighbour", "crash/", "metrics/")  # the other tests' files
    assert {name for name in tracked(stack) if not name.startswith(others)} == set(names)
    for name in AWKWARD:
        response = get(file_url(stack.api_url, name))
        assert response.status == 200, (name, response.body)
        assert response.json()["filename"] == name
        assert response.json()["size"] == len(name.encode())


def test_deletes_remove_exactly_those_files(stack: Stack) -> None:
    keep = [f"del/keep {i}.txt" for i in range(20)]
    drop = [f"del/drop+{i}%.txt" for i in range(20)] + ["del/ü drop.txt"]
    put(stack, keep + drop)
    stack.wait_until_idle(60)
    s3 = stack.client("s3")
    s3.delete_objects(Bucket=stack.bucket, Delete={"Objects": [{"Key": name} for name in drop]})
    stack.wait_until_idle(60)
    names = {name for name in tracked(stack) if name.startswith("del/")}
    assert names == set(keep)
    assert get(file_url(stack.api_url, drop[0])).status == 404


def test_poison_goes_to_the_dlq_and_its_neighbours_are_tracked(stack: Stack) -> None:
    # Given a message that is not an S3 notification, sent straight to the queue
    sqs = stack.client("sqs")
    poison = f"not an S3 event {uuid.uuid4()}"
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody=poison)
    neighbours = [f"poison-neighbour {i}.txt" for i in range(5)]
    put(stack, neighbours)
    # When it has failed maxReceiveCount times (the queue's redrive policy moves it)
    stack.wait_until_idle(60)
    # Then it is in the DLQ, received maxReceiveCount times, and the neighbours are tracked
    assert stack.dlq_url is not None
    received = sqs.receive_message(
        QueueUrl=stack.dlq_url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=1,
        MessageSystemAttributeNames=["All"],
    )
    bodies = {m["Body"]: m for m in received.get("Messages", [])}
    assert poison in bodies
    count = int(bodies[poison]["Attributes"]["ApproximateReceiveCount"])
    assert count >= stack.config.max_receive_count
    assert set(neighbours) <= tracked(stack)


def test_a_handler_crash_retries_the_whole_batch_and_loses_nothing(stack: Stack) -> None:
    assert stack.poller is not None
    real = stack.poller.handler
    crashes: list[int] = []

    def crash_once(event: dict[str, Any], context: Any) -> Any:
        if not crashes:
            crashes.append(len(event["Records"]))
            raise RuntimeError("simulated crash")
        return real(event, context)

    failed_before = stack.poller.stats.failed_invocations
    stack.poller.handler = crash_once
    try:
        names = [f"crash/{i}.txt" for i in range(30)]
        put(stack, names)
        stack.wait_until_idle(60)
    finally:
        stack.poller.handler = real
    assert crashes and crashes[0] >= 1
    assert stack.poller.stats.failed_invocations == failed_before + 1
    assert set(names) <= tracked(stack)


def test_the_api_serves_the_openapi_document(stack: Stack) -> None:
    response = get(f"{stack.api_url}/openapi.json")
    assert response.status == 200
    assert "/files" in json.dumps(response.json()["paths"])


def test_unknown_routes_answer_like_api_gateway(stack: Stack) -> None:
    response = get(f"{stack.api_url}/nothing-here")
    assert response.status == 403
    assert response.json() == {"message": "Missing Authentication Token"}


def test_quiet_metrics_do_not_accumulate_between_invocations(stack: Stack) -> None:
    # Powertools never clears a disabled metric set by itself; the local stack does
    from aws_lambda_powertools import Metrics

    put(stack, ["metrics/a.txt"])
    stack.wait_until_idle(30)
    assert get(f"{stack.api_url}/files").status == 200
    assert Metrics(namespace="FileTracker").metric_set == {}


def test_the_api_requires_a_signature_by_default(stack: Stack) -> None:
    # Given the template's default (ApiAuth=AWS_IAM)
    assert stack.api_auth_enabled
    # When the API is called unsigned, Then API Gateway's 403 before the handler
    unsigned = get(f"{stack.api_url}/files", sign=False)
    assert unsigned.status == 403
    assert unsigned.json() == {"message": "Missing Authentication Token"}
    # and signed with the stack's credentials (the ones `up` prints), the listing
    assert get(f"{stack.api_url}/files", signer=stack.signer).status == 200


def test_an_empty_file_name_is_not_found(stack: Stack) -> None:
    response = get(f"{stack.api_url}/files/", signer=stack.signer)
    assert response.status == 404
    assert set(response.json()) == {"message"}


def test_api_auth_none_serves_unsigned_requests(engines: dict[str, Any]) -> None:
    # Given the same template with its ApiAuth parameter set to NONE (`up --api-auth NONE`)
    config = read_stack_config(parameters={"ApiAuth": "NONE"}).with_suffix(uuid.uuid4().hex[:8])
    with Stack(config, pollers=1, **engines) as running:
        # Then unsigned requests reach the handler
        assert not running.api_auth_enabled
        assert get(f"{running.api_url}/files", sign=False).status == 200
