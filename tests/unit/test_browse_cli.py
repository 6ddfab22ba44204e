"""`s3-file-tracker browse`'s choice of API and signer, without a network."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from pipeline.local.browse.cli import TargetError, resolve
from pipeline.local.state import LocalStack, published


def args(**given: object) -> argparse.Namespace:
    values: dict[str, object] = {"stack_name": None, "api_url": None, "region": None, "port": 0}
    return argparse.Namespace(**{**values, **given})


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "stack.json"
    monkeypatch.setenv("S3_FILE_TRACKER_STATE", str(path))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return path


def running(path: Path) -> LocalStack:
    return LocalStack(
        pid=os.getpid(),
        region="eu-west-3",
        bucket="b",
        table="t",
        queue_name="q",
        api_url="http://127.0.0.1:43210",
        endpoints={"s3": "http://127.0.0.1:1"},
        credentials={"aws_access_key_id": "local-key", "aws_secret_access_key": "local-secret"},
    )


def test_no_flags_and_no_running_stack_says_what_to_do(state: Path) -> None:
    with pytest.raises(TargetError, match="no local stack is running: start one with `make up`"):
        resolve(args())


def test_no_flags_reads_the_running_stack_with_its_credentials(state: Path) -> None:
    with published(running(state), state):
        upstream = resolve(args())
    assert upstream.api_url == "http://127.0.0.1:43210" and upstream.auth
    signer = upstream.signers()
    assert signer is not None and signer.region == "eu-west-3"
    assert signer.credentials.access_key == "local-key"


def test_the_running_stacks_url_signs_as_that_stack_any_other_with_the_chain(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with published(running(state), state):
        local = resolve(args(api_url="http://127.0.0.1:43210/"))
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDCHAIN")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "chain-secret")
        other = resolve(args(api_url="https://abc.execute-api.eu-west-1.amazonaws.com/prod"))
    local_signer, other_signer = local.signers(), other.signers()
    assert local_signer is not None and local_signer.credentials.access_key == "local-key"
    assert other_signer is not None and other_signer.credentials.access_key == "AKIDCHAIN"
    assert other_signer.region == "eu-west-1"  # the execute-api host's region
