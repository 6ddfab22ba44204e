"""`python -m load <command>`: benchmarks of the tracker (see docs/performance.md).

python -m load writer --latencies 0,5,10,25 --records 10000 --plot load/results/writer.png
python -m load upload --objects 10000
python -m load read --items 10000 --limits 100,1000
python -m load listing --sizes 10000,100000,1000000
python -m load reconcile --keys 100000,1000000
python -m load idle --seconds 60
python -m load api --rows 100000 --walk-files 2500 --clients 40 --requests 16
python -m load browse --rows 1000000 --folder-files 100000
"""

from __future__ import annotations

import sys

from load import api, browse, capacity, idle, listing, read, reconcile, upload, writer
from load.cli import run_commands

COMMANDS = {
    "writer": writer,
    "upload": upload,
    "read": read,
    "reconcile": reconcile,
    "listing": listing,
    "idle": idle,
    "api": api,
    "capacity": capacity,
    "browse": browse,
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the command's module."""
    return run_commands(COMMANDS, sys.argv[1:] if argv is None else argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
