"""Awkward S3 keys and S3's own ListObjectsV2 as the reference for listing walks."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

PREFIXES = ["", "a", "a/", "dir 1/", "x+y%/", "é/", "🙂", "\x01", "deep/er/"]
DELIMITERS = [None, "/", "%", "🙂"]
START_AFTERS = [None, "a/", "dir 1/m", "é/\U0010ffff"]
_ALPHABET = ["a", "b", "z", "/", "-", ".", " ", "+", "%", "%2F", "é", "字", "🙂", "\x01", "\x7f"]
_ROOTS = ["a", "a/", "b/", "dir 1/", "dir 1/sub/", "x+y%/", "é/", "🙂/", "\x01", "deep/er/"]


def awkward_keys(count: int, seed: int = 12) -> list[str]:
    """`count` distinct keys of S3-legal, awkward names (sorted).

    Unicode (2, 3 and 4-byte UTF-8), control characters, `+`, `%`, spaces, keys that end with
    the delimiter, keys equal to a prefix, and keys of exactly 1,024 bytes.
    """
    rnd = random.Random(seed)
    keys = {"a", "a/", "dir 1/", "🙂", "\x01", "a//", "a/b/", "deep/er/"}
    for char in ("a", "\x01", "é", "字", "🙂", "\U0010ffff"):  # 1,024 bytes of one character
        width = len(char.encode())
        keys.add(("a/" + char * ((1_024 - 2) // width)).encode()[:1_024].decode("utf-8", "ignore"))
    keys.add("a/" + "\U0010ffff" * 255 + "ab")  # 1,024 bytes, mixed widths
    while len(keys) < count:
        tail = "".join(rnd.choice(_ALPHABET) for _ in range(rnd.randint(0, 6)))
        key = rnd.choice(_ROOTS) + tail
        if rnd.random() < 0.1:
            key += "/"
        if key and len(key.encode()) <= 1_024:
            keys.add(key)
    return sorted(keys)


def s3_walk(
    s3: Any,
    bucket: str,
    *,
    prefix: str = "",
    delimiter: str | None = None,
    start_after: str | None = None,
    max_keys: int = 1_000,
) -> list[tuple[str, str]]:
    """S3 ListObjectsV2 followed to the end: ('key' | 'prefix', name) in the order S3 sent them.

    Within a page keys and common prefixes are merged by name (they are one sorted sequence
    in S3's model; the response lists them in two elements).
    """
    entries: list[tuple[str, str]] = []
    params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": max_keys}
    if delimiter:
        params["Delimiter"] = delimiter
    if start_after:
        params["StartAfter"] = start_after
    while True:
        page = s3.list_objects_v2(**params)
        batch = [("key", o["Key"]) for o in page.get("Contents", [])]
        batch += [("prefix", p["Prefix"]) for p in page.get("CommonPrefixes", [])]
        entries += sorted(batch, key=lambda entry: entry[1])
        if not page.get("IsTruncated"):
            return entries
        params["ContinuationToken"] = page["NextContinuationToken"]


def api_entries(page: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """A `GET /files` page as ('key' | 'prefix', name) in name order."""
    batch = [("key", item["filename"]) for item in page["items"]]
    batch += [("prefix", entry["prefix"]) for entry in page.get("common_prefixes", [])]
    yield from sorted(batch, key=lambda entry: entry[1])
