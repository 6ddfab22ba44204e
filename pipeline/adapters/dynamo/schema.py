"""The `files` table for the local stack and tests (template.yaml defines it on AWS)."""

from __future__ import annotations

from typing import Any

from pipeline.core.model import (
    BUCKET,
    CHANGED,
    FEED_INDEX_NAME,
    FEED_SHARD,
    FILENAME,
    INDEX_NAME,
    KIND,
    PARTITION_KEY,
    SHARD_ATTRIBUTE,
    TTL_ATTRIBUTE,
)

INDEX_PROJECTION = "ALL"
"""What the listing index copies: every attribute (docs/performance.md, "Listing index")."""


def index_definition() -> dict[str, Any]:
    """The sparse listing index `by_name`: partition `name_shard` (S, `<bucket>/<n>`), sort
    `filename` (S)."""
    return {
        "IndexName": INDEX_NAME,
        "KeySchema": [
            {"AttributeName": SHARD_ATTRIBUTE, "KeyType": "HASH"},
            {"AttributeName": FILENAME, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": INDEX_PROJECTION},
    }


FEED_PROJECTED = (
    FILENAME,
    BUCKET,
    KIND,
    "size",
    "etag",
    "version_id",
    "event_time",
    "sequencer",
)
"""What the change feed index copies besides its keys: the fields `GET /changes` returns."""


def feed_index_definition() -> dict[str, Any]:
    """The change feed index `by_change`: partition `feed_shard` (S), sort `changed` (S)."""
    return {
        "IndexName": FEED_INDEX_NAME,
        "KeySchema": [
            {"AttributeName": FEED_SHARD, "KeyType": "HASH"},
            {"AttributeName": CHANGED, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(FEED_PROJECTED)},
    }


STREAM_SPECIFICATION = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
"""The table's stream, from which the totals function derives the folder totals."""


def create_files_table(client: Any, table_name: str) -> None:
    """Create the table (partition key `pk`, on-demand, the listing and change feed indexes,
    its stream of row changes, TTL) and wait."""
    client.create_table(
        TableName=table_name,
        AttributeDefinitions=[
            {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": FILENAME, "AttributeType": "S"},
            {"AttributeName": SHARD_ATTRIBUTE, "AttributeType": "S"},
            {"AttributeName": FEED_SHARD, "AttributeType": "S"},
            {"AttributeName": CHANGED, "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[index_definition(), feed_index_definition()],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification=STREAM_SPECIFICATION,
    )
    client.get_waiter("table_exists").wait(TableName=table_name)
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )


def stream_arn(client: Any, table_name: str) -> str | None:
    """The table's stream ARN (None when it has no stream)."""
    table = client.describe_table(TableName=table_name)["Table"]
    arn = table.get("LatestStreamArn")
    return (
        str(arn) if arn and (table.get("StreamSpecification") or {}).get("StreamEnabled") else None
    )
