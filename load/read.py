"""Read: walk `GET /files` page by page at several limits, next to a raw boto3 Scan.

The table is seeded directly (BatchWriteItem of ingest-shaped rows, no S3) so that only the
read path is measured. For each limit, in the same run: the API walk (GET /files?limit=L,
following next_token to the end, sequential, as a client would) and a boto3 Scan paginator
over the same table with PageSize=L. Reports pages/s, items/s and page latency p50/p99 for
both, and checks that each walk returned every seeded item exactly once.

Target: the local stack (embedded moto and DynamoDB Local, started here) or a deployed stack
(`--stack-name`: its ApiUrl and TableName outputs; `--items 0` to walk what is there without
seeding).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from botocore.credentials import Credentials
from rich.table import Table

from load.cli import add_stack_arguments
from load.report import (
    add_output_arguments,
    console,
    finish,
    fmt,
    machine,
    percentile,
    progress,
    save_plot,
    target,
    verdict_of,
)
from pipeline.local.api_client import Signer, get

MAX_ITEMS = 200_000
MIN_ITEMS = 5_000
"""Below this many items a walk is a few pages: its items/s is start-up, not paging."""
MAX_PAGES = 100_000


def seed(table: Any, count: int, run: str, bucket: str, prefixes: int = 32) -> None:
    """Write `count` rows of `bucket` shaped like the ingest's under `load-read/<run>/`."""
    from pipeline.core.model import Action, FileEvent

    now = time.time()
    with table.batch_writer() as batch:
        for i in range(count):
            event = FileEvent(
                filename=f"load-read/{run}/p{i % prefixes:03d}/object {i:07d}.bin",
                bucket=bucket,
                action=Action.PUT,
                event_name="ObjectCreated:Put",
                event_time="2026-11-24T10:00:00.000Z",
                size=1024 + i,
                etag=uuid.uuid4().hex,
                sequencer=f"{0x0062B3A4F1C0000000 + i:018X}",
            )
            batch.put_item(Item=event.row(now=now, tombstone_ttl_s=86_400))


def walk_api(
    api_url: str, limit: int, on_page: Any, signer: Signer | None = None
) -> dict[str, Any]:
    """Follow GET /files?limit=... to the end, SigV4-signed (`signer`, else the environment's
    credentials); per-page latency and what came back."""
    latencies: list[float] = []
    keys: list[str] = []
    token: str | None = None
    started = time.perf_counter()
    for _ in range(MAX_PAGES):
        query = {"limit": str(limit)}
        if token:
            query["next_token"] = token
        t0 = time.perf_counter()
        response = get(f"{api_url.rstrip('/')}/files?{urlencode(query)}", signer=signer)
        latencies.append(time.perf_counter() - t0)
        if response.status != 200:
            raise RuntimeError(f"GET /files -> {response.status}: {response.body[:300]!r}")
        page = response.json()
        keys.extend(item["filename"] for item in page["items"])
        on_page(len(page["items"]))
        token = page.get("next_token")
        if not token:
            break
    return _walk_result(time.perf_counter() - started, latencies, keys)


def walk_scan(dynamodb: Any, table: str, limit: int, on_page: Any) -> dict[str, Any]:
    """A boto3 Scan paginator with PageSize=limit over the whole table."""
    latencies: list[float] = []
    keys: list[str] = []
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=table, PaginationConfig={"PageSize": limit}
    )
    started = time.perf_counter()
    t0 = started
    for page in pages:
        latencies.append(time.perf_counter() - t0)
        keys.extend(i["filename"]["S"] for i in page.get("Items", []) if "filename" in i)
        on_page(len(page.get("Items", [])))
        t0 = time.perf_counter()
    return _walk_result(time.perf_counter() - started, latencies, keys)


def _walk_result(seconds: float, latencies: list[float], keys: list[str]) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "pages": len(latencies),
        "items": len(keys),
        "distinct_items": len(set(keys)),
        "pages_per_s": len(latencies) / seconds,
        "items_per_s": len(keys) / seconds,
        "page_latency_ms": {
            "p50": (percentile(latencies, 50) or 0) * 1000,
            "p99": (percentile(latencies, 99) or 0) * 1000,
        },
        "_keys": set(keys),
    }


def run(args: argparse.Namespace) -> int:
    """Seed, walk both ways at each limit, report; exit 1 if a walk missed or repeated items."""
    if not 0 <= args.items <= MAX_ITEMS:
        raise SystemExit(f"--items must be 0-{MAX_ITEMS}")
    limits = [int(x) for x in args.limits.split(",")]
    run_id = uuid.uuid4().hex[:8]
    if args.stack_name:
        import boto3

        session = boto3.Session(region_name=args.region)
        stacks = session.client("cloudformation").describe_stacks(StackName=args.stack_name)
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks["Stacks"][0]["Outputs"]}
        dynamodb = session.client("dynamodb")
        table_name, api_url = outputs["TableName"], outputs["ApiUrl"]
        if args.items:
            bucket = outputs["BucketName"]  # the API's default bucket
            seed(session.resource("dynamodb").Table(table_name), args.items, run_id, bucket)
        target = {"kind": "deployed", "stack": args.stack_name, "table": table_name}
        credentials = session.get_credentials()
        if credentials is None:
            raise SystemExit("no AWS credentials to sign the API requests with")
        frozen = credentials.get_frozen_credentials()
        signer = Signer(
            Credentials(frozen.access_key, frozen.secret_key, frozen.token), session.region_name
        )
        results = _walks(dynamodb, table_name, api_url, limits, args.repeat, signer)
    else:
        from pipeline.local.stack import Stack
        from pipeline.local.template import read_stack_config

        config = read_stack_config().with_suffix(f"read-{run_id}")
        with Stack(config, pollers=1) as stack:
            dynamodb = stack.client("dynamodb")
            import boto3

            resource = boto3.resource(
                "dynamodb",
                region_name=stack.region,
                endpoint_url=stack.dynamodb_endpoint,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            seed(resource.Table(stack.table_name), args.items, run_id, stack.bucket)
            target = {"kind": "local (embedded moto and DynamoDB Local)", "table": stack.table_name}
            results = _walks(
                dynamodb, stack.table_name, stack.api_url, limits, args.repeat, stack.signer
            )
    expected = args.items if not args.stack_name else None
    for result in results:
        keys = result.pop("_keys")
        result["complete"] = result["items"] == result["distinct_items"] and (
            expected is None or len(keys) == expected
        )
    document = {
        "benchmark": "read",
        "machine": machine(),
        "settings": {"items": args.items, "limits": limits, "repeat": args.repeat},
        "target": target,
        "results": results,
        "targets": _targets(results),
    }
    status = finish(args, document, summary=print_summary, draw=plot)
    return 0 if status == 0 and all(r["complete"] for r in results) else 1


def _walks(
    dynamodb: Any,
    table: str,
    api_url: str,
    limits: list[int],
    repeat: int,
    signer: Signer | None = None,
) -> list[dict[str, Any]]:
    count = dynamodb.scan(TableName=table, Select="COUNT").get("Count", 0)
    results = []
    with progress() as bar:
        for limit in limits:
            for attempt in range(repeat):
                for way in ("scan", "api"):
                    task = bar.add_task(f"{way} limit={limit} #{attempt + 1}", total=count)

                    def on_page(n: int, task: Any = task) -> None:
                        bar.advance(task, n)

                    if way == "api":
                        result = walk_api(api_url, limit, on_page, signer)
                    else:
                        result = walk_scan(dynamodb, table, limit, on_page)
                    results.append({"way": way, "limit": limit, "attempt": attempt + 1, **result})
    return results


def _best(results: list[dict[str, Any]], way: str, limit: int) -> dict[str, Any] | None:
    runs = [r for r in results if r["way"] == way and r["limit"] == limit]
    return max(runs, key=lambda r: r["items_per_s"]) if runs else None


def _targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    api, scan = _best(results, "api", 1000), _best(results, "scan", 1000)
    if not api or not scan:
        return []
    ratio = api["items_per_s"] / scan["items_per_s"]
    name = "GET /files items/s at limit 1000 / raw Scan items/s"
    items = api["items"]
    return [target(name, ratio, ">=", 0.8, size=items, min_size=MIN_ITEMS, unit="items")]


def print_summary(document: dict[str, Any]) -> None:
    """Best run per (limit, way): pages/s, items/s, page latency; and the target."""
    table = Table(
        title=f"Read: {document['settings']['items']:,} items seeded ({document['target']['kind']})"
    )
    for column in ("limit", "way", "pages", "pages/s", "items/s", "p50 ms", "p99 ms", "complete"):
        table.add_column(column, justify="right")
    for limit in document["settings"]["limits"]:
        for way in ("api", "scan"):
            r = _best(document["results"], way, limit)
            if r is None:
                continue
            table.add_row(
                str(limit),
                "GET /files" if way == "api" else "boto3 Scan",
                str(r["pages"]),
                fmt(r["pages_per_s"], 1),
                fmt(r["items_per_s"]),
                fmt(r["page_latency_ms"]["p50"], 1),
                fmt(r["page_latency_ms"]["p99"], 1),
                "yes" if r["complete"] else "NO",
            )
    console.print(table)
    for t in document["targets"]:
        verdict = verdict_of(t)
        console.print(f"Target: {t['target']} = {t['value']} ({t['goal']}): {verdict}")


def plot(document: dict[str, Any], path: str) -> None:
    """items/s per limit, API walk next to raw Scan."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    limits = document["settings"]["limits"]
    figure, axis = plt.subplots(figsize=(7, 4.5))
    width = 0.38
    for offset, way, label in (
        (-width / 2, "api", "GET /files"),
        (width / 2, "scan", "boto3 Scan"),
    ):
        values = [
            (_best(document["results"], way, limit) or {}).get("items_per_s", 0) for limit in limits
        ]
        axis.bar([i + offset for i in range(len(limits))], values, width, label=label)
    axis.set_xticks(range(len(limits)), [str(limit) for limit in limits])
    axis.set_xlabel("limit (page size)")
    axis.set_ylabel("items/s")
    axis.set_title(f"Walking {document['settings']['items']:,} items")
    axis.legend()
    save_plot(figure, path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `read` command's options."""
    parser.add_argument("--items", type=int, default=10_000, help="rows to seed (0: none)")
    parser.add_argument("--limits", default="100,1000", help="page sizes to walk at")
    parser.add_argument("--repeat", type=int, default=2, help="walks per limit and way (best kept)")
    add_stack_arguments(parser, "its outputs ApiUrl, TableName")
    add_output_arguments(parser, "read")


def main(argv: list[str] | None = None) -> int:
    """`python -m load.read`, the same as `python -m load read`."""
    from load.cli import run_module

    return run_module(sys.modules[__name__], "read", argv)


if __name__ == "__main__":
    raise SystemExit(main())
