"""`python -m pipeline reconcile`: compare the bucket with the table and repair the drift.

Target, the first level that names a place (docs/local-stack.md, "Which target"):
  1. flags        --stack-name NAME (bucket and table from its outputs), --endpoint-url,
                  --dynamodb-endpoint-url
  2. environment  AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_DYNAMODB (and other _<SERVICE>)
  3. a running `up` (its state file), when it holds --bucket (if given)
  4. template.yaml's names on moto --moto-port and DynamoDB Local --dynamodb-port
--bucket and --table override the names at every level; both, with no endpoint and no
running `up` holding the bucket, name a bucket and table on AWS. The target is printed
first, on stderr.

Exit status: 0 when the table matched or was repaired, 1 when some repairs failed, 2 on
errors (bad arguments, unreachable services), 3 when --dry-run found drift (0: none), 130
when stopped (Ctrl-C, SIGTERM): the checkpoint is saved, and the same command resumes.

--json names the drifted keys (the first 100 per kind, with a count of the others);
--list prints them in the human report too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from pipeline.adapters.s3_inventory import InventoryError
from pipeline.adapters.ssm_checkpoints import DEFAULT_PATH, CheckpointError
from pipeline.core.settings import SettingsError, TotalsTiming
from pipeline.local.commands.stop import Stop
from pipeline.local.provision import ResourceError
from pipeline.local.target import (
    DEFAULT_DYNAMODB_PORT,
    DEFAULT_MOTO_PORT,
    ENV_SERVICES,
    Flags,
    Resolved,
    Resolver,
)
from pipeline.read.ports import StoreError
from pipeline.reconcile.ports import Summary
from pipeline.wiring.reconcile import DEFAULT_TOTALS_SETTLE_S, Target, run

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
        help="the totals' lag behind the rows: a folder counter's repair waits that long "
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


NO_TARGET = (
    "no local stack is running (start one with `s3-file-tracker up`) and no AWS credentials "
    "were found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or name a stack "
    "with --stack-name)"
)


def _require_aws_credentials() -> None:
    if boto3.Session().get_credentials() is None:
        raise ResourceError(NO_TARGET)


def reconcile_target(resolved: Resolved, checkpoint_path: str | None) -> Target:
    """The `reconcile_app.Target` of a resolved target."""
    if not (resolved.bucket and resolved.table):
        raise ResourceError("--bucket and --table go together")
    endpoints = {s: u for s in ENV_SERVICES if (u := resolved.endpoint(s))}
    path = checkpoint_path or resolved.outputs.get("ReconcileCheckpointPath")
    if path is None and resolved.outputs:
        path = f"/file-tracker/{resolved.source.removeprefix('stack ')}/reconcile/"
    return Target(
        bucket=resolved.bucket,
        table=resolved.table,
        region=resolved.region,
        endpoint_url=resolved.endpoint("s3"),
        checkpoint_path=path or DEFAULT_PATH,
        credentials=resolved.credentials,
        endpoints=endpoints or None,
    )


def resolve(args: argparse.Namespace) -> Resolved:
    """The resolved target of `reconcile` (see `pipeline.local.target` for the precedence)."""
    flags = Flags.from_args(args)
    resolved = Resolver(flags).resolve()
    if flags.stack_name:
        missing = {"BucketName", "TableName"} - resolved.outputs.keys()
        if missing:
            raise ResourceError(f"stack {flags.stack_name!r} lacks outputs {sorted(missing)}")
        return resolved
    if resolved.local is None and bool(flags.bucket) != bool(flags.table):
        if not flags.endpoint_url:
            _require_aws_credentials()
        raise ResourceError("--bucket and --table go together")
    if not resolved.endpoints:
        _require_aws_credentials()
    return resolved


def resolve_target(args: argparse.Namespace) -> Target:
    """The bucket, table and endpoints the arguments name."""
    return reconcile_target(resolve(args), args.checkpoint_path)


class Progress:
    """On a terminal: one line, redrawn at most 5 times a second. Elsewhere (a pipe, a log):
    a line every `interval_s`, and one at once when the run starts waiting for the folder
    totals to settle (that wait is the totals' lag behind the rows: a minute by default)."""

    def __init__(
        self,
        stream: TextIO,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        command: str = "reconcile",
    ) -> None:
        self._stream = stream
        self.enabled = stream.isatty()
        self._interval_s, self._clock, self._command = interval_s, clock, command
        self._last = 0.0 if self.enabled else clock()
        self._drawn = False
        self._settling = False

    def __call__(self, summary: Summary) -> None:
        now = self._clock()
        settling = summary.settle_until is not None and summary.settle_pending > 0
        started_settling = settling and not self._settling
        self._settling = settling
        every = 0.2 if self.enabled else self._interval_s
        if now - self._last < every and not summary.complete and not started_settling:
            return
        self._last = now
        line = self._settle_line(summary) if settling else self._walk_line(summary)
        if self.enabled:
            width = 160
            self._stream.write("\r" + line[:width].ljust(width))
            self._drawn = True
        else:
            self._stream.write(f"{self._command}: {line.strip()}\n")
        self._stream.flush()

    @staticmethod
    def _walk_line(summary: Summary) -> str:
        compared = max(summary.listed, summary.rows)
        rate = compared / summary.seconds if summary.seconds > 0 else 0.0
        at = (summary.last_key or "")[:40]
        return (
            f"  {summary.listed:,} listed · {summary.rows:,} rows · drift {summary.drift:,} "
            f"(missing {summary.missing:,}, extra {summary.extra:,}, stale {summary.stale:,}) · "
            f"repaired {summary.repaired:,} · {rate:,.0f} keys/s · at {at!r}"
        )

    @staticmethod
    def _settle_line(summary: Summary) -> str:
        left = max(0.0, (summary.settle_until or 0.0) - time.time())
        return (
            f"  waiting {left:,.0f} s for in-flight ingest before repairing "
            f"{summary.settle_pending:,} folder counter(s) (--totals-settle; Ctrl-C leaves "
            "them to the next run)"
        )

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()


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
        resolved = resolve(args)
        target = reconcile_target(resolved, args.checkpoint_path)
    except (ResourceError, SettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    print(resolved.describe("reconcile"), file=sys.stderr, flush=True)
    progress = Progress(sys.stderr)
    try:
        with Stop() as stop:
            summary = run(
                target,
                prefix=args.prefix,
                dry_run=args.dry_run,
                restart=args.restart,
                inventory=args.inventory,
                concurrency=args.concurrency,
                should_stop=stop.is_set,
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
