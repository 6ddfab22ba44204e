"""Handlers that show what an execution environment shares (run in `environments` workers).

`remember` sets a module global, meets the other invocations at a barrier (files in a
directory: processes share nothing else), then answers with the global it sees.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

BARRIER_TIMEOUT_S = 25.0
MINE: str | None = None
"""Set by each `remember` invocation; another environment must never see it."""


def barrier(directory: str, parties: int) -> None:
    """Arrive, then wait until `parties` invocations have arrived (or the timeout passes)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / uuid.uuid4().hex).touch()
    deadline = time.monotonic() + BARRIER_TIMEOUT_S
    while len(list(folder.iterdir())) < parties and time.monotonic() < deadline:
        time.sleep(0.01)


def remember(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Set the global to the event's value, meet the others, return the global and the pid."""
    global MINE
    MINE = event["value"]
    barrier(event["barrier"], event["parties"])
    return {"value": MINE, "pid": os.getpid()}


def sleep(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Sleep `seconds`, then answer with the pid."""
    time.sleep(float(event["seconds"]))
    return {"pid": os.getpid()}


def environ(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The environment variable `name`, the pid and the context's remaining time."""
    return {
        "value": os.environ.get(event["name"]),
        "pid": os.getpid(),
        "remaining_ms": context.get_remaining_time_in_millis(),
    }


def process(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """What the environment's process looks like: its variables, cwd, pid and parent."""
    return {"environ": dict(os.environ), "cwd": os.getcwd(), "pid": os.getpid()}


def fail(event: dict[str, Any], context: Any) -> None:
    """Raise."""
    raise ValueError("as asked")


def sleep_long(event: dict[str, Any], context: Any) -> None:
    """Sleep for 25 s whatever the event (an SQS batch), past any short timeout."""
    time.sleep(25)
