"""Faster, equivalent versions of moto's SQS visibility checks (moto 5.2).

moto decides whether each message is visible or delayed by building `datetime` objects
(`unix_time_millis()`), and recomputes it for every message of the queue several times per
request: `Queue.messages` on every receive, and the three `ApproximateNumberOf*` counts every
time `Queue.attributes` is read, which `SendMessage` does several times per message. With a
backlog of a few thousand notifications that made each send and receive take tens of
milliseconds, so the local stack fell behind bulk uploads. The replacements below compare
the same epoch-millisecond numbers, taking the clock once per call; `delete_message` finds
and removes the message in one pass. And the server's router lists moto's package folder on
disk for every request: that list is computed once.
"""

from __future__ import annotations

import time
from typing import Any

from moto import backends
from moto.sqs import models

_APPLIED = False


def _now_ms() -> float:
    return time.time() * 1000.0


def _visible(message: Any) -> bool:
    return _now_ms() > message.visible_at


def _delayed(message: Any) -> bool:
    return _now_ms() < message.delayed_until


def _messages(queue: Any) -> list[Any]:
    now = _now_ms()
    return [m for m in queue._messages if now > m.visible_at and not now < m.delayed_until]


def _number_delayed(queue: Any) -> int:
    now = _now_ms()
    return sum(1 for m in queue._messages if now < m.delayed_until)


def _number_not_visible(queue: Any) -> int:
    now = _now_ms()
    return sum(1 for m in queue._messages if not now > m.visible_at)


def _number_visible(queue: Any) -> int:
    return len(_messages(queue))


def _delete_message(queue: Any, receipt_handle: str) -> None:
    """moto's `Queue.delete_message` in one pass instead of two list rebuilds."""
    if receipt_handle in queue.deleted_messages:
        return  # already deleted: SQS accepts deleting it again
    for index, message in enumerate(queue._messages):
        if message.receipt_handle == receipt_handle or (
            receipt_handle in message._old_receipt_handles
        ):
            del queue._messages[index]
            queue.pending_messages.discard(message)
            queue.deleted_messages.update(message.all_receipt_handles)
            return
    raise models.ReceiptHandleIsInvalid()


def apply() -> None:
    """Install the replacements into moto (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    # The server lists moto's package directory (listdir + isdir on ~200 folders) on every
    # request to route it; the list never changes while the process runs.
    moto_modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: moto_modules
    replacements: list[tuple[type, str, Any]] = [
        (models.Message, "visible", property(_visible)),
        (models.Message, "delayed", property(_delayed)),
        (models.Queue, "messages", property(_messages)),
        (models.Queue, "approximate_number_of_messages_delayed", property(_number_delayed)),
        (models.Queue, "approximate_number_of_messages_not_visible", property(_number_not_visible)),
        (models.Queue, "approximate_number_of_messages", property(_number_visible)),
        (models.Queue, "delete_message", _delete_message),
    ]
    for owner, name, replacement in replacements:
        setattr(owner, name, replacement)
    _APPLIED = True
