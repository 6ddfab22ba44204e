"""Lambda's process model on the local stack: one invocation per execution environment.

Each environment is a worker process with its own module state, cold-started on first use and
reused warm; concurrent invocations get different environments; a timed-out invocation's
environment is killed; environments die with their parent.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.local import fork_server
from pipeline.local.api_client import file_url, get
from pipeline.local.environments import FunctionError, FunctionPool, FunctionTimeoutError
from pipeline.local.gateway import ApiGateway
from pipeline.local.lambda_runtime import LambdaContext
from pipeline.local.stack import Stack
from pipeline.local.template import read_stack_config

pytestmark = pytest.mark.e2e
PROBE = "tests.support.lambda_probe"


def context(timeout_s: float = 20) -> LambdaContext:
    return LambdaContext(function_name="Probe", timeout_s=timeout_s, region="ap-south-1")


@pytest.fixture
def pool() -> Iterator[FunctionPool]:
    pools: list[FunctionPool] = []

    def make(handler: str, size: int = 2, **environment: str) -> FunctionPool:
        pools.append(FunctionPool(f"{PROBE}.{handler}", {**os.environ, **environment}, size))
        return pools[-1]

    yield make  # type: ignore[misc]
    for each in pools:
        each.close()


def in_threads(calls: list[Any]) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            results[index] = calls[index]()
        except Exception as error:  # surfaced by the assertions
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_a_module_global_set_by_one_invocation_is_never_seen_by_a_concurrent_one(
    pool: Any, tmp_path: Path
) -> None:
    # Given a function whose invocations set a module global, then wait for each other
    function = pool("remember", size=3)
    events = [{"value": v, "barrier": str(tmp_path), "parties": 3} for v in "abc"]
    # When three invocations run at once (all have set the global before any reads it)
    results = in_threads([lambda e=e: function(e, context()) for e in events])
    # Then each sees its own value, in an environment of its own
    assert [r["value"] for r in results] == ["a", "b", "c"]
    assert len({r["pid"] for r in results}) == 3


def test_an_environment_is_cold_started_once_and_reused_warm_with_the_function_environment(
    pool: Any,
) -> None:
    function = pool("environ", size=2, PROBE_SETTING="from the template")
    first = function({"name": "PROBE_SETTING"}, context(timeout_s=7))
    second = function({"name": "PROBE_SETTING"}, context(timeout_s=7))
    assert first["value"] == second["value"] == "from the template"
    assert first["pid"] == second["pid"]
    assert function.cold_starts == 1
    assert 0 < second["remaining_ms"] <= 7000


def test_an_environment_has_the_function_variables_only_whatever_its_parent_or_fork_server_had(
    pool: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a parent process with a variable the function does not have (environments are
    # forked from a fork server that started with the parent's variables, on Linux)
    monkeypatch.setenv("PARENT_ONLY_SETTING", "leaked")
    function = FunctionPool(f"{PROBE}.process", {"PROBE_SETTING": "mine"}, 1)
    try:
        # When the function is invoked
        answer = function({}, context())
    finally:
        function.close()
    # Then its environment has the function's variables (and the runtime's PYTHONPATH) only,
    # and runs in the project's folder, in a process of its own
    assert answer["environ"].get("PROBE_SETTING") == "mine"
    assert "PARENT_ONLY_SETTING" not in answer["environ"]
    assert set(answer["environ"]) <= {"PROBE_SETTING", "PYTHONPATH"}
    assert answer["cwd"] == str(Path(__file__).resolve().parents[2])
    assert answer["pid"] != os.getpid()


def test_without_the_fork_server_an_environment_is_a_process_of_its_own_with_the_same_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a system where environments cannot be forked (not Linux, or no pidfds)
    monkeypatch.setattr(fork_server, "available", lambda: False)
    monkeypatch.setenv("PARENT_ONLY_SETTING", "leaked")
    function = FunctionPool(f"{PROBE}.process", {"PROBE_SETTING": "mine"}, 1)
    try:
        # When the function is invoked twice
        first, second = function({}, context()), function({}, context())
    finally:
        function.close()
    # Then it ran in one warm process of its own, with the function's variables only
    assert first["pid"] == second["pid"] != os.getpid()
    assert first["environ"].get("PROBE_SETTING") == "mine"
    assert "PARENT_ONLY_SETTING" not in first["environ"]


def test_a_handler_error_fails_the_invocation_and_keeps_the_environment_warm(
    pool: Any,
) -> None:
    function = pool("fail", size=1)
    with pytest.raises(FunctionError, match="ValueError: as asked"):
        function({}, context())
    with pytest.raises(FunctionError):
        function({}, context())
    assert function.cold_starts == 1


def test_an_invocation_past_the_timeout_is_killed_with_its_environment(pool: Any) -> None:
    # Given a function that sleeps past its 1-second timeout
    function = pool("sleep", size=1)
    warm = function({"seconds": 0}, context())["pid"]
    # When it is invoked
    with pytest.raises(FunctionTimeoutError, match=r"Task timed out after 1\.00 seconds"):
        function({"seconds": 25}, context(timeout_s=1))
    # Then its environment is gone: the next invocation is a cold start elsewhere
    assert not _alive(warm)
    assert function({"seconds": 0}, context())["pid"] != warm
    assert function.cold_starts == 2


def test_the_gateway_answers_504_json_when_the_function_times_out(pool: Any) -> None:
    gateway = ApiGateway(
        handler=lambda event, ctx: pool("sleep", size=1)({"seconds": 25}, ctx),
        routes=[("GET", "/files")],
        function_timeout_s=1,
    ).start()
    try:
        response = get(f"{gateway.url}/files", sign=False)
    finally:
        gateway.stop()
    assert response.status == 504
    assert response.json() == {"message": "Endpoint request timed out"}


def test_environments_die_with_their_parent(tmp_path: Path) -> None:
    # Given a parent process whose function is busy in a handler that sleeps for long
    script = textwrap.dedent(
        f"""
        import os, sys, threading, time
        from pipeline.local.environments import FunctionPool
        from pipeline.local.lambda_runtime import LambdaContext
        pool = FunctionPool("{PROBE}.sleep", dict(os.environ), 2)
        print(pool({{"seconds": 0}}, LambdaContext("P", 60, "ap-south-1"))["pid"], flush=True)
        threading.Thread(
            target=pool, args=({{"seconds": 600}}, LambdaContext("P", 900, "ap-south-1"))
        ).start()
        while pool.environments < 2:  # one busy for 10 minutes, one idle
            pool({{"seconds": 0}}, LambdaContext("P", 60, "ap-south-1"))
        print(" ".join(str(e.pid) for e in pool._all), flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert parent.stdout is not None
        parent.stdout.readline()
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
        # When the parent is killed (no chance to clean up)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        # Then its environments, idle and busy, end too
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers)
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has exited
        return stat.read().split(") ")[-1][0] != "Z"


# --- the read API on the stack: concurrent requests never see each other's event ------------

FILES = [f"env-{i}/file {i}.txt" for i in range(6)]


@pytest.fixture(scope="module")
def probed_stack(engines: dict[str, Any]) -> Iterator[Stack]:
    """The stack with the real API handler behind a barrier (`lambda_probe_api`)."""
    config = read_stack_config().with_suffix("environments")
    api = dataclasses.replace(
        config.api, handler="tests.support.lambda_probe_api.lambda_handler", timeout_s=29
    )
    with Stack(dataclasses.replace(config, api=api), pollers=1, **engines) as stack:
        s3 = stack.client("s3")
        for name in FILES:
            s3.put_object(Bucket=stack.bucket, Key=name, Body=name.encode())
        stack.wait_until_idle(timeout_s=120)
        yield stack


def test_concurrent_signed_requests_each_get_their_own_answer(
    probed_stack: Stack, tmp_path: Path
) -> None:
    # Given six signed requests, each for its own file or its own prefix, that all reach the
    # handler before any of them is routed (Powertools' current event is set by all six)
    stack = probed_stack
    barrier = {"X-Probe-Barrier": str(tmp_path), "X-Probe-Parties": str(len(FILES))}
    calls = [
        (lambda n=name: get(file_url(stack.api_url, n), signer=stack.signer, headers=barrier))
        if i % 2
        else (
            lambda n=name: get(
                f"{stack.api_url}/files?prefix={n.split('/')[0]}%2F",
                signer=stack.signer,
                headers=barrier,
            )
        )
        for i, name in enumerate(FILES)
    ]
    # When they run at once
    responses = in_threads(calls)
    # Then each answer is about its own request: 0 wrong answers
    for i, (name, response) in enumerate(zip(FILES, responses, strict=True)):
        assert response.status == 200, response.body
        body = response.json()
        got = body["filename"] if i % 2 else [item["filename"] for item in body["items"]]
        assert got == (name if i % 2 else [name])
