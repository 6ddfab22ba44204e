"""The local stack mirrors the deployment: what it creates agrees with template.yaml."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from pipeline.local.dynamodb_local import DynamoDBLocal
from pipeline.local.moto_server import MotoServer
from pipeline.local.provision import provision
from pipeline.local.template import TEMPLATE_PATH, StackConfig, load_template, read_stack_config

pytestmark = pytest.mark.e2e


def raw_parameter(template: dict[str, Any], name: str) -> Any:
    return template["Parameters"][name]["Default"]


def test_settings_are_the_template_parameter_defaults() -> None:
    template = load_template(TEMPLATE_PATH)
    config = read_stack_config()
    assert config.bucket == raw_parameter(template, "BucketName") == "serverless-event4"
    assert config.table == raw_parameter(template, "TableName")
    assert config.queue_name == f"{config.bucket}-ingest"
    assert config.dlq_name == f"{config.bucket}-dlq"
    assert config.batch_size == raw_parameter(template, "IngestBatchSize")
    assert config.batching_window_s == raw_parameter(template, "IngestBatchingWindowSeconds")
    assert config.max_concurrency == raw_parameter(template, "IngestMaximumConcurrency")
    assert config.function_timeout_s == raw_parameter(template, "IngestTimeoutSeconds")
    assert config.ingest.memory_mb == raw_parameter(template, "IngestMemorySize")
    assert config.visibility_timeout_s == raw_parameter(template, "QueueVisibilityTimeoutSeconds")
    assert config.max_receive_count == raw_parameter(template, "MaxReceiveCount")
    assert config.report_batch_item_failures
    assert config.ingest.handler == "handlers.ingest.lambda_handler"
    assert config.api.handler == "handlers.api.lambda_handler"
    assert set(config.api_routes) == {
        ("GET", "/files"),
        ("GET", "/files/{filename+}"),
        ("GET", "/changes"),
        ("OPTIONS", "/files"),
        ("OPTIONS", "/files/{filename+}"),
        ("GET", "/summary"),
        ("OPTIONS", "/summary"),
        ("OPTIONS", "/changes"),
        ("GET", "/buckets"),
        ("OPTIONS", "/buckets"),
    }
    assert {route for route, auth in config.api_authorization.items() if auth == "AWS_IAM"} == {
        ("GET", "/files"),
        ("GET", "/files/{filename+}"),
        ("GET", "/summary"),
        ("GET", "/changes"),
        ("GET", "/buckets"),
    }
    for function in (config.ingest, config.api):  # the feed's settings reach every function
        assert function.environment["FEED_SETTLE_MS"] == str(
            raw_parameter(template, "FeedSettleMs")
        )
    assert set(config.notification_events) == {
        "s3:ObjectCreated:*",
        "s3:ObjectRemoved:*",
        "s3:LifecycleExpiration:*",
    }
    assert config.bucket_versioning == raw_parameter(template, "BucketVersioning")
    # the functions' environment (Globals merged) is what the local stack sets
    assert config.ingest.environment["TABLE_NAME"] == config.table
    assert config.ingest.environment["POWERTOOLS_SERVICE_NAME"] == "file-tracker-ingest"
    assert config.api.environment["POWERTOOLS_SERVICE_NAME"] == "file-tracker-api"
    assert config.api.environment["POWERTOOLS_METRICS_NAMESPACE"] == "FileTracker"


def test_the_template_keeps_the_aws_rules_the_local_stack_relies_on() -> None:
    config = read_stack_config()
    assert config.visibility_timeout_s >= 6 * config.function_timeout_s
    assert config.max_receive_count >= 5
    assert config.batching_window_s >= 1 or config.batch_size <= 10


def test_parameters_override_the_defaults() -> None:
    config = read_stack_config(parameters={"BucketName": "other-bucket", "IngestBatchSize": 10})
    assert (config.bucket, config.queue_name, config.batch_size) == (
        "other-bucket",
        "other-bucket-ingest",
        10,
    )


def test_bucket_versioning_is_the_template_parameter(
    moto_server: MotoServer, dynamodb_local: DynamoDBLocal
) -> None:
    # Given the template with BucketVersioning=Enabled
    config = read_stack_config(parameters={"BucketVersioning": "Enabled"})
    config = config.with_suffix(uuid.uuid4().hex[:8])
    assert config.bucket_versioning == "Enabled"
    s3, sqs, dynamodb = (
        boto3.client(  # type: ignore[call-overload]
            name,
            region_name=config.region,
            endpoint_url=(dynamodb_local if name == "dynamodb" else moto_server).endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        for name in ("s3", "sqs", "dynamodb")
    )

    # When the local stack provisions it / Then the bucket is versioned
    provision(s3, sqs, dynamodb, config)
    assert s3.get_bucket_versioning(Bucket=config.bucket)["Status"] == "Enabled"


def test_provisioned_resources_agree_with_the_template(
    moto_server: MotoServer, dynamodb_local: DynamoDBLocal
) -> None:
    config: StackConfig = read_stack_config().with_suffix(uuid.uuid4().hex[:8])
    clients = {
        "region_name": config.region,
        "endpoint_url": moto_server.endpoint_url,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    s3, sqs = (boto3.client(name, **clients) for name in ("s3", "sqs"))  # type: ignore[call-overload]
    dynamodb = boto3.client("dynamodb", **{**clients, "endpoint_url": dynamodb_local.endpoint_url})
    resources = provision(s3, sqs, dynamodb, config)

    attributes = sqs.get_queue_attributes(QueueUrl=resources.queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert int(attributes["VisibilityTimeout"]) == config.visibility_timeout_s
    redrive = json.loads(attributes["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == config.max_receive_count
    assert redrive["deadLetterTargetArn"].endswith(f":{config.dlq_name}")
    policy = json.loads(attributes["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"] == f"arn:aws:s3:::{config.bucket}"
    assert resources.dlq_url is not None
    dlq = sqs.get_queue_attributes(QueueUrl=resources.dlq_url, AttributeNames=["All"])["Attributes"]
    assert int(dlq["MessageRetentionPeriod"]) == config.dlq_retention_s

    table = dynamodb.describe_table(TableName=config.table)["Table"]
    template_table = load_template(TEMPLATE_PATH)["Resources"]["FilesTable"]["Properties"]
    assert table["KeySchema"] == template_table["KeySchema"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(
        template_table["AttributeDefinitions"], key=str
    )
    indexes = sorted(table["GlobalSecondaryIndexes"], key=lambda i: i["IndexName"])
    expected_indexes = sorted(
        template_table["GlobalSecondaryIndexes"], key=lambda i: i["IndexName"]
    )
    assert len(indexes) == len(expected_indexes)
    for index, expected in zip(indexes, expected_indexes, strict=True):
        assert index["IndexName"] == expected["IndexName"]
        assert index["KeySchema"] == expected["KeySchema"]
        assert index["Projection"] == expected["Projection"]
    ttl = dynamodb.describe_time_to_live(TableName=config.table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"

    notification = s3.get_bucket_notification_configuration(Bucket=config.bucket)
    (queue_config,) = notification["QueueConfigurations"]
    assert queue_config["QueueArn"] == resources.queue_arn
    assert set(queue_config["Events"]) == set(config.notification_events)


@pytest.mark.parametrize(("flag", "expected"), [([], "Suspended"), (["Enabled"], "Enabled")])
def test_the_cli_sets_the_bucket_versioning_parameter(flag: list[str], expected: str) -> None:
    import inspect

    from pipeline.local import cli

    # `_parser()` or, once the CLI takes its program name, `_parser(prog)`
    prog = ["pipeline"] if inspect.signature(cli._parser).parameters else []
    parser = cli._parser(*prog)
    args = parser.parse_args(["up", *(["--bucket-versioning", *flag] if flag else [])])
    assert cli._config(args).bucket_versioning == expected
