"""Capacity: bulk bursts through the real ingest handler against the capacity front (1:N model).

python -m load capacity --config defaults --bursts spread,one-folder,overwrite,delete
python -m load capacity --config fast --rate 20000 --plot docs/capacity-fast.png

What runs for real: `handlers.ingest.lambda_handler` (parsing, collapse, consistent reads,
PartiQL compare-and-swap, feed stamping; since issue 22 ingest writes no folder counter: the
totals function derives them from the table's stream, which the front does not serve), its
aiobotocore client and retry loop, over HTTP to `load.front`, which
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
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from load.capacity_bursts import (
    BURSTS,
    CONFIGS,
    TABLE,
    Burst,
    Recorder,
    Run,
    body,
    key_of,
    registry_item,
    seed_rows,
)
from load.capacity_report import (
    HEADER,
    check_table,
    failure_reasons,
    plot,
    report_lags,
    report_throughput,
    row_of,
)
from load.front import FrontProcess
from load.lambda_model import EventSource, Model, Queue
from load.report import add_output_arguments
from load.throughput import Limits
from pipeline.core.shards import ShardPlan


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
    report_lags(result, sent, dump, depth_series, start)
    report_throughput(result, stats, source, recorder, count, model, queue)
    result.check = check_table(burst, sent, dump)
    result.cpu_per_record_ms = cpu_per_record * 1000
    result.load_average = round(os.getloadavg()[0], 1)
    return result


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
    parser.add_argument("--markdown", type=Path, help="write the table here")
    add_output_arguments(parser, "capacity", plot="write the PNG here")
    parser.add_argument("--json", dest="out", help="the same as --out (the runs as JSON)")


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
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps([asdict(r) for r in runs], indent=1))
    if args.plot:
        plot(runs, Path(args.plot))
    bad = [r for r in runs if not r.check.startswith("ok")]
    return 1 if bad else 0
