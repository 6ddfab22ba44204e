"""What ingest needs from S3: the current version of a key (the port; its adapter is
`pipeline.adapters.s3_objects`).

Used only for events that cannot tell the object's state on their own (a version deleted
from a versioned bucket, see `pipeline.ingest.versions`). One attempt per call: the caller decides
whether to retry, from the error's type (`ObjectLookupError.transient`), never its text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ObjectHead:
    """The current version of a key (HeadObject without versionId), or that it has none.

    `exists` False covers both "only a delete marker is current" (`delete_marker` True,
    `version_id` the marker's) and "no version at all".
    """

    exists: bool
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    delete_marker: bool = False


class ObjectLookupError(Exception):
    """HeadObject could not tell: access denied, throttled, an S3 or a network error."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


class ObjectReader(Protocol):
    """What the version resolver needs from S3 (`S3ObjectReader`, or a fake in tests)."""

    async def head(self, bucket: str, key: str) -> ObjectHead:
        """The key's current version; raise `ObjectLookupError` when S3 cannot say."""
        ...


class LazyObjectReader:
    """An `ObjectReader` opened on first use: unversioned buckets never open an S3 client."""

    def __init__(self, open_reader: Callable[[], Awaitable[ObjectReader]]) -> None:
        self._open = open_reader
        self._reader: ObjectReader | None = None
        self._lock = asyncio.Lock()

    async def head(self, bucket: str, key: str) -> ObjectHead:
        """`head` of the reader, opening it first if needed."""
        if self._reader is None:
            async with self._lock:
                if self._reader is None:
                    self._reader = await self._open()
        return await self._reader.head(bucket, key)
