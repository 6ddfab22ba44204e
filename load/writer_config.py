"""The writer benchmark's constants: the table, the designs' labels, prices and the template's
ingest settings it bills with."""

from __future__ import annotations

from typing import Any

TABLE = "bench-files"
REGION = "ap-south-1"
TOMBSTONE_TTL_S = 15 * 86_400
DEFAULT_CONCURRENCY = 32
LABELS = {
    "put_item": "(a) PutItem per record",
    "batch_writer": "(b) boto3 batch_writer",
    "powertools": "(c) Powertools BatchProcessor + PutItem",
    "ingest": "(d) ingest, conditional (default)",
    "ingest_no_reads": "(d-) ingest, version reads skipped",
    "ingest_no_feed": "(d0) ingest without the change feed",
    "ingest_batch": "(e) ingest, INGEST_WRITE_MODE=batch",
    "cond_put": "(f) conditional PutItem per record",
    "transact": "(g) TransactWriteItems of 100",
    "floor": "CPU floor: SDK builds+sends BatchWriteItem",
}
VARIANTS = tuple(name for name in LABELS if name != "floor")
"""Every measured way of writing, in the order of the tables and the plot."""
MODES_TABLE = [
    "put_item",
    "batch_writer",
    "powertools",
    "ingest",
    "ingest_no_feed",
    "ingest_batch",
    "cond_put",
    "transact",
]
TARGET_LATENCY_MS = 10.0
MIN_RECORDS = 2_000
"""Below this many records per event the throughput ratios measure start-up, not ingest."""
RSS_LIMIT_MB = 128.0
# On-demand prices (us-east-1) and Lambda's (x86), per unit
PRICE_WRU = 0.625 / 1e6
PRICE_RRU = 0.125 / 1e6
PRICE_GB_S = 0.0000166667
PRICE_REQUEST = 0.20 / 1e6


def template_defaults() -> dict[str, int]:
    """The ingest function's memory size and SQS batch size as deployed by default."""
    from pipeline.local.template import load_template

    parameters = load_template()["Parameters"]
    return {
        "memory_mb": int(parameters["IngestMemorySize"]["Default"]),
        "batch_size": int(parameters["IngestBatchSize"]["Default"]),
    }


def costs(result: dict[str, Any], deployed: dict[str, int]) -> dict[str, float]:
    """Dollars per million records: DynamoDB request units (every design element's write
    units: table and indexes), Lambda duration and requests."""
    records = result["records"]
    wru = sum((result.get("units") or {"table": result["wru"]}).values())
    dynamodb = (wru * PRICE_WRU + result["rru"] * PRICE_RRU) / records * 1e6
    gb_s = result["wall_s"] / records * 1e6 * deployed["memory_mb"] / 1024
    lambda_cost = gb_s * PRICE_GB_S + 1e6 / deployed["batch_size"] * PRICE_REQUEST
    return {
        "usd_per_m_dynamodb": dynamodb,
        "usd_per_m_lambda": lambda_cost,
        "usd_per_m_total": dynamodb + lambda_cost,
    }


DEPLOYED = template_defaults()
