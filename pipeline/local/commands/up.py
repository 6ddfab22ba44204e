"""`up`: run the local stack until Ctrl-C (and the settings flags `up` and `demo` share)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.local.browse import cli as browse_cli
from pipeline.local.commands.stop import Stop
from pipeline.local.dynamodb_local import require_java
from pipeline.local.ports import ensure_free
from pipeline.local.target import (
    ANY,
    DEFAULT_API_PORT,
    DEFAULT_DYNAMODB_PORT,
    DEFAULT_MOTO_PORT,
    Flags,
    default_region,
    environment_endpoints,
)

if TYPE_CHECKING:
    from pipeline.local.provision import Resources
    from pipeline.local.stack import Stack
    from pipeline.local.template import StackConfig

UP_LONG_POLL_S = 10
"""`up`'s ReceiveMessage wait: an idle stack then costs a receive per poller every 10 s, not
every second (Lambda's pollers wait 20 s); Ctrl-C waits for the current poll to end."""


def add_settings_flags(sub: argparse.ArgumentParser) -> None:
    """The template settings `up` and `demo` take as flags."""
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


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the `up` subcommand to the CLI's subparsers."""
    up: argparse.ArgumentParser = commands.add_parser(
        "up",
        help="start the local stack and run until Ctrl-C",
        description="Start the local stack and run until Ctrl-C. The target: flags "
        "(--endpoint-url, --stack-name, --queue-url), then $AWS_ENDPOINT_URL, else an "
        "embedded moto server and DynamoDB Local with the resources created there.",
    )
    up.set_defaults(run=cmd_up)
    add_settings_flags(up)
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
        help="an AWS-compatible endpoint, e.g. LocalStack's http://localhost:4566 (default: "
        "$AWS_ENDPOINT_URL); resources are created there unless --no-provision",
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
    return up


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
    region = default_region(Flags(region=args.region), os.environ)
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


def target_line(args: argparse.Namespace, config: StackConfig, source: str) -> str:
    """The one line `up` prints before it starts: what it runs, where, and why there."""
    if args.stack_name:
        place = f"stack {args.stack_name}'s resources"
    elif args.queue_url:
        place = f"bucket {args.bucket}, table {args.table}, queue {args.queue_url}"
    else:
        place = f"bucket {config.bucket}, table {config.table}"
    if args.endpoint_url:
        where = f"endpoint {args.endpoint_url}"
    elif args.stack_name or args.queue_url:
        where = "AWS"
    else:
        where = f"embedded moto (port {args.moto_port}), DynamoDB Local (port {args.dynamodb_port})"
    return f"up: {place}, {where}, API port {args.api_port}, region {config.region} ({source})"


def _endpoint_source(args: argparse.Namespace) -> str:
    """Fill `args.endpoint_url` from $AWS_ENDPOINT_URL when no flag names a target; returns
    where the target came from."""
    if args.endpoint_url or args.stack_name or args.queue_url:
        return "target from flags"
    from_env = environment_endpoints(os.environ).get(ANY)
    if from_env:
        args.endpoint_url = from_env
        return "target from the environment (AWS_ENDPOINT_URL)"
    return "target from template.yaml"


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
    source = _endpoint_source(args)
    embedded = not (args.endpoint_url or args.stack_name or args.queue_url)
    if embedded:
        ensure_free("127.0.0.1", args.moto_port, "--moto-port")
        ensure_free("127.0.0.1", args.dynamodb_port, "--dynamodb-port")
        require_java()  # before "Starting...": without it, the one line says what to install
    ensure_free("127.0.0.1", args.api_port, "--api-port")
    config = _config(args)
    from pipeline.local.stack import Stack

    print(target_line(args, config, source), file=sys.stderr, flush=True)
    with Stop() as stopper:
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
            warm_engine=True,
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
