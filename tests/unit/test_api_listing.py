"""The listing engine over an in-memory sharded index: order, seeks, bounds, cost."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.settings import Settings
from pipeline.core.tokens import MAX_ISSUED_TOKEN_CHARS
from pipeline.read.api import build_app
from pipeline.read.keys import common_prefix, key_after, max_key_with_prefix
from pipeline.read.listing import MAX_PAGE_BYTES, Page, iter_live, public_view, read_page
from tests.support.api import FakeFileReader, api_context, rest_event

LAMBDA_RESPONSE_LIMIT = 6_291_456
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


def rows(count: int, *, tombstone_every: int = 0, prefix: str = "f") -> list[dict[str, Any]]:
    result = []
    for i in range(count):
        row: dict[str, Any] = {"filename": f"{prefix}{i:05d}", "size": i, "etag": f"e{i}"}
        if tombstone_every and i % tombstone_every == 0:
            row.update(deleted=True, expires_at=1_900_000_000)
        result.append(row)
    return result


def walk(reader: FakeFileReader, limit: int, **kwargs: Any) -> list[Page]:
    pages: list[Page] = []
    cursor: str | None = kwargs.pop("cursor", None)
    while True:
        page = read_page(reader, limit, cursor=cursor, **kwargs)
        pages.append(page)
        cursor = page.cursor
        if cursor is None:
            return pages
        assert page.items or page.common_prefixes, "an empty page with a continuation"
        assert len(pages) < 100_000, "the walk does not end"


@settings(max_examples=300, deadline=None)
@given(a=TEXT, b=TEXT)
def test_python_string_order_is_utf8_byte_order(a: str, b: str) -> None:
    # DynamoDB sorts String keys by UTF-8 bytes, S3 lists by them: Python's order must agree
    assert (a < b) == (a.encode() < b.encode())


@settings(max_examples=300, deadline=None)
@given(prefix=TEXT, other=TEXT)
def test_max_key_with_prefix_bounds_every_key_with_that_prefix(prefix: str, other: str) -> None:
    top = max_key_with_prefix(prefix)
    assert top is not None and top.startswith(prefix) and len(top.encode()) <= 1_024
    key = (prefix + other).encode()[:1_024].decode("utf-8", "ignore")
    if key.startswith(prefix):
        assert key <= top
    else:  # a key not starting with prefix is either below prefix or above top
        assert key < prefix or key > top


@settings(max_examples=300, deadline=None)
@given(cursor=TEXT, other=TEXT, pad=st.integers(0, 1_030))
def test_key_after_is_the_least_listed_key_above_the_cursor(
    cursor: str, other: str, pad: int
) -> None:
    cursor = ("\U0010ffff" * (pad // 4) + cursor).encode()[:1_030].decode("utf-8", "ignore")
    after = key_after(cursor)
    candidate = other.encode()[:1_024].decode("utf-8", "ignore")
    if after is None:
        assert not candidate > cursor
        return
    assert after > cursor and len(after.encode()) <= 1_024
    assert not (cursor < candidate < after)


def test_the_longest_keys_have_successors_within_1024_bytes() -> None:
    assert key_after("a" * 1_024) == "a" * 1_023 + "b"
    assert key_after("a" * 1_023 + "\x7f") == "a" * 1_022 + "b"
    assert key_after("\U0010ffff" * 256) is None
    assert max_key_with_prefix("p" * 1_025) is None


def test_common_prefixes_follow_s3() -> None:
    assert common_prefix("a/b/c", "", "/") == "a/"
    assert common_prefix("a/b/c", "a/", "/") == "a/b/"
    assert common_prefix("a/", "a/", "/") is None  # the key equal to the prefix stays a key
    assert common_prefix("a//", "a/", "/") == "a//"
    assert common_prefix("abc", "", None) is None


@pytest.mark.parametrize("limit", [1, 7, 100, 1000])
# (4,500 bytes: about 45 rows of ~95 bytes with their `name_shard` per query, like 1 MB cut short)
@pytest.mark.parametrize("max_bytes", [1_048_576, 4_500])
def test_a_walk_returns_every_live_file_once_in_order_in_full_pages(
    limit: int, max_bytes: int
) -> None:
    # Given 1,000 rows, every 4th a tombstone, and (optionally) queries cut short like 1 MB
    reader = FakeFileReader(rows(1_000, tombstone_every=4), max_bytes=max_bytes)
    live = sorted(r["filename"] for r in reader.rows.values() if not r.get("deleted"))
    # When all pages are walked
    pages = walk(reader, limit)
    # Then each live file comes exactly once, in order, every page but the last is full
    assert [i["filename"] for p in pages for i in p.items] == live
    assert all(len(p.items) == limit for p in pages[:-1])
    assert 0 < len(pages[-1].items) <= limit


def test_a_last_page_that_is_exactly_full_says_it_is_the_last() -> None:
    pages = walk(FakeFileReader(rows(10)), 5)
    assert [len(p.items) for p in pages] == [5, 5]


@pytest.mark.parametrize("limit", [100, 1000])
def test_a_page_reads_about_what_it_returns_and_never_tombstones(limit: int) -> None:
    # Given 20,000 files and as many tombstones interleaved
    table = rows(40_000, tombstone_every=2)
    reader = FakeFileReader(table)
    # When a page in the middle is read
    cursor = "f20000"
    page = read_page(reader, limit, cursor=cursor)
    # Then it is full, took 1-3 rounds, and read at most ~1.5 rows per row returned
    assert len(page.items) == limit
    assert page.stats.rounds <= 3
    assert page.stats.rows_read <= 1.5 * limit + 2 * reader.shards


def test_a_sparse_prefix_reads_only_its_keys() -> None:
    # Given 20 keys under `needle/` among 50,000 others on both sides
    table = rows(25_000, prefix="a") + rows(20, prefix="needle/") + rows(25_000, prefix="z")
    reader = FakeFileReader(table)
    # When the prefix is listed
    page = read_page(reader, 1_000, prefix="needle/")
    # Then one round of queries read exactly those 20 rows
    assert [i["filename"] for i in page.items] == [f"needle/{i:05d}" for i in range(20)]
    assert page.cursor is None
    assert page.stats.rounds == 1 and page.stats.rows_read == 20


def test_a_delimiter_seeks_past_each_common_prefix_without_reading_its_keys() -> None:
    # Given 30 folders of 500 files each
    table = [{"filename": f"d{d:02d}/f{i:04d}", "size": 1} for d in range(30) for i in range(500)]
    reader = FakeFileReader(table)
    # When the top level is listed with delimiter "/"
    pages = walk(reader, 1_000, delimiter="/")
    # Then the 30 folders come once each, and far fewer rows than the 15,000 were read
    assert [cp for p in pages for cp in p.common_prefixes] == [f"d{d:02d}/" for d in range(30)]
    assert sum(p.stats.rows_read for p in pages) < 15_000 / 4


def test_a_page_of_many_large_folders_ends_early_but_never_empty() -> None:
    table = [{"filename": f"d{d:03d}/f{i:03d}", "size": 1} for d in range(200) for i in range(80)]
    reader = FakeFileReader(table)
    pages = walk(reader, 1_000, delimiter="/", max_rounds=4)
    assert [cp for p in pages for cp in p.common_prefixes] == [f"d{d:03d}/" for d in range(200)]
    assert all(p.stats.rounds <= 5 for p in pages)
    assert len(pages) > 1


def test_start_after_inside_a_common_prefix_skips_it_like_s3() -> None:
    reader = FakeFileReader([{"filename": n} for n in ("a/1", "a/2", "b", "c/1")])
    page = read_page(reader, 10, delimiter="/", cursor="a/1")
    assert [i["filename"] for i in page.items] == ["b"] and page.common_prefixes == ["c/"]


@pytest.mark.parametrize("char", ["\x01", '"', "\\", "é", "🙂", "\U0010ffff"])
def test_pages_of_the_longest_keys_stay_under_lambdas_response_limit(char: str) -> None:
    # Given 1,500 keys of 1,024 bytes of a character JSON escapes the most
    body = char * ((1_024 - 5) // len(char.encode()))
    table = [{"filename": f"{i:04d}{body}"[:1_024], "size": i} for i in range(1_500)]
    reader = FakeFileReader(table)
    app = build_app(reader, Settings(table_name="files"))
    # When every page is read at the largest limit through the API
    query = {"limit": "1000"}
    seen = 0
    while True:
        response = app.resolve(rest_event("/files", query=query), api_context())
        # Then the Lambda response (JSON of the proxy result) stays under 6 MB
        assert response["statusCode"] == 200
        assert len(json.dumps(response).encode()) < LAMBDA_RESPONSE_LIMIT
        page = json.loads(response["body"])
        seen += len(page["items"])
        if page["next_token"] is None:
            break
        assert len(page["next_token"]) <= MAX_ISSUED_TOKEN_CHARS
        query["next_token"] = page["next_token"]
    assert seen == 1_500


def test_the_byte_budget_cuts_pages_but_loses_nothing() -> None:
    reader = FakeFileReader(rows(50))
    pages = walk(reader, 1_000, max_bytes=1_000)
    assert [i["filename"] for p in pages for i in p.items] == sorted(reader.rows)
    assert len(pages) == 3  # 50 entries of ~50 bytes each
    assert MAX_PAGE_BYTES < LAMBDA_RESPONSE_LIMIT


def test_iter_live_yields_live_rows_in_order_from_a_position() -> None:
    reader = FakeFileReader(rows(3_000, tombstone_every=3))
    live = sorted(r["filename"] for r in reader.rows.values() if not r.get("deleted"))
    assert [r["filename"] for r in iter_live(reader)] == live
    assert [r["filename"] for r in iter_live(reader, "f01", "f01500")] == [
        n for n in live if n.startswith("f01") and n > "f01500"
    ]
    first = next(iter_live(reader))
    assert {"filename", "size", "etag", "name_shard"} <= set(first)
    # and it reads in full queries (1,000 rows each): 12,000 rows in 2 rounds
    big = FakeFileReader(rows(12_000))
    assert sum(1 for _ in iter_live(big)) == 12_000
    assert len(big.queries) <= 2 * big.shards


def test_rows_written_before_the_index_are_not_listed_until_migrated() -> None:
    reader = FakeFileReader(rows(5))
    reader.put_raw({"filename": "f00002x", "size": 1})  # no `shard`: an old row
    assert "f00002x" not in [i["filename"] for i in read_page(reader, 100).items]
    assert reader.get("f00002x") is not None


def test_public_view_leaves_out_internal_and_impossible_values() -> None:
    row = {
        "filename": "a",
        "size": 1,
        "deleted": True,
        "expires_at": 5,
        "name_shard": "b/3",
        "pk": "b/a",
        "etag": "x",
    }
    assert public_view(row) == {"filename": "a", "size": 1, "etag": "x"}
    assert public_view({"filename": "a", "size": -1, "etag": 5}) == {"filename": "a"}
    assert public_view({"filename": 5}) is None


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_limits_out_of_range_are_a_programming_error(limit: int) -> None:
    with pytest.raises(ValueError):
        read_page(FakeFileReader(), limit)


def test_a_walk_with_concurrent_writes_misses_no_file_that_stayed() -> None:
    reader = FakeFileReader(rows(300))
    stable = set(reader.rows)
    seen: list[str] = []
    cursor: str | None = None
    step = 0
    while True:
        page = read_page(reader, 13, cursor=cursor)
        seen += [i["filename"] for i in page.items]
        cursor = page.cursor
        if cursor is None:
            break
        step += 1
        reader.put({"filename": f"new{step:04d}", "size": 1})
        victim = f"f{(step * 37) % 300:05d}"
        reader.put({"filename": victim, "deleted": True})
        stable.discard(victim)
    assert stable <= set(seen)
    assert len(seen) == len(set(seen)) and seen == sorted(seen)


@settings(max_examples=150, deadline=None)
@given(
    names=st.lists(st.text("ab/é🙂", min_size=1, max_size=5), max_size=80, unique=True),
    dead=st.lists(st.booleans(), max_size=80),
    limit=st.integers(1, 12),
    prefix=st.sampled_from(["", "a", "a/", "é"]),
    delimiter=st.sampled_from([None, "/", "b"]),
    start_after=st.one_of(st.none(), st.text("ab/é🙂", max_size=3)),
    max_bytes=st.sampled_from([1_048_576, 400]),
)
def test_any_table_is_walked_like_s3(
    names: list[str],
    dead: list[bool],
    limit: int,
    prefix: str,
    delimiter: str | None,
    start_after: str | None,
    max_bytes: int,
) -> None:
    reader = FakeFileReader(shards=4, max_bytes=max_bytes)
    live = []
    for i, name in enumerate(names):
        deleted = i < len(dead) and dead[i]
        reader.put({"filename": name, "deleted": True} if deleted else {"filename": name})
        if not deleted:
            live.append(name)
    # the S3 model: entries (keys and common prefixes) in name order, each > start_after
    entries: dict[str, str] = {}
    for name in live:
        if name.startswith(prefix):
            rolled = common_prefix(name, prefix, delimiter)
            entries[rolled or name] = "prefix" if rolled else "key"
    expected = [
        (kind, n) for n, kind in sorted(entries.items()) if not start_after or n > start_after
    ]
    got = []
    for page in walk(reader, limit, prefix=prefix, delimiter=delimiter, cursor=start_after):
        batch = [("key", i["filename"]) for i in page.items]
        batch += [("prefix", p) for p in page.common_prefixes]
        got += sorted(batch, key=lambda e: e[1])
        assert len(batch) <= limit
    assert got == expected
