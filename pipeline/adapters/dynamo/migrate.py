"""Copy a table keyed by `filename` alone into a (bucket, key) table: `python -m pipeline
migrate-table --source OLD --target NEW`.

Tables written before rows were keyed by (bucket, key) have the partition key `filename` and
an integer `shard`. A key schema cannot change in place, so the stack creates the new table
under a new `TableName` (the old one is retained: `UpdateReplacePolicy: Retain`) and this
command copies the rows: each item gets `pk = item_key(bucket, filename)` and, when live,
`name_shard = name_shard_of(bucket, filename)`; the old `shard` is dropped. A row without a
`bucket` attribute takes `default_bucket` (`--bucket`), or is skipped and counted.

- race-free with ingest writing the new table meanwhile: each copy is a conditional PutItem
  that holds only where the target has no item, or (both sequencer-ordered) an older `seq`.
  A row ingest or reconcile wrote since the switch is never replaced by an older copy;
- idempotent: a second run copies nothing (equal versions fail the condition: `kept`);
- resumable: the report names the source Scan position after each page; pass it as
  `start_after` (`--start-after`) to continue an interrupted run.

Items whose key starts with "#" (system items) are skipped. The old `migrate-index`
command (setting `shard` on rows written before the index existed) is retired: this copy
gives every live row its `name_shard`.

Cost: one Scan of the old table (0.5 RRU per 4 KB) plus one PutItem per row (1 WRU per KB,
plus the index's for live rows). Run `reconcile` per bucket afterwards to repair anything
the old table missed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from pipeline.adapters.dynamo.errors import error_code
from pipeline.core.model import (
    BUCKET,
    DELETED,
    FILENAME,
    PARTITION_KEY,
    SEQ,
    SHARD_ATTRIBUTE,
    bucket_problem,
    is_system_key,
    item_key,
    name_shard_of,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

LEGACY_KEY = "filename"
"""The old table's partition key."""
LEGACY_SHARD = "shard"
"""The old index's (integer) partition key: dropped in the copy."""


@dataclass
class MigrationReport:
    """What a run did; `resume_after` is where to continue (None: the table was read to its end)."""

    scanned: int = 0
    copied: int = 0
    kept: int = 0
    """Rows the target already held at the same or a newer version (ingest since the switch)."""
    skipped: int = 0
    """Items that are not files' rows (system items, rows without a usable bucket)."""
    no_bucket: int = 0
    """Of `skipped`: files' rows with no `bucket` attribute and no `default_bucket`, or an
    invalid one: left behind (run again with the bucket they belong to)."""
    pages: int = 0
    resume_after: str | None = None

    @property
    def complete(self) -> bool:
        """Whether the whole table was read."""
        return self.resume_after is None


def migrated_item(item: dict[str, Any], default_bucket: str | None) -> dict[str, Any] | None:
    """The new table's item for an old item (attribute-value JSON), or None if it is not a
    file's row (a system item, no usable bucket)."""
    name = item.get(LEGACY_KEY, {}).get("S")
    if not isinstance(name, str) or not name or is_system_key(name):
        return None
    bucket = item.get(BUCKET, {}).get("S") or default_bucket
    if not isinstance(bucket, str) or bucket_problem(bucket) is not None:
        return None
    new = {k: v for k, v in item.items() if k not in (LEGACY_SHARD, SHARD_ATTRIBUTE)}
    new[PARTITION_KEY] = {"S": item_key(bucket, name)}
    new[FILENAME] = {"S": name}
    new[BUCKET] = {"S": bucket}
    if item.get(DELETED, {}).get("BOOL") is not True:
        new[SHARD_ATTRIBUTE] = {"S": name_shard_of(bucket, name)}
    return new


def _is_file_row(item: dict[str, Any]) -> bool:
    """Whether an old item is a file's row (not a system item), whatever its bucket."""
    name = item.get(LEGACY_KEY, {}).get("S")
    return isinstance(name, str) and bool(name) and not is_system_key(name)


def copy_item(client: DynamoDBClient, table: str, item: dict[str, Any]) -> bool:
    """Put `item` unless the target holds the key at the same or a newer version; True if put."""
    names = {"#k": PARTITION_KEY}
    condition = "attribute_not_exists(#k)"
    values: dict[str, Any] = {}
    if SEQ in item:
        names["#q"] = SEQ
        condition += " OR #q < :q"
        values[":q"] = item[SEQ]
    params: dict[str, Any] = {
        "TableName": table,
        "Item": item,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
    }
    if values:
        params["ExpressionAttributeValues"] = values
    try:
        client.put_item(**params)
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def migrate_table(
    client: DynamoDBClient,
    source: str,
    target: str,
    *,
    default_bucket: str | None = None,
    start_after: str | None = None,
    page_size: int = 500,
    max_pages: int | None = None,
    on_page: Callable[[MigrationReport], None] | None = None,
) -> MigrationReport:
    """Copy every row of `source` into `target`; see the module docstring."""
    report = MigrationReport(resume_after=start_after)
    while max_pages is None or report.pages < max_pages:
        params: dict[str, Any] = {"TableName": source, "Limit": page_size}
        if report.resume_after is not None:
            params["ExclusiveStartKey"] = {LEGACY_KEY: {"S": report.resume_after}}
        page = client.scan(**params)
        for item in page.get("Items", []):
            report.scanned += 1
            new = migrated_item(item, default_bucket)
            if new is None:
                report.skipped += 1
                report.no_bucket += _is_file_row(item)
            elif copy_item(client, target, new):
                report.copied += 1
            else:
                report.kept += 1
        last = page.get("LastEvaluatedKey")
        report.resume_after = str(last[LEGACY_KEY]["S"]) if last else None
        report.pages += 1
        if on_page is not None:
            on_page(report)
        if last is None:
            break
    return report
