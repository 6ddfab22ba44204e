"""The writer benchmark's verdicts, tables and plot."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from load import totals_cost
from load.report import (
    console,
    fmt,
    save_plot,
    target,
    targets_table,
)
from load.writer_config import (
    DEFAULT_CONCURRENCY,
    DEPLOYED,
    LABELS,
    MIN_RECORDS,
    MODES_TABLE,
    RSS_LIMIT_MB,
    TARGET_LATENCY_MS,
    VARIANTS,
)
from load.writer_feed import feed_costs_table


def _chosen(concurrencies: list[int]) -> int:
    return DEFAULT_CONCURRENCY if DEFAULT_CONCURRENCY in concurrencies else concurrencies[0]


def _pick(document: dict[str, Any], variant: str, latency: float) -> dict[str, Any] | None:
    chosen = _chosen(document["settings"]["concurrency"])
    for result in document["results"]:
        if result["variant"] != variant or result["latency_ms"] != latency:
            continue
        if result.get("concurrency") in (None, chosen):
            return result
    return None


def evaluate(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets: measured value, goal, met or by how much missed."""
    targets: list[dict[str, Any]] = []
    latency = TARGET_LATENCY_MS
    d, a, b = (_pick(document, v, latency) for v in ("ingest", "put_item", "batch_writer"))
    floor = document["floor"]
    small: dict[str, Any] = {
        "size": document["settings"]["records"],
        "min_size": MIN_RECORDS,
        "unit": "records",
    }
    if d and a:
        ratio = d["records_per_s"] / a["records_per_s"]
        targets.append(target(f"(d)/(a) at {latency:g} ms", ratio, ">=", 100, **small))
    if d and b:
        ratio = d["records_per_s"] / b["records_per_s"]
        targets.append(target(f"(d)/(b) at {latency:g} ms", ratio, ">=", 5, **small))
    if d:
        ratio = d["wall_s"] / floor["cpu_s"] * floor["records"] / d["records"]
        targets.append(target(f"(d) time / CPU floor at {latency:g} ms", ratio, "<=", 1.5, **small))
    ingest = [r for r in document["results"] if r["variant"] == "ingest"]
    if ingest:  # units do not depend on latency: the worst run counts
        # the rows' units; folder counters (1 WRU per counter update) are counted apart
        wru = max((r["wru"] - r.get("counter_updates", 0)) / r["records"] for r in ingest)
        rru = max(r["rru_per_record"] for r in ingest)
        targets.append(target("(d) table WRU per record (indexes apart)", wru, "<=", 1))
        targets.append(target("(d) RRU per record", rru, "<=", 1))
    targets.extend(totals_cost.targets(document.get("folder_totals") or []))
    for mix, row in (document.get("feed_costs") or {}).get("mixes", {}).items():
        targets.append(
            target(
                f"change feed: write units added per event, {mix}", row["feed_added_wru"], "<=", 1
            )
        )
    rss = document.get("rss") or {}
    if rss:
        targets.append(
            target("peak RSS of one invocation (MB)", rss["peak_mb"], "<=", RSS_LIMIT_MB)
        )
    return targets


def write_modes_table(document: dict[str, Any], latency: float) -> Table:
    """Each write mode at one latency: speed, client CPU, request units, dollars."""
    deployed = document.get("deployed", DEPLOYED)
    table = Table(
        title=f"Write modes at {latency:g} ms ({document['settings']['records']:,} records; "
        f"$ per million records: on-demand units + Lambda {deployed['memory_mb']} MB, "
        f"batch {deployed['batch_size']})"
    )
    for column in (
        "mode",
        "records/s",
        "x(a)",
        "x(b)",
        "CPU µs/rec",
        "WRU/rec",
        "+index WRU",
        "RRU/rec",
        "$ DynamoDB",
        "$ Lambda",
        "$ total",
        "race-free",
    ):
        table.add_column(column, justify="left" if column == "mode" else "right")
    a, b = _pick(document, "put_item", latency), _pick(document, "batch_writer", latency)
    race_free = {"ingest": "yes", "cond_put": "yes", "transact": "yes"}
    for variant in MODES_TABLE:
        r = _pick(document, variant, latency)
        if not r:
            continue
        table.add_row(
            LABELS[variant],
            fmt(r["records_per_s"]),
            fmt(r["records_per_s"] / a["records_per_s"], 1) if a else "-",
            fmt(r["records_per_s"] / b["records_per_s"], 1) if b else "-",
            fmt(r["cpu_us_per_record"]),
            fmt(r["wru_per_record"], 2),
            fmt(r.get("wru_all_per_record", r["wru_per_record"]) - r["wru_per_record"], 2),
            fmt(r["rru_per_record"], 2),
            fmt(r["usd_per_m_dynamodb"], 3),
            fmt(r["usd_per_m_lambda"], 3),
            fmt(r["usd_per_m_total"], 3),
            race_free.get(variant, "no"),
        )
    return table


def print_summary(document: dict[str, Any]) -> None:
    """Rates per variant and latency, ratios, the floor, RSS and the targets."""
    settings = document["settings"]
    table = Table(title=f"Writer benchmark: records/s ({settings['records']:,} records/event)")
    table.add_column("latency")
    variants = ["put_item", "batch_writer", "powertools", "ingest", "ingest_no_reads"]
    for variant in variants:
        table.add_column(LABELS[variant].split(" ", 1)[0] + " " + variant, justify="right")
    table.add_column("d/a", justify="right")
    table.add_column("d/b", justify="right")
    table.add_column("reads share of d", justify="right")
    for latency in settings["latencies_ms"]:
        picked = {v: _pick(document, v, latency) for v in variants}
        rates = {v: (r["records_per_s"] if r else None) for v, r in picked.items()}
        d, a, b = rates["ingest"], rates["put_item"], rates["batch_writer"]
        share = None
        if picked["ingest"] and picked["ingest_no_reads"]:
            share = 100 * (1 - picked["ingest_no_reads"]["wall_s"] / picked["ingest"]["wall_s"])
        table.add_row(
            f"{latency:g} ms",
            *(fmt(rates[v]) for v in variants),
            fmt(d / a if d and a else None, 1),
            fmt(d / b if d and b else None, 1),
            (fmt(share, 0) + " %") if share is not None else "-",
        )
    console.print(table)
    console.print(write_modes_table(document, TARGET_LATENCY_MS))
    floor = document["floor"]
    console.print(
        f"CPU floor: {floor['requests']} BatchWriteItem requests of 25 built and sent by "
        f"aiobotocore in {floor['cpu_s']:.3f} s client CPU ({fmt(floor['records_per_s'])} "
        f"records/s; wall {floor['wall_s']:.3f} s at 0 ms, no concurrency limit; SDK "
        f"defaults). With the ingest client's config (no parameter validation): "
        f"{floor.get('cpu_s_ingest_client_config', float('nan')):.3f} s CPU. "
        f"(a) and (c) measured on {settings['sample']:,}-record samples."
    )
    if len(settings["concurrency"]) > 1:
        sweep = Table(title="INGEST_WRITE_CONCURRENCY sweep: (d) records/s")
        sweep.add_column("latency")
        for c in settings["concurrency"]:
            sweep.add_column(f"c={c}", justify="right")
        for latency in settings["latencies_ms"]:
            cells = []
            for c in settings["concurrency"]:
                rate = next(
                    (
                        r["records_per_s"]
                        for r in document["results"]
                        if r["variant"] == "ingest"
                        and r["latency_ms"] == latency
                        and r["concurrency"] == c
                    ),
                    None,
                )
                cells.append(fmt(rate))
            sweep.add_row(f"{latency:g} ms", *cells)
        console.print(sweep)
    rss = document.get("rss") or {}
    if rss:
        console.print(
            f"Peak RSS, one invocation of {rss['records']:,} records (fresh process): "
            f"{rss['peak_mb']:.1f} MB; before the event was built {rss['baseline_mb']:.1f} MB, "
            f"with the event {rss['before_mb']:.1f} MB, invocation added {rss['delta_mb']:.1f} MB."
        )
    if document.get("folder_totals"):
        console.print(totals_cost.table(document["folder_totals"]))
    if document.get("feed_costs"):
        console.print(feed_costs_table(document["feed_costs"]))
    targets = targets_table(document["targets"])
    console.print(targets)


def plot(document: dict[str, Any], path: str) -> None:
    """records/s against latency per variant (log scale), the CPU floor as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latencies = document["settings"]["latencies_ms"]
    figure, axis = plt.subplots(figsize=(8, 5))
    styles = {
        "put_item": "o-",
        "batch_writer": "s-",
        "powertools": "x--",
        "ingest": "D-",
        "ingest_batch": "d:",
        "cond_put": "v-.",
        "transact": "P-.",
    }
    for variant in VARIANTS:
        points = [(x, _pick(document, variant, x)) for x in latencies]
        xs = [x for x, r in points if r]
        ys = [r["records_per_s"] for _, r in points if r]
        if xs:
            axis.plot(xs, ys, styles.get(variant, "^:"), label=LABELS[variant])
    axis.axhline(
        document["floor"]["records_per_s"], linestyle="--", color="grey", label="CPU floor"
    )
    axis.set_yscale("log")
    axis.set_xlabel("round-trip latency (ms)")
    axis.set_ylabel("records/s")
    axis.set_title(f"Ingest writer, {document['settings']['records']:,} records per event")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    save_plot(figure, path)
