"""Lambda execution environments for the local stack: one process each, one invocation at a time.

Lambda runs a function in execution environments: each has its own memory (module state,
clients, Powertools' router with its current event), is cold-started on first use, is reused
warm by later invocations, and handles exactly one invocation at a time. Concurrency means
more environments, never two requests in one. `FunctionPool` does the same on one machine:

- each environment is a child process (`lambda_worker`) with the function's environment
  variables, started when an invocation finds no idle environment (the cold start), then kept
  warm for the next ones;
- at most `size` environments: the function's concurrency (the SQS event source's
  MaximumConcurrency, which is also the number of pollers; for the API its
  ReservedConcurrentExecutions, else `DEFAULT_API_CONCURRENCY`). When all are busy an
  invocation waits for one (Lambda would scale out up to the account's concurrency or, with
  reserved concurrency, throttle: a local machine has neither the cores nor the need);
- an invocation gets the event and the context's remaining time; one still running at the
  function timeout is killed with its environment (`FunctionTimeoutError`), like Lambda's
  "Task timed out"; an exception in the handler is `FunctionError`;
- environments end with the pool (`close`) and with the parent process (see `lambda_worker`).

A pool is a `Handler`: `pool(event, context)` invokes the function and returns its result.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.local import fork_server
from pipeline.local.lambda_runtime import LambdaContext
from pipeline.local.lambda_worker import read_frame, write_frame

logger = logging.getLogger(__name__)

DEFAULT_API_CONCURRENCY = 10
"""Environments of a function that sets no concurrency of its own (the API): a local cap."""
INIT_TIMEOUT_S = 30.0
"""How long a cold start (the handler module's import) may take. Lambda allows 10 s; a loaded
2-core machine starting several environments at once needs more."""
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class FunctionError(Exception):
    """The handler raised (or its environment failed to start or died): the invocation failed."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type


class FunctionTimeoutError(FunctionError):
    """The invocation ran past the function timeout; its environment was killed."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__("Sandbox.Timedout", f"Task timed out after {timeout_s:.2f} seconds")


class ExecutionEnvironment:
    """One worker process running one function's handler; not thread-safe (one caller)."""

    def __init__(
        self,
        handler_path: str,
        environment: Mapping[str, str],
        *,
        clear_metrics: bool = False,
        init_timeout_s: float = INIT_TIMEOUT_S,
    ) -> None:
        parent_read, child_write = os.pipe()
        child_read, parent_write = os.pipe()
        paths = [str(PROJECT_ROOT), *filter(None, [environment.get("PYTHONPATH")])]
        variables = {**environment, "PYTHONPATH": os.pathsep.join(paths)}
        try:
            if fork_server.available():
                self.process: _Forked | subprocess.Popen[bytes] = _Forked(
                    fork_server.fork(
                        {
                            "handler": handler_path,
                            "environment": variables,
                            "python_path": paths,
                            "cwd": str(PROJECT_ROOT),
                            "clear_metrics": clear_metrics,
                        },
                        {
                            "read_fd": child_read,
                            "write_fd": child_write,
                            "stdout_fd": 1,
                            "stderr_fd": 2,
                        },
                    )
                )
            else:
                argv = [
                    sys.executable, "-m", "pipeline.local.lambda_worker", handler_path,
                    str(child_read), str(child_write), str(os.getpid()),
                ]  # fmt: skip
                self.process = subprocess.Popen(
                    argv + (["--clear-metrics"] if clear_metrics else []),
                    env=variables,
                    pass_fds=(child_read, child_write),
                    stdin=subprocess.DEVNULL,
                    cwd=PROJECT_ROOT,
                )
        finally:
            os.close(child_read)
            os.close(child_write)
        self._read, self._write = parent_read, parent_write
        self.invocations = 0
        ready = self._answer(init_timeout_s)
        if ready is None:
            self.kill()
            raise FunctionError("Runtime.InitTimeout", f"no cold start in {init_timeout_s:.0f} s")
        if "ready" not in ready:
            self.kill()
            raise _failure(ready)

    @property
    def pid(self) -> int:
        return self.process.pid

    def invoke(self, event: dict[str, Any], context: LambdaContext) -> Any:
        """Run one invocation; `FunctionTimeoutError` (environment killed) past the timeout."""
        remaining_s = context.get_remaining_time_in_millis() / 1000
        self.invocations += 1
        try:
            write_frame(
                self._write,
                {
                    "event": event,
                    "context": {
                        "function_name": context.function_name,
                        "timeout_s": context.timeout_s,
                        "elapsed_s": context.elapsed_s(),
                        "region": context.region,
                        "memory_limit_in_mb": context.memory_limit_in_mb,
                        "aws_request_id": context.aws_request_id,
                    },
                },
            )
        except OSError as error:
            self.kill()
            raise FunctionError("Runtime.ExitError", f"environment gone: {error}") from None
        answer = self._answer(remaining_s)
        if answer is None:
            self.kill()
            raise FunctionTimeoutError(context.timeout_s)
        if "result" in answer:
            return answer["result"]
        raise _failure(answer)

    def _answer(self, timeout_s: float) -> dict[str, Any] | None:
        """The next message; None when none came within `timeout_s`."""
        readable, _, _ = select.select([self._read], [], [], max(0.0, timeout_s))
        if not readable:
            return None
        answer = read_frame(self._read)
        if answer is None:
            self.kill()
            code = self.process.wait()
            how = "" if code is None else f" with {code}"  # a forked one's code is not ours
            raise FunctionError("Runtime.ExitError", f"environment exited{how}")
        return dict(answer)

    @property
    def alive(self) -> bool:
        return self._write >= 0 and self.process.poll() is None

    def close(self, wait_s: float = 2.0) -> None:
        """End the environment: close its input (it exits), kill it if it does not."""
        for fd in (self._write, self._read):
            if fd >= 0:
                os.close(fd)
        self._write = self._read = -1
        try:
            self.process.wait(wait_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """Discard the environment at once."""
        self.process.kill()
        self.close()


class _Forked:
    """An environment forked by the fork server (not our child: the system reaps it), seen
    through `subprocess.Popen`'s pid, poll, wait and kill; its exit is watched with a pidfd."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # gone already (its input's end tells the same)
            self._pidfd = -1

    def poll(self) -> int | None:
        """None while it runs; its exit code is not ours to read (the server's child)."""
        return None if self._running(0) else -1

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the exit; `subprocess.TimeoutExpired` if it runs past `timeout`."""
        if self._running(timeout):
            raise subprocess.TimeoutExpired(f"environment {self.pid}", timeout or 0)
        return None

    def kill(self) -> None:
        """SIGKILL, unless it has exited."""
        if self._pidfd >= 0 and self._running(0):
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def _running(self, timeout: float | None) -> bool:
        if self._pidfd < 0:
            return False
        readable, _, _ = select.select([self._pidfd], [], [], timeout)
        if readable:  # exited: the pidfd stays readable; release it
            os.close(self._pidfd)
            self._pidfd = -1
        return not readable


def _failure(answer: Mapping[str, Any]) -> FunctionError:
    error = answer.get("error") or {}
    return FunctionError(str(error.get("errorType", "Unknown")), str(error.get("errorMessage")))


@dataclass
class FunctionPool:
    """Up to `size` execution environments of one function; call it like a handler."""

    handler_path: str
    """`module.function`, as the template's Handler."""
    environment: Mapping[str, str]
    """Every environment variable of the worker processes."""
    size: int
    clear_metrics: bool = False
    _idle: list[ExecutionEnvironment] = field(default_factory=list, repr=False)
    _all: set[ExecutionEnvironment] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _closed: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("a function needs at least one execution environment")
        self._slots = threading.BoundedSemaphore(self.size)
        self.cold_starts = 0

    def __call__(self, event: dict[str, Any], context: LambdaContext) -> Any:
        """Invoke the function in an idle environment (waiting for one if all are busy)."""
        with self._slots:
            environment = self._take()
            context.restart()
            try:
                result = environment.invoke(event, context)
            except FunctionError:
                # the handler raised: the environment stays warm, as in Lambda's runtimes;
                # a timeout or a crash has discarded it already
                if environment.alive:
                    self._give_back(environment)
                else:
                    self._discard(environment)
                raise
            except BaseException:
                self._discard(environment)
                raise
            self._give_back(environment)
            return result

    def _take(self) -> ExecutionEnvironment:
        with self._lock:
            if self._closed:
                raise FunctionError("Runtime.Stopped", "the function's pool is closed")
            while self._idle:
                environment = self._idle.pop()
                if environment.alive:
                    return environment
                self._all.discard(environment)
        started = time.monotonic()
        environment = ExecutionEnvironment(
            self.handler_path, self.environment, clear_metrics=self.clear_metrics
        )
        logger.debug(
            "%s: cold start of pid %d in %.0f ms",
            self.handler_path,
            environment.pid,
            (time.monotonic() - started) * 1000,
        )
        with self._lock:
            self.cold_starts += 1
            self._all.add(environment)
            closed = self._closed
        if closed:
            environment.close()
            raise FunctionError("Runtime.Stopped", "the function's pool is closed")
        return environment

    def _give_back(self, environment: ExecutionEnvironment) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(environment)
                return
        environment.close()

    def _discard(self, environment: ExecutionEnvironment) -> None:
        with self._lock:
            self._all.discard(environment)
        if environment.alive:
            environment.kill()

    @property
    def environments(self) -> int:
        """Environments alive now (idle or busy)."""
        with self._lock:
            return len(self._all)

    def close(self) -> None:
        """End every environment (busy ones are killed: their invocation fails)."""
        with self._lock:
            self._closed = True
            idle = list(self._idle)
            busy = self._all.difference(idle)
            self._all.clear()
            self._idle.clear()
        for environment in idle:
            environment.close()
        for environment in busy:  # its caller sees the exit and discards it
            environment.process.kill()
