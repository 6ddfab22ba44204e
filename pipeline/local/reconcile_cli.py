"""`python -m pipeline reconcile`: compare the bucket with the table and repair the drift.

Targets (the first that applies):
  --stack-name NAME          a deployed stack: bucket and table from its outputs
  --bucket B [--table T]     a bucket of the running local stack (`up`, found by its state
                             file) when it has B; else any bucket and table on AWS (or
                             --endpoint-url)
  --endpoint-url URL         an emulator (LocalStack, moto): names from template.yaml
  (nothing)                  the running local stack of `up` (else moto on --moto-port,
                             DynamoDB Local on --dynamodb-port)

Exit status: 0 when the table matched or was repaired, 1 when some repairs failed, 2 on
errors (bad arguments, unreachable services), 3 when --dry-run found drift (0: none), 130
when stopped (Ctrl-C, SIGTERM): the checkpoint is saved, and the same command resumes.

--json names the drifted keys (the first 100 per kind, with a count of the others);
--list prints them in the human report too.
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
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from pipeline.adapters.s3_inventory import InventoryError
from pipeline.adapters.ssm_checkpoints import DEFAULT_PATH, CheckpointError
from pipeline.core.settings import SettingsError, TotalsTiming
from pipeline.local.provision import ResourceError
from pipeline.local.state import LocalStack, read_local_stack
from pipeline.read.listing import StoreError
from pipeline.reconcile.merge import Summary
from pipeline.wiring.reconcile import DEFAULT_TOTALS_SETTLE_S, Target, run

LOCAL_ENDPOINT = "http://127.0.0.1:{port}"
DEFAULT_MOTO_PORT = 4000
DEFAULT_DYNAMODB_PORT = 4001
DYNAMODB_ENDPOINT_HELP = "DynamoDB's endpoint when it differs from --endpoint-url"
EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_DRIFT, EXIT_STOPPED = 0, 1, 2, 3, 130


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
        help="report drift only: read nothing again, write nothing; exit 3 if there is drift",
    )
    sub.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    sub.add_argument(
        "--list",
        action="store_true",
        help="name the drifted keys (the first 100 per kind) in the report",
    )
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
    sub.add_argument(
        "--totals-settle",
        type=float,
        metavar="SECONDS",
        help="the ingest function's timeout: a folder counter's repair waits that long "
        "(plus 5 s) after the folder's walk (default: $RECONCILE_TOTALS_SETTLE_S, else "
        f"{DEFAULT_TOTALS_SETTLE_S})",
    )
    sub.add_argument("--no-totals", action="store_true", help="leave the folder counters alone")
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


NO_TARGET = (
    "no local stack is running (start one with `s3-file-tracker up`) and no AWS credentials "
    "were found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or name a stack "
    "with --stack-name)"
)


def local_target(local: LocalStack, bucket: str, table: str, checkpoint_path: str) -> Target:
    """A target on the running local stack: its endpoints, region and credentials."""
    return Target(
        bucket=bucket,
        table=table,
        region=local.region,
        endpoint_url=local.endpoint("s3"),
        checkpoint_path=checkpoint_path,
        credentials=dict(local.credentials) or None,
        endpoints=dict(local.endpoints),
    )


def _has_bucket(local: LocalStack, bucket: str) -> bool:
    """Whether the running local stack holds `bucket`."""
    factory: Any = boto3.client
    s3 = factory(
        "s3", region_name=local.region, endpoint_url=local.endpoint("s3"), **local.credentials
    )
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception:
        return False
    return True


def _dynamodb_endpoint(url: str | None) -> dict[str, str] | None:
    """`Target.endpoints` naming DynamoDB's own endpoint, when it has one."""
    return {"dynamodb": url} if url else None


def _require_aws_credentials() -> None:
    if boto3.Session().get_credentials() is None:
        raise ResourceError(NO_TARGET)


def _running_local_stack(args: argparse.Namespace) -> LocalStack | None:
    """The local stack `up` runs, unless an endpoint or a deployed stack is named."""
    if args.endpoint_url or args.stack_name:
        return None
    return read_local_stack()


def resolve_target(args: argparse.Namespace) -> Target:
    """The bucket, table and endpoint the arguments name."""
    # the local stack's modules (moto, PyYAML) only when a command runs: `--help` works without
    from pipeline.local.stack import FAKE_CREDENTIALS
    from pipeline.local.template import DEFAULT_REGION, TEMPLATE_PATH, read_stack_config

    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    region = region or DEFAULT_REGION
    path = args.checkpoint_path
    local = _running_local_stack(args)
    if args.stack_name:
        outputs = _stack_outputs(region, args.endpoint_url, args.stack_name)
        return Target(
            bucket=outputs["BucketName"],
            table=outputs["TableName"],
            region=region,
            endpoint_url=args.endpoint_url,
            endpoints=_dynamodb_endpoint(args.dynamodb_endpoint_url),
            checkpoint_path=path
            or outputs.get("ReconcileCheckpointPath")
            or f"/file-tracker/{args.stack_name}/reconcile/",
        )
    if args.bucket or args.table:
        if local is not None and _has_bucket(local, args.bucket or local.bucket):
            bucket, table = args.bucket or local.bucket, args.table or local.table
            return local_target(local, bucket, table, path or DEFAULT_PATH)
        if not (args.bucket and args.table):
            if local is not None:
                raise ResourceError(
                    f"the running local stack has no bucket {args.bucket!r}; for a bucket on "
                    "AWS, pass --table too"
                )
            if not args.endpoint_url:
                _require_aws_credentials()
            raise ResourceError("--bucket and --table go together")
        if not args.endpoint_url:
            _require_aws_credentials()
        return Target(
            args.bucket,
            args.table,
            region,
            args.endpoint_url,
            path or DEFAULT_PATH,
            endpoints=_dynamodb_endpoint(args.dynamodb_endpoint_url),
        )
    if local is not None:
        return local_target(local, local.bucket, local.table, path or DEFAULT_PATH)
    config = read_stack_config((args.template or TEMPLATE_PATH), region=region)
    if args.endpoint_url:
        return Target(
            config.bucket,
            config.table,
            region,
            args.endpoint_url,
            path or DEFAULT_PATH,
            endpoints=_dynamodb_endpoint(args.dynamodb_endpoint_url),
        )
    return Target(
        config.bucket,
        config.table,
        region,
        LOCAL_ENDPOINT.format(port=args.moto_port),
        path or DEFAULT_PATH,
        endpoints=_dynamodb_endpoint(
            args.dynamodb_endpoint_url or LOCAL_ENDPOINT.format(port=args.dynamodb_port)
        ),
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


def _human(summary: Summary, target: Target, prefix: str, *, listed: bool = False) -> str:
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
    if summary.totals is not None:
        t = summary.totals
        lines.append(
            f"  folder totals: {t.folders:,} folders compared, drift {t.drift:,}, "
            f"{verb} {t.drift if summary.dry_run else t.repaired:,}, skipped {t.skipped:,}"
        )
        for folder, values in t.drifted.items():
            lines.append(
                f"  totals drift: {folder[:120]!r}: counter {values['counter_files']:,} files "
                f"{values['counter_bytes']:,} B, counted {values['files']:,} files "
                f"{values['bytes']:,} B"
            )
    for key, why in summary.failures.items():
        lines.append(f"  failed: {key[:120]!r}: {why}")
    if listed:
        for kind, named in summary.drifted_keys().items():
            lines += [f"  {kind}: {key!r}" for key in named["keys"]]
            if named["more"]:
                lines.append(f"  {kind}: ... and {named['more']:,} more")
    if not summary.complete:
        lines.append("  stopped before the end: run the same command again to resume")
    return "\n".join(lines)


def _totals_timing(settle_flag: float | None) -> tuple[float, float, float]:
    """`run`'s totals timing (settle, margin, stamp margin): `--totals-settle` if given, the
    rest from the environment (`TotalsTiming`: RECONCILE_TOTALS_SETTLE_S and its margins)."""
    timing = TotalsTiming.from_env()
    settle = timing.settle_s if settle_flag is None else max(0.0, settle_flag)
    return settle, timing.margin_s, timing.stamp_margin_s


def main(args: argparse.Namespace) -> int:
    """Run the `reconcile` subcommand; returns the exit status."""
    if not 1 <= args.concurrency <= 128:
        print("error: --concurrency must be in [1, 128]", file=sys.stderr)
        return EXIT_ERROR
    try:
        settle, margin, stamp_margin = _totals_timing(args.totals_settle)
        target = resolve_target(args)
    except (ResourceError, SettingsError) as error:
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
                totals=not args.no_totals,
                totals_settle_s=settle,
                totals_margin_s=margin,
                totals_stamp_margin_s=stamp_margin,
            )
    except (CheckpointError, InventoryError, StoreError, ValueError) as error:
        progress.close()
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except NoCredentialsError:
        progress.close()
        print(f"error: {NO_TARGET}", file=sys.stderr)
        return EXIT_ERROR
    except (BotoCoreError, ClientError) as error:  # unreachable endpoint, denied, no bucket
        progress.close()
        print(f"error: {str(error).splitlines()[0]}", file=sys.stderr)
        return EXIT_ERROR
    progress.close()
    if args.json:
        print(json.dumps(summary.report(), ensure_ascii=False))
    else:
        print(_human(summary, target, args.prefix, listed=args.list))
    return _status(summary)


def _status(summary: Summary) -> int:
    if not summary.complete:
        return EXIT_STOPPED
    if summary.failed:
        return EXIT_FAILED
    totals_drift = summary.totals.drift if summary.totals is not None else 0
    return EXIT_DRIFT if summary.dry_run and (summary.drift or totals_drift) else EXIT_OK


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
    sub.add_argument(
        "--totals-settle",
        type=float,
        metavar="SECONDS",
        help="step 3: the ingest function's timeout: a folder counter's repair waits that "
        "long (plus 5 s) after the folder's walk (default: $RECONCILE_TOTALS_SETTLE_S, else "
        f"{DEFAULT_TOTALS_SETTLE_S})",
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


def _adopt_target(args: argparse.Namespace) -> tuple[Target, str | None]:
    """Where to adopt: the target, and the queue to route to (None on a deployed stack)."""
    from pipeline.local.stack import FAKE_CREDENTIALS
    from pipeline.local.template import DEFAULT_REGION, TEMPLATE_PATH, read_stack_config

    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    region = region or DEFAULT_REGION
    if args.stack_name:
        target = resolve_target(args)
        if target.bucket != args.bucket:
            raise ResourceError(
                f"stack {args.stack_name!r} tracks {target.bucket!r}: deploy it with "
                f"ExistingBucketName={args.bucket} first"
            )
        return target, None
    local = _running_local_stack(args)
    if local is not None:  # the stack `up` runs
        target = local_target(local, args.bucket, args.table or local.table, DEFAULT_PATH)
        return target, args.queue_name or local.queue_name
    config = read_stack_config((args.template or TEMPLATE_PATH), region=region)
    local_moto = args.endpoint_url is None
    target = Target(
        bucket=args.bucket,
        table=args.table or config.table,
        region=region,
        endpoint_url=args.endpoint_url or LOCAL_ENDPOINT.format(port=args.moto_port),
        endpoints=_dynamodb_endpoint(
            args.dynamodb_endpoint_url
            or (LOCAL_ENDPOINT.format(port=args.dynamodb_port) if local_moto else None)
        ),
        credentials={
            "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        }
        if local_moto
        else None,
    )
    return target, args.queue_name or config.queue_name


def adopt_main(args: argparse.Namespace) -> int:
    """Run the `adopt` subcommand; returns the exit status (as `reconcile`; with --dry-run,
    3 when adopting would change something)."""
    args.prefix, args.checkpoint_path = "", None
    try:
        settle, margin, stamp_margin = _totals_timing(args.totals_settle)
        target, queue = _adopt_target(args)
    except (ResourceError, SettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    from pipeline.wiring.reconcile import make_clients

    clients = make_clients(target)
    factory: Any = boto3.client
    would = "would be " if args.dry_run else ""
    changes = 0
    if enable_eventbridge(clients.s3, target.bucket, dry_run=args.dry_run):
        changes += 1
        print(
            f"EventBridge notifications {would}turned on for s3://{target.bucket}", file=sys.stderr
        )
    else:
        print(f"EventBridge notifications already on for s3://{target.bucket}", file=sys.stderr)
    if queue is not None:
        events, sqs = factory("events", **target.client_kwargs("events")), None
        if args.dry_run:
            if not rule_exists(events, target.bucket):
                changes += 1
                print(
                    f"EventBridge rule {rule_name(target.bucket)} -> queue {queue} would be "
                    "created",
                    file=sys.stderr,
                )
        else:
            sqs = factory("sqs", **target.client_kwargs("sqs"))
            rule = route_to_queue(events, sqs, target.bucket, queue)
            print(f"EventBridge rule {rule} -> queue {queue}", file=sys.stderr)
    if args.no_reconcile:
        return EXIT_DRIFT if args.dry_run and changes else EXIT_OK
    progress = Progress(sys.stderr)
    with _Stop() as stop:
        summary = run(
            target,
            clients=clients,
            dry_run=args.dry_run,
            should_stop=stop.event.is_set,
            progress=progress,
            totals_settle_s=settle,
            totals_margin_s=margin,
            totals_stamp_margin_s=stamp_margin,
        )
    progress.close()
    print(json.dumps(summary.report()) if args.json else _human(summary, target, ""))
    status = _status(summary)
    return EXIT_DRIFT if status == EXIT_OK and args.dry_run and changes else status
