"""The browse page at scale: first paint of a big folder and "load more", in the real browser,
side by side with a ListObjectsV2 listing of the same folder on moto's S3 (issue 21).

One run: a local stack (DynamoDB Local + moto + the real API handlers behind the gateway
emulator), the browse server, headless Chromium; and an in-process moto server holding the
same folder's objects.

- The table is seeded directly (BatchWriteItem, 25 a call, from 4 threads) with rows built by
  the project's item builders (`FileEvent.row` -> `writer.to_item`, the ingest's format):
  `--folder-files` files in `big/` among `--rows` rows in all (the rest in 1,000 other
  folders); the folder counters are set through the totals adapter, as reconcile sets them.
- First paint: the page is opened on `big/` `--repeats` times; the figure is the Performance
  API's mark `folder-painted` (from navigation start: HTML, JS, CSS, the bucket list, the
  folder's totals and its first page of 200 entries, rendered).
- Load more: "Load more" clicked `--repeats` times; the figure is the page's own measure
  `load-more` (click to the next 200 rows rendered).
- ListObjectsV2 on moto (same run, same folder, page size 200): the first page, the next page
  (ContinuationToken), and the whole-folder walk at MaxKeys 1000 that a ListObjectsV2-based
  view needs to show the folder's files and bytes. moto holds only the folder's objects (its
  listing scans every key of a bucket, so more keys would only slow it down).

    python -m load browse          # measured at 200,000 and at 1,000,000 rows, 100,000 in big/
    python -m load browse --rows 150000,400000 --folder-files 100000
"""

from __future__ import annotations

import argparse
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

from rich.table import Table

from load.report import (
    add_output_arguments,
    console,
    finish,
    fmt,
    machine,
    percentile,
    target,
    targets_table,
)

FOLDER = "big/"
PAGE = 200
SEED_THREADS = 4
EVENT_TIME = "2026-11-24T10:00:00.000Z"


def _size(i: int) -> int:
    return 1024 + i % 4096


def _rows(bucket: str, start: int, stop: int, folder_files: int) -> list[dict[str, Any]]:
    """Items `start..stop` of the benchmark's table: the first `folder_files` in `big/`."""
    from pipeline.adapters.dynamo.statements import to_item
    from pipeline.core.model import Action, FileEvent

    now = time.time()
    items = []
    for i in range(start, stop):
        if i < folder_files:
            name = f"{FOLDER}file {i:07d}.bin"
        else:
            name = f"other/f{i % 1000:03d}/object {i:07d}.bin"
        event = FileEvent(
            filename=name,
            bucket=bucket,
            action=Action.PUT,
            event_name="ObjectCreated:Put",
            event_time=EVENT_TIME,
            size=_size(i),
            etag=f"{i:032x}",
            sequencer=f"{0x0062B3A4F1C0000000 + i:018X}",
        )
        items.append(to_item(event.row(now=now, tombstone_ttl_s=86_400)))
    return items


def seed_table(
    client: Any, table: str, bucket: str, rows: int, folder_files: int, start_at: int = 0
) -> float:
    """BatchWriteItem rows `start_at..rows` (unprocessed items resent); the seconds it took."""
    started = time.perf_counter()
    chunk = 5_000

    def write(start: int) -> None:
        items = _rows(bucket, start, min(rows, start + chunk), folder_files)
        for offset in range(0, len(items), 25):
            pending: Any = [{"PutRequest": {"Item": item}} for item in items[offset : offset + 25]]
            while pending:
                answer = client.batch_write_item(RequestItems={table: pending})
                pending = answer.get("UnprocessedItems", {}).get(table, [])

    done = 0
    with ThreadPoolExecutor(SEED_THREADS) as pool:
        for _ in pool.map(write, range(start_at, rows, chunk)):
            done += chunk
            if done % 100_000 == 0:
                console.print(f"  {done:,} rows, {time.perf_counter() - started:.0f} s")
    return time.perf_counter() - started


def seed_totals(client: Any, table: str, bucket: str, rows: int, folder_files: int) -> None:
    """The counters of `""`, `big/`, `other/` and each `other/fNNN/`, set through the totals
    adapter (conditional on the version read, as reconcile's repair sets them)."""
    from pipeline.adapters.dynamo.totals import DynamoTotalsStore
    from pipeline.totals.deltas import Totals

    sums: dict[str, Totals] = {}
    for i in range(rows):
        folders = [""]
        if i < folder_files:
            folders.append(FOLDER)
        else:
            folders += ["other/", f"other/f{i % 1000:03d}/"]
        for folder in folders:
            sums[folder] = sums.get(folder, Totals()) + Totals(1, _size(i))
    store = DynamoTotalsStore(client, table)
    for folder, value in sums.items():
        current = store.get(bucket, folder)
        store.set_if_unchanged(bucket, folder, value, current)


def seed_moto(folder_files: int) -> tuple[Any, Any, str, float]:
    """An in-process moto server whose bucket holds `big/`'s objects (same keys, sizes)."""
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    bucket = "browse-bench"
    started = time.perf_counter()
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(bucket, "us-east-1")
    for i in range(folder_files):
        backend.put_object(bucket, f"{FOLDER}file {i:07d}.bin", b"x" * (_size(i) % 64))
    seconds = time.perf_counter() - started
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return server, s3, bucket, seconds


def s3_listing(s3: Any, bucket: str, repeats: int, walks_wanted: int) -> dict[str, Any]:
    """ListObjectsV2 of `big/`: first page, next page (p50 ms), and the totals walk (s)."""
    first: list[float] = []
    more: list[float] = []
    walks: list[float] = []
    files = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        page = s3.list_objects_v2(Bucket=bucket, Prefix=FOLDER, Delimiter="/", MaxKeys=PAGE)
        first.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        s3.list_objects_v2(
            Bucket=bucket,
            Prefix=FOLDER,
            Delimiter="/",
            MaxKeys=PAGE,
            ContinuationToken=page["NextContinuationToken"],
        )
        more.append(time.perf_counter() - t0)
    for _ in range(walks_wanted):
        t0 = time.perf_counter()
        files = 0
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=FOLDER, PaginationConfig={"PageSize": 1000}
        ):
            files += len(page.get("Contents", []))
        walks.append(time.perf_counter() - t0)
    return {
        "first_page_p50_ms": _ms(percentile(first, 50)),
        "next_page_p50_ms": _ms(percentile(more, 50)),
        "totals_walk_p50_s": round(percentile(walks, 50) or 0, 2) if walks else None,
        "walk_files": files if walks else None,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def browser_figures(server: Any, bucket: str, repeats: int) -> dict[str, Any]:
    """First paint and load more in headless Chromium (the page's own Performance marks)."""
    from tests.support.browser import chromium, wait_for

    driver = chromium()
    paints, wall, more = [], [], []
    try:
        driver.get(server.url)
        wait_for(lambda: "token" not in driver.current_url, 30, "the session")
        url = f"http://127.0.0.1:{server.port}/?" + urlencode({"bucket": bucket, "prefix": FOLDER})
        painted = (
            "const m = performance.getEntriesByName('folder-painted');"
            "const here = document.body.dataset.folder === arguments[0];"
            "return here && m.length ? m[0].startTime : null"
        )
        for _ in range(repeats + 1):  # the first is a warm-up (cold execution environments)
            t0 = time.perf_counter()
            driver.get(url)
            paint = wait_for(lambda: driver.execute_script(painted, FOLDER), 60, "first paint")
            wall.append(time.perf_counter() - t0)
            paints.append(paint / 1000)
        rows = "return document.querySelectorAll('#files tr').length"
        for _ in range(repeats):
            shown = driver.execute_script(rows)
            driver.find_element("id", "more").click()
            wait_for(lambda n=shown: driver.execute_script(rows) > n, 60, "the next page")  # type: ignore[misc]
            wait_for(
                lambda: driver.execute_script("return document.body.dataset.loading === 'false'"),
                60,
                "load more",
            )
            entries = driver.execute_script(
                "return performance.getEntriesByName('load-more').map(e => e.duration)"
            )
            more.append(entries[-1] / 1000)
        shown_files = driver.execute_script(rows)
    finally:
        driver.quit()
    return {
        "first_paint_p50_ms": _ms(percentile(paints[1:], 50)),
        "first_paint_p90_ms": _ms(percentile(paints[1:], 90)),
        "first_paint_wall_p50_ms": _ms(percentile(wall[1:], 50)),
        "first_paint_cold_ms": _ms(paints[0]),
        "load_more_p50_ms": _ms(percentile(more, 50)),
        "load_more_p90_ms": _ms(percentile(more, 90)),
        "rows_shown_after_load_more": shown_files,
    }


def run(args: argparse.Namespace) -> int:
    """Seed, measure, report; exit 1 if a target is missed."""
    import boto3

    from pipeline.local.browse.cli import for_stack
    from pipeline.local.stack import Stack
    from pipeline.local.template import read_stack_config

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    sizes = sorted(int(size) for size in args.rows.split(","))
    if sizes[0] < args.folder_files:
        raise SystemExit("--rows must each be at least --folder-files")
    run_id = uuid.uuid4().hex[:8]
    config = read_stack_config().with_suffix(f"browse-{run_id}")
    results: dict[str, Any] = {}
    with Stack(config, pollers=1) as stack:
        client = boto3.client(
            "dynamodb",
            region_name=stack.region,
            endpoint_url=stack.dynamodb_endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        moto, s3, s3_bucket, moto_s = seed_moto(args.folder_files)
        results["seed_moto_s"] = round(moto_s, 1)
        results["sizes"] = []
        seeded = 0
        try:
            for rows in sizes:
                console.print(f"seeding to {rows:,} rows ({args.folder_files:,} in {FOLDER})")
                seconds = seed_table(
                    client, stack.table_name, stack.bucket, rows, args.folder_files, seeded
                )
                seeded = rows
                seed_totals(client, stack.table_name, stack.bucket, rows, args.folder_files)
                console.print(f"seeded in {seconds:.0f} s; browser: first paint and load more")
                with for_stack(stack) as server:
                    figures = browser_figures(server, stack.bucket, args.repeats)
                console.print("ListObjectsV2 on moto (right after, same folder)")
                last = rows == sizes[-1]  # the walk once: moto holds the same keys each time
                results["listobjectsv2"] = s3_listing(
                    s3, s3_bucket, min(args.repeats, 10), 1 if last else 0
                )
                results["sizes"].append(
                    {
                        "rows": rows,
                        "seed_s": round(seconds, 1),
                        **figures,
                        "listobjectsv2": results["listobjectsv2"],
                    }
                )
        finally:
            moto.stop()
    browser, listing = results["sizes"][-1], results["listobjectsv2"]
    results["browser"] = browser
    targets = [
        target("first paint p50 (ms)", browser["first_paint_p50_ms"] or 0, "<=", 300),
        target("load more p50 (ms)", browser["load_more_p50_ms"] or 0, "<=", 150),
    ]
    document = {
        "benchmark": "browse",
        "machine": machine(),
        "settings": vars(args) | {"run": None},
        "target": {"kind": "local stack", "engine": "DynamoDB Local + moto", "page": PAGE},
        "results": results,
        "ratios": {
            "listobjectsv2_totals_walk_over_first_paint": round(
                listing["totals_walk_p50_s"] * 1000 / max(1e-9, browser["first_paint_p50_ms"]), 1
            ),
        },
        "targets": targets,
    }
    return finish(args, document, summary=print_summary)


def print_summary(document: dict[str, Any]) -> None:
    """The side-by-side table and the targets."""
    results = document["results"]
    browser, listing = results["browser"], results["listobjectsv2"]
    table = Table(title=f"Folder {FOLDER} ({document['settings']['folder_files']:,} files)")
    for column in ("view", "first paint p50 ms", "next page p50 ms", "folder totals"):
        table.add_column(column)
    table.add_row(
        "browse page (Chromium, tracker API)",
        fmt(browser["first_paint_p50_ms"], 1),
        fmt(browser["load_more_p50_ms"], 1),
        "in the first paint (one counter read)",
    )
    table.add_row(
        "ListObjectsV2 on moto (HTTP only)",
        fmt(listing["first_page_p50_ms"], 1),
        fmt(listing["next_page_p50_ms"], 1),
        f"walk of {listing['walk_files']:,} keys: {listing['totals_walk_p50_s']} s",
    )
    console.print(table)
    sizes = Table(title="The same folder as the table grows (row count vs. an index query)")
    for column in ("rows", "seeded in s", "first paint p50 ms", "load more p50 ms", "cold ms"):
        sizes.add_column(column)
    for size in results["sizes"]:
        sizes.add_row(
            f"{size['rows']:,}",
            fmt(size["seed_s"], 0),
            fmt(size["first_paint_p50_ms"], 1),
            fmt(size["load_more_p50_ms"], 1),
            fmt(size["first_paint_cold_ms"], 0),
        )
    console.print(sizes)
    console.print(targets_table(document["targets"]))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This benchmark's options."""
    parser.add_argument(
        "--rows",
        default="200000,1000000",
        help="table sizes, comma-separated: the table grows to each and is measured at each",
    )
    parser.add_argument(
        "--folder-files", type=int, default=100_000, help=f"files in {FOLDER} (of --rows)"
    )
    parser.add_argument("--repeats", type=int, default=15, help="paints and load-mores timed")
    add_output_arguments(parser, "browse", plot=None)
