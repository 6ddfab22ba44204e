"""moto's server (S3, SQS, SSM, EventBridge, ...) on loopback, in a child process.

moto's work is CPU-bound Python: in its own process it does not compete for the GIL with the
pollers, the gateway and the handlers of the local stack. The child applies the project's
patches (notifications as AWS sends them, faster SQS checks), serves on 127.0.0.1 (port 0 picks
a free one), ignores Ctrl-C (the parent stops it after the pollers), and dies with its parent
(Linux: PR_SET_PDEATHSIG).

Tests and tools that need moto's backends (seeding a bucket without notifications, lifecycle
expirations) run a module-level function inside the child with `MotoServer.call`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from pipeline.local.ports import PortInUseError, ensure_free

START_TIMEOUT_S = 120.0
"""How long the child may take to import moto and bind (a loaded machine: tens of seconds)."""
T = TypeVar("T")


def _die_with_parent(parent: int) -> None:
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _serve(host: str, port: int, parent: int, connection: Connection) -> None:
    """The child: start moto with the patches, report the port, then run `call`s until told
    to stop (None) or the parent goes away."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # silence the request log
    from moto.server import ThreadedMotoServer

    from pipeline.local import moto_eventbridge, moto_s3_events, moto_speedups

    class Server(ThreadedMotoServer):
        """A failure to bind ends `start()` instead of hanging it forever (moto waits for a
        ready event the failed thread never sets)."""

        error: BaseException | None = None

        def _server_entry(self) -> None:
            try:
                super()._server_entry()
            except BaseException as error:  # werkzeug exits the thread on a taken port
                self.error = error
                self._server_ready_event.set()

    moto_speedups.apply()
    moto_s3_events.apply()  # S3 notifications as AWS sends them (versions, sequencers)
    moto_eventbridge.apply()  # S3 -> EventBridge events as AWS sends them
    server = Server(ip_address=host, port=port, verbose=False)
    server.start()
    if server.error is not None:
        connection.send(("taken", port))
        return
    connection.send(("ready", server.get_host_and_port()[1]))
    try:
        while (request := connection.recv()) is not None:
            function, args, kwargs = request
            try:
                connection.send(("ok", function(*args, **kwargs)))
            except BaseException as error:
                try:
                    connection.send(("error", error))
                except Exception:  # not picklable: its text still says what happened
                    connection.send(("error", RuntimeError(f"{type(error).__name__}: {error}")))
    except (EOFError, OSError):
        pass  # the parent is gone
    finally:
        server.stop()


@dataclass
class MotoServer:
    """moto's server in a child process on 127.0.0.1; port 0 picks a free one."""

    host: str = "127.0.0.1"
    port: int = 0
    _process: Any = field(default=None, init=False, repr=False)
    _connection: Connection | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def endpoint_url(self) -> str:
        """The server's base URL, e.g. `http://127.0.0.1:5000`."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The child process's id while it runs."""
        return None if self._process is None else int(self._process.pid)

    def start(self) -> MotoServer:
        """Start the child and wait until it serves; returns self with the bound port."""
        ensure_free(self.host, self.port, "moto")
        context = multiprocessing.get_context("spawn")  # no inherited threads or locks
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_serve,
            args=(self.host, self.port, os.getpid(), theirs),
            name="moto-server",
            daemon=True,
        )
        process.start()
        theirs.close()
        self._process, self._connection = process, ours
        try:
            if not ours.poll(START_TIMEOUT_S):
                raise RuntimeError(f"moto did not start within {START_TIMEOUT_S:.0f} s")
            status, port = ours.recv()
        except (EOFError, OSError):
            self.stop()
            raise RuntimeError(
                f"moto's process exited at start (code {process.exitcode})"
            ) from None
        except BaseException:
            self.stop()
            raise
        if status == "taken":
            self.stop()
            raise PortInUseError(self.host, self.port, "moto")
        self.port = port
        return self

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `function(*args, **kwargs)` in moto's process and return its result (or raise
        its exception). `function` must be importable by name (module level); arguments and
        result travel pickled."""
        if self._connection is None:
            raise RuntimeError("the moto server is not started")
        with self._lock:
            self._connection.send((function, args, kwargs))
            status, value = self._connection.recv()
        if status == "error":
            raise value
        result: T = value
        return result

    def stop(self) -> None:
        """Stop the child (it stops serving and exits) and release the port."""
        connection, process = self._connection, self._process
        self._connection = self._process = None
        if connection is not None:
            try:
                with self._lock:
                    connection.send(None)
            except OSError:
                pass
            connection.close()
        if process is not None:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
