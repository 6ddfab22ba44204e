"""`s3-file-tracker watch`: follow the change feed (GET /changes) like `tail -f`.

Targets (the first that applies):
  --stack-name NAME   a deployed stack: ApiUrl and BucketName from its outputs; requests are
                      signed with your AWS credentials (the SDK's usual chain)
  --api-url URL       any API: signed with your AWS credentials (testing/testing when the
                      URL is on 127.0.0.1 or localhost: the local stack's)
  (nothing)           the local stack of `s3-file-tracker up` (http://127.0.0.1:3000)

Each change is printed as it arrives: one JSON object per line when stdout is a pipe or a
file (`--output json`), an aligned table on a terminal (`--output table`). Start from `--since`
(an ISO 8601 time), from a saved `--cursor`, or from now. On exit (Ctrl-C, SIGTERM) the last
cursor is printed on stderr; pass it as `--cursor` to continue exactly where this run
stopped. Exit status: 0 after Ctrl-C/SIGTERM, 1 when the cursor expired (410), 2 on other
errors (bad arguments, a 4xx answer). 5xx answers and network errors are retried.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TextIO
from urllib.parse import urlencode, urlsplit

from botocore.credentials import Credentials

from pipeline.local.api_client import ApiResponse, Signer, environment_signer, get, region_for

LOCAL_API_URL = "http://127.0.0.1:3000"
LOCAL_CREDENTIALS = Credentials("testing", "testing")
"""What the local stack's gateway accepts (`s3-file-tracker up` prints them)."""
EXIT_STOPPED, EXIT_EXPIRED, EXIT_ERROR = 0, 1, 2
MAX_BACKOFF_S = 30.0


class WatchError(Exception):
    """The API refused the request for good; the message says why."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the `watch` subcommand to the CLI's subparsers."""
    sub: argparse.ArgumentParser = commands.add_parser(
        "watch",
        help="follow the change feed like tail -f (creates, overwrites, deletes)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.add_argument("--bucket", help="the bucket to follow (default: the stack's own)")
    sub.add_argument("--prefix", help="only keys starting with this")
    start = sub.add_mutually_exclusive_group()
    start.add_argument("--since", help="start with changes at or after this ISO 8601 time")
    start.add_argument("--cursor", help="continue after a cursor a previous run printed")
    sub.add_argument("--limit", type=int, default=1000, help="changes per request (1-1000)")
    sub.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="seconds between requests once caught up (default 1)",
    )
    sub.add_argument(
        "--output", choices=("json", "table"), help="default: table on a terminal, else json"
    )
    target = sub.add_argument_group("target")
    target.add_argument("--api-url", help=f"the API's base URL (default {LOCAL_API_URL})")
    target.add_argument("--stack-name", help="a deployed stack: API URL and bucket from outputs")
    target.add_argument("--region", help="AWS region (default: $AWS_REGION, or the URL's)")
    return sub


@dataclass
class Target:
    """Where to read the feed, as whom."""

    api_url: str
    signer: Signer | None
    bucket: str | None = None


def _is_local(url: str) -> bool:
    return (urlsplit(url).hostname or "") in {"127.0.0.1", "localhost", "::1"}


def resolve_target(args: argparse.Namespace) -> Target:
    """The API URL, signer and default bucket the arguments name."""
    if args.stack_name:
        import boto3

        region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        stacks = boto3.client("cloudformation", region_name=region).describe_stacks(
            StackName=args.stack_name
        )["Stacks"]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs") or []}
        if "ApiUrl" not in outputs:
            raise WatchError(f"stack {args.stack_name!r} has no ApiUrl output", 0)
        url = outputs["ApiUrl"]
        return Target(url, environment_signer(url), outputs.get("BucketName"))
    url = args.api_url or LOCAL_API_URL
    if _is_local(url):
        region = args.region or region_for(url)
        return Target(url, Signer(LOCAL_CREDENTIALS, region), _local_bucket(args.region))
    signer = environment_signer(url)
    if signer is not None and args.region:
        signer = Signer(signer.credentials, args.region)
    return Target(url, signer)


def _local_bucket(region: str | None) -> str | None:
    """The local stack's bucket (template.yaml's BucketName), when the template is at hand."""
    try:
        from pipeline.local.template import DEFAULT_REGION, TEMPLATE_PATH, read_stack_config

        if not TEMPLATE_PATH.exists():
            return None
        return read_stack_config(TEMPLATE_PATH, region=region or DEFAULT_REGION).bucket
    except Exception:  # no PyYAML (no `local` extra): the API's default bucket applies
        return None


@dataclass
class Feed:
    """Pages of GET /changes for one bucket and prefix, starting from `cursor` or `since`."""

    target: Target
    bucket: str | None
    prefix: str | None
    limit: int
    cursor: str | None = None
    since: str | None = None
    fetch: Callable[[str, Signer | None], ApiResponse] = field(
        default=lambda url, signer: get(url, signer=signer, sign=signer is not None)
    )

    def url(self) -> str:
        query: dict[str, str] = {"limit": str(self.limit)}
        if self.bucket:
            query["bucket"] = self.bucket
        if self.prefix:
            query["prefix"] = self.prefix
        if self.cursor:
            query["cursor"] = self.cursor
        elif self.since:
            query["since"] = self.since
        return f"{self.target.api_url.rstrip('/')}/changes?{urlencode(query)}"

    def next_page(self) -> list[dict[str, Any]]:
        """One page; the cursor moves past it. Raises `WatchError` for a 4xx, `OSError` /
        `RetryableError` for what is worth retrying."""
        response = self.fetch(self.url(), self.target.signer)
        if response.status >= 500:
            raise RetryableError(f"HTTP {response.status}")
        try:
            body = response.json()
        except ValueError:
            raise RetryableError(f"HTTP {response.status}: not JSON") from None
        if response.status != 200:
            message = body.get("message") if isinstance(body, dict) else None
            raise WatchError(str(message or f"HTTP {response.status}"), response.status)
        self.cursor = str(body["next_cursor"])
        return list(body.get("items") or [])


class RetryableError(Exception):
    """The API or the network failed for now."""


def pages(feed: Feed, stop: threading.Event, interval_s: float) -> Iterator[list[dict[str, Any]]]:
    """Pages until `stop` is set: at once while pages are full, every `interval_s` when
    caught up, with capped exponential backoff after errors worth retrying."""
    failures = 0
    while not stop.is_set():
        try:
            items = feed.next_page()
        except (RetryableError, OSError) as error:
            failures += 1
            delay = min(MAX_BACKOFF_S, interval_s * 2**failures)
            print(f"watch: {error}; retrying in {delay:.0f} s", file=sys.stderr)
            stop.wait(delay)
            continue
        failures = 0
        yield items
        if len(items) < feed.limit:
            stop.wait(interval_s)


class Printer:
    """JSON lines, or a table whose header is printed once."""

    COLUMNS = (("kind", 11), ("size", 12), ("event_time", 24), ("key", 0))

    def __init__(self, stream: TextIO, table: bool) -> None:
        self.stream, self.table, self._header = stream, table, False

    def __call__(self, item: dict[str, Any]) -> None:
        if not self.table:
            self.stream.write(json.dumps(item, ensure_ascii=False) + "\n")
        else:
            if not self._header:
                self.stream.write(self._row({name: name.upper() for name, _ in self.COLUMNS}))
                self._header = True
            self.stream.write(self._row(item))
        self.stream.flush()

    def _row(self, values: dict[str, Any]) -> str:
        cells = [str(values.get(name, "")).ljust(width) for name, width in self.COLUMNS]
        return " ".join(cells).rstrip() + "\n"


class _Stop:
    """SIGINT/SIGTERM set `event`: the loop ends after the request in flight."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def main(args: argparse.Namespace) -> int:
    """Follow the feed until Ctrl-C; the last cursor goes to stderr."""
    if not 1 <= args.limit <= 1000:
        print("error: --limit must be between 1 and 1000", file=sys.stderr)
        return EXIT_ERROR
    try:
        target = resolve_target(args)
    except WatchError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    feed = Feed(
        target,
        args.bucket or target.bucket,
        args.prefix,
        args.limit,
        cursor=args.cursor,
        since=args.since,
    )
    table = args.output == "table" or (args.output is None and sys.stdout.isatty())
    emit = Printer(sys.stdout, table)
    status = EXIT_STOPPED
    with _Stop() as stop:
        try:
            for items in pages(feed, stop.event, args.interval):
                for item in items:
                    emit(item)
        except WatchError as error:
            print(f"error: {error}", file=sys.stderr)
            status = EXIT_EXPIRED if error.status == 410 else EXIT_ERROR
        except BrokenPipeError:  # `watch | head`: the reader left
            status = EXIT_STOPPED
    if feed.cursor:
        print(f"cursor: {feed.cursor}", file=sys.stderr)
    return status
