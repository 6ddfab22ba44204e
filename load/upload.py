"""Bulk upload: put N objects into the bucket concurrently, wait until every key is tracked.

Against the local stack (default: embedded moto and DynamoDB Local on 127.0.0.1, started
here) or a deployed stack (`--stack-name`, whose outputs name the bucket and table). Reports
the upload rate, the end-to-end throughput (objects tracked per second, from the first PUT to
the last row), the tracking lag (row written - S3 eventTime) p50/p95/p99/max and the
completeness of the table (missing and extra keys under this run's prefix; both must be 0).

Row-written times: on the local stack, the ingest handler is wrapped and each key's time is
taken when the invocation that wrote it returns (an upper bound, exact to one invocation).
On a deployed stack the table is scanned every `--poll-interval` seconds and a key's time is
the scan that first saw it (resolution: one scan).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import threading
import time
import uuid
from datetime import datetime
from typing import Any

import aioboto3
from botocore.config import Config

from load.cli import add_stack_arguments
from load.report import (
    add_output_arguments,
    console,
    finish,
    progress,
)
from load.upload_report import document_of, plot, print_summary
from pipeline.ingest.events import NotificationError, parse_body

MAX_OBJECTS = 200_000
"""A bound on what one run may upload."""
BODY_VARIANTS = 64
"""Distinct bodies generated per run (objects reuse them: sizes vary, memory stays small)."""


def parse_sizes(text: str) -> tuple[int, int]:
    """`1024` or `100-10000` (bytes) -> (low, high)."""
    low, _, high = text.partition("-")
    bounds = (int(low), int(high or low))
    if not 0 <= bounds[0] <= bounds[1] <= 5 * 1024 * 1024:
        raise argparse.ArgumentTypeError("sizes must be 0 <= low <= high <= 5 MiB")
    return bounds


def object_keys(count: int, run: str, prefixes: int, template: str) -> list[str]:
    """Keys of this run, spread round-robin over `prefixes` folders."""
    return [
        template.format(run=run, prefix=i % prefixes, i=i, n=i // prefixes) for i in range(count)
    ]


def _event_epoch(event_time: str) -> float:
    return datetime.fromisoformat(event_time.replace("Z", "+00:00")).timestamp()


class Tracker:
    """Row-written time and S3 eventTime per key of this run (filled by the handler wrapper)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.written: dict[str, float] = {}
        self.event_time: dict[str, float] = {}
        self.extra: set[str] = set()
        self._lock = threading.Lock()

    def wrap(self, handler: Any) -> Any:
        """The handler, recording each applied key when the invocation returns."""

        def tracked(event: dict[str, Any], context: Any) -> Any:
            response = handler(event, context)
            done = time.time()
            failed = {
                f.get("itemIdentifier") for f in (response or {}).get("batchItemFailures", [])
            }
            with self._lock:
                for record in event.get("Records", []):
                    if record.get("messageId") in failed:
                        continue
                    try:
                        notification = parse_body(record.get("body"))
                    except NotificationError:
                        continue
                    for file_event in notification.events:
                        key = file_event.filename
                        if not key.startswith(self.prefix):
                            continue
                        self.written.setdefault(key, done)
                        self.event_time.setdefault(key, _event_epoch(file_event.event_time))
            return response

        return tracked


async def upload(
    client: Any,
    bucket: str,
    keys: list[str],
    sizes: tuple[int, int],
    concurrency: int,
    on_done: Any,
) -> tuple[float, float, list[str]]:
    """PUT every key, `concurrency` at a time; (first start, last end, failed keys)."""
    rng = random.Random(7)
    bodies = [rng.randbytes(rng.randint(*sizes)) for _ in range(BODY_VARIANTS)]
    queue: asyncio.Queue[str] = asyncio.Queue()
    for key in keys:
        queue.put_nowait(key)
    failed: list[str] = []
    started = time.time()
    last = started

    async def worker() -> None:
        nonlocal last
        while not queue.empty():
            key = queue.get_nowait()
            try:
                await client.put_object(Bucket=bucket, Key=key, Body=rng.choice(bodies))
            except Exception:
                failed.append(key)
            last = max(last, time.time())
            on_done()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return started, last, failed


async def _upload_all(
    endpoint_url: str | None,
    region: str,
    credentials: dict[str, str],
    bucket: str,
    keys: list[str],
    sizes: tuple[int, int],
    concurrency: int,
    on_done: Any,
) -> tuple[float, float, list[str]]:
    session = aioboto3.Session()
    async with session.client(
        "s3",
        region_name=region,
        endpoint_url=endpoint_url,
        config=Config(max_pool_connections=concurrency, retries={"mode": "standard"}),
        **credentials,
    ) as client:
        return await upload(client, bucket, keys, sizes, concurrency, on_done)


def scan_keys(dynamodb: Any, table: str, prefix: str) -> dict[str, float]:
    """Keys under `prefix` in the table (tombstones excluded) -> their S3 eventTime (epoch)."""
    found: dict[str, float] = {}
    paginator = dynamodb.get_paginator("scan")
    for page in paginator.paginate(
        TableName=table,
        FilterExpression="begins_with(#f, :p) AND attribute_not_exists(#d)",
        ExpressionAttributeNames={"#f": "filename", "#d": "deleted", "#t": "event_time"},
        ExpressionAttributeValues={":p": {"S": prefix}},
        ProjectionExpression="#f, #t",
        ConsistentRead=True,
    ):
        for item in page.get("Items", []):
            found[item["filename"]["S"]] = _event_epoch(item["event_time"]["S"])
    return found


def run(args: argparse.Namespace) -> int:
    """Upload, wait, report; exit 1 when keys are missing or extra."""
    if not 1 <= args.objects <= MAX_OBJECTS:
        raise SystemExit(f"--objects must be 1-{MAX_OBJECTS}")
    run_id = args.run_id or time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
    keys = object_keys(args.objects, run_id, args.prefixes, args.key_template)
    prefix = _common_prefix(keys)
    if args.stack_name:
        document = _run_deployed(args, run_id, keys, prefix)
    else:
        document = _run_local(args, run_id, keys, prefix)
    status = finish(args, document, summary=print_summary, draw=plot)
    completeness = document["completeness"]
    return 0 if status == 0 and completeness["missing"] == completeness["extra"] == 0 else 1


def _common_prefix(keys: list[str]) -> str:
    first, last = min(keys), max(keys)
    length = 0
    while length < min(len(first), len(last)) and first[length] == last[length]:
        length += 1
    return first[:length]


def _run_local(
    args: argparse.Namespace, run_id: str, keys: list[str], prefix: str
) -> dict[str, Any]:
    from pipeline.local.stack import FAKE_CREDENTIALS, Stack
    from pipeline.local.template import read_stack_config

    config = read_stack_config().with_suffix(run_id.lower()[-12:].strip("-"))
    if args.batch_size:
        config = config.with_overrides(batch_size=args.batch_size)
    tracker = Tracker(prefix)
    with (
        Stack(config, pollers=args.pollers or None, warm_engine=True) as stack,
        progress() as bar,
    ):
        assert stack.poller is not None
        stack.poller.handler = tracker.wrap(stack.poller.handler)
        uploading = bar.add_task("upload", total=len(keys))
        tracking = bar.add_task("tracked", total=len(keys))
        credentials = {
            "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        }

        def on_done() -> None:
            bar.advance(uploading)
            bar.update(tracking, completed=len(tracker.written))

        started, uploaded_at, failed = asyncio.run(
            _upload_all(
                stack.endpoint_url,
                stack.region,
                credentials,
                stack.bucket,
                keys,
                args.sizes,
                args.concurrency,
                on_done,
            )
        )
        deadline = time.monotonic() + args.timeout
        expected = len(keys) - len(failed)
        while len(tracker.written) < expected and time.monotonic() < deadline:
            bar.update(tracking, completed=len(tracker.written))
            time.sleep(0.1)
        bar.update(tracking, completed=len(tracker.written))
        totals = _totals_lag(stack, keys[0], uploaded_at, tracker.written, deadline)
        try:
            stack.wait_until_idle(timeout_s=max(1.0, deadline - time.monotonic()))
        except TimeoutError as error:
            console.print(f"[yellow]{error}")
        in_table = scan_keys(stack.client("dynamodb"), stack.table_name, prefix)
        poller_stats = {
            name: getattr(stack.poller.stats, name)
            for name in (
                "invocations",
                "failed_invocations",
                "messages_received",
                "messages_failed",
            )
        }
        target = {
            "kind": "local (embedded moto and DynamoDB Local)",
            "pollers": stack.pollers,
            "batch_size": config.batch_size,
            "batching_window_s": config.batching_window_s,
            "bucket": stack.bucket,
            "table": stack.table_name,
            "poller": poller_stats,
            "totals": totals,
        }
    return document_of(
        args,
        run_id,
        keys,
        prefix,
        started,
        uploaded_at,
        failed,
        tracker.written,
        tracker.event_time,
        in_table,
        target,
        "handler return",
    )


def _totals_lag(
    stack: Any, key: str, uploaded_at: float, written: dict[str, float], deadline: float
) -> dict[str, Any]:
    """When the folder of `key` had its totals exact (`/summary`'s counter == what
    ListObjectsV2 sums under it): seconds after the last upload and after the last row.

    The counter is sampled from the start, while the folder is listed (a 10,000-key listing
    of moto takes seconds): the time is that of the first sample equal to the sums."""
    import threading

    from pipeline.adapters.dynamo.totals import DynamoTotalsStore
    from pipeline.totals.deltas import Totals

    folder = key[: key.rfind("/") + 1]
    store = DynamoTotalsStore(stack.client("dynamodb"), stack.table_name)
    samples: list[tuple[float, Totals]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set() and time.monotonic() < deadline:
            samples.append((time.time(), store.get(stack.bucket, folder).totals))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    want = Totals()
    for page in (
        stack.client("s3")
        .get_paginator("list_objects_v2")
        .paginate(Bucket=stack.bucket, Prefix=folder)
    ):
        for obj in page.get("Contents", []):
            want = want + Totals(1, obj["Size"])
    exact_at = None
    while exact_at is None and time.monotonic() < deadline:
        exact_at = next((at for at, seen in list(samples) if seen == want), None)
        time.sleep(0.05)
    done.set()
    sampler.join()
    last_row = max(written.values(), default=uploaded_at)
    return {
        "folder": folder,
        "files": want.files,
        "exact_after_last_upload_s": None if exact_at is None else exact_at - uploaded_at,
        "exact_after_last_row_s": None if exact_at is None else max(0.0, exact_at - last_row),
    }


def _run_deployed(
    args: argparse.Namespace, run_id: str, keys: list[str], prefix: str
) -> dict[str, Any]:
    import boto3

    from pipeline.local.provision import from_stack_outputs

    session = boto3.Session(region_name=args.region)
    resources = from_stack_outputs(
        session.client("cloudformation"), session.client("sqs"), args.stack_name
    )
    dynamodb = session.client("dynamodb")
    written: dict[str, float] = {}
    event_time: dict[str, float] = {}
    with progress() as bar:
        uploading = bar.add_task("upload", total=len(keys))
        tracking = bar.add_task("tracked (scans)", total=len(keys))
        started, uploaded_at, failed = asyncio.run(
            _upload_all(
                None,
                session.region_name,
                {},
                resources.bucket,
                keys,
                args.sizes,
                args.concurrency,
                lambda: bar.advance(uploading),
            )
        )
        expected = len(keys) - len(failed)
        deadline = time.monotonic() + args.timeout
        while len(written) < expected and time.monotonic() < deadline:
            found = scan_keys(dynamodb, resources.table, prefix)
            now = time.time()
            for key, at in found.items():
                written.setdefault(key, now)
                event_time.setdefault(key, at)
            bar.update(tracking, completed=len(written))
            time.sleep(args.poll_interval)
    in_table = scan_keys(dynamodb, resources.table, prefix)
    target = {
        "kind": "deployed",
        "stack": args.stack_name,
        "bucket": resources.bucket,
        "table": resources.table,
    }
    return document_of(
        args,
        run_id,
        keys,
        prefix,
        started,
        uploaded_at,
        failed,
        written,
        event_time,
        in_table,
        target,
        f"first scan that saw the row (every {args.poll_interval} s)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `upload` command's options."""
    parser.add_argument("--objects", type=int, default=10_000, help=f"1-{MAX_OBJECTS:,}")
    parser.add_argument(
        "--sizes", type=parse_sizes, default=(256, 4096), help="bytes: 1024 or 100-10000"
    )
    parser.add_argument("--prefixes", type=int, default=32, help="folders the keys spread over")
    parser.add_argument(
        "--key-template",
        default="load/{run}/p{prefix:03d}/object {i:07d}.bin",
        help="fields: run, prefix, i (index), n (index within its prefix)",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="PUTs in flight")
    parser.add_argument("--pollers", type=int, default=0, help="local: SQS pollers (0 = template)")
    parser.add_argument("--batch-size", type=int, default=0, help="local: BatchSize (0 = template)")
    add_stack_arguments(parser, "its outputs name the bucket, queue and table")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="deployed: scan period")
    parser.add_argument("--timeout", type=float, default=600, help="max wait for tracking, s")
    parser.add_argument("--run-id", help="default: a timestamp")
    add_output_arguments(parser, "upload", plot="PNG plot path (lag histogram)")


def main(argv: list[str] | None = None) -> int:
    """`python -m load.upload`, the same as `python -m load upload`."""
    from load.cli import run_module

    return run_module(sys.modules[__name__], "upload", argv)


if __name__ == "__main__":
    raise SystemExit(main())
