"""SQS-triggered ingest Lambda: S3 notifications -> the files table, partial batch failures."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import aioboto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline.adapters.dynamo.registry import DynamoBucketRegistry
from pipeline.adapters.dynamo.shard_plans import CachedShardPlans
from pipeline.adapters.dynamo.writer import DynamoFileStore
from pipeline.adapters.runtime import LoopRuntime, open_dynamodb_client, open_s3_client
from pipeline.adapters.s3_objects import S3ObjectReader
from pipeline.core.retry import Backoff, Deadline
from pipeline.core.settings import Settings
from pipeline.feed.positions import Stamper
from pipeline.ingest.batch import IngestResult, ingest
from pipeline.ingest.objects import LazyObjectReader, ObjectReader
from pipeline.ingest.versions import VersionResolver

settings = Settings.from_env()  # cold start: fails fast with a clear message
logger = Logger()
metrics = Metrics(namespace=settings.metrics_namespace)
tracer = Tracer()
copy_config_to_registered_loggers(source_logger=logger, include={"pipeline"})
_session = aioboto3.Session()


_backoff = Backoff(base_s=settings.base_backoff_ms / 1000, cap_s=settings.max_backoff_ms / 1000)


async def _open_store(stack: AsyncExitStack) -> DynamoFileStore:
    client = await open_dynamodb_client(stack, settings, _session)
    return DynamoFileStore(
        client,
        settings.table_name,
        concurrency=settings.write_concurrency,
        backoff=_backoff,
        stamper=Stamper(settings.feed_settle_ms),
    )


@dataclass(frozen=True)
class IngestServices:
    """What each thread's runtime keeps: the table's store and the S3 version resolver."""

    store: DynamoFileStore
    resolver: VersionResolver | None = None
    plans: CachedShardPlans | None = None
    tracked: DynamoBucketRegistry | None = None


async def _open_services(stack: AsyncExitStack) -> IngestServices:
    async def open_reader() -> ObjectReader:  # S3 client opened on the first version delete
        return S3ObjectReader(await open_s3_client(stack, settings, _session))

    resolver = VersionResolver(
        LazyObjectReader(open_reader), concurrency=settings.write_concurrency, backoff=_backoff
    )
    store = await _open_store(stack)
    plans = CachedShardPlans(store.client, settings.table_name, settings.shard_plan_ttl_s)
    tracked = None
    if settings.tracked_bucket:  # a deployment: events of untracked buckets are not stored
        tracked = DynamoBucketRegistry(store.client, settings.table_name, settings.tracked_bucket)
    return IngestServices(store, resolver, plans, tracked)


def _services(value: IngestServices | DynamoFileStore) -> IngestServices:
    """The runtime's value; a bare store (a runtime swapped in by a test) has no resolver."""
    return value if isinstance(value, IngestServices) else IngestServices(value)


runtime: LoopRuntime[IngestServices] = LoopRuntime(_open_services)


def _record_metrics(result: IngestResult) -> None:
    metrics.add_metric("BatchSize", MetricUnit.Count, result.messages)
    metrics.add_metric("RecordsWritten", MetricUnit.Count, result.written)
    metrics.add_metric("RecordsDeleted", MetricUnit.Count, result.deleted)
    metrics.add_metric("RecordsSkipped", MetricUnit.Count, result.skipped)
    metrics.add_metric("RecordsFailed", MetricUnit.Count, result.failed)
    metrics.add_metric("Retries", MetricUnit.Count, result.retries)
    metrics.add_metric("Throttles", MetricUnit.Count, result.throttles)
    metrics.add_metric("WriteConflicts", MetricUnit.Count, result.conflicts)
    metrics.add_metric("ObjectLookups", MetricUnit.Count, result.lookups)
    metrics.add_metric("UntrackedBucketEvents", MetricUnit.Count, result.untracked)
    metrics.add_metric("FeedRestamps", MetricUnit.Count, result.restamps)
    # One value per record written; Powertools prints an EMF document every 100 values of a
    # metric (and the rest when the handler returns), so a batch of 10,000 is 100 documents.
    for lag in result.lags_ms:
        metrics.add_metric("IngestLagMs", MetricUnit.Milliseconds, lag)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Apply the batch; report the messages that could not be applied."""
    records = event.get("Records") or []
    budget_ms = context.get_remaining_time_in_millis() - settings.safety_margin_ms
    deadline = Deadline(max(budget_ms, 0) / 1000)
    result = runtime.run(
        lambda value: ingest(
            records,
            _services(value).store,
            deadline,
            tombstone_ttl_s=settings.tombstone_ttl_days * 86_400,
            resolver=_services(value).resolver,
            mode=settings.write_mode,
            plans=_services(value).plans,
            tracked=_services(value).tracked,
        )
    )
    _record_metrics(result)
    logger.info(
        "Batch applied",
        extra={
            "messages": result.messages,
            "written": result.written,
            "deleted": result.deleted,
            "skipped": result.skipped,
            "failed_messages": len(result.failed_message_ids),
            "retries": result.retries,
            "throttles": result.throttles,
            "write_conflicts": result.conflicts,
            "dynamodb_calls": result.calls,
            "s3_lookups": result.lookups,
            "untracked_bucket_events": result.untracked,
            "feed_restamps": result.restamps,
            "max_lag_ms": max(result.lags_ms, default=0),
        },
    )
    return result.response()
