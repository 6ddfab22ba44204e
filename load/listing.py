"""Listing: `GET /files` walks over the sorted index at 10k-1M items (in-memory index).

Runs the real API (routes, tokens, merge) over `FakeFileReader`, which applies DynamoDB's
Query rules to an in-memory copy of the index (Limit, 1 MB pages, sparse index): the cost
model is exact, the latency is our CPU only. On DynamoDB a page costs one network round trip
per *round* (its shard queries run in parallel), so the latency to expect there is about
`rounds/page x Query latency` (~5-10 ms each) plus what is measured here.

Scenarios per table size: a full walk (limits 100 and 1000), a 1% prefix (`hot/`), a sparse
prefix (20 keys), a delimiter walk over folders, and a full walk of a table where half the
rows are tombstones. Reports Query calls and rounds per page, rows read per item returned,
empty pages (with a next_token) and page latency p50/p99; then the targets.

    python -m load listing --sizes 10000,100000,1000000
    python -m load listing --sizes 50000 --buckets 2    # one index, two buckets' rows

With `--buckets N` the index holds N buckets with the same keys (rows of size `--sizes` each),
and every scenario walks every bucket (`GET /files?bucket=`): the figures are per bucket, and
`other_rows_read` counts rows read from any other bucket's shards (must stay 0).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from typing import Any

from rich.table import Table

from load.listing_local import bucket_name, local_engine
from load.report import (
    add_output_arguments,
    console,
    finish,
    fmt,
    machine,
    percentile,
    target,
    verdict_of,
    write_json,
)
from pipeline.core.model import INDEX_SHARDS
from pipeline.core.settings import Settings
from pipeline.read.api import build_app

MAX_PAGES = 2_000
MIN_LARGE_SIZE = 100_000
"""The p50 ratio of two sizes means something only when the larger table is this large."""
"""Pages timed per walk (a 1M-item walk at limit 100 is sampled: its first 2,000 pages)."""


def make_reader(
    size: int, *, tombstones: bool, shards: int, seed: int = 7, buckets: int = 1
) -> Any:
    """An index of `size` live files per bucket (`buckets` of them, the same keys): 1% under
    `hot/`, 20 under `needle/`, 32 folders."""
    from tests.support.api import FakeFileReader

    reader = FakeFileReader(shards=shards, bucket=bucket_name(0))
    for number in range(buckets):
        bucket = bucket_name(number)
        target = reader if number == 0 else reader.add_bucket(bucket)
        target.load(_rows(size, tombstones=tombstones, seed=seed, bucket=bucket))
    # The in-memory table is the benchmark's, not the listing's: keep the cyclic GC from
    # rescanning its million dicts during the timed pages (pauses that grow with the table).
    gc.collect()
    gc.freeze()
    return reader


def _rows(size: int, *, tombstones: bool, seed: int, bucket: str) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(size):
        if i % 100 == 0:
            name = f"hot/{i:08d}.bin"
        elif i < 20 * (size // 20) and i % (size // 20) == 1:
            name = f"needle/{i:08d}.bin"
        else:
            name = f"p{rnd.randrange(32):02d}/object {i:08d}.bin"
        rows.append({"filename": name, "size": 1024 + i, "etag": f"{i:032x}", "bucket": bucket})
        if tombstones:
            rows.append({"filename": f"{name}.old", "deleted": True, "expires_at": 1})
    return rows


def walk(index: Any, query: dict[str, str], bucket: str | None = None) -> dict[str, Any]:
    """Follow next_token through the API (of `bucket`, else the index's first); per-page
    latency, calls, rows read, and rows read from other buckets' shards."""
    app = build_app(index, Settings(table_name="files", tracked_bucket=index.bucket))
    context = _context()
    from tests.support.api import rest_event

    reader = index.for_bucket(bucket) if bucket else index
    others = [r for r in index.buckets.values() if r is not reader]
    others_before = sum(r.rows_read for r in others)
    if bucket:
        query = {**query, "bucket": bucket}

    latencies: list[float] = []
    calls: list[int] = []
    rounds: list[int] = []
    returned = empty = 0
    read_before = reader.rows_read
    query = dict(query)
    for _ in range(MAX_PAGES):
        reader.queries.clear()
        queries_before, rounds_before = 0, reader.rounds
        t0 = time.perf_counter()
        response = app.resolve(rest_event("/files", query=query), context)
        latencies.append(time.perf_counter() - t0)
        calls.append(len(reader.queries) - queries_before)
        rounds.append(reader.rounds - rounds_before)
        if response["statusCode"] != 200:
            raise RuntimeError(response["body"])
        page = json.loads(response["body"])
        entries = len(page["items"]) + len(page.get("common_prefixes", []))
        returned += entries
        token = page["next_token"]
        if token and entries == 0:
            empty += 1
        if not token:
            break
        query["next_token"] = token
    rows_read = reader.rows_read - read_before
    look_ahead = len(latencies)  # one row per page may be read only to know what follows
    return {
        "bucket": reader.bucket,
        "other_rows_read": sum(r.rows_read for r in others) - others_before,
        "pages": len(latencies),
        "returned": returned,
        "empty_pages": empty,
        "calls_per_page": sum(calls) / len(calls),
        "rounds_per_page": sum(rounds) / len(rounds),
        "rows_read_per_item": rows_read / max(returned, 1),
        "rows_read_per_item_excl_lookahead": max(rows_read - look_ahead, 0) / max(returned, 1),
        "p50_ms": (percentile(latencies, 50) or 0) * 1000,
        "p99_ms": (percentile(latencies, 99) or 0) * 1000,
    }


def paired_p50(small: Any, large: Any, query: dict[str, str], pages: int = 400) -> dict[str, float]:
    """p50 page latency of two tables, their pages interleaved so both see the same load."""
    from tests.support.api import rest_event

    context = _context()
    apps = [build_app(r, Settings(table_name="files")) for r in (small, large)]
    queries = [dict(query), dict(query)]
    latencies: list[list[float]] = [[], []]
    for _ in range(pages):
        for side in (0, 1):
            t0 = time.perf_counter()
            response = apps[side].resolve(rest_event("/files", query=queries[side]), context)
            latencies[side].append(time.perf_counter() - t0)
            token = json.loads(response["body"])["next_token"]
            queries[side] = dict(query, next_token=token) if token else dict(query)
    small_p50, large_p50 = ((percentile(x, 50) or 0) * 1000 for x in latencies)
    return {"small_p50_ms": small_p50, "large_p50_ms": large_p50, "ratio": large_p50 / small_p50}


def _context() -> Any:
    from tests.support.api import api_context

    return api_context()


SCENARIOS: list[tuple[str, dict[str, str], bool]] = [
    ("full walk, limit 1000", {"limit": "1000"}, False),
    ("full walk, limit 100", {"limit": "100"}, False),
    ("1% prefix hot/, limit 100", {"limit": "100", "prefix": "hot/"}, False),
    ("sparse prefix (20 keys), limit 100", {"limit": "100", "prefix": "needle/"}, False),
    ("folders: delimiter /, limit 100", {"limit": "100", "delimiter": "/"}, False),
    ("50% tombstones, limit 1000", {"limit": "1000"}, True),
]


def run(args: argparse.Namespace) -> int:
    """Build each table size, walk every scenario, report and check the targets."""
    if args.local:
        write_json(
            args.out,
            {
                "benchmark": "listing-local",
                "machine": machine(),
                **local_engine(args.local, buckets=args.buckets),
            },
        )
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    shard_counts = [int(s) for s in args.shards.split(",")]
    results: list[dict[str, Any]] = []
    paired: list[dict[str, Any]] = []
    if len(sizes) > 1:
        small = make_reader(min(sizes), tombstones=False, shards=shard_counts[0])
        gc.unfreeze()
        large = make_reader(max(sizes), tombstones=False, shards=shard_counts[0])
        for name, query, _ in SCENARIOS[:2]:
            pair = paired_p50(small, large, query, pages=args.interleaved_pages)
            paired.append({"scenario": name, "small": min(sizes), "large": max(sizes), **pair})
            console.print(f"interleaved {name}: {pair}")
        del small, large
        gc.unfreeze()
    for shards in shard_counts:
        for size in sizes:
            readers: dict[bool, Any] = {}
            for name, query, tombstones in SCENARIOS:
                if tombstones not in readers:
                    gc.unfreeze()
                    readers[tombstones] = make_reader(
                        size, tombstones=tombstones, shards=shards, buckets=args.buckets
                    )
                for number in range(args.buckets):
                    bucket = bucket_name(number) if args.buckets > 1 else None
                    result = walk(readers[tombstones], query, bucket)
                    results.append({"shards": shards, "size": size, "scenario": name, **result})
                    console.print(
                        f"{shards:>3} {size:>9,} {result['bucket']} {name}: "
                        f"{fmt(result['p50_ms'], 2)} ms p50, "
                        f"{fmt(result['rows_read_per_item'], 3)} read/returned"
                    )
            readers.clear()
    document = {
        "benchmark": "listing",
        "machine": machine(),
        "settings": {
            "sizes": sizes,
            "shards": shard_counts,
            "buckets": args.buckets,
            "max_pages": MAX_PAGES,
        },
        "results": results,
        "interleaved": paired,
        "targets": _targets(results, paired),
    }
    return finish(args, document, summary=print_summary)


def _targets(results: list[dict[str, Any]], paired: list[dict[str, Any]]) -> list[dict[str, Any]]:
    worst = max(r["rows_read_per_item_excl_lookahead"] for r in results if r["returned"] > 100)
    at_1000 = max(
        r["rows_read_per_item"] for r in results if r["scenario"] == "full walk, limit 1000"
    )
    empty = sum(r["empty_pages"] for r in results)
    foreign = sum(r["other_rows_read"] for r in results)
    found = [
        target("rows read per item returned (worst walk, excl. look-ahead)", worst, "<=", 2),
        target("rows read per entry, full walk at limit 1000 (worst bucket)", at_1000, "<=", 1.2),
        {
            "target": "rows read from another bucket's shards",
            "value": foreign,
            "goal": "= 0",
            "met": foreign == 0,
            "missed_by_factor": None,
        },
        {
            "target": "empty pages with a next_token",
            "value": empty,
            "goal": "= 0",
            "met": empty == 0,
            "missed_by_factor": None,
        },
    ]
    for pair in paired:  # pages of both sizes interleaved: the same machine load on both
        name = f"p50 at {pair['large']:,} / p50 at {pair['small']:,} ({pair['scenario']})"
        small: dict[str, Any] = {"size": pair["large"], "min_size": MIN_LARGE_SIZE, "unit": "rows"}
        found.append(target(name, pair["ratio"], "<=", 1.5, **small))
    return found


def print_summary(document: dict[str, Any]) -> None:
    """One row per (size, scenario)."""
    table = Table(title="GET /files over the sorted index (in-memory, DynamoDB Query rules)")
    columns = (
        "shards",
        "items",
        "bucket",
        "scenario",
        "pages",
        "calls/page",
        "rounds/page",
        "read/returned",
    )
    for column in (*columns, "empty", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for r in document["results"]:
        table.add_row(
            str(r["shards"]),
            f"{r['size']:,}",
            r["bucket"],
            r["scenario"],
            str(r["pages"]),
            fmt(r["calls_per_page"], 1),
            fmt(r["rounds_per_page"], 2),
            fmt(r["rows_read_per_item"], 2),
            str(r["empty_pages"]),
            fmt(r["p50_ms"], 2),
            fmt(r["p99_ms"], 2),
        )
    console.print(table)
    for t in document["targets"]:
        verdict = verdict_of(t)
        console.print(f"Target: {t['target']} = {t['value']} ({t['goal']}): {verdict}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `listing` command's options."""
    parser.add_argument("--sizes", default="10000,100000,1000000", help="table sizes")
    parser.add_argument("--shards", default=str(INDEX_SHARDS), help="index shard counts to compare")
    parser.add_argument(
        "--buckets",
        type=int,
        default=1,
        help="buckets in the one index, each with --sizes rows of the same keys; every "
        "scenario walks each bucket (GET /files?bucket=)",
    )
    parser.add_argument(
        "--interleaved-pages",
        type=int,
        default=400,
        help="pages per table for the interleaved p50 comparison",
    )
    parser.add_argument(
        "--local",
        "--moto",  # its former name, when the local stack's DynamoDB was moto's
        dest="local",
        type=int,
        default=0,
        metavar="ITEMS",
        help="instead: page latency on the local stack's DynamoDB engine (DynamoDB Local) "
        "with ITEMS rows",
    )
    add_output_arguments(parser, "listing", plot=None)


def main(argv: list[str] | None = None) -> int:
    """`python -m load.listing`, the same as `python -m load listing`."""
    from load.cli import run_module

    return run_module(sys.modules[__name__], "listing", argv)


if __name__ == "__main__":
    raise SystemExit(main())
