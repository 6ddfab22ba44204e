"""Read Lambda behind API Gateway (REST, proxy): GET /files, GET /files/{filename+},
GET /changes and GET /summary."""

from __future__ import annotations

import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline.adapters.dynamo.feed import DynamoChangeIndex
from pipeline.adapters.dynamo.reader import DynamoFileReader, make_client
from pipeline.adapters.dynamo.shard_plans import SyncShardPlans
from pipeline.adapters.dynamo.totals import DynamoTotalsStore
from pipeline.core.settings import Settings
from pipeline.read.api import build_app, feed_for

# 404s and GET /files/{filename+} add no metric; that is expected, not worth a warning each time
warnings.filterwarnings("ignore", message="No application metrics to publish")

settings = Settings.from_env()  # cold start: fails fast with a clear message
logger = Logger()
metrics = Metrics(namespace=settings.metrics_namespace)
copy_config_to_registered_loggers(source_logger=logger, include={"pipeline"})
client = make_client(settings)
plans = SyncShardPlans(client, settings.table_name, settings.shard_plan_ttl_s)
reader = DynamoFileReader(client, settings.table_name, plans=plans)
feed = feed_for(DynamoChangeIndex(client, settings.table_name), settings)
feed.shards_of = lambda bucket: plans.plan(bucket).read_feed
app = build_app(
    reader,
    settings,
    metrics=metrics,
    feed=feed,
    totals=DynamoTotalsStore(client, settings.table_name),
)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Route the API Gateway proxy event; always answer with a proxy response."""
    return app.resolve(event, context)
