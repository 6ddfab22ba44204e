"""Migrating rows written before the listing index: resumable, idempotent, race-free."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.dynamo.migrate import add_shard, migrate_index
from pipeline.dynamo.reader import DynamoFileReader
from pipeline.listing import read_page
from pipeline.local.cli import main
from pipeline.model import shard_of


def old_row(name: str, *, deleted: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {"filename": {"S": name}, "size": {"N": "1"}}
    if deleted:
        item["deleted"] = {"BOOL": True}
    return item


def put(dynamodb: Any, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]
        dynamodb.batch_write_item(RequestItems={table: requests})


def listed(dynamodb: Any, table: str) -> list[str]:
    reader = DynamoFileReader(dynamodb, table)
    names: list[str] = []
    cursor = None
    while True:
        page = read_page(reader, 1_000, cursor=cursor)
        names += [i["filename"] for i in page.items]
        if page.cursor is None:
            return names
        cursor = page.cursor


def test_a_migration_in_two_runs_lists_every_old_live_row(dynamodb: Any, table_name: str) -> None:
    # Given 120 rows written before the index (no shard), 30 old tombstones
    live = [f"old/{i:03d}" for i in range(120)]
    put(dynamodb, table_name, [old_row(n) for n in live])
    put(dynamodb, table_name, [old_row(f"gone/{i:02d}", deleted=True) for i in range(30)])
    assert listed(dynamodb, table_name) == []
    # When a run is interrupted after one page, then resumed from where it stopped
    first = migrate_index(dynamodb, table_name, page_size=40, max_pages=1)
    assert not first.complete and first.migrated > 0
    second = migrate_index(dynamodb, table_name, page_size=40, start_after=first.resume_after)
    # Then every live row is listed with its shard, tombstones stay out of the index
    assert second.complete
    assert first.migrated + second.migrated == 120
    assert listed(dynamodb, table_name) == live
    item = dynamodb.get_item(TableName=table_name, Key={"filename": {"S": "old/007"}})["Item"]
    assert item["shard"] == {"N": str(shard_of("old/007"))}
    gone = dynamodb.get_item(TableName=table_name, Key={"filename": {"S": "gone/03"}})["Item"]
    assert "shard" not in gone
    # And running it again changes nothing
    again = migrate_index(dynamodb, table_name)
    assert (again.migrated, again.skipped, again.complete) == (0, 0, True)


def test_a_row_deleted_or_rewritten_since_the_scan_is_left_alone(
    dynamodb: Any, table_name: str
) -> None:
    put(dynamodb, table_name, [old_row("deleted-since", deleted=True), old_row("plain")])
    dynamodb.put_item(
        TableName=table_name,
        Item={"filename": {"S": "new"}, "shard": {"N": "3"}, "size": {"N": "2"}},
    )
    assert add_shard(dynamodb, table_name, "deleted-since") is False
    assert add_shard(dynamodb, table_name, "new") is False  # keeps what current code wrote
    assert add_shard(dynamodb, table_name, "missing") is False  # never creates a row
    assert add_shard(dynamodb, table_name, "plain") is True
    assert add_shard(dynamodb, table_name, "plain", "5") is False  # it is no longer "5"
    keys = [{"filename": {"S": n}} for n in ("deleted-since", "new", "missing")]
    got = dynamodb.batch_get_item(RequestItems={table_name: {"Keys": keys}})["Responses"]
    rows = {i["filename"]["S"]: i for i in got[table_name]}
    assert "shard" not in rows["deleted-since"] and rows["new"]["shard"] == {"N": "3"}
    assert "missing" not in rows


def test_the_command_line_migrates_and_prints_where_to_resume(
    dynamodb: Any, table_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    put(dynamodb, table_name, [old_row(f"f{i}") for i in range(5)])
    assert main(["migrate-index", "--table", table_name, "--page-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "--start-after" in out and "done: 5 rows scanned, 5 migrated, 0 skipped" in out
    assert len(listed(dynamodb, table_name)) == 5


def test_rows_of_another_shard_count_are_resharded(dynamodb: Any, table_name: str) -> None:
    # Given rows written when INDEX_SHARDS was larger (shard numbers the reader never queries)
    names = [f"r{i:02d}" for i in range(20)]
    put(
        dynamodb,
        table_name,
        [{**old_row(n), "shard": {"N": str(40 + i)}} for i, n in enumerate(names)],
    )
    assert listed(dynamodb, table_name) == []
    # When the migration runs
    report = migrate_index(dynamodb, table_name)
    # Then every row is in its current shard and listed
    assert report.migrated == 20
    assert listed(dynamodb, table_name) == names
    assert migrate_index(dynamodb, table_name).migrated == 0
