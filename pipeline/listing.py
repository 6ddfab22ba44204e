"""Reading the file list page by page: the port the read API needs, and the paging rules.

`FileReader` is the port; `pipeline.dynamo.reader.DynamoFileReader` implements it with Scan
and GetItem, tests use an in-memory fake. `read_page` turns the store's raw, possibly short
or empty Scan pages into pages of at most `limit` files whose continuation key is `None`
exactly when nothing is left (within a bounded number of store calls).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.model import DELETED, INTERNAL_ATTRIBUTES, PARTITION_KEY

MAX_LIMIT = 1_000
DEFAULT_LIMIT = 100
SCAN_CALLS_PER_PAGE = 10
"""Budget of store calls for one page: bounds the work of a request over a sparse table."""
MAX_SCAN_LIMIT = 1_000
"""Largest `Limit` the growing calls of one page ask for (unless the page itself needs more)."""


class StoreError(Exception):
    """The file store failed in a way a retry will not fix (permissions, missing table...)."""


class StoreUnavailableError(StoreError):
    """The file store is throttling or unreachable: the request may succeed if retried."""


class FileReader(Protocol):
    """Read access to the files table."""

    def scan(
        self, limit: int, start_after: str | None, prefix: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One raw page: evaluate at most `limit` rows after `start_after` (None: from the start).

        Returns the live rows among them whose filename starts with `prefix` (when given) and
        the key to continue after, or None when the table has been read to its end.
        """
        ...

    def get(self, filename: str) -> dict[str, Any] | None:
        """The row of `filename`, or None when there is none or it is a tombstone."""
        ...


@dataclass(frozen=True, slots=True)
class Page:
    """Files of one page and the key to resume after (None: the listing is complete)."""

    items: list[dict[str, Any]]
    last_key: str | None


def is_listed(row: dict[str, Any], prefix: str | None) -> bool:
    """Whether a row belongs in a listing: a live file (not a tombstone) under `prefix`."""
    filename = row.get(PARTITION_KEY)
    return (
        isinstance(filename, str)
        and row.get(DELETED) is not True
        and filename.startswith(prefix or "")
    )


def public_view(row: dict[str, Any]) -> dict[str, Any]:
    """The row as the API shows it: without internal attributes."""
    return {name: value for name, value in row.items() if name not in INTERNAL_ATTRIBUTES}


def read_page(
    reader: FileReader,
    limit: int,
    start_after: str | None = None,
    prefix: str | None = None,
    *,
    max_calls: int = SCAN_CALLS_PER_PAGE,
) -> Page:
    """Collect up to `limit` files after `start_after` with at most `max_calls` store calls.

    The first call asks for one row more than needed: seeing that extra row is how a full
    page knows whether anything follows, so the last page of a listing (and only it) comes
    back with `last_key=None`. Rows filtered out (tombstones, other prefixes) make calls come
    back short; each further call asks for twice as many rows as the one before (up to
    `MAX_SCAN_LIMIT`) so that sparse stretches are crossed within the budget. Rows beyond
    `limit` are not lost: the page then ends at its last file and the next page starts
    after it. When the budget runs out first, the page may be short (even empty) and still
    carries the store's continuation key.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be in [1, {MAX_LIMIT}], got {limit}")
    if max_calls < 1:
        raise ValueError("max_calls must be at least 1")
    collected: list[dict[str, Any]] = []
    key = start_after
    for call in range(max_calls):
        wanted = limit - len(collected) + 1
        rows, key = reader.scan(min(wanted << call, max(wanted, MAX_SCAN_LIMIT)), key, prefix)
        collected.extend(row for row in rows if is_listed(row, prefix))
        if len(collected) > limit:  # at least one more file follows this page
            page = collected[:limit]
            return Page([public_view(row) for row in page], page[-1][PARTITION_KEY])
        if key is None:
            break
    return Page([public_view(row) for row in collected], key)
