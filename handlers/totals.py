"""DynamoDB Streams-triggered totals Lambda: the files table's changes -> folder counters.

One invocation = one batch of ONE shard (Lambda's DynamoDB event source, with a tumbling
window so that the event names its shard). Each folder's summed change is applied once,
conditioned on the shard's watermark on the counter (`pipeline.totals.stream`); a failed
counter write reports the first record it did not apply, and Lambda retries from there.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import aioboto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline.adapters.dynamo.stream_totals import DynamoWatermarkedCounters
from pipeline.adapters.runtime import LoopRuntime, open_dynamodb_client
from pipeline.core.retry import Backoff, Deadline
from pipeline.core.settings import Settings
from pipeline.totals.stream import apply_batch, shard_of

settings = Settings.from_env()  # cold start: fails fast with a clear message
logger = Logger()
metrics = Metrics(namespace=settings.metrics_namespace)
tracer = Tracer()
copy_config_to_registered_loggers(source_logger=logger, include={"pipeline"})
_session = aioboto3.Session()
_backoff = Backoff(base_s=settings.base_backoff_ms / 1000, cap_s=settings.max_backoff_ms / 1000)


async def _open(stack: AsyncExitStack) -> DynamoWatermarkedCounters:
    client = await open_dynamodb_client(stack, settings, _session)
    return DynamoWatermarkedCounters(client, settings.table_name, backoff=_backoff)


runtime: LoopRuntime[DynamoWatermarkedCounters] = LoopRuntime(_open)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Apply the batch's folder changes; report where to retry from if any write failed.

    The response carries `state` (empty): with a tumbling window, Lambda requires it."""
    records = event.get("Records") or []
    if not records:  # a window's final call may carry none
        return {"state": {}, "batchItemFailures": []}
    shard = shard_of(event)
    budget_ms = context.get_remaining_time_in_millis() - settings.safety_margin_ms
    deadline = Deadline(max(budget_ms, 0) / 1000)
    result = runtime.run(
        lambda store: apply_batch(
            records,
            shard,
            store.with_deadline(deadline),
            concurrency=settings.write_concurrency,
        )
    )
    metrics.add_metric("TotalsStreamRecords", MetricUnit.Count, result.records)
    metrics.add_metric("FolderTotalsUpdates", MetricUnit.Count, result.updates)
    metrics.add_metric("FolderTotalsReplayed", MetricUnit.Count, result.replayed)
    metrics.add_metric("FolderTotalsRetried", MetricUnit.Count, 1 if result.failed_seq else 0)
    logger.info(
        "Totals batch applied",
        extra={
            "shard": shard,
            "records": result.records,
            "file_changes": result.file_changes,
            "counter_updates": result.updates,
            "replayed": result.replayed,
            "retry_from": result.failed_seq,
            "failures": result.failures[:5],
        },
    )
    return {"state": {}, **result.response()}
