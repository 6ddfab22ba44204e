"""What the folder totals cost, as part of the writer benchmark (`python -m load writer`).

The ingest handler runs warm against the writer benchmark's sink (`load.sink`, which bills
request units as on-demand DynamoDB does), with `FOLDER_TOTALS` off and on, on two
workloads of Lambda-shaped SQS events (one S3 PUT per message, distinct new keys):

- bulk: every key of an event in one folder (`up/<run>/file 000123.dat`: an upload of many
  files), so an invocation updates 3 counters ("", "up/", "up/<run>/") whatever its size;
- scattered: every key in a folder of its own (`sc/<run>/d000123/file.dat`), so each key
  adds one counter update of its own (plus the 3 shared ones).

Reported per workload: write and read units per event, counter updates per invocation, and
$ per million events (DynamoDB on-demand + Lambda, the writer benchmark's `costs`).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from load.events import s3_record, sqs_record
from load.report import Stopwatch, fmt, target

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


def measure(
    sink: Any, handler_for: Any, costs: Any, deployed: dict[str, int], records: int, repeat: int
) -> list[dict[str, Any]]:
    """Each workload with totals off and on: units, counter updates and $ per million events.

    `handler_for(totals: bool)` returns a warm ingest handler (a callable on an SQS event,
    with `close()`); `costs(result, deployed)` is the writer benchmark's price model."""
    results = []
    for totals in (False, True):
        handler = handler_for(totals)
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
                    runs.append(
                        {
                            "wall_s": watch.wall_s,
                            "wru": stats["wru"],
                            "rru": stats["rru"],
                            "counter_updates": stats.get("counter_updates", 0),
                        }
                    )
                best = sorted(runs, key=lambda run: run["wall_s"])[len(runs) // 2]
                results.append(
                    {
                        "workload": workload,
                        "totals": totals,
                        "records": records,
                        **best,
                        "wru_per_record": best["wru"] / records,
                        "rru_per_record": best["rru"] / records,
                        **costs({**best, "records": records}, deployed),
                    }
                )
        finally:
            handler.close()
    return results


SHARED_FOLDERS = 3
"""Counters every invocation of these workloads updates: the bucket, `up/` or `sc/`, the run."""


def targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One counter update per folder per invocation: a bulk invocation updates only the
    shared folders' counters; a scattered one adds one per key (its own folder)."""
    found = []
    for r in results:
        if not r["totals"]:
            continue
        if r["workload"] == "bulk":
            found.append(
                target(
                    "totals: counter updates per bulk invocation",
                    r["counter_updates"],
                    "<=",
                    SHARED_FOLDERS,
                )
            )
        else:
            goal = 1 + SHARED_FOLDERS / r["records"]
            extra = r["counter_updates"] / r["records"]
            found.append(target("totals: counter updates per scattered event", extra, "<=", goal))
    return found


def table(results: list[dict[str, Any]]) -> Table:
    """$ per million events with and without the folder totals, per workload."""
    out = Table(title="Folder totals: cost per million events (on-demand DynamoDB + Lambda)")
    for column in (
        "workload",
        "totals",
        "counter updates / invocation",
        "WRU / event",
        "RRU / event",
        "$ / M DynamoDB",
        "$ / M total",
        "+ $ / M for totals",
    ):
        out.add_column(column, justify="right" if column != "workload" else "left")
    off = {r["workload"]: r for r in results if not r["totals"]}
    for r in results:
        extra = r["usd_per_m_total"] - off[r["workload"]]["usd_per_m_total"] if r["totals"] else 0
        out.add_row(
            WORKLOADS[r["workload"]],
            "on" if r["totals"] else "off",
            str(r["counter_updates"]),
            fmt(r["wru_per_record"], 3),
            fmt(r["rru_per_record"], 3),
            fmt(r["usd_per_m_dynamodb"], 3),
            fmt(r["usd_per_m_total"], 3),
            fmt(extra, 3) if r["totals"] else "",
        )
    return out
