"""`python -m pipeline reconcile`: compare the bucket with the table and repair the drift.

Targets (the first that applies):
  --stack-name NAME          a deployed stack: bucket and table from its outputs
  --bucket B --table T       any bucket and table (AWS, or --endpoint-url)
  --endpoint-url URL         an emulator (LocalStack, moto): names from template.yaml
  (nothing)                  the local stack of `python -m pipeline up` (moto on :4000,
                             DynamoDB Local on :4001)

Exit status: 0 when the table matched or was repaired, 1 when some repairs failed, 2 on
errors (bad arguments, unreachable services), 130 when stopped (Ctrl-C, SIGTERM): the
checkpoint is saved, and the same command resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import boto3

from pipeline.checkpoints import DEFAULT_PATH, CheckpointError
from pipeline.inventory import InventoryError
from pipeline.listing import StoreError
from pipeline.local.provision import ResourceError
from pipeline.reconcile import Summary
from pipeline.reconcile_app import Target, run

LOCAL_ENDPOINT = "http://127.0.0.1:{port}"
DEFAULT_MOTO_PORT = 4000
DEFAULT_DYNAMODB_PORT = 4001
DYNAMODB_ENDPOINT_HELP = "DynamoDB's endpoint when it differs from --endpoint-url"
EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_STOPPED = 0, 1, 2, 130


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the `reconcile` subcommand to the CLI's subparsers."""
    sub: argparse.ArgumentParser = commands.add_parser(
        "reconcile",
        help="compare the bucket with the table and repair drift (backfill, hide, correct)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.add_argument("--prefix", default="", help="only keys starting with this prefix")
    sub.add_argument(
        "--dry-run",
        action="store_true",
        help="report drift only: read nothing again, write nothing",
    )
    sub.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    sub.add_argument(
        "--restart", action="store_true", help="ignore a saved checkpoint and start from the top"
    )
    sub.add_argument(
        "--inventory",
        metavar="S3_URI",
        help="read the bucket from an S3 Inventory report (s3://…/manifest.json, CSV) "
        "instead of listing it; every drifted key is confirmed with HeadObject",
    )
    sub.add_argument(
        "--concurrency", type=int, default=16, help="HeadObject/PutItem calls in flight (16)"
    )
    target = sub.add_argument_group("target")
    target.add_argument("--stack-name", help="a deployed stack (bucket and table from outputs)")
    target.add_argument("--bucket", help="the bucket (with --table)")
    target.add_argument("--table", help="the table (with --bucket)")
    target.add_argument("--endpoint-url", help="an AWS-compatible endpoint (LocalStack, moto)")
    target.add_argument("--dynamodb-endpoint-url", help=DYNAMODB_ENDPOINT_HELP)
    target.add_argument(
        "--moto-port",
        type=int,
        default=DEFAULT_MOTO_PORT,
        help=f"the local stack's moto port when no other target is given ({DEFAULT_MOTO_PORT})",
    )
    target.add_argument(
        "--dynamodb-port",
        type=int,
        default=DEFAULT_DYNAMODB_PORT,
        help="the local stack's DynamoDB Local port when no other target is given "
        f"({DEFAULT_DYNAMODB_PORT})",
    )
    target.add_argument("--region", help="AWS region (default: $AWS_REGION or ap-south-1)")
    target.add_argument(
        "--template", type=Path, help="SAM template (default: the project's template.yaml)"
    )
    target.add_argument(
        "--checkpoint-path",
        help=f"SSM path of checkpoints (default: the stack's, else {DEFAULT_PATH})",
    )
    sub.add_argument("-v", "--verbose", action="store_true", help="log every repair failure")
    return sub


def _stack_outputs(region: str | None, endpoint: str | None, stack_name: str) -> dict[str, str]:
    factory: Any = boto3.client
    cloudformation = factory("cloudformation", region_name=region, endpoint_url=endpoint)
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except Exception as error:
        raise ResourceError(f"cannot describe stack {stack_name!r}: {error}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs") or []}
    missing = {"BucketName", "TableName"} - outputs.keys()
    if missing:
        raise ResourceError(f"stack {stack_name!r} lacks outputs {sorted(missing)}")
    return outputs


def resolve_target(args: argparse.Namespace) -> Target:
    """The bucket, table and endpoint the arguments name."""
    # the local stack's modules (moto, PyYAML) only when a command runs: `--help` works without
    from pipeline.local.stack import FAKE_CREDENTIALS
    from pipeline.local.template import DEFAULT_REGION, TEMPLATE_PATH, read_stack_config

    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    region = region or DEFAULT_REGION
    path = args.checkpoint_path
    if args.stack_name:
        outputs = _stack_outputs(region, args.endpoint_url, args.stack_name)
        return Target(
            bucket=outputs["BucketName"],
            table=outputs["TableName"],
            region=region,
            endpoint_url=args.endpoint_url,
            dynamodb_endpoint_url=args.dynamodb_endpoint_url,
            checkpoint_path=path
            or outputs.get("ReconcileCheckpointPath")
            or f"/file-tracker/{args.stack_name}/reconcile/",
        )
    if args.bucket or args.table:
        if not (args.bucket and args.table):
            raise ResourceError("--bucket and --table go together")
        return Target(
            args.bucket,
            args.table,
            region,
            args.endpoint_url,
            path or DEFAULT_PATH,
            dynamodb_endpoint_url=args.dynamodb_endpoint_url,
        )
    config = read_stack_config((args.template or TEMPLATE_PATH), region=region)
    if args.endpoint_url:
        return Target(
            config.bucket,
            config.table,
            region,
            args.endpoint_url,
            path or DEFAULT_PATH,
            dynamodb_endpoint_url=args.dynamodb_endpoint_url,
        )
    return Target(
        config.bucket,
        config.table,
        region,
        LOCAL_ENDPOINT.format(port=args.moto_port),
        path or DEFAULT_PATH,
        dynamodb_endpoint_url=args.dynamodb_endpoint_url
        or LOCAL_ENDPOINT.format(port=args.dynamodb_port),
        credentials={
            "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        },
    )


class Progress:
    """One line on a terminal, redrawn at most 5 times a second; silent when not a TTY."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.enabled = stream.isatty()
        self._last = 0.0
        self._drawn = False

    def __call__(self, summary: Summary) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.2 and not summary.complete:
            return
        self._last = now
        compared = max(summary.listed, summary.rows)
        rate = compared / summary.seconds if summary.seconds > 0 else 0.0
        at = (summary.last_key or "")[:40]
        line = (
            f"  {summary.listed:,} listed · {summary.rows:,} rows · drift {summary.drift:,} "
            f"(missing {summary.missing:,}, extra {summary.extra:,}, stale {summary.stale:,}) · "
            f"repaired {summary.repaired:,} · {rate:,.0f} keys/s · at {at!r}"
        )
        width = 160
        self._stream.write("\r" + line[:width].ljust(width))
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()


class _Stop:
    """SIGINT/SIGTERM set an event the run polls: it stops cleanly and saves its checkpoint."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _human(summary: Summary, target: Target, prefix: str) -> str:
    verb = "would repair" if summary.dry_run else "repaired"
    lines = [
        f"reconcile s3://{target.bucket}/{prefix}  <->  table {target.table}"
        + ("  (dry run)" if summary.dry_run else ""),
        f"  listed {summary.listed:,} objects, {summary.rows:,} live rows"
        + (f" (resumed after {summary.resumed_after!r})" if summary.resumed_after else ""),
        f"  drift   missing {summary.missing:,}, extra {summary.extra:,}, stale {summary.stale:,}",
        f"  {verb} {summary.drift if summary.dry_run else summary.repaired:,}, "
        f"skipped {summary.skipped:,}, failed {summary.failed:,}  in {summary.seconds:.1f} s",
    ]
    for key, why in summary.failures.items():
        lines.append(f"  failed: {key[:120]!r}: {why}")
    if not summary.complete:
        lines.append("  stopped before the end: run the same command again to resume")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Run the `reconcile` subcommand; returns the exit status."""
    if not 1 <= args.concurrency <= 128:
        print("error: --concurrency must be in [1, 128]", file=sys.stderr)
        return EXIT_ERROR
    try:
        target = resolve_target(args)
    except ResourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    progress = Progress(sys.stderr)
    try:
        with _Stop() as stop:
            summary = run(
                target,
                prefix=args.prefix,
                dry_run=args.dry_run,
                restart=args.restart,
                inventory=args.inventory,
                concurrency=args.concurrency,
                should_stop=stop.event.is_set,
                progress=progress,
            )
    except (CheckpointError, InventoryError, StoreError, ValueError) as error:
        progress.close()
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    progress.close()
    if args.json:
        print(json.dumps(summary.report(), ensure_ascii=False))
    else:
        print(_human(summary, target, args.prefix))
    if not summary.complete:
        return EXIT_STOPPED
    return EXIT_FAILED if summary.failed else EXIT_OK


# --------------------------------------------------------------------------------- adopt

ADOPT_HELP = """Track a bucket that already exists (and may hold objects), in three steps:

1. turn on the bucket's EventBridge notifications, keeping every other notification setting
   (S3's PutBucketNotificationConfiguration replaces the whole configuration: this reads it,
   adds EventBridgeConfiguration and writes it back);
2. on an emulator (the local stack, LocalStack), create the EventBridge rule that sends the
   bucket's Object Created / Object Deleted events to the ingest queue (on AWS the stack does
   it: deploy with ExistingBucketName=BUCKET);
3. run the first reconcile: every object already in the bucket is backfilled.
"""


def add_adopt_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the `adopt` subcommand to the CLI's subparsers."""
    sub: argparse.ArgumentParser = commands.add_parser(
        "adopt",
        help="track an existing bucket: EventBridge on, events to the queue, first backfill",
        description=ADOPT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.add_argument("--bucket", required=True, help="the existing bucket")
    sub.add_argument("--table", help="the table (default: the stack's or template.yaml's)")
    sub.add_argument("--stack-name", help="a deployed stack (deployed with ExistingBucketName)")
    sub.add_argument("--endpoint-url", help="an AWS-compatible endpoint (LocalStack, moto)")
    sub.add_argument("--dynamodb-endpoint-url", help=DYNAMODB_ENDPOINT_HELP)
    sub.add_argument("--moto-port", type=int, default=DEFAULT_MOTO_PORT)
    sub.add_argument("--dynamodb-port", type=int, default=DEFAULT_DYNAMODB_PORT)
    sub.add_argument("--region", help="AWS region (default: $AWS_REGION or ap-south-1)")
    sub.add_argument(
        "--template", type=Path, help="SAM template (default: the project's template.yaml)"
    )
    sub.add_argument("--queue-name", help="emulators: the ingest queue (default: template's)")
    sub.add_argument("--no-reconcile", action="store_true", help="skip step 3 (the backfill)")
    sub.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    sub.add_argument("-v", "--verbose", action="store_true", help=argparse.SUPPRESS)
    return sub


def enable_eventbridge(s3: Any, bucket: str) -> bool:
    """Turn on the bucket's EventBridge notifications, keeping the rest; False if already on."""
    config = s3.get_bucket_notification_configuration(Bucket=bucket)
    config.pop("ResponseMetadata", None)
    if "EventBridgeConfiguration" in config:
        return False
    config["EventBridgeConfiguration"] = {}
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)
    return True


def route_to_queue(events: Any, sqs: Any, bucket: str, queue_name: str) -> str:
    """The EventBridge rule the template creates for an adopted bucket (emulators only)."""
    name = f"adopted-{bucket}"[:64]
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created", "Object Deleted"],
        "detail": {"bucket": {"name": [bucket]}},
    }
    events.put_rule(Name=name, EventPattern=json.dumps(pattern), State="ENABLED")
    url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    events.put_targets(Rule=name, Targets=[{"Id": "ingest-queue", "Arn": arn["QueueArn"]}])
    return name


def adopt_main(args: argparse.Namespace) -> int:
    """Run the `adopt` subcommand; returns the exit status (as `reconcile`)."""
    # the local stack's modules (moto, PyYAML) only when a command runs: `--help` works without
    from pipeline.local.stack import FAKE_CREDENTIALS
    from pipeline.local.template import DEFAULT_REGION, TEMPLATE_PATH, read_stack_config

    args.prefix, args.checkpoint_path = "", None
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    region = region or DEFAULT_REGION
    try:
        if args.stack_name:
            target = resolve_target(args)
            if target.bucket != args.bucket:
                raise ResourceError(
                    f"stack {args.stack_name!r} tracks {target.bucket!r}: deploy it with "
                    f"ExistingBucketName={args.bucket} first"
                )
        else:
            config = read_stack_config((args.template or TEMPLATE_PATH), region=region)
            local = args.endpoint_url is None
            target = Target(
                bucket=args.bucket,
                table=args.table or config.table,
                region=region,
                endpoint_url=args.endpoint_url or LOCAL_ENDPOINT.format(port=args.moto_port),
                dynamodb_endpoint_url=args.dynamodb_endpoint_url
                or (LOCAL_ENDPOINT.format(port=args.dynamodb_port) if local else None),
                credentials={
                    "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                    "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                }
                if local
                else None,
            )
    except ResourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    from pipeline.reconcile_app import make_clients

    clients = make_clients(target)
    factory: Any = boto3.client
    extra: dict[str, Any] = {"region_name": target.region, "endpoint_url": target.endpoint_url}
    extra.update(target.credentials or {})
    if enable_eventbridge(clients.s3, target.bucket):
        print(f"EventBridge notifications turned on for s3://{target.bucket}", file=sys.stderr)
    else:
        print(f"EventBridge notifications already on for s3://{target.bucket}", file=sys.stderr)
    if not args.stack_name:
        config = read_stack_config(
            (args.template or TEMPLATE_PATH), region=target.region or DEFAULT_REGION
        )
        queue = args.queue_name or config.queue_name
        rule = route_to_queue(
            factory("events", **extra), factory("sqs", **extra), target.bucket, queue
        )
        print(f"EventBridge rule {rule} -> queue {queue}", file=sys.stderr)
    if args.no_reconcile:
        return EXIT_OK
    args.dry_run = args.restart = False
    args.inventory = None
    args.concurrency = 16
    progress = Progress(sys.stderr)
    with _Stop() as stop:
        summary = run(target, clients=clients, should_stop=stop.event.is_set, progress=progress)
    progress.close()
    print(json.dumps(summary.report()) if args.json else _human(summary, target, ""))
    if not summary.complete:
        return EXIT_STOPPED
    return EXIT_FAILED if summary.failed else EXIT_OK
