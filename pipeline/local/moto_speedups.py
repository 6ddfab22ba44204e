"""Faster, equivalent versions of moto's SQS visibility checks (moto 5.2).

moto decides whether each message is visible or delayed by building `datetime` objects
(`unix_time_millis()`), and recomputes it for every message of the queue several times per
request: `Queue.messages` on every receive, and the three `ApproximateNumberOf*` counts every
time `Queue.attributes` is read, which `SendMessage` does several times per message. With a
backlog of a few thousand notifications that made each send and receive take tens of
milliseconds, so the local stack fell behind bulk uploads. The replacements below compare
the same epoch-millisecond numbers, taking the clock once per call; `delete_message` finds
the message in one pass. Two of them also make moto's SQS safe for the server's concurrent
request threads (a valid delete refused as invalid, a receive failing with a 500). And the
server's router lists moto's package folder on disk for every request: that list is
computed once.
"""

from __future__ import annotations

import contextlib
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
    """moto's `Queue.delete_message` in one pass instead of two list rebuilds.

    The server answers requests on several threads: the scan runs over a snapshot of the
    list (taken atomically), so a message another request deletes or sends meanwhile cannot
    shift the list under it and make a valid receipt handle look invalid (the message would
    then stay in flight until its visibility timeout)."""
    if receipt_handle in queue.deleted_messages:
        return  # already deleted: SQS accepts deleting it again
    for message in list(queue._messages):
        if message.receipt_handle == receipt_handle or (
            receipt_handle in message._old_receipt_handles
        ):
            with contextlib.suppress(ValueError):  # deleted by another request meanwhile
                queue._messages.remove(message)
            queue.pending_messages.discard(message)
            queue.deleted_messages.update(message.all_receipt_handles)
            return
    if receipt_handle in queue.deleted_messages:
        return  # deleted by another request while this one scanned
    raise models.ReceiptHandleIsInvalid()


def _pending_message_groups(queue: Any) -> set[str]:
    """moto's property over a copy of the set (taken atomically): iterating the live set
    failed with "Set changed size during iteration" when a delete ran at the same time."""
    return {m.group_id for m in queue._pending_messages.copy() if m.group_id is not None}


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
        (models.Queue, "pending_message_groups", property(_pending_message_groups)),
    ]
    for owner, name, replacement in replacements:
        setattr(owner, name, replacement)
    _APPLIED = True
