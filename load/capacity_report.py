"""The capacity run's report: lag and throughput over time, the end-of-run table check, the
table row and the plot."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from load.capacity_bursts import (
    BUCKET,
    LAMBDA_GB_S,
    LAMBDA_REQUEST,
    READ_PRICE,
    SQS_REQUEST,
    WRITE_PRICE,
    Burst,
    Recorder,
    Run,
)
from load.lambda_model import EventSource, Model, Queue


def _percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0-1) of `values`, 0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report_lags(
    result: Run,
    sent: list[tuple[str, int, float]],
    dump: dict[str, Any],
    depth: list[dict[str, float]],
    start: float,
) -> None:
    landed = dump["landed"]
    lags: list[tuple[float, float]] = []
    for key, seq, at in sent:
        want = f"{seq:018X}".ljust(64, "0")
        done = next((t for t, s in landed.get(f"{BUCKET}/{key}", []) if s >= want), None)
        if done is not None:
            lags.append((at - start, max(0.0, done - at)))
    values = [lag for _, lag in lags]
    result.lag_p50_s = round(_percentile(values, 0.5), 2)
    result.lag_p99_s = round(_percentile(values, 0.99), 2)
    landings = sorted(at + lag for at, lag in lags)
    if landings:  # sustained: 99 % of the events in by the time the 99th percentile landed
        t99 = landings[min(len(landings) - 1, int(0.99 * len(landings)))]
        result.events_per_s = round(0.99 * len(sent) * result.scale / max(t99, 1e-9))
    timeline = []
    for sample in depth:
        window = [lag for t, lag in lags if sample["t"] - 5 <= t < sample["t"]]
        timeline.append(
            {**sample, "lag_p50": _percentile(window, 0.5), "lag_p99": _percentile(window, 0.99)}
        )
    result.timeline = timeline
    result.peak_depth = int(max((s["depth"] for s in depth), default=0))


def report_throughput(
    result: Run,
    stats: dict[str, Any],
    source: EventSource,
    recorder: Recorder,
    count: int,
    model: Model,
    queue: Queue,
) -> None:
    n = model.scale
    throttles: dict[str, int] = {}
    for entry in stats["throttled"]:
        name = f"{entry['kind']}:{entry['element']}"
        throttles[name] = throttles.get(name, 0) + entry["count"]
    result.throttles = throttles
    result.top_keys = stats["throttled"][:5]
    result.retries = recorder.retries
    result.failed_messages = source.counters.failed_messages
    result.timed_out = source.counters.timed_out + source.counters.raised
    result.dead_letters = len(queue.dead)
    result.peak_running = source.counters.peak_running
    consumed = stats["consumed"]
    scaled_writes = sum(
        v for k, v in consumed.items() if k.startswith("write") and "per-invocation" not in k
    )
    once_writes = sum(
        v for k, v in consumed.items() if k.startswith("write") and "per-invocation" in k
    )
    reads = sum(v for k, v in consumed.items() if k.startswith("read"))
    millions = count * n / 1e6
    gb = model.memory_mb / 1024
    c = source.counters
    result.cost_per_million = {
        "dynamodb_writes": round((scaled_writes * n + once_writes) * WRITE_PRICE / millions, 3),
        "dynamodb_reads": round(reads * n * READ_PRICE / millions, 3),
        "lambda": round(
            (c.billed_ms / 1000 * gb * LAMBDA_GB_S + c.invocations * LAMBDA_REQUEST) / millions, 3
        ),
        "sqs": round((count * n * 1.2) * SQS_REQUEST / millions, 3),
    }
    result.cost_per_million["total"] = round(sum(result.cost_per_million.values()), 3)


def check_table(burst: Burst, sent: list[tuple[str, int, float]], dump: dict[str, Any]) -> str:
    """'ok' when every key's row is what its newest event says (the folder counters come from
    the table's stream, which the front does not serve: `pipeline.totals.stream`)."""
    newest: dict[str, int] = {}
    for key, seq, _ in sent:
        newest[key] = max(newest.get(key, 0), seq)
    rows = dump["rows"]
    problems = 0
    for key, seq in newest.items():
        row = rows.get(f"{BUCKET}/{key}")
        want = f"{seq:018X}".ljust(64, "0")
        deleted = bool((row or {}).get("deleted", {}).get("BOOL"))
        if row is None or row.get("seq", {}).get("S") != want or deleted != burst.delete:
            problems += 1
    live = sum(1 for k, r in rows.items() if k.startswith(f"{BUCKET}/") and not r.get("deleted"))
    if problems:
        return f"MISMATCH: {problems} rows wrong ({live} live rows)"
    return f"ok ({len(newest)} keys, {live} live rows)"


def failure_reasons(logs: str) -> dict[str, int]:
    """Count the reasons of the handler's "Could not apply" warnings (JSON log lines)."""
    reasons: dict[str, int] = {}
    for line in logs.splitlines():
        if "Could not apply" not in line:
            continue
        with contextlib.suppress(ValueError):
            reason = str(json.loads(line).get("reason", "?"))[:120]
            reasons[reason] = reasons.get(reason, 0) + 1
    return reasons


HEADER = (
    "| config | burst | events (full scale) | 1:N | offered/s | sustained events/s | lag p50 s "
    "| lag p99 s | throttles (table/by_name/by_change) | retries "
    "| failed msgs (timed-out invocations) | peak depth "
    "| $ per 1M | load avg | table check |"
)


def row_of(run: Run) -> str:
    t = run.throttles
    throttles = "/".join(
        str(t.get(f"write:{e}", 0) + t.get(f"read:{e}", 0))
        for e in ("table", "by_name", "by_change")
    )
    return (
        f"| {run.config} | {run.burst} | {run.events_model:,} | 1:{run.scale} | {run.rate:,.0f} "
        f"| {run.events_per_s:,.0f} | {run.lag_p50_s} | {run.lag_p99_s} | {throttles} "
        f"| {run.retries} | {run.failed_messages} ({run.timed_out}) "
        f"| {run.peak_depth * run.scale:,} "
        f"| {run.cost_per_million.get('total', 0):.2f} | {run.load_average} | {run.check} |"
    )


def plot(runs: list[Run], path: Path) -> None:
    """Lag p99 and queue depth over time, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for run in runs:
        label = f"{run.config}/{run.burst}"
        xs = [p["t"] for p in run.timeline]
        top.plot(xs, [p["lag_p99"] for p in run.timeline], label=label)
        bottom.plot(xs, [p["depth"] * run.scale for p in run.timeline], label=label)
    top.set_ylabel("lag p99 (s) of events sent\nin each 5 s window")
    bottom.set_ylabel("queue depth (full scale)")
    bottom.set_xlabel("seconds since the burst began")
    top.legend(fontsize=7)
    top.set_title("python -m load capacity (1:N model; real ingest code)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
