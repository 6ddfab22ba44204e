"""`python -m load <command>`: benchmarks of the tracker (see docs/performance.md).

python -m load writer --latencies 0,5,10,25 --records 10000 --plot load/results/writer.png
python -m load upload --objects 10000
python -m load read --items 10000 --limits 100,1000
python -m load reconcile --keys 100000,1000000
"""

from __future__ import annotations

import argparse
import sys

from load import read, reconcile, upload, writer


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the command's module."""
    parser = argparse.ArgumentParser(
        prog="python -m load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands_list = (("writer", writer), ("upload", upload), ("read", read))
    commands_list += (("reconcile", reconcile),)
    for name, module in commands_list:
        sub = commands.add_parser(
            name,
            help=(module.__doc__ or "").split("\n")[0],
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
