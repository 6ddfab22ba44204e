"""`python -m pipeline up|demo|reconcile`: run the pipeline locally (docs/local-stack.md)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from pipeline.local import reconcile_cli
from pipeline.local.api_client import file_url, get, list_files
from pipeline.local.provision import ResourceError, Resources, from_stack_outputs, queue_arn
from pipeline.local.stack import FAKE_CREDENTIALS, Stack
from pipeline.local.template import (
    DEFAULT_REGION,
    TEMPLATE_PATH,
    StackConfig,
    TemplateError,
    read_stack_config,
)

DEFAULT_MOTO_PORT = 4000
DEFAULT_API_PORT = 3000
SAMPLE_FILES = {
    "hello.txt": b"Hello, world!\n",
    "report.pdf": b"%PDF-1.4\n% a tiny sample report\n%%EOF\n",
    "invoice.csv": b"item,qty,price\nwidget,3,9.99\n",
}
"""The original design's sample uploads."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Run the S3 file tracker on this machine: storage services (embedded moto "
        "by default), the SQS event source poller and the API Gateway emulator, invoking the "
        "real handlers in-process. Settings come from template.yaml.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser(
        "up",
        help="start the local stack and run until Ctrl-C",
        description="Start the local "
        "stack and run until Ctrl-C. Without --endpoint-url, --stack-name or --queue-url it "
        "starts an embedded moto server and creates the resources there.",
    )
    demo = commands.add_parser(
        "demo",
        help="start, upload samples, list, delete one, list, stop",
        description="Start the embedded stack on free ports, upload hello.txt, report.pdf and "
        "invoice.csv with boto3, wait until they are tracked, print GET /files, delete one, "
        "show it gone, stop. Exit code 0 when everything behaved.",
    )
    reconcile_cli.add_parser(commands)
    reconcile_cli.add_adopt_parser(commands)
    migrate = commands.add_parser(
        "migrate-index",
        help="put rows written before the listing index into it (resumable, idempotent)",
        description="Add `shard` to live rows that lack it (written before the by_name index "
        "existed), with a conditional UpdateItem per row. Uses the standard AWS variables "
        "(AWS_ENDPOINT_URL, AWS_REGION, credentials). Prints a resume position after each page.",
    )
    migrate.add_argument("--table", required=True, help="the files table")
    migrate.add_argument("--region", help="AWS region (default: $AWS_REGION)")
    migrate.add_argument("--start-after", help="resume after this Scan position")
    migrate.add_argument("--page-size", type=int, default=500, help="rows per Scan call")
    migrate.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    for sub in (up, demo):
        tuning = sub.add_argument_group("settings (default: template.yaml)")
        tuning.add_argument("--template", type=Path, default=TEMPLATE_PATH, help="SAM template")
        tuning.add_argument("--region", help="AWS region (default: $AWS_REGION or ap-south-1)")
        tuning.add_argument(
            "--pollers",
            type=int,
            help="concurrent SQS pollers (default: the event source's MaximumConcurrency)",
        )
        tuning.add_argument("--batch-size", type=int, help="SQS event source BatchSize")
        tuning.add_argument(
            "--batching-window", type=int, metavar="SECONDS", help="MaximumBatchingWindowInSeconds"
        )
        tuning.add_argument(
            "--visibility-timeout",
            type=int,
            metavar="SECONDS",
            help="ingest queue visibility timeout (a failed message is retried after it)",
        )
        tuning.add_argument(
            "--max-receive-count", type=int, help="receives before a message moves to the DLQ"
        )
        tuning.add_argument(
            "--function-timeout", type=int, metavar="SECONDS", help="ingest function timeout"
        )
        tuning.add_argument("--name-suffix", help="append -SUFFIX to every resource name")
        tuning.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            help="the functions' own logs (template LogLevel) and EMF metrics",
        )
    up.add_argument(
        "--moto-port",
        type=int,
        default=DEFAULT_MOTO_PORT,
        help=f"embedded moto port (default {DEFAULT_MOTO_PORT}; 0 = any free port)",
    )
    up.add_argument(
        "--api-port",
        type=int,
        default=DEFAULT_API_PORT,
        help=f"API Gateway emulator port (default {DEFAULT_API_PORT}; 0 = any)",
    )
    target = up.add_argument_group("other targets (no embedded moto)")
    target.add_argument(
        "--endpoint-url",
        help="an AWS-compatible endpoint, e.g. LocalStack's "
        "http://localhost:4566; resources are created there unless "
        "--no-provision",
    )
    target.add_argument(
        "--no-provision",
        action="store_true",
        help="with --endpoint-url: the resources already exist",
    )
    target.add_argument(
        "--stack-name",
        help="real AWS: take bucket, table and queues from this CloudFormation stack's outputs",
    )
    target.add_argument("--bucket", help="real AWS: the bucket (with --table, --queue-url)")
    target.add_argument("--table", help="real AWS: the table")
    target.add_argument("--queue-url", help="real AWS: the ingest queue")
    target.add_argument("--dlq-url", help="real AWS: the dead-letter queue (optional)")
    return parser


def _config(args: argparse.Namespace) -> StackConfig:
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    config = read_stack_config(args.template, region=region or DEFAULT_REGION)
    if args.name_suffix:
        config = config.with_suffix(args.name_suffix)
    return config.with_overrides(
        batch_size=args.batch_size,
        batching_window_s=args.batching_window,
        visibility_timeout_s=args.visibility_timeout,
        max_receive_count=args.max_receive_count,
        function_timeout_s=args.function_timeout,
    )


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    local = logging.getLogger("pipeline.local")
    local.setLevel(logging.INFO)
    local.addHandler(handler)
    local.propagate = False  # the handlers' Powertools config owns the `pipeline` logger
    logging.getLogger("pipeline.local.gateway").setLevel(logging.DEBUG if verbose else logging.INFO)


def _existing_resources(args: argparse.Namespace, config: StackConfig) -> Resources | None:
    """Resources named by flags, a stack's outputs, or (with --no-provision) the template;
    None when the stack should create them."""
    factory: Any = boto3.client
    clients = {"region_name": config.region, "endpoint_url": args.endpoint_url}
    sqs = factory("sqs", **clients)
    if args.stack_name:
        return from_stack_outputs(factory("cloudformation", **clients), sqs, args.stack_name)
    if args.queue_url or args.bucket or args.table:
        if not (args.queue_url and args.bucket and args.table):
            raise ResourceError("--bucket, --table and --queue-url go together")
        arn = queue_arn(sqs, args.queue_url)
        return Resources(args.bucket, args.table, args.queue_url, arn, args.dlq_url)
    if args.endpoint_url and args.no_provision:
        url = sqs.get_queue_url(QueueName=config.queue_name)["QueueUrl"]
        dlq = sqs.get_queue_url(QueueName=config.dlq_name)["QueueUrl"]
        return Resources(config.bucket, config.table, url, queue_arn(sqs, url), dlq)
    return None


def _banner(stack: Stack) -> str:
    config = stack.config
    endpoint = stack.endpoint_url
    lines = [
        "Local stack is up"
        + (" (embedded moto)" if stack.embedded else f" (endpoint {endpoint or 'AWS'})"),
        f"  API          {stack.api_url}/files   (OpenAPI: {stack.api_url}/openapi.json)",
    ]
    if endpoint:
        lines.append(f"  S3/SQS/DDB   {endpoint}")
    lines += [
        f"  bucket       {stack.bucket}",
        f"  table        {stack.table_name}",
        f"  queue        {stack.queue_url}",
        f"  DLQ          {stack.dlq_url}",
        f"  ingest       {stack.pollers} poller(s), BatchSize {config.batch_size}, window "
        f"{config.batching_window_s} s, visibility {config.visibility_timeout_s} s, "
        f"maxReceiveCount {config.max_receive_count}, timeout {config.function_timeout_s} s",
        "",
        "Try it from another terminal:",
    ]
    if stack.embedded:
        creds = " ".join(f"{k}={v}" for k, v in FAKE_CREDENTIALS.items())
        lines.append(f"  export {creds} AWS_DEFAULT_REGION={stack.region}")
    flag = f"--endpoint-url {endpoint} " if endpoint else ""
    lines += [
        f"  aws {flag}s3 cp ./some-file.txt s3://{stack.bucket}/some-file.txt",
        f"  aws {flag}s3 cp --recursive ./some-dir s3://{stack.bucket}/some-dir/",
        f"  curl {stack.api_url}/files",
        f"  curl '{stack.api_url}/files?limit=2'",
        f"  curl {stack.api_url}/files/some-file.txt",
        f"  aws {flag}s3 rm s3://{stack.bucket}/some-file.txt",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


class _Stopper:
    """Turns SIGINT/SIGTERM into an event (no KeyboardInterrupt in the middle of a stop)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Stopper:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def cmd_up(args: argparse.Namespace) -> int:
    """Run until Ctrl-C."""
    config = _config(args)
    with _Stopper() as stopper:
        resources = _existing_resources(args, config)
        stack = Stack(
            config,
            pollers=args.pollers,
            moto_port=args.moto_port,
            api_port=args.api_port,
            endpoint_url=args.endpoint_url,
            resources=resources,
            verbose=args.verbose,
        )
        print("Starting the local stack...", file=sys.stderr, flush=True)
        stack.start()
        try:
            print(_banner(stack), flush=True)
            stopper.event.wait()
            print("\nStopping...", file=sys.stderr, flush=True)
        finally:
            stack.stop()
    print("Stopped.", file=sys.stderr, flush=True)
    return 0


def _show(title: str, payload: Any) -> None:
    print(f"\n$ {title}")
    print(json.dumps(payload, indent=2, ensure_ascii=False))


def cmd_demo(args: argparse.Namespace) -> int:
    """Upload the samples, list, delete one, list; exit 0 when all checks held."""
    config = _config(args)
    ok = True
    with _Stopper(), Stack(config, pollers=args.pollers or 2, verbose=args.verbose) as stack:
        print(f"Local stack up: API {stack.api_url}, moto {stack.endpoint_url}", flush=True)
        s3 = stack.client("s3")
        for name, body in SAMPLE_FILES.items():
            s3.put_object(Bucket=stack.bucket, Key=name, Body=body)
            print(f"uploaded s3://{stack.bucket}/{name} ({len(body)} bytes)", flush=True)
        stack.wait_until_idle(timeout_s=60)
        listing = get(f"{stack.api_url}/files")
        _show(f"curl {stack.api_url}/files   -> {listing.status}", listing.json())
        names = {item["filename"] for item in list_files(stack.api_url)}
        if names != set(SAMPLE_FILES):
            print(f"\nFAIL: expected {sorted(SAMPLE_FILES)}, the API lists {sorted(names)}")
            ok = False
        one = get(file_url(stack.api_url, "hello.txt"))
        _show(f"curl {file_url(stack.api_url, 'hello.txt')}   -> {one.status}", one.json())
        s3.delete_object(Bucket=stack.bucket, Key="report.pdf")
        print(f"\ndeleted s3://{stack.bucket}/report.pdf", flush=True)
        stack.wait_until_idle(timeout_s=60)
        listing = get(f"{stack.api_url}/files")
        _show(f"curl {stack.api_url}/files   -> {listing.status}", listing.json())
        gone = get(file_url(stack.api_url, "report.pdf"))
        print(f"\n$ curl {file_url(stack.api_url, 'report.pdf')}   -> {gone.status}")
        names = {item["filename"] for item in list_files(stack.api_url)}
        if names != set(SAMPLE_FILES) - {"report.pdf"} or gone.status != 404:
            print(f"\nFAIL: after the delete the API lists {sorted(names)} ({gone.status})")
            ok = False
        stats = stack.poller.stats if stack.poller else None
    print(f"\nstopped cleanly; ingest invocations: {stats.invocations if stats else 0}")
    print("demo OK" if ok else "demo FAILED")
    return 0 if ok else 1


def cmd_migrate_index(args: argparse.Namespace) -> int:
    """`migrate-index`: add `shard` to old live rows, printing where to resume."""
    from pipeline.dynamo.migrate import MigrationReport, migrate_index

    def progress(report: MigrationReport) -> None:
        position = "end of table" if report.complete else f"--start-after {report.resume_after!r}"
        print(
            f"page {report.pages}: {report.migrated} migrated, {report.skipped} skipped; {position}"
        )

    client = boto3.client("dynamodb", region_name=args.region)
    report = migrate_index(
        client, args.table, start_after=args.start_after, page_size=args.page_size, on_page=progress
    )
    print(
        f"done: {report.scanned} rows scanned, {report.migrated} migrated, {report.skipped} skipped"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        if args.command == "reconcile":
            return reconcile_cli.main(args)
        if args.command == "adopt":
            return reconcile_cli.adopt_main(args)
        if args.command == "up":
            return cmd_up(args)
        if args.command == "migrate-index":
            return cmd_migrate_index(args)
        return cmd_demo(args)
    except (TemplateError, ResourceError, ClientError, BotoCoreError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return 130
