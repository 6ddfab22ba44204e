"""The record model: what one S3 event says about one object, and how it is stored.

Table schema (`files`, partition key `pk`, String; one table holds any number of buckets):

| attribute    | type | present                                                        |
|--------------|------|----------------------------------------------------------------|
| `pk`         | S    | always: `item_key(bucket, filename)` = `<bucket>/<key>`        |
| `filename`   | S    | always: the decoded object key                                 |
| `bucket`     | S    | always: the bucket the key belongs to                          |
| `size`       | N    | creates                                                        |
| `etag`       | S    | creates, when S3 sent one                                      |
| `event_time` | S    | always: the event's time, ISO 8601 UTC with milliseconds       |
| `event_name` | S    | always: e.g. `ObjectCreated:Put`                                |
| `sequencer`  | S    | when S3 sent one (orders events for the same key), uppercase   |
| `seq`        | S    | when S3 sent a sequencer: `normalize_sequencer(sequencer)`     |
| `version_id` | S    | when the bucket is versioned                                   |
| `deleted`    | BOOL | tombstones only: the object was removed; hidden from reads     |
| `expires_at` | N    | tombstones only: epoch seconds, the table's TTL attribute      |
| `name_shard` | S    | live rows only: the listing index's partition (`name_shard`)   |
| `changed`    | S    | rows written since the change feed: the write's feed position  |
| `feed_shard` | S    | with `changed`: the feed index's shard, `{bucket}/{n}`         |
| `kind`       | S    | with `changed`: `created`, `overwritten` or `deleted`          |

A row's identity is (bucket, key): the same key in two buckets is two rows. Bucket names
cannot contain "/", so `pk` splits back unambiguously at its first "/". Items whose `pk`
starts with "#" are system items, never files (bucket names start with a lowercase letter
or digit): `#bucket/<name>` registers a tracked bucket (`bucket_record`); every reader or
scan of rows skips them (`is_system_key`).

`seq` is the sequencer in a fixed-width form (uppercase, right-padded with '0' to
`SEQ_WIDTH` characters: S3's ordering rule), so that DynamoDB itself compares two of them
exactly in a write's condition. Rows written before `seq` existed carry only `sequencer`;
they are compared in Python and replaced by compare-and-swap (pipeline/adapters/dynamo/writer.py).

Deletes are stored as tombstones rather than removed, so that a late, older create
delivered after the delete (S3 delivery is at-least-once and unordered) cannot bring
the file back. Tombstones expire through DynamoDB TTL and are never served by the API.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

PARTITION_KEY = "pk"
"""The table's partition key: `item_key(bucket, filename)`."""
FILENAME = "filename"
"""The object key (the listing index's sort key)."""
BUCKET = "bucket"
SYSTEM_PREFIX = "#"
"""`pk` of system items (bucket registry, totals): never a file's row."""
BUCKET_RECORD_PREFIX = "#bucket/"
REGISTRY_SHARD = "#bucket"
"""`name_shard` of the registry items: the index lists the tracked buckets in one Query."""
DELETED = "deleted"
EXPIRES_AT = "expires_at"
TTL_ATTRIBUTE = EXPIRES_AT
MAX_KEY_BYTES = 2_048
"""DynamoDB's limit on a partition key value."""
MAX_ITEM_BYTES = 400 * 1_024
"""DynamoDB's limit on one item."""

# The sorted listing index (a sparse, write-sharded GSI): live rows carry `name_shard`
# (`<bucket>/<n>`), tombstones do not, so the index holds exactly the files the API lists,
# sorted by `filename` per bucket and shard: a page of one bucket queries its shards only.
INDEX_NAME = "by_name"
SHARD_ATTRIBUTE = "name_shard"
INDEX_SHARDS = 8
"""Shards of the listing index per bucket (chosen by measurement: docs/performance.md)."""
FEED_SHARDS = 32
"""Partition key values of the feed index per bucket (spreads a burst of writes). An overwrite
or a delete moves its feed entry (2 write units on a key value capped at 1,000/s): with 8
shards (before issue 23) the template's defaults sustained 3,000-3,700 of them a second, with
16 4,600-5,000, with 32 6,900-7,000, where the 8 listing shards become the limit
(docs/performance.md, "Capacity"). A `/changes` page queries every shard in parallel.
Upgrading a stack that wrote 8: docs/deploy.md, "Upgrading to 32 feed shards"."""
MAX_BUCKET_CHARS = 63
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
BUCKET_RULE = (
    "3-63 characters: lowercase letters, digits, dots and hyphens, "
    "starting and ending with a letter or digit"
)

# The change feed's index (pipeline/feed/): every row a writer stamps carries `changed` (its
# position in the feed) and `feed_shard`; `by_change` sorts each shard by `changed`.
FEED_INDEX_NAME = "by_change"
CHANGED = "changed"
FEED_SHARD = "feed_shard"
KIND = "kind"

SEQ = "seq"
SEQ_WIDTH = 64
"""Hex digits of a normalized sequencer (S3's are 16-18 today; longer ones are rejected)."""
LOWEST_SEQ = "0" * SEQ_WIDTH
"""The lowest version: rows backfilled without an event (reconcile) carry it, so that any
real event with a sequencer replaces them."""
_HEX = re.compile(r"[0-9A-Fa-f]+")

VERSION_ATTRIBUTES = (PARTITION_KEY, SEQ, "sequencer", "event_time", DELETED)
"""The version of a row: what orders it against events (reconcile's repairs keep it)."""
STATE_ATTRIBUTES = (*VERSION_ATTRIBUTES, "size")
"""What ingest reads to decide and what its conditional write compares (compare-and-swap):
the version and the size, so that a write applies exactly the transition from the row read
(the folder totals add its size difference; a repair that changed only the size, keeping
the version, makes the write conflict instead of being counted from the wrong size)."""
ROW_ATTRIBUTES = (
    PARTITION_KEY,
    FILENAME,
    BUCKET,
    "size",
    "etag",
    "event_time",
    "event_name",
    "sequencer",
    SEQ,
    "version_id",
    DELETED,
    EXPIRES_AT,
    SHARD_ATTRIBUTE,
    CHANGED,
    FEED_SHARD,
    KIND,
)
"""Every attribute of the row model: a write sets those in the row and removes the others."""

INTERNAL_ATTRIBUTES = frozenset(
    {PARTITION_KEY, DELETED, EXPIRES_AT, SHARD_ATTRIBUTE, SEQ, CHANGED, FEED_SHARD, KIND}
)
"""Attributes the API never shows."""


def sequencer_problem(sequencer: str) -> str | None:
    """Why `sequencer` cannot be stored as a `seq` (not hex, too long), or None."""
    if not _HEX.fullmatch(sequencer):
        return "s3.object.sequencer must be a hexadecimal string"
    if len(sequencer) > SEQ_WIDTH:
        return f"s3.object.sequencer is longer than {SEQ_WIDTH} hex digits"
    return None


def normalize_sequencer(sequencer: str) -> str:
    """S3's rule made fixed-width: uppercase, right-padded with '0' to `SEQ_WIDTH` digits.

    Two normalized sequencers compare as strings exactly as S3 says to compare the raw ones.
    Raises ValueError for a sequencer `sequencer_problem` rejects.
    """
    problem = sequencer_problem(sequencer)
    if problem:
        raise ValueError(problem)
    return sequencer.upper().ljust(SEQ_WIDTH, "0")


def stored_seq(stored: dict[str, Any]) -> str | None:
    """The normalized sequencer of a stored row: `seq`, else its legacy raw `sequencer`."""
    seq = stored.get(SEQ)
    if isinstance(seq, str) and seq:
        return seq
    raw = stored.get("sequencer")
    if isinstance(raw, str) and raw and sequencer_problem(raw) is None:
        return normalize_sequencer(raw)
    return raw if isinstance(raw, str) and raw else None


def shard_of(filename: str, shards: int = INDEX_SHARDS) -> int:
    """The listing-index shard number of a key among `shards` (the bucket's plan,
    `pipeline.core.shards`): stable across processes and Python versions."""
    return zlib.crc32(filename.encode("utf-8", "surrogatepass")) % shards


def bucket_problem(bucket: object) -> str | None:
    """Why `bucket` cannot be a tracked bucket's name (S3's naming rules), or None."""
    if not isinstance(bucket, str) or not _BUCKET_NAME.fullmatch(bucket):
        return f"bucket must be an S3 bucket name: {BUCKET_RULE}"
    if ".." in bucket:
        return "bucket must not contain two adjacent dots"
    return None


def item_key(bucket: str, filename: str) -> str:
    """The partition key (`pk`) of the row of `filename` in `bucket`: `<bucket>/<filename>`."""
    return f"{bucket}/{filename}"


def split_item_key(pk: str) -> tuple[str, str]:
    """(bucket, filename) of a row's `pk`; ValueError for a system item or a foreign value."""
    if pk.startswith(SYSTEM_PREFIX) or "/" not in pk:
        raise ValueError(f"not a file's partition key: {pk[:100]!r}")
    bucket, filename = pk.split("/", 1)
    return bucket, filename


def is_system_key(pk: object) -> bool:
    """Whether a `pk` names a system item (`#...`), not a file: readers and scans skip them."""
    return isinstance(pk, str) and pk.startswith(SYSTEM_PREFIX)


def name_shard(bucket: str, shard: int) -> str:
    """The listing index's partition key value of `bucket`'s shard `shard`."""
    return f"{bucket}/{shard}"


def name_shard_of(bucket: str, filename: str, shards: int = INDEX_SHARDS) -> str:
    """The listing index partition of a live row: `<bucket>/<shard_of(filename, shards)>`."""
    return name_shard(bucket, shard_of(filename, shards))


def bucket_record(bucket: str, **attributes: str) -> dict[str, str]:
    """The registry item of a tracked bucket (plain values): listed by the index under
    `REGISTRY_SHARD`, sorted by name, never mistaken for a file (`pk` starts with "#")."""
    return {
        PARTITION_KEY: BUCKET_RECORD_PREFIX + bucket,
        BUCKET: bucket,
        SHARD_ATTRIBUTE: REGISTRY_SHARD,
        FILENAME: bucket,
        **attributes,
    }


class WriteOutcome(StrEnum):
    """What became of one conditional write."""

    WRITTEN = "written"
    CONFLICT = "conflict"
    """The stored item is not (any more) what the write expected: re-read, decide again."""
    FAILED = "failed"
    """DynamoDB refused it for good or no time was left: the reason is in `OpStats.failures`."""


@dataclass(frozen=True, slots=True)
class ConditionalWrite:
    """Write `row` (the whole row: model attributes it lacks are removed) only if the stored
    item still has exactly the state attributes of `expected` (`seq`, `sequencer`,
    `event_time`, `deleted`, `size`: compare-and-swap), or, with `expected=None`, only if no item
    exists. `ordered`: also write while the stored `seq` is lower than the row's `seq`
    (both sequencer-ordered: the row's event is newer whatever was written in between)."""

    row: dict[str, Any]
    expected: dict[str, Any] | None
    ordered: bool = False


class Action(StrEnum):
    """What an event does to the file's row."""

    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class FileEvent:
    """One S3 record, decoded: the newest of these per key decides the key's row."""

    filename: str
    bucket: str
    action: Action
    event_name: str
    event_time: str
    size: int | None = None
    etag: str | None = None
    sequencer: str | None = None
    version_id: str | None = None

    @property
    def key(self) -> str:
        """The row's identity in the table: `item_key(bucket, filename)`."""
        return item_key(self.bucket, self.filename)

    @property
    def seq(self) -> str | None:
        """The normalized sequencer (`normalize_sequencer`), or None without one."""
        return normalize_sequencer(self.sequencer) if self.sequencer else None

    def row(
        self, *, now: float, tombstone_ttl_s: int, index_shards: int = INDEX_SHARDS
    ) -> dict[str, Any]:
        """The table item (plain Python values) this event writes (a live row's listing
        shard among `index_shards`, the bucket's plan)."""
        item: dict[str, Any] = {
            PARTITION_KEY: self.key,
            FILENAME: self.filename,
            BUCKET: self.bucket,
            "event_time": self.event_time,
            "event_name": self.event_name,
        }
        if self.sequencer:
            item["sequencer"] = self.sequencer
            item[SEQ] = normalize_sequencer(self.sequencer)
        if self.version_id:
            item["version_id"] = self.version_id
        if self.action is Action.DELETE:
            item[DELETED] = True
            item[EXPIRES_AT] = int(now) + tombstone_ttl_s
        else:
            item["size"] = self.size if self.size is not None else 0
            item[SHARD_ATTRIBUTE] = name_shard_of(self.bucket, self.filename, index_shards)
            if self.etag:
                item["etag"] = self.etag
        return item


def compare_sequencers(a: str, b: str) -> int:
    """S3's rule: pad the shorter hex string with zeros on the right, compare as strings."""
    width = max(len(a), len(b))
    left, right = a.upper().ljust(width, "0"), b.upper().ljust(width, "0")
    return (left > right) - (left < right)


def parse_time(value: str) -> datetime | None:
    """An ISO 8601 time (`Z` accepted), or None when it is not one."""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def compare_versions(
    seq_a: str | None, time_a: str | None, seq_b: str | None, time_b: str | None
) -> int:
    """Order two events for the same key: sequencer when both have one, else eventTime.

    Returns >0 when a is newer, <0 when b is newer, 0 when they cannot be told apart.
    """
    if seq_a and seq_b:
        return compare_sequencers(seq_a, seq_b)
    ta = parse_time(time_a) if time_a else None
    tb = parse_time(time_b) if time_b else None
    if ta is not None and tb is not None:
        try:
            return (ta > tb) - (ta < tb)
        except TypeError:  # naive vs aware: compare as UTC text instead
            pass
    if time_a and time_b:
        return (time_a > time_b) - (time_a < time_b)
    return 0


def is_newer(event: FileEvent, stored: dict[str, Any] | None) -> bool:
    """Whether `event` should replace the `stored` row (None: nothing stored yet).

    An event equal to the stored one by sequencer is a duplicate delivery: not newer.
    Without sequencers, ties on eventTime go to the event being processed now.
    """
    if stored is None:
        return True
    seq = stored_seq(stored)
    stored_time = stored.get("event_time")
    if not isinstance(stored_time, str):  # not a value this code writes: any event repairs it
        stored_time = None
    order = compare_versions(event.seq, event.event_time, seq, stored_time)
    if order != 0:
        return order > 0
    return not (event.sequencer and seq)
