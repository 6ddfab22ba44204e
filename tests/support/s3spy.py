"""Capture the notifications the embedded moto's S3 sends to SQS (to send them again later).

moto runs in its own process: the spy is installed there (`MotoServer.call`), and the captured
bodies come back when the `with` block ends.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipeline.local.moto_server import MotoServer

_captures: dict[str, tuple[list[str], bool]] = {}
"""In moto's process: bucket -> (captured SQS bodies, deliver them too)."""
_lock = threading.Lock()


def _spy_installed() -> None:
    from moto.s3 import notifications

    original = notifications._send_sqs_message
    if getattr(original, "spy", False):
        return

    def spy(account_id: str, event_body: Any, queue_name: str, region_name: str) -> None:
        records = event_body.get("Records") if isinstance(event_body, dict) else None
        bucket = records[0]["s3"]["bucket"]["name"] if records else None
        with _lock:
            capture = _captures.get(bucket) if bucket else None
            if capture is not None:
                capture[0].append(json.dumps(event_body))
        if capture is None or capture[1]:
            original(account_id, event_body, queue_name, region_name)

    spy.spy = True  # type: ignore[attr-defined]
    notifications._send_sqs_message = spy  # type: ignore[assignment]


def _start(bucket: str, deliver: bool) -> None:
    _spy_installed()
    with _lock:
        _captures[bucket] = ([], deliver)


def _stop(bucket: str) -> list[str]:
    with _lock:
        return _captures.pop(bucket)[0]


@contextmanager
def capture_notifications(
    moto: MotoServer | None, bucket: str, *, deliver: bool = True
) -> Iterator[list[str]]:
    """Yield a list that holds, once the block ends, the SQS bodies `bucket`'s notifications
    produced in it. `deliver=False` keeps them out of the queue: only the captured copies exist.
    Test events (no Records) are not captured."""
    if moto is None:
        raise RuntimeError("capturing notifications needs the embedded moto server")
    captured: list[str] = []
    moto.call(_start, bucket, deliver)
    try:
        yield captured
    finally:
        captured.extend(moto.call(_stop, bucket))
