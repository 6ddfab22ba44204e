"""The benchmarks' one command line: a subcommand per benchmark module.

Each benchmark module (`load.read`, `load.upload`, `load.writer`) has `add_arguments(parser)`
and `run(args)`. `python -m load <name>` (load/__main__.py) and `python -m load.<name>` both
parse through `run_commands`; this module imports none of them, so nothing imports in a circle.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType


def build_parser(
    commands: Mapping[str, ModuleType], description: str | None
) -> argparse.ArgumentParser:
    """`python -m load` with one subcommand per benchmark module."""
    parser = argparse.ArgumentParser(
        prog="python -m load",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subcommands = parser.add_subparsers(dest="command", required=True)
    for name, module in commands.items():
        sub = subcommands.add_parser(
            name,
            help=(module.__doc__ or "").split("\n")[0],
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def run_commands(
    commands: Mapping[str, ModuleType], argv: Sequence[str], description: str | None = None
) -> int:
    """Parse `argv` (subcommand first) and run the chosen benchmark; its exit status."""
    args = build_parser(commands, description).parse_args(list(argv))
    result: int = args.run(args)
    return result


def run_module(module: ModuleType, name: str, argv: Sequence[str] | None = None) -> int:
    """`python -m load.<name> ...`: the same as `python -m load <name> ...`."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    return run_commands({name: module}, [name, *arguments])


def add_stack_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """`--stack-name` and `--region`: measure a deployed stack instead of the local one."""
    parser.add_argument("--stack-name", help=f"a deployed stack ({what}); default: local")
    parser.add_argument("--region", help="the deployed stack's region (default: the SDK's)")
