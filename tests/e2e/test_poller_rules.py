"""The SQS event source emulator against a real queue (moto server), with fake handlers.

Each rule of Lambda's ReportBatchItemFailures contract is checked one by one: which messages
are deleted, which stay on the queue for a retry.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from pipeline.local.environments import FunctionPool
from pipeline.local.moto_server import MotoServer
from pipeline.local.poller import SqsEventSource, batch_outcome
from pipeline.local.provision import queue_arn, queue_counts

pytestmark = pytest.mark.e2e
REGION = "ap-south-1"


@pytest.fixture(scope="module")
def sqs(moto_server: MotoServer) -> Any:
    return boto3.client(
        "sqs",
        region_name=REGION,
        endpoint_url=moto_server.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def queue(sqs: Any) -> Iterator[str]:
    """A fresh queue; failed messages stay invisible for 30 s (no retry during a test)."""
    url = sqs.create_queue(
        QueueName=f"rules-{uuid.uuid4().hex[:10]}", Attributes={"VisibilityTimeout": "30"}
    )["QueueUrl"]
    yield url
    sqs.delete_queue(QueueUrl=url)


class Recorder:
    """A fake handler: records each invocation, answers with `respond(event)`."""

    def __init__(self, respond: Callable[[dict[str, Any]], Any]) -> None:
        self.respond = respond
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.remaining_ms: list[int] = []
        self.called = threading.Event()

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        self.remaining_ms.append(context.get_remaining_time_in_millis())
        try:
            return self.respond(event)
        finally:
            self.called.set()


def send(sqs: Any, queue_url: str, count: int) -> list[str]:
    """Send `count` messages; returns their ids."""
    ids = []
    for start in range(0, count, 10):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps({"n": start + i})}
            for i in range(min(10, count - start))
        ]
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        ids += [ok["MessageId"] for ok in response["Successful"]]
    return ids


def run_once(sqs: Any, queue_url: str, handler: Recorder, **options: Any) -> SqsEventSource:
    """Poll until the handler has been invoked once, then stop."""
    source = SqsEventSource(
        sqs=sqs,
        queue_url=queue_url,
        queue_arn=queue_arn(sqs, queue_url),
        handler=handler,
        batch_size=options.pop("batch_size", 10),
        batching_window_s=options.pop("batching_window_s", 0),
        **options,
    ).start()
    try:
        assert handler.called.wait(60), "the handler was never invoked"
    finally:
        source.stop()
    return source


def remaining(sqs: Any, queue_url: str) -> int:
    return sum(queue_counts(sqs, queue_url))


def first_id(event: dict[str, Any]) -> str:
    return str(event["Records"][0]["messageId"])


SUCCESS = [
    pytest.param(lambda event: None, id="None"),
    pytest.param(lambda event: {}, id="empty object"),
    pytest.param(lambda event: {"batchItemFailures": []}, id="empty list"),
    pytest.param(lambda event: {"batchItemFailures": None}, id="null list"),
]
WHOLE_BATCH_FAILS = [
    pytest.param(lambda event: {"batchItemFailures": [{"itemIdentifier": ""}]}, id="empty id"),
    pytest.param(lambda event: {"batchItemFailures": [{"itemIdentifier": None}]}, id="null id"),
    pytest.param(
        lambda event: {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]},
        id="unknown id",
    ),
    pytest.param(
        lambda event: {"batchItemFailures": [{"itemId": first_id(event)}]}, id="bad key name"
    ),
    pytest.param(lambda event: {"batchItemFailures": "all"}, id="not a list"),
    pytest.param(lambda event: "ok", id="not an object"),
    pytest.param(
        lambda event: {"batchItemFailures": [{"itemIdentifier": object()}]}, id="not JSON"
    ),
]


@pytest.mark.parametrize("respond", SUCCESS)
def test_an_empty_response_means_every_message_succeeded(
    sqs: Any, queue: str, respond: Callable[[dict[str, Any]], Any]
) -> None:
    # Given three messages, When the handler answers with an empty response
    send(sqs, queue, 3)
    handler = Recorder(respond)
    source = run_once(sqs, queue, handler)
    # Then all of them are deleted
    assert len(handler.events[0]["Records"]) == 3
    assert remaining(sqs, queue) == 0
    assert source.stats.messages_deleted == 3


@pytest.mark.parametrize("respond", WHOLE_BATCH_FAILS)
def test_an_invalid_response_fails_the_whole_batch(
    sqs: Any, queue: str, respond: Callable[[dict[str, Any]], Any]
) -> None:
    send(sqs, queue, 3)
    handler = Recorder(respond)
    source = run_once(sqs, queue, handler)
    assert remaining(sqs, queue) == 3
    assert source.stats.failed_invocations == 1
    assert source.stats.messages_deleted == 0


def test_listed_failures_stay_and_the_rest_is_deleted(sqs: Any, queue: str) -> None:
    ids = send(sqs, queue, 3)
    handler = Recorder(lambda event: {"batchItemFailures": [{"itemIdentifier": ids[1]}]})
    run_once(sqs, queue, handler)
    assert remaining(sqs, queue) == 1
    # the failed message comes back after its visibility timeout, only that one
    sqs.change_message_visibility_batch(
        QueueUrl=queue,
        Entries=[
            {
                "Id": "0",
                "ReceiptHandle": handler.events[0]["Records"][1]["receiptHandle"],
                "VisibilityTimeout": 0,
            }
        ],
    )
    again = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert [m["MessageId"] for m in again["Messages"]] == [ids[1]]


def test_an_exception_fails_the_whole_batch(sqs: Any, queue: str) -> None:
    def crash(event: dict[str, Any]) -> Any:
        raise RuntimeError("boom")

    send(sqs, queue, 4)
    source = run_once(sqs, queue, Recorder(crash))
    assert remaining(sqs, queue) == 4
    assert "RuntimeError: boom" in (source.stats.last_error or "")


def test_without_report_batch_item_failures_the_response_is_ignored(sqs: Any, queue: str) -> None:
    send(sqs, queue, 2)
    handler = Recorder(lambda event: {"batchItemFailures": [{"itemIdentifier": first_id(event)}]})
    run_once(sqs, queue, handler, report_batch_item_failures=False)
    assert remaining(sqs, queue) == 0


def test_running_past_the_function_timeout_fails_the_batch(sqs: Any, queue: str) -> None:
    def slow(event: dict[str, Any]) -> Any:
        time.sleep(1.2)

    send(sqs, queue, 2)
    source = run_once(sqs, queue, Recorder(slow), function_timeout_s=1)
    assert remaining(sqs, queue) == 2
    assert source.stats.timeouts == 1


def test_a_batch_past_the_timeout_in_an_execution_environment_is_killed_and_fails(
    sqs: Any, queue: str
) -> None:
    # Given the function in an execution environment (a worker process) that outlives its
    # 1-second timeout
    function = FunctionPool("tests.support.lambda_probe.sleep_long", dict(os.environ), size=1)
    called = threading.Event()

    def handler(event: dict[str, Any], context: Any) -> Any:
        try:
            return function(event, context)
        finally:
            called.set()

    handler.called = called  # type: ignore[attr-defined]
    send(sqs, queue, 2)
    try:
        # When a batch is invoked
        source = run_once(sqs, queue, handler, function_timeout_s=1)  # type: ignore[arg-type]
        # Then the invocation was cut at the timeout (not after 25 s), its environment
        # discarded, and the whole batch failed: both messages stay for a retry
        assert source.stats.timeouts == 1 and source.stats.failed_invocations == 1
        assert remaining(sqs, queue) == 2
        assert function.environments == 0
    finally:
        function.close()


def test_the_event_and_context_look_like_lambdas(sqs: Any, queue: str) -> None:
    send(sqs, queue, 1)
    handler = Recorder(lambda event: None)
    run_once(sqs, queue, handler, function_timeout_s=30, function_name="IngestFunction")
    (record,) = handler.events[0]["Records"]
    assert set(record) >= {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queue_arn(sqs, queue)
    assert record["awsRegion"] == REGION
    assert json.loads(record["body"]) == {"n": 0}
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(
        record["attributes"]
    )
    context = handler.contexts[0]
    assert 0 < handler.remaining_ms[0] <= 30_000
    assert context.function_name == "IngestFunction"
    assert uuid.UUID(context.aws_request_id)
    assert context.invoked_function_arn.endswith(":function:IngestFunction")
    assert context.memory_limit_in_mb > 0


def test_batches_hold_at_most_batch_size_messages(sqs: Any, queue: str) -> None:
    send(sqs, queue, 12)
    sizes: list[int] = []
    done = threading.Event()

    def count(event: dict[str, Any], context: Any) -> None:
        sizes.append(len(event["Records"]))
        if sum(sizes) >= 12:
            done.set()

    source = SqsEventSource(
        sqs=sqs,
        queue_url=queue,
        queue_arn=queue_arn(sqs, queue),
        handler=count,
        batch_size=5,
        batching_window_s=1,
    ).start()
    try:
        assert done.wait(60)
    finally:
        source.stop()
    assert sum(sizes) == 12
    assert max(sizes) <= 5
    assert remaining(sqs, queue) == 0


def test_a_window_of_zero_invokes_with_what_one_receive_returns(sqs: Any, queue: str) -> None:
    send(sqs, queue, 25)
    handler = Recorder(lambda event: None)
    run_once(sqs, queue, handler, batch_size=100, batching_window_s=0)
    assert 1 <= len(handler.events[0]["Records"]) <= 10


def test_several_pollers_invoke_concurrently(sqs: Any, queue: str) -> None:
    send(sqs, queue, 4)
    barrier = threading.Barrier(2, timeout=60)
    threads: set[str] = set()

    def meet(event: dict[str, Any], context: Any) -> None:
        threads.add(threading.current_thread().name)
        barrier.wait()  # only passes when two invocations run at the same time

    source = SqsEventSource(
        sqs=sqs,
        queue_url=queue,
        queue_arn=queue_arn(sqs, queue),
        handler=meet,
        batch_size=1,
        batching_window_s=0,
        pollers=2,
    ).start()
    try:
        deadline = time.monotonic() + 20
        while remaining(sqs, queue) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        source.stop()
    assert remaining(sqs, queue) == 0
    assert len(threads) == 2


@pytest.mark.parametrize(
    ("response", "failed"),
    [
        (None, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "x"}]}, {"a", "b"}),
        ([], {"a", "b"}),
    ],
)
def test_batch_outcome(response: Any, failed: set[str]) -> None:
    assert batch_outcome(response, ["a", "b"]).failed_ids == failed
