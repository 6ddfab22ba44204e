"""`s3-file-tracker up|demo|reconcile|adopt|migrate-table|watch|browse` (or `python -m pipeline`).

Runs the pipeline locally and its maintenance commands; see docs/local-stack.md and
docs/reconcile.md. Each subcommand lives in `pipeline.local.commands` (reconcile and watch in
`reconcile_cli` and `watch_cli`); `pipeline.local.target` resolves what each acts on. Heavy
imports (boto3, moto, the handlers) wait until a command runs, so `--help`, `--version` and a
taken port answer at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from pipeline import __version__
from pipeline.local import reconcile_cli, watch_cli
from pipeline.local.browse import cli as browse_cli
from pipeline.local.commands import adopt, demo, migrate, up
from pipeline.local.commands.demo import SAMPLE_FILES, cmd_demo
from pipeline.local.commands.migrate import cmd_migrate_table
from pipeline.local.commands.up import _config, cmd_up
from pipeline.local.dynamodb_local import DynamoDBLocalUnavailable
from pipeline.local.ports import PortInUseError
from pipeline.local.target import DEFAULT_API_PORT, DEFAULT_DYNAMODB_PORT, DEFAULT_MOTO_PORT

__all__ = [
    "DEFAULT_API_PORT",
    "DEFAULT_DYNAMODB_PORT",
    "DEFAULT_MOTO_PORT",
    "SAMPLE_FILES",
    "_config",
    "cmd_demo",
    "cmd_migrate_table",
    "cmd_up",
    "console_main",
    "main",
]

LOCAL_EXTRA = "s3-file-tracker[local]"
"""What to install for the local stack when running from a wheel (moto, PyYAML)."""


def _parser(prog: str = "python -m pipeline") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run the S3 file tracker on this machine: storage services (embedded moto "
        "and DynamoDB Local by default), the SQS event source poller and the API Gateway "
        "emulator, invoking the real handlers in execution-environment processes (one request "
        "at a time each, as Lambda does); and its maintenance commands. Settings come from "
        "template.yaml; each command's target from flags, then the AWS_ENDPOINT_URL* "
        "variables, then a running `up`, then template.yaml (docs/local-stack.md).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up.add_parser(commands)
    demo.add_parser(commands)
    reconcile_cli.add_parser(commands).set_defaults(run=reconcile_cli.main)
    adopt.add_adopt_parser(commands).set_defaults(run=adopt.adopt_main)
    watch_cli.add_parser(commands).set_defaults(run=watch_cli.main, verbose=False)
    migrate.add_parser(commands)
    browse_cli.add_parser(commands).set_defaults(run=browse_cli.main, verbose=False)
    return parser


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    local = logging.getLogger("pipeline.local")
    local.setLevel(logging.INFO)
    local.addHandler(handler)
    local.propagate = False  # the handlers' Powertools config owns the `pipeline` logger
    logging.getLogger("pipeline.local.gateway").setLevel(logging.DEBUG if verbose else logging.INFO)


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
