"""Reconcile's S3 and DynamoDB adapters on moto (S3) and DynamoDB Local, and repairs racing
the real ingest.

The races are forced: `Repairer.before_write` invokes the ingest Lambda handler (the real one,
cold-started on this test's table) between reconcile's checks and its conditional writes.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
import pytest

from pipeline.adapters.dynamo.reader import DynamoFileReader
from pipeline.adapters.dynamo.reconcile_store import DynamoRowStore
from pipeline.adapters.s3_bucket import BucketObjects
from pipeline.adapters.ssm_checkpoints import CheckpointError, SsmCheckpoints
from pipeline.core.model import ConditionalWrite, WriteOutcome
from pipeline.reconcile.ports import Checkpoint, Drift, DriftKind, S3Object, Summary
from pipeline.reconcile.repair import Repairer
from tests.conftest import REGION
from tests.support.lambda_context import FakeLambdaContext
from tests.support.s3events import notification, s3_record, sqs_event

TTL_S = 86_400


@pytest.fixture
def s3(aws_env: str) -> Any:
    return boto3.client("s3", region_name=REGION, endpoint_url=aws_env)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"rec-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


@pytest.fixture
def ingest(table_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "FileTrackerTest")
    import handlers.ingest

    module = importlib.reload(handlers.ingest)
    yield module
    module.runtime.close()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def deliver(handler: ModuleType, bucket: str, key: str, event: str, **kwargs: Any) -> None:
    """Invoke the ingest handler with the notification S3 would send for `key` now."""
    record = s3_record(key, event=event, bucket=bucket, event_time=now_iso(), **kwargs)
    response = handler.lambda_handler(sqs_event(notification(record)), FakeLambdaContext())
    assert response == {"batchItemFailures": []}


# --- S3 -----------------------------------------------------------------------------------


def test_listing_is_paginated_in_utf8_binary_order_with_prefix_and_start_after(
    s3: Any, bucket: str
) -> None:
    # Given 1,030 objects (two pages) with keys that sort differently by naive rules
    keys = [f"p/{i:04d}" for i in range(1_000)]
    keys += ["p/a b", "p/a+b", "p/é", "p/字", "p/🙂", "p/Z", "q/1", "p/\t", "p/~"]
    keys += [f"p/x{i}" for i in range(21)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b"abc"), keys))
    source = BucketObjects(s3, bucket)
    # When the bucket is listed (whole, and after a key)
    listed = [o.key for o in source.iter_objects("p/", None)]
    after = [o.key for o in source.iter_objects("p/", "p/Z")]
    # Then both follow UTF-8 binary order, page after page
    expected = sorted((k for k in keys if k.startswith("p/")), key=lambda k: k.encode())
    assert listed == expected
    assert after == [k for k in expected if k.encode() > b"p/Z"]
    assert source.list_calls >= 3
    one = next(source.iter_objects("p/0000", None))
    assert (one.size, one.etag) == (3, "900150983cd24fb0d6963f7d28e17f72")
    assert one.last_modified is not None and one.last_modified.endswith("Z")


def test_head_many_reports_current_objects_and_404s(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="here", Body=b"12345")
    heads = BucketObjects(s3, bucket).head_many(["here", "gone"])
    assert heads["gone"] is None
    assert heads["here"] is not None and heads["here"].size == 5
    assert heads["here"].etag == "827ccb0eea8a706c4c34a16891f84e7b"


# --- DynamoDB -----------------------------------------------------------------------------


def test_conditional_writes_compare_and_swap_the_version(dynamodb: Any, table_name: str) -> None:
    store = DynamoRowStore(dynamodb, table_name, "bkt")
    row = {"pk": "bkt/k", "filename": "k", "bucket": "bkt", "size": 1, "event_time": "T1"}
    # Insert only if absent
    assert store.write_conditional([ConditionalWrite(row, None)]) == {"k": WriteOutcome.WRITTEN}
    assert store.write_conditional([ConditionalWrite(row, None)]) == {"k": WriteOutcome.CONFLICT}
    read = store.read_rows(["k", "absent"])
    assert read == {"k": row}
    # Swap only while the version is the one read
    newer = {**row, "size": 2, "sequencer": "0A"}
    assert (
        store.write_conditional([ConditionalWrite(newer, read["k"])])["k"] is WriteOutcome.WRITTEN
    )
    stale = {**row, "size": 3}
    assert (
        store.write_conditional([ConditionalWrite(stale, read["k"])])["k"] is WriteOutcome.CONFLICT
    )
    assert store.read_rows(["k"])["k"]["size"] == 2
    # Many at once, with independent outcomes
    writes = [
        ConditionalWrite({**row, "pk": f"bkt/m{i}", "filename": f"m{i}"}, None) for i in range(30)
    ]
    writes.append(ConditionalWrite(stale, read["k"]))
    outcomes = store.write_conditional(writes)
    assert sum(o is WriteOutcome.WRITTEN for o in outcomes.values()) == 30
    assert outcomes["k"] is WriteOutcome.CONFLICT


def test_checkpoint_round_trip_in_parameter_store(aws_env: str) -> None:
    ssm = boto3.client("ssm", region_name=REGION, endpoint_url=aws_env)
    path = f"/file-tracker/{uuid.uuid4().hex[:8]}/reconcile/"
    checkpoints = SsmCheckpoints(ssm, "b", path=path)
    assert checkpoints.load("") is None
    longest = "é" * 512  # 1,024 bytes: the longest key S3 allows
    saved = Checkpoint("", longest, "2026-11-25T10:00:00Z", {"listed": 5, "missing": 2}, 1.5)
    checkpoints.save(saved)
    assert checkpoints.load("") == saved
    assert checkpoints.load("other/") is None
    assert SsmCheckpoints(ssm, "another", path=path).load("") is None
    assert checkpoints.name("").startswith(path)
    checkpoints.clear("")
    checkpoints.clear("")  # idempotent
    assert checkpoints.load("") is None


def test_an_unreadable_checkpoint_is_an_error_not_a_silent_restart(aws_env: str) -> None:
    ssm = boto3.client("ssm", region_name=REGION, endpoint_url=aws_env)
    checkpoints = SsmCheckpoints(ssm, "b", path=f"/t{uuid.uuid4().hex[:8]}/")
    ssm.put_parameter(Name=checkpoints.name("p/"), Value="{garbage", Type="String")
    with pytest.raises(CheckpointError, match="--restart"):
        checkpoints.load("p/")


# --- races against the real ingest -------------------------------------------------------


def repairer(s3: Any, bucket: str, dynamodb: Any, table: str, hook: Any) -> Repairer:
    return Repairer(
        bucket,
        DynamoRowStore(dynamodb, table, bucket),
        BucketObjects(s3, bucket),
        TTL_S,
        before_write=hook,
    )


def listed(s3: Any, bucket: str, key: str) -> S3Object:
    found = BucketObjects(s3, bucket).head(key)
    assert found is not None
    return found


def test_backfill_loses_to_an_upload_ingested_before_it_lands(
    s3: Any, bucket: str, dynamodb: Any, table_name: str, ingest: ModuleType
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"old")
    obj = listed(s3, bucket, "k")

    def race(writes: Sequence[ConditionalWrite]) -> None:
        s3.put_object(Bucket=bucket, Key="k", Body=b"newer!")
        deliver(ingest, bucket, "k", "ObjectCreated:Put", size=6)

    summary = Summary()
    fixer = repairer(s3, bucket, dynamodb, table_name, race)
    fixer.repair([Drift(DriftKind.MISSING, "k", obj, None)], summary)
    row = DynamoRowStore(dynamodb, table_name, bucket).read_rows(["k"])["k"]
    assert row["size"] == 6 and row["event_name"] == "ObjectCreated:Put"
    assert (summary.repaired, summary.skipped) == (0, 1)


def test_backfill_then_a_late_delete_event_hides_the_key(
    s3: Any, bucket: str, dynamodb: Any, table_name: str, ingest: ModuleType
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"1")
    obj = listed(s3, bucket, "k")
    summary = Summary()
    repairer(
        s3, bucket, dynamodb, table_name, lambda w: s3.delete_object(Bucket=bucket, Key="k")
    ).repair([Drift(DriftKind.MISSING, "k", obj, None)], summary)
    assert summary.repaired == 1
    deliver(ingest, bucket, "k", "ObjectRemoved:Delete")  # delivered after the backfill
    assert DynamoFileReader(dynamodb, table_name, bucket).get("k") is None


def test_hiding_an_extra_row_loses_to_a_reupload_ingested_before_it_lands(
    s3: Any, bucket: str, dynamodb: Any, table_name: str, ingest: ModuleType
) -> None:
    # Given a row whose object is gone (its delete event was lost)
    deliver(ingest, bucket, "k", "ObjectCreated:Put", size=1)
    row = DynamoRowStore(dynamodb, table_name, bucket).read_rows(["k"])["k"]

    def race(writes: Sequence[ConditionalWrite]) -> None:
        assert writes[0].row["deleted"] is True  # HeadObject said 404: about to hide it
        s3.put_object(Bucket=bucket, Key="k", Body=b"again")
        deliver(ingest, bucket, "k", "ObjectCreated:Put", size=5)

    summary = Summary()
    repairer(s3, bucket, dynamodb, table_name, race).repair(
        [Drift(DriftKind.EXTRA, "k", None, row)], summary
    )
    assert DynamoFileReader(dynamodb, table_name, bucket).get("k") is not None
    assert summary.skipped == 1


def test_a_tombstone_is_not_resurrected_when_the_object_is_gone_at_head_time(
    s3: Any, bucket: str, dynamodb: Any, table_name: str, ingest: ModuleType
) -> None:
    # Given a listed object whose row is a tombstone, and the object deleted after the listing
    s3.put_object(Bucket=bucket, Key="k", Body=b"1")
    obj = listed(s3, bucket, "k")
    deliver(ingest, bucket, "k", "ObjectRemoved:Delete")
    s3.delete_object(Bucket=bucket, Key="k")
    summary = Summary()
    repairer(s3, bucket, dynamodb, table_name, None).repair(
        [Drift(DriftKind.MISSING, "k", obj, None)], summary
    )
    assert DynamoFileReader(dynamodb, table_name, bucket).get("k") is None
    assert summary.skipped == 1 and summary.repaired == 0
