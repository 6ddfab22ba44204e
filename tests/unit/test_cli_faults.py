"""Faults of the command line found by trying it as a new user would (issue 24, parts 4-5):
each test here failed before the fix."""

from __future__ import annotations

import argparse
import io
import os
import time
from pathlib import Path

import pytest

from pipeline.local import watch_cli
from pipeline.local.cli import _parser, main
from pipeline.local.reconcile_cli import Progress
from pipeline.local.state import STATE_ENV, LocalStack, published
from pipeline.reconcile.ports import Summary

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
"""What `up --name-suffix v --api-port 3100 --region eu-west-1` publishes."""


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state" / "stack.json"
    monkeypatch.setenv(STATE_ENV, str(path))
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)
    return path


def watch_args(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(["watch", *argv])


def test_watch_follows_the_running_up_with_its_port_and_bucket(state: Path) -> None:
    # Given `up --name-suffix v --api-port 3100` running (its state file)
    with published(UP, state):
        # When watch is given no target
        target = watch_cli.resolve_target(watch_args())
    # Then it reads that stack's API and follows its bucket, signed as the stack accepts
    assert target.api_url == "http://127.0.0.1:3100"
    assert target.bucket == "serverless-event4-v"
    assert target.signer is not None and target.signer.region == "eu-west-1"
    assert "running local stack" in target.describe()


def test_adopt_checks_the_bucket_name_first(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["adopt", "--bucket", "Bad_Name"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --bucket 'Bad_Name': bucket must be an S3 bucket name")
    assert "NoSuchBucket" not in err and err.count("\n") == 1


def test_progress_off_a_terminal_says_what_the_run_waits_for() -> None:
    now = [100.0]
    pipe = io.StringIO()
    progress = Progress(pipe, interval_s=10.0, clock=lambda: now[0], command="adopt")
    walking = Summary(listed=5, rows=5)
    progress(walking)
    assert pipe.getvalue() == ""  # nothing before the first interval
    now[0] += 10.0
    progress(walking)
    assert pipe.getvalue().startswith("adopt: 5 listed")
    # When the run starts waiting for the folder totals to settle: at once, with what for
    walking.settle_until, walking.settle_pending = time.time() + 64, 3
    now[0] += 0.5
    progress(walking)
    last = pipe.getvalue().splitlines()[-1]
    assert last.startswith("adopt: waiting 6") and "3 folder counter(s)" in last
    assert "in-flight ingest" in last
