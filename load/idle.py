"""Idle: the CPU `python -m pipeline up` uses while nobody calls it (all its processes).

Starts `up` on free ports, waits for its banner, lets it settle, then reads the CPU time
(utime + stime, /proc/<pid>/stat) of `up` and every process under it (moto's process, DynamoDB
Local's JVM) at the start and the end of `--seconds`; reports the share of one core, per
process and in total. Linux only (/proc). Target: ≤ 2 % of one core (issue 16).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from load.report import add_output_arguments, console, finish, machine, target

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def _tree(root: int) -> list[int]:
    tree, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def _cpu_and_name(pid: int) -> tuple[float, str]:
    """(CPU seconds used so far, command) of one process."""
    text = Path(f"/proc/{pid}/stat").read_text()
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, name


def run(args: argparse.Namespace) -> int:
    """Start `up`, measure its idle CPU over `--seconds`, stop it; exit 1 if the target missed."""
    command = [sys.executable, "-m", "pipeline", "up"]
    command += ["--moto-port", "0", "--dynamodb-port", "0", "--api-port", "0"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "Press Ctrl-C" in line:
                break
        else:
            raise SystemExit("`up` exited before its banner")
        time.sleep(args.settle)
        pids = _tree(process.pid)
        before = {pid: _cpu_and_name(pid) for pid in pids}
        t0 = time.monotonic()
        time.sleep(args.seconds)
        elapsed = time.monotonic() - t0
        after = {pid: _cpu_and_name(pid) for pid in pids}
    finally:
        process.terminate()
        process.wait(60)
    per_process = {
        f"{after[pid][1]} ({pid})": 100 * (after[pid][0] - before[pid][0]) / elapsed for pid in pids
    }
    total = sum(per_process.values())
    for name, share in per_process.items():
        console.print(f"{name}: {share:.2f} % of one core")
    console.print(f"total over {elapsed:.0f} s idle: {total:.2f} % of one core")
    goal = target("idle CPU, % of one core", total, "<=", 2.0)
    document = {
        "benchmark": "idle",
        "machine": machine(),
        "seconds": elapsed,
        "per_process_pct": per_process,
        "total_pct": total,
        "targets": [goal],
    }
    return finish(args, document)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `idle` command's options."""
    parser.add_argument("--seconds", type=float, default=60, help="idle time measured (60)")
    parser.add_argument("--settle", type=float, default=5, help="wait after the banner (5)")
    add_output_arguments(parser, "idle", plot=None)
