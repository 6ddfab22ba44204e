"""`adopt`: track a bucket that already exists (EventBridge on, events to the queue, backfill)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from pipeline.adapters.dynamo.registry import register_bucket
from pipeline.adapters.dynamo.shard_plans import DEFAULT_TTL_S, change_shards
from pipeline.core.model import FEED_SHARDS, INDEX_SHARDS, bucket_problem
from pipeline.core.settings import SettingsError
from pipeline.core.shards import shard_count_problem
from pipeline.local.commands.stop import Stop
from pipeline.local.provision import ResourceError
from pipeline.local.reconcile_cli import (
    DYNAMODB_ENDPOINT_HELP,
    EXIT_DRIFT,
    EXIT_ERROR,
    EXIT_OK,
    Progress,
    _human,
    _status,
    _totals_timing,
    reconcile_target,
)
from pipeline.local.target import DEFAULT_DYNAMODB_PORT, DEFAULT_MOTO_PORT, Flags, Resolver
from pipeline.wiring.reconcile import DEFAULT_TOTALS_SETTLE_S, Target, run

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
    sub.add_argument(
        "--totals-settle",
        type=float,
        metavar="SECONDS",
        help="step 3: the totals' lag behind the rows: a folder counter's repair waits "
        "that long (plus 5 s) after the folder's walk (default: $RECONCILE_TOTALS_SETTLE_S, "
        f"else {DEFAULT_TOTALS_SETTLE_S})",
    )
    sub.add_argument(
        "--index-shards",
        type=int,
        metavar="N",
        help=f"the bucket's listing-index shards (default {INDEX_SHARDS}: ~{INDEX_SHARDS},000 "
        'writes/s; docs/deploy.md, "Capacity")',
    )
    sub.add_argument(
        "--feed-shards",
        type=int,
        metavar="N",
        help=f"the bucket's change-feed shards (default {FEED_SHARDS}; an overwrite or a "
        "delete takes 2 of a shard's 1,000 writes/s)",
    )
    sub.add_argument(
        "--shards-wait-s",
        type=float,
        default=DEFAULT_TTL_S + 5,
        help=argparse.SUPPRESS,  # readers' plan cache (SHARD_PLAN_TTL_S) + 5 s; tests shorten it
    )
    sub.add_argument(
        "--dry-run",
        action="store_true",
        help="say what adopting would change (EventBridge, rule, rows to backfill), change "
        "nothing; exit 3 if it would change something, 0 if the bucket is already adopted",
    )
    sub.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    sub.add_argument("-v", "--verbose", action="store_true", help=argparse.SUPPRESS)
    return sub


def enable_eventbridge(s3: Any, bucket: str, *, dry_run: bool = False) -> bool:
    """Turn on the bucket's EventBridge notifications, keeping the rest; False if already on.

    `dry_run`: only say whether it would be turned on.
    """
    config = s3.get_bucket_notification_configuration(Bucket=bucket)
    config.pop("ResponseMetadata", None)
    if "EventBridgeConfiguration" in config:
        return False
    if dry_run:
        return True
    config["EventBridgeConfiguration"] = {}
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)
    return True


def rule_name(bucket: str) -> str:
    """The EventBridge rule of an adopted bucket on an emulator."""
    return f"adopted-{bucket}"[:64]


def rule_exists(events: Any, bucket: str) -> bool:
    """Whether the adopted bucket's rule exists (emulators only)."""
    try:
        events.describe_rule(Name=rule_name(bucket))
    except events.exceptions.ResourceNotFoundException:
        return False
    return True


def route_to_queue(events: Any, sqs: Any, bucket: str, queue_name: str) -> str:
    """The EventBridge rule the template creates for an adopted bucket (emulators only)."""
    name = rule_name(bucket)
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


def _adopt_target(args: argparse.Namespace) -> tuple[Target, str | None, str]:
    """Where to adopt: the target, the queue to route to (None on a deployed stack), and the
    one line that names them."""
    flags = Flags.from_args(args)
    resolved = Resolver(flags, holds_bucket=lambda *_: True).resolve()
    if args.stack_name:
        if resolved.bucket != args.bucket:
            raise ResourceError(
                f"stack {args.stack_name!r} tracks {resolved.bucket!r}: deploy it with "
                f"ExistingBucketName={args.bucket} first"
            )
        queue = None
    else:
        queue = resolved.queue_name
    line = resolved.describe("adopt") + (f", queue {queue}" if queue else "")
    return reconcile_target(resolved, None), queue, line


def _route(args: argparse.Namespace, target: Target, queue: str) -> int:
    """Step 2 on an emulator: the rule to the ingest queue; returns the changes (dry run)."""
    import boto3

    factory: Any = boto3.client
    events = factory("events", **target.client_kwargs("events"))
    if args.dry_run:
        if rule_exists(events, target.bucket):
            return 0
        print(
            f"EventBridge rule {rule_name(target.bucket)} -> queue {queue} would be created",
            file=sys.stderr,
        )
        return 1
    sqs = factory("sqs", **target.client_kwargs("sqs"))
    rule = route_to_queue(events, sqs, target.bucket, queue)
    print(f"EventBridge rule {rule} -> queue {queue}", file=sys.stderr)
    return 0


def _plan_shards(args: argparse.Namespace, dynamodb: Any, target: Target) -> int:
    """Give the bucket the asked shard plan, readers first (`change_shards`), before its
    events are routed; 1 if that is a change."""
    if args.index_shards is None and args.feed_shards is None:
        return 0
    index = args.index_shards or INDEX_SHARDS
    feed = args.feed_shards or FEED_SHARDS
    if args.dry_run:
        print(f"shard plan would be {index} listing / {feed} feed shards", file=sys.stderr)
        return 1
    print(
        f"shard plan: {index} listing / {feed} feed shards (readers first, then writers after "
        f"{args.shards_wait_s:.0f} s, longer than their plan cache)",
        file=sys.stderr,
        flush=True,
    )
    change_shards(
        dynamodb, target.table, target.bucket, index=index, feed=feed, wait_s=args.shards_wait_s
    )
    return 1


def adopt_main(args: argparse.Namespace) -> int:
    """Run the `adopt` subcommand; returns the exit status (as `reconcile`; with --dry-run,
    3 when adopting would change something)."""
    problem = bucket_problem(args.bucket)
    if problem is not None:
        print(f"error: --bucket {args.bucket!r}: {problem}", file=sys.stderr)
        return EXIT_ERROR
    for flag, count in (("--index-shards", args.index_shards), ("--feed-shards", args.feed_shards)):
        problem = None if count is None else shard_count_problem(count)
        if problem is not None:
            print(f"error: {flag} {count}: {problem}", file=sys.stderr)
            return EXIT_ERROR
    args.prefix, args.checkpoint_path = "", None
    try:
        settle, margin, stamp_margin = _totals_timing(args.totals_settle)
        target, queue, line = _adopt_target(args)
    except (ResourceError, SettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    print(line, file=sys.stderr, flush=True)
    from pipeline.wiring.reconcile import make_clients

    clients = make_clients(target)
    would = "would be " if args.dry_run else ""
    changes = 0
    try:
        turned_on = enable_eventbridge(clients.s3, target.bucket, dry_run=args.dry_run)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise
        where = target.endpoint_url or "AWS"
        print(f"error: there is no bucket {target.bucket!r} at {where}", file=sys.stderr)
        return EXIT_ERROR
    if turned_on:
        changes += 1
        print(
            f"EventBridge notifications {would}turned on for s3://{target.bucket}", file=sys.stderr
        )
    else:
        print(f"EventBridge notifications already on for s3://{target.bucket}", file=sys.stderr)
    if not args.dry_run:  # before its events are routed: ingest stores none of an untracked bucket
        register_bucket(clients.dynamodb, target.table, target.bucket, by="adopt")
    changes += _plan_shards(args, clients.dynamodb, target)
    if queue is not None:
        changes += _route(args, target, queue)
    if args.no_reconcile:
        return EXIT_DRIFT if args.dry_run and changes else EXIT_OK
    print(
        f"adopt: first reconcile of s3://{target.bucket} (backfill, then the folder totals)",
        file=sys.stderr,
        flush=True,
    )
    progress = Progress(sys.stderr, command="adopt")
    with Stop() as stop:
        summary = run(
            target,
            clients=clients,
            dry_run=args.dry_run,
            should_stop=stop.is_set,
            progress=progress,
            totals_settle_s=settle,
            totals_margin_s=margin,
            totals_stamp_margin_s=stamp_margin,
        )
    progress.close()
    print(json.dumps(summary.report()) if args.json else _human(summary, target, ""))
    status = _status(summary)
    return EXIT_DRIFT if status == EXIT_OK and args.dry_run and changes else status
