"""moto's SQS under the server's concurrent request threads: a request that changes a queue
while another one scans it (forced here at the worst point) breaks neither."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.local.moto_speedups import _delete_message, _pending_message_groups


class Message:
    """The fields of moto's `Message` the two functions read; `on_read` runs once, the first
    time the field it watches is read (another request's change, landing mid-scan)."""

    def __init__(self, handle: str, group: str | None = None) -> None:
        self._handle, self._group = handle, group
        self._old_receipt_handles: set[str] = set()
        self.all_receipt_handles = {handle}
        self.on_read: Callable[[], None] | None = None

    def _fire(self) -> None:
        hook, self.on_read = self.on_read, None
        if hook is not None:
            hook()

    @property
    def receipt_handle(self) -> str:
        self._fire()
        return self._handle

    @property
    def group_id(self) -> str | None:
        self._fire()
        return self._group


class Queue:
    def __init__(self, messages: list[Message]) -> None:
        self._messages = list(messages)
        self._pending_messages = set(messages)
        self.pending_messages = self._pending_messages
        self.deleted_messages: set[str] = set()


def test_a_delete_is_found_when_another_request_deletes_an_earlier_message_meanwhile() -> None:
    # Given three in-flight messages, and another request deleting the first one just as
    # this delete's scan looks at it (the list shifts left under the scan)
    a, b, c = Message("a"), Message("b"), Message("c")
    queue = Queue([a, b, c])
    a.on_read = lambda: _delete_message(queue, "a")
    # When b is deleted
    _delete_message(queue, "b")  # raised ReceiptHandleIsInvalid when the scan skipped b
    # Then both are gone and c stays
    assert queue._messages == [c]
    assert queue.deleted_messages == {"a", "b"}


def test_a_delete_that_loses_the_race_to_the_same_delete_is_accepted() -> None:
    a = Message("a")
    queue = Queue([a])
    a.on_read = lambda: _delete_message(queue, "a")  # the same handle, deleted meanwhile
    _delete_message(queue, "a")
    assert queue._messages == [] and queue.deleted_messages == {"a"}


def test_pending_groups_are_read_while_a_delete_changes_the_set() -> None:
    # Given pending messages of two groups, and a delete landing while the groups are read
    a, b = Message("a", "g1"), Message("b", "g2")
    queue = Queue([a, b])
    for message in (a, b):
        message.on_read = lambda: queue._pending_messages.clear()
    # Then the read sees the set as it was ("Set changed size during iteration" before)
    assert _pending_message_groups(queue) == {"g1", "g2"}
