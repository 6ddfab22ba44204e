"""Where a running `up` is: a small state file other commands (reconcile, adopt) find it by.

`up` writes it when the stack is ready and removes it on exit; `reconcile` and `adopt` read it
when no --stack-name or --endpoint-url is given, so they reach the running local stack with
no exported credentials and no endpoint flag. The file lives in a per-user runtime location:
$XDG_RUNTIME_DIR/s3-file-tracker/stack.json, else <tmp>/s3-file-tracker-<uid>/stack.json
(directory 0700, file 0600: it holds the local stack's fake credentials);
$S3_FILE_TRACKER_STATE names another file. A file whose process is gone (killed with -9) is
ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_ENV = "S3_FILE_TRACKER_STATE"
SERVICES = ("s3", "dynamodb", "sqs", "events", "ssm")


@dataclass(frozen=True)
class LocalStack:
    """What a running `up` tells other commands."""

    pid: int
    region: str
    bucket: str
    table: str
    queue_name: str
    api_url: str
    endpoints: dict[str, str]
    """Service -> endpoint URL (one per service: they need not share one server)."""
    credentials: dict[str, str] = field(default_factory=dict)
    """aws_access_key_id / aws_secret_access_key the local services accept."""

    def endpoint(self, service: str) -> str:
        """The endpoint of `service` (S3's when the stack names none for it)."""
        return self.endpoints.get(service) or self.endpoints["s3"]


def state_path() -> Path:
    """The state file of this user's running `up`."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "s3-file-tracker" / "stack.json"
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"s3-file-tracker-{user}" / "stack.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_local_stack(path: Path | None = None) -> LocalStack | None:
    """The running local stack, or None (no file, unreadable, or its process is gone)."""
    path = path or state_path()
    try:
        document: Any = json.loads(path.read_text())
        stack = LocalStack(**document)
    except (OSError, ValueError, TypeError):
        return None
    return stack if _alive(stack.pid) and "s3" in stack.endpoints else None


@contextlib.contextmanager
def published(stack: LocalStack, path: Path | None = None) -> Iterator[Path]:
    """Write the state file for the duration of the block; remove it after (if still ours)."""
    path = path or state_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        json.dump(asdict(stack), stream, indent=2)
    os.replace(partial, path)
    try:
        yield path
    finally:
        current = read_local_stack(path)
        if current is None or current.pid == stack.pid:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
