"""The SQS queue and Lambda event source model around the real ingest handler (issue 23).

Rules (each modelled, not measured; AWS pages):
- Scaling: when messages are available Lambda processes five batches at once, then adds up
  to 300 concurrent invocations a minute, up to the event source's MaximumConcurrency
  (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html).
- Batching: a batch is invoked when it holds BatchSize messages or the batching window has
  passed since its first message (MaximumBatchingWindowInSeconds;
  https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-parameters.html).
- Visibility: a received message is invisible for the queue's VisibilityTimeout; a message
  the function reports failed (ReportBatchItemFailures) or of an invocation that raised or
  timed out becomes visible again when that time is up, and after maxReceiveCount receives
  goes to the dead-letter queue
  (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html).
- CPU: a function gets CPU in proportion to its memory, one vCPU at 1,769 MB
  (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html); the handler runs
  one event loop, so more than one vCPU does not speed it up (share capped at 1).

Scale 1:N (`Model.scale`): the run carries 1/N of the events at 1/N of the rate, batches of
BatchSize/N messages; the number of execution environments and all times are real. Each
environment is a thread running the REAL `handlers.ingest.lambda_handler`; before it, the
environment is held for the CPU time the invocation would take on Lambda at full scale,
`k * N * cpu_per_record / share` (k messages, `cpu_per_record` measured on this machine), less
the CPU the real call then spends here.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

VCPU_MB = 1_769
INITIAL_CONCURRENCY = 5
SCALE_UP_PER_MINUTE = 300


@dataclass(frozen=True)
class Model:
    """A deployment's ingest settings (template.yaml's parameters) and the run's scale."""

    scale: int = 100
    batch_size: int = 1000
    window_s: float = 1.0
    max_concurrency: int = 5
    memory_mb: int = 256
    timeout_s: float = 60.0
    visibility_s: float = 360.0
    max_receive: int = 5

    @property
    def share(self) -> float:
        """The vCPU share of one environment (at most one: one event loop)."""
        return min(1.0, self.memory_mb / VCPU_MB)

    @property
    def slice_batch(self) -> int:
        """Messages per batch in the scaled run."""
        return max(1, round(self.batch_size / self.scale))


@dataclass
class Message:
    id: str
    body: str
    sent: float
    receives: int = 0
    visible_at: float = 0.0


@dataclass
class Queue:
    """A standard queue: visible messages, in flight ones, a dead-letter queue."""

    visible: collections.deque[Message] = field(default_factory=collections.deque)
    in_flight: dict[str, Message] = field(default_factory=dict)
    dead: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, body: str, now: float) -> None:
        with self.lock:
            self.visible.append(Message(uuid.uuid4().hex, body, now, visible_at=now))

    def depth(self) -> int:
        with self.lock:
            return len(self.visible) + len(self.in_flight)

    def expire(self, now: float, max_receive: int) -> None:
        """In-flight messages whose visibility timeout passed: visible again (or dead)."""
        with self.lock:
            for mid in [m for m, msg in self.in_flight.items() if msg.visible_at <= now]:
                message = self.in_flight.pop(mid)
                if message.receives >= max_receive:
                    self.dead.append(message)
                else:
                    self.visible.append(message)

    def receive(self, count: int, now: float, visibility_s: float) -> list[Message]:
        with self.lock:
            batch: list[Message] = []
            while self.visible and len(batch) < count:
                message = self.visible.popleft()
                message.receives += 1
                message.visible_at = now + visibility_s
                self.in_flight[message.id] = message
                batch.append(message)
            return batch

    def delete(self, ids: list[str]) -> None:
        with self.lock:
            for mid in ids:
                self.in_flight.pop(mid, None)

    def oldest_wait(self, now: float) -> float:
        with self.lock:
            return now - self.visible[0].visible_at if self.visible else 0.0


class Context:
    """A LambdaContext with the invocation's deadline."""

    function_name = "capacity-ingest"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:capacity-ingest"
    memory_limit_in_mb = 256
    log_group_name = log_stream_name = "capacity"

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline
        self.aws_request_id = uuid.uuid4().hex

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class Counters:
    invocations: int = 0
    failed_messages: int = 0
    timed_out: int = 0
    raised: int = 0
    modelled_cpu_s: float = 0.0
    handler_cpu_s: float = 0.0
    billed_ms: float = 0.0
    running: int = 0
    peak_running: int = 0


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class EventSource:
    """Polls the queue and invokes the handler in up to MaximumConcurrency environments."""

    def __init__(self, model: Model, queue: Queue, handler: Handler, cpu_per_record: float) -> None:
        self.model, self.queue, self.handler = model, queue, handler
        self.cpu_per_record = cpu_per_record
        self.counters = Counters()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=model.max_concurrency)
        self._active_since: float | None = None

    def allowed(self, now: float) -> int:
        """Concurrent invocations Lambda runs `now` (five, +300 a minute, up to the max)."""
        if self._active_since is None:
            return 0
        grown = INITIAL_CONCURRENCY + SCALE_UP_PER_MINUTE * (now - self._active_since) / 60
        return min(self.model.max_concurrency, int(grown))

    def step(self, now: float) -> None:
        """Expire visibility timeouts and start what the scaling and batching rules allow."""
        model = self.model
        self.queue.expire(now, model.max_receive)
        if self._active_since is None and self.queue.visible:
            self._active_since = now
        while self.counters.running < self.allowed(now):
            ready = len(self.queue.visible) >= model.slice_batch
            waited = self.queue.oldest_wait(now) >= model.window_s
            if not (ready or (waited and self.queue.visible)):
                return
            batch = self.queue.receive(model.slice_batch, now, model.visibility_s)
            if not batch:
                return
            with self._lock:
                self.counters.running += 1
                self.counters.peak_running = max(self.counters.peak_running, self.counters.running)
            self._pool.submit(self._invoke, batch)

    def _invoke(self, batch: list[Message]) -> None:
        model = self.model
        started = time.monotonic()
        deadline = started + model.timeout_s
        modelled = len(batch) * model.scale * self.cpu_per_record / model.share
        local = len(batch) * self.cpu_per_record
        time.sleep(max(0.0, min(modelled - local, model.timeout_s)))
        event = {
            "Records": [
                {
                    "messageId": m.id,
                    "receiptHandle": m.id,
                    "body": m.body,
                    "attributes": {"ApproximateReceiveCount": str(m.receives)},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:local:000000000000:capacity",
                    "awsRegion": "ap-south-1",
                }
                for m in batch
            ]
        }
        cpu0 = time.thread_time()
        failed: set[str]
        try:
            response = self.handler(event, Context(deadline)) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
            raised = False
        except Exception:
            failed, raised = {m.id for m in batch}, True
        elapsed = time.monotonic() - started
        timed_out = elapsed > model.timeout_s
        if timed_out:
            failed = {m.id for m in batch}
        self.queue.delete([m.id for m in batch if m.id not in failed])
        with self._lock:
            c = self.counters
            c.invocations += 1
            c.failed_messages += len(failed)
            c.timed_out += int(timed_out)
            c.raised += int(raised)
            c.modelled_cpu_s += modelled
            c.handler_cpu_s += time.thread_time() - cpu0
            c.billed_ms += min(elapsed, model.timeout_s) * 1000
            c.running -= 1

    def close(self, finalizer: Callable[[], None] | None = None) -> None:
        """Stop the environments, running `finalizer` once in each of their threads."""
        if finalizer is not None:
            workers = self.model.max_concurrency
            barrier = threading.Barrier(workers)

            def finish() -> None:
                barrier.wait(timeout=60)
                finalizer()

            for _ in range(workers):
                self._pool.submit(finish)
        self._pool.shutdown(wait=True)
