"""Scheduled reconcile Lambda: compare the bucket with the table, repair drift, resume across
invocations of at most 15 minutes (docs/reconcile.md)."""

from __future__ import annotations

import json
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline.core.settings import Settings, SettingsError
from pipeline.wiring.reconcile import Invocation, Target, lambda_run, make_clients

settings = Settings.from_env()  # cold start: fails fast with a clear message
if not settings.reconcile_bucket:
    raise SettingsError("RECONCILE_BUCKET is required: the bucket to compare the table with")
logger = Logger()
metrics = Metrics(namespace=settings.metrics_namespace)
tracer = Tracer()
target = Target(
    bucket=settings.reconcile_bucket,
    table=settings.table_name,
    region=settings.region,
    checkpoint_path=settings.reconcile_checkpoint_path,
)
clients = make_clients(target, settings.reconcile_concurrency)
_lambda: Any = boto3.client("lambda", region_name=settings.region)


def _record(invocation: Invocation) -> None:
    """Metrics of a finished run (whole-run counts); a handed-over invocation counts itself."""
    summary = invocation.summary
    if not summary.complete:
        metrics.add_metric("RunsContinued", MetricUnit.Count, 1)
        return
    metrics.add_metric("KeysListed", MetricUnit.Count, summary.listed)
    metrics.add_metric("DriftFound", MetricUnit.Count, summary.drift)
    metrics.add_metric("Missing", MetricUnit.Count, summary.missing)
    metrics.add_metric("Extra", MetricUnit.Count, summary.extra)
    metrics.add_metric("Stale", MetricUnit.Count, summary.stale)
    metrics.add_metric("Repaired", MetricUnit.Count, summary.repaired)
    metrics.add_metric("RepairsFailed", MetricUnit.Count, summary.failed)
    if summary.totals is not None:
        metrics.add_metric("TotalsDrift", MetricUnit.Count, summary.totals.drift)
        metrics.add_metric("TotalsRepaired", MetricUnit.Count, summary.totals.repaired)
    metrics.add_metric("RunSeconds", MetricUnit.Seconds, summary.seconds)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Run (or continue) a reconcile; returns the run's summary so far."""

    def invoke_next(payload: dict[str, Any]) -> None:
        _lambda.invoke(
            FunctionName=context.invoked_function_arn,
            InvocationType="Event",
            Payload=json.dumps(payload).encode(),
        )

    invocation = lambda_run(
        target,
        event,
        remaining_ms=context.get_remaining_time_in_millis,
        invoke_next=invoke_next,
        clients=clients,
        tombstone_ttl_s=settings.tombstone_ttl_days * 86_400,
        concurrency=settings.reconcile_concurrency,
        totals_settle_s=settings.reconcile_totals.settle_s,
        totals_margin_s=settings.reconcile_totals.margin_s,
        totals_stamp_margin_s=settings.reconcile_totals.stamp_margin_s,
        feed_settle_ms=settings.feed_settle_ms,
    )
    _record(invocation)
    report = invocation.summary.report()
    logger.info(
        "Reconcile finished" if invocation.summary.complete else "Reconcile continues",
        extra={**report, "continuation": invocation.continuation},
    )
    return {**report, "continued": invocation.continued}
