"""Shared fixtures: one moto server and one DynamoDB Local per test session, a fresh table per
test."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import pytest_socket
from _pytest.nodes import coerce_node_id  # pytest 9: node IDs are NodeId objects

from pipeline.adapters.dynamo.schema import create_files_table
from pipeline.local.dynamodb_local import DynamoDBLocal
from pipeline.local.moto_server import MotoServer
from pipeline.local.state import STATE_ENV

REGION = "ap-south-1"


def _unique_node_ids(items: list[pytest.Item]) -> None:
    """schemathesis gives its items (one per API operation) their test function's node ID;
    pytest-xdist schedules by node ID, and so ran one of them only: each gets its own name's."""
    counts = Counter(item.nodeid for item in items)
    for item in items:
        if counts[item.nodeid] > 1 and item.name not in item.nodeid:
            item._id = coerce_node_id(f"{item.nodeid.rsplit('::', 1)[0]}::{item.name}")


@pytest.fixture(autouse=True)
def _network_outside_the_unit_tier(request: pytest.FixtureRequest) -> None:
    """Integration and e2e tests talk to servers on 127.0.0.1: sockets on, whatever a unit test
    run earlier in this test process left (`tests/unit/conftest.py` turns them off)."""
    if "tests/unit/" not in str(request.node.path).replace("\\", "/"):
        pytest_socket.enable_socket()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `slow` run only when `-m` names them (e.g. `-m slow`)."""
    _unique_node_ids(items)
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _own_state_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Each test process (each xdist worker) has its own `up` state file: an `up` a test
    starts is found by that process's commands only, never by another worker's or a user's
    (and a user's running `up` is never mistaken for the test's)."""
    path = tmp_path_factory.mktemp("run") / "stack.json"
    before = os.environ.get(STATE_ENV)
    os.environ[STATE_ENV] = str(path)
    yield path
    if before is None:
        os.environ.pop(STATE_ENV, None)
    else:
        os.environ[STATE_ENV] = before


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A real moto server over HTTP on 127.0.0.1 (port chosen by the OS), in its own process:
    S3, SQS, SSM, EventBridge."""
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    """AWS's DynamoDB Local, in memory, on 127.0.0.1 (a free port): DynamoDB."""
    with DynamoDBLocal() as engine:
        yield engine


@pytest.fixture(scope="session")
def engines() -> dict[str, Any]:
    """What the e2e stacks pass to `Stack(config, **engines)`: nothing, so each module's stack
    starts engines of its own. Sharing the test process's engines (`{"moto": ..., "dynamodb":
    ...}`, which `Stack` supports) made DynamoDB Local hold every module's table and stream:
    under two test processes on two cores, the later tests of a process timed out on it."""
    return {}


@pytest.fixture
def aws_env(
    moto_server: MotoServer, dynamodb_local: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Point every SDK client of the test at moto, and its DynamoDB clients at DynamoDB Local
    (AWS_ENDPOINT_URL_DYNAMODB); returns moto's endpoint URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_local.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_server.endpoint_url


@pytest.fixture
def dynamodb(aws_env: str):  # type: ignore[no-untyped-def]
    """A boto3 DynamoDB client on DynamoDB Local (AWS_ENDPOINT_URL_DYNAMODB)."""
    return boto3.client("dynamodb", region_name=REGION)


@pytest.fixture
def table_name(dynamodb, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh `files`-shaped table; TABLE_NAME points at it."""
    name = f"files-{uuid.uuid4().hex[:12]}"
    create_files_table(dynamodb, name)
    monkeypatch.setenv("TABLE_NAME", name)
    yield name
    dynamodb.delete_table(TableName=name)
