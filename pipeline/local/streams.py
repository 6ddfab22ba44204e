"""A DynamoDB Streams event source mapping, as Lambda runs it for the totals function.

Lambda reads each shard of the table's stream in order and invokes the function with one
batch of ONE shard at a time (ParallelizationFactor 1); a shard's children start only once
the shard is closed and read to its end. A batch that fails (exception, timeout, invalid
response) is retried, whole, until it succeeds (MaximumRetryAttempts -1); with
ReportBatchItemFailures a reported `itemIdentifier` (a sequence number of the batch) moves
the checkpoint to just before that record and the retry starts there. With a tumbling
window the event also names its shard (`shardId`) and the response must carry `state`.

DynamoDB Local serves the Streams API (DescribeStream, GetShardIterator, GetRecords); this
poller runs the real handler on it, in an execution environment like the SQS poller does.
Polling intervals are settings (`poll_interval_s`, `retry_delay_s`) so tests can shorten them.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.local.environments import FunctionTimeoutError
from pipeline.local.lambda_runtime import Handler, LambdaContext

logger = logging.getLogger(__name__)

MAX_GET_RECORDS = 1_000
"""GetRecords returns at most 1,000 records per call."""


def lambda_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """One record of Lambda's DynamoDB event, from a GetRecords record."""
    data = dict(record.get("dynamodb") or {})
    created = data.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        data["ApproximateCreationDateTime"] = created.timestamp()
    return {
        "eventID": record.get("eventID") or uuid.uuid4().hex,
        "eventName": record.get("eventName"),
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": data,
        "eventSourceARN": stream_arn,
    }


def failed_from(response: Any, sequence_numbers: list[str], error: BaseException | None) -> int:
    """Index of the first record to retry (len = none), reading the response as Lambda does
    with ReportBatchItemFailures and a tumbling window: an exception, a response without
    `state`, or a bad itemIdentifier fails the whole batch (index 0)."""
    if error is not None or not isinstance(response, dict) or "state" not in response:
        return 0
    failures = response.get("batchItemFailures") or []
    if not isinstance(failures, list):
        return 0
    first = len(sequence_numbers)
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if identifier not in sequence_numbers:
            return 0
        first = min(first, sequence_numbers.index(identifier))
    return first


@dataclass
class _Shard:
    shard_id: str
    parent: str | None
    checkpoint: str | None = None
    """Sequence number of the last record processed (None: from the start)."""
    iterator: str | None = None
    closed: bool = False
    done: bool = False
    """Closed and read to its end."""


@dataclass
class StreamStats:
    """Counters of the mapping (read them, don't write)."""

    invocations: int = 0
    failed_invocations: int = 0
    records: int = 0
    passes: int = 0
    """Full passes over the shards; `quiet_passes` of them found no record anywhere."""
    quiet_passes: int = 0
    last_quiet_pass: int = 0
    last_error: str | None = None


@dataclass
class DynamoStreamEventSource:
    """Lambda's DynamoDB event source mapping, one thread, shards in parent-first order."""

    streams: Any
    """A boto3 `dynamodbstreams` client."""
    stream_arn: str
    handler: Handler
    function_name: str = "TotalsFunction"
    region: str = "ap-south-1"
    batch_size: int = 100
    function_timeout_s: float = 60
    memory_mb: int = 128
    window_s: int = 1
    poll_interval_s: float = 0.2
    """Pause after a pass that found no record (Lambda polls each shard about 4 times a second)."""
    retry_delay_s: float = 0.2
    """Pause before a failed batch is sent again."""
    on_thread_exit: Callable[[], None] | None = None
    stats: StreamStats = field(default_factory=StreamStats)
    _shards: dict[str, _Shard] = field(default_factory=dict, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _busy: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError("batch_size must be 1-10000")

    def start(self) -> DynamoStreamEventSource:
        """Start the polling thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="stream-poller", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop after the current batch."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s if timeout_s is not None else self.function_timeout_s + 5)
            self._thread = None

    @property
    def busy(self) -> bool:
        """Whether an invocation is running."""
        return self._busy

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    found = self.poll_once()
                except (ClientError, BotoCoreError) as error:
                    self.stats.last_error = f"{type(error).__name__}: {error}"
                    logger.warning("stream poll failed: %s", error)
                    found = 0
                if not found:
                    self._stop.wait(self.poll_interval_s)
        finally:
            if self.on_thread_exit is not None:
                try:
                    self.on_thread_exit()
                except Exception:  # best effort at shutdown
                    logger.debug("thread exit hook failed", exc_info=True)

    def _discover(self) -> None:
        start: str | None = None
        while True:
            kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
            if start is not None:
                kwargs["ExclusiveStartShardId"] = start
            description = self.streams.describe_stream(**kwargs)["StreamDescription"]
            for shard in description.get("Shards") or []:
                state = self._shards.get(shard["ShardId"])
                if state is None:
                    state = self._shards[shard["ShardId"]] = _Shard(
                        shard["ShardId"], shard.get("ParentShardId")
                    )
                if "EndingSequenceNumber" in (shard.get("SequenceNumberRange") or {}):
                    state.closed = True
            start = description.get("LastEvaluatedShardId")
            if not start:
                return

    def _ready(self, shard: _Shard) -> bool:
        parent = self._shards.get(shard.parent) if shard.parent else None
        return not shard.done and (parent is None or parent.done)

    def poll_once(self) -> int:
        """One pass: a batch from every shard ready to be read; the records invoked with."""
        self._discover()
        found = 0
        for shard in list(self._shards.values()):
            if self._stop.is_set():
                break
            if self._ready(shard):
                found += self._poll_shard(shard)
        self.stats.passes += 1
        if not found:
            self.stats.quiet_passes += 1
            self.stats.last_quiet_pass = self.stats.passes
        return found

    def _iterator(self, shard: _Shard) -> str:
        if shard.iterator is None:
            kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard.shard_id}
            if shard.checkpoint is None:
                kwargs["ShardIteratorType"] = "TRIM_HORIZON"
            else:
                kwargs.update(
                    ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=shard.checkpoint
                )
            shard.iterator = self.streams.get_shard_iterator(**kwargs)["ShardIterator"]
        return shard.iterator

    def _poll_shard(self, shard: _Shard) -> int:
        try:
            response = self.streams.get_records(
                ShardIterator=self._iterator(shard), Limit=min(self.batch_size, MAX_GET_RECORDS)
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ExpiredIteratorException":
                shard.iterator = None
                return 0
            raise
        records = list(response.get("Records") or [])
        shard.iterator = response.get("NextShardIterator")
        if not records:
            if shard.iterator is None:  # closed and read to its end
                shard.done = True
            return 0
        self._invoke(shard, records)
        return len(records)

    def _invoke(self, shard: _Shard, records: list[dict[str, Any]]) -> None:
        numbers = [str(r["dynamodb"]["SequenceNumber"]) for r in records]
        now = time.time()
        event = {
            "Records": [lambda_record(r, self.stream_arn, self.region) for r in records],
            "window": {
                "start": time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - now % self.window_s)
                ),
                "end": time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - now % self.window_s + self.window_s)
                ),
            },
            "state": {},
            "shardId": shard.shard_id,
            "eventSourceARN": self.stream_arn,
            "isFinalInvokeForWindow": False,
            "isWindowTerminatedEarly": False,
        }
        context = LambdaContext(
            function_name=self.function_name,
            timeout_s=self.function_timeout_s,
            region=self.region,
            memory_limit_in_mb=self.memory_mb,
        )
        response: Any = None
        error: BaseException | None = None
        self._busy = True
        try:
            response = self.handler(event, context)
        except Exception as raised:
            error = raised
        finally:
            self._busy = False
        if isinstance(error, FunctionTimeoutError) or context.elapsed_s() > self.function_timeout_s:
            error = error or FunctionTimeoutError(self.function_timeout_s)
        retry_at = failed_from(response, numbers, error)
        self.stats.invocations += 1
        self.stats.records += len(records)
        if retry_at > 0:
            shard.checkpoint = numbers[retry_at - 1]
        if retry_at < len(records):
            self.stats.failed_invocations += 1
            reason = f"{type(error).__name__}: {error}" if error else f"retry from #{retry_at}"
            self.stats.last_error = reason
            logger.warning(
                "%s: batch of %d failed, retried: %s", self.function_name, len(records), reason
            )
            shard.iterator = None  # re-read from the checkpoint
            self._stop.wait(self.retry_delay_s)

    def wait_until_caught_up(self, timeout_s: float = 60) -> None:
        """Wait until a whole pass, started after this call, found no new record in any
        shard (every change made before the call has been applied); `TimeoutError` after
        `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        start = self.stats.passes
        while self.stats.last_quiet_pass < start + 2:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"stream not caught up after {timeout_s} s "
                    f"(last error: {self.stats.last_error})"
                )
            time.sleep(0.05)
