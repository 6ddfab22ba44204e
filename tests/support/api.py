"""Helpers for the read API's tests: REST (v1) proxy events and an in-memory file reader."""

from __future__ import annotations

import bisect
import copy
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.support.lambda_context import FakeLambdaContext

EVENTS = Path(__file__).resolve().parent.parent / "events"


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


class FakeFileReader:
    """In-memory `FileReader` with DynamoDB Scan semantics.

    Rows come in a fixed pseudo-random order (like a hash order); `Limit` counts rows
    *evaluated*, before the tombstone/prefix filter; `max_evaluated` imitates the 1 MB cap
    (shorter pages); like DynamoDB, a page that stops at `Limit` carries a continuation key
    even when nothing follows. Rows can be changed between calls (concurrent writes).
    """

    def __init__(self, rows: Iterable[dict[str, Any]] = (), *, max_evaluated: int | None = None):
        self.rows: dict[str, dict[str, Any]] = {}
        self._ordered: list[tuple[str, str]] = []
        self.max_evaluated = max_evaluated
        self.scan_calls: list[tuple[int, str | None, str | None]] = []
        self.get_calls: list[str] = []
        for row in rows:
            self.put(row)

    def order(self, filename: str) -> str:
        """The position of a key in scan order (a hash order, like DynamoDB's)."""
        return hashlib.md5(filename.encode("utf-8")).hexdigest() + filename

    def put(self, row: dict[str, Any]) -> None:
        """Insert or replace a row."""
        if row["filename"] not in self.rows:
            bisect.insort(self._ordered, (self.order(row["filename"]), row["filename"]))
        self.rows[row["filename"]] = dict(row)

    def scan(
        self, limit: int, start_after: str | None, prefix: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        self.scan_calls.append((limit, start_after, prefix))
        start = 0
        if start_after is not None:
            position = self.order(start_after)
            start = bisect.bisect_right(self._ordered, position, key=lambda entry: entry[0])
        budget = limit if self.max_evaluated is None else min(limit, self.max_evaluated)
        evaluated = [filename for _, filename in self._ordered[start : start + budget]]
        more = len(evaluated) == limit or start + len(evaluated) < len(self._ordered)
        last = evaluated[-1] if evaluated and more else None
        rows = [
            dict(self.rows[k])
            for k in evaluated
            if not self.rows[k].get("deleted") and k.startswith(prefix or "")
        ]
        return rows, last

    def get(self, filename: str) -> dict[str, Any] | None:
        self.get_calls.append(filename)
        row = self.rows.get(filename)
        return None if row is None or row.get("deleted") else dict(row)


class MetricsRecorder:
    """A `MetricsSink` that sums what it is given."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        self.totals[name] = self.totals.get(name, 0) + value
