"""Reconcile's vocabulary and ports: objects, drift, run summaries, checkpoints, and the
Protocols of the sources and stores it needs (adapters in `pipeline.adapters`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from pipeline.core.model import ConditionalWrite, WriteOutcome
from pipeline.totals.audit import TotalsReport


class DriftKind(StrEnum):
    MISSING = "missing"
    EXTRA = "extra"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class S3Object:
    """One current object as S3 lists or heads it."""

    key: str
    size: int
    etag: str | None = None
    """Without quotes, as S3 notifications carry it."""
    last_modified: str | None = None
    """ISO 8601, UTC."""
    version_id: str | None = None
    """Only when the source knows it (HeadObject, an inventory with versions); LIST does not."""
    listed_at: float | None = field(default=None, compare=False)
    """Epoch seconds just before the LIST request that returned it (folder totals use it to
    tell whether a counter changed after the listing began); None for other sources."""


@dataclass(frozen=True, slots=True)
class Drift:
    """A key whose row disagrees with the bucket, as the merge join saw it."""

    kind: DriftKind
    key: str
    listed: S3Object | None
    row: dict[str, Any] | None


# --------------------------------------------------------------------------------- ports


class ObjectSource(Protocol):
    """The bucket's current objects, in UTF-8 binary key order."""

    def iter_objects(self, prefix: str, start_after: str | None) -> Iterator[S3Object]: ...


class ObjectHeads(Protocol):
    """HeadObject (current version) of many keys: an object, or None when S3 says 404.

    A key S3 could not answer for (error, throttling after retries) is left out of the result.
    """

    def head_many(self, keys: Sequence[str]) -> dict[str, S3Object | None]: ...


class LiveRows(Protocol):
    """One bucket's live rows in the table (no tombstones), in UTF-8 binary order of
    `filename` (the bucket's shards of the listing index: no other bucket's rows)."""

    def iter_live(self, prefix: str, start_after: str | None) -> Iterator[dict[str, Any]]: ...


class RowStore(Protocol):
    """Consistent reads and compare-and-swap writes of one bucket's whole rows, by object key
    (`filename`): the store builds the rows' `pk`, so it never reaches another bucket's."""

    def read_rows(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def write_conditional(self, writes: Sequence[ConditionalWrite]) -> dict[str, WriteOutcome]: ...


class CheckpointStore(Protocol):
    """Where a run's progress is kept between invocations (None: no checkpoint)."""

    def load(self, prefix: str) -> Checkpoint | None: ...

    def save(self, checkpoint: Checkpoint) -> None: ...

    def clear(self, prefix: str) -> None: ...


# --------------------------------------------------------------------------------- results


@dataclass
class Summary:
    """Counts of one run (cumulative over the invocations of a resumed run)."""

    listed: int = 0
    """Objects read from the bucket (or inventory)."""
    rows: int = 0
    """Live rows read from the table."""
    missing: int = 0
    extra: int = 0
    stale: int = 0
    repaired: int = 0
    skipped: int = 0
    """Drift that needed no write after the re-check, or where a newer event won the race."""
    failed: int = 0
    seconds: float = 0.0
    complete: bool = False
    """False when the run stopped early (time, signal); a checkpoint says where to resume."""
    dry_run: bool = False
    resumed_after: str | None = None
    last_key: str | None = None
    failures: dict[str, str] = field(default_factory=dict)
    """Up to `MAX_FAILURES_KEPT` keys that could not be repaired, with the reason."""
    totals: TotalsReport | None = None
    """The folder totals audit of this invocation (None when totals are not audited)."""
    drifted: dict[str, list[str]] = field(default_factory=dict)
    """Kind -> the first `MAX_DRIFTED_KEPT` drifted keys of this invocation, in key order."""
    settle_until: float | None = None
    """While folder-counter repairs wait for in-flight ingest: when the last is due (epoch s)."""
    settle_pending: int = 0
    """How many folder-counter repairs wait (with `settle_until`)."""

    @property
    def drift(self) -> int:
        return self.missing + self.extra + self.stale

    def name_drift(self, kind: str, key: str) -> None:
        """Keep `key` among the drifted keys named in the report (bounded per kind)."""
        named = self.drifted.setdefault(kind, [])
        if len(named) < MAX_DRIFTED_KEPT:
            named.append(key)

    def fail(self, key: str, why: str) -> None:
        """Count a key that could not be handled, and name it (up to MAX_FAILURES_KEPT)."""
        self.failed += 1
        if len(self.failures) < MAX_FAILURES_KEPT:
            self.failures[key] = why

    def drifted_keys(self) -> dict[str, dict[str, Any]]:
        """Per kind: the keys named, and how many more drifted (`more`)."""
        return {
            kind: {
                "keys": list(self.drifted.get(kind, [])),
                "more": max(getattr(self, kind) - len(self.drifted.get(kind, [])), 0),
            }
            for kind in ("missing", "extra", "stale")
        }

    def report(self) -> dict[str, Any]:
        """The `--json` summary."""
        return {
            "listed": self.listed,
            "rows": self.rows,
            "missing": self.missing,
            "extra": self.extra,
            "stale": self.stale,
            "repaired": self.repaired,
            "skipped": self.skipped,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "complete": self.complete,
            "dry_run": self.dry_run,
            "resumed_after": self.resumed_after,
            "failures": dict(self.failures),
            **({"totals": self.totals.report()} if self.totals is not None else {}),
            "drifted_keys": self.drifted_keys(),
        }


MAX_FAILURES_KEPT = 20
MAX_DRIFTED_KEPT = 100
"""Drifted keys named per kind in a summary (the counts cover them all)."""


@dataclass
class Checkpoint:
    """The last key fully handled by a run over `prefix`, and the counts so far."""

    prefix: str
    after: str
    started_at: str
    counts: dict[str, int]
    seconds: float = 0.0

    @classmethod
    def of(cls, prefix: str, after: str, started_at: str, summary: Summary) -> Checkpoint:
        counts = {
            name: int(value)
            for name, value in asdict(summary).items()
            if name in COUNTED and isinstance(value, int)
        }
        return cls(prefix, after, started_at, counts, summary.seconds)


COUNTED = ("listed", "rows", "missing", "extra", "stale", "repaired", "skipped", "failed")


def normalize_etag(etag: str | None) -> str | None:
    """S3 lists ETags in quotes, notifications without: compare them without."""
    if etag is None:
        return None
    return etag.strip().strip('"') or None
