"""Helpers for the read API's tests: REST (v1) proxy events and an in-memory file reader."""

from __future__ import annotations

import bisect
import copy
import json
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pipeline.core.model import INDEX_SHARDS, SHARD_ATTRIBUTE, name_shard
from pipeline.read.listing import iter_live
from pipeline.read.ports import ShardQuery, ShardResult
from tests.support.lambda_context import FakeLambdaContext

EVENTS = Path(__file__).resolve().parent.parent / "events"
DEFAULT_BUCKET = "serverless-event4"
"""The bucket a `FakeFileReader` holds unless told otherwise."""


def sample_event(name: str) -> dict[str, Any]:
    """A copy of `tests/events/<name>.json`."""
    loaded: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def rest_event(
    path: str,
    *,
    query: Mapping[str, str | list[str]] | None = None,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    resource: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
    stage: str = "Prod",
) -> dict[str, Any]:
    """An API Gateway REST proxy event; `path` is sent as given (percent-encoded by the caller).

    Query values are given decoded, as API Gateway passes them; a list means a repeated name.
    """
    multi = {k: (list(v) if isinstance(v, list) else [v]) for k, v in (query or {}).items()}
    single = {k: v[-1] for k, v in multi.items()}  # API Gateway keeps the last value
    if resource is None:
        resource = "/files/{filename+}" if path.startswith("/files/") else path
    all_headers = {"Accept": "application/json", **(headers or {})}
    event = copy.deepcopy(sample_event("api_list_files"))
    event.update(
        {
            "resource": resource,
            "path": path,
            "httpMethod": method,
            "headers": all_headers,
            "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
            "queryStringParameters": single or None,
            "multiValueQueryStringParameters": multi or None,
            "pathParameters": dict(path_parameters) if path_parameters else None,
        }
    )
    context = event["requestContext"]
    context.update(
        {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": str(uuid.uuid4()),
        }
    )
    return event


def file_event(filename: str, *, safe: str = "/") -> dict[str, Any]:
    """GET /files/{filename+} for `filename`, percent-encoded like a client would (`safe` kept)."""
    encoded = quote(filename, safe=safe)
    return rest_event(f"/files/{encoded}", path_parameters={"filename": encoded})


def api_context() -> Any:
    """A Lambda context for the read function (typed loosely for `resolve`)."""
    return FakeLambdaContext(function_name="api")


def body(response: Mapping[str, Any]) -> Any:
    """The decoded JSON body of a proxy response."""
    return json.loads(response["body"])


def header(response: Mapping[str, Any], name: str) -> str | None:
    """A response header (single or multi-value form), case-insensitively."""
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return ",".join(values)
    return None


def item_bytes(row: Mapping[str, Any]) -> int:
    """DynamoDB's size of an item (names + values, UTF-8), close enough for the 1 MB rule."""
    return len(json.dumps(row, default=str).encode("utf-8"))


class FakeFileReader:
    """In-memory table + sparse listing index with DynamoDB Query semantics.

    One bucket's rows (`add_bucket` tracks more in the same index). Rows are stored as the
    ingest writes them: a live row without `name_shard` gets `name_shard_of(bucket, filename)`
    (use `put_raw` for a row exactly as given, e.g. one written before the index existed).
    Only rows whose `name_shard` is one of the bucket's shards are in the index, like
    DynamoDB's sparse GSI. A query reads names in `[low, high]` of one shard in ascending
    order, at most `limit` rows and about 1 MB (`max_bytes`); like DynamoDB it reports more
    (`LastEvaluatedKey`) whenever it stopped at `limit`, even when nothing follows.
    """

    def __init__(
        self,
        rows: Iterable[dict[str, Any]] = (),
        *,
        shards: int = INDEX_SHARDS,
        max_bytes: int = 1_048_576,
        bucket: str = DEFAULT_BUCKET,
    ) -> None:
        self.bucket = bucket
        self.buckets: dict[str, FakeFileReader] = {bucket: self}
        """Every tracked bucket's reader (shared by the readers of one index)."""
        self.rows: dict[str, dict[str, Any]] = {}
        self._index: list[list[str]] = [[] for _ in range(shards)]
        self._shard_of: dict[str, int] = {}
        self._shards = shards
        self.max_bytes = max_bytes
        self.queries: list[ShardQuery] = []
        self.rounds = 0
        self.rows_read = 0
        self.get_calls: list[str] = []
        for row in rows:
            self.put(row)

    @property
    def shards(self) -> int:
        return self._shards

    def add_bucket(self, bucket: str, rows: Iterable[dict[str, Any]] = ()) -> FakeFileReader:
        """Track another bucket in the same index, holding `rows`; returns its reader."""
        reader = FakeFileReader(rows, shards=self._shards, max_bytes=self.max_bytes, bucket=bucket)
        reader.buckets = self.buckets
        self.buckets[bucket] = reader
        return reader

    def for_bucket(self, bucket: str) -> FakeFileReader:
        return self.buckets[bucket]

    def tracked_buckets(self) -> list[str]:
        return sorted(self.buckets)

    def is_tracked(self, bucket: str) -> bool:
        return bucket in self.buckets

    def load(self, rows: Iterable[dict[str, Any]]) -> None:
        """Bulk `put` into an empty reader (one sort per shard instead of an insert per row)."""
        assert not self.rows, "load() is for an empty reader"
        for row in rows:
            if row.get("deleted") is True:
                row.pop(SHARD_ATTRIBUTE, None)
            elif SHARD_ATTRIBUTE not in row:
                row[SHARD_ATTRIBUTE] = self._name_shard(row["filename"])
            name = row["filename"]
            self.rows[name] = row
            shard = self._shard_number(row)
            if shard is not None:
                self._index[shard].append(name)
                self._shard_of[name] = shard
        for names in self._index:
            names.sort()

    def put(self, row: dict[str, Any]) -> None:
        """Insert or replace a row as the ingest writes it (`shard` on live rows only)."""
        row = dict(row)
        if row.get("deleted") is True:
            row.pop(SHARD_ATTRIBUTE, None)
        elif SHARD_ATTRIBUTE not in row:
            row[SHARD_ATTRIBUTE] = self._name_shard(row["filename"])
        self.put_raw(row)

    def _name_shard(self, filename: str) -> str:
        return name_shard(self.bucket, zlib.crc32(filename.encode()) % self._shards)

    def _shard_number(self, row: Mapping[str, Any]) -> int | None:
        """The index shard of `row` (None: not in the index, like DynamoDB's sparse GSI)."""
        value = row.get(SHARD_ATTRIBUTE)
        for shard in range(self._shards) if isinstance(value, str) else ():
            if value == name_shard(self.bucket, shard):
                return shard
        return None

    def put_raw(self, row: dict[str, Any]) -> None:
        """Insert or replace a row exactly as given."""
        name = row["filename"]
        old = self._shard_of.pop(name, None)
        if old is not None:
            names = self._index[old]
            del names[bisect.bisect_left(names, name)]
        self.rows[name] = dict(row)
        shard = self._shard_number(row)
        if shard is not None:
            bisect.insort(self._index[shard], name)
            self._shard_of[name] = shard

    def delete(self, filename: str) -> None:
        """Remove a row entirely."""
        self.put_raw({"filename": filename})
        del self.rows[filename]

    def query(self, queries: Sequence[ShardQuery]) -> list[ShardResult]:
        self.rounds += 1
        return [self._query(q) for q in queries]

    def _query(self, query: ShardQuery) -> ShardResult:
        assert 1 <= query.limit <= 1_000, query
        for bound in (query.low, query.high):
            assert bound is None or 0 < len(bound.encode("utf-8")) <= 1_024, bound
        if query.low is not None and query.high is not None:
            assert query.low <= query.high, "BETWEEN needs low <= high (ValidationException)"
        self.queries.append(query)
        names = self._index[query.shard]
        start = 0 if query.low is None else bisect.bisect_left(names, query.low)
        stop = len(names) if query.high is None else bisect.bisect_right(names, query.high)
        rows: list[dict[str, Any]] = []
        size = 0
        for position in range(start, stop):  # not a slice: that would copy the shard
            if len(rows) == query.limit:
                return ShardResult(rows, True)
            row = self.rows[names[position]]
            size += item_bytes(row)
            rows.append(dict(row))
            self.rows_read += 1
            if size >= self.max_bytes:
                return ShardResult(rows, True)
        return ShardResult(rows, len(rows) == query.limit)

    def iter_live(
        self, prefix: str | None = None, start_after: str | None = None
    ) -> Iterator[dict[str, Any]]:
        return iter_live(self, prefix, start_after)

    def get(self, filename: str) -> dict[str, Any] | None:
        self.get_calls.append(filename)
        row = self.rows.get(filename)
        return None if row is None or row.get("deleted") is True else dict(row)


class MetricsRecorder:
    """A `MetricsSink` that sums what it is given."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        self.totals[name] = self.totals.get(name, 0) + value
