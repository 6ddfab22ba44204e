"""template.yaml, checked offline: cfn-lint, the SAM transform, exact IAM, wiring, checkov.

The SAM transform runs locally with aws-sam-translator (what CloudFormation runs on deploy)
after the same CodeUri rewrite `sam package` does; no AWS account, no network.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint
from cfnlint.config import ManualArgs
from cfnlint.decode import cfn_yaml
from samtranslator.translator.transform import transform

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"
REGIONS = ["ap-south-1", "us-east-1"]

TABLE_ARN = {"Fn::GetAtt": ["FilesTable", "Arn"]}
INDEX_ARN = {"Fn::Sub": "${FilesTable.Arn}/index/by_name"}
FEED_INDEX_ARN = {"Fn::Sub": "${FilesTable.Arn}/index/by_change"}
INDEX_ACTIONS = {"dynamodb:Query"}
"""Actions granted on the listing index (not the table); every other one on the table only."""
DYNAMODB_ACTIONS = {
    # conditional writes (default): consistent BatchGetItem + PartiQL INSERT/UPDATE;
    # BatchWriteItem only for the opt-in INGEST_WRITE_MODE=batch
    "IngestFunction": {
        "dynamodb:BatchGetItem",
        "dynamodb:PartiQLInsert",
        "dynamodb:PartiQLUpdate",
        "dynamodb:BatchWriteItem",
        "dynamodb:GetItem",  # each bucket's shard plan (pipeline/core/shards.py)
    },
    "ApiFunction": {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"},
    # folder totals from the table's stream: watermarked UpdateItem (+ GetItem of a refused
    # counter's watermark) on the table, the four stream reads on the stream only
    "TotalsFunction": {
        "dynamodb:UpdateItem",
        "dynamodb:GetItem",
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    },
}
STREAM_ARN = {"Fn::GetAtt": ["FilesTable", "StreamArn"]}
STREAM_ACTIONS = {
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
}
"""Granted on the table's stream only, and only to the totals function."""
CONTRACT_DEFAULTS: dict[str, Any] = {
    "BucketName": "serverless-event4",
    "TableName": "files",
    "IngestBatchSize": 1000,
    "IngestBatchingWindowSeconds": 1,
    "IngestMaximumConcurrency": 10,  # >= 5,000 events/s: docs/performance.md, "Capacity"
    "IngestTimeoutSeconds": 60,
    "IngestMemorySize": 1769,  # one vCPU: a CPU-bound invocation costs the same per event
    "QueueVisibilityTimeoutSeconds": 360,
    "MaxReceiveCount": 5,
    "Architecture": "x86_64",
    "BucketVersioning": "Suspended",
    "ApiThrottlingRateLimit": 100,
    "ApiThrottlingBurstLimit": 200,
    "EnableAccessLogs": "false",
    "LogLevel": "INFO",
    "PageTokenSecret": "",
    "CorsAllowOrigin": "",
    "ApiAuth": "AWS_IAM",
}


class _NoManagedPolicies:
    """Stands in for the loader that lists AWS managed policies through IAM: none are used."""

    def load(self) -> dict[str, str]:
        return {}


def _load(text: str) -> dict[str, Any]:
    """Parse CloudFormation YAML (short-form tags included) into plain dicts and lists."""
    return json.loads(json.dumps(cfn_yaml.loads(text)))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return _load(TEMPLATE.read_text())


@pytest.fixture(scope="module")
def transformed(template: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The plain CloudFormation template CloudFormation would deploy."""
    packaged = copy.deepcopy(template)
    packaged["Globals"]["Function"]["CodeUri"] = "s3://artifacts-bucket/app.zip"  # sam package
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", "ap-south-1")  # the translator needs a region
        env.delenv("AWS_PROFILE", raising=False)
        yield transform(packaged, {}, _NoManagedPolicies())


def _default(template: dict[str, Any], value: Any) -> Any:
    """A literal, or the default of the parameter a `Ref` names."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return template["Parameters"][value["Ref"]]["Default"]
    return value


def _resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_statements(cfn: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role_ref = cfn["Resources"][function]["Properties"]["Role"]
    assert set(role_ref) == {"Fn::GetAtt"}, f"{function} must use a role of this stack"
    role_name = role_ref["Fn::GetAtt"][0]
    role = cfn["Resources"][role_name]
    assert role["Type"] == "AWS::IAM::Role"
    assert not role["Properties"].get("ManagedPolicyArns"), f"{role_name}: managed policies"
    attached = [
        name
        for name, res in cfn["Resources"].items()
        if res["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}
        and {"Ref": role_name} in res["Properties"].get("Roles", [])
    ]
    assert not attached, f"{role_name}: policies attached from outside the role: {attached}"
    return [
        statement
        for policy in role["Properties"].get("Policies", [])
        for statement in _as_list(policy["PolicyDocument"]["Statement"])
    ]


# ------------------------------------------------------------------------------------ linters


def test_cfn_lint_reports_nothing() -> None:
    # Given the template; When cfn-lint runs with its bundled specs (offline)
    matches = lint(TEMPLATE.read_text(), config=ManualArgs(regions=REGIONS))
    # Then there is no error and no warning (suppressions, if any, are inline)
    assert [str(m) for m in matches] == []


def test_cfn_lint_reports_nothing_on_the_transformed_template(
    transformed: dict[str, Any],
) -> None:
    matches = lint(json.dumps(transformed), config=ManualArgs(regions=REGIONS))
    assert [str(m) for m in matches] == []


def test_cfn_lint_would_catch_a_broken_template() -> None:
    # The lint path is live: a dangling reference is reported.
    broken = TEMPLATE.read_text().replace("!GetAtt FilesTable.Arn", "!GetAtt NoSuchTable.Arn")
    assert any(m.rule.id.startswith("E") for m in lint(broken, config=ManualArgs(regions=REGIONS)))


def test_sam_transform_yields_plain_cloudformation(transformed: dict[str, Any]) -> None:
    types = {res["Type"] for res in transformed["Resources"].values()}
    assert not any(t.startswith("AWS::Serverless::") for t in types)
    assert "Transform" not in transformed
    assert {
        "AWS::Lambda::Function",
        "AWS::Lambda::EventSourceMapping",
        "AWS::ApiGateway::RestApi",
        "AWS::ApiGateway::Stage",
    } <= types


def _checkov_or_skip() -> Path:
    if CHECKOV.exists():
        return CHECKOV
    reason = f"{CHECKOV.relative_to(ROOT)} is missing: run `make .venv-tools/.installed`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def test_checkov_has_no_failed_checks() -> None:
    checkov = _checkov_or_skip()
    # --skip-download: no call to the vendor's API (guidelines, severities); fully offline.
    command = [str(checkov), "--skip-download", "--framework", "cloudformation", "-o", "json"]
    completed = subprocess.run(
        [*command, "-f", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"checkov printed no JSON report (exit {completed.returncode}): {completed.stderr}"
        )
    summary = report["summary"]
    failed = [
        (c["check_id"], c["resource"], c["check_name"])
        for c in report.get("results", {}).get("failed_checks", [])
    ]
    assert failed == []
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0
    assert completed.returncode == 0, completed.stderr


def test_every_checkov_suppression_is_justified(template: dict[str, Any]) -> None:
    skips = [
        (name, skip)
        for name, res in template["Resources"].items()
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips, "the template is expected to carry its justified suppressions inline"
    for name, skip in skips:
        assert skip["id"].startswith("CKV"), (name, skip)
        assert len(skip.get("comment", "")) >= 20, f"{name}: {skip['id']} needs a reason"


# ------------------------------------------------------------------------------------ IAM


@pytest.mark.parametrize("function", sorted(DYNAMODB_ACTIONS))
def test_function_may_use_only_its_dynamodb_actions_on_the_table(
    transformed: dict[str, Any], function: str
) -> None:
    statements = _role_statements(transformed, function)
    dynamodb = [
        s
        for s in statements
        if any(str(a).startswith("dynamodb:") for a in _as_list(s.get("Action", [])))
    ]
    assert dynamodb, f"{function} has no DynamoDB statement"
    granted: set[str] = set()
    for statement in dynamodb:
        assert statement["Effect"] == "Allow"
        actions = set(_as_list(statement["Action"]))
        expected = [[INDEX_ARN], [FEED_INDEX_ARN]] if actions <= INDEX_ACTIONS else [[TABLE_ARN]]
        if actions & STREAM_ACTIONS:
            assert actions == STREAM_ACTIONS, statement
            expected = [[STREAM_ARN]]
        assert _as_list(statement["Resource"]) in expected, statement
        assert not (actions & INDEX_ACTIONS) or actions <= INDEX_ACTIONS, statement
        assert all(str(a).startswith("dynamodb:") for a in _as_list(statement["Action"]))
        assert "Condition" not in statement
        granted |= set(_as_list(statement["Action"]))
    assert granted == DYNAMODB_ACTIONS[function]


def test_only_the_api_may_query_the_change_feed_index(transformed: dict[str, Any]) -> None:
    for function in ("IngestFunction", "ApiFunction", "ReconcileFunction", "TotalsFunction"):
        resources = [
            r for s in _role_statements(transformed, function) for r in _as_list(s["Resource"])
        ]
        assert (FEED_INDEX_ARN in resources) == (function == "ApiFunction"), function


@pytest.mark.parametrize("function", sorted(DYNAMODB_ACTIONS))
def test_function_role_has_no_wildcards(transformed: dict[str, Any], function: str) -> None:
    for statement in _role_statements(transformed, function):
        assert "NotAction" not in statement and "NotResource" not in statement, statement
        actions = [str(a) for a in _as_list(statement["Action"])]
        assert not any("*" in action for action in actions), statement
        if "*" in _as_list(statement["Resource"]):
            # X-Ray has no resource-level permissions: the only statement allowed on '*'.
            assert all(a.startswith("xray:Put") for a in actions), statement


def test_ingest_role_polls_only_the_ingest_queue(transformed: dict[str, Any]) -> None:
    sqs = [
        s
        for s in _role_statements(transformed, "IngestFunction")
        if any(str(a).startswith("sqs:") for a in _as_list(s["Action"]))
    ]
    assert [s["Resource"] for s in sqs] == [{"Fn::GetAtt": ["IngestQueue", "Arn"]}]
    assert set(sqs[0]["Action"]) == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    }


def _tracked_bucket_arn(suffix: str) -> dict[str, Any]:
    """The tracked bucket's ARN (+ suffix): the adopted bucket, else the one the stack creates."""
    bucket = {"Fn::If": ["AdoptBucket", {"Ref": "ExistingBucketName"}, {"Ref": "BucketName"}]}
    return {"Fn::Sub": [f"arn:${{AWS::Partition}}:s3:::${{Bucket}}{suffix}", {"Bucket": bucket}]}


S3_GRANTS = {
    # HeadObject on version deletes (pipeline/ingest/versions.py): s3:GetObject on the objects, and
    # s3:ListBucket so that a key with no version left answers 404, not 403.
    "IngestFunction": {
        ("s3:GetObject", json.dumps(_tracked_bucket_arn("/*"))),
        ("s3:ListBucket", json.dumps(_tracked_bucket_arn(""))),
    },
    "ApiFunction": set(),
    "TotalsFunction": set(),
}


@pytest.mark.parametrize("function", sorted(S3_GRANTS))
def test_function_may_use_exactly_its_s3_actions_on_the_tracked_bucket(
    transformed: dict[str, Any], function: str
) -> None:
    granted = set()
    for statement in _role_statements(transformed, function):
        actions = [str(a) for a in _as_list(statement.get("Action", []))]
        if not any(a.startswith("s3:") for a in actions):
            continue
        assert statement["Effect"] == "Allow" and "Condition" not in statement, statement
        assert all(a.startswith("s3:") for a in actions), statement
        for action in actions:
            for resource in _as_list(statement["Resource"]):
                granted.add((action, json.dumps(resource)))
    assert granted == S3_GRANTS[function]


# ------------------------------------------------------------------------------------ wiring


@pytest.mark.parametrize(("name", "default"), sorted(CONTRACT_DEFAULTS.items()))
def test_contract_parameter_defaults(template: dict[str, Any], name: str, default: Any) -> None:
    assert template["Parameters"][name]["Default"] == default


def test_queue_visibility_is_at_least_six_ingest_timeouts(template: dict[str, Any]) -> None:
    queue = template["Resources"]["IngestQueue"]["Properties"]
    function = template["Resources"]["IngestFunction"]["Properties"]
    visibility = _default(template, queue["VisibilityTimeout"])
    assert visibility >= 6 * _default(template, function["Timeout"])


def test_dead_letter_queue_after_at_least_five_receives(template: dict[str, Any]) -> None:
    redrive = template["Resources"]["IngestQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]}
    assert _default(template, redrive["maxReceiveCount"]) >= 5
    assert template["Parameters"]["MaxReceiveCount"]["MinValue"] >= 5
    dlq = template["Resources"]["IngestDeadLetterQueue"]["Properties"]
    assert dlq["MessageRetentionPeriod"] == 14 * 86_400


def test_queues_are_encrypted(template: dict[str, Any]) -> None:
    for queue in _resources(template, "AWS::SQS::Queue").values():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props


def test_ingest_event_source_reports_batch_item_failures(transformed: dict[str, Any]) -> None:
    mappings = _resources(transformed, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 2  # the ingest queue's, and the table stream's (totals)
    props = mappings["IngestFunctionIngestQueueEvent"]["Properties"]
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert props["BatchSize"] == {"Ref": "IngestBatchSize"}
    assert props["MaximumBatchingWindowInSeconds"] == {"Ref": "IngestBatchingWindowSeconds"}
    assert props["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "IngestMaximumConcurrency"}}
    # Lambda refuses BatchSize > 10 on a standard queue without a batching window.
    if _default(transformed, props["BatchSize"]) > 10:
        assert _default(transformed, props["MaximumBatchingWindowInSeconds"]) >= 1


def test_bucket_notifies_the_queue_without_a_circular_dependency(
    template: dict[str, Any],
) -> None:
    bucket = template["Resources"]["FilesBucket"]
    queue_arn = {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    events = {
        (c["Event"], json.dumps(c["Queue"]))
        for c in bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    }
    assert events == {
        ("s3:ObjectCreated:*", json.dumps(queue_arn)),
        ("s3:ObjectRemoved:*", json.dumps(queue_arn)),
        ("s3:LifecycleExpiration:*", json.dumps(queue_arn)),
    }
    assert "IngestQueuePolicy" in _as_list(bucket["DependsOn"])
    policy = template["Resources"]["IngestQueuePolicy"]["Properties"]["PolicyDocument"]
    # (statements under Fn::If belong to an adopted bucket: test_adopted_bucket_* below)
    allow = [s for s in policy["Statement"] if s.get("Effect") == "Allow"]
    assert len(allow) == 1
    assert allow[0]["Principal"] == {"Service": "s3.amazonaws.com"}
    assert allow[0]["Action"] == "sqs:SendMessage"
    condition = allow[0]["Condition"]
    # The bucket ARN is built from its name: referencing FilesBucket would be a cycle.
    assert condition["ArnEquals"]["aws:SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}"
    }
    assert condition["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert "FilesBucket" not in json.dumps(policy)


def test_bucket_is_private_encrypted_and_tls_only(template: dict[str, Any]) -> None:
    props = template["Resources"]["FilesBucket"]["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert props["VersioningConfiguration"]["Status"] == {"Ref": "BucketVersioning"}
    statements = template["Resources"]["FilesBucketPolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    assert any(
        s["Effect"] == "Deny"
        and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        and s["Principal"] == "*"
        for s in statements
    )


def test_files_table_shape(template: dict[str, Any]) -> None:
    props = template["Resources"]["FilesTable"]["Properties"]
    assert props["TableName"] == {"Ref": "TableName"}
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "filename", "AttributeType": "S"},
        {"AttributeName": "name_shard", "AttributeType": "S"},
        {"AttributeName": "feed_shard", "AttributeType": "S"},
        {"AttributeName": "changed", "AttributeType": "S"},
    ]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


@pytest.mark.parametrize(
    ("function", "handler", "service"),
    [
        ("IngestFunction", "handlers.ingest.lambda_handler", "file-tracker-ingest"),
        ("ApiFunction", "handlers.api.lambda_handler", "file-tracker-api"),
        ("TotalsFunction", "handlers.totals.lambda_handler", "file-tracker-totals"),
    ],
)
def test_function_runtime_and_environment(
    transformed: dict[str, Any], function: str, handler: str, service: str
) -> None:
    props = transformed["Resources"][function]["Properties"]
    assert props["Handler"] == handler
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == [{"Ref": "Architecture"}]
    assert props["Code"] == {"S3Bucket": "artifacts-bucket", "S3Key": "app.zip"}
    variables = props["Environment"]["Variables"]
    assert variables["TABLE_NAME"] == {"Ref": "FilesTable"}
    assert variables["POWERTOOLS_SERVICE_NAME"] == service
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "FileTracker"
    assert variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}


def test_both_functions_share_one_build(template: dict[str, Any]) -> None:
    functions = _resources(template, "AWS::Serverless::Function")
    assert set(functions) == set(DYNAMODB_ACTIONS) | {"ReconcileFunction"}
    for function in functions.values():
        assert function["Metadata"]["BuildMethod"] == "makefile"
        assert "CodeUri" not in function["Properties"]  # Globals: the same source for both
    makefile = (ROOT / "Makefile").read_text()
    for name in functions:
        assert f"build-{name}" in makefile


def test_api_routes_and_throttling(transformed: dict[str, Any]) -> None:
    api = transformed["Resources"]["FilesApi"]["Properties"]["Body"]
    assert set(api["paths"]) == {
        "/files",
        "/files/{filename+}",
        "/changes",
        "/summary",
        "/buckets",
    }
    assert all(set(methods) == {"get", "options"} for methods in api["paths"].values())
    stage = next(iter(_resources(transformed, "AWS::ApiGateway::Stage").values()))
    settings = stage["Properties"]["MethodSettings"]
    assert settings[0]["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert settings[0]["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}


# ------------------------------------------------------------------------------------ API auth


def _transform(template: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    packaged = copy.deepcopy(template)
    packaged["Globals"]["Function"]["CodeUri"] = "s3://artifacts-bucket/app.zip"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", "ap-south-1")
        env.delenv("AWS_PROFILE", raising=False)
        return transform(packaged, parameters, _NoManagedPolicies())


def test_both_get_methods_require_sigv4_after_the_transform(transformed: dict[str, Any]) -> None:
    # Given the template as CloudFormation deploys it (ApiAuth at its default)
    body = transformed["Resources"]["FilesApi"]["Properties"]["Body"]
    # Then both GET methods use the AWS_IAM (SigV4) scheme
    scheme = body["components"]["securitySchemes"]["AWS_IAM"]  # OpenApiVersion 3.0
    assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert (scheme["type"], scheme["name"], scheme["in"]) == ("apiKey", "Authorization", "header")
    for path in ("/files", "/files/{filename+}", "/changes", "/summary", "/buckets"):
        method = body["paths"][path]["get"]
        assert method["security"] == [{"AWS_IAM": []}], path
        # InvokeRole NONE: API Gateway invokes through the function's resource policy, not
        # with the caller's credentials (SAM's default for AWS_IAM: arn:aws:iam::*:user/*)
        assert "credentials" not in method["x-amazon-apigateway-integration"], path
        # CORS preflights stay unauthenticated (browsers send them without credentials)
        assert body["paths"][path]["options"]["security"] == [{"NONE": []}], path
    permissions = [
        r["Properties"]
        for r in _resources(transformed, "AWS::Lambda::Permission").values()
        if r["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert {p["FunctionName"]["Ref"] for p in permissions} == {"ApiFunction"}


def test_api_auth_none_turns_authentication_off(template: dict[str, Any]) -> None:
    cfn = _transform(template, {"ApiAuth": "NONE"})
    body = cfn["Resources"]["FilesApi"]["Properties"]["Body"]
    for path in ("/files", "/files/{filename+}", "/summary"):
        assert "AWS_IAM" not in json.dumps(body["paths"][path]["get"].get("security", []))
    # the caller policy and its output exist only with auth on
    assert cfn["Resources"]["ApiInvokePolicy"]["Condition"] == "ApiAuthEnabled"
    assert cfn["Outputs"]["ApiInvokePolicyArn"]["Condition"] == "ApiAuthEnabled"
    assert cfn["Conditions"]["ApiAuthEnabled"] == {"Fn::Equals": [{"Ref": "ApiAuth"}, "AWS_IAM"]}


def test_the_auth_parameter_is_loud_about_turning_it_off(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["ApiAuth"]
    assert parameter["AllowedValues"] == ["AWS_IAM", "NONE"]
    assert "NO AUTHENTICATION" in parameter["Description"]
    output = template["Outputs"]["ApiAuth"]["Value"]["Fn::If"]
    assert output[0] == "ApiAuthEnabled"
    assert "WARNING" in output[2] and "anyone" in output[2]


def test_the_caller_policy_grants_invoke_on_the_get_routes_only(
    transformed: dict[str, Any],
) -> None:
    policy = transformed["Resources"]["ApiInvokePolicy"]
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    props = policy["Properties"]
    # attached by whoever grants a caller, never to this stack's own roles
    assert not {"Roles", "Users", "Groups"} & set(props)
    (statement,) = _as_list(props["PolicyDocument"]["Statement"])
    assert statement["Effect"] == "Allow"
    assert _as_list(statement["Action"]) == ["execute-api:Invoke"]
    assert "Condition" not in statement and "NotResource" not in statement
    stage = transformed["Resources"]["FilesApiprodStage"]["Properties"]["StageName"]
    api_arn = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${FilesApi}"
    assert [r["Fn::Sub"] for r in statement["Resource"]] == [
        f"{api_arn}/{stage}/GET/files",
        f"{api_arn}/{stage}/GET/files/*",
        f"{api_arn}/{stage}/GET/summary",
        f"{api_arn}/{stage}/GET/changes",
        f"{api_arn}/{stage}/GET/buckets",
    ]
    output = transformed["Outputs"]["ApiInvokePolicyArn"]
    assert output["Value"] == {"Ref": "ApiInvokePolicy"}


def test_alarms_watch_dlq_errors_and_backlog(template: dict[str, Any]) -> None:
    watched = {
        (a["Properties"]["Namespace"], a["Properties"]["MetricName"])
        for a in _resources(template, "AWS::CloudWatch::Alarm").values()
    }
    assert {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/Lambda", "Errors"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
    } <= watched


def test_outputs(template: dict[str, Any]) -> None:
    assert {
        "ApiUrl",
        "BucketName",
        "IngestQueueUrl",
        "IngestQueueArn",
        "DeadLetterQueueUrl",
        "TableName",
    } <= set(template["Outputs"])


def test_the_table_has_the_sparse_listing_index(template: dict[str, Any]) -> None:
    from pipeline.adapters.dynamo.schema import feed_index_definition, index_definition

    props = template["Resources"]["FilesTable"]["Properties"]
    assert props["GlobalSecondaryIndexes"] == [index_definition(), feed_index_definition()]
    assert {"AttributeName": "name_shard", "AttributeType": "S"} in props["AttributeDefinitions"]


def test_a_new_key_schema_keeps_the_old_table_for_the_migration(template: dict[str, Any]) -> None:
    # Replacing the table (a new TableName for the (bucket, key) schema) must not delete the
    # old one before `migrate-table` has copied it
    table = template["Resources"]["FilesTable"]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    assert "migrate-table" in template["Parameters"]["TableName"]["Description"]


def test_every_function_knows_the_stacks_own_bucket(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["TRACKED_BUCKET"] == RECONCILE_BUCKET


def test_the_table_has_the_change_feed_index(template: dict[str, Any]) -> None:
    props = template["Resources"]["FilesTable"]["Properties"]
    (feed,) = [i for i in props["GlobalSecondaryIndexes"] if i["IndexName"] == "by_change"]
    assert feed["KeySchema"] == [
        {"AttributeName": "feed_shard", "KeyType": "HASH"},
        {"AttributeName": "changed", "KeyType": "RANGE"},
    ]
    for name in ("feed_shard", "changed"):
        assert {"AttributeName": name, "AttributeType": "S"} in props["AttributeDefinitions"]


# ------------------------------------------------------------------------------------ reconcile

RECONCILE_BUCKET = {"Fn::If": ["AdoptBucket", {"Ref": "ExistingBucketName"}, {"Ref": "BucketName"}]}


def test_reconcile_role_is_exactly_least_privilege(transformed: dict[str, Any]) -> None:
    # Given the reconcile function's role, statement by statement (no wildcard actions)
    granted = {}
    for statement in _role_statements(transformed, "ReconcileFunction"):
        assert statement["Effect"] == "Allow" and "Condition" not in statement
        assert "NotAction" not in statement and "NotResource" not in statement
        actions = tuple(sorted(_as_list(statement["Action"])))
        assert not any("*" in action for action in actions)
        granted[actions] = statement["Resource"]
    account = "arn:${AWS::Partition}:{service}:${AWS::Region}:${AWS::AccountId}"
    # Then it may list the tracked bucket and head its objects, nothing else in S3
    assert granted[("s3:ListBucket",)] == {
        "Fn::Sub": ["arn:${AWS::Partition}:s3:::${Bucket}", {"Bucket": RECONCILE_BUCKET}]
    }
    assert granted[("s3:GetObject",)] == {
        "Fn::Sub": ["arn:${AWS::Partition}:s3:::${Bucket}/*", {"Bucket": RECONCILE_BUCKET}]
    }
    # read rows consistently and write repairs (conditional puts) on the table only; read
    # folder counters and repair them (conditional UpdateItem)
    repairs = (
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    )
    assert granted[repairs] == TABLE_ARN
    # query the listing index only
    assert granted[("dynamodb:Query",)] == {"Fn::Sub": "${FilesTable.Arn}/index/by_name"}
    # keep its checkpoints under the stack's own SSM path
    assert granted[("ssm:DeleteParameter", "ssm:GetParameter", "ssm:PutParameter")] == {
        "Fn::Sub": account.replace("{service}", "ssm")
        + ":parameter/file-tracker/${AWS::StackName}/reconcile/*"
    }
    # invoke itself (continuation) and nothing else
    assert granted[("lambda:InvokeFunction",)] == {
        "Fn::Sub": account.replace("{service}", "lambda") + ":function:${AWS::StackName}-reconcile"
    }
    assert granted[("logs:CreateLogStream", "logs:PutLogEvents")] == {
        "Fn::GetAtt": ["ReconcileLogGroup", "Arn"]
    }
    assert granted[("xray:PutTelemetryRecords", "xray:PutTraceSegments")] == "*"
    assert len(granted) == 8


def test_reconcile_function_name_matches_its_self_invoke_permission(
    transformed: dict[str, Any],
) -> None:
    props = transformed["Resources"]["ReconcileFunction"]["Properties"]
    assert props["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-reconcile"}
    assert props["Handler"] == "handlers.reconcile.lambda_handler"
    variables = props["Environment"]["Variables"]
    assert variables["RECONCILE_BUCKET"] == RECONCILE_BUCKET
    assert variables["RECONCILE_CHECKPOINT_PATH"] == {
        "Fn::Sub": "/file-tracker/${AWS::StackName}/reconcile/"
    }
    assert variables["POWERTOOLS_SERVICE_NAME"] == "file-tracker-reconcile"
    assert props["Timeout"] == {"Ref": "ReconcileTimeoutSeconds"}


def test_reconcile_schedule_defaults_to_daily_and_can_be_off(
    template: dict[str, Any], transformed: dict[str, Any]
) -> None:
    parameter = template["Parameters"]["ReconcileSchedule"]
    assert parameter["Default"] == "rate(1 day)"
    assert template["Parameters"]["ReconcileTimeoutSeconds"]["MaxValue"] == 900  # Lambda's max
    rules = {
        name: res
        for name, res in transformed["Resources"].items()
        if res["Type"] == "AWS::Events::Rule" and "Schedule" in name
    }
    (rule,) = rules.values()
    props = rule["Properties"]
    assert props["ScheduleExpression"] == {
        "Fn::If": ["ReconcileScheduled", {"Ref": "ReconcileSchedule"}, "rate(1 day)"]
    }
    assert props["State"] == {"Fn::If": ["ReconcileScheduled", "ENABLED", "DISABLED"]}
    assert template["Conditions"]["ReconcileScheduled"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ReconcileSchedule"}, "off"]}]
    }
    invoke = [
        res
        for res in transformed["Resources"].values()
        if res["Type"] == "AWS::Lambda::EventInvokeConfig"
    ]
    assert [res["Properties"]["MaximumRetryAttempts"] for res in invoke] == [0]


def test_drift_alarm_watches_the_reconcile_metric(template: dict[str, Any]) -> None:
    alarm = template["Resources"]["ReconcileDriftAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("FileTracker", "DriftFound")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "file-tracker-reconcile"}]
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    namespace = template["Globals"]["Function"]["Environment"]["Variables"]
    assert namespace["POWERTOOLS_METRICS_NAMESPACE"] == "FileTracker"


def test_adopted_bucket_reaches_the_queue_through_eventbridge_only(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    # The stack creates the bucket (and its notification) only when none is adopted
    assert resources["FilesBucket"]["Condition"] == "CreateBucket"
    assert resources["FilesBucketPolicy"]["Condition"] == "CreateBucket"
    assert template["Parameters"]["ExistingBucketName"]["Default"] == ""
    # An adopted bucket's events come through an EventBridge rule on that bucket only
    rule = resources["AdoptedBucketRule"]
    assert rule["Condition"] == "AdoptBucket"
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail-type"] == ["Object Created", "Object Deleted"]
    assert pattern["detail"] == {"bucket": {"name": [{"Ref": "ExistingBucketName"}]}}
    (queue_target,) = rule["Properties"]["Targets"]
    assert queue_target["Arn"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    # and the queue lets that rule (and only it) send
    statements = resources["IngestQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (conditional,) = [s["Fn::If"] for s in statements if "Fn::If" in s]
    condition, statement, otherwise = conditional
    assert condition == "AdoptBucket" and otherwise == {"Ref": "AWS::NoValue"}
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["AdoptedBucketRule", "Arn"]}}
    }
    assert template["Outputs"]["BucketName"]["Value"] == {
        "Fn::If": ["AdoptBucket", {"Ref": "ExistingBucketName"}, {"Ref": "FilesBucket"}]
    }


def test_adopting_a_bucket_transforms_and_lints_cleanly(template: dict[str, Any]) -> None:
    # The same template with ExistingBucketName set: still valid after the SAM transform
    adopted = copy.deepcopy(template)
    adopted["Parameters"]["ExistingBucketName"]["Default"] = "my-existing-bucket"
    adopted["Globals"]["Function"]["CodeUri"] = "s3://artifacts-bucket/app.zip"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", "ap-south-1")
        cfn = transform(adopted, {}, _NoManagedPolicies())
    matches = lint(json.dumps(cfn), config=ManualArgs(regions=REGIONS))
    assert [str(m) for m in matches] == []


# ------------------------------------------------------------------------- freshness (lag)


def test_the_lag_alarm_watches_the_p99_of_ingest_lag(template: dict[str, Any]) -> None:
    alarm = template["Resources"]["IngestLagAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("FileTracker", "IngestLagMs")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "file-tracker-ingest"}]
    assert alarm["ExtendedStatistic"] == "p99" and "Statistic" not in alarm
    assert alarm["Threshold"] == {"Ref": "IngestLagAlarmMs"}
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    parameter = template["Parameters"]["IngestLagAlarmMs"]
    assert parameter["Type"] == "Number" and parameter["Default"] > 0
    ingest = template["Resources"]["IngestFunction"]["Properties"]["Environment"]["Variables"]
    assert ingest["POWERTOOLS_SERVICE_NAME"] == "file-tracker-ingest"


def test_the_throttling_alarm_watches_ingests_throttles(template: dict[str, Any]) -> None:
    alarm = template["Resources"]["IngestThrottlingAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("FileTracker", "Throttles")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "file-tracker-ingest"}]
    assert alarm["Statistic"] == "Sum" and alarm["Period"] == 300
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 3
    assert alarm["Threshold"] == {"Ref": "IngestThrottlesAlarmCount"}
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    parameter = template["Parameters"]["IngestThrottlesAlarmCount"]
    assert parameter["Type"] == "Number" and parameter["Default"] > 0
    handler = (TEMPLATE.parent / "handlers" / "ingest.py").read_text()
    assert '"Throttles"' in handler  # the metric the alarm watches is published


def _dashboard(template: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """The dashboard body with its ${...} references replaced, and the names referenced."""
    text = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    references = set(re.findall(r"\$\{([^}]+)\}", text))
    numeric = {"IngestLagAlarmMs", "OldestMessageAgeAlarmSeconds"}
    body = re.sub(
        r"\$\{([^}]+)\}", lambda m: "1" if m.group(1) in numeric else f"<{m.group(1)}>", text
    )
    return json.loads(body), references


def test_the_dashboard_shows_throughput_lag_failures_retries_drift_and_queue_age(
    template: dict[str, Any],
) -> None:
    body, references = _dashboard(template)
    widgets = {w["properties"]["title"]: w["properties"] for w in body["widgets"]}
    titles = " | ".join(widgets).lower()
    for topic in ("throughput", "lag", "failures", "retries", "drift", "queue age"):
        assert topic in titles
    metrics = {(m[0], m[1]) for w in widgets.values() for m in w["metrics"]}
    assert {
        ("FileTracker", "RecordsWritten"),
        ("FileTracker", "IngestLagMs"),
        ("FileTracker", "RecordsFailed"),
        ("FileTracker", "Retries"),
        ("FileTracker", "Throttles"),
        ("FileTracker", "DriftFound"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
    } <= metrics
    lag = next(w for t, w in widgets.items() if "lag" in t.lower())
    assert {m[-1]["stat"] for m in lag["metrics"]} >= {"p99"}
    # every FileTracker metric on it is one a handler publishes
    handlers = "".join(p.read_text() for p in (TEMPLATE.parent / "handlers").glob("*.py"))
    for namespace, name in metrics:
        if namespace == "FileTracker":
            assert f'"{name}"' in handlers, name
    # and everything it references exists in the template
    for name in references:
        resource = name.split(".")[0]
        assert (
            resource in template["Resources"]
            or resource in template["Parameters"]
            or resource.startswith("AWS::")
        ), name


# ------------------------------------------------------------------------------------ totals


def test_the_table_streams_every_change_with_both_images(template: dict[str, Any]) -> None:
    props = template["Resources"]["FilesTable"]["Properties"]
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_the_totals_function_reads_the_stream_one_ordered_batch_per_shard(
    transformed: dict[str, Any],
) -> None:
    mappings = [
        res["Properties"]
        for res in _resources(transformed, "AWS::Lambda::EventSourceMapping").values()
        if res["Properties"]["FunctionName"] == {"Ref": "TotalsFunction"}
    ]
    assert len(mappings) == 1
    (mapping,) = mappings
    assert mapping["EventSourceArn"] == STREAM_ARN
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    # per-shard watermarks: never two batches of one shard at once
    assert mapping["ParallelizationFactor"] == 1
    # the event names its shard only with a tumbling window; state is not used
    assert 1 <= mapping["TumblingWindowInSeconds"] <= 900
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # a batch is retried until it succeeds: nothing is skipped before the records expire
    assert mapping["MaximumRetryAttempts"] == -1
    assert mapping["MaximumRecordAgeInSeconds"] == -1
    assert not mapping.get("BisectBatchOnFunctionError", False)
    assert 1 <= mapping["BatchSize"] <= 10_000


def test_ingest_writes_no_counters(template: dict[str, Any]) -> None:
    ingest = template["Resources"]["IngestFunction"]["Properties"]
    assert "FOLDER_TOTALS" not in ingest["Environment"]["Variables"]


def test_alarms_watch_totals_drift_and_stream_lag(template: dict[str, Any]) -> None:
    drift = template["Resources"]["TotalsDriftAlarm"]["Properties"]
    assert (drift["Namespace"], drift["MetricName"]) == ("FileTracker", "TotalsDrift")
    assert drift["Dimensions"] == [{"Name": "service", "Value": "file-tracker-reconcile"}]
    assert drift["Threshold"] == 0 and drift["ComparisonOperator"] == "GreaterThanThreshold"
    age = template["Resources"]["TotalsIteratorAgeAlarm"]["Properties"]
    assert (age["Namespace"], age["MetricName"]) == ("AWS/Lambda", "IteratorAge")
    assert age["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "TotalsFunction"}}]
