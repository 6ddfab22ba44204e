"""The upload benchmark's document, verdicts, summary table and plot."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from load.report import (
    console,
    fmt,
    machine,
    percentile,
    save_plot,
    target,
    targets_table,
)


def document_of(
    args: argparse.Namespace,
    run_id: str,
    keys: list[str],
    prefix: str,
    started: float,
    uploaded_at: float,
    failed: list[str],
    written: dict[str, float],
    event_time: dict[str, float],
    in_table: dict[str, float],
    target: dict[str, Any],
    written_means: str,
) -> dict[str, Any]:
    uploaded = set(keys) - set(failed)
    lags = [written[k] - event_time[k] for k in written if k in event_time and k in uploaded]
    last_written = max(written.values(), default=started)
    upload_s = max(uploaded_at - started, 1e-9)
    end_to_end_s = max(last_written - started, 1e-9)
    tracked = len(uploaded & written.keys())
    return {
        "benchmark": "upload",
        "machine": machine(),
        "settings": {
            "objects": len(keys),
            "sizes": list(args.sizes),
            "prefixes": args.prefixes,
            "key_template": args.key_template,
            "concurrency": args.concurrency,
            "run_id": run_id,
            "key_prefix": prefix,
            "row_written_time": written_means,
        },
        "target": target,
        "upload": {
            "objects": len(uploaded),
            "failed": len(failed),
            "seconds": upload_s,
            "objects_per_s": len(uploaded) / upload_s,
        },
        "end_to_end": {
            "tracked": tracked,
            "seconds": end_to_end_s,
            "objects_per_s": tracked / end_to_end_s,
            "ratio_to_upload_rate": (tracked / end_to_end_s) / (len(uploaded) / upload_s),
        },
        "lag_s": {
            "p50": percentile(lags, 50),
            "p95": percentile(lags, 95),
            "p99": percentile(lags, 99),
            "max": max(lags, default=None),
            "samples": len(lags),
        },
        "completeness": {
            "expected": len(uploaded),
            "in_table": len(in_table),
            "missing": len(uploaded - in_table.keys()),
            "extra": len(in_table.keys() - uploaded),
            "missing_examples": sorted(uploaded - in_table.keys())[:5],
            "extra_examples": sorted(in_table.keys() - uploaded)[:5],
        },
        "targets": targets_of(
            (tracked / end_to_end_s) / (len(uploaded) / upload_s),
            percentile(lags, 99),
            len(uploaded),
        ),
        "lags_histogram": histogram(lags),
        "lag_over_time": lag_over_time(
            {k: (event_time[k], written[k]) for k in written if k in event_time and k in uploaded}
        ),
    }


def lag_over_time(
    times: dict[str, tuple[float, float]], step_s: float = 10.0
) -> list[dict[str, Any]]:
    """Lag p50/p99/max per `step_s` of S3 eventTime since the first event: where in the burst
    the tail is (start-up, steady state, the end)."""
    if not times:
        return []
    first = min(event for event, _ in times.values())
    buckets: dict[int, list[float]] = {}
    for event, done in times.values():
        buckets.setdefault(int((event - first) // step_s), []).append(done - event)
    return [
        {
            "from_s": index * step_s,
            "events": len(lags),
            "p50": percentile(lags, 50),
            "p99": percentile(lags, 99),
            "max": max(lags),
        }
        for index, lags in sorted(buckets.items())
    ]


def histogram(lags: list[float], bins: int = 40) -> dict[str, list[float]]:
    if not lags:
        return {"edges": [], "counts": []}
    top = max(lags) or 1e-3
    width = top / bins
    counts = [0] * bins
    for lag in lags:
        counts[min(bins - 1, max(0, int(lag / width)))] += 1
    return {
        "edges": [round(i * width, 4) for i in range(bins + 1)],
        "counts": [float(c) for c in counts],
    }


MIN_OBJECTS = 2_000
"""Below this many objects, throughput and p99 lag are dominated by start-up and the tail."""


def targets_of(throughput_ratio: float, p99: float | None, objects: int) -> list[dict[str, Any]]:
    small: dict[str, Any] = {"size": objects, "min_size": MIN_OBJECTS, "unit": "objects"}
    targets = [target("end-to-end throughput / upload rate", throughput_ratio, ">=", 0.9, **small)]
    if p99 is not None:
        targets.append(target("tracking lag p99 (s)", p99, "<=", 2, **small))
    return targets


def print_summary(document: dict[str, Any]) -> None:
    """One table of rates, lag percentiles and completeness, one of targets."""
    table = Table(
        title=f"Bulk upload: {document['settings']['objects']:,} objects "
        f"({document['target']['kind']})"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    up, e2e, lag, comp = (document[k] for k in ("upload", "end_to_end", "lag_s", "completeness"))
    table.add_row("upload rate (objects/s)", fmt(up["objects_per_s"], 1))
    table.add_row("end-to-end throughput (tracked/s)", fmt(e2e["objects_per_s"], 1))
    table.add_row("  ratio to upload rate", fmt(e2e["ratio_to_upload_rate"], 3))
    for q in ("p50", "p95", "p99", "max"):
        table.add_row(f"tracking lag {q} (s)", fmt(lag[q], 3))
    table.add_row("uploaded / failed PUTs", f"{up['objects']:,} / {up['failed']:,}")
    totals = document["target"].get("totals")
    if totals:
        table.add_row(
            f"folder totals exact after the last upload (s), {totals['files']:,} files in one"
            " folder",
            fmt(totals["exact_after_last_upload_s"], 2),
        )
        table.add_row("  after the last row written (s)", fmt(totals["exact_after_last_row_s"], 2))
    table.add_row("missing keys", str(comp["missing"]))
    steps = document.get("lag_over_time") or []
    if steps:
        table.add_row(
            "lag p99 per 10 s of the burst (s)", " ".join(fmt(step["p99"], 1) for step in steps)
        )
    table.add_row("extra keys", str(comp["extra"]))
    console.print(table)
    targets = targets_table(document["targets"])
    targets.add_row(
        "missing and extra keys",
        f"{comp['missing']} / {comp['extra']}",
        "0 / 0",
        "yes" if comp["missing"] == comp["extra"] == 0 else "NO",
        "-",
    )
    console.print(targets)


def plot(document: dict[str, Any], path: str) -> None:
    """Histogram of the tracking lag."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    histogram = document["lags_histogram"]
    figure, axis = plt.subplots(figsize=(8, 4.5))
    if histogram["counts"]:
        edges = histogram["edges"]
        axis.bar(edges[:-1], histogram["counts"], width=edges[1] - edges[0], align="edge")
    lag = document["lag_s"]
    for q, style in (("p50", ":"), ("p99", "--")):
        if lag[q] is not None:
            axis.axvline(lag[q], linestyle=style, color="black", label=f"{q} {lag[q]:.3f} s")
    axis.set_xlabel("tracking lag: row written - S3 eventTime (s)")
    axis.set_ylabel("objects")
    axis.set_title(
        f"{document['settings']['objects']:,} objects, upload "
        f"{document['upload']['objects_per_s']:.0f}/s, tracked "
        f"{document['end_to_end']['objects_per_s']:.0f}/s"
    )
    axis.legend()
    save_plot(figure, path)
