"""One Lambda execution environment: a process that runs one function, one invocation at a time.

Forked by `fork_server` (Linux; `serve`) or started by `environments.ExecutionEnvironment` as

    python -m pipeline.local.lambda_worker HANDLER READ_FD WRITE_FD PARENT_PID [--clear-metrics]

with the function's environment variables. It imports the handler's module once (the cold
start: its module state lives as long as this process), answers `{"ready": true}` (or the init
error), then reads invocations (`{"event", "context"}`) one after the other and answers each
with `{"result": ...}` or `{"error": {"errorType", "errorMessage"}}`, JSON as Lambda's payloads.
It ends when its input closes (the parent is done with it or gone) and, if it is stuck in a
handler, as soon as its parent process dies.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
import threading
import time
import traceback
from typing import Any

from pipeline.local.lambda_runtime import (
    LambdaContext,
    clearing_metrics,
    close_thread_resources,
    cold_start,
)

_LENGTH = struct.Struct(">I")


def write_frame(fd: int, message: Any) -> None:
    """Send one JSON message, length-prefixed."""
    data = json.dumps(message).encode("utf-8")
    view = memoryview(_LENGTH.pack(len(data)) + data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_exactly(fd: int, size: int) -> bytes | None:
    """`size` bytes from `fd`; None at end of file."""
    chunks: list[bytes] = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> Any | None:
    """One JSON message; None at end of file."""
    header = read_exactly(fd, _LENGTH.size)
    if header is None:
        return None
    data = read_exactly(fd, _LENGTH.unpack(header)[0])
    return None if data is None else json.loads(data)


def _error(error: BaseException) -> dict[str, Any]:
    return {"error": {"errorType": type(error).__name__, "errorMessage": str(error)}}


def _die_with(parent_pid: int) -> None:
    """Exit at once when the parent process is gone (even in the middle of an invocation)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _die_with_lifeline(fd: int) -> None:
    """Exit at once when the lifeline's write end (held by the stack's process) closes."""

    def watch() -> None:
        while os.read(fd, 1):
            pass
        os._exit(1)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def context_from(fields: dict[str, Any]) -> LambdaContext:
    """The invocation's context, its clock already running for `elapsed_s`."""
    context = LambdaContext(
        function_name=fields["function_name"],
        timeout_s=float(fields["timeout_s"]),
        region=fields["region"],
        memory_limit_in_mb=int(fields["memory_limit_in_mb"]),
        aws_request_id=fields["aws_request_id"],
    )
    context._started -= float(fields.get("elapsed_s", 0))
    return context


def main(argv: list[str]) -> int:
    """Run the environment until its input closes (a process of its own)."""
    handler_path, read_fd, write_fd, parent_pid = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    # Ctrl-C in a terminal reaches the whole process group: the parent stops the stack and
    # ends its environments itself (their input closes)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(parent_pid)
    return _run(handler_path, read_fd, write_fd, "--clear-metrics" in argv[4:])


def serve(launch: dict[str, Any], fds: dict[str, int]) -> int:
    """Run a forked environment (`fork_server`) until its input closes: take the function's
    environment, cwd, stdout and stderr first, as a new process would have them."""
    for name, target in (("stdout_fd", 1), ("stderr_fd", 2)):
        os.dup2(fds[name], target)
        os.close(fds[name])
    os.chdir(launch["cwd"])
    os.environ.clear()
    os.environ.update(launch["environment"])
    for entry in reversed(launch["python_path"]):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_lifeline(fds["lifeline_fd"])
    try:
        return _run(launch["handler"], fds["read_fd"], fds["write_fd"], launch["clear_metrics"])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _run(handler_path: str, read_fd: int, write_fd: int, clear_metrics: bool) -> int:
    """Cold start, then answer invocations until the input closes."""
    try:
        handler, module = cold_start(handler_path, {})
        if clear_metrics:
            handler = clearing_metrics(handler, module)
    except Exception as error:  # an init error fails the invocation, as on Lambda
        traceback.print_exc()
        write_frame(write_fd, _error(error))
        return 1
    write_frame(write_fd, {"ready": True})
    try:
        while (request := read_frame(read_fd)) is not None:
            try:
                result = handler(request["event"], context_from(request["context"]))
                json.dumps(result)  # Lambda serializes the response; it must be JSON
                answer = {"result": result}
            except Exception as error:
                traceback.print_exc()
                answer = _error(error)
            write_frame(write_fd, answer)
    finally:
        close_thread_resources(module)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
