"""Reconcile's S3 adapter: ListObjectsV2 (paginated, prefetched) and concurrent HeadObject.

Synchronous boto3: reconcile runs as a CLI and as a scheduled Lambda, one pass at a time. The
listing reads the next page on a background thread while the join works on the current one,
so S3's round trips overlap the table's; HeadObject calls run on a small thread pool (boto3
clients are thread-safe). Botocore's standard retry mode retries throttling and 5xx.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pipeline.reconcile.ports import S3Object, normalize_etag

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

T = TypeVar("T")
PAGE_SIZE = 1_000
"""ListObjectsV2's MaxKeys limit."""
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def client_config(max_pool_connections: int = 20) -> Config:
    """Botocore config for reconcile's S3 client."""
    return Config(
        max_pool_connections=max_pool_connections,
        retries={"max_attempts": 6, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        tcp_keepalive=True,
    )


def iso(value: datetime | str | None) -> str | None:
    """An S3 timestamp as ISO 8601 UTC with milliseconds (the shape of `eventTime`)."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def prefetched(pages: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate `pages` on a background thread, at most `depth` pages ahead of the consumer.

    Errors are re-raised in the consumer; closing the generator stops the producer.
    """
    buffer: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        buffer.put(("page", page), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(("end", None))
        except BaseException as error:  # handed to the consumer
            buffer.put(("error", error))

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = buffer.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


class BucketObjects:
    """`ObjectSource` and `ObjectHeads` over one bucket, with an injected boto3 S3 client."""

    def __init__(self, client: S3Client, bucket: str, *, concurrency: int = 16) -> None:
        self._client = client
        self.bucket = bucket
        self._concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None
        self.list_calls = 0
        self.head_calls = 0

    def _pages(self, prefix: str, start_after: str | None) -> Iterator[list[S3Object]]:
        params: dict[str, Any] = {"Bucket": self.bucket, "MaxKeys": PAGE_SIZE}
        if prefix:
            params["Prefix"] = prefix
        if start_after:
            params["StartAfter"] = start_after
        while True:
            self.list_calls += 1
            listed_at = time.time()
            response = self._client.list_objects_v2(**params)
            yield [
                S3Object(
                    key=item["Key"],
                    size=int(item.get("Size", 0)),
                    etag=normalize_etag(item.get("ETag")),
                    last_modified=iso(item.get("LastModified")),
                    listed_at=listed_at,
                )
                for item in response.get("Contents", [])
            ]
            token = response.get("NextContinuationToken")
            if not response.get("IsTruncated") or not token:
                return
            params.pop("StartAfter", None)
            params["ContinuationToken"] = token

    def iter_objects(self, prefix: str, start_after: str | None) -> Iterator[S3Object]:
        """Current objects under `prefix` after `start_after`, in UTF-8 binary key order."""
        for page in prefetched(self._pages(prefix, start_after)):
            yield from page

    def head(self, key: str) -> S3Object | None:
        """HeadObject of the current version: the object, or None on 404 (also a delete marker).

        Raises `ClientError`/`BotoCoreError` on anything else.
        """
        self.head_calls += 1
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in NOT_FOUND_CODES:
                return None
            raise
        return S3Object(
            key=key,
            size=int(response.get("ContentLength", 0)),
            etag=normalize_etag(response.get("ETag")),
            last_modified=iso(response.get("LastModified")),
            version_id=_version(response.get("VersionId")),
        )

    def head_many(self, keys: Sequence[str]) -> dict[str, S3Object | None]:
        """HeadObject of `keys`, concurrently; keys S3 could not answer are left out."""
        found: dict[str, S3Object | None] = {}
        if not keys:
            return found

        def one(key: str) -> None:
            try:
                found[key] = self.head(key)
            except (ClientError, BotoCoreError) as error:
                logger.warning("HeadObject failed for %r: %s", key[:200], error)

        if len(keys) == 1 or self._concurrency <= 1:
            for key in keys:
                one(key)
            return found
        if self._pool is None:  # kept for the run: starting threads per batch costs CPU
            self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="head")
        list(self._pool.map(one, keys))
        return found


def _version(value: str | None) -> str | None:
    """S3's version id; "null" is the null version of an unversioned or suspended bucket."""
    return None if value in (None, "", "null") else value
