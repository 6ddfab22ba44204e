"""An S3 Inventory report as reconcile's object source, for buckets too big to LIST often.

`s3://dest-bucket/prefix/source-bucket/config-id/YYYY-MM-DDTHH-MMZ/manifest.json` names the
report's data files and their column schema (S3 user guide, "Amazon S3 Inventory"):

    {"sourceBucket": "...", "fileFormat": "CSV",
     "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag, ...",
     "files": [{"key": ".../data/<uuid>.csv.gz", "size": 2147, "MD5checksum": "..."}]}

CSV keys are URL-encoded with a space as `+` (decoded with `unquote_plus`). Each data file is
read as a stream (gzip, csv) and the files are merged by key (a k-way merge: one row of each
file in memory), so memory stays flat whatever the bucket's size; reconcile's join refuses any
row out of order. Versioned reports (IsLatest, IsDeleteMarker columns) yield only current
versions that are not delete markers. ORC and Parquet reports are refused with a clear error.

An inventory is a snapshot, up to a day or a week old and "eventually consistent": reconcile
confirms every drifted key with HeadObject before writing (`confirm_missing`), as S3 advises.
"""

from __future__ import annotations

import csv
import gzip
import heapq
import io
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus, urlparse

from pipeline.reconcile.ports import S3Object, normalize_etag

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REQUIRED_COLUMNS = ("Key", "Size")


class InventoryError(ValueError):
    """The manifest or a data file is not a CSV inventory report this tool can read."""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of `s3://bucket/key`."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise InventoryError(f"expected s3://bucket/path/manifest.json, got {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def _destination_bucket(manifest: dict[str, Any], default: str) -> str:
    arn = str(manifest.get("destinationBucket") or "")
    return arn.rsplit(":", 1)[-1] if arn else default


class InventoryObjects:
    """`ObjectSource` reading a CSV S3 Inventory report through an injected boto3 S3 client."""

    def __init__(self, client: S3Client, manifest_uri: str, *, bucket: str | None = None) -> None:
        self._client = client
        manifest_bucket, manifest_key = parse_s3_uri(manifest_uri)
        body = client.get_object(Bucket=manifest_bucket, Key=manifest_key)["Body"].read()
        try:
            manifest = json.loads(body)
        except ValueError:
            raise InventoryError(f"{manifest_uri} is not JSON") from None
        if not isinstance(manifest, dict):
            raise InventoryError(f"{manifest_uri} is not an inventory manifest")
        if str(manifest.get("fileFormat", "")).upper() != "CSV":
            raise InventoryError(
                f"inventory format {manifest.get('fileFormat')!r} is not supported: "
                "configure the inventory with CSV output"
            )
        source = manifest.get("sourceBucket")
        if bucket is not None and source != bucket:
            raise InventoryError(f"the inventory is of bucket {source!r}, not {bucket!r}")
        columns = [c.strip() for c in str(manifest.get("fileSchema", "")).split(",")]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise InventoryError(f"the inventory's fileSchema lacks {missing}")
        self.columns = {name: index for index, name in enumerate(columns)}
        self.data_bucket = _destination_bucket(manifest, manifest_bucket)
        files = manifest.get("files")
        if not isinstance(files, list):
            raise InventoryError("the manifest lists no files")
        self.files = [str(entry["key"]) for entry in files]
        self.source_bucket = str(source or "")
        self.created = str(manifest.get("creationTimestamp", ""))

    def _rows(self, key: str) -> Iterator[S3Object]:
        body = self._client.get_object(Bucket=self.data_bucket, Key=key)["Body"]
        raw: Any = gzip.GzipFile(fileobj=body) if key.endswith(".gz") else body
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        col = self.columns
        for line, record in enumerate(csv.reader(text), start=1):
            if len(record) < len(col):
                raise InventoryError(f"{key}: line {line} has {len(record)} of {len(col)} columns")
            if "IsLatest" in col and record[col["IsLatest"]].lower() != "true":
                continue
            if "IsDeleteMarker" in col and record[col["IsDeleteMarker"]].lower() == "true":
                continue
            try:
                size = int(record[col["Size"]] or 0)
            except ValueError:
                raise InventoryError(f"{key}: line {line} has a bad Size") from None
            yield S3Object(
                key=unquote_plus(record[col["Key"]], encoding="utf-8", errors="strict"),
                size=size,
                etag=normalize_etag(record[col["ETag"]]) if "ETag" in col else None,
                last_modified=record[col["LastModifiedDate"]] or None
                if "LastModifiedDate" in col
                else None,
                version_id=(record[col["VersionId"]] or None) if "VersionId" in col else None,
            )

    def iter_objects(self, prefix: str, start_after: str | None) -> Iterator[S3Object]:
        """Current objects of the report under `prefix` after `start_after`, in key order."""
        merged = heapq.merge(*(self._rows(key) for key in self.files), key=lambda o: o.key)
        for obj in merged:
            if start_after is not None and obj.key <= start_after:
                continue
            if obj.key.startswith(prefix):
                yield obj
