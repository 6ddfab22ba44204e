"""Shared pieces of the load scripts: machine facts, percentiles, JSON output, progress."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True, width=None if sys.stderr.isatty() else 150)


def machine() -> dict[str, Any]:
    """Where and when the figures were taken."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": load,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "command": "python -m load " + " ".join(sys.argv[1:]),
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), nearest-rank on sorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def write_json(path: str | None, document: dict[str, Any]) -> None:
    """Write `document` to `path` (directories created), if a path was given."""
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    console.print(f"results: {target}")


def progress() -> Progress:
    """A rich progress bar on stderr (hidden when stderr is not a terminal)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )


def fmt(value: float | None, digits: int = 0) -> str:
    """A number for a table cell ('-' for None)."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


class Stopwatch:
    """Wall and process CPU time of a block."""

    def __enter__(self) -> Stopwatch:
        self.wall_s = self.cpu_s = 0.0
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._wall
        self.cpu_s = time.process_time() - self._cpu


def add_output_arguments(
    parser: argparse.ArgumentParser, name: str, *, plot: str | None = "PNG plot path"
) -> None:
    """The flags every benchmark shares: `--out` (JSON results) and `--plot` (a PNG)."""
    parser.add_argument("--out", default=f"load/results/{name}.json", help="JSON results path")
    parser.add_argument(
        "--plot",
        default=None,
        help=plot or "PNG plot path (this benchmark draws none; given, a note says so)",
    )


def target(
    name: str,
    value: float,
    op: str,
    goal: float,
    *,
    size: int | None = None,
    min_size: int | None = None,
    unit: str = "",
) -> dict[str, Any]:
    """One benchmark target: `value op goal`, whether it is met, and by what factor it is missed.

    With `size` below `min_size` the run is too small for the target to mean anything: it is
    reported with a note and `met` None (neither met nor missed).
    """
    met = value >= goal if op == ">=" else value <= goal
    miss = None if met else (goal / value if op == ">=" and value else value / goal)
    result: dict[str, Any] = {
        "target": name,
        "value": round(value, 3),
        "goal": f"{op} {goal:g}",
        "met": met,
        "missed_by_factor": None if miss is None else round(miss, 3),
    }
    if size is not None and min_size is not None and size < min_size:
        result.update(met=None, missed_by_factor=None)
        result["note"] = (
            f"run too small for this target to mean anything ({size:,} {unit} < {min_size:,})"
        )
    return result


def missed(targets: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The targets that were judged and missed."""
    return [t for t in targets if t.get("met") is False]


def finish(
    args: argparse.Namespace,
    document: dict[str, Any],
    *,
    summary: Callable[[dict[str, Any]], None] | None = None,
    draw: Callable[[dict[str, Any], str], None] | None = None,
) -> int:
    """Every benchmark's ending: write `--out`, print the summary and the targets, draw
    `--plot`; the exit status: 1 when a target was missed, else 0."""
    targets: list[dict[str, Any]] = document.setdefault("targets", [])
    write_json(args.out, document)
    if summary is not None:
        summary(document)
    else:
        console.print(targets_table(targets))
    plot_path = getattr(args, "plot", None)
    if plot_path and draw is not None:
        draw(document, plot_path)
    elif plot_path:
        console.print(f"note: this benchmark draws no plot; --plot {plot_path} ignored")
    for t in targets:
        if t.get("note"):
            console.print(f"note: {t['target']}: {t['note']}")
    failed = missed(targets)
    for t in failed:
        console.print(f"[red]target missed[/red]: {t['target']} = {t['value']} (goal {t['goal']})")
    return 1 if failed else 0


def verdict_of(t: dict[str, Any]) -> str:
    """One target's verdict in words."""
    if t.get("met") is None:
        return "not judged: " + str(t.get("note", "run too small"))
    return "met" if t["met"] else f"MISSED by x{t['missed_by_factor']}"


def targets_table(targets: list[dict[str, Any]]) -> Table:
    """The targets as a rich table (rows may be added by the caller)."""
    table = Table(title="Targets")
    for column in ("target", "value", "goal", "met", "missed by"):
        table.add_column(column)
    for t in targets:
        met = {True: "yes", False: "NO", None: "n/a (run too small)"}[t["met"]]
        table.add_row(
            t["target"],
            str(t["value"]),
            t["goal"],
            met,
            "-" if t["missed_by_factor"] is None else f"x{t['missed_by_factor']}",
        )
    return table


def save_plot(figure: Any, path: str) -> None:
    """Lay out `figure`, write it to `path` (folders created), close it and say where."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    console.print(f"plot: {path}")


async def serve_app(app: Any, host: str, port: int) -> None:
    """Serve an aiohttp `app` on `host`:`port` (0: any free port) until cancelled; print the URL
    as one JSON line once listening (what the benchmarks' child servers tell their parent)."""
    import asyncio

    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    server: Any = site._server
    bound = server.sockets[0].getsockname()[1] if server is not None else port
    print(json.dumps({"url": f"http://{host}:{bound}"}), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
