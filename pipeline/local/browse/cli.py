"""`s3-file-tracker browse [--stack-name S | --api-url U] [--port N]`, and the browse server
`up` starts beside the local stack.

Targets (the first that applies):
  --stack-name NAME   a deployed stack: its ApiUrl output; requests signed with your AWS
                      credentials (botocore's chain, as the AWS CLI finds them)
  --api-url URL       any API: signed with your AWS credentials (the local stack's when the
                      URL is the running `up`'s)
  (nothing)           the running local stack of `s3-file-tracker up` (its state file)

The server binds 127.0.0.1 only and prints one URL carrying a random token; open it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

from botocore.credentials import Credentials

from pipeline.local.api_client import Signer, region_for
from pipeline.local.browse.server import BrowseServer
from pipeline.local.browse.upstream import SignerSource, Upstream, chain_signer

if TYPE_CHECKING:
    from pipeline.local.stack import Stack

EXIT_OK, EXIT_ERROR = 0, 2


class TargetError(Exception):
    """The arguments name no API this command can reach; the message says what to do."""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the `browse` subcommand to the CLI's subparsers."""
    sub: argparse.ArgumentParser = commands.add_parser(
        "browse",
        help="a local web page to browse the tracked files (folders, totals, live changes)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = sub.add_mutually_exclusive_group()
    target.add_argument("--stack-name", help="a deployed stack: the API from its outputs")
    target.add_argument("--api-url", help="the API's base URL")
    sub.add_argument("--region", help="AWS region (default: $AWS_REGION, or the URL's)")
    sub.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free)")
    return sub


def _fixed(credentials: Credentials, region: str) -> SignerSource:
    signer = Signer(credentials, region)
    return lambda: signer


def resolve(args: argparse.Namespace) -> Upstream:
    """The API and signer the arguments name."""
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if args.stack_name:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            stacks = boto3.client("cloudformation", region_name=region).describe_stacks(
                StackName=args.stack_name
            )["Stacks"]
        except (BotoCoreError, ClientError) as error:
            raise TargetError(f"cannot describe stack {args.stack_name!r}: {error}") from None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs") or []}
        if "ApiUrl" not in outputs:
            raise TargetError(f"stack {args.stack_name!r} has no ApiUrl output")
        url = outputs["ApiUrl"]
        return Upstream(url, chain_signer(region or region_for(url)))
    from pipeline.local.state import read_local_stack

    local = read_local_stack()
    if args.api_url:
        url = args.api_url
        if local is not None and url.rstrip("/") == local.api_url.rstrip("/"):
            return _local_upstream(local.api_url, local.region, local.credentials)
        return Upstream(url, chain_signer(region or region_for(url)))
    if local is None:
        raise TargetError(
            "no local stack is running: start one with `make up` (it opens browse itself), "
            "or pass --api-url URL or --stack-name NAME"
        )
    return _local_upstream(local.api_url, local.region, local.credentials)


def _local_upstream(api_url: str, region: str, credentials: dict[str, str]) -> Upstream:
    key = credentials.get("aws_access_key_id", "testing")
    secret = credentials.get("aws_secret_access_key", "testing")
    return Upstream(api_url, _fixed(Credentials(key, secret), region))


def for_stack(stack: Stack, port: int = 0) -> BrowseServer:
    """A browse server over `stack`'s API gateway, signing as the stack's gateway expects."""
    key, secret = stack.api_credentials
    upstream = Upstream(
        stack.api_url,
        _fixed(Credentials(key, secret), stack.region),
        auth=stack.api_auth_enabled,
    )
    return BrowseServer(upstream, port, label="local stack")


@contextlib.contextmanager
def serving(stack: Stack, port: int = 0) -> Iterator[BrowseServer]:
    """`up`'s browse server for the life of the block."""
    with for_stack(stack, port) as server:
        yield server


def banner_line(server: BrowseServer) -> str:
    """The line `up` and `browse` print: the URL to open (it carries the run's token)."""
    return f"  Browse       {server.url}"


def main(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM."""
    try:
        upstream = resolve(args)
        server = BrowseServer(upstream, args.port)
    except TargetError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as error:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {error}", file=sys.stderr)
        return EXIT_ERROR
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with server:
            print(f"Browsing {upstream.api_url}: open this URL (Ctrl-C to stop)", flush=True)
            print(banner_line(server).strip(), flush=True)
            while not stop.wait(0.2):
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print("Stopped.", file=sys.stderr, flush=True)
    return EXIT_OK
