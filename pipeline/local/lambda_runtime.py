"""What Lambda provides around a function: its context object, environment and cold start."""

from __future__ import annotations

import importlib
import io
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

Handler = Callable[[dict[str, Any], Any], Any]
"""A Lambda handler: `handler(event, context) -> response`."""


@dataclass
class LambdaContext:
    """Lambda's context object: what Powertools and our handlers read from it."""

    function_name: str
    timeout_s: float
    region: str
    account_id: str = "123456789012"
    memory_limit_in_mb: int = 128
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_stream_name: str = field(
        default_factory=lambda: time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
    )
    _started: float = field(default_factory=time.monotonic, repr=False)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function timeout, counting down from the invocation."""
        return max(0, int((self.timeout_s - (time.monotonic() - self._started)) * 1000))

    def restart(self) -> None:
        """Start the countdown now: when an execution environment takes the invocation (time
        spent waiting for one is not the function's)."""
        self._started = time.monotonic()

    def elapsed_s(self) -> float:
        """Seconds since the invocation started."""
        return time.monotonic() - self._started


@contextmanager
def patched_environ(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for `None`, remove) environment variables; restore the old values on exit."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def cold_start(handler_path: str, environment: Mapping[str, str]) -> tuple[Handler, Any]:
    """Import (or re-import) the handler's module under `environment`, like a new container.

    The environment is set into `os.environ` (handlers read their settings at import) and
    left there: SDK clients created later in the function read it too. Returns the handler
    and its module.
    """
    module_name, _, attribute = handler_path.rpartition(".")
    if not module_name:
        raise ValueError(f"handler must be 'module.function', got {handler_path!r}")
    os.environ.update(environment)
    if module_name in sys.modules:
        module = importlib.reload(sys.modules[module_name])
    else:
        module = importlib.import_module(module_name)
    handler = getattr(module, attribute)
    if not callable(handler):
        raise TypeError(f"{handler_path} is not callable")
    return handler, module


def close_thread_resources(module: Any) -> None:
    """Close what the handler module keeps per thread (our handlers' `runtime`), if anything."""
    runtime = getattr(module, "runtime", None)
    close = getattr(runtime, "close", None)
    if callable(close):
        close()


EMF_PREFIX = '{"_aws"'
"""How an Embedded Metric Format document printed by Powertools starts."""


class DroppingEmf(io.TextIOBase):
    """A stdout that drops the lines that are EMF documents and passes the rest on.

    Powertools prints a metric set once one of its metrics holds 100 values, even with
    POWERTOOLS_METRICS_DISABLED: a quiet local stack's batch of more than 100 records would
    print whole EMF documents on the console.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._line = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._line += text
        while "\n" in self._line:
            line, self._line = self._line.split("\n", 1)
            if not line.startswith(EMF_PREFIX):
                self._stream.write(line + "\n")
        if self._line and not EMF_PREFIX.startswith(self._line[: len(EMF_PREFIX)]):
            self._stream.write(self._line)  # a partial line that is not EMF: pass it on
            self._line = ""
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


def clearing_metrics(handler: Handler, module: Any) -> Handler:
    """Wrap `handler` to drop its Powertools metrics after each invocation.

    With POWERTOOLS_METRICS_DISABLED, Powertools 3.x never clears the metric set (it is shared
    by all `Metrics` instances of the process): it grows with every invocation, is printed
    anyway once a metric holds 100 values, and leaks into later cold starts in the same
    process. On Lambda it would be flushed and cleared; the quiet local stack clears it.
    """
    from aws_lambda_powertools import Metrics

    instances = [value for value in vars(module).values() if isinstance(value, Metrics)]
    if not instances:
        return handler
    if not isinstance(sys.stdout, DroppingEmf):
        sys.stdout = DroppingEmf(sys.stdout)

    def invoke(event: dict[str, Any], context: Any) -> Any:
        try:
            return handler(event, context)
        finally:
            for metrics in instances:
                metrics.clear_metrics()

    return invoke
