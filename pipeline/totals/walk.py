"""The folders a sorted walk is inside: a stack, opened and closed as the keys go by.

Keys come in UTF-8 binary order (S3's, the index's), so all keys under a folder are
contiguous: a folder opens at its first key and closes at the first key outside it. The
stack holds only the folders of the current key (at most `MAX_DEPTH` + 1): memory stays flat
however many folders the bucket has.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.totals.deltas import ZERO, Totals
from pipeline.totals.folders import ancestors
from pipeline.totals.ports import StoredTotals


@dataclass
class OpenFolder:
    """A folder being walked: what was counted under it so far, and its counter as read when
    the walk entered it (None when it is not audited)."""

    folder: str
    counted: Totals = ZERO
    stored: StoredTotals | None = None
    listed_at: float | None = None
    """When the listing of its first key was requested (the source's clock), if known."""
    doubt: str | None = None
    """Why its count cannot be trusted for a repair (a key's repair failed or lost a race)."""
    audited: bool = True


class FolderWalk:
    """The stack of open folders of a walk over sorted keys."""

    def __init__(self) -> None:
        self._stack: list[OpenFolder] = []

    def _shared(self, key: str) -> tuple[list[str], int]:
        folders = ancestors(key)
        depth = 0
        while (
            depth < len(self._stack)
            and depth < len(folders)
            and self._stack[depth].folder == folders[depth]
        ):
            depth += 1
        return folders, depth

    def closes_before(self, key: str) -> bool:
        """Whether moving on to `key` closes any open folder."""
        _, depth = self._shared(key)
        return depth < len(self._stack)

    def advance(self, key: str) -> tuple[list[OpenFolder], list[OpenFolder]]:
        """Move on to `key`: (folders closed, deepest first; folders opened, shallowest first).

        Raises ValueError if `key` sorts before a folder still open (out-of-order input)."""
        folders, depth = self._shared(key)
        closed = self._stack[depth:][::-1]
        del self._stack[depth:]
        opened = [OpenFolder(folder) for folder in folders[depth:]]
        self._stack.extend(opened)
        return closed, opened

    def count(self, key: str, totals: Totals) -> None:
        """Count `totals` (one key's) in each open folder `key` is under."""
        if not totals:
            return
        for entry in self._stack:
            if key.startswith(entry.folder):
                entry.counted = entry.counted + totals

    def doubt(self, key: str, reason: str) -> None:
        """Mark every open folder `key` is under as not to be repaired (`reason`)."""
        for entry in self._stack:
            if key.startswith(entry.folder) and entry.doubt is None:
                entry.doubt = reason

    def finish(self) -> list[OpenFolder]:
        """Close every open folder, deepest first."""
        closed = self._stack[::-1]
        self._stack = []
        return closed

    @property
    def open(self) -> list[OpenFolder]:
        """The open folders, shallowest first."""
        return list(self._stack)
