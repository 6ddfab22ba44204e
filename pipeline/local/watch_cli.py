"""`s3-file-tracker watch`: follow the change feed (GET /changes) like `tail -f`.

Targets (the first that applies; the target is printed first, on stderr):
  --stack-name NAME   a deployed stack: ApiUrl and BucketName from its outputs; requests are
                      signed with your AWS credentials (the SDK's usual chain)
  --api-url URL       any API: signed with your AWS credentials (testing/testing when the
                      URL is on 127.0.0.1 or localhost: the local stack's)
  (a running `up`)    its API URL, bucket and credentials, from its state file (whatever
                      --api-port and --name-suffix it was started with)
  (nothing)           the local stack's default, http://127.0.0.1:3000, template.yaml's bucket

Each change is printed as it arrives: one JSON object per line when stdout is a pipe or a
file (`--output json`), an aligned table on a terminal (`--output table`). Start from `--since`
(an ISO 8601 time), from a saved `--cursor`, or from now. On exit (Ctrl-C, SIGTERM) the last
cursor is printed on stderr; pass it as `--cursor` to continue exactly where this run
stopped (a cursor the API refused is not printed). Exit status: 0 after Ctrl-C/SIGTERM, 1
when the cursor expired (410), 2 on other errors (bad arguments, a 4xx answer). 5xx answers
and network errors are retried.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO
from urllib.parse import urlencode, urlsplit

from botocore.credentials import Credentials

from pipeline.feed.since import PROFILE, parse_iso_time
from pipeline.local.api_client import ApiResponse, Signer, environment_signer, get, region_for
from pipeline.local.commands.stop import Stop
from pipeline.local.provision import ResourceError
from pipeline.local.target import Flags, Resolver

LOCAL_API_URL = "http://127.0.0.1:3000"
LOCAL_CREDENTIALS = Credentials("testing", "testing")
"""What the local stack's gateway accepts (`s3-file-tracker up` prints them)."""
EXIT_STOPPED, EXIT_EXPIRED, EXIT_ERROR = 0, 1, 2
PROFILE_HELP = f"not an ISO 8601 time: {PROFILE}, e.g. 2026-12-04T10:00:00Z"
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
    start.add_argument(
        "--since",
        help="start with changes at or after this time: YYYY-MM-DD[THH:MM[:SS[.fff]]] and "
        "Z or ±HH:MM (no zone: UTC), e.g. 2026-12-04T10:00:00Z",
    )
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
    source: str = "flags"

    def describe(self) -> str:
        """One line: the API and bucket followed, and where they came from."""
        bucket = f"bucket {self.bucket}, " if self.bucket else ""
        return f"watch: {bucket}API {self.api_url} (target from {self.source})"


def _is_local(url: str) -> bool:
    return (urlsplit(url).hostname or "") in {"127.0.0.1", "localhost", "::1"}


def resolve_target(args: argparse.Namespace, **overrides: Any) -> Target:
    """The API URL, signer and default bucket the arguments name (`pipeline.local.target`:
    flags, then a running `up`'s state file, then the local stack's default port)."""
    try:
        resolved = Resolver(Flags.from_args(args), **overrides).resolve_api()
    except ResourceError as error:
        raise WatchError(str(error), 0) from None
    url = str(resolved.api_url)
    if resolved.credentials:
        keys = resolved.credentials
        credentials = Credentials(keys["aws_access_key_id"], keys["aws_secret_access_key"])
        signer: Signer | None = Signer(credentials, resolved.region)
    elif _is_local(url):
        signer = Signer(LOCAL_CREDENTIALS, args.region or region_for(url))
    else:
        signer = environment_signer(url)
        if signer is not None and args.region:
            signer = Signer(signer.credentials, args.region)
    return Target(url, signer, resolved.bucket, resolved.source)


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
    refused: bool = False
    """The API refused the last request (a 4xx: e.g. a forged or expired cursor)."""

    @property
    def resume_cursor(self) -> str | None:
        """The cursor to continue from: the last the API handed out, or the one given if the
        API never refused it; None when the API refused it (it resumes nothing)."""
        return None if self.refused else self.cursor

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
            self.refused = True
            raise WatchError(str(message or f"HTTP {response.status}"), response.status)
        self.cursor = str(body["next_cursor"])
        self.refused = False
        return list(body.get("items") or [])


class RetryableError(Exception):
    """The API or the network failed for now."""


class Waiter(Protocol):
    """What `pages` waits on: a `threading.Event`, or the CLI's signal-safe `Stop`."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


def pages(feed: Feed, stop: Waiter, interval_s: float) -> Iterator[list[dict[str, Any]]]:
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


def follow(feed: Feed, stop: Waiter, interval_s: float, emit: Callable[[Any], None]) -> int:
    """Print pages until `stop`; returns the exit status."""
    try:
        for items in pages(feed, stop, interval_s):
            for item in items:
                emit(item)
    except WatchError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_EXPIRED if error.status == 410 else EXIT_ERROR
    except BrokenPipeError:  # `watch | head`: the reader left
        pass
    return EXIT_STOPPED


def main(args: argparse.Namespace) -> int:
    """Follow the feed until Ctrl-C; the last cursor goes to stderr."""
    if not 1 <= args.limit <= 1000:
        print("error: --limit must be between 1 and 1000", file=sys.stderr)
        return EXIT_ERROR
    if args.since is not None:
        try:
            parse_iso_time(args.since)
        except ValueError:
            print(f"error: --since {args.since!r}: {PROFILE_HELP}", file=sys.stderr)
            return EXIT_ERROR
    try:
        target = resolve_target(args)
    except WatchError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    print(target.describe(), file=sys.stderr, flush=True)
    feed = Feed(
        target,
        args.bucket or target.bucket,
        args.prefix,
        args.limit,
        cursor=args.cursor,
        since=args.since,
    )
    table = args.output == "table" or (args.output is None and sys.stdout.isatty())
    with Stop() as stop:
        status = follow(feed, stop, args.interval, Printer(sys.stdout, table))
    if feed.resume_cursor:
        print(f"cursor: {feed.resume_cursor}", file=sys.stderr)
    return status
