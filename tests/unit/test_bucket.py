"""The S3 adapter's paging and error handling, against a scripted client (no network)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipeline.adapters.s3_bucket import BucketObjects, prefetched


class ScriptedS3:
    """ListObjectsV2 pages of two keys; HeadObject answers from a table of results."""

    def __init__(self, keys: list[str], heads: dict[str, Any]) -> None:
        self.keys = keys
        self.heads = heads
        self.calls: list[dict[str, Any]] = []

    def list_objects_v2(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        start = int(params.get("ContinuationToken", "0"))
        if "StartAfter" in params:
            start = sum(1 for k in self.keys if k <= params["StartAfter"])
        page = self.keys[start : start + 2]
        more = start + 2 < len(self.keys)
        response: dict[str, Any] = {
            "IsTruncated": more,
            "Contents": [
                {
                    "Key": k,
                    "Size": 1,
                    "ETag": '"e"',
                    "LastModified": datetime(2026, 1, 1, tzinfo=UTC),
                }
                for k in page
            ],
        }
        if more:
            response["NextContinuationToken"] = str(start + 2)
        return response

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        result = self.heads[Key]
        if isinstance(result, Exception):
            raise result
        return result


def error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "HeadObject")


def test_pages_follow_continuation_tokens_and_start_after_only_once() -> None:
    client = ScriptedS3(["a", "b", "c", "d", "e"], {})
    source = BucketObjects(client, "bkt")  # type: ignore[arg-type]
    objects = list(source.iter_objects("", "a"))
    assert [o.key for o in objects] == ["b", "c", "d", "e"]
    assert objects[0].etag == "e" and objects[0].last_modified == "2026-01-01T00:00:00.000Z"
    assert client.calls[0]["StartAfter"] == "a" and "ContinuationToken" not in client.calls[0]
    assert all("StartAfter" not in call for call in client.calls[1:])
    assert all(call["MaxKeys"] == 1_000 for call in client.calls)


def test_head_many_tells_404_from_errors() -> None:
    client = ScriptedS3(
        [],
        {
            "gone": error("404"),
            "nosuchkey": error("NoSuchKey"),
            "broken": error("InternalError"),
            "denied": error("403"),
            "here": {"ContentLength": 4, "ETag": '"abc"', "VersionId": "null"},
            "versioned": {"ContentLength": 4, "ETag": '"abc"', "VersionId": "v1"},
        },
    )
    heads = BucketObjects(client, "bkt").head_many(list(client.heads))  # type: ignore[arg-type]
    assert heads["gone"] is None and heads["nosuchkey"] is None
    assert "broken" not in heads and "denied" not in heads  # never taken for "deleted"
    here = heads["here"]
    assert here is not None and (here.size, here.etag, here.version_id) == (4, "abc", None)
    assert heads["versioned"] is not None and heads["versioned"].version_id == "v1"


def test_prefetch_reraises_the_producers_error_in_the_consumer() -> None:
    def pages() -> Any:
        yield 1
        raise RuntimeError("S3 went away")

    consumer = prefetched(pages())
    assert next(consumer) == 1
    with pytest.raises(RuntimeError, match="S3 went away"):
        next(consumer)
