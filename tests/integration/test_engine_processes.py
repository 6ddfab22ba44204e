"""The local stack's engines run as child processes that never outlive their parent, and a
free port taken by someone else between choosing and binding it is not fatal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.local import dynamodb_local
from pipeline.local.dynamodb_local import DynamoDBLocal

REPO = Path(__file__).resolve().parents[2]
PARENT = """
import sys, time
from pipeline.local.dynamodb_local import DynamoDBLocal
from pipeline.local.moto_server import MotoServer
moto = MotoServer().start()
dynamodb = DynamoDBLocal().start()
print(moto.pid, dynamodb.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_engines_die_with_a_parent_that_is_killed() -> None:
    # Given a process running both engines
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        moto_pid, java_pid = (int(pid) for pid in parent.stdout.readline().split())
        assert alive(moto_pid) and alive(java_pid)
        # When it is killed without a chance to clean up
        parent.send_signal(signal.SIGKILL)
        parent.wait(60)
        # Then both engines go too
        deadline = time.monotonic() + 60
        while (alive(moto_pid) or alive(java_pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(moto_pid) and not alive(java_pid)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_free_port_taken_before_java_binds_it_is_replaced(
    taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the first "free" port handed out is taken by another program by bind time
    ports = iter([taken_port])
    real = dynamodb_local._free_port
    monkeypatch.setattr(dynamodb_local, "_free_port", lambda host: next(ports, None) or real(host))
    # When DynamoDB Local starts on port 0
    with DynamoDBLocal() as engine:
        # Then it runs on another port and answers there
        assert engine.port != taken_port
        assert engine.client().list_tables()["TableNames"] == []


def test_an_explicit_port_taken_after_the_check_is_a_port_in_use_error(
    taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.local.ports import PortInUseError

    monkeypatch.setattr(dynamodb_local, "ensure_free", lambda *args: None)  # the race
    with pytest.raises(PortInUseError, match=str(taken_port)):
        DynamoDBLocal(port=taken_port).start()


def test_a_warmed_up_engine_keeps_no_scratch_table_and_serves_writes(
    dynamodb_local: DynamoDBLocal,
) -> None:
    # Given a running DynamoDB Local with a table of its user
    client = dynamodb_local.client()
    before = set(client.list_tables()["TableNames"])
    # When it is warmed up (conditional inserts and updates, reads, in a scratch table)
    dynamodb_local.warm_up(writes=50)
    # Then the scratch table is gone and nothing else changed
    assert set(client.list_tables()["TableNames"]) == before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_engine_runs_with_the_client_compiler_and_one_gc_thread(
    dynamodb_local: DynamoDBLocal,
) -> None:
    command = Path(f"/proc/{dynamodb_local.pid}/cmdline").read_bytes().split(b"\0")
    assert [arg for arg in command if arg.startswith(b"-XX:")] == [
        b"-XX:TieredStopAtLevel=1",
        b"-XX:+UseSerialGC",
    ]
