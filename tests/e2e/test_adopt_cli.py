"""Adopt and reconcile a second bucket on a running `up`, as a new user types the commands.

`up` runs as a subprocess; `adopt` and `reconcile` run as subprocesses too, with no AWS
variables in their environment and no endpoint flag: they find the running local stack by the
state file `up` publishes (`pipeline.local.state`), which is gone once `up` stops.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from pipeline.local.state import STATE_ENV, read_local_stack
from tests.support.idle import IDLE_TOTALS_TIMING

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def cli_env(state: Path) -> dict[str, str]:
    """No AWS credentials, endpoints or profiles: only what a fresh shell has."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PYTHONPATH=str(REPO), AWS_EC2_METADATA_DISABLED="true")
    env.update(AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_CONFIG_FILE="/nonexistent")
    env[STATE_ENV] = str(state)
    # reconcile's counter repairs need not wait for in-flight ingest deltas: adopt backfills
    # objects that had no events, and the test waits for its one upload before reconciling
    env.update(IDLE_TOTALS_TIMING)
    return env


def command(state: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *argv],
        cwd=REPO,
        env=cli_env(state),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def wait_for(predicate: Any, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_adopt_and_reconcile_on_a_running_up_with_the_documented_commands_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "run" / "stack.json"
    # Without a running `up` nor credentials: one clear line
    alone = command(state, "reconcile", "--bucket", "legacy-bucket")
    assert alone.returncode == 2 and alone.stderr.count("\n") == 1, alone.stderr
    assert "no local stack is running" in alone.stderr and "Traceback" not in alone.stderr

    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "up",
            *("--moto-port", "0", "--dynamodb-port", "0", "--api-port", "0"),
        ],
        cwd=REPO,
        env=cli_env(state),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with monkeypatch.context() as patch:
            patch.setenv(STATE_ENV, str(state))
            wait_for(lambda: read_local_stack(state) is not None, "up's state file")
        local = read_local_stack(state)
        assert local is not None and local.pid == up.pid
        # Given a bucket created on the local stack with objects, tracked by nothing
        s3: Any = boto3.client(
            "s3", region_name=local.region, endpoint_url=local.endpoint("s3"), **local.credentials
        )
        legacy = f"legacy-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(
            Bucket=legacy, CreateBucketConfiguration={"LocationConstraint": local.region}
        )
        for i in range(5):
            s3.put_object(Bucket=legacy, Key=f"old/{i}.txt", Body=b"x" * i)

        # When adopt --dry-run runs / Then it says what it would change, and changes nothing
        plan = command(state, "adopt", "--bucket", legacy, "--dry-run", "--json")
        assert plan.returncode == 3, plan.stderr
        assert "would be turned on" in plan.stderr and "would be created" in plan.stderr
        assert json.loads(plan.stdout)["missing"] == 5
        assert "EventBridgeConfiguration" not in s3.get_bucket_notification_configuration(
            Bucket=legacy
        )

        # When adopt runs: EventBridge on, the rule, the backfill
        adopted = command(state, "adopt", "--bucket", legacy, "--json")
        assert adopted.returncode == 0, adopted.stderr
        assert json.loads(adopted.stdout)["repaired"] == 5

        # Then a new object arrives through EventBridge, and a dry run finds nothing: exit 0
        s3.put_object(Bucket=legacy, Key="new.txt", Body=b"new")

        def clean() -> bool:
            return command(state, "reconcile", "--bucket", legacy, "--dry-run").returncode == 0

        wait_for(clean, "the new object's event", timeout_s=120)  # a loaded box: bounded
        # And drift (a row lost from the table) is named and repaired with the same command
        dynamodb: Any = boto3.client(
            "dynamodb",
            region_name=local.region,
            endpoint_url=local.endpoint("dynamodb"),
            **local.credentials,
        )
        dynamodb.delete_item(TableName=local.table, Key={"pk": {"S": f"{legacy}/old/1.txt"}})
        drift = command(state, "reconcile", "--bucket", legacy, "--dry-run", "--json")
        assert drift.returncode == 3, drift.stderr
        named = json.loads(drift.stdout)["drifted_keys"]
        assert named["missing"] == {"keys": ["old/1.txt"], "more": 0}
        listed = command(state, "reconcile", "--bucket", legacy, "--dry-run", "--list")
        assert listed.returncode == 3 and "missing: 'old/1.txt'" in listed.stdout
        repaired = command(state, "reconcile", "--bucket", legacy, "--list")
        assert repaired.returncode == 0, repaired.stderr
        assert command(state, "reconcile", "--bucket", legacy, "--dry-run").returncode == 0
    finally:
        up.send_signal(signal.SIGINT)
        try:
            _, err = up.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            up.kill()
            _, err = up.communicate()
    # And once `up` stops, its state file is gone
    assert up.returncode == 0, err[-2000:]
    assert not state.exists()
