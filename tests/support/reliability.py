"""Helpers of the reliability tests: fault injection into the running stack, and states to compare.

- `FaultyClients`: a stand-in for `pipeline.adapters.runtime.open_dynamodb_client` that wraps every
  client the ingest handler opens in `StrictFaultyClient` (UnprocessedItems, throttling).
  Patched in before the stack cold-starts `handlers.ingest`, it is what the real handler
  module imports: the handler, its settings and its writer stay the real ones.
- `CrashingHandler`: wraps a handler so that some invocations apply part of their batch and
  then raise (a container dying mid-batch).
- `s3_history`: creates/deletes with S3-style sequencers, and the bucket they leave.
- `bucket_state`, `table_state`, `api_state`, `drain`: what each side holds at the end.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from pipeline.adapters.runtime import open_dynamodb_client
from pipeline.core.settings import Settings
from pipeline.local.api_client import list_files
from tests.support.faults import StrictFaultyClient
from tests.support.s3events import notification, s3_record

FileState = dict[str, tuple[int, str | None]]
"""filename -> (size, etag) of each live file."""


@dataclass
class FaultyClients:
    """Opens real aiobotocore DynamoDB clients wrapped in `StrictFaultyClient`."""

    unprocessed_rate: float = 0.0
    throttle_rate: float = 0.0
    seed: int = 0
    opened: list[StrictFaultyClient] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    async def __call__(
        self, stack: AsyncExitStack, settings: Settings, session: Any = None
    ) -> StrictFaultyClient:
        client = await open_dynamodb_client(stack, settings, session)
        with self._lock:  # one client per poller thread; each gets its own seed
            wrapper = StrictFaultyClient(
                client,
                unprocessed_rate=self.unprocessed_rate,
                throttle_rate=self.throttle_rate,
                seed=self.seed + len(self.opened),
            )
            self.opened.append(wrapper)
        return wrapper

    @property
    def unprocessed(self) -> int:
        """Items and keys returned as unprocessed, over all clients."""
        return sum(client.unprocessed for client in self.opened)

    @property
    def throttled(self) -> int:
        """Calls refused with a throttling error, over all clients."""
        return sum(client.throttled for client in self.opened)


class SimulatedCrash(RuntimeError):
    """Raised by `CrashingHandler` after part of the batch went through."""


class CrashingHandler:
    """Crashes a share of invocations mid-batch: the first half of the records is applied by
    the real handler, then the invocation raises (Lambda: the whole batch failed)."""

    def __init__(
        self,
        handler: Callable[[dict[str, Any], Any], Any],
        *,
        rate: float,
        seed: int,
        always: frozenset[int] = frozenset(),
    ) -> None:
        self._handler = handler
        self._rate = rate
        self._rng = random.Random(seed)
        self._always = always
        """Invocation numbers (1-based) that crash whatever the dice say."""
        self._lock = threading.Lock()
        self.invocations = 0
        self.crashes: list[int] = []
        """Batch sizes of the crashed invocations."""

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        with self._lock:
            self.invocations += 1
            crash = self.invocations in self._always or self._rng.random() < self._rate
        if not crash:
            return self._handler(event, context)
        records = event["Records"]
        self._handler({**event, "Records": records[: max(1, len(records) // 2)]}, context)
        with self._lock:
            self.crashes.append(len(records))
        raise SimulatedCrash(f"simulated crash after applying part of a batch of {len(records)}")


@dataclass(frozen=True)
class History:
    """Notification bodies in the order S3 produced them, and the bucket they leave."""

    bodies: list[str]
    bucket: dict[str, tuple[int, str]]
    """key -> (size, sequencer) of its latest create, for keys that exist at the end."""
    removed: set[str]
    """Keys that existed at some point and are gone at the end."""


def s3_history(rng: random.Random, *, keys: int, operations: int, bucket: str) -> History:
    """Random creates and deletes over `keys` keys, each with a growing S3-style sequencer.

    Sequencers grow across keys too, as S3's do; only their order within a key matters.
    """
    state: dict[str, tuple[int, str]] = {}
    seen: set[str] = set()
    bodies: list[str] = []
    clock = 0x0055AED6DCD90281E5
    for op in range(operations):
        key = f"dup/{rng.randrange(keys):03d} ü+%.bin"
        clock += rng.randrange(1, 5_000)
        sequencer = f"{clock:018X}"
        second = op // 50
        event_time = f"2026-11-24T10:{second // 60:02d}:{second % 60:02d}.000Z"
        if key in state and rng.random() < 0.4:
            record = s3_record(
                key,
                event="ObjectRemoved:Delete",
                bucket=bucket,
                sequencer=sequencer,
                event_time=event_time,
            )
            del state[key]
        else:
            size = rng.randrange(10**6)
            record = s3_record(
                key, bucket=bucket, size=size, sequencer=sequencer, event_time=event_time
            )
            state[key] = (size, sequencer)
            seen.add(key)
        bodies.append(notification(record))
    return History(bodies, state, seen - set(state))


def bucket_state(s3: Any, bucket: str) -> FileState:
    """Every object of the bucket: key -> (size, etag without quotes)."""
    found: FileState = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = (obj["Size"], obj["ETag"].strip('"'))
    return found


def table_rows(dynamodb: Any, table: str) -> dict[str, dict[str, Any]]:
    """Every row of the table (consistent scan), by filename; system items (keys starting
    with "#": the folder counters) left out."""
    rows: dict[str, dict[str, Any]] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            if not item["pk"]["S"].startswith("#"):
                rows[item["filename"]["S"]] = item
    return rows


def table_state(rows: dict[str, dict[str, Any]]) -> tuple[FileState, set[str]]:
    """(live files, tombstoned keys) of scanned rows."""
    live: FileState = {}
    tombstones: set[str] = set()
    for key, item in rows.items():
        if item.get("deleted", {}).get("BOOL"):
            tombstones.add(key)
        else:
            etag = item["etag"]["S"] if "etag" in item else None
            live[key] = (int(item["size"]["N"]), etag)
    return live, tombstones


def api_state(api_url: str, limit: int = 250) -> FileState:
    """Every file GET /files serves, walking the pages; fails on a file served twice."""
    files = list_files(api_url, limit=limit)
    state = {item["filename"]: (item["size"], item.get("etag")) for item in files}
    assert len(state) == len(files), "GET /files served a file twice"
    return state


def drain(sqs: Any, queue_url: str) -> list[str]:
    """Receive every message of a queue (hidden for a minute, not deleted); their bodies."""
    bodies: list[str] = []
    while True:
        response = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=60
        )
        messages = response.get("Messages", [])
        if not messages:
            return bodies
        bodies += [message["Body"] for message in messages]
