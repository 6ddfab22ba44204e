"""Capacity: bulk bursts through the real ingest handler against the capacity front (1:N model).

python -m load capacity --config defaults --bursts spread,one-folder,overwrite,delete
python -m load capacity --config fast --rate 20000 --plot docs/capacity-fast.png

What runs for real: `handlers.ingest.lambda_handler` (parsing, collapse, consistent reads,
PartiQL compare-and-swap, feed stamping, folder totals as today's main does them: one ADD per
folder per invocation), its aiobotocore client and retry loop, over HTTP to `load.front`, which
enforces DynamoDB's per-partition-key throughput (`load.throughput`). What is modelled: the SQS
queue and Lambda's event source (`load.lambda_model`), the CPU share of the memory, and scale:
every rate and limit is divided by N (the run carries 1/N of the events at 1/N of the rate,
batches of BatchSize/N; key limits 1,000/N WCU/s), times are real, so lags are real seconds.
Figures from the front (throttles, units) and the clock (lag, events/s) are measured in the
scaled run and stand for the full-scale figures by the model; the CPU per record is measured on
this machine and assumed equal to a Lambda vCPU's (labelled so in the report).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from load.front import FrontProcess
from load.lambda_model import EventSource, Model, Queue
from load.throughput import Limits
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
    "previous": (Model(max_concurrency=5, memory_mb=256), ShardPlan()),
    "defaults": (Model(max_concurrency=10, memory_mb=1769), ShardPlan()),
    "fast": (Model(max_concurrency=40, memory_mb=1769), ShardPlan(32, 64, 32, 64)),
    "fast-60": (Model(max_concurrency=60, memory_mb=1769), ShardPlan(32, 64, 32, 64)),
}
"""Named configurations: the event source and function (template.yaml parameters; BatchSize
1000, window 1 s) and the bucket's shard plan (`pipeline.core.shards`). `previous`: the template's
defaults before issue 23; docs/deploy.md, "Capacity"."""


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


def _handler_module(front_url: str, model: Model) -> Any:
    """Import the real ingest handler configured for the front (once per process)."""
    os.environ.update(
        TABLE_NAME=TABLE,
        AWS_ENDPOINT_URL_DYNAMODB=front_url,
        AWS_DEFAULT_REGION="ap-south-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        POWERTOOLS_SERVICE_NAME="capacity",
        POWERTOOLS_LOG_LEVEL="WARNING",
        POWERTOOLS_TRACE_DISABLED="true",
        INGEST_SAFETY_MARGIN_MS="2000",
    )
    import handlers.ingest as module

    return module


def calibrate(model: Model, records: int = 1000, burst: Burst | None = None) -> float:
    """CPU seconds per record of the real handler on this machine (unthrottled front):
    invocations of `records` messages of `burst`'s keys (its folders, its overwrites or
    deletes), the median of 3 after a warm-up."""
    from load.lambda_model import Context

    with FrontProcess(Limits(scale=1)) as front:
        module = _handler_module(front.url, model)
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = front.url
        module.settings = module.Settings.from_env()
        module.runtime.close()
        samples = []
        for round_ in range(4):
            event = {
                "Records": [
                    {
                        "messageId": f"c{round_}-{i}",
                        "body": body(
                            _calibration_key(burst, round_ * records + i),
                            round_ * records + i + 1,
                            burst is not None and burst.delete,
                            time.time(),
                        ),
                    }
                    for i in range(records)
                ]
            }
            cpu = time.thread_time()
            module.lambda_handler(event, Context(time.monotonic() + 60))
            samples.append((time.thread_time() - cpu) / records)
        module.runtime.close()
    return statistics.median(samples[1:])


def _calibration_key(burst: Burst | None, i: int) -> str:
    return key_of(burst, i) if burst is not None else f"cal/f{i}"


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_burst(
    config: str,
    model: Model,
    plan: ShardPlan,
    burst: Burst,
    rate: float,
    cpu_per_record: float,
    limits: Limits,
) -> Run:
    """One burst through one configuration; the end-of-run check compares the table with
    what the events say."""
    n = model.scale
    count = max(1, burst.events // n)
    slice_rate = rate / n
    result = Run(config, burst.name, n, rate, burst.events, count)
    with FrontProcess(limits) as front:
        module = _handler_module(front.url, model)
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = front.url
        module.settings = module.Settings.from_env()
        module.runtime.close()
        recorder = Recorder()
        recorder.install(module)
        front.seed([registry_item(plan)])
        if burst.delete:
            front.seed(seed_rows(burst, count, plan))
        queue = Queue()
        source = EventSource(model, queue, module.lambda_handler, cpu_per_record)
        sent: list[tuple[str, int, float]] = []
        start = time.time()
        depth_series: list[dict[str, float]] = []
        next_sample = start
        i = 0
        while True:
            now = time.time()
            due = min(count, int((now - start) * slice_rate) + 1)
            while i < due:
                seq = (i + 1) * 16
                key = key_of(burst, i)
                queue.send(body(key, seq, burst.delete, now), now)
                sent.append((key, seq, now))
                i += 1
            source.step(time.monotonic())
            if now >= next_sample:
                depth_series.append(
                    {"t": now - start, "depth": queue.depth(), "running": source.counters.running}
                )
                next_sample += 1.0
            if i >= count and queue.depth() == 0 and source.counters.running == 0:
                break
            if now - start > 1800:
                break
            time.sleep(0.005)
        result.seconds = time.time() - start
        source.close(module.runtime.close)
        module.runtime.close()
        stats, dump = front.stats(), front.rows()
    _report_lags(result, sent, dump, depth_series, start)
    _report_throughput(result, stats, source, recorder, count, model, queue)
    result.check = check_table(burst, sent, dump)
    result.cpu_per_record_ms = cpu_per_record * 1000
    result.load_average = round(os.getloadavg()[0], 1)
    return result


def _report_lags(
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


def _report_throughput(
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
    """'ok' when every key's row is what its newest event says and the counters add up."""
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
    counter = dump["system"].get(f"#totals/{BUCKET}/", {}).get("files", {}).get("N")
    counted = int(counter) if counter is not None else 0
    if problems or counted != live:
        return f"MISMATCH: {problems} rows wrong, bucket counter {counted} vs {live} live rows"
    return f"ok ({len(newest)} keys, {live} live rows = counter)"


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command line of `python -m load capacity`."""
    parser.add_argument(
        "--config", default="defaults", help=f"one or more of {sorted(CONFIGS)}, comma-separated"
    )
    parser.add_argument("--bursts", default="spread,one-folder,overwrite,delete")
    parser.add_argument("--rate", type=float, default=20_000, help="offered events/s (full scale)")
    parser.add_argument("--scale", type=int, default=100, help="N of the 1:N model")
    parser.add_argument("--events", type=int, default=0, help="override each burst's event count")
    parser.add_argument("--burst-s", type=float, default=1.0, help="per-key bucket seconds")
    parser.add_argument("--calibration-records", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="write the runs as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the table here")
    parser.add_argument("--plot", type=Path, help="write the PNG here")


def run(args: argparse.Namespace) -> int:
    """Calibrate, run every (config, burst), print the table."""
    out = sys.stdout
    runs: list[Run] = []
    with contextlib.redirect_stdout(io.StringIO()) as sink:  # Powertools' EMF lines
        cpu_of = {}
        for name in args.bursts.split(","):
            cpu_of[name] = calibrate(CONFIGS["defaults"][0], args.calibration_records, BURSTS[name])
            print(
                f"calibrated {name}: {cpu_of[name] * 1e6:.0f} us CPU per record (measured here)",
                file=out,
                flush=True,
            )
        for config in args.config.split(","):
            model, plan = CONFIGS[config]
            model = Model(**{**asdict(model), "scale": args.scale})
            limits = Limits(scale=args.scale, burst_s=args.burst_s, per_invocation=("#totals/",))
            for name in args.bursts.split(","):
                burst = BURSTS[name]
                if args.events:
                    burst = Burst(burst.name, args.events, burst.keys, burst.delete)
                cpu = cpu_of[name]
                result = run_burst(config, model, plan, burst, args.rate, cpu, limits)
                result.reasons = failure_reasons(sink.getvalue())
                runs.append(result)
                print(row_of(result), file=out, flush=True)
                sink.seek(0)
                sink.truncate()
    table = "\n".join([HEADER, "|" + "---|" * 15, *(row_of(r) for r in runs)])
    print("\n" + table, file=out)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in runs], indent=1))
    if args.plot:
        plot(runs, args.plot)
    bad = [r for r in runs if not r.check.startswith("ok")]
    return 1 if bad else 0
