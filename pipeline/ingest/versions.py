"""Versioned buckets: turn events that cannot tell the object's state into ones that can.

On a versioned bucket a DELETE of a specific version (`ObjectRemoved:Delete` or
`LifecycleExpiration:Delete` carrying a versionId other than "null") may have removed

- a noncurrent version: the object is unchanged;
- the current version: the previous version is current again, with its own size and ETag;
- a delete marker: the object is visible again, and S3 sends no ObjectCreated for it.

The event alone cannot tell these apart (see ../DESIGN.md, "Versioned buckets"), so for those
events only we ask S3 (HeadObject without versionId) and write what it shows, ordered like the
event: its sequencer and eventTime stay, so a later event for the key still wins, and an older
one still loses. Every other event (creates, delete markers, unversioned deletes) is applied as
it is, without a request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from pipeline.core.model import Action, FileEvent
from pipeline.core.retry import Backoff, Deadline
from pipeline.ingest.objects import ObjectHead, ObjectLookupError, ObjectReader

logger = logging.getLogger(__name__)

LOOKUP_EVENT_NAMES = frozenset({"ObjectRemoved:Delete", "LifecycleExpiration:Delete"})
"""Deletes that may have removed a version other than the current one."""
LOOKUP_SHARE = 0.5
"""Most of an invocation's remaining budget that lookups (retries included) may take."""
NULL_VERSION = "null"
"""The version id of objects written while versioning was off or suspended."""


def needs_lookup(event: FileEvent) -> bool:
    """Whether the key's state after `event` can only be learnt from S3.

    True for `ObjectRemoved:Delete` and `LifecycleExpiration:Delete` with a real versionId;
    a plain delete on an unversioned bucket (no versionId, or "null") removes the object.
    """
    return (
        event.action is Action.DELETE
        and event.event_name in LOOKUP_EVENT_NAMES
        and event.version_id not in (None, "", NULL_VERSION)
    )


def apply_head(event: FileEvent, head: ObjectHead) -> FileEvent:
    """The event that makes the key's row equal `head`, ordered like `event`.

    A current version -> a live row with its size, ETag and version id; no current version
    -> a tombstone holding the delete marker's version id (None when no version is left).
    """
    if head.exists:
        return dataclasses.replace(
            event,
            action=Action.PUT,
            size=head.size if head.size is not None else 0,
            etag=head.etag,
            version_id=head.version_id,
        )
    return dataclasses.replace(
        event, action=Action.DELETE, size=None, etag=None, version_id=head.version_id
    )


@dataclass
class Resolution:
    """What `VersionResolver.resolve` found: replacement events and keys that failed."""

    events: dict[str, FileEvent] = field(default_factory=dict)
    """Key -> the event to apply instead of the one given."""
    failures: dict[str, str] = field(default_factory=dict)
    """Key -> why S3 could not tell (the key's messages are redelivered)."""
    lookups: int = 0
    """HeadObject calls made, retries included."""


class VersionResolver:
    """Asks S3 about the keys whose newest event cannot tell their state; one HEAD per key.

    Transient errors (throttling, 5xx, connection errors, timeouts) are retried with capped
    exponential backoff within half of the remaining budget (the rest is the writes'); 403 and
    other client errors are not.
    """

    def __init__(
        self,
        reader: ObjectReader,
        *,
        concurrency: int = 16,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._reader = reader
        self._concurrency = max(1, concurrency)
        self._backoff = backoff or Backoff()
        self._sleep = sleep

    async def resolve(self, events: Iterable[FileEvent], deadline: Deadline) -> Resolution:
        """Replacements for those of `events` (the newest per key) that need a lookup."""
        resolution = Resolution()
        pending = [event for event in events if needs_lookup(event)]
        if not pending:
            return resolution
        # The writes wait for the lookups: keep (1 - LOOKUP_SHARE) of what is left for them.
        reserve = max(deadline.remaining(), 0.0) * (1 - LOOKUP_SHARE)
        gate = asyncio.Semaphore(self._concurrency)

        async def one(event: FileEvent) -> None:
            async with gate:
                head = await self._head(event, deadline, reserve, resolution)
            if head is not None:
                resolution.events[event.key] = apply_head(event, head)

        await asyncio.gather(*(one(event) for event in pending))
        return resolution

    async def _head(
        self, event: FileEvent, deadline: Deadline, reserve: float, resolution: Resolution
    ) -> ObjectHead | None:
        attempt = 0
        reason = "no time left to ask S3 (HeadObject)"
        while (left := deadline.remaining() - reserve) > 0:
            resolution.lookups += 1
            try:  # a hung request must not eat the writes' share either
                return await asyncio.wait_for(
                    self._reader.head(event.bucket, event.filename), timeout=left
                )
            except (ObjectLookupError, TimeoutError) as error:
                attempt += 1
                transient = not isinstance(error, ObjectLookupError) or error.transient
                reason = error.reason if isinstance(error, ObjectLookupError) else "timed out"
                delay = self._backoff.delay(attempt)
                if not transient or delay >= deadline.remaining() - reserve:
                    break
            except Exception as error:  # a reader bug fails this key alone, never the batch
                attempt += 1
                reason = f"HeadObject lookup raised {type(error).__name__}"
                break
            await self._sleep(delay)
        resolution.failures[event.key] = reason
        logger.warning(
            "HeadObject failed for a version delete",
            extra={"object_key": event.filename[:256], "reason": reason, "attempts": attempt},
        )
        return None
