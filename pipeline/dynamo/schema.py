"""The `files` table for the local stack and tests (template.yaml defines it on AWS)."""

from __future__ import annotations

from typing import Any

from pipeline.model import FILENAME, INDEX_NAME, PARTITION_KEY, SHARD_ATTRIBUTE, TTL_ATTRIBUTE

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


def create_files_table(client: Any, table_name: str) -> None:
    """Create the table (partition key `pk`, on-demand, the listing index, TTL) and wait."""
    client.create_table(
        TableName=table_name,
        AttributeDefinitions=[
            {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": FILENAME, "AttributeType": "S"},
            {"AttributeName": SHARD_ATTRIBUTE, "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[index_definition()],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=table_name)
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
