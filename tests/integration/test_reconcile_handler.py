"""The scheduled reconcile Lambda on moto and DynamoDB Local: a run cut off by the deadline
hands over to a new invocation, which resumes from the checkpoint; metrics are published once,
at the end."""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest

from pipeline.adapters.dynamo.reader import DynamoFileReader
from tests.conftest import REGION
from tests.support.lambda_context import FakeLambdaContext

SCHEDULED_EVENT = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-11-25T03:00:00Z",
    "region": "ap-south-1",
    "resources": ["arn:aws:events:ap-south-1:123456789012:rule/stack-ReconcileSchedule"],
    "detail": {},
}


class Invokes:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {"StatusCode": 202}


@pytest.fixture
def bucket(aws_env: str) -> str:
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=aws_env)
    name = f"rh-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    for i in range(30):
        s3.put_object(Bucket=name, Key=f"k/{i:02d}", Body=b"x" * i)
    return name


@pytest.fixture
def handler(table_name: str, bucket: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("RECONCILE_BUCKET", bucket)
    monkeypatch.setenv("RECONCILE_CHECKPOINT_PATH", f"/test/{uuid.uuid4().hex[:8]}/reconcile/")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "FileTrackerTest")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "file-tracker-reconcile")
    monkeypatch.setenv("RECONCILE_TOTALS_SETTLE_S", "0")  # no ingest runs here: nothing to wait
    import handlers.reconcile

    yield importlib.reload(handlers.reconcile)


def metrics_of(output: str) -> dict[str, Any]:
    for line in output.splitlines():
        if '"_aws"' in line:
            document: dict[str, Any] = json.loads(line)
            return {
                k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in document.items()
            }
    return {}


def test_a_run_cut_off_by_the_deadline_continues_in_a_new_invocation(
    handler: ModuleType,
    dynamodb: Any,
    table_name: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invokes = Invokes()
    monkeypatch.setattr(handler, "_lambda", invokes)
    # Given an invocation with less time left than the safety margin: it stops after one key
    short = FakeLambdaContext(timeout_s=29, function_name="stack-reconcile")
    first = handler.lambda_handler(SCHEDULED_EVENT, short)
    assert first["complete"] is False and first["continued"] is True
    assert first["repaired"] == 1
    assert metrics_of(capsys.readouterr().out).get("RunsContinued") == 1
    # Then it invoked itself asynchronously with the continuation
    (call,) = invokes.calls
    assert call["InvocationType"] == "Event"
    assert call["FunctionName"] == short.invoked_function_arn
    payload = json.loads(call["Payload"])
    assert payload == {"prefix": "", "continuation": 1}

    # When the continuation runs with enough time
    second = handler.lambda_handler(payload, FakeLambdaContext(timeout_s=900))
    # Then it resumes and finishes the whole run, and publishes the run's numbers once
    assert second["complete"] is True and second["continued"] is False
    assert second["resumed_after"] == "k/00"
    assert (second["listed"], second["missing"], second["repaired"]) == (30, 30, 30)
    emf = metrics_of(capsys.readouterr().out)
    assert (emf["KeysListed"], emf["DriftFound"], emf["Repaired"]) == (30, 30, 30)
    assert emf["service"] == "file-tracker-reconcile"
    reader = DynamoFileReader(dynamodb, table_name, handler.target.bucket)
    assert [row["filename"] for row in reader.iter_live()] == [f"k/{i:02d}" for i in range(30)]
    assert invokes.calls == [call]


def test_a_clean_table_is_reported_as_no_drift(
    handler: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handler, "_lambda", Invokes())
    first = handler.lambda_handler(SCHEDULED_EVENT, FakeLambdaContext(timeout_s=900))
    # the backfill also counted the folders ("" and "k/") and set their counters
    assert first["totals"]["drift"] == 2 and first["totals"]["repaired"] == 2
    capsys.readouterr()
    report = handler.lambda_handler(SCHEDULED_EVENT, FakeLambdaContext(timeout_s=900))
    assert report["complete"] and report["missing"] == 0 and report["repaired"] == 0
    assert report["totals"]["drift"] == 0 and report["totals"]["folders"] == 2
    emf = metrics_of(capsys.readouterr().out)
    assert emf["DriftFound"] == 0 and emf["TotalsDrift"] == 0
