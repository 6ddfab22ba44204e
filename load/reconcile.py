"""Reconcile benchmark: keys compared per second and peak RSS, as the key count grows.

    python -m load reconcile --keys 100000,1000000 --out load/results/reconcile.json

Two sources, side by side in one run (the machine is noisy: compare within a run):

  fake  in-process generators: the merge join, classification and repair logic alone
  sink  the real adapters over HTTP against `load.reconcile_sink` (a synthetic S3 + DynamoDB
        + SSM endpoint): botocore builds, sends and parses every ListObjectsV2 page and every
        index Query, HeadObject and PutItem of the repairs

Both sides carry the same drift: 1 % of the keys missing from the table (backfilled), 0.1 %
with a wrong size (HeadObject, then corrected). Every measurement runs in a fresh process,
whose peak RSS (VmHWM) is reported: flat memory means the same peak at 10x the keys.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from rich.table import Table

from load.report import (
    add_output_arguments,
    console,
    finish,
    machine,
    target,
)
from load.rss_probe import _maxrss_mb

TARGET_KEYS_PER_S = 5_000
MIN_KEYS = 20_000
"""Below this many keys a run measures process start-up, not the merge join."""
MIN_KEYS_FOR_RSS = 100_000
"""RSS growth means something only when the largest run holds this many keys."""
MODES = ("fake", "sink")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keys", default="100000,1000000", help="comma-separated key counts")
    parser.add_argument("--modes", default=",".join(MODES), help="fake, sink or both")
    parser.add_argument("--concurrency", type=int, default=16)
    add_output_arguments(parser, "reconcile", plot=None)
    parser.add_argument("--json", dest="out", help=argparse.SUPPRESS)  # the old name of --out
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)


# --------------------------------------------------------------------------------- children


class _Generated:
    """The sink's data, generated in-process (same drift)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def iter_objects(self, prefix: str, start_after: str | None) -> Iterator[Any]:
        from pipeline.reconcile.merge import S3Object

        for i in range(self.n):
            yield S3Object(f"key/{i:09d}", i % 1000, f"{i:032x}", "2026-01-01T00:00:00.000Z")

    def iter_live(self, prefix: str, start_after: str | None) -> Iterator[dict[str, Any]]:
        for i in range(self.n):
            if i % 100:
                size = i % 1000 + (1 if i % 1000 == 7 else 0)
                yield {"filename": f"key/{i:09d}", "size": size, "etag": f"{i:032x}", "shard": 0}

    # RowStore + ObjectHeads: nothing stored, every write accepted, heads from the "bucket"
    def read_rows(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {}

    def write_conditional(self, writes: Sequence[Any]) -> dict[str, str]:
        return {write.row["filename"]: "written" for write in writes}

    def head_many(self, keys: Sequence[str]) -> dict[str, Any]:
        from pipeline.reconcile.merge import S3Object

        return {
            k: S3Object(k, int(k[4:]) % 1000, f"{int(k[4:]):032x}", "2026-01-01T00:00:00.000Z")
            for k in keys
        }


def _child(args: argparse.Namespace) -> int:
    keys = int(args.keys)
    baseline = _maxrss_mb()
    cpu, started = time.process_time(), time.perf_counter()
    if args.child == "fake":
        from pipeline.reconcile.merge import Repairer, reconcile

        data = _Generated(keys)
        summary = reconcile(data, data, Repairer("bench", data, data, 86_400))
    else:
        from pipeline.wiring.reconcile import Target, run

        endpoint = f"http://127.0.0.1:{args.port}"
        credentials = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
        bench = Target("bench", "bench", "ap-south-1", endpoint, "/bench/", credentials)
        # no ingest runs against the synthetic endpoint: counter repairs need not wait
        summary = run(bench, concurrency=args.concurrency, totals_settle_s=0)
    seconds = time.perf_counter() - started
    result = {
        "mode": args.child,
        "keys": keys,
        "seconds": round(seconds, 3),
        "cpu_s": round(time.process_time() - cpu, 3),
        "keys_per_s": round(summary.listed / seconds),
        "keys_per_cpu_s": round(summary.listed / max(time.process_time() - cpu, 1e-9)),
        "peak_mb": round(_maxrss_mb(), 1),
        "baseline_mb": round(baseline, 1),
        "listed": summary.listed,
        "missing": summary.missing,
        "stale": summary.stale,
        "repaired": summary.repaired,
        "failed": summary.failed,
    }
    print(json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------------- parent


def _measure(mode: str, keys: int, concurrency: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "load.reconcile", "--child", mode, "--keys", str(keys)]
    command += ["--concurrency", str(concurrency)]
    sink = None
    try:
        if mode == "sink":
            sink = subprocess.Popen(
                [sys.executable, "-m", "load.reconcile_sink", "--keys", str(keys)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert sink.stdout is not None
            port = json.loads(sink.stdout.readline())["port"]
            command += ["--port", str(port)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{mode} {keys}: {done.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result
    finally:
        if sink is not None:
            assert sink.stdin is not None
            sink.stdin.close()
            sink.wait(timeout=30)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark (or, with --child, one measurement)."""
    if args.child:
        return _child(args)
    counts = [int(k) for k in str(args.keys).split(",") if k]
    modes = [m for m in str(args.modes).split(",") if m]
    results = []
    for mode in modes:
        for keys in counts:
            console.print(f"[dim]{mode}: {keys:,} keys...[/dim]")
            results.append(_measure(mode, keys, args.concurrency))
    table = Table(title="reconcile: keys compared per second, peak RSS (fresh process each)")
    columns = ("source", "keys", "seconds", "keys/s", "CPU s", "keys/CPU s", "peak RSS MB")
    for column in (*columns, "repaired"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            r["mode"],
            f"{r['keys']:,}",
            f"{r['seconds']:.1f}",
            f"{r['keys_per_s']:,}",
            f"{r['cpu_s']:.1f}",
            f"{r['keys_per_cpu_s']:,}",
            f"{r['peak_mb']:.0f}",
            f"{r['repaired']:,}",
        )
    console.print(table)
    goals = []
    for mode in modes:
        rows = [r for r in results if r["mode"] == mode]
        slowest = min(r["keys_per_s"] for r in rows)
        fewest = min(r["keys"] for r in rows)
        goals.append(
            target(
                f"{mode}: keys compared per second",
                slowest,
                ">=",
                TARGET_KEYS_PER_S,
                size=fewest,
                min_size=MIN_KEYS,
                unit="keys",
            )
        )
        if len(rows) > 1:
            growth = rows[-1]["peak_mb"] - rows[0]["peak_mb"]
            goals.append(
                target(
                    f"{mode}: peak RSS growth, {rows[0]['keys']:,} -> "
                    f"{rows[-1]['keys']:,} keys (MB)",
                    growth,
                    "<=",
                    20,
                    size=rows[-1]["keys"],
                    min_size=MIN_KEYS_FOR_RSS,
                    unit="keys",
                )
            )
    document = {"benchmark": "reconcile", "machine": machine(), "results": results}
    return finish(args, document | {"targets": goals})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.reconcile", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
