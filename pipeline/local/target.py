"""Which stack, bucket, table, endpoints and API every command acts on: one resolver.

One precedence, for `up`, `reconcile`, `adopt`, `migrate-table` and `watch`:

1. flags: `--stack-name` (a deployed stack's outputs), `--endpoint-url`,
   `--dynamodb-endpoint-url`, `--api-url`, `--bucket`, `--table`, `--region`;
2. the environment: `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` (botocore's own
   variables: `_S3`, `_DYNAMODB`, `_SQS`, `_EVENTBRIDGE`, `_SSM`, `_CLOUDFORMATION`),
   `AWS_REGION` / `AWS_DEFAULT_REGION`, and the SDK's credential chain;
3. a running `up`'s state file (`pipeline.local.state`): its endpoints, region, credentials,
   bucket, table, queue and API URL;
4. template.yaml: its names, on the local stack's default ports (moto 4000, DynamoDB Local
   4001, API 3000).

Per service, an endpoint comes from the first level that names one (a service flag before
`--endpoint-url`, `AWS_ENDPOINT_URL_DYNAMODB` before `AWS_ENDPOINT_URL`). A level that names
a place (an endpoint or a stack) ends the search for the place: the state file is read only
when neither flags nor environment name one, and then the running stack's region and
credentials come with its endpoints (they are what its engines accept). Names (bucket,
table) a flag gives are kept at every level. `--bucket` and `--table` together with no
endpoint, no running `up` holding that bucket, name a bucket and table on AWS (as do
`migrate-table`'s `--source` and `--target`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.local.provision import ResourceError
from pipeline.local.state import LocalStack, read_local_stack, state_path

LOCAL_ENDPOINT = "http://127.0.0.1:{port}"
DEFAULT_MOTO_PORT = 4000
DEFAULT_DYNAMODB_PORT = 4001
DEFAULT_API_PORT = 3000
FAKE_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
"""What the embedded stack's engines accept (`pipeline.local.stack.FAKE_CREDENTIALS`)."""
ENV_SERVICES = {
    "s3": "S3",
    "dynamodb": "DYNAMODB",
    "sqs": "SQS",
    "events": "EVENTBRIDGE",
    "ssm": "SSM",
    "cloudformation": "CLOUDFORMATION",
}
"""Our boto3 service names -> the suffix of botocore's AWS_ENDPOINT_URL_<SERVICE>."""
ANY = "*"
"""The endpoints key of the endpoint every service without its own uses."""


@dataclass(frozen=True)
class Flags:
    """What a command's flags say about the target (None: not given)."""

    region: str | None = None
    endpoint_url: str | None = None
    dynamodb_endpoint_url: str | None = None
    stack_name: str | None = None
    bucket: str | None = None
    table: str | None = None
    api_url: str | None = None
    queue_name: str | None = None
    template: Path | None = None
    moto_port: int = DEFAULT_MOTO_PORT
    dynamodb_port: int = DEFAULT_DYNAMODB_PORT

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Flags:
        """The target flags of a parsed command line (absent flags are None)."""
        values: dict[str, Any] = {n: getattr(args, n, None) for n in cls.__dataclass_fields__}
        values["moto_port"] = values["moto_port"] or DEFAULT_MOTO_PORT
        values["dynamodb_port"] = values["dynamodb_port"] or DEFAULT_DYNAMODB_PORT
        return cls(**values)


@dataclass(frozen=True)
class Resolved:
    """The target a command acts on, and where each part of it came from."""

    source: str
    """Which level chose the place: 'flags', 'environment', 'stack NAME', 'local stack ...'."""
    region: str
    bucket: str | None = None
    table: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)
    """Service (or `ANY`) -> endpoint URL; no entry: AWS's own endpoint."""
    credentials: dict[str, str] | None = None
    """Explicit access key and secret (a local stack's); None: the SDK's chain."""
    api_url: str | None = None
    queue_name: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    """The deployed stack's outputs (with --stack-name)."""
    local: LocalStack | None = None
    """The running `up` this target is, if it is one."""

    def endpoint(self, service: str) -> str | None:
        """The endpoint of `service`; None: AWS."""
        return self.endpoints.get(service) or self.endpoints.get(ANY)

    def client_kwargs(self, service: str) -> dict[str, Any]:
        """Region, endpoint and credentials of a boto3 client for `service`."""
        kwargs: dict[str, Any] = {"region_name": self.region}
        endpoint = self.endpoint(service)
        if endpoint:
            kwargs["endpoint_url"] = endpoint
        kwargs.update(self.credentials or {})
        return kwargs

    def describe(self, command: str) -> str:
        """One line: what `command` acts on, and where that came from."""
        parts = []
        if self.bucket:
            parts.append(f"bucket {self.bucket}")
        if self.table:
            parts.append(f"table {self.table}")
        if self.api_url:
            parts.append(f"API {self.api_url}")
        s3, dynamodb = self.endpoint("s3"), self.endpoint("dynamodb")
        if s3 == dynamodb:
            parts.append(f"endpoint {s3 or 'AWS'}")
        else:
            parts.append(f"S3 {s3 or 'AWS'}, DynamoDB {dynamodb or 'AWS'}")
        parts.append(f"region {self.region}")
        return f"{command}: {', '.join(parts)} (target from {self.source})"


def environment_endpoints(env: Mapping[str, str]) -> dict[str, str]:
    """The endpoints botocore would take from the environment (service or `ANY` -> URL)."""
    if env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return {}
    found = {ANY: env["AWS_ENDPOINT_URL"]} if env.get("AWS_ENDPOINT_URL") else {}
    for service, suffix in ENV_SERVICES.items():
        if env.get(f"AWS_ENDPOINT_URL_{suffix}"):
            found[service] = env[f"AWS_ENDPOINT_URL_{suffix}"]
    return found


def flag_endpoints(flags: Flags) -> dict[str, str]:
    """The endpoints the flags name (service or `ANY` -> URL)."""
    found = {ANY: flags.endpoint_url} if flags.endpoint_url else {}
    if flags.dynamodb_endpoint_url:
        found["dynamodb"] = flags.dynamodb_endpoint_url
    return found


def layered(flags: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    """Per service: a flag (its own, then `--endpoint-url`), then the environment's."""
    merged = dict(flags)
    for service in ENV_SERVICES:
        url = flags.get(service) or flags.get(ANY) or env.get(service) or env.get(ANY)
        if url:
            merged[service] = url
    if ANY not in merged and env.get(ANY):
        merged[ANY] = env[ANY]
    return merged


def default_region(flags: Flags, env: Mapping[str, str]) -> str | None:
    """The region the flags or the environment name, if any."""
    return flags.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None


def template_config(flags: Flags, region: str) -> Any:
    """template.yaml's `StackConfig` (the `--template` given, else the project's)."""
    from pipeline.local.template import TEMPLATE_PATH, read_stack_config

    return read_stack_config(flags.template or TEMPLATE_PATH, region=region)


def stack_outputs(resolved: Resolved, stack_name: str) -> dict[str, str]:
    """A deployed stack's outputs (CloudFormation DescribeStacks)."""
    import boto3

    factory: Any = boto3.client
    client = factory("cloudformation", **resolved.client_kwargs("cloudformation"))
    try:
        stacks = client.describe_stacks(StackName=stack_name)["Stacks"]
    except Exception as error:
        raise ResourceError(f"cannot describe stack {stack_name!r}: {error}") from None
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs") or []}


def has_bucket(local: LocalStack, bucket: str) -> bool:
    """Whether the running local stack holds `bucket`."""
    import boto3

    factory: Any = boto3.client
    s3 = factory(
        "s3", region_name=local.region, endpoint_url=local.endpoint("s3"), **local.credentials
    )
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception:
        return False
    return True


@dataclass
class Resolver:
    """Resolves `Flags` with the precedence of the module docstring; the environment, state
    file and AWS look-ups are injectable for tests."""

    flags: Flags
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    read_state: Callable[[], LocalStack | None] = read_local_stack
    outputs: Callable[[Resolved, str], dict[str, str]] = stack_outputs
    holds_bucket: Callable[[LocalStack, str], bool] = has_bucket
    config: Callable[[Flags, str], Any] = template_config
    names_on_aws: bool = False
    """The command names its resources itself (`migrate-table`'s tables): with no place
    named and no running `up`, they are on AWS, not on the template's local ports."""

    def resolve(self) -> Resolved:
        """The target: bucket, table, endpoints, region, credentials, API URL, queue."""
        flags, env = self.flags, self.env
        region = default_region(flags, env)
        named_flags, named_env = flag_endpoints(flags), environment_endpoints(env)
        endpoints = layered(named_flags, named_env)
        if flags.stack_name:
            return self._deployed(region, endpoints)
        if endpoints:
            source = "flags" if named_flags else _env_source(named_env)
            return self._named_place(source, region, endpoints)
        local = self.read_state()
        if local is not None and (not flags.bucket or self.holds_bucket(local, flags.bucket)):
            return self._local(local)
        if (flags.bucket and flags.table) or self.names_on_aws:  # no place named: AWS
            return Resolved(
                "flags (AWS: no endpoint named)",
                region or self._template_region(),
                flags.bucket,
                flags.table,
                api_url=flags.api_url,
                queue_name=flags.queue_name,
            )
        if local is not None:
            raise ResourceError(
                f"the running local stack has no bucket {flags.bucket!r}; for a bucket on "
                "AWS, pass --table too"
            )
        return self._template(region)

    def resolve_api(self) -> Resolved:
        """The API a reader (`watch`) calls: `--stack-name`'s ApiUrl or `--api-url`, then a
        running `up`'s API (and bucket), then the local stack's default port and template
        bucket. No environment variable names an API; the environment gives the region and
        the credentials for an API that is not local."""
        flags, region = self.flags, default_region(self.flags, self.env)
        if flags.stack_name:
            endpoints = layered(flag_endpoints(flags), environment_endpoints(self.env))
            resolved = self._deployed(region, endpoints)
            if not resolved.api_url:
                raise ResourceError(f"stack {flags.stack_name!r} has no ApiUrl output")
            return replace(resolved, bucket=flags.bucket or resolved.bucket)
        local = self.read_state()
        if local is not None and (not flags.api_url or _same_url(flags.api_url, local.api_url)):
            return replace(self._local(local), api_url=local.api_url)
        if flags.api_url:
            return Resolved(
                "flags",
                region or self._template_region(),
                flags.bucket,
                None,
                api_url=flags.api_url,
            )
        region = region or self._template_region()
        try:
            bucket = flags.bucket or self._config(region).bucket
        except Exception:  # no template or no PyYAML (no `local` extra): the API's default
            bucket = None
        return Resolved(
            "template.yaml (the local stack's default port)",
            region,
            bucket,
            credentials=dict(FAKE_KEYS),
            api_url=LOCAL_ENDPOINT.format(port=DEFAULT_API_PORT),
        )

    def _template_region(self) -> str:
        from pipeline.local.template import DEFAULT_REGION

        return DEFAULT_REGION

    def _deployed(self, region: str | None, endpoints: dict[str, str]) -> Resolved:
        flags = self.flags
        base = Resolved(f"stack {flags.stack_name}", region or self._template_region())
        base = replace(base, endpoints=endpoints)
        outputs = self.outputs(base, str(flags.stack_name))
        return replace(
            base,
            bucket=outputs.get("BucketName"),
            table=flags.table or outputs.get("TableName"),
            api_url=flags.api_url or outputs.get("ApiUrl"),
            queue_name=flags.queue_name,
            outputs=outputs,
        )

    def _named_place(self, source: str, region: str | None, endpoints: dict[str, str]) -> Resolved:
        flags = self.flags
        region = region or self._template_region()
        config = None
        if not (flags.bucket and flags.table and flags.queue_name):
            config = self._config(region)
        return Resolved(
            source,
            region,
            flags.bucket or (config.bucket if config else None),
            flags.table or (config.table if config else None),
            endpoints,
            api_url=flags.api_url,
            queue_name=flags.queue_name or (config.queue_name if config else None),
        )

    def _local(self, local: LocalStack) -> Resolved:
        flags = self.flags
        return Resolved(
            f"the running local stack (pid {local.pid}, {state_path()})",
            flags.region or local.region,
            flags.bucket or local.bucket,
            flags.table or local.table,
            {ANY: local.endpoint("s3"), **local.endpoints},
            dict(local.credentials) or None,
            api_url=flags.api_url or local.api_url,
            queue_name=flags.queue_name or local.queue_name,
            local=local,
        )

    def _template(self, region: str | None) -> Resolved:
        flags = self.flags
        region = region or self._template_region()
        config = self._config(region)
        return Resolved(
            "template.yaml (the local stack's default ports)",
            region,
            flags.bucket or config.bucket,
            flags.table or config.table,
            {
                ANY: LOCAL_ENDPOINT.format(port=flags.moto_port),
                "dynamodb": LOCAL_ENDPOINT.format(port=flags.dynamodb_port),
            },
            dict(FAKE_KEYS),
            api_url=flags.api_url or LOCAL_ENDPOINT.format(port=DEFAULT_API_PORT),
            queue_name=flags.queue_name or config.queue_name,
        )

    def _config(self, region: str) -> Any:
        return self.config(self.flags, region)


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _env_source(named: dict[str, str]) -> str:
    names = sorted(f"AWS_ENDPOINT_URL_{ENV_SERVICES[s]}" for s in named if s != ANY)
    if ANY in named:
        names.insert(0, "AWS_ENDPOINT_URL")
    return "the environment (" + ", ".join(names) + ")"


def resolve(args: argparse.Namespace, **overrides: Any) -> Resolved:
    """The target of a parsed command line (see the module docstring for the precedence)."""
    return Resolver(Flags.from_args(args), **overrides).resolve()
