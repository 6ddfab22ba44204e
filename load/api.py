"""API on the local stack: page latency, a limit-1 walk, and concurrent signed clients.

One local stack, one table, three measurements (issue 16's "Done when" for the API):

1. page latency: `GET /files?limit=1000` pages over `--rows` rows (p50/p99 of the pages);
2. a limit-1 walk: `GET /files?limit=1&prefix=...` over `--walk-files` files, token to token;
3. concurrency: `--clients` signed clients at once, `--requests` each, every request for the
   client's own prefix (a listing) or own file; each answer is checked against what that
   client asked for (wrong answers, errors) and the requests/s counted. A first round of 2
   requests per client (the execution environments' cold starts) is reported apart.

The functions run as Lambda runs them (`environments`: one invocation per execution
environment). `--compare-in-process` runs measurement 3 a second time, in the same run, with
the API handler called in-process from the gateway's threads (the model before execution
environments), side by side. Each measurement stops after `--max-seconds` and reports what
it did. The table is seeded directly (BatchWriteItem of ingest-shaped rows).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from rich.table import Table

from load.read import seed
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
from pipeline.local.api_client import ApiResponse, Signer, file_url, get


def _prefix(run: str, index: int) -> str:
    return f"load-read/{run}/p{index:03d}/"


def _list_url(api_url: str, prefix: str, limit: int, token: str | None = None) -> str:
    # parameters in canonical order, values encoded as SigV4 canonicalizes them
    query = f"limit={limit}"
    if token:
        query += f"&next_token={quote(token, safe='')}"
    return f"{api_url}/files?{query}&prefix={quote(prefix, safe='')}"


def pages(api_url: str, signer: Signer, prefix: str, limit: int, max_s: float) -> dict[str, Any]:
    """Walk `prefix` at `limit`, token to token, for at most `max_s`: page latencies (a page
    that failed, e.g. a 504 past the function timeout, counts with its latency and is asked
    again)."""
    latencies: list[float] = []
    failed: dict[int, int] = {}
    items = 0
    token: str | None = None
    started = time.perf_counter()
    complete = False
    while time.perf_counter() - started < max_s:
        t0 = time.perf_counter()
        response = get(_list_url(api_url, prefix, limit, token), signer=signer, timeout_s=60)
        latencies.append(time.perf_counter() - t0)
        if response.status != 200:
            failed[response.status] = failed.get(response.status, 0) + 1
            continue
        page = response.json()
        items += len(page["items"])
        token = page.get("next_token")
        if not token:
            complete = True
            break
    seconds = time.perf_counter() - started
    return {
        "limit": limit,
        "pages": len(latencies),
        "failed_pages": failed,
        "items": items,
        "complete": complete,
        "seconds": round(seconds, 3),
        "p50_ms": _ms(percentile(latencies, 50)),
        "p99_ms": _ms(percentile(latencies, 99)),
        "pages_per_s": round(len(latencies) / seconds, 2) if seconds else None,
    }


def clients(
    api_url: str,
    signer: Signer,
    run: str,
    count: int,
    requests: int,
    files_per_prefix: int,
    max_s: float,
) -> dict[str, Any]:
    """`count` clients at once, `requests` each, alternating their own listing and own file."""
    barrier = threading.Barrier(count)
    deadline = time.perf_counter() + max_s

    def client(index: int) -> dict[str, int]:
        prefix = _prefix(run, index)
        mine = [f"{prefix}object {index + count * j:07d}.bin" for j in range(files_per_prefix)]
        tally = {"requests": 0, "wrong": 0, "errors": 0}
        barrier.wait()
        for n in range(requests):
            if time.perf_counter() > deadline:
                break
            if n % 2 == 0:
                response = get(_list_url(api_url, prefix, 1000), signer=signer, timeout_s=60)
                right = sorted(item["filename"] for item in _json(response).get("items", []))
                expected: Any = sorted(mine)
            else:
                name = mine[n // 2 % len(mine)]
                response = get(file_url(api_url, name), signer=signer, timeout_s=60)
                right, expected = _json(response).get("filename"), name
            tally["requests"] += 1
            if response.status != 200:
                tally["errors"] += 1
            elif right != expected:
                tally["wrong"] += 1
        return tally

    started = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        tallies = list(pool.map(client, range(count)))
    seconds = time.perf_counter() - started
    done = sum(t["requests"] for t in tallies)
    return {
        "clients": count,
        "requests_per_client": requests,
        "requests": done,
        "complete": done == count * requests,
        "wrong_answers": sum(t["wrong"] for t in tallies),
        "errors": sum(t["errors"] for t in tallies),
        "seconds": round(seconds, 3),
        "requests_per_s": round(done / seconds, 2) if seconds else None,
    }


def _json(response: ApiResponse) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def in_process_api_handler() -> Callable[[dict[str, Any], Any], Any]:
    """The API handler called in-process from the gateway's threads (the model before
    execution environments), cold-started at its first call, once the stack's environment
    is set."""
    from pipeline.local.lambda_runtime import clearing_metrics, cold_start

    loaded: list[Any] = []
    lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> Any:
        with lock:
            if not loaded:
                loaded.append(clearing_metrics(*cold_start("handlers.api.lambda_handler", {})))
        return loaded[0](event, context)

    return handler


def run(args: argparse.Namespace) -> int:
    """Seed, measure, report; exit 1 if a target is missed (a wrong answer is one)."""
    import boto3

    from pipeline.local.stack import QUIET_POWERTOOLS, Stack
    from pipeline.local.template import read_stack_config

    run_id = uuid.uuid4().hex[:8]
    config = read_stack_config().with_suffix(f"api-{run_id}")
    page_run, walk_run, client_run = f"{run_id}-pages", f"{run_id}-walk", f"{run_id}-clients"
    results: dict[str, Any] = {}
    with Stack(config, pollers=1) as stack:
        table = boto3.resource(
            "dynamodb",
            region_name=stack.region,
            endpoint_url=stack.dynamodb_endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).Table(stack.table_name)
        console.print(f"seeding {args.rows:,} + {args.walk_files:,} + {args.clients * 3} rows")
        t0 = time.perf_counter()
        seed(table, args.rows, page_run, stack.bucket, prefixes=32)
        seed(table, args.walk_files, walk_run, stack.bucket, prefixes=1)
        seed(table, args.clients * 3, client_run, stack.bucket, prefixes=args.clients)
        console.print(f"seeded in {time.perf_counter() - t0:.0f} s")
        signer, url = stack.signer, stack.api_url
        console.print(f"pages at limit 1000 over {args.rows:,} rows")
        results["pages"] = pages(url, signer, f"load-read/{page_run}/", 1000, args.max_seconds)
        console.print(f"limit-1 walk of {args.walk_files:,} files")
        results["walk"] = pages(url, signer, f"load-read/{walk_run}/", 1, args.max_seconds)
        console.print(f"{args.clients} clients x 2 requests: cold starts (environments)")
        results["clients_first_contact"] = clients(
            url, signer, client_run, args.clients, 2, 3, args.max_seconds
        )
        console.print(f"{args.clients} clients x {args.requests} requests (environments)")
        results["clients"] = clients(
            url, signer, client_run, args.clients, args.requests, 3, args.max_seconds
        )
        if args.compare_in_process:
            assert stack.gateway is not None
            pool = stack.gateway.handler
            stack.gateway.handler = in_process_api_handler()
            environment = {**config.api.environment, "TABLE_NAME": stack.table_name}
            os.environ.update({**environment, **QUIET_POWERTOOLS})
            clients(url, signer, client_run, args.clients, 2, 3, args.max_seconds)  # warm-up
            console.print(f"{args.clients} clients x {args.requests} requests (in-process)")
            results["clients_in_process"] = clients(
                url, signer, client_run, args.clients, args.requests, 3, args.max_seconds
            )
            stack.gateway.handler = pool
    walk = results["walk"]
    walk_s = (
        walk["seconds"]
        if walk["complete"]
        else walk["seconds"] * args.walk_files / max(1, walk["items"])
    )
    targets = [
        target("page p50 at limit 1000 (ms)", results["pages"]["p50_ms"] or 0, "<=", 150),
        target(f"limit-1 walk of {args.walk_files:,} files (s)", walk_s, "<=", 60),
        target("wrong answers", results["clients"]["wrong_answers"], "<=", 0),
        target("requests/s", results["clients"]["requests_per_s"] or 0, ">=", 50),
    ]
    document = {
        "benchmark": "api",
        "machine": machine(),
        "settings": vars(args) | {"run": None},
        "target": {"kind": "local stack", "engine": "embedded moto", "table": config.table},
        "results": results,
        "walk_seconds_estimated": not walk["complete"],
        "targets": targets,
    }
    return finish(args, document, summary=print_summary)


def print_summary(document: dict[str, Any]) -> None:
    """The three measurements and the targets."""
    results = document["results"]
    table = Table(title="API on the local stack")
    for column in ("measurement", "requests", "complete", "seconds", "p50 ms", "p99 ms", "req/s",
                   "wrong", "errors"):  # fmt: skip
        table.add_column(column)
    for name, result in results.items():
        table.add_row(
            name,
            str(result.get("pages", result.get("requests"))),
            "yes" if result["complete"] else "NO",
            fmt(result["seconds"], 1),
            fmt(result.get("p50_ms"), 1),
            fmt(result.get("p99_ms"), 1),
            fmt(result.get("requests_per_s", result.get("pages_per_s")), 1),
            str(result.get("wrong_answers", "-")),
            str(result.get("errors", sum(result.get("failed_pages", {}).values()))),
        )
    console.print(table)
    console.print(targets_table(document["targets"]))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This benchmark's options."""
    parser.add_argument("--rows", type=int, default=100_000, help="rows under the paged prefix")
    parser.add_argument("--walk-files", type=int, default=2_500, help="files of the limit-1 walk")
    parser.add_argument("--clients", type=int, default=40, help="concurrent signed clients")
    parser.add_argument("--requests", type=int, default=16, help="requests per client")
    parser.add_argument("--max-seconds", type=float, default=300, help="bound per measurement")
    parser.add_argument(
        "--compare-in-process",
        action="store_true",
        help="also run the clients against the handler called in-process (the old model)",
    )
    add_output_arguments(parser, "api", plot=None)


def main(argv: list[str] | None = None) -> int:
    """`python -m load.api`, the same as `python -m load api`."""
    from load.cli import run_module

    return run_module(sys.modules[__name__], "api", argv)


if __name__ == "__main__":
    raise SystemExit(main())
