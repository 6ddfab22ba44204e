"""In-memory bucket, table and checkpoint store for reconcile tests, as strict as the services.

- `FakeBucket` lists in UTF-8 binary order with `Prefix`/`StartAfter` semantics and answers
  HeadObject with the state *at the time of the call*.
- `FakeTable` keeps whole items; `iter_live` yields live rows in key order (like the sorted
  index); `write_conditional` is a compare-and-swap on the version attributes of the item read
  (`expected=None`: only if no item exists); `apply` is ingest: an event replaces the stored
  row only if it is newer (`pipeline.core.model.is_newer`), exactly as the ingest Lambda decides.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pipeline.core.model import (
    SHARD_ATTRIBUTE,
    Action,
    ConditionalWrite,
    FileEvent,
    WriteOutcome,
    is_newer,
)
from pipeline.reconcile.merge import Checkpoint, S3Object

CAS_ATTRIBUTES = ("filename", "seq", "sequencer", "event_time", "deleted")
TTL_S = 15 * 86_400


def etag_of(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()  # S3's ETag of a single-part upload


class FakeBucket:
    """Current objects of one unversioned bucket, with a clock for LastModified and sequencers."""

    def __init__(self, name: str = "bucket") -> None:
        self.name = name
        self.objects: dict[str, S3Object] = {}
        self._tick = 0
        self.heads: list[str] = []
        self.lists = 0

    def _next(self) -> tuple[str, str]:
        self._tick += 1
        seconds, millis = divmod(self._tick, 1000)
        time = f"2026-01-01T00:{seconds // 60:02d}:{seconds % 60:02d}.{millis:03d}Z"
        return time, f"{self._tick:016X}"

    def put(self, key: str, body: bytes) -> FileEvent:
        """Store the object; returns the event S3 would send."""
        time, sequencer = self._next()
        etag = etag_of(body)
        self.objects[key] = S3Object(key, len(body), etag, time)
        return FileEvent(
            key, self.name, Action.PUT, "ObjectCreated:Put", time, len(body), etag, sequencer
        )

    def delete(self, key: str) -> FileEvent:
        time, sequencer = self._next()
        self.objects.pop(key, None)
        return FileEvent(
            key, self.name, Action.DELETE, "ObjectRemoved:Delete", time, None, None, sequencer
        )

    def iter_objects(self, prefix: str, start_after: str | None) -> Iterator[S3Object]:
        self.lists += 1
        for key in sorted(self.objects):
            if key.startswith(prefix) and (start_after is None or key > start_after):
                yield self.objects[key]

    def head_many(self, keys: Sequence[str]) -> dict[str, S3Object | None]:
        self.heads.extend(keys)
        return {key: self.objects.get(key) for key in keys}


class FakeTable:
    """The files table: whole items by key."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.writes: list[ConditionalWrite] = []
        self.reads = 0
        self.fail_keys: set[str] = set()

    # ingest
    def apply(self, event: FileEvent, now: float = 1_700_000_000) -> bool:
        """What the ingest Lambda does with one event; True when it wrote."""
        if not is_newer(event, self.items.get(event.filename)):
            return False
        self.items[event.filename] = event.row(now=now, tombstone_ttl_s=TTL_S)
        return True

    # the sorted index
    def iter_live(self, prefix: str, start_after: str | None) -> Iterator[dict[str, Any]]:
        for key in sorted(self.items):
            row = self.items[key]
            if row.get("deleted") is True or SHARD_ATTRIBUTE not in row:
                continue
            if key.startswith(prefix) and (start_after is None or key > start_after):
                yield copy.deepcopy(row)

    # RowStore
    def read_rows(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.reads += 1
        return {key: copy.deepcopy(self.items[key]) for key in keys if key in self.items}

    def write_conditional(self, writes: Sequence[ConditionalWrite]) -> dict[str, WriteOutcome]:
        outcomes: dict[str, WriteOutcome] = {}
        keys = [write.row["filename"] for write in writes]
        assert len(set(keys)) == len(keys), "one key twice in one batch"
        for write in writes:
            key = write.row["filename"]
            self.writes.append(write)
            if key in self.fail_keys:
                outcomes[key] = WriteOutcome.FAILED
                continue
            stored = self.items.get(key)
            if write.expected is None:
                ok = stored is None
            else:
                ok = stored is not None and all(
                    stored.get(name) == write.expected.get(name) for name in CAS_ATTRIBUTES
                )
            if ok:
                self.items[key] = copy.deepcopy(write.row)
                outcomes[key] = WriteOutcome.WRITTEN
            else:
                outcomes[key] = WriteOutcome.CONFLICT
        return outcomes

    def live(self) -> dict[str, tuple[int, str | None]]:
        """key -> (size, etag) of live rows."""
        return {
            key: (row["size"], row.get("etag"))
            for key, row in self.items.items()
            if row.get("deleted") is not True
        }


def bucket_state(bucket: FakeBucket) -> dict[str, tuple[int, str | None]]:
    return {key: (obj.size, obj.etag) for key, obj in bucket.objects.items()}


class FakeCheckpoints:
    def __init__(self) -> None:
        self.saved: dict[str, Checkpoint] = {}
        self.saves = 0

    def load(self, prefix: str) -> Checkpoint | None:
        return copy.deepcopy(self.saved.get(prefix))

    def save(self, checkpoint: Checkpoint) -> None:
        self.saves += 1
        self.saved[checkpoint.prefix] = copy.deepcopy(checkpoint)

    def clear(self, prefix: str) -> None:
        self.saved.pop(prefix, None)


def stop_after(n: int) -> Callable[[], bool]:
    """A `should_stop` that turns true after being asked `n` times (n keys compared)."""
    calls = 0

    def should_stop() -> bool:
        nonlocal calls
        calls += 1
        return calls >= n

    return should_stop
