"""Read template.yaml into the settings the local stack mirrors (names, batching, timeouts).

A tiny CloudFormation reader: YAML with the short intrinsic tags (`!Ref`, `!Sub`, `!GetAtt`,
`!If`, ...), `Ref` resolved to parameter defaults, pseudo parameters and the physical names of
the few resources the local stack creates. Anything it cannot resolve is `None`, never a guess.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGED_DIR = Path(__file__).resolve().parent / "data"
"""Where a wheel carries template.yaml and openapi.json (copied at build time: setup.py)."""


def shipped_file(name: str) -> Path:
    """A top-level project file: the checkout's own, else the copy an installed wheel ships."""
    checkout = REPO_ROOT / name
    return checkout if checkout.exists() else PACKAGED_DIR / name


TEMPLATE_PATH = shipped_file("template.yaml")
OPENAPI_PATH = shipped_file("openapi.json")

DEFAULT_REGION = "ap-south-1"
LOCAL_ACCOUNT_ID = "123456789012"
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


class TemplateError(ValueError):
    """template.yaml does not describe what the local stack needs."""


@dataclass(frozen=True)
class Tagged:
    """A short-form intrinsic function as written in YAML (`!Sub "..."`)."""

    name: str
    value: Any


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps `!Tag value` as `Tagged("Fn::Tag"/"Ref", value)`."""


def _construct_tagged(loader: _Loader, suffix: str, node: yaml.Node) -> Tagged:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if name == "Fn::GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return Tagged(name, value)


_Loader.add_multi_constructor("!", _construct_tagged)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML template (short intrinsic tags allowed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"template not found: {path}") from None
    document = yaml.load(text, Loader=_Loader)
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources)")
    return document


class _Unresolved(Exception):
    pass


@dataclass
class Resolver:
    """Evaluates intrinsic functions against parameter defaults and known physical names."""

    template: Mapping[str, Any]
    region: str = DEFAULT_REGION
    account_id: str = LOCAL_ACCOUNT_ID
    stack_name: str = "local"
    parameters: dict[str, Any] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    """Physical names of resources, by logical ID (what `Ref` returns for them)."""
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, spec in (self.template.get("Parameters") or {}).items():
            if name not in self.parameters and isinstance(spec, dict) and "Default" in spec:
                self.parameters[name] = spec["Default"]

    def pseudo(self) -> dict[str, str]:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }

    def resolve(self, value: Any) -> Any:
        """The value with every intrinsic evaluated; `None` where that is not possible."""
        try:
            return self._eval(value)
        except _Unresolved:
            return None

    def _ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        pseudo = self.pseudo()
        if name in pseudo:
            return pseudo[name]
        if name in self.names:
            return self.names[name]
        raise _Unresolved(name)

    def _condition(self, name: str) -> bool:
        conditions = self.template.get("Conditions") or {}
        if name not in conditions:
            raise _Unresolved(name)
        return bool(self._eval(conditions[name]))

    def _eval(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._lenient(item) for item in value]
        if isinstance(value, Tagged):
            return self._intrinsic(value.name, value.value)
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, arg),) = value.items()
                if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                    return self._intrinsic(key, arg)
            return {key: self._lenient(item) for key, item in value.items()}
        return value

    def _lenient(self, value: Any) -> Any:
        """Inside a list or mapping, an unresolvable member becomes `None`, not the whole."""
        try:
            return self._eval(value)
        except _Unresolved:
            return None

    def _intrinsic(self, name: str, arg: Any) -> Any:
        if name == "Ref":
            return self._ref(self._eval(arg))
        if name == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            local = {key: self._eval(item) for key, item in variables.items()}

            def substitute(match: re.Match[str]) -> str:
                token = match.group(1)
                if token.startswith("!"):
                    return "${" + token[1:] + "}"
                if token in local:
                    return str(local[token])
                if "." in token:
                    return str(self._getatt(*token.split(".", 1)))
                return str(self._ref(token))

            return re.sub(r"\$\{([^}]+)\}", substitute, text)
        if name == "Fn::GetAtt":
            logical_id, attribute = self._eval(arg)
            return self._getatt(logical_id, attribute)
        if name == "Fn::If":
            condition, when_true, when_false = arg
            chosen = when_true if self._condition(condition) else when_false
            if isinstance(chosen, dict) and chosen.get("Ref") == "AWS::NoValue":
                return None
            if (
                isinstance(chosen, Tagged)
                and chosen.name == "Ref"
                and chosen.value == "AWS::NoValue"
            ):
                return None
            return self._eval(chosen)
        if name == "Fn::Equals":
            left, right = (self._eval(item) for item in arg)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not self._eval(arg[0])
        if name == "Fn::And":
            return all(self._eval(item) for item in arg)
        if name == "Fn::Or":
            return any(self._eval(item) for item in arg)
        if name == "Condition":
            return self._condition(arg)
        if name == "Fn::Join":
            separator, items = arg
            return str(separator).join(str(item) for item in self._eval(items))
        if name == "Fn::Select":
            index, items = arg
            return self._eval(items)[int(self._eval(index))]
        raise _Unresolved(name)

    def _getatt(self, logical_id: str, attribute: str) -> Any:
        if (logical_id, attribute) in self.attributes:
            return self.attributes[(logical_id, attribute)]
        raise _Unresolved(f"{logical_id}.{attribute}")


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
