"""Listing files like S3's ListObjectsV2: sorted, by prefix and delimiter, O(page) per request.

The table's live rows carry `name_shard` (`pipeline.core.model.name_shard_of`: `<bucket>/<n>`), so
the sparse, write-sharded index `by_name` (partition `name_shard`, sort `filename`) holds
exactly the live files, sorted by name within each bucket's shard. A reader (`IndexReader`)
reads one bucket: its shards only, so other buckets' rows are never read. A page queries the
shards in parallel for a key range, merges their sorted runs (a k-way merge) and stops after
`limit` entries (files plus common prefixes).

`IndexReader` is the port; `pipeline.adapters.dynamo.reader.DynamoFileReader` implements it with
Query and GetItem, tests use `tests.support.api.FakeFileReader`.

Order: DynamoDB orders String sort keys by their UTF-8 bytes, which for valid Unicode is the
order of code points, i.e. Python's `str` order; S3's ListObjectsV2 uses the same order.

Positions are *cursors*: a listing resumes strictly after a cursor string. After a file the
cursor is its name; after a common prefix `cp` it is `max_key_with_prefix(cp)`, the greatest
key of at most 1,024 bytes starting with `cp`, so that the next query seeks past every key
under `cp` without reading them.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.core.fields import MAX_OBJECT_SIZE
from pipeline.core.model import FILENAME, INTERNAL_ATTRIBUTES

MAX_LIMIT = 1_000
DEFAULT_LIMIT = 100
MAX_KEY_BYTES_LISTED = 1_024
"""S3 keys are at most 1,024 bytes; so are the index's sort keys (DynamoDB's sort key limit)."""
MAX_ROUNDS = 16
"""Rounds of parallel shard queries a page may use before it ends early (plus one look-ahead).

Without a delimiter a page needs 1-3 rounds. With one, every common prefix whose keys fill a
shard's buffer costs a round (a seek past it), so a page of many large folders ends after this
many rounds with a `next_token`: it is never empty, and the walk continues where it stopped."""
MAX_PAGE_BYTES = 5_000_000
"""Budget for a page's entries in the Lambda response (6,291,456 bytes), leaving room for the
envelope, the token and headers. Measured as the proxy response will carry them: each entry's
JSON (ASCII-escaped, as Powertools serializes it) escaped again inside the response's `body`."""
_MAX_CHAR = "\U0010ffff"
_LARGEST_BY_BYTES = {1: "\x7f", 2: "\u07ff", 3: "\uffff"}


class StoreError(Exception):
    """The file store failed in a way a retry will not fix (permissions, missing table...)."""


class StoreUnavailableError(StoreError):
    """The file store is throttling or unreachable: the request may succeed if retried."""


@dataclass(frozen=True, slots=True)
class ShardQuery:
    """One Query of the index: shard `shard`, names in `[low, high]` (None: open), `limit` rows."""

    shard: int
    low: str | None
    high: str | None
    limit: int


@dataclass(frozen=True, slots=True)
class ShardResult:
    """Rows of one shard query in ascending name order; `more`: the query stopped early."""

    rows: list[dict[str, Any]]
    more: bool


class IndexReader(Protocol):
    """Read access to the files table and its sorted listing index."""

    @property
    def shards(self) -> int:
        """Number of index shards (`pipeline.core.model.INDEX_SHARDS`)."""
        ...

    def query(self, queries: Sequence[ShardQuery]) -> list[ShardResult]:
        """Run the queries (in parallel where possible); results in the same order."""
        ...

    def get(self, filename: str) -> dict[str, Any] | None:
        """The row of `filename` (strongly consistent), or None when absent or a tombstone."""
        ...


class FileIndex(Protocol):
    """The read API's port: the table's buckets and a reader of each."""

    def for_bucket(self, bucket: str) -> IndexReader:
        """The reader of `bucket`'s rows."""
        ...

    def tracked_buckets(self) -> list[str]:
        """Buckets registered in the table, in name order."""
        ...

    def is_tracked(self, bucket: str) -> bool:
        """Whether `bucket` is registered in the table."""
        ...


FileReader = FileIndex
"""The read API's port (name kept for the handlers and tests)."""


# --- key arithmetic ------------------------------------------------------------------------


def utf8_len(text: str) -> int:
    """Bytes of `text` in UTF-8 (lone surrogates counted as 3, as `surrogatepass` writes them)."""
    return len(text.encode("utf-8", "surrogatepass"))


def max_key_with_prefix(prefix: str) -> str | None:
    """The greatest string of at most 1,024 UTF-8 bytes that starts with `prefix` (None: none)."""
    room = MAX_KEY_BYTES_LISTED - utf8_len(prefix)
    if room < 0:
        return None
    fill, rest = divmod(room, 4)
    return prefix + _MAX_CHAR * fill + _LARGEST_BY_BYTES.get(rest, "")


def _next_char(char: str) -> str | None:
    code = ord(char) + 1
    if 0xD800 <= code <= 0xDFFF:
        code = 0xE000
    return chr(code) if code <= 0x10FFFF else None


def key_after(cursor: str) -> str | None:
    """The least string of at most 1,024 UTF-8 bytes greater than `cursor` (None: there is none).

    A query for names `>= key_after(c)` is exactly a query for names `> c` among S3 keys.
    """
    size = utf8_len(cursor)
    if size < MAX_KEY_BYTES_LISTED:
        return cursor + "\x00"
    for i in range(len(cursor) - 1, -1, -1):  # differ as late as possible, by as little
        size -= utf8_len(cursor[i])
        room = MAX_KEY_BYTES_LISTED - size
        char = _next_char(cursor[i])
        if room > 0 and char is not None and utf8_len(char) <= room:
            return cursor[:i] + char
    return None


def common_prefix(filename: str, prefix: str, delimiter: str | None) -> str | None:
    """The common prefix `filename` rolls up into under `prefix` and `delimiter`, if any."""
    if not delimiter:
        return None
    at = filename.find(delimiter, len(prefix))
    return None if at < 0 else filename[: at + len(delimiter)]


# --- rows as the API shows them ------------------------------------------------------------

_STRING_FIELDS = ("bucket", "etag", "event_time", "event_name", "sequencer", "version_id")
# a stored size outside [0, MAX_OBJECT_SIZE] (what ingest accepts) is not shown


def public_view(row: dict[str, Any]) -> dict[str, Any] | None:
    """The row as the API shows it, or None if it has no usable name.

    Internal attributes are left out; a documented attribute of the wrong type or range (a
    hand-written row, a poison message from older code) is left out rather than answered
    with a 500: the response then says less, never something false.
    """
    filename = row.get(FILENAME)
    if not isinstance(filename, str) or not filename:
        return None
    view: dict[str, Any] = {}
    for name, value in row.items():
        if name in INTERNAL_ATTRIBUTES or not isinstance(name, str):
            continue
        if name == "size":
            if type(value) is not int or not 0 <= value <= MAX_OBJECT_SIZE:
                continue
        elif name in _STRING_FIELDS and not isinstance(value, str):
            continue
        view[name] = value
    view[FILENAME] = filename
    return view


def entry_bytes(value: Any) -> int:
    """Bytes `value` adds to the proxy response: its JSON, escaped again inside `body`, + 1."""
    inner = json.dumps(value, separators=(",", ":"), default=str)
    return len(json.dumps(inner)) - 2 + 1


# --- the merge -------------------------------------------------------------------------------


class RoundBudgetExceeded(Exception):
    """The page used its rounds of queries; it ends at the last entry served."""


@dataclass
class _Shard:
    number: int
    low: str | None  # the next query starts here, inclusive (None: from the first name)
    buffer: deque[dict[str, Any]] = field(default_factory=deque)
    done: bool = False  # everything from `low` up to the listing's end has been read


@dataclass
class ReadStats:
    """What one page cost: rounds, store calls and rows read."""

    rounds: int = 0
    calls: int = 0
    rows_read: int = 0


def _later(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return b if a is None else a
    return max(a, b)


class ShardMerger:
    """Ascending k-way merge of the shards' names after `cursor` that start with `prefix`."""

    def __init__(
        self,
        reader: IndexReader,
        prefix: str,
        cursor: str | None,
        *,
        max_rounds: int | None = None,
        stats: ReadStats | None = None,
    ) -> None:
        self._reader = reader
        self._high = max_key_with_prefix(prefix) if prefix else None
        low = prefix or None
        finished = bool(prefix) and self._high is None
        if cursor is not None:
            after = key_after(cursor)
            finished = finished or after is None
            low = _later(low, after)
        self._shards = [_Shard(n, low, done=finished) for n in range(reader.shards)]
        self.max_rounds = max_rounds
        self.stats = stats if stats is not None else ReadStats()
        self.want = 1
        """Entries the caller still expects: sizes the next queries."""
        self.entries = 0
        """Entries made of the rows so far (fewer than rows when folders roll up)."""
        self.consumed = 0
        """Rows taken or skipped so far."""

    def _refill(self, shards: list[_Shard]) -> None:
        if self.max_rounds is not None and self.stats.rounds >= self.max_rounds:
            raise RoundBudgetExceeded
        # Rows per shard for the entries still wanted: the shard's expected share plus 1.5
        # standard deviations (names spread over shards like a binomial), plus the look-ahead;
        # scaled by the entries each consumed row has made so far, so that a delimiter rolling
        # whole folders into one entry each asks for a few rows per seek, not a full share.
        ratio = 1.0 if self.consumed == 0 else min(1.0, self.entries / self.consumed)
        mean = self.want * ratio / len(self._shards)
        per_shard = min(1_000, max(2, math.ceil(mean + 1.5 * math.sqrt(mean) + 1)))
        queries, targets = [], []
        for shard in shards:
            if shard.low is not None and self._high is not None and shard.low > self._high:
                shard.done = True
                continue
            queries.append(ShardQuery(shard.number, shard.low, self._high, per_shard))
            targets.append(shard)
        if not queries:
            return
        self.stats.rounds += 1
        self.stats.calls += len(queries)
        for shard, result in zip(targets, self._reader.query(queries), strict=True):
            self.stats.rows_read += len(result.rows)
            last: str | None = None
            for row in result.rows:
                name = row.get(FILENAME)
                if isinstance(name, str) and (shard.low is None or name >= shard.low):
                    shard.buffer.append(row)
                    last = name
            if result.more and last is not None:
                shard.low = key_after(last)
                shard.done = shard.low is None
            else:
                shard.done = True

    def _head(self) -> _Shard | None:
        best: _Shard | None = None
        for shard in self._shards:
            if shard.buffer and (
                best is None or shard.buffer[0][FILENAME] < best.buffer[0][FILENAME]
            ):
                best = shard
        return best

    def peek(self) -> dict[str, Any] | None:
        """The next row in name order (None at the end); may query the shards."""
        while True:
            empty = [s for s in self._shards if not s.buffer and not s.done]
            if not empty:
                head = self._head()
                return None if head is None else head.buffer[0]
            self._refill(empty)

    def pop(self) -> dict[str, Any]:
        """Take the row `peek` returned."""
        head = self._head()
        if head is None:
            raise IndexError("pop from an exhausted merge")
        self.consumed += 1
        return head.buffer.popleft()

    def seek_past(self, cursor: str) -> None:
        """Skip every name `<= cursor`: buffered ones are dropped, queries resume after it."""
        after = key_after(cursor)
        for shard in self._shards:
            while shard.buffer and shard.buffer[0][FILENAME] <= cursor:
                shard.buffer.popleft()
                self.consumed += 1
            if not shard.buffer and not shard.done:
                if after is None:
                    shard.done = True
                else:
                    shard.low = _later(shard.low, after)


# --- pages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    """One page: files and common prefixes (in name order), and the cursor to resume after."""

    items: list[dict[str, Any]]
    common_prefixes: list[str]
    cursor: str | None
    stats: ReadStats


def start_cursor(start_after: str | None, resume: str | None) -> str | None:
    """Where a listing starts: after the later of `start_after` and a token's cursor."""
    candidates = [c for c in (start_after, resume) if c]
    return max(candidates) if candidates else None


def read_page(
    reader: IndexReader,
    limit: int,
    *,
    prefix: str | None = None,
    delimiter: str | None = None,
    cursor: str | None = None,
    max_rounds: int = MAX_ROUNDS,
    max_bytes: int = MAX_PAGE_BYTES,
) -> Page:
    """Up to `limit` entries after `cursor`, like one ListObjectsV2 call.

    Ends early (with a cursor) only when the next entry would take the page past
    `max_bytes`, or when `max_rounds` rounds of queries were used (delimiter walks over
    many large folders); never empty unless the listing is over. `cursor` is None exactly
    when nothing follows: the merge always looks one entry ahead.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be in [1, {MAX_LIMIT}], got {limit}")
    prefix = prefix or ""
    delimiter = delimiter or None
    if cursor is not None:
        rolled = common_prefix(cursor, prefix, delimiter) if cursor.startswith(prefix) else None
        if rolled is not None:  # S3: a common prefix not after the cursor is skipped whole
            cursor = max(cursor, max_key_with_prefix(rolled) or cursor)
    stats = ReadStats()
    merger = ShardMerger(reader, prefix, cursor, max_rounds=max_rounds, stats=stats)
    items: list[dict[str, Any]] = []
    prefixes: list[str] = []
    used = 0
    last: str | None = None
    while True:
        merger.want = limit - len(items) - len(prefixes) + 1
        try:
            row = merger.peek()
        except RoundBudgetExceeded:
            merger.max_rounds = None  # one more round to see whether anything follows
            if merger.peek() is None:
                return Page(items, prefixes, None, stats)
            return Page(items, prefixes, last, stats)
        if row is None:
            return Page(items, prefixes, None, stats)
        if len(items) + len(prefixes) == limit:
            return Page(items, prefixes, last, stats)
        name = row[FILENAME]
        rolled = common_prefix(name, prefix, delimiter)
        if rolled is not None:
            size = entry_bytes(rolled)
            if used + size > max_bytes and (items or prefixes):
                return Page(items, prefixes, last, stats)
            prefixes.append(rolled)
            merger.entries += 1
            used += size
            last = max_key_with_prefix(rolled) or rolled
            merger.seek_past(last)
            continue
        merger.pop()
        view = public_view(row)
        if view is None:
            continue
        size = entry_bytes(view)
        if used + size > max_bytes and (items or prefixes):
            return Page(items, prefixes, last, stats)
        items.append(view)
        merger.entries += 1
        used += size
        last = name


def iter_live(
    reader: IndexReader, prefix: str | None = None, start_after: str | None = None
) -> Iterator[dict[str, Any]]:
    """Every live row (as stored, internal attributes included) in ascending name order.

    Rows come from the index (eventually consistent): a row written in the last moments may
    be missing or older. Reads about one row per row yielded, in rounds of parallel queries.
    """
    merger = ShardMerger(reader, prefix or "", start_after)
    merger.want = 1_000 * reader.shards  # full queries: 1,000 rows (or 1 MB) per shard
    while merger.peek() is not None:
        merger.entries += 1
        yield merger.pop()
