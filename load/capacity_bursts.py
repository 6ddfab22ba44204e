"""The capacity run's bursts and records: what each burst uploads, its rows, a run's record."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from load.lambda_model import Model
from pipeline.core.shards import ShardPlan

TABLE = "files"
BUCKET = "burst-bucket"
# On-demand prices, us-east-1 (DESIGN.md for DynamoDB; Lambda and SQS pricing pages).
WRITE_PRICE = 0.625 / 1e6
READ_PRICE = 0.125 / 1e6
LAMBDA_GB_S = 0.0000166667
LAMBDA_REQUEST = 0.20 / 1e6
SQS_REQUEST = 0.40 / 1e6

CONFIGS: dict[str, tuple[Model, ShardPlan]] = {
    "previous": (Model(max_concurrency=5, memory_mb=256), ShardPlan(8, 8)),
    "defaults": (Model(max_concurrency=10, memory_mb=1769), ShardPlan()),
    "fast": (Model(max_concurrency=40, memory_mb=1769), ShardPlan(32, 64, 32, 64)),
    "fast-60": (Model(max_concurrency=60, memory_mb=1769), ShardPlan(32, 64, 32, 64)),
}
"""Named configurations: the event source and function (template.yaml parameters; BatchSize
1000, window 1 s) and the bucket's shard plan (`pipeline.core.shards`). `defaults`: the
template's and the code's (8 listing, 16 feed shards); `previous`: the defaults before issue 23
(8 feed shards); docs/deploy.md, "Capacity"."""


@dataclass(frozen=True)
class Burst:
    name: str
    events: int
    """Events at full scale (the run sends events / N)."""
    keys: int = 0
    """Distinct keys (0: every event its own key)."""
    delete: bool = False


BURSTS = {
    "spread": Burst("spread", 1_000_000),
    "one-folder": Burst("one-folder", 1_000_000),
    "overwrite": Burst("overwrite", 200_000, keys=1000),
    "delete": Burst("delete", 200_000, delete=True),
}


def key_of(burst: Burst, i: int) -> str:
    if burst.name == "spread":
        return f"spread/d{i % 1000:03d}/f{i:07d}.bin"
    if burst.name == "overwrite":
        return f"hot/k{i % burst.keys:04d}.bin"
    return f"{burst.name}/f{i:07d}.bin"


def body(key: str, seq: int, delete: bool, now: float) -> str:
    """An S3 notification (one record) as S3 sends it to SQS."""
    when = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
    obj: dict[str, Any] = {"key": key, "sequencer": f"{seq:018X}"}
    if not delete:
        obj.update(size=1024, eTag="0" * 32)
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "ap-south-1",
        "eventTime": when.replace("+00:00", "Z"),
        "eventName": "ObjectRemoved:Delete" if delete else "ObjectCreated:Put",
        "s3": {"bucket": {"name": BUCKET}, "object": obj},
    }
    return json.dumps({"Records": [record]})


def registry_item(plan: ShardPlan) -> dict[str, Any]:
    """The bucket's registry item with its shard plan (as `register_bucket` writes it)."""
    from pipeline.adapters.dynamo.statements import to_item
    from pipeline.core.model import bucket_record

    return to_item(
        bucket_record(BUCKET)
        | {
            "index_shards": plan.index,
            "feed_shards": plan.feed,
            "read_index_shards": plan.read_index,
            "read_feed_shards": plan.read_feed,
        }
    )


def seed_rows(burst: Burst, count: int, plan: ShardPlan) -> list[dict[str, Any]]:
    """The live rows a delete storm removes, as ingest would have written them."""
    from pipeline.adapters.dynamo.statements import to_item
    from pipeline.core.model import Action, FileEvent
    from pipeline.feed.positions import Stamper
    from pipeline.ingest.batch import planned_row

    stamper = Stamper(5000)
    items = []
    for i in range(count):
        event = FileEvent(
            key_of(burst, i),
            BUCKET,
            Action.PUT,
            "ObjectCreated:Put",
            "2026-01-01T00:00:00.000Z",
            1024,
            "0" * 32,
            f"{i:018X}",
        )
        row = stamper.stamp(planned_row(event, 0, 60, {BUCKET: plan}), None, 0)
        items.append(to_item(row))
    counters = {"": count, f"{burst.name}/": count}
    for folder, files in counters.items():
        items.append(
            {
                "pk": {"S": f"#totals/{BUCKET}/{folder}"},
                "files": {"N": str(files)},
                "bytes": {"N": str(files * 1024)},
                "updates": {"N": "1"},
            }
        )
    return items


@dataclass
class Run:
    config: str
    burst: str
    scale: int
    rate: float
    events_model: int
    events_sent: int = 0
    seconds: float = 0.0
    lag_p50_s: float = 0.0
    lag_p99_s: float = 0.0
    events_per_s: float = 0.0
    throttles: dict[str, int] = field(default_factory=dict)
    top_keys: list[dict[str, Any]] = field(default_factory=list)
    retries: int = 0
    failed_messages: int = 0
    dead_letters: int = 0
    peak_depth: int = 0
    peak_running: int = 0
    cost_per_million: dict[str, float] = field(default_factory=dict)
    check: str = ""
    timeline: list[dict[str, float]] = field(default_factory=list)
    cpu_per_record_ms: float = 0.0
    timed_out: int = 0
    """Invocations that timed out or raised (their whole batch failed)."""
    reasons: dict[str, int] = field(default_factory=dict)
    """Why messages failed, from the handler's warnings."""
    load_average: float = 0.0
    """The box's 1-minute load average at the end of the run (2 cores): the real part of
    each invocation (its I/O with the front) waits longer on a loaded box."""


class Recorder:
    """Wraps the handler's metrics hook to add up the invocations' retries (thread-safe)."""

    def __init__(self) -> None:
        self.retries = 0
        self.failed = 0
        self.lock = threading.Lock()

    def install(self, module: Any) -> None:
        original = module._record_metrics

        def record(result: Any) -> None:
            with self.lock:
                self.retries += result.retries
                self.failed += result.failed
            original(result)

        module._record_metrics = record
