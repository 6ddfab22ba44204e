"""Paging over a Scan-like store: full pages, every file once, bounded work per page."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.listing import Page, public_view, read_page
from tests.support.api import FakeFileReader


def rows(count: int, *, tombstone_every: int = 0, prefix: str = "f") -> list[dict[str, Any]]:
    result = []
    for i in range(count):
        row: dict[str, Any] = {"filename": f"{prefix}{i:05d}", "size": i, "etag": f"e{i}"}
        if tombstone_every and i % tombstone_every == 0:
            row.update(deleted=True, expires_at=1_900_000_000)
        result.append(row)
    return result


def walk(
    reader: FakeFileReader, limit: int, prefix: str | None = None, max_calls: int = 10
) -> list[Page]:
    pages: list[Page] = []
    key: str | None = None
    while True:
        page = read_page(reader, limit, key, prefix, max_calls=max_calls)
        pages.append(page)
        key = page.last_key
        if key is None:
            return pages
        assert len(pages) < 100_000, "the walk does not end"


@pytest.mark.parametrize("limit", [1, 7, 100, 1000])
@pytest.mark.parametrize("max_evaluated", [None, 3])
def test_a_walk_returns_every_live_file_once_in_full_pages(
    limit: int, max_evaluated: int | None
) -> None:
    # Given 1,000 rows, every 4th a tombstone, and (optionally) 1 MB-like short pages
    reader = FakeFileReader(rows(1_000, tombstone_every=4), max_evaluated=max_evaluated)
    live = {r["filename"] for r in reader.rows.values() if not r.get("deleted")}
    # When all pages are walked
    pages = walk(reader, limit, max_calls=1_000)
    # Then each live file comes exactly once, every page but the last is full,
    # and only the last page has no continuation
    names = [item["filename"] for page in pages for item in page.items]
    assert sorted(names) == sorted(live)
    assert all(len(page.items) == limit for page in pages[:-1])
    assert 0 < len(pages[-1].items) <= limit
    assert [page.last_key is None for page in pages] == [False] * (len(pages) - 1) + [True]


def test_a_last_page_that_is_exactly_full_says_it_is_the_last() -> None:
    # Given 10 files and DynamoDB's habit of returning a key when a page stops at Limit
    reader = FakeFileReader(rows(10))
    # When pages of 5 are read
    pages = walk(reader, 5)
    # Then there are exactly two pages, the second one final (no empty third page)
    assert [len(p.items) for p in pages] == [5, 5]
    assert pages[1].last_key is None


def test_the_first_call_asks_for_one_more_and_later_calls_grow() -> None:
    # Given a table where half the rows are tombstones
    reader = FakeFileReader(rows(400, tombstone_every=2))
    # When a page of 10 is read
    page = read_page(reader, 10)
    # Then the first Scan asks for 11 rows, each later one at most twice what it still needs
    asked = [limit for limit, _, _ in reader.scan_calls]
    assert asked[0] == 11
    assert len(asked) > 1
    assert all(a <= 11 * 2**i for i, a in enumerate(asked))
    assert len(page.items) == 10


def test_a_long_run_of_tombstones_is_crossed_within_the_budget() -> None:
    # Given 1,500 tombstones in a row before the only file (scan order = name order here)
    class Sorted(FakeFileReader):
        def order(self, filename: str) -> str:
            return filename

    reader = Sorted(rows(1_500, tombstone_every=1, prefix="t") + rows(1, prefix="z"))
    # When a page of 1 is asked for with the default budget
    page = read_page(reader, 1)
    # Then the file is found (2 + 4 + ... Scan sizes) in at most 10 calls, and nothing follows
    assert [i["filename"] for i in page.items] == ["z00000"]
    assert page.last_key is None
    assert len(reader.scan_calls) <= 10
    assert max(limit for limit, _, _ in reader.scan_calls) <= 1_000


def test_a_page_stops_at_the_call_budget_and_the_walk_still_ends() -> None:
    # Given 200 tombstones in a row before one live file, and a budget of 3 calls per page
    reader = FakeFileReader(rows(200, tombstone_every=1, prefix="t") + rows(1, prefix="z"))
    # When a page of 1 is asked for
    first = read_page(reader, 1, max_calls=3)
    # Then at most 3 calls were made, and the short (here empty) page carries a continuation
    assert len(reader.scan_calls) == 3
    assert first.items == [] and first.last_key is not None
    # And following the continuation reaches the file and the end
    names = [i["filename"] for p in walk(reader, 1, max_calls=3) for i in p.items]
    assert names == ["z00000"]


def test_an_overfull_store_page_is_trimmed_without_losing_files() -> None:
    # Given a store that returns more rows than asked for
    class Generous(FakeFileReader):
        def scan(
            self, limit: int, start_after: str | None, prefix: str | None
        ) -> tuple[list[dict[str, Any]], str | None]:
            return super().scan(limit + 5, start_after, prefix)

    reader = Generous(rows(23))
    # When walked in pages of 4
    pages = walk(reader, 4)
    # Then pages hold 4 and every file comes once
    names = [i["filename"] for p in pages for i in p.items]
    assert sorted(names) == sorted(reader.rows)
    assert all(len(p.items) <= 4 for p in pages)


def test_tombstones_and_other_prefixes_are_dropped_even_if_the_store_returns_them() -> None:
    class Leaky(FakeFileReader):
        def scan(
            self, limit: int, start_after: str | None, prefix: str | None
        ) -> tuple[list[dict[str, Any]], str | None]:
            return super().scan(limit, start_after, None)  # ignores the filter

    reader = Leaky(rows(6, tombstone_every=3, prefix="a/") + rows(6, prefix="b/"))
    reader.rows["a/00000"]["deleted"] = True
    page = read_page(reader, 100, prefix="a/")
    assert sorted(i["filename"] for i in page.items) == ["a/00001", "a/00002", "a/00004", "a/00005"]


def test_public_view_leaves_out_internal_attributes() -> None:
    row = {"filename": "a", "size": 1, "deleted": True, "expires_at": 5, "etag": "x"}
    assert public_view(row) == {"filename": "a", "size": 1, "etag": "x"}


def test_pages_never_show_internal_attributes() -> None:
    reader = FakeFileReader([{"filename": "a", "size": 1, "expires_at": 9}])
    assert read_page(reader, 10).items == [{"filename": "a", "size": 1}]


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_limits_out_of_range_are_a_programming_error(limit: int) -> None:
    with pytest.raises(ValueError):
        read_page(FakeFileReader(), limit)


def test_a_walk_with_concurrent_writes_misses_no_file_that_stayed() -> None:
    # Given 300 files
    reader = FakeFileReader(rows(300))
    stable = set(reader.rows)
    seen: list[str] = []
    key: str | None = None
    step = 0
    # When files are added and others deleted between pages
    while True:
        page = read_page(reader, 13, key)
        seen += [i["filename"] for i in page.items]
        key = page.last_key
        if key is None:
            break
        step += 1
        reader.put({"filename": f"new{step:04d}", "size": 1})
        victim = f"f{(step * 37) % 300:05d}"
        reader.put({"filename": victim, "deleted": True})
        stable.discard(victim)
    # Then every file present throughout was listed exactly once, and nothing twice
    assert stable <= set(seen)
    assert len(seen) == len(set(seen))


@settings(max_examples=150, deadline=None)
@given(
    flags=st.lists(st.booleans(), max_size=120),
    limit=st.integers(1, 30),
    max_evaluated=st.one_of(st.none(), st.integers(1, 10)),
    max_calls=st.integers(1, 5),
    use_prefix=st.booleans(),
)
def test_any_table_is_walked_exactly_once(
    flags: list[bool],
    limit: int,
    max_evaluated: int | None,
    max_calls: int,
    use_prefix: bool,
) -> None:
    table: list[dict[str, Any]] = [
        {"filename": f"{'ab'[i % 2]}{i}", "deleted": True}
        if dead
        else {"filename": f"{'ab'[i % 2]}{i}"}
        for i, dead in enumerate(flags)
    ]
    prefix = "a" if use_prefix else None
    reader = FakeFileReader(table, max_evaluated=max_evaluated)
    expected = {
        r["filename"]
        for r in table
        if not r.get("deleted") and r["filename"].startswith(prefix or "")
    }
    pages = walk(reader, limit, prefix, max_calls=max_calls)
    names = [i["filename"] for p in pages for i in p.items]
    assert sorted(names) == sorted(expected)
    assert all(len(p.items) <= limit for p in pages)
    assert pages[-1].last_key is None
