"""`s3-file-tracker up|demo|reconcile|adopt|migrate-table|watch|browse` (or `python -m pipeline`).

Runs the pipeline locally and its maintenance commands; see docs/local-stack.md and
docs/reconcile.md. Heavy imports (boto3, moto, the handlers) wait until a command runs, so
`--help`, `--version` and a taken port answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from pipeline import __version__
from pipeline.local import reconcile_cli, watch_cli
from pipeline.local.browse import cli as browse_cli
from pipeline.local.dynamodb_local import DynamoDBLocalUnavailable, require_java
from pipeline.local.ports import PortInUseError, ensure_free

if TYPE_CHECKING:
    from pipeline.local.provision import Resources
    from pipeline.local.stack import Stack
    from pipeline.local.template import StackConfig

LOCAL_EXTRA = "s3-file-tracker[local]"
"""What to install for the local stack when running from a wheel (moto, PyYAML)."""

DEFAULT_MOTO_PORT = 4000
DEFAULT_DYNAMODB_PORT = 4001
UP_LONG_POLL_S = 10
"""`up`'s ReceiveMessage wait: an idle stack then costs a receive per poller every 10 s, not
every second (Lambda's pollers wait 20 s); Ctrl-C waits for the current poll to end."""
DEFAULT_API_PORT = 3000
SAMPLE_FILES = {
    "hello.txt": b"Hello, world!\n",
    "report.pdf": b"%PDF-1.4\n% a tiny sample report\n%%EOF\n",
    "invoice.csv": b"item,qty,price\nwidget,3,9.99\n",
}
"""The original design's sample uploads."""


def _parser(prog: str = "python -m pipeline") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run the S3 file tracker on this machine: storage services (embedded moto "
        "by default), the SQS event source poller and the API Gateway emulator, invoking the "
        "real handlers in-process. Settings come from template.yaml.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser(
        "up",
        help="start the local stack and run until Ctrl-C",
        description="Start the local "
        "stack and run until Ctrl-C. Without --endpoint-url, --stack-name or --queue-url it "
        "starts an embedded moto server and creates the resources there.",
    )
    up.set_defaults(run=cmd_up)
    demo = commands.add_parser(
        "demo",
        help="start, upload samples, list, delete one, list, stop",
        description="Start the embedded stack on free ports, upload hello.txt, report.pdf and "
        "invoice.csv with boto3, wait until they are tracked, print GET /files (signed "
        "requests), delete one, show it gone, stop. Exit code 0 when everything behaved.",
    )
    demo.set_defaults(run=cmd_demo)
    reconcile_cli.add_parser(commands).set_defaults(run=reconcile_cli.main)
    reconcile_cli.add_adopt_parser(commands).set_defaults(run=reconcile_cli.adopt_main)
    watch_cli.add_parser(commands).set_defaults(run=watch_cli.main, verbose=False)
    browse_cli.add_parser(commands).set_defaults(run=browse_cli.main, verbose=False)
    migrate = commands.add_parser(
        "migrate-table",
        help="copy a table keyed by filename into a (bucket, key) table (resumable, idempotent)",
        description="Copy every row of the old table (partition key `filename`) into the new "
        "one (partition key `pk` = bucket/key, index partition `name_shard`), with a "
        "conditional PutItem per row that never replaces a newer row ingest wrote meanwhile. "
        "Uses the standard AWS variables (AWS_ENDPOINT_URL, AWS_REGION, credentials). Prints "
        "a resume position after each page.",
    )
    migrate.add_argument("--source", required=True, help="the old table (keyed by filename)")
    migrate.add_argument("--target", required=True, help="the new table (keyed by pk)")
    migrate.add_argument("--bucket", help="the bucket of old rows without a `bucket` attribute")
    migrate.add_argument("--region", help="AWS region (default: $AWS_REGION)")
    migrate.add_argument("--start-after", help="resume after this Scan position")
    migrate.add_argument("--page-size", type=int, default=500, help="rows per Scan call")
    migrate.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    migrate.set_defaults(run=cmd_migrate_table)
    for sub in (up, demo):
        tuning = sub.add_argument_group("settings (default: template.yaml)")
        tuning.add_argument(
            "--template",
            type=Path,
            help="SAM template (default: the project's template.yaml, else ./template.yaml)",
        )
        tuning.add_argument("--region", help="AWS region (default: $AWS_REGION or ap-south-1)")
        tuning.add_argument(
            "--api-auth",
            choices=("AWS_IAM", "NONE"),
            help="the template's ApiAuth parameter: AWS_IAM (default) makes the API gateway "
            "accept only SigV4-signed requests (the credentials `up` prints); NONE turns "
            "authentication off",
        )
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
            "--bucket-versioning",
            choices=["Enabled", "Suspended"],
            help="the template's BucketVersioning parameter (default: its default, Suspended)",
        )
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
        "--dynamodb-port",
        type=int,
        default=DEFAULT_DYNAMODB_PORT,
        help=f"embedded DynamoDB Local port (default {DEFAULT_DYNAMODB_PORT}; 0 = any free port)",
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
    from pipeline.local.template import (
        DEFAULT_REGION,
        TEMPLATE_PATH,
        TemplateError,
        read_stack_config,
    )

    template = args.template
    if template is None:  # the checkout's, or the copy an installed wheel ships
        template = TEMPLATE_PATH if TEMPLATE_PATH.exists() else Path.cwd() / "template.yaml"
        if not template.exists():
            raise TemplateError(
                "no template.yaml here: run from the project's directory or pass --template PATH"
            )
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    parameters: dict[str, str] = {}  # template parameters set by flags
    if args.api_auth:
        parameters["ApiAuth"] = args.api_auth
    if args.bucket_versioning:
        parameters["BucketVersioning"] = args.bucket_versioning
    config = read_stack_config(template, region=region or DEFAULT_REGION, parameters=parameters)
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
    import boto3

    from pipeline.local.provision import ResourceError, Resources, from_stack_outputs, queue_arn

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


def _curl(stack: Stack) -> str:
    """The curl command (up to the URL) that calls this stack's API."""
    if not stack.api_auth_enabled:
        return "curl"
    key, secret = stack.api_credentials
    return f'curl --aws-sigv4 "aws:amz:{stack.region}:execute-api" --user {key}:{secret}'


def _banner(stack: Stack) -> str:
    from pipeline.local.stack import FAKE_CREDENTIALS

    config = stack.config
    endpoint = stack.endpoint_url
    dynamodb = stack.dynamodb_endpoint
    lines = [
        "Local stack is up"
        + (
            " (embedded moto and DynamoDB Local)"
            if stack.embedded
            else f" (endpoint {endpoint or 'AWS'})"
        ),
        f"  API          {stack.api_url}/files   (OpenAPI: {stack.api_url}/openapi.json)",
    ]
    if endpoint and dynamodb != endpoint:
        lines.append(f"  S3/SQS       {endpoint}   (moto)")
        lines.append(f"  DynamoDB     {dynamodb}   (DynamoDB Local)")
    elif endpoint:
        lines.append(f"  S3/SQS/DDB   {endpoint}")
    lines += [
        f"  bucket       {stack.bucket}",
        f"  table        {stack.table_name}",
        f"  queue        {stack.queue_url}",
        f"  DLQ          {stack.dlq_url}",
        f"  ingest       {stack.pollers} poller(s), BatchSize {config.batch_size}, window "
        f"{config.batching_window_s} s, visibility {config.visibility_timeout_s} s, "
        f"maxReceiveCount {config.max_receive_count}, timeout {config.function_timeout_s} s",
    ]
    if stack.api_auth_enabled:
        key, secret = stack.api_credentials
        lines.append(
            f"  API auth     AWS_IAM: SigV4 (execute-api, {stack.region}) with access key "
            f"{key}, secret {secret}"
        )
    else:
        lines.append("  API auth     NONE: authentication is OFF (ApiAuth=NONE)")
    lines += ["", "Try it from another terminal:"]
    if stack.embedded:
        creds = " ".join(f"{k}={v}" for k, v in FAKE_CREDENTIALS.items())
        lines.append(f"  export {creds} AWS_DEFAULT_REGION={stack.region}")
    flag = f"--endpoint-url {endpoint} " if endpoint else ""
    lines += [
        f"  aws {flag}s3 cp ./some-file.txt s3://{stack.bucket}/some-file.txt",
        f"  aws {flag}s3 cp --recursive ./some-dir s3://{stack.bucket}/some-dir/",
        f"  {_curl(stack)} {stack.api_url}/files",
        f"  {_curl(stack)} '{stack.api_url}/files?limit=2'",
        f"  {_curl(stack)} {stack.api_url}/files/some-file.txt",
        f"  aws {flag}s3 rm s3://{stack.bucket}/some-file.txt",
        f"  aws {f'--endpoint-url {dynamodb} ' if dynamodb else ''}dynamodb scan "
        f"--table-name {stack.table_name}",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


class _Stopper:
    """Turns SIGINT/SIGTERM into a flag that `wait()` returns on (no KeyboardInterrupt in the
    middle of a stop); with `interrupt=True` the first signal raises KeyboardInterrupt instead
    (a command that is not waiting for it, e.g. the demo, is cut short and cleans up).

    The handler only sets a plain attribute: taking a lock there (`threading.Event.set`) can
    deadlock when the signal lands while the main thread holds that same lock in `wait`.
    """

    def __init__(self, interrupt: bool = False) -> None:
        self.requested = False
        self.interrupt = interrupt
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Stopper:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = not self.requested
        self.requested = True
        if self.interrupt and first:
            raise KeyboardInterrupt

    def wait(self, poll_s: float = 0.2) -> None:
        """Return once SIGINT or SIGTERM arrived."""
        while not self.requested:
            time.sleep(poll_s)

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _published(stack: Stack) -> AbstractContextManager[Any]:
    """The state file `reconcile` and `adopt` find an embedded stack by (`pipeline.local.state`)."""
    from pipeline.local.stack import FAKE_CREDENTIALS
    from pipeline.local.state import SERVICES, LocalStack, published

    if not stack.embedded or stack.endpoint_url is None:
        return contextlib.nullcontext()
    return published(
        LocalStack(
            pid=os.getpid(),
            region=stack.region,
            bucket=stack.bucket,
            table=stack.table_name,
            queue_name=stack.queue_url.rstrip("/").rsplit("/", 1)[-1],
            api_url=stack.api_url,
            endpoints={
                **dict.fromkeys(SERVICES, stack.endpoint_url),
                "dynamodb": stack.dynamodb_endpoint or stack.endpoint_url,
            },
            credentials={
                "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            },
        )
    )


def cmd_up(args: argparse.Namespace) -> int:
    """Run until Ctrl-C or SIGTERM."""
    embedded = not (args.endpoint_url or args.stack_name or args.queue_url)
    if embedded:
        ensure_free("127.0.0.1", args.moto_port, "--moto-port")
        ensure_free("127.0.0.1", args.dynamodb_port, "--dynamodb-port")
        require_java()  # before "Starting...": without it, the one line says what to install
    ensure_free("127.0.0.1", args.api_port, "--api-port")
    config = _config(args)
    from pipeline.local.stack import Stack

    with _Stopper() as stopper:
        resources = _existing_resources(args, config)
        stack = Stack(
            config,
            pollers=args.pollers,
            moto_port=args.moto_port,
            dynamodb_port=args.dynamodb_port,
            wait_time_s=UP_LONG_POLL_S,
            api_port=args.api_port,
            endpoint_url=args.endpoint_url,
            resources=resources,
            verbose=args.verbose,
        )
        print("Starting the local stack...", file=sys.stderr, flush=True)
        stack.start()
        try:
            with _published(stack), browse_cli.serving(stack) as browse:
                print(_banner(stack), flush=True)
                print(
                    f"\nOpen the files in your browser:\n{browse_cli.banner_line(browse)}",
                    flush=True,
                )
                stopper.wait()
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
    from pipeline.local.api_client import file_url, get, list_files
    from pipeline.local.stack import Stack

    ok = True
    with (
        _Stopper(interrupt=True),
        Stack(config, pollers=args.pollers or 2, verbose=args.verbose) as stack,
    ):
        print(
            f"Local stack up: API {stack.api_url}, moto {stack.endpoint_url}, "
            f"DynamoDB Local {stack.dynamodb_endpoint}",
            flush=True,
        )
        signer = stack.signer if stack.api_auth_enabled else None
        curl = _curl(stack)
        if signer is not None:
            print(f"API requests are SigV4-signed ({curl} ...)", flush=True)
        s3 = stack.client("s3")
        for name, body in SAMPLE_FILES.items():
            s3.put_object(Bucket=stack.bucket, Key=name, Body=body)
            print(f"uploaded s3://{stack.bucket}/{name} ({len(body)} bytes)", flush=True)
        stack.wait_until_idle(timeout_s=60)
        if signer is not None:
            unsigned = get(f"{stack.api_url}/files", sign=False)
            print(f"\n$ curl {stack.api_url}/files   -> {unsigned.status} {unsigned.json()}")
            if unsigned.status != 403:
                print("\nFAIL: an unsigned request was not refused")
                ok = False
        listing = get(f"{stack.api_url}/files", signer=signer)
        _show(f"{curl} {stack.api_url}/files   -> {listing.status}", listing.json())
        names = {item["filename"] for item in list_files(stack.api_url, signer=signer)}
        if names != set(SAMPLE_FILES):
            print(f"\nFAIL: expected {sorted(SAMPLE_FILES)}, the API lists {sorted(names)}")
            ok = False
        one = get(file_url(stack.api_url, "hello.txt"), signer=signer)
        _show(f"{curl} {file_url(stack.api_url, 'hello.txt')}   -> {one.status}", one.json())
        s3.delete_object(Bucket=stack.bucket, Key="report.pdf")
        print(f"\ndeleted s3://{stack.bucket}/report.pdf", flush=True)
        stack.wait_until_idle(timeout_s=60)
        listing = get(f"{stack.api_url}/files", signer=signer)
        _show(f"{curl} {stack.api_url}/files   -> {listing.status}", listing.json())
        gone = get(file_url(stack.api_url, "report.pdf"), signer=signer)
        print(f"\n$ {curl} {file_url(stack.api_url, 'report.pdf')}   -> {gone.status}")
        names = {item["filename"] for item in list_files(stack.api_url, signer=signer)}
        if names != set(SAMPLE_FILES) - {"report.pdf"} or gone.status != 404:
            print(f"\nFAIL: after the delete the API lists {sorted(names)} ({gone.status})")
            ok = False
        stats = stack.poller.stats if stack.poller else None
    print(f"\nstopped cleanly; ingest invocations: {stats.invocations if stats else 0}")
    print("demo OK" if ok else "demo FAILED")
    return 0 if ok else 1


def cmd_migrate_table(args: argparse.Namespace) -> int:
    """`migrate-table`: copy the old table's rows into the new one, printing where to resume."""
    import boto3

    from pipeline.adapters.dynamo.migrate import MigrationReport, migrate_table

    def counts(report: MigrationReport) -> str:
        return f"{report.copied} copied, {report.kept} kept (newer), {report.skipped} skipped"

    def progress(report: MigrationReport) -> None:
        position = "end of table" if report.complete else f"--start-after {report.resume_after!r}"
        print(f"page {report.pages}: {counts(report)}; {position}")

    client = boto3.client("dynamodb", region_name=args.region)
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
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "python -m pipeline") -> int:
    """CLI entry point: each subcommand's parser sets `run`, the function that runs it."""
    args = _parser(prog).parse_args(argv)
    _setup_logging(args.verbose)
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        from pipeline.local.provision import ResourceError
        from pipeline.local.template import TemplateError
    except ModuleNotFoundError as missing:
        return _missing_extra(missing)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except (
        TemplateError,
        ResourceError,
        ClientError,
        BotoCoreError,
        PortInUseError,
        DynamoDBLocalUnavailable,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as missing:
        return _missing_extra(missing)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return 130


def _missing_extra(missing: ModuleNotFoundError) -> int:
    """A one-line hint when the `local` extra is not installed; other import errors propagate."""
    if (missing.name or "").split(".")[0] not in {"moto", "yaml", "werkzeug", "flask"}:
        raise missing
    print(
        f"error: the local stack needs {missing.name}: pip install '{LOCAL_EXTRA}'",
        file=sys.stderr,
    )
    return 2


def console_main() -> int:
    """The `s3-file-tracker` console command."""
    return main(prog="s3-file-tracker")
