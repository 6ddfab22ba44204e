"""An SQS event source mapping, as Lambda runs it: poll, batch, invoke, delete what succeeded.

Each poller thread long-polls the queue, gathers up to `batch_size` messages within the
batching window, invokes the handler (the stack's: in an execution environment of its own,
see `environments`; a timed-out one fails the whole batch) with a Lambda-shaped SQS event and
a context object, and deletes the messages that succeeded. Failed messages are left alone:
they reappear after the visibility timeout and, after maxReceiveCount receives, the queue's
redrive policy moves them to the DLQ. With ReportBatchItemFailures the response is read as
Lambda reads it (`batch_outcome`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.local.environments import FunctionTimeoutError
from pipeline.local.lambda_runtime import Handler, LambdaContext

logger = logging.getLogger(__name__)

MAX_RECEIVE = 10
"""SQS ReceiveMessage returns at most 10 messages per call."""
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
"""Lambda's synchronous invocation payload limit: a batch stops growing before it."""
MAX_MESSAGE_BYTES = 256 * 1024


@dataclass(frozen=True)
class BatchOutcome:
    """Which messages of an invocation failed, and why the whole batch did (if it did)."""

    failed_ids: frozenset[str]
    reason: str | None = None
    """Set when the whole batch failed (exception, timeout, invalid response)."""


def batch_outcome(
    response: Any,
    message_ids: Sequence[str],
    *,
    report_batch_item_failures: bool = True,
    error: BaseException | None = None,
) -> BatchOutcome:
    """Read a handler's result as Lambda does.

    An exception fails the whole batch. Without ReportBatchItemFailures the response is
    ignored. With it: `None`, `{}`, or a `None`/empty `batchItemFailures` = all succeeded; a
    response that is not a JSON object, or an `itemIdentifier` that is missing, empty, not a
    string or not a messageId of the batch = the whole batch failed.
    """
    everything = frozenset(message_ids)
    if error is not None:
        return BatchOutcome(everything, f"handler raised {type(error).__name__}: {error}")
    if not report_batch_item_failures or response is None:
        return BatchOutcome(frozenset())
    try:
        json.dumps(response)
    except (TypeError, ValueError):
        return BatchOutcome(everything, "response is not JSON-serializable")
    if not isinstance(response, dict):
        return BatchOutcome(everything, f"response is a {type(response).__name__}, not an object")
    failures = response.get("batchItemFailures")
    if failures is None:
        return BatchOutcome(frozenset())
    if not isinstance(failures, list):
        return BatchOutcome(everything, "batchItemFailures is not a list")
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or not identifier:
            return BatchOutcome(everything, f"invalid batch item failure {item!r}")
        if identifier not in everything:
            return BatchOutcome(everything, f"itemIdentifier {identifier!r} is not in the batch")
        failed.add(identifier)
    return BatchOutcome(frozenset(failed))


def _message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """SQS API message attributes -> the camelCase shape of Lambda's SQS event."""
    return {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value.get("DataType"),
        }
        for name, value in attributes.items()
    }


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of Lambda's SQS event, built from a ReceiveMessage message."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": _message_attributes(message.get("MessageAttributes") or {}),
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


@dataclass
class PollerStats:
    """Counters over all pollers of one event source mapping (read them, don't write)."""

    invocations: int = 0
    failed_invocations: int = 0
    """Invocations whose whole batch failed (exception, timeout, invalid response)."""
    timeouts: int = 0
    messages_received: int = 0
    messages_deleted: int = 0
    messages_failed: int = 0
    """Messages left on the queue to be retried (or redriven to the DLQ)."""
    delete_errors: int = 0
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


@dataclass
class SqsEventSource:
    """Lambda's SQS event source mapping, run by `pollers` threads against `queue_url`."""

    sqs: Any
    """A boto3 SQS client (thread-safe; size its pool for `pollers` concurrent long polls)."""
    queue_url: str
    queue_arn: str
    handler: Handler
    """Invoked as `handler(event, context)`; may be replaced while running."""
    function_name: str = "IngestFunction"
    region: str = "ap-south-1"
    batch_size: int = 10
    batching_window_s: float = 0
    function_timeout_s: float = 60
    memory_mb: int = 128
    report_batch_item_failures: bool = True
    pollers: int = 1
    wait_time_s: int = 1
    """Long-poll wait per ReceiveMessage (1-20 s); also bounds how long `stop` takes."""
    on_thread_exit: Callable[[], None] | None = None
    """Called in each poller thread as it ends (to close per-thread handler resources)."""
    stats: PollerStats = field(default_factory=PollerStats)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _threads: list[threading.Thread] = field(default_factory=list, repr=False)
    _in_flight: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError("batch_size must be 1-10000")
        if not 0 <= self.batching_window_s <= 300:
            raise ValueError("batching_window_s must be 0-300")
        if not 0 <= self.wait_time_s <= 20:
            raise ValueError("wait_time_s must be 0-20 (SQS long polling)")

    @property
    def in_flight(self) -> int:
        """Invocations running (messages received and not yet deleted or given up)."""
        return self._in_flight

    def start(self) -> SqsEventSource:
        """Start the poller threads."""
        self._stop.clear()
        for index in range(self.pollers):
            thread = threading.Thread(target=self._run, name=f"sqs-poller-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop polling; waits for current polls and invocations to finish."""
        self._stop.set()
        limit = timeout_s if timeout_s is not None else self.function_timeout_s + 5
        deadline = time.monotonic() + limit
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning("%s still running after %.0f s (handler stuck?)", thread.name, limit)
        self._threads.clear()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                messages = self._gather()
                if messages and self._stop.is_set():
                    self._release(messages)
                elif messages:
                    with self._lock:
                        self._in_flight += 1
                    try:
                        self._invoke(messages)
                    finally:
                        with self._lock:
                            self._in_flight -= 1
        finally:
            if self.on_thread_exit is not None:
                try:
                    self.on_thread_exit()
                except Exception:  # shutdown is best effort
                    logger.debug("thread exit hook failed", exc_info=True)

    def _receive(self, count: int, wait_s: int) -> list[dict[str, Any]]:
        try:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=count,
                WaitTimeSeconds=wait_s,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        except (ClientError, BotoCoreError) as error:
            if not self._stop.is_set():
                self.stats.last_error = f"ReceiveMessage: {error}"
                logger.warning("ReceiveMessage failed: %s", error)
                self._stop.wait(1)
            return []
        return list(response.get("Messages") or [])

    def _gather(self) -> list[dict[str, Any]]:
        """One batch: up to batch_size messages, within the window after the first one."""
        messages: list[dict[str, Any]] = []
        payload = 0
        window_end = 0.0
        while not self._stop.is_set():
            wanted = min(MAX_RECEIVE, self.batch_size - len(messages))
            if messages:
                remaining = window_end - time.monotonic()
                if remaining <= 0:
                    break
                wait = 1 if remaining >= 1 else 0
            else:
                wait = self.wait_time_s
            received = self._receive(wanted, wait)
            if received and not messages:
                window_end = time.monotonic() + self.batching_window_s
            messages.extend(received)
            payload += sum(len(m["Body"].encode()) for m in received)
            full = (
                len(messages) >= self.batch_size
                or payload + MAX_MESSAGE_BYTES * MAX_RECEIVE > MAX_PAYLOAD_BYTES
            )
            if messages and (self.batching_window_s == 0 or full):
                break
            if messages and not received and wait == 0:
                self._stop.wait(0.02)  # short polls near the end of the window
        return messages

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        records = [sqs_record(m, self.queue_arn, self.region) for m in messages]
        ids = [record["messageId"] for record in records]
        context = LambdaContext(
            function_name=self.function_name,
            timeout_s=self.function_timeout_s,
            region=self.region,
            memory_limit_in_mb=self.memory_mb,
        )
        response: Any = None
        error: BaseException | None = None
        try:
            response = self.handler({"Records": records}, context)
        except Exception as raised:
            error = raised
        elapsed = context.elapsed_s()
        if isinstance(error, FunctionTimeoutError) or elapsed > self.function_timeout_s:
            outcome = BatchOutcome(
                frozenset(ids), f"Task timed out after {self.function_timeout_s:.2f} seconds"
            )
            self.stats.add(timeouts=1)
        else:
            outcome = batch_outcome(
                response,
                ids,
                report_batch_item_failures=self.report_batch_item_failures,
                error=error,
            )
        succeeded = [m for m in messages if m["MessageId"] not in outcome.failed_ids]
        self.stats.add(
            invocations=1,
            failed_invocations=1 if outcome.reason else 0,
            messages_received=len(messages),
            messages_failed=len(outcome.failed_ids),
        )
        if outcome.reason:
            self.stats.last_error = outcome.reason
            logger.warning(
                "%s: batch of %d failed, will be retried: %s",
                self.function_name,
                len(messages),
                outcome.reason,
            )
        deleted = self._delete(succeeded)
        logger.info(
            "%s: %d message(s) in %.0f ms, %d deleted, %d left for retry",
            self.function_name,
            len(messages),
            elapsed * 1000,
            deleted,
            len(outcome.failed_ids),
        )

    def _delete(self, messages: list[dict[str, Any]]) -> int:
        deleted = 0
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
            ]
            try:
                response = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as error:
                self.stats.add(delete_errors=len(chunk))
                logger.warning("DeleteMessageBatch failed: %s", error)
                continue
            failed = response.get("Failed") or []
            for failure in failed:
                logger.warning("DeleteMessageBatch entry failed: %s", failure)
            self.stats.add(delete_errors=len(failed), messages_deleted=len(chunk) - len(failed))
            deleted += len(chunk) - len(failed)
        return deleted

    def _release(self, messages: list[dict[str, Any]]) -> None:
        """Make messages gathered while stopping visible again at once (not invoked)."""
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(chunk)
            ]
            try:
                self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError):
                logger.debug("could not release messages while stopping", exc_info=True)
