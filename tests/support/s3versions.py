"""An in-memory versioned S3 bucket that answers HeadObject like S3 does, with faults.

Versions of a key are kept oldest first; the last one is current. A plain delete adds a
delete marker; deleting a version removes exactly that one (marker or object). HeadObject
without versionId: the current version -> 200; a current delete marker -> 404 with the
marker's version id; no version -> 404.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field

from pipeline.ingest.objects import ObjectHead, ObjectLookupError


@dataclass
class Version:
    version_id: str
    size: int | None = None
    etag: str | None = None
    marker: bool = False


@dataclass
class FakeVersionedBucket:
    """`ObjectReader` over an in-memory versioned bucket; `faults` are raised first, per key."""

    name: str = "serverless-event4"
    versions: dict[str, list[Version]] = field(default_factory=lambda: defaultdict(list))
    faults: dict[str, list[ObjectLookupError]] = field(default_factory=lambda: defaultdict(list))
    heads: list[str] = field(default_factory=list)
    """Keys asked about, in order (faulted attempts included)."""
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def _new_id(self) -> str:
        return f"v{next(self._ids):04d}"

    def put(self, key: str, size: int, etag: str) -> str:
        """A PUT: a new current version; returns its id."""
        version = Version(self._new_id(), size, etag)
        self.versions[key].append(version)
        return version.version_id

    def delete(self, key: str) -> str:
        """A plain DELETE: a delete marker becomes current; returns its id."""
        version = Version(self._new_id(), marker=True)
        self.versions[key].append(version)
        return version.version_id

    def delete_version(self, key: str, version_id: str) -> None:
        """DELETE ?versionId=: that version (object or marker) is gone."""
        self.versions[key] = [v for v in self.versions[key] if v.version_id != version_id]

    def current(self, key: str) -> ObjectHead:
        """What HeadObject without versionId says, without faults or bookkeeping."""
        history = self.versions.get(key) or []
        if not history:
            return ObjectHead(exists=False)
        top = history[-1]
        if top.marker:
            return ObjectHead(exists=False, delete_marker=True, version_id=top.version_id)
        return ObjectHead(exists=True, size=top.size, etag=top.etag, version_id=top.version_id)

    async def head(self, bucket: str, key: str) -> ObjectHead:
        """The `ObjectReader` call."""
        assert bucket == self.name, f"HeadObject on the wrong bucket {bucket!r}"
        self.heads.append(key)
        if self.faults.get(key):
            raise self.faults[key].pop(0)
        return self.current(key)
