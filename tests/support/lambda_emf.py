"""A handler that records one metric value per record, as the ingest handler does
(`IngestLagMs`), and prints one plain line: run in a quiet `environments` worker."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

metrics = Metrics(namespace="Probe", service="probe")


@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Add `records` values of one metric, print a line, answer."""
    for lag in range(int(event["records"])):
        metrics.add_metric("IngestLagMs", MetricUnit.Milliseconds, lag)
    print("plain line from the handler", flush=True)
    return {"ok": True}
