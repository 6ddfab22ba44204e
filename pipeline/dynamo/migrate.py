"""Put rows written before the listing index into it: `python -m pipeline migrate-index`.

Rows written by older code have no `shard`, so the sparse index `by_name` does not hold
them and `GET /files` does not list them (`GET /files/{name}` still finds them). After a
change of `INDEX_SHARDS`, rows keep their old shard numbers (listed as long as the number is
below the new count: the reader merges every shard, whichever a row is in). The migration
Scans the live rows and sets `shard = shard_of(name)` where it is missing or different, with
a conditional UpdateItem:

- race-free: the condition is "the row exists, is live and its `shard` is still what the
  Scan saw". `shard` depends only on the name, so a live row may take it whatever else
  changed meanwhile; a row deleted since the Scan (a tombstone), or rewritten by current
  code (which sets the right `shard` itself), fails the condition and is counted as
  skipped, never overwritten;
- idempotent: a second run finds nothing to do (rows already right are not written);
- resumable: it reports the Scan position after each page; pass it as `start_after`
  (`--start-after`) to continue an interrupted run.

Cost: one Scan of the whole table (0.5 RRU per 4 KB read, eventually consistent) plus one
UpdateItem per migrated row (1 WRU for the table + 1 for the index per KB of item).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from pipeline.dynamo.errors import error_code
from pipeline.model import DELETED, PARTITION_KEY, SHARD_ATTRIBUTE, shard_of

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_NAMES = {"#f": PARTITION_KEY, "#d": DELETED, "#s": SHARD_ATTRIBUTE}
_LIVE = "attribute_exists(#f) AND attribute_not_exists(#d)"


@dataclass
class MigrationReport:
    """What a run did; `resume_after` is where to continue (None: the table was read to its end)."""

    scanned: int = 0
    migrated: int = 0
    skipped: int = 0
    pages: int = 0
    resume_after: str | None = None

    @property
    def complete(self) -> bool:
        """Whether the whole table was read."""
        return self.resume_after is None


def add_shard(client: DynamoDBClient, table: str, filename: str, seen: str | None = None) -> bool:
    """Set `shard` on the live row `filename` if it is still `seen` (None: absent).

    Returns False when the row changed since (deleted, missing, or another `shard`).
    """
    values = {":s": {"N": str(shard_of(filename))}}
    if seen is None:
        condition = "attribute_not_exists(#s)"
    else:
        condition = "#s = :seen"
        values[":seen"] = {"N": seen}
    try:
        client.update_item(
            TableName=table,
            Key={PARTITION_KEY: {"S": filename}},
            UpdateExpression="SET #s = :s",
            ConditionExpression=f"{_LIVE} AND {condition}",
            ExpressionAttributeNames=_NAMES,
            ExpressionAttributeValues=values,
        )
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def migrate_index(
    client: DynamoDBClient,
    table: str,
    *,
    start_after: str | None = None,
    page_size: int = 500,
    max_pages: int | None = None,
    on_page: Callable[[MigrationReport], None] | None = None,
) -> MigrationReport:
    """Give every live row its `shard_of(name)`; see the module docstring."""
    report = MigrationReport(resume_after=start_after)
    params: dict[str, Any] = {
        "TableName": table,
        "ProjectionExpression": "#f, #s",
        "FilterExpression": "attribute_not_exists(#d)",
        "ExpressionAttributeNames": _NAMES,
        "Limit": page_size,
    }
    while max_pages is None or report.pages < max_pages:
        if report.resume_after is not None:
            params["ExclusiveStartKey"] = {PARTITION_KEY: {"S": report.resume_after}}
        page = client.scan(**params)
        report.pages += 1
        report.scanned += int(page.get("ScannedCount", 0))
        for item in page.get("Items", []):
            name = item[PARTITION_KEY]["S"]
            seen = item.get(SHARD_ATTRIBUTE, {}).get("N")
            if seen is not None and seen == str(shard_of(name)):
                continue  # already right
            if add_shard(client, table, name, seen):
                report.migrated += 1
            else:
                report.skipped += 1
        last = page.get("LastEvaluatedKey")
        report.resume_after = str(last[PARTITION_KEY]["S"]) if last else None
        if on_page is not None:
            on_page(report)
        if last is None:
            break
    return report
