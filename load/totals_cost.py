"""What the folder totals cost, as part of the writer benchmark (`python -m load writer`).

The ingest handler runs warm against the writer benchmark's sink (`load.sink`, which bills
request units as on-demand DynamoDB does) on two workloads of Lambda-shaped SQS events (one
S3 PUT per message, distinct new keys):

- bulk: every key of an event in one folder (`up/<run>/file 000123.dat`: an upload of many
  files): 3 folders change ("", "up/", "up/<run>/") whatever the event's size;
- scattered: every key in a folder of its own (`sc/<run>/d000123/file.dat`): one more
  folder per key.

Three designs of the counters, side by side on the same events:

- `ingest-add` (before issue 22): ingest ADDs each changed folder's sum once per invocation
  (1 WRU each; not idempotent: an ambiguous failure loses or doubles it). Counted from the
  invocation's applied transitions (`DeltaSum`), as that code did.
- `stream` (now): ingest writes rows only; the totals function gets the table stream's
  records (one per row written, batches of the TotalsFunction's BatchSize, per shard) and
  writes each changed folder once per batch, under a watermark. Run here: the real consumer
  (`pipeline.totals.stream.apply_batch`) over the rows' INSERT records, against an
  in-memory store that bills each UpdateItem ceil(item size / 1 KB) WRU, with the records
  spread over 1 and over 4 shards (AWS: about one shard per table partition; every shard
  writes the folders it saw). Stream reads by a Lambda trigger are free; the totals
  function's requests and duration are priced (its own counter writes come back as stream
  records: one more invocation per batch, priced too).
- `transactions` (rejected): each row written in a TransactWriteItems with its folders'
  counters: 2 WRU per item, (1 + folders) items per event — and every transaction writes the
  bucket's root counter: one item, 1,000 WCU/s, so at most 500 events/s per bucket, with
  TransactionConflict between concurrent writers of a folder.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from load.events import s3_record, sqs_record
from load.report import Stopwatch, fmt, target
from pipeline.ingest.events import parse_body
from pipeline.totals.deltas import DeltaSum, Totals
from pipeline.totals.ports import Refused, totals_key
from pipeline.totals.stream import apply_batch

WORKLOADS = {
    "bulk": "one folder per event (bulk upload)",
    "scattered": "a folder per key (scattered)",
}


def workload_event(records: int, *, run: str, workload: str) -> dict[str, Any]:
    """A Lambda SQS event of `records` PUTs laid out as `workload` says (see the module)."""
    now = datetime.now(UTC)
    event_time = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    sent_ms = int(now.timestamp() * 1000)
    out = []
    for i in range(records):
        key = f"up/{run}/file {i:06d}.dat" if workload == "bulk" else f"sc/{run}/d{i:06d}/file.dat"
        record = s3_record(
            key,
            bucket="serverless-event4",
            size=1024 + i,
            sequencer=f"{0x0062B3A4F1C0000000 + i:018X}",
            event_time=event_time,
        )
        out.append(sqs_record(json.dumps({"Records": [record]}), sent_ms))
    return {"Records": out}


PRICE_GB_S = 0.0000166667
PRICE_REQUEST = 0.20 / 1e6
"""Lambda's prices (x86), as `load.writer`'s."""
STREAM_BATCH = 1_000
"""The TotalsFunction's BatchSize (template.yaml)."""
TOTALS_MEMORY_MB = 256
SHARDS = (1, 4)
DESIGNS = ("ingest-add", "stream", "transactions")


class BilledCounters:
    """`WatermarkedCounters` in memory, billing each update as on-demand DynamoDB does:
    ceil(max(item size before, after) / 1 KB) WRU (a refused condition bills too)."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, str]] = {}
        self.wru = 0
        self.updates = 0

    @staticmethod
    def _size(item: dict[str, str]) -> int:
        return sum(len(name) + len(value) for name, value in item.items())

    async def add(
        self, at: tuple[str, str], shard: str, change: Totals, *, first: str, last: str
    ) -> Refused | None:
        key = totals_key(*at)
        old = self.items.get(key, {"pk": key})
        mark = old.get("wm:" + shard)
        new = dict(old)
        if mark is None or mark < first:
            new.update(
                files=str(int(old.get("files", "0")) + change.files),
                bytes=str(int(old.get("bytes", "0")) + change.bytes),
                updates=str(int(old.get("updates", "0")) + 1),
                updated_at=f"{time.time():.3f}",
            )
            new["wm:" + shard] = f"{last}@{int(time.time())}"
        self.wru += math.ceil(max(self._size(old), self._size(new)) / 1024)
        self.updates += 1
        if new == old:
            return Refused(mark)
        self.items[key] = new
        return None


def stream_records(event: dict[str, Any], start_seq: int) -> list[dict[str, Any]]:
    """The table stream's INSERT records of the rows an event's PUTs create."""
    records = []
    for index, message in enumerate(event["Records"]):
        for file_event in parse_body(message["body"]).events:
            image = {
                "pk": {"S": file_event.key},
                "bucket": {"S": file_event.bucket},
                "filename": {"S": file_event.filename},
                "size": {"N": str(file_event.size or 0)},
            }
            records.append(
                {
                    "eventName": "INSERT",
                    "dynamodb": {
                        "Keys": {"pk": image["pk"]},
                        "NewImage": image,
                        "SequenceNumber": str(start_seq + index),
                        "StreamViewType": "NEW_AND_OLD_IMAGES",
                    },
                }
            )
    return records


def consume(records: list[dict[str, Any]], shards: int) -> dict[str, float]:
    """Run the totals consumer over `records` spread over `shards` (by key, as DynamoDB
    does), in batches of `STREAM_BATCH`: counter updates, their WRU, invocations, seconds."""
    store = BilledCounters()
    by_shard: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        key = record["dynamodb"]["Keys"]["pk"]["S"]
        by_shard.setdefault(zlib.crc32(key.encode()) % shards, []).append(record)
    invocations = 0
    with Stopwatch() as watch:
        for shard, items in by_shard.items():
            for start in range(0, len(items), STREAM_BATCH):
                batch = items[start : start + STREAM_BATCH]
                result = asyncio.run(apply_batch(batch, f"shardId-{shard}", store))
                assert result.failed_seq is None
                invocations += 2  # the batch, and the one its own counter writes cause
    return {
        "counter_updates": store.updates,
        "counter_wru": store.wru,
        "invocations": invocations,
        "wall_s": watch.wall_s,
    }


def _folders_changed(event: dict[str, Any]) -> int:
    sums = DeltaSum()
    for message in event["Records"]:
        for e in parse_body(message["body"]).events:
            sums.add_transition(e.bucket, e.filename, None, {"size": e.size or 0})
    return len(sums)


def measure(
    sink: Any, handler_for: Any, costs: Any, deployed: dict[str, int], records: int, repeat: int
) -> list[dict[str, Any]]:
    """Each workload: ingest's own units (measured), and what each design of the counters
    adds (see the module docstring); $ per million events."""
    results = []
    handler = handler_for(False)
    try:
        sink.configure(latency_ms=0, unprocessed_rate=0)
        handler(workload_event(100, run="warmup", workload="bulk"))
        for workload in WORKLOADS:
            runs = []
            for _ in range(repeat):
                event = workload_event(records, run=uuid.uuid4().hex[:8], workload=workload)
                sink.reset()
                with Stopwatch() as watch:
                    handler(event)
                stats = sink.stats()
                runs.append({"wall_s": watch.wall_s, "wru": stats["wru"], "rru": stats["rru"]})
            best = sorted(runs, key=lambda run: run["wall_s"])[len(runs) // 2]
            base = {"records": records, **best}
            results.extend(_designs(workload, event, base, costs, deployed))
    finally:
        handler.close()
    return results


def _designs(
    workload: str, event: dict[str, Any], base: dict[str, Any], costs: Any, deployed: Any
) -> list[dict[str, Any]]:
    records = base["records"]
    folders = _folders_changed(event)
    rows = []

    def row(design: str, shards: int, extra_wru: float, updates: int, lambda_usd: float) -> None:
        result = {**base, "wru": base["wru"] + extra_wru}
        priced = costs(result, deployed)
        priced["usd_per_m_lambda"] += lambda_usd
        priced["usd_per_m_total"] += lambda_usd
        rows.append(
            {
                "workload": workload,
                "design": design,
                "shards": shards,
                "records": records,
                "counter_updates": updates,
                "wru_per_record": result["wru"] / records,
                "rru_per_record": base["rru"] / records,
                **priced,
            }
        )

    row("ingest-add", 1, folders, folders, 0.0)
    for shards in SHARDS:
        used = consume(stream_records(event, 10**20), shards)
        per_m = 1e6 / records
        gb_s = used["wall_s"] * per_m * TOTALS_MEMORY_MB / 1024
        lambda_usd = gb_s * PRICE_GB_S + used["invocations"] * per_m * PRICE_REQUEST
        row("stream", shards, used["counter_wru"], int(used["counter_updates"]), lambda_usd)
    # per event: the row and its key's folders' counters (bulk 3, scattered 4) in one
    # transaction, 2 WRU per item, instead of the row's 1 WRU conditional write
    per_key = 3 if workload == "bulk" else 4
    row("transactions", 1, records * (2 * (1 + per_key) - 1), records * per_key, 0.0)
    return rows


def targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stream design writes each changed folder once per batch and shard: a bulk
    batch of one shard updates only the 3 shared folders; a scattered one adds one per key."""
    found = []
    for r in results:
        if r["design"] != "stream" or r["shards"] != 1:
            continue
        if r["workload"] == "bulk":
            found.append(
                target("totals: counter updates per bulk batch", r["counter_updates"], "<=", 3)
            )
        else:
            goal = 1 + 3 / r["records"]
            extra = r["counter_updates"] / r["records"]
            found.append(target("totals: counter updates per scattered event", extra, "<=", goal))
    return found


def table(results: list[dict[str, Any]]) -> Table:
    """$ per million events of each design of the counters, per workload."""
    out = Table(title="Folder totals: cost per million events (on-demand DynamoDB + Lambda)")
    for column in (
        "workload",
        "design",
        "shards",
        "counter updates / 1,000 events",
        "WRU / event",
        "$ / M DynamoDB",
        "$ / M Lambda",
        "$ / M total",
    ):
        out.add_column(column, justify="right" if column not in ("workload", "design") else "left")
    for r in results:
        out.add_row(
            WORKLOADS[r["workload"]],
            r["design"],
            str(r["shards"]),
            str(round(r["counter_updates"] * 1000 / r["records"])),
            fmt(r["wru_per_record"], 3),
            fmt(r["usd_per_m_dynamodb"], 3),
            fmt(r["usd_per_m_lambda"], 3),
            fmt(r["usd_per_m_total"], 3),
        )
    return out
