"""The one target resolver (`pipeline.local.target`): flags, then the environment, then a
running `up`'s state file, then template.yaml; and the commands that use it."""

from __future__ import annotations

import os
from typing import Any

import pytest

from pipeline.local.provision import ResourceError
from pipeline.local.state import LocalStack
from pipeline.local.target import ANY, Flags, Resolved, Resolver, environment_endpoints

UP = LocalStack(
    pid=os.getpid(),
    region="eu-west-1",
    bucket="serverless-event4-v",
    table="files-v",
    queue_name="ingest-v",
    api_url="http://127.0.0.1:3100",
    endpoints={"s3": "http://127.0.0.1:4100", "dynamodb": "http://127.0.0.1:4101"},
    credentials={"aws_access_key_id": "testing", "aws_secret_access_key": "testing"},
)


class Config:
    bucket, table, queue_name = "tpl-bucket", "tpl-table", "tpl-queue"


def resolver(
    env: dict[str, str] | None = None,
    state: LocalStack | None = None,
    holds: bool = True,
    **flags: Any,
) -> Resolver:
    def outputs(resolved: Resolved, name: str) -> dict[str, str]:
        return {"BucketName": f"{name}-bucket", "TableName": f"{name}-table", "ApiUrl": "https://x"}

    return Resolver(
        Flags(**flags),
        env=env or {},
        read_state=lambda: state,
        outputs=outputs,
        holds_bucket=lambda local, bucket: holds,
        config=lambda flags, region: Config(),
    )


def test_flags_come_first_service_by_service() -> None:
    env = {"AWS_ENDPOINT_URL": "http://env", "AWS_ENDPOINT_URL_DYNAMODB": "http://env-ddb"}
    resolved = resolver(env, UP, endpoint_url="http://flag").resolve()
    assert resolved.source == "flags" and resolved.local is None
    assert resolved.endpoint("s3") == resolved.endpoint("dynamodb") == "http://flag"
    assert (resolved.bucket, resolved.table) == ("tpl-bucket", "tpl-table")
    only_ddb = resolver(env, UP, dynamodb_endpoint_url="http://flag-ddb").resolve()
    assert only_ddb.endpoint("dynamodb") == "http://flag-ddb"
    assert only_ddb.endpoint("s3") == "http://env"


def test_the_environment_comes_before_a_running_up() -> None:
    env = {
        "AWS_ENDPOINT_URL": "http://env",
        "AWS_ENDPOINT_URL_DYNAMODB": "http://env-ddb",
        "AWS_REGION": "us-east-2",
    }
    resolved = resolver(env, UP, bucket="b", table="t").resolve()
    assert resolved.local is None and resolved.credentials is None  # the SDK's chain
    assert resolved.endpoint("s3") == "http://env"
    assert resolved.endpoint("dynamodb") == "http://env-ddb"
    assert resolved.region == "us-east-2" and (resolved.bucket, resolved.table) == ("b", "t")
    assert "AWS_ENDPOINT_URL_DYNAMODB" in resolved.source


def test_botocores_switch_turns_the_environments_endpoints_off() -> None:
    env = {"AWS_ENDPOINT_URL": "http://env", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}
    assert environment_endpoints(env) == {}
    assert environment_endpoints({"AWS_ENDPOINT_URL_EVENTBRIDGE": "http://e"}) == {
        "events": "http://e"
    }


def test_a_running_up_comes_before_the_template_with_its_region_and_credentials() -> None:
    resolved = resolver({"AWS_REGION": "us-east-2"}, UP).resolve()
    assert resolved.local == UP and resolved.region == "eu-west-1"
    assert (resolved.bucket, resolved.table, resolved.queue_name) == (
        "serverless-event4-v",
        "files-v",
        "ingest-v",
    )
    assert resolved.client_kwargs("dynamodb")["endpoint_url"] == "http://127.0.0.1:4101"
    assert resolved.client_kwargs("ssm")["endpoint_url"] == "http://127.0.0.1:4100"
    assert resolved.credentials == UP.credentials
    # a --region flag still wins
    assert resolver({}, UP, region="ap-south-1").resolve().region == "ap-south-1"


def test_the_template_is_last_on_the_local_stacks_default_ports() -> None:
    resolved = resolver().resolve()
    assert resolved.source.startswith("template.yaml")
    assert resolved.endpoints == {ANY: "http://127.0.0.1:4000", "dynamodb": "http://127.0.0.1:4001"}
    assert (resolved.bucket, resolved.region) == ("tpl-bucket", "ap-south-1")


def test_bucket_and_table_with_no_place_are_on_aws() -> None:
    resolved = resolver(bucket="b", table="t").resolve()
    assert resolved.endpoints == {} and resolved.credentials is None
    # a running up that lacks the bucket does not take it
    assert resolver({}, UP, holds=False, bucket="b", table="t").resolve().local is None
    with pytest.raises(ResourceError, match="has no bucket 'b'"):
        resolver({}, UP, holds=False, bucket="b").resolve()


def test_a_deployed_stack_names_bucket_table_and_api() -> None:
    resolved = resolver({"AWS_ENDPOINT_URL": "http://env"}, UP, stack_name="prod").resolve()
    assert (resolved.bucket, resolved.table) == ("prod-bucket", "prod-table")
    assert resolved.source == "stack prod" and resolved.local is None


def test_the_target_line_names_what_and_where_and_why() -> None:
    line = resolver({}, UP).resolve().describe("reconcile")
    assert line.startswith("reconcile: bucket serverless-event4-v, table files-v")
    assert "S3 http://127.0.0.1:4100, DynamoDB http://127.0.0.1:4101" in line
    assert "target from the running local stack (pid" in line and "\n" not in line


def test_the_api_a_reader_follows() -> None:
    assert resolver({}, UP).resolve_api().api_url == "http://127.0.0.1:3100"
    flagged = resolver({}, UP, api_url="http://127.0.0.1:9/").resolve_api()
    assert flagged.api_url == "http://127.0.0.1:9/" and flagged.local is None
    same = resolver({}, UP, api_url="http://127.0.0.1:3100/").resolve_api()
    assert same.bucket == "serverless-event4-v"
    default = resolver().resolve_api()
    assert (default.api_url, default.bucket) == ("http://127.0.0.1:3000", "tpl-bucket")
    assert resolver(stack_name="prod").resolve_api().api_url == "https://x"


def test_up_takes_an_emulator_from_the_environment_after_its_flags(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import argparse

    from pipeline.local.commands.up import _endpoint_source

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    flagged = argparse.Namespace(endpoint_url="http://flag", stack_name=None, queue_url=None)
    assert _endpoint_source(flagged) == "target from flags"
    assert flagged.endpoint_url == "http://flag"
    plain = argparse.Namespace(endpoint_url=None, stack_name=None, queue_url=None)
    assert "AWS_ENDPOINT_URL" in _endpoint_source(plain)
    assert plain.endpoint_url == "http://127.0.0.1:4566"
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    embedded = argparse.Namespace(endpoint_url=None, stack_name=None, queue_url=None)
    assert _endpoint_source(embedded) == "target from template.yaml"
    assert embedded.endpoint_url is None
