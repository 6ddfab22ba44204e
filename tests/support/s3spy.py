"""Capture the notifications the embedded moto's S3 sends to SQS (to send them again later)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.s3 import notifications


@contextmanager
def capture_notifications(bucket: str, *, deliver: bool = True) -> Iterator[list[str]]:
    """Yield a list that fills with the SQS bodies `bucket`'s notifications produce.

    `deliver=False` keeps them out of the queue: only the captured copies exist.
    Test events (no Records) are not captured.
    """
    original = notifications._send_sqs_message
    captured: list[str] = []
    lock = threading.Lock()

    def spy(account_id: str, event_body: Any, queue_name: str, region_name: str) -> None:
        records = event_body.get("Records") if isinstance(event_body, dict) else None
        ours = bool(records) and records[0]["s3"]["bucket"]["name"] == bucket
        if ours:
            with lock:
                captured.append(json.dumps(event_body))
        if deliver or not ours:
            original(account_id, event_body, queue_name, region_name)

    notifications._send_sqs_message = spy  # type: ignore[assignment]
    try:
        yield captured
    finally:
        notifications._send_sqs_message = original
