"""`migrate-table`: a table keyed by `filename` copied into a (bucket, key) table on moto:
resumable, idempotent, and never replacing a newer row ingest wrote into the new table."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.adapters.dynamo.migrate import migrate_table
from pipeline.adapters.dynamo.reader import DynamoFileReader
from pipeline.core.model import name_shard_of
from pipeline.local.cli import main
from tests.support.tables import create_filename_table

pytestmark = pytest.mark.integration

BUCKET = "old-bucket"


def old_row(name: str, seq: str = "0A", **extra: Any) -> dict[str, Any]:
    return {
        "filename": {"S": name},
        "bucket": {"S": BUCKET},
        "shard": {"N": "3"},
        "size": {"N": "7"},
        "event_time": {"S": "2026-11-24T10:00:00.000Z"},
        "event_name": {"S": "ObjectCreated:Put"},
        "seq": {"S": seq.ljust(64, "0")},
        **extra,
    }


@pytest.fixture
def source(dynamodb: Any) -> Iterator[str]:
    name = f"files-old-{uuid.uuid4().hex[:10]}"
    create_filename_table(dynamodb, name)
    yield name
    dynamodb.delete_table(TableName=name)


def test_a_resumed_copy_moves_every_row_and_keeps_newer_ones(
    dynamodb: Any, source: str, table_name: str
) -> None:
    # Given 120 old live rows, a tombstone, a row without a bucket, and a system-looking key
    for i in range(120):
        dynamodb.put_item(TableName=source, Item=old_row(f"dir/{i:03d}"))
    tomb = old_row("gone", deleted={"BOOL": True}, expires_at={"N": "1900000000"})
    del tomb["shard"]
    dynamodb.put_item(TableName=source, Item=tomb)
    no_bucket = old_row("orphan")
    del no_bucket["bucket"]
    dynamodb.put_item(TableName=source, Item=no_bucket)
    dynamodb.put_item(TableName=source, Item=old_row("#weird"))
    # And the new table already holds a newer row (ingest since the switch) and an older one
    newer = {"pk": {"S": f"{BUCKET}/dir/005"}, "filename": {"S": "dir/005"}}
    newer.update(bucket={"S": BUCKET}, size={"N": "99"}, seq={"S": "0B".ljust(64, "0")})
    older = {"pk": {"S": f"{BUCKET}/dir/006"}, "filename": {"S": "dir/006"}}
    older.update(bucket={"S": BUCKET}, size={"N": "1"}, seq={"S": "01".ljust(64, "0")})
    for item in (newer, older):
        item["name_shard"] = {"S": name_shard_of(BUCKET, item["filename"]["S"])}
        dynamodb.put_item(TableName=table_name, Item=item)

    # When the copy runs one page, then resumes from the position it reported
    first = migrate_table(dynamodb, source, table_name, page_size=50, max_pages=1)
    assert not first.complete and first.pages == 1 and first.scanned == 50
    second = migrate_table(
        dynamodb, source, table_name, page_size=50, start_after=first.resume_after
    )

    # Then every row of the bucket is in the new table, live ones listed by the bucket's index
    assert second.complete
    total = first.scanned + second.scanned
    assert total == 123
    assert first.kept + second.kept == 1  # only the newer row was kept
    assert first.skipped + second.skipped == 2  # the orphan and the "#" key
    assert first.copied + second.copied == 120
    reader = DynamoFileReader(dynamodb, table_name, BUCKET)
    live = {row["filename"]: row for row in reader.iter_live()}
    assert sorted(live) == [f"dir/{i:03d}" for i in range(120)]
    assert live["dir/005"]["size"] == 99 and live["dir/006"]["size"] == 7
    assert live["dir/010"]["name_shard"] == name_shard_of(BUCKET, "dir/010")
    assert "shard" not in live["dir/010"]
    gone = dynamodb.get_item(TableName=table_name, Key={"pk": {"S": f"{BUCKET}/gone"}})["Item"]
    assert gone["deleted"] == {"BOOL": True} and "name_shard" not in gone
    assert reader.get("gone") is None

    # And a second run changes nothing
    again = migrate_table(dynamodb, source, table_name)
    assert (again.copied, again.kept, again.skipped) == (0, 121, 2)


def test_the_cli_copies_rows_without_a_bucket_into_the_named_one(
    dynamodb: Any, source: str, table_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    row = old_row("a.txt")
    del row["bucket"]
    dynamodb.put_item(TableName=source, Item=row)
    argv = ["migrate-table", "--source", source, "--target", table_name, "--bucket", "given"]
    assert main(argv) == 0
    assert "1 copied" in capsys.readouterr().out
    assert DynamoFileReader(dynamodb, table_name, "given").get("a.txt") is not None


def test_rows_without_a_bucket_and_no_bucket_flag_are_named_and_fail_the_run(
    dynamodb: Any, source: str, table_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an old table whose three rows carry no `bucket` attribute
    for name in ("a.txt", "b.txt", "c.txt"):
        row = old_row(name)
        del row["bucket"]
        dynamodb.put_item(TableName=source, Item=row)
    # When migrate-table runs without --bucket
    status = main(["migrate-table", "--source", source, "--target", table_name])
    out, err = capsys.readouterr()
    # Then it says which target it copies into, why rows were left behind, and fails
    assert status == 1
    assert "3 skipped" in out
    assert err.startswith(f"migrate-table: {source} -> {table_name} at DynamoDB http://")
    assert "3 row(s) left behind: no usable `bucket` attribute (pass --bucket NAME" in err
