"""`migrate-table`: copy a table keyed by filename into a (bucket, key) table."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pipeline.local.target import Flags, Resolver

EXIT_OK, EXIT_LEFT_BEHIND = 0, 1


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the `migrate-table` subcommand to the CLI's subparsers."""
    migrate: argparse.ArgumentParser = commands.add_parser(
        "migrate-table",
        help="copy a table keyed by filename into a (bucket, key) table (resumable, idempotent)",
        description="Copy every row of the old table (partition key `filename`) into the new "
        "one (partition key `pk` = bucket/key, index partition `name_shard`), with a "
        "conditional PutItem per row that never replaces a newer row ingest wrote meanwhile. "
        "Target: --dynamodb-endpoint-url/--endpoint-url, else AWS_ENDPOINT_URL_DYNAMODB/"
        "AWS_ENDPOINT_URL, else a running `up`, else AWS. Prints a resume position after each "
        "page. Exit status 1 when rows were left behind: rows with no `bucket` attribute "
        "need --bucket.",
    )
    migrate.add_argument("--source", required=True, help="the old table (keyed by filename)")
    migrate.add_argument("--target", required=True, help="the new table (keyed by pk)")
    migrate.add_argument("--bucket", help="the bucket of old rows without a `bucket` attribute")
    migrate.add_argument("--region", help="AWS region (default: $AWS_REGION)")
    migrate.add_argument("--endpoint-url", help="an AWS-compatible endpoint")
    migrate.add_argument("--dynamodb-endpoint-url", help="DynamoDB's endpoint")
    migrate.add_argument("--start-after", help="resume after this Scan position")
    migrate.add_argument("--page-size", type=int, default=500, help="rows per Scan call")
    migrate.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    migrate.set_defaults(run=cmd_migrate_table)
    return migrate


def cmd_migrate_table(args: argparse.Namespace) -> int:
    """`migrate-table`: copy the old table's rows into the new one, printing where to resume."""
    import boto3

    from pipeline.adapters.dynamo.migrate import MigrationReport, migrate_table

    def counts(report: MigrationReport) -> str:
        return f"{report.copied} copied, {report.kept} kept (newer), {report.skipped} skipped"

    def progress(report: MigrationReport) -> None:
        position = "end of table" if report.complete else f"--start-after {report.resume_after!r}"
        print(f"page {report.pages}: {counts(report)}; {position}")

    flags = Flags(
        region=args.region,
        endpoint_url=args.endpoint_url,
        dynamodb_endpoint_url=args.dynamodb_endpoint_url,
        table=args.target,
        bucket=args.bucket,
    )
    resolved = Resolver(flags, names_on_aws=True, holds_bucket=lambda *_: True).resolve()
    where = resolved.endpoint("dynamodb") or "AWS"
    print(
        f"migrate-table: {args.source} -> {args.target} at DynamoDB {where}, region "
        f"{resolved.region} (target from {resolved.source})",
        file=sys.stderr,
        flush=True,
    )
    factory: Any = boto3.client
    client = factory("dynamodb", **resolved.client_kwargs("dynamodb"))
    report = migrate_table(
        client,
        args.source,
        args.target,
        default_bucket=args.bucket,
        start_after=args.start_after,
        page_size=args.page_size,
        on_page=progress,
    )
    print(f"done: {report.scanned} rows scanned, {counts(report)}")
    if report.no_bucket:
        hint = "pass --bucket NAME" if args.bucket is None else "--bucket is not a bucket name"
        print(
            f"error: {report.no_bucket} row(s) left behind: no usable `bucket` attribute "
            f"({hint}: the bucket those rows came from), then run again",
            file=sys.stderr,
        )
        return EXIT_LEFT_BEHIND
    return EXIT_OK
