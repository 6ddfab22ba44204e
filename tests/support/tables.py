"""A table keyed by `filename` alone, with an integer-sharded `by_name` index: the schema
before (bucket, key) rows. The emulator tests (moto's PartiQL engine and fast index Query)
check DynamoDB semantics that do not depend on the key's name, on this simpler shape."""

from __future__ import annotations

from typing import Any


def create_filename_table(client: Any, name: str) -> None:
    """Create the `filename`-keyed table with its sparse `by_name` (`shard` N) index; wait."""
    client.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "filename", "AttributeType": "S"},
            {"AttributeName": "shard", "AttributeType": "N"},
        ],
        KeySchema=[{"AttributeName": "filename", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_name",
                "KeySchema": [
                    {"AttributeName": "shard", "KeyType": "HASH"},
                    {"AttributeName": "filename", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=name)
