"""Reconcile end to end on the local stack (issue 11's "Done when").

5,000 objects put while notifications are off; the first reconcile backfills them. Then 500
rows deleted from the table, 200 rows for keys that do not exist, 100 rows with wrong sizes:
`--dry-run` reports exactly that and changes nothing; `reconcile` repairs exactly that. The
same damage repaired while uploads, overwrites and deletes flow through the real pipeline ends
with table == bucket. A run stopped midway resumes and ends with the same table and counts.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import redirect_stdout
from typing import Any

import pytest

from pipeline.core.model import item_key, name_shard_of
from pipeline.local.cli import main as cli
from pipeline.local.stack import FAKE_CREDENTIALS, Stack
from pipeline.local.template import read_stack_config
from pipeline.wiring.reconcile import Target, run
from tests.support import moto_state
from tests.support.idle import IDLE_TOTALS_TIMING

pytestmark = pytest.mark.e2e

OBJECTS = 5_000
FUNCTION_TIMEOUT_S = 10
SETTLE_S = FUNCTION_TIMEOUT_S
"""Folder counter repairs made while events flow wait the ingest function's timeout after a
folder; runs on the idle stack use `IDLE_TOTALS_TIMING` (nothing in flight to wait for)."""


@pytest.fixture(scope="module")
def stack(engines: dict[str, Any]) -> Iterator[Stack]:
    config = (
        read_stack_config()
        .with_suffix(uuid.uuid4().hex[:8])
        .with_overrides(
            visibility_timeout_s=5, function_timeout_s=FUNCTION_TIMEOUT_S, batching_window_s=0
        )
    )
    with Stack(config, pollers=2, **engines) as running:
        running.wait_until_idle(30)
        yield running


def key_of(i: int) -> str:
    return f"data/{i % 10}/file {i:05d}{' é' if i % 97 == 0 else ''}+.bin"


def body_of(i: int, version: int = 0) -> bytes:
    return f"{i}:{version}:".encode() * (1 + i % 5)


def bucket_state(stack: Stack) -> dict[str, tuple[int, str]]:
    return moto_state.bucket_state(stack.moto, stack.bucket)


def table_items(stack: Stack) -> dict[str, dict[str, Any]]:
    return moto_state.table_items(stack.client("dynamodb"), stack.table_name)


def live_state(stack: Stack) -> dict[str, tuple[int, str]]:
    return moto_state.live_state(stack.client("dynamodb"), stack.table_name)


def target(stack: Stack) -> Target:
    return Target(
        stack.bucket,
        stack.table_name,
        stack.region,
        stack.endpoint_url,
        f"/file-tracker/{stack.table_name}/reconcile/",
        {
            "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        },
        endpoints={"dynamodb": str(stack.dynamodb_endpoint)},
    )


def reconcile_cli(stack: Stack, *flags: str) -> tuple[int, dict[str, Any]]:
    """The reconcile command on the stack, idle: its callers send no events meanwhile."""
    stack.wait_until_idle(60)
    args = ["reconcile", "--json", "--endpoint-url", str(stack.endpoint_url)]
    args += ["--dynamodb-endpoint-url", str(stack.dynamodb_endpoint)]
    args += ["--bucket", stack.bucket, "--table", stack.table_name, "--region", stack.region]
    args += ["--checkpoint-path", f"/file-tracker/{stack.table_name}/reconcile/", *flags]
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(out):
        for name, value in IDLE_TOTALS_TIMING.items():
            patch.setenv(name, value)
        status = cli(args)
    return status, json.loads(out.getvalue())


def counts(report: dict[str, Any]) -> tuple[int, ...]:
    names = ("listed", "missing", "extra", "stale", "repaired", "skipped", "failed")
    return tuple(report[name] for name in names)


def damage(stack: Stack, keys: list[str], *, deleted: int, ghosts: int, wrong: int) -> None:
    """Delete rows, add rows of keys that do not exist, give rows a wrong size."""
    dynamodb = stack.client("dynamodb")
    items = table_items(stack)
    requests: list[dict[str, Any]] = []
    for key in keys[:deleted]:
        requests.append({"DeleteRequest": {"Key": {"pk": {"S": item_key(stack.bucket, key)}}}})
    for _ in range(ghosts):
        ghost = f"ghost/{uuid.uuid4().hex}"
        requests.append(
            {
                "PutRequest": {
                    "Item": {
                        "pk": {"S": item_key(stack.bucket, ghost)},
                        "filename": {"S": ghost},
                        "bucket": {"S": stack.bucket},
                        "size": {"N": "1"},
                        "etag": {"S": "0" * 32},
                        "event_time": {"S": "2026-01-01T00:00:00.000Z"},
                        "event_name": {"S": "ObjectCreated:Put"},
                        "name_shard": {"S": name_shard_of(stack.bucket, ghost)},
                    }
                }
            }
        )
    for key in keys[deleted : deleted + wrong]:
        item = dict(items[key])
        item["size"] = {"N": str(int(item["size"]["N"]) + 1_000)}
        requests.append({"PutRequest": {"Item": item}})
    for start in range(0, len(requests), 25):
        dynamodb.batch_write_item(RequestItems={stack.table_name: requests[start : start + 25]})


def test_backfill_dry_run_repair_with_exact_counts(stack: Stack) -> None:
    # Given 5,000 objects put while the bucket's notifications are off
    moto_state.seed_objects(
        stack.moto, stack.bucket, [(key_of(i), body_of(i)) for i in range(OBJECTS)]
    )
    assert live_state(stack) == {} and len(bucket_state(stack)) == OBJECTS
    etag = hashlib.md5(body_of(0)).hexdigest()
    assert bucket_state(stack)[key_of(0)] == (len(body_of(0)), etag)

    # When reconcile runs: the first run backfills every object
    status, report = reconcile_cli(stack)
    assert status == 0
    assert counts(report) == (OBJECTS, OBJECTS, 0, 0, OBJECTS, 0, 0)
    assert live_state(stack) == bucket_state(stack)

    # Given 500 rows deleted, 200 rows of keys that do not exist, 100 rows with wrong sizes
    keys = sorted(bucket_state(stack))[::7]
    damage(stack, keys, deleted=500, ghosts=200, wrong=100)
    before = table_items(stack)

    # Then --dry-run reports exactly that, exits 3 (drift), and changes nothing
    status, report = reconcile_cli(stack, "--dry-run")
    assert status == 3 and report["dry_run"] is True
    assert counts(report) == (OBJECTS, 500, 200, 100, 0, 0, 0)
    assert table_items(stack) == before
    # and names the drifted keys: the first 100 of each kind, in key order, and how many more
    named = report["drifted_keys"]
    assert named["missing"] == {"keys": sorted(keys[:500])[:100], "more": 400}
    assert named["stale"] == {"keys": sorted(keys[500:600])[:100], "more": 0}
    assert len(named["extra"]["keys"]) == 100 and named["extra"]["more"] == 100
    assert all(key.startswith("ghost/") for key in named["extra"]["keys"])

    # And reconcile repairs exactly that: the table's live rows are the bucket
    status, report = reconcile_cli(stack)
    assert status == 0 and report["complete"] is True
    assert counts(report) == (OBJECTS, 500, 200, 100, 800, 0, 0)
    assert live_state(stack) == bucket_state(stack)
    # and, once the repairs' row changes have reached the counters through the table's
    # stream, a dry run finds nothing: exit 0
    stack.wait_until_idle(60)
    status, report = reconcile_cli(stack, "--dry-run")
    assert status == 0 and report["missing"] == report["extra"] == report["stale"] == 0


def test_repairs_while_uploads_overwrites_and_deletes_continue(stack: Stack) -> None:
    # Given damage, and live traffic through the real pipeline (each key touched once)
    keys = sorted(bucket_state(stack))
    damage(stack, keys[1::9], deleted=150, ghosts=60, wrong=40)
    s3 = stack.client("s3")
    stop = threading.Event()
    touched = iter(keys[5::25])

    def traffic() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            s3.put_object(Bucket=stack.bucket, Key=f"live/{uuid.uuid4().hex}", Body=b"new")
            key = next(touched, None)
            if key is not None and n % 2:
                s3.put_object(Bucket=stack.bucket, Key=key, Body=b"overwritten " * n)
            elif key is not None:
                s3.delete_object(Bucket=stack.bucket, Key=key)
            stop.wait(0.05)

    workers = [threading.Thread(target=traffic)]
    for worker in workers:
        worker.start()
    try:
        # When reconcile runs while it flows
        summary = run(target(stack), concurrency=4, totals_settle_s=SETTLE_S)
        assert summary.complete and summary.failed == 0
        assert summary.repaired > 0
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    stack.wait_until_idle(60)
    # Then, once every event is applied, the table is the bucket: no repair beat an event
    assert live_state(stack) == bucket_state(stack)


def test_a_run_stopped_midway_resumes_and_ends_with_the_same_result(stack: Stack) -> None:
    keys = sorted(bucket_state(stack))
    damage(stack, keys[2::11], deleted=120, ghosts=50, wrong=30)
    state = {"asked": 0}

    def stop_at_half() -> bool:
        state["asked"] += 1
        return state["asked"] >= len(keys) // 2

    stack.wait_until_idle(60)  # no events meanwhile: no counter delta to wait for
    first = run(
        target(stack), should_stop=stop_at_half, concurrency=4, totals_settle_s=0, totals_margin_s=0
    )
    assert not first.complete and 0 < first.repaired < 200
    status, report = reconcile_cli(stack)  # the CLI resumes the same checkpoint
    assert status == 0 and report["resumed_after"] == first.last_key
    assert counts(report)[1:5] == (120, 50, 30, 200)
    assert report["listed"] == len(keys)
    assert live_state(stack) == bucket_state(stack)
