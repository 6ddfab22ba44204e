"""The `files` table for the local stack and tests (template.yaml defines it on AWS)."""

from __future__ import annotations

from typing import Any

from pipeline.model import PARTITION_KEY, TTL_ATTRIBUTE


def create_files_table(client: Any, table_name: str) -> None:
    """Create the table (partition key `filename`, on-demand, TTL on `expires_at`) and wait."""
    client.create_table(
        TableName=table_name,
        AttributeDefinitions=[{"AttributeName": PARTITION_KEY, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=table_name)
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
