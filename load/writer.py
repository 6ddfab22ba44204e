"""Writer benchmark: the ingest path alone, against a DynamoDB sink with a set round-trip latency.

Side by side, at each latency, on Lambda-shaped SQS events (one S3 PUT record per message,
distinct keys, sequencers):

  (a) put_item      the original design: one boto3 PutItem per record, sequential (a sample)
  (b) batch_writer  boto3 `Table.batch_writer()`: sequential 25-item BatchWriteItem
  (c) powertools    Powertools `BatchProcessor` (SQS), one boto3 PutItem per record (a sample)
  (d) ingest        this project's `handlers.ingest.lambda_handler`, warm, default write mode
                    (conditional: BatchGetItem of 100 + PartiQL BatchExecuteStatement of 25)
  (d-) ingest, version reads skipped: how much of (d) the BatchGetItem reads cost
  (e) ingest_batch  the handler with INGEST_WRITE_MODE=batch (BatchGetItem + unconditional
                    BatchWriteItem: not race-free)
  (f) cond_put      conditional PutItem per record (`attribute_not_exists OR seq < :seq`),
                    `--concurrency` requests in flight on one aiobotocore client
  (g) transact      TransactWriteItems of 100 conditional Puts, `--concurrency` in flight

Every run also reports the request units the sink billed (WRU, RRU per record) and what a
million records cost: on-demand request prices plus Lambda GB-seconds at the template's
ingest memory size and requests at its batch size. Write units are counted per design element
(`load.sink`: the base table, each index of the schema: `by_name`, the change feed's
`by_change`; further elements add their own entry there), and the $ per million counts them
all. Once, at 0 ms, the design's write units per event are measured by kind of change
(create, overwrite, delete of the same keys) with and without the change feed
(`feed_costs`).

and, once, the CPU floor: aiobotocore building and sending the BatchWriteItem requests (d)
writes (25 items each) with no latency and no concurrency limit, measured as client CPU time.

The sink runs in its own process (`load.sink`); the client's CPU is `time.process_time()` of
this process, the sink's is reported separately. Peak RSS of one invocation is measured in a
fresh process (`load.rss_probe`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import uuid
from collections.abc import Callable
from typing import Any

from load import totals_cost
from load.events import sqs_event
from load.report import (
    Stopwatch,
    add_output_arguments,
    finish,
    machine,
    progress,
)
from load.sink import SinkProcess
from load.writer_config import DEFAULT_CONCURRENCY, DEPLOYED, LABELS, costs
from load.writer_designs import (
    Baselines,
    IngestHandler,
    PerRecordWriters,
    cpu_floor,
    rss_probe,
    sdk_parameter_validation,
    version_reads_skipped,
)
from load.writer_feed import _units_delta, feed_costs, feed_off
from load.writer_report import _chosen, evaluate, plot, print_summary


def _measure(
    sink: SinkProcess,
    variant: str,
    latency_ms: float,
    records: int,
    call: Callable[[dict[str, Any]], Any],
    repeat: int,
    concurrency: int | None = None,
) -> dict[str, Any]:
    """Run `call` on fresh events `repeat` times; the median run by wall time."""
    runs = []
    for _ in range(repeat):
        event = sqs_event(records, run=uuid.uuid4().hex[:8])
        sink.reset()
        before = sink.stats()
        with Stopwatch() as watch:
            call(event)
        after = sink.stats()
        runs.append(
            {
                "wall_s": watch.wall_s,
                "cpu_s": watch.cpu_s,
                "sink_cpu_s": after["cpu_s"] - before["cpu_s"],
                "stored": after["items"],
                "calls": after["calls"],
                "unprocessed_returned": after["unprocessed_returned"],
                "max_in_flight": after["max_in_flight"],
                "wru": after["wru"] - before["wru"],
                "units": _units_delta(before, after),
                "rru": after["rru"] - before["rru"],
                "condition_failures": after["condition_failures"],
                "counter_updates": after.get("counter_updates", 0)
                - before.get("counter_updates", 0),
            }
        )
    best = sorted(runs, key=lambda run: run["wall_s"])[len(runs) // 2]
    return {
        "variant": variant,
        "label": LABELS[variant],
        "latency_ms": latency_ms,
        "concurrency": concurrency,
        "records": records,
        "repeat": repeat,
        **best,
        "records_per_s": records / best["wall_s"],
        "cpu_us_per_record": best["cpu_s"] / records * 1e6,
        "wru_per_record": best["wru"] / records,
        "units_per_record": {k: v / records for k, v in best["units"].items()},
        "wru_all_per_record": sum(best["units"].values()) / records,
        "rru_per_record": best["rru"] / records,
        **costs({**best, "records": records}, DEPLOYED),
        "complete": all(run["stored"] == records for run in runs),
        "wall_s_all": [round(run["wall_s"], 4) for run in runs],
    }


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; print the tables, write JSON and the plot."""
    latencies = [float(x) for x in args.latencies.split(",")]
    concurrencies = [int(x) for x in args.concurrency.split(",")]
    sample = min(args.sample, args.records)
    steps = len(latencies) * (3 + 2 + 2 + 2 * len(concurrencies)) + 3
    with (
        SinkProcess(unprocessed_rate=args.unprocessed_rate) as sink,
        sdk_parameter_validation(args.param_validation == "on"),
        progress() as bar,
    ):
        task = bar.add_task("writer benchmark", total=steps)

        def step(description: str | None = None, done: bool = False) -> None:
            if description is not None:
                bar.update(task, description=description)
            if done:
                bar.advance(task)

        floor = _floor(sink, args)
        step(done=True)
        rss = rss_probe(sink.url, args.records, DEFAULT_CONCURRENCY) if not args.no_rss else {}
        step(done=True)
        results = _ingest_designs(sink, args, latencies, concurrencies, step)
        results += _per_record_designs(sink, args, latencies, step)
        results += _baselines(sink, args, latencies, sample, step)
        folder_totals = (
            totals_cost.measure(
                sink,
                lambda on: IngestHandler(sink.url, DEFAULT_CONCURRENCY, totals=on),
                costs,
                DEPLOYED,
                min(args.records, DEPLOYED["batch_size"]),
                args.repeat,
            )
            if not args.no_totals_cost
            else []
        )
        step("units per event, with and without the feed")
        unit_costs = feed_costs(sink, min(args.records, 2_000))
        step(done=True)
        sink.configure(latency_ms=0)
        sink_stats = sink.stats()
    document = {
        "benchmark": "writer",
        "machine": machine(),
        "settings": {
            "records": args.records,
            "sample": sample,
            "latencies_ms": latencies,
            "concurrency": concurrencies,
            "unprocessed_rate": args.unprocessed_rate,
            "repeat": args.repeat,
            "sdk_parameter_validation": args.param_validation,
            "sink": "load.sink in its own process; client CPU = this process's process_time()",
        },
        "deployed": DEPLOYED,
        "floor": floor,
        "rss": rss,
        "results": results,
        "folder_totals": folder_totals,
        "feed_costs": unit_costs,
        "sink_cpu_total_s": sink_stats["cpu_s"],
    }
    document["targets"] = evaluate(document)
    return finish(args, document, summary=print_summary, draw=plot)


Step = Callable[..., None]
"""Progress: `step(description)` names the current work, `step(done=True)` counts a step."""


def _floor(sink: SinkProcess, args: argparse.Namespace) -> dict[str, Any]:
    """The CPU floor: the median of `repeat` runs, with the SDK's defaults and with ingest's
    own client configuration."""
    sink.configure(latency_ms=0, unprocessed_rate=0)
    floors = []
    for _ in range(args.repeat):
        sink.reset()
        floors.append(cpu_floor(sink.url, sqs_event(args.records, run="floor")))
    wall, cpu = sorted(floors, key=lambda f: f[1])[len(floors) // 2]
    same_config = []
    for _ in range(args.repeat):
        sink.reset()
        event = sqs_event(args.records, run="floor")
        same_config.append(cpu_floor(sink.url, event, sdk_defaults=False))
    _, cpu_same = sorted(same_config, key=lambda f: f[1])[len(same_config) // 2]
    return {
        "variant": "floor",
        "label": LABELS["floor"],
        "latency_ms": 0.0,
        "records": args.records,
        "wall_s": wall,
        "cpu_s": cpu,
        "records_per_s": args.records / cpu,
        "records_per_s_wall": args.records / wall,
        "requests": -(-args.records // 25),
        "cpu_s_ingest_client_config": cpu_same,
        "records_per_s_ingest_client_config": args.records / cpu_same,
    }


def _ingest_designs(
    sink: SinkProcess,
    args: argparse.Namespace,
    latencies: list[float],
    concurrencies: list[int],
    step: Step,
) -> list[dict[str, Any]]:
    """(d), (d-), without the feed, and (e): the handler at each concurrency and latency."""
    results: list[dict[str, Any]] = []
    for concurrency in concurrencies:
        for mode, variants, design in (
            ("conditional", ("ingest", "ingest_no_reads"), contextlib.nullcontext),
            ("conditional", ("ingest_no_feed",), feed_off),
            ("batch", ("ingest_batch",), contextlib.nullcontext),
        ):
            if variants[0] != "ingest" and concurrency != _chosen(concurrencies):
                continue  # the other designs are measured at the default concurrency only
            with design():  # the store is opened (with or without the feed) by the warmup
                handler = IngestHandler(sink.url, concurrency, mode)
                sink.configure(latency_ms=0, unprocessed_rate=0)
                handler(sqs_event(100, run="warmup"))
            try:
                for latency in latencies:
                    sink.configure(latency_ms=latency, unprocessed_rate=args.unprocessed_rate)
                    for variant in variants:
                        step(f"{variant} c={concurrency} {latency:g} ms")
                        skip = (
                            version_reads_skipped()
                            if variant == "ingest_no_reads"
                            else contextlib.nullcontext()
                        )
                        with skip:
                            results.append(
                                _measure(
                                    sink,
                                    variant,
                                    latency,
                                    args.records,
                                    handler,
                                    args.repeat,
                                    concurrency,
                                )
                            )
                        step(done=True)
            finally:
                handler.close()
    return results


def _per_record_designs(
    sink: SinkProcess, args: argparse.Namespace, latencies: list[float], step: Step
) -> list[dict[str, Any]]:
    """(f) and (g): conditional PutItem per record and TransactWriteItems of 100."""
    results: list[dict[str, Any]] = []
    writers = PerRecordWriters(sink.url, DEFAULT_CONCURRENCY)
    try:
        sink.configure(latency_ms=0, unprocessed_rate=0)
        writers.cond_put(sqs_event(50, run="warmup"))
        writers.transact(sqs_event(50, run="warmup2"))
        for latency in latencies:
            sink.configure(latency_ms=latency, unprocessed_rate=args.unprocessed_rate)
            for variant in ("cond_put", "transact"):
                step(f"{variant} {latency:g} ms")
                results.append(
                    _measure(
                        sink,
                        variant,
                        latency,
                        args.records,
                        getattr(writers, variant),
                        1,
                        DEFAULT_CONCURRENCY,
                    )
                )
                step(done=True)
    finally:
        writers.close()
    return results


def _baselines(
    sink: SinkProcess, args: argparse.Namespace, latencies: list[float], sample: int, step: Step
) -> list[dict[str, Any]]:
    """(a), (b) and (c): the original design and the boto3/Powertools baselines."""
    results: list[dict[str, Any]] = []
    baselines = Baselines(sink.url)
    for latency in latencies:
        sink.configure(latency_ms=latency, unprocessed_rate=args.unprocessed_rate)
        baselines.put_item(sqs_event(5, run="warmup"))  # connect, load the service models
        baselines.batch_writer(sqs_event(5, run="warmup"))
        for variant, count in (
            ("put_item", sample),
            ("batch_writer", args.records if not args.sample_b else sample),
            ("powertools", sample),
        ):
            step(f"{variant} {latency:g} ms")
            results.append(_measure(sink, variant, latency, count, getattr(baselines, variant), 1))
            step(done=True)
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `writer` command's options."""
    parser.add_argument("--records", type=int, default=10_000, help="records per event")
    parser.add_argument("--latencies", default="0,5,10,25", help="sink round trips, ms")
    parser.add_argument(
        "--sample",
        type=int,
        default=500,
        help="records for (a) and (c), which send one request per record (default 500)",
    )
    parser.add_argument(
        "--sample-b", action="store_true", help="measure (b) on the sample too (faster)"
    )
    parser.add_argument(
        "--concurrency",
        default=str(DEFAULT_CONCURRENCY),
        help="INGEST_WRITE_CONCURRENCY values for (d), e.g. 8,16,32,64 (a sweep)",
    )
    parser.add_argument("--unprocessed-rate", type=float, default=0.0, help="e.g. 0.05")
    parser.add_argument("--repeat", type=int, default=3, help="runs of (d) and the floor (median)")
    parser.add_argument(
        "--param-validation",
        choices=("on", "off"),
        default="off",
        help="what-if: botocore parameter validation of the ingest client (shipped: off)",
    )
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS probe")
    parser.add_argument(
        "--no-totals-cost",
        action="store_true",
        help="skip the folder totals' cost (bulk and scattered workloads, three designs)",
    )
    add_output_arguments(parser, "writer")


def main(argv: list[str] | None = None) -> int:
    """`python -m load.writer`, the same as `python -m load writer`."""
    from load.cli import run_module

    return run_module(sys.modules[__name__], "writer", argv)


if __name__ == "__main__":
    sys.exit(main())
