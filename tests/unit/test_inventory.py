"""S3 Inventory reports (manifest.json + gzip CSV) as an object source, from scripted files."""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import pytest

from pipeline.adapters.s3_inventory import InventoryError, InventoryObjects

SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag"


class FilesS3:
    """get_object over an in-memory dict of (bucket, key) -> bytes."""

    def __init__(self, files: dict[tuple[str, str], bytes]) -> None:
        self.files = files

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": io.BytesIO(self.files[(Bucket, Key)])}


def csv_gz(rows: list[list[str]]) -> bytes:
    text = "".join(",".join(f'"{c}"' for c in row) + "\n" for row in rows)
    return gzip.compress(text.encode())


def report(schema: str = SCHEMA, fmt: str = "CSV", **extra: Any) -> FilesS3:
    manifest = {
        "sourceBucket": "src",
        "destinationBucket": "arn:aws:s3:::inv",
        "version": "2016-11-30",
        "fileFormat": fmt,
        "fileSchema": schema,
        "files": [{"key": "data/a.csv.gz"}, {"key": "data/b.csv.gz"}],
        **extra,
    }
    row = lambda key, latest="true", marker="false", v="v1": [  # noqa: E731
        "src",
        key,
        v,
        latest,
        marker,
        "3",
        "2026-11-01T00:00:00.000Z",
        "abc",
    ]
    return FilesS3(
        {
            ("inv", "m/manifest.json"): json.dumps(manifest).encode(),
            ("inv", "data/a.csv.gz"): csv_gz(
                [row("a+b"), row("c%2Bd"), row("old", latest="false"), row("x")]
            ),
            ("inv", "data/b.csv.gz"): csv_gz(
                [row("b"), row("gone", marker="true"), row("y%C3%A9")]
            ),
        }
    )


def test_files_are_merged_in_key_order_decoded_and_current_only() -> None:
    source = InventoryObjects(report(), "s3://inv/m/manifest.json", bucket="src")  # type: ignore[arg-type]
    objects = list(source.iter_objects("", None))
    assert [o.key for o in objects] == ["a b", "b", "c+d", "x", "yé"]
    assert (objects[0].size, objects[0].etag, objects[0].version_id) == (3, "abc", "v1")
    assert [o.key for o in source.iter_objects("", "b")] == ["c+d", "x", "yé"]
    assert [o.key for o in source.iter_objects("y", None)] == ["yé"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmt": "ORC"}, "configure the inventory with CSV"),
        ({"schema": "Bucket, Size"}, "lacks \\['Key'\\]"),
    ],
)
def test_unsupported_reports_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        InventoryObjects(report(**kwargs), "s3://inv/m/manifest.json")  # type: ignore[arg-type]


def test_a_report_of_another_bucket_is_refused() -> None:
    with pytest.raises(InventoryError, match="not 'mine'"):
        InventoryObjects(report(), "s3://inv/m/manifest.json", bucket="mine")  # type: ignore[arg-type]


def test_bad_uri() -> None:
    with pytest.raises(InventoryError, match="s3://bucket"):
        InventoryObjects(report(), "https://inv/m/manifest.json")  # type: ignore[arg-type]
