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
from pipeline.api import build_app
from pipeline.model import INDEX_SHARDS
from pipeline.settings import Settings

MAX_PAGES = 2_000
MIN_LARGE_SIZE = 100_000
"""The p50 ratio of two sizes means something only when the larger table is this large."""
"""Pages timed per walk (a 1M-item walk at limit 100 is sampled: its first 2,000 pages)."""


def make_reader(size: int, *, tombstones: bool, shards: int, seed: int = 7) -> Any:
    """An index of `size` live files: 1% under `hot/`, 20 under `needle/`, 32 folders."""
    from tests.support.api import FakeFileReader

    rnd = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(size):
        if i % 100 == 0:
            name = f"hot/{i:08d}.bin"
        elif i < 20 * (size // 20) and i % (size // 20) == 1:
            name = f"needle/{i:08d}.bin"
        else:
            name = f"p{rnd.randrange(32):02d}/object {i:08d}.bin"
        rows.append({"filename": name, "size": 1024 + i, "etag": f"{i:032x}", "bucket": "load"})
        if tombstones:
            rows.append({"filename": f"{name}.old", "deleted": True, "expires_at": 1})
    reader = FakeFileReader(shards=shards)
    reader.load(rows)
    # The in-memory table is the benchmark's, not the listing's: keep the cyclic GC from
    # rescanning its million dicts during the timed pages (pauses that grow with the table).
    gc.collect()
    gc.freeze()
    return reader


def walk(reader: Any, query: dict[str, str]) -> dict[str, Any]:
    """Follow next_token through the API; per-page latency, calls, rows read."""
    app = build_app(reader, Settings(table_name="files"))
    context = _context()
    from tests.support.api import rest_event

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
            {"benchmark": "listing-local", "machine": machine(), **local_engine(args.local)},
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
                    readers[tombstones] = make_reader(size, tombstones=tombstones, shards=shards)
                result = walk(readers[tombstones], query)
                results.append({"shards": shards, "size": size, "scenario": name, **result})
                console.print(f"{shards:>3} {size:>9,} {name}: {fmt(result['p50_ms'], 2)} ms p50")
            readers.clear()
    document = {
        "benchmark": "listing",
        "machine": machine(),
        "settings": {"sizes": sizes, "shards": shard_counts, "max_pages": MAX_PAGES},
        "results": results,
        "interleaved": paired,
        "targets": _targets(results, paired),
    }
    return finish(args, document, summary=print_summary)


def _targets(results: list[dict[str, Any]], paired: list[dict[str, Any]]) -> list[dict[str, Any]]:
    worst = max(r["rows_read_per_item_excl_lookahead"] for r in results if r["returned"] > 100)
    empty = sum(r["empty_pages"] for r in results)
    found = [
        target("rows read per item returned (worst walk, excl. look-ahead)", worst, "<=", 2),
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
    columns = ("shards", "items", "scenario", "pages", "calls/page", "rounds/page", "read/returned")
    for column in (*columns, "empty", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for r in document["results"]:
        table.add_row(
            str(r["shards"]),
            f"{r['size']:,}",
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


def local_engine(items: int, pages: int = 10) -> dict[str, Any]:
    """Page latency on the local stack's DynamoDB engine (AWS's DynamoDB Local).

    Seeds `items` rows over HTTP, then times `pages` pages of a walk (limit 100 and 1000)
    through `DynamoFileReader`, as the read API pages.
    """
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    from pipeline.dynamo.reader import DynamoFileReader
    from pipeline.dynamo.schema import create_files_table
    from pipeline.listing import read_page
    from pipeline.local.dynamodb_local import DynamoDBLocal
    from pipeline.model import shard_of

    results: dict[str, Any] = {"items": items, "engine": "DynamoDB Local"}
    with DynamoDBLocal() as engine:
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url=engine.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        create_files_table(client, "files")

        def write(start: int) -> None:
            batch = []
            for i in range(start, min(start + 25, items)):
                name = f"p{i % 32:02d}/object {i:08d}.bin"
                item = {"filename": {"S": name}, "shard": {"N": str(shard_of(name))}}
                item["size"] = {"N": str(i)}
                batch.append({"PutRequest": {"Item": item}})
            requests: dict[str, Any] = {"files": batch}
            while requests:
                requests = client.batch_write_item(RequestItems=requests)["UnprocessedItems"]

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, range(0, items, 25)))
        reader = DynamoFileReader(client, "files")
        for limit in (100, 1_000):
            latencies = []
            cursor = None
            for _ in range(pages):
                t0 = time.perf_counter()
                page = read_page(reader, limit, cursor=cursor)
                latencies.append(time.perf_counter() - t0)
                cursor = page.cursor
            results[f"DynamoDB Local, limit {limit}, p50 ms"] = (
                percentile(latencies, 50) or 0
            ) * 1e3
    for key, value in results.items():
        console.print(f"{key}: {fmt(value, 1) if isinstance(value, float) else value}")
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `listing` command's options."""
    parser.add_argument("--sizes", default="10000,100000,1000000", help="table sizes")
    parser.add_argument("--shards", default=str(INDEX_SHARDS), help="index shard counts to compare")
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
    from load.cli import run_commands

    arguments = sys.argv[1:] if argv is None else argv
    return run_commands({"listing": sys.modules[__name__]}, ["listing", *arguments])


if __name__ == "__main__":
    raise SystemExit(main())
