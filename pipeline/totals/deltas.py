"""What an applied row transition changes in the folder totals, summed per invocation.

A transition is (row before, row after) as the conditional writer applied it: the row read
(consistently) and the row written, with a write condition that held only while the stored
row was still the one read. Each transition is applied exactly once, so adding its delta
exactly once keeps the totals exact; a refused write (stale, duplicate, lost race) is no
transition and adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.core.model import DELETED
from pipeline.totals.folders import ancestors


@dataclass(frozen=True, slots=True)
class Totals:
    """Live files and their bytes (a counter's value, or a change of one)."""

    files: int = 0
    bytes: int = 0

    def __add__(self, other: Totals) -> Totals:
        return Totals(self.files + other.files, self.bytes + other.bytes)

    def __sub__(self, other: Totals) -> Totals:
        return Totals(self.files - other.files, self.bytes - other.bytes)

    def __bool__(self) -> bool:
        return self.files != 0 or self.bytes != 0


ZERO = Totals()


def counted(row: Mapping[str, Any] | None) -> Totals:
    """What one stored row counts for: a live row is one file of its size; a tombstone or
    no row, nothing."""
    if row is None or row.get(DELETED) is True:
        return ZERO
    size = row.get("size")
    return Totals(1, size if isinstance(size, int) and not isinstance(size, bool) else 0)


def delta(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> Totals:
    """The change of one applied transition old -> new: (live(new) - live(old),
    size(new) - size(old))."""
    return counted(new) - counted(old)


FolderKey = tuple[str, str]
"""(bucket, folder): one counter."""


class DeltaSum:
    """Deltas of one invocation, summed per (bucket, folder) of every key's ancestors.

    Zero sums are dropped when read: an overwrite with the same size, or a create and a
    delete of one key in one invocation, costs no counter update.
    """

    def __init__(self) -> None:
        self._sums: dict[FolderKey, Totals] = {}
        self.transitions = 0

    def add(self, bucket: str, key: str, change: Totals) -> None:
        """Count `change` (one applied transition of `key`) in each folder `key` is under."""
        self.transitions += 1
        if not change:
            return
        sums = self._sums
        for folder in ancestors(key):
            at = (bucket, folder)
            sums[at] = sums.get(at, ZERO) + change

    def add_transition(
        self, bucket: str, key: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
    ) -> None:
        """Count the applied transition old -> new of `key`."""
        self.add(bucket, key, delta(old, new))

    def items(self) -> Iterator[tuple[FolderKey, Totals]]:
        """Non-zero sums, sorted by (bucket, folder) (a stable order for requests and tests)."""
        for at in sorted(self._sums):
            if self._sums[at]:
                yield at, self._sums[at]

    def __len__(self) -> int:
        return sum(1 for _ in self.items())
