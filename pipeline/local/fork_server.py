"""A fork server for execution environments: the handlers' libraries imported once, then forked.

A new environment (`environments.ExecutionEnvironment`) used to be a new Python process that
imported aioboto3, botocore and Powertools before the handler's module: about a second of CPU
each, and a burst starts ten at once on two cores (the first seconds of `load upload` waited
for them). The fork server is a process (`python -m pipeline.local.fork_server`) that imports
`PRELOAD` once and then forks on request; the forked child takes the function's environment
variables, cwd and stdout/stderr, and only then imports the handler's module (its cold start):
module state is still the environment's own, and no function setting is read before the fork
(`PRELOAD` holds libraries that read the environment when a client, Logger or Tracer is
created, not at import). The server also fills one botocore data loader that every session
of its children shares (`_share_sdk_data`): the SDK's JSON models are parsed once.

Requests go over a SOCK_SEQPACKET Unix socket: a JSON launch and the child's file descriptors
(its invocation pipes, stdout, stderr and a lifeline) as SCM_RIGHTS; the answer is the child's
pid. The server ends when the socket closes (the stack's process is gone); a child ends when
its input closes or, if it is busy in a handler, when the lifeline's write end (held only by
the stack's process) closes. The server ignores SIGCHLD, so the system reaps its children.
Linux only (`available`); elsewhere environments start as plain processes.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PRELOAD = (
    "pipeline.local.lambda_worker",
    "aioboto3",
    "aiobotocore.session",
    "boto3",
    "aws_lambda_powertools",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.tracing",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.event_handler.openapi.params",
    "aws_xray_sdk.core",
    "pipeline.adapters.dynamo.feed",
    "pipeline.adapters.dynamo.reader",
    "pipeline.adapters.dynamo.registry",
    "pipeline.adapters.dynamo.shard_plans",
    "pipeline.adapters.dynamo.stream_totals",
    "pipeline.adapters.dynamo.totals",
    "pipeline.adapters.dynamo.writer",
    "pipeline.adapters.runtime",
    "pipeline.adapters.s3_objects",
    "pipeline.ingest.batch",
    "pipeline.ingest.versions",
    "pipeline.read.api",
    "pipeline.totals.stream",
)
"""Imported once by the server for every environment: the libraries and the pipeline modules
the handlers import (not the handlers: they read their settings at import). None of these
reads a function setting at import; Powertools' Logger, Metrics and Tracer, the API's
resolver and the SDK clients read the environment when the handler's module creates them."""
MAX_MESSAGE = 1 << 20
FDS = ("read_fd", "write_fd", "stdout_fd", "stderr_fd", "lifeline_fd")


@functools.cache
def available() -> bool:
    """Whether environments can be forked here (Linux: fork, SCM_RIGHTS, SOCK_SEQPACKET, and
    pidfds to watch children that are not ours)."""
    if not sys.platform.startswith("linux") or not hasattr(socket, "send_fds"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):  # Python or kernel without pidfds (Linux < 5.3)
        return False
    return True


class ForkServer:
    """The stack process's side: start the server on first use, ask it for children."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._lifeline_r, self._lifeline_w = -1, -1

    def prestart(self) -> None:
        """Start the server now (its imports overlap with whatever the caller starts next)."""
        with self._lock:
            self._ensure()

    def fork(self, launch: dict[str, Any], fds: dict[str, int]) -> int:
        """Start an environment with `launch` (JSON: handler, environment, paths) and `fds`
        (one per name of `FDS`, except the lifeline); returns its pid."""
        with self._lock:
            self._ensure()
            assert self._socket is not None
            descriptors = [fds[name] for name in FDS[:-1]] + [self._lifeline_r]
            socket.send_fds(self._socket, [json.dumps(launch).encode()], descriptors)
            answer = self._socket.recv(64)
        if not answer:
            raise OSError("the fork server is gone")
        return int(answer)

    def _ensure(self) -> None:
        """Start the server unless it runs (the lock held)."""
        if self._socket is not None and self._process is not None and self._process.poll() is None:
            return
        if self._socket is not None:  # a server that died: its children keep their lifeline
            self._socket.close()
        if self._lifeline_w < 0:  # held by this process only: its end is the children's
            self._lifeline_r, self._lifeline_w = os.pipe()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.local.fork_server", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            cwd=PROJECT_ROOT,
        )
        theirs.close()
        self._socket = ours


_SERVER = ForkServer()


def prestart() -> None:
    """Start this process's fork server ahead of the first environment, if forking is
    available (a stack does, while its engines start)."""
    if available():
        _SERVER.prestart()


def fork(launch: dict[str, Any], fds: dict[str, int]) -> int:
    """Fork an environment from this process's fork server (started on first use)."""
    return _SERVER.fork(launch, fds)


def _serve(channel: socket.socket) -> None:
    """The server's loop: fork a child per request until the socket closes."""
    while True:
        data, fds, _, _ = socket.recv_fds(channel, MAX_MESSAGE, len(FDS))
        if not data:
            return
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                channel.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                from pipeline.local.lambda_worker import serve

                code = serve(json.loads(data), dict(zip(FDS, fds, strict=True)))
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        channel.send(str(pid).encode())


def _share_sdk_data() -> None:
    """Let every botocore session of a forked environment share one data loader, its caches
    filled here: the SDK's JSON models (endpoints, partitions, the DynamoDB and S3 service
    models and rule sets) are parsed once, not by each environment's first client (~0.1 s of
    CPU alone, over a second when ten environments start at once). The models are read-only
    once loaded (one loader already serves every client of a session); sessions, credentials
    and clients stay each environment's own. A custom AWS_DATA_PATH gets a loader of its own."""
    import botocore.session
    from botocore.loaders import create_loader

    shared = create_loader()

    def shared_loader(search_path_string: str | None = None) -> Any:
        return shared if search_path_string is None else create_loader(search_path_string)

    botocore.session.create_loader = shared_loader
    try:
        session = botocore.session.get_session()
        for service in ("dynamodb", "s3"):
            session.create_client(
                service,
                region_name="us-east-1",
                endpoint_url="http://127.0.0.1:9",
                aws_access_key_id="preload",
                aws_secret_access_key="preload",
            )
    except Exception as error:  # e.g. AWS_PROFILE naming no profile: the loader fills lazily
        print(f"fork server: SDK models not preloaded ({error})", file=sys.stderr)


def main(argv: list[str]) -> int:
    """`python -m pipeline.local.fork_server FD`: preload, then serve on the socket FD."""
    channel = socket.socket(fileno=int(argv[0]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the stack's process ends us (socket EOF)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the system
    for name in PRELOAD:
        with contextlib.suppress(ImportError):  # a missing one: its handlers import it (and fail)
            importlib.import_module(name)
    _share_sdk_data()
    _serve(channel)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
