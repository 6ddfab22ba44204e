"""Read template.yaml into the settings the local stack mirrors (names, batching, timeouts),
with the CloudFormation reader of `pipeline.local.cfn`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.local.cfn import (
    DEFAULT_REGION,
    LOCAL_ACCOUNT_ID,
    Resolver,
    TemplateError,
)
from pipeline.local.cfn import load_template as _load

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGED_DIR = Path(__file__).resolve().parent / "data"
"""Where a wheel carries template.yaml and openapi.json (copied at build time: setup.py)."""


def shipped_file(name: str) -> Path:
    """A top-level project file: the checkout's own, else the copy an installed wheel ships."""
    checkout = REPO_ROOT / name
    return checkout if checkout.exists() else PACKAGED_DIR / name


TEMPLATE_PATH = shipped_file("template.yaml")
OPENAPI_PATH = shipped_file("openapi.json")

"""moto's default account: queue and bucket ARNs on the embedded stack use it."""

# Logical IDs fixed by the template contract.
BUCKET_ID = "FilesBucket"
TABLE_ID = "FilesTable"
QUEUE_ID = "IngestQueue"
DLQ_ID = "IngestDeadLetterQueue"
INGEST_FUNCTION_ID = "IngestFunction"
API_FUNCTION_ID = "ApiFunction"
API_ID = "FilesApi"
TOTALS_FUNCTION_ID = "TotalsFunction"


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template at `path` (the stack's own by default), intrinsics kept as `Tagged`."""
    return _load(path)


@dataclass(frozen=True)
class FunctionConfig:
    """What the local stack needs to know to run one function like Lambda does."""

    logical_id: str
    handler: str
    """`module.attribute`, e.g. `handlers.ingest.lambda_handler`."""
    timeout_s: int
    memory_mb: int
    environment: dict[str, str]
    """Environment.Variables (Globals merged), resolved; unresolvable ones dropped."""
    reserved_concurrency: int | None = None
    """ReservedConcurrentExecutions, when the template sets it."""


@dataclass(frozen=True)
class StackConfig:
    """Names and settings of the deployment, as template.yaml declares them."""

    bucket: str
    table: str
    queue_name: str
    dlq_name: str
    batch_size: int
    batching_window_s: int
    max_receive_count: int
    visibility_timeout_s: int
    dlq_retention_s: int
    queue_retention_s: int
    notification_events: tuple[str, ...]
    """S3 events the bucket sends to the queue, e.g. ("s3:ObjectCreated:*", ...)."""
    max_concurrency: int
    report_batch_item_failures: bool
    ingest: FunctionConfig
    api: FunctionConfig
    api_routes: tuple[tuple[str, str], ...]
    """(method, resource path) pairs served by the API function, e.g. ("GET", "/files")."""
    api_authorization: dict[tuple[str, str], str] = field(default_factory=dict)
    """`AWS_IAM` or `NONE` per route: the API's DefaultAuthorizer unless the event overrides."""
    stage: str = "prod"
    region: str = DEFAULT_REGION
    bucket_versioning: str = "Suspended"
    """The bucket's VersioningConfiguration.Status (the BucketVersioning parameter)."""
    totals: FunctionConfig | None = None
    """The totals function (fed by the table's stream), when the template has one."""
    stream_batch_size: int = 100
    """Its DynamoDB event source's BatchSize."""

    @property
    def function_timeout_s(self) -> int:
        """The ingest function's timeout (what the SQS poller enforces)."""
        return self.ingest.timeout_s

    def with_overrides(self, **changes: Any) -> StackConfig:
        """A copy with some settings changed; `function_timeout_s` sets the ingest timeout."""
        timeout = changes.pop("function_timeout_s", None)
        config = dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
        if timeout is not None:
            config = dataclasses.replace(
                config, ingest=dataclasses.replace(config.ingest, timeout_s=int(timeout))
            )
        return config

    def with_suffix(self, suffix: str) -> StackConfig:
        """The same stack with every resource name suffixed (moto's backends are global)."""
        return dataclasses.replace(
            self,
            bucket=f"{self.bucket}-{suffix}",
            table=f"{self.table}-{suffix}",
            queue_name=f"{self.queue_name}-{suffix}",
            dlq_name=f"{self.dlq_name}-{suffix}",
        )


def _resource(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    resource = template["Resources"].get(logical_id)
    if not isinstance(resource, dict):
        raise TemplateError(f"template.yaml has no resource {logical_id}")
    return resource


def _properties(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    properties = _resource(template, logical_id).get("Properties") or {}
    if not isinstance(properties, dict):
        raise TemplateError(f"{logical_id}.Properties is not a mapping")
    return properties


def _required(value: Any, what: str) -> Any:
    if value is None:
        raise TemplateError(f"template.yaml: cannot resolve {what}")
    return value


def _function(template: Mapping[str, Any], resolver: Resolver, logical_id: str) -> FunctionConfig:
    defaults = (template.get("Globals") or {}).get("Function") or {}
    properties = {**defaults, **_properties(template, logical_id)}
    variables: dict[str, Any] = {}
    for source in (defaults, _properties(template, logical_id)):
        env = resolver.resolve((source.get("Environment") or {}).get("Variables") or {})
        variables.update(env or {})
    environment = {key: str(value) for key, value in variables.items() if value is not None}
    reserved = resolver.resolve(properties.get("ReservedConcurrentExecutions"))
    return FunctionConfig(
        logical_id=logical_id,
        handler=_required(resolver.resolve(properties.get("Handler")), f"{logical_id}.Handler"),
        timeout_s=int(resolver.resolve(properties.get("Timeout", 3))),
        memory_mb=int(resolver.resolve(properties.get("MemorySize", 128))),
        environment=environment,
        reserved_concurrency=None if reserved is None else int(reserved),
    )


def _sqs_event(template: Mapping[str, Any], resolver: Resolver) -> dict[str, Any]:
    events = _properties(template, INGEST_FUNCTION_ID).get("Events") or {}
    for event in events.values():
        if isinstance(event, dict) and event.get("Type") == "SQS":
            return resolver.resolve(event.get("Properties") or {}) or {}
    raise TemplateError(f"{INGEST_FUNCTION_ID} has no SQS event")


def _stream_event(template: Mapping[str, Any], resolver: Resolver) -> dict[str, Any]:
    """The totals function's DynamoDB event properties ({} without the function)."""
    if TOTALS_FUNCTION_ID not in template["Resources"]:
        return {}
    events = _properties(template, TOTALS_FUNCTION_ID).get("Events") or {}
    for event in events.values():
        if isinstance(event, dict) and event.get("Type") == "DynamoDB":
            return resolver.resolve(event.get("Properties") or {}) or {}
    raise TemplateError(f"{TOTALS_FUNCTION_ID} has no DynamoDB event")


def _api_routes(
    template: Mapping[str, Any], resolver: Resolver, default_authorizer: str
) -> dict[tuple[str, str], str]:
    """Authorization (`AWS_IAM`/`NONE`) by (method, path) of the API function's Api events."""
    events = _properties(template, API_FUNCTION_ID).get("Events") or {}
    routes: dict[tuple[str, str], str] = {}
    for event in events.values():
        if isinstance(event, dict) and event.get("Type") == "Api":
            properties = resolver.resolve(event.get("Properties") or {}) or {}
            authorizer = (properties.get("Auth") or {}).get("Authorizer", default_authorizer)
            if authorizer not in ("AWS_IAM", "NONE"):
                raise TemplateError(f"the local gateway cannot check authorizer {authorizer!r}")
            routes[(str(properties["Method"]).upper(), str(properties["Path"]))] = authorizer
    if not routes:
        raise TemplateError(f"{API_FUNCTION_ID} has no Api events")
    return routes


def _default_authorizer(api_props: Mapping[str, Any], resolver: Resolver) -> str:
    auth = resolver.resolve(api_props.get("Auth")) or {}
    authorizer = auth.get("DefaultAuthorizer") or "NONE"
    if authorizer not in ("AWS_IAM", "NONE"):
        raise TemplateError(f"the local gateway cannot check DefaultAuthorizer {authorizer!r}")
    return str(authorizer)


def read_stack_config(
    path: Path = TEMPLATE_PATH,
    *,
    region: str = DEFAULT_REGION,
    account_id: str = LOCAL_ACCOUNT_ID,
    parameters: Mapping[str, Any] | None = None,
) -> StackConfig:
    """The local stack's configuration from template.yaml (parameter defaults or `parameters`)."""
    template = load_template(path)
    resolver = Resolver(
        template, region=region, account_id=account_id, parameters=dict(parameters or {})
    )
    bucket = _required(
        resolver.resolve(_properties(template, BUCKET_ID).get("BucketName")), "bucket name"
    )
    table = _required(
        resolver.resolve(_properties(template, TABLE_ID).get("TableName")), "table name"
    )
    queue_props = _properties(template, QUEUE_ID)
    dlq_props = _properties(template, DLQ_ID)
    queue_name = _required(resolver.resolve(queue_props.get("QueueName")), "queue name")
    dlq_name = _required(resolver.resolve(dlq_props.get("QueueName")), "DLQ name")
    arn = f"arn:aws:sqs:{region}:{account_id}"
    resolver.names.update({BUCKET_ID: bucket, TABLE_ID: table})
    resolver.names.update(
        {QUEUE_ID: f"https://sqs/{queue_name}", DLQ_ID: f"https://sqs/{dlq_name}"}
    )
    resolver.attributes.update(
        {(QUEUE_ID, "Arn"): f"{arn}:{queue_name}", (DLQ_ID, "Arn"): f"{arn}:{dlq_name}"}
    )
    redrive = resolver.resolve(queue_props.get("RedrivePolicy")) or {}
    sqs_event = _sqs_event(template, resolver)
    api_props = _properties(template, API_ID) if API_ID in template["Resources"] else {}
    notifications = resolver.resolve(
        _properties(template, BUCKET_ID).get("NotificationConfiguration")
    )
    versioning = resolver.resolve(_properties(template, BUCKET_ID).get("VersioningConfiguration"))
    events = tuple(
        str(entry["Event"])
        for entry in (notifications or {}).get("QueueConfigurations") or []
        if isinstance(entry, dict) and entry.get("Event")
    )
    routes = _api_routes(template, resolver, _default_authorizer(api_props, resolver))
    return StackConfig(
        bucket=str(bucket),
        table=str(table),
        queue_name=str(queue_name),
        dlq_name=str(dlq_name),
        batch_size=int(sqs_event.get("BatchSize", 10)),
        batching_window_s=int(sqs_event.get("MaximumBatchingWindowInSeconds", 0)),
        max_receive_count=int(_required(redrive.get("maxReceiveCount"), "maxReceiveCount")),
        visibility_timeout_s=int(resolver.resolve(queue_props.get("VisibilityTimeout", 30))),
        dlq_retention_s=int(resolver.resolve(dlq_props.get("MessageRetentionPeriod", 345_600))),
        queue_retention_s=int(resolver.resolve(queue_props.get("MessageRetentionPeriod", 345_600))),
        notification_events=events or ("s3:ObjectCreated:*", "s3:ObjectRemoved:*"),
        max_concurrency=int((sqs_event.get("ScalingConfig") or {}).get("MaximumConcurrency", 2)),
        report_batch_item_failures="ReportBatchItemFailures"
        in (sqs_event.get("FunctionResponseTypes") or []),
        ingest=_function(template, resolver, INGEST_FUNCTION_ID),
        api=_function(template, resolver, API_FUNCTION_ID),
        api_routes=tuple(routes),
        api_authorization=routes,
        stage=str(resolver.resolve(api_props.get("StageName")) or "prod"),
        region=region,
        bucket_versioning=str((versioning or {}).get("Status") or "Suspended"),
        totals=_function(template, resolver, TOTALS_FUNCTION_ID)
        if TOTALS_FUNCTION_ID in template["Resources"]
        else None,
        stream_batch_size=int(_stream_event(template, resolver).get("BatchSize", 100)),
    )
