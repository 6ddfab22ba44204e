"""The change feed's parts: positions, cursors, one page's merge and cursor rule, the service
and `GET /changes` (in-memory index; the interleavings are in test_feed_interleavings.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pipeline.core.model import FEED_SHARDS
from pipeline.core.settings import Settings
from pipeline.core.tokens import InvalidTokenError, TokenCodec, TokenPrefixMismatchError
from pipeline.feed.cursors import CursorCodec
from pipeline.feed.positions import (
    ChangeKind,
    Stamper,
    feed_shard,
    is_position,
    kind_of,
    position,
    position_ms,
    time_position,
)
from pipeline.feed.reader import ShardPage, ShardRange, read_changes
from pipeline.feed.service import ChangeFeed, CursorExpiredError, change_view
from pipeline.read.api import build_app, feed_for, openapi_document
from tests.support.api import FakeFileReader, api_context, body, rest_event

BUCKET = "photos-bucket"
T0 = 1_800_000_000_000  # epoch ms


class MemoryIndex:
    """`ChangeIndex` over a list of rows, with Query's Limit (rows examined before the filter)."""

    def __init__(self, rows: Sequence[dict[str, Any]] = ()) -> None:
        self.rows = list(rows)
        self.ranges: list[ShardRange] = []

    def add(self, key: str, ms: int, *, bucket: str = BUCKET, **extra: Any) -> dict[str, Any]:
        row = {
            "filename": key,
            "bucket": bucket,
            "changed": position(ms, bucket, key),
            "feed_shard": feed_shard(bucket, key),
            "kind": "created",
            **extra,
        }
        self.rows = [r for r in self.rows if (r["bucket"], r["filename"]) != (bucket, key)]
        self.rows.append(row)
        return row

    def query_changes(self, ranges: Sequence[ShardRange]) -> list[ShardPage]:
        self.ranges.extend(ranges)
        pages = []
        for r in ranges:
            hits = sorted(
                (
                    x
                    for x in self.rows
                    if x["feed_shard"] == r.shard and r.after < x["changed"] <= r.upto
                ),
                key=lambda x: x["changed"],
            )
            examined = hits[: r.limit]
            covered = examined[-1]["changed"] if len(hits) > r.limit else None
            kept = [x for x in examined if not r.prefix or x["filename"].startswith(r.prefix)]
            pages.append(ShardPage(kept, covered, len(examined)))
        return pages


# ------------------------------------------------------------------------------- positions


def test_positions_sort_by_time_then_row_and_have_one_width() -> None:
    a, b = position(T0, BUCKET, "a"), position(T0 + 1, BUCKET, "a")
    assert a < b and len(a) == len(b) == 30 and is_position(a)
    assert position(T0, BUCKET, "a") != position(T0, BUCKET, "b")
    assert position(T0, BUCKET, "a") != position(T0, "other-bucket", "a")
    assert position_ms(a) == T0
    assert position(T0, BUCKET, "zzz") <= time_position(T0) < position(T0 + 1, BUCKET, "")


def test_kinds_come_from_the_row_the_writer_read() -> None:
    live = {"filename": "k", "etag": "e"}
    assert kind_of(live, None) is ChangeKind.CREATED
    assert kind_of(live, {"deleted": True}) is ChangeKind.CREATED
    assert kind_of(live, {"seq": "1"}) is ChangeKind.OVERWRITTEN
    assert kind_of({"deleted": True}, {"seq": "1"}) is ChangeKind.DELETED


def test_the_stamper_stamps_position_shard_and_kind_and_knows_late_answers() -> None:
    now = [T0 / 1000]
    stamper = Stamper(5_000, lambda: now[0])
    row = stamper.stamp({"filename": "a/b", "bucket": BUCKET}, None, stamper.now_ms())
    assert row["changed"] == position(T0, BUCKET, "a/b")
    assert row["feed_shard"] == feed_shard(BUCKET, "a/b") and row["kind"] == "created"
    now[0] += 2.5
    assert not stamper.late(T0)
    now[0] += 0.01
    assert stamper.late(T0)


# --------------------------------------------------------------------------------- cursors


def test_cursors_round_trip_and_are_bound_to_bucket_and_prefix() -> None:
    codec = CursorCodec.for_table("files")
    where = position(T0, BUCKET, "k")
    cursor = codec.encode(where, BUCKET, "p/")
    assert codec.decode(cursor, BUCKET, "p/") == where
    with pytest.raises(TokenPrefixMismatchError, match="cursor was issued for a different bucket"):
        codec.decode(cursor, "another-bucket", "p/")
    with pytest.raises(TokenPrefixMismatchError, match="different prefix"):
        codec.decode(cursor, BUCKET, None)


def test_page_tokens_forged_and_foreign_cursors_are_refused() -> None:
    codec = CursorCodec.for_table("files")
    page_token = TokenCodec.for_table("files").encode(
        position(T0, BUCKET, "k"), None, bucket=BUCKET
    )
    with pytest.raises(InvalidTokenError):
        codec.decode(page_token, BUCKET, None)  # signed under another key
    cursor = codec.encode(position(T0, BUCKET, "k"), BUCKET, None)
    with pytest.raises(InvalidTokenError):
        codec.decode(cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1], BUCKET, None)
    with pytest.raises(InvalidTokenError):
        CursorCodec.for_table("other-table").decode(cursor, BUCKET, None)
    not_a_position = codec.tokens.encode("../etc/passwd", None, bucket=BUCKET)
    with pytest.raises(InvalidTokenError, match="not a feed position"):
        codec.decode(not_a_position, BUCKET, None)


# ------------------------------------------------------------------------------ one page


def test_a_page_merges_the_shards_by_position_up_to_the_settle_bound() -> None:
    index = MemoryIndex()
    for n in range(20):
        index.add(f"k{n:02d}", T0 + n * 10)
    index.add("too-new", T0 + 1_000)
    page = read_changes(
        index,
        bucket=BUCKET,
        after=time_position(T0 - 1),
        now_ms=T0 + 5_500,
        settle_ms=5_000,
        limit=100,
    )
    assert [r["filename"] for r in page.rows] == [f"k{n:02d}" for n in range(20)]
    assert page.next_position == time_position(T0 + 500)  # the bound: nothing is lost after it
    assert {r.shard for r in index.ranges} == {f"{BUCKET}/{n}" for n in range(FEED_SHARDS)}


def test_full_pages_resume_after_their_last_position_with_no_repeats() -> None:
    index = MemoryIndex()
    for n in range(50):
        index.add(f"k{n:02d}", T0 + n // 10)  # 10 keys per millisecond, spread over shards
    seen: list[str] = []
    after = time_position(T0 - 1)
    for _ in range(20):
        page = read_changes(
            index, bucket=BUCKET, after=after, now_ms=T0 + 9_000, settle_ms=5_000, limit=7
        )
        seen.extend(r["filename"] for r in page.rows)
        assert page.next_position >= after
        after = page.next_position
        if not page.rows:
            break
    assert sorted(seen) == [f"k{n:02d}" for n in range(50)] and len(seen) == 50


def test_a_shard_that_stopped_early_ends_the_page_where_it_stopped() -> None:
    # Given one shard full of rows outside the prefix, and a later match in another shard
    index = MemoryIndex()
    noise = [k for k in (f"x{n}" for n in range(500)) if feed_shard(BUCKET, k).endswith("/0")][:12]
    for n, key in enumerate(noise):
        index.add(key, T0 + n)
    match = next(
        k for k in (f"p/{n}" for n in range(100)) if not feed_shard(BUCKET, k).endswith("/0")
    )
    index.add(match, T0 + 100)
    # When a page with prefix p/ and limit 5 is read
    page = read_changes(
        index,
        bucket=BUCKET,
        after=time_position(T0 - 1),
        now_ms=T0 + 9_000,
        settle_ms=5_000,
        limit=5,
        prefix="p/",
    )
    # Then it is empty but its cursor moved only to where the noisy shard stopped
    assert page.rows == []
    assert page.next_position == position(T0 + 4, BUCKET, noise[4])
    # And following it finds the match, once
    found = []
    after = page.next_position
    for _ in range(10):
        page = read_changes(
            index,
            bucket=BUCKET,
            after=after,
            now_ms=T0 + 9_000,
            settle_ms=5_000,
            limit=5,
            prefix="p/",
        )
        found.extend(r["filename"] for r in page.rows)
        after = page.next_position
    assert found == [match]


def test_a_reader_clock_behind_the_cursor_returns_an_empty_page_and_the_same_cursor() -> None:
    index = MemoryIndex()
    index.add("k", T0)
    after = time_position(T0 + 60_000)
    page = read_changes(index, bucket=BUCKET, after=after, now_ms=T0, settle_ms=5_000, limit=10)
    assert page.rows == [] and page.next_position == after and index.ranges == []


def test_system_items_and_other_buckets_never_appear() -> None:
    index = MemoryIndex()
    index.add("mine", T0)
    index.add("theirs", T0, bucket="other-bucket")
    index.rows.append({**index.rows[0], "pk": f"#totals/{BUCKET}", "filename": "totals"})
    page = read_changes(
        index,
        bucket=BUCKET,
        after=time_position(T0 - 1),
        now_ms=T0 + 9_000,
        settle_ms=5_000,
        limit=10,
    )
    assert [r["filename"] for r in page.rows] == ["mine"]


# ------------------------------------------------------------------------------- service


def _feed(index: MemoryIndex, now_ms: int, **kwargs: Any) -> ChangeFeed:
    return ChangeFeed(
        index,
        CursorCodec.for_table("files"),
        settle_ms=5_000,
        retention_ms=7 * 86_400_000,
        clock=lambda: now_ms / 1000,
        **kwargs,
    )


def test_since_starts_at_that_time_and_no_cursor_starts_now() -> None:
    # Given changes just before and at T0 (2027-01-15T08:00:00Z)
    index = MemoryIndex()
    index.add("before", T0 - 1)
    index.add("at", T0)
    feed = _feed(index, T0 + 10_000)
    # Then since=T0 starts with the change made at T0, not the one before
    page, _ = feed.page(bucket=BUCKET, limit=10, since="2027-01-15T08:00:00Z")
    assert [i["key"] for i in page["items"]] == ["at"]
    # And without since or cursor the feed starts now: nothing, but a cursor
    fresh, _ = feed.page(bucket=BUCKET, limit=10)
    assert fresh["items"] == [] and fresh["next_cursor"]
    # Which then yields what changes after it
    index.add("later", T0 + 5_001)
    later = _feed(index, T0 + 20_000)
    page, _ = later.page(bucket=BUCKET, limit=10, cursor=fresh["next_cursor"])
    assert [i["key"] for i in page["items"]] == ["later"]


def test_cursors_and_since_older_than_the_retention_are_gone() -> None:
    feed = _feed(MemoryIndex(), T0)
    old = feed.cursors.encode(time_position(T0 - 8 * 86_400_000), BUCKET, None)
    with pytest.raises(CursorExpiredError, match="restart with since="):
        feed.page(bucket=BUCKET, limit=10, cursor=old)
    with pytest.raises(CursorExpiredError):
        feed.page(bucket=BUCKET, limit=10, since="2020-01-01T00:00:00Z")


def test_items_carry_the_documented_fields_only() -> None:
    row = {
        "filename": "a.txt",
        "bucket": BUCKET,
        "changed": position(T0, BUCKET, "a.txt"),
        "kind": "overwritten",
        "size": 5,
        "etag": "e",
        "version_id": "v",
        "event_time": "2026-12-04T10:00:00.000Z",
        "sequencer": "0A",
        "seq": "internal",
        "feed_shard": "internal",
    }
    assert change_view(row) == {
        "key": "a.txt",
        "bucket": BUCKET,
        "kind": "overwritten",
        "position": row["changed"],
        "size": 5,
        "etag": "e",
        "version_id": "v",
        "event_time": "2026-12-04T10:00:00.000Z",
        "sequencer": "0A",
    }


# -------------------------------------------------------------------------- GET /changes


def _app(index: MemoryIndex, now_ms: int) -> Any:
    settings = Settings(table_name="files", tracked_bucket=BUCKET)
    feed = feed_for(index, settings)
    feed.clock = lambda: now_ms / 1000
    files = FakeFileReader(bucket=BUCKET)
    files.add_bucket("another-bucket")
    return build_app(files, settings, feed=feed)


def _get(app: Any, **query: str) -> tuple[int, Any]:
    response = app.resolve(rest_event("/changes", query=query), api_context())
    return response["statusCode"], body(response)


def _check(status: int, payload: Any) -> None:
    document = openapi_document()
    operation = document["paths"]["/changes"]["get"]
    schema = dict(operation["responses"][str(status)]["content"]["application/json"]["schema"])
    schema["components"] = document["components"]
    Draft202012Validator(schema).validate(payload)


def test_get_changes_follows_the_feed_with_its_cursors() -> None:
    index = MemoryIndex()
    for n in range(5):
        index.add(f"k{n}", T0 + n, size=n, etag=f"e{n}")
    app = _app(index, T0 + 9_000)
    status, page = _get(app, since="1970-01-01T00:00:00Z", limit="3")
    assert status == 410  # older than the retention
    status, page = _get(app, limit="3", since="2027-01-15T08:00:01Z")
    _check(status, page)
    assert status == 200 and page["items"] == [] and page["next_cursor"]
    # T0 is 2027-01-15T08:00:00Z
    status, page = _get(app, limit="3", since="2027-01-15T07:59:00Z")
    assert status == 200 and [i["key"] for i in page["items"]] == ["k0", "k1", "k2"]
    _check(status, page)
    status, page = _get(app, limit="3", cursor=page["next_cursor"])
    assert [i["key"] for i in page["items"]] == ["k3", "k4"]
    status, again = _get(app, limit="3", cursor=page["next_cursor"])
    assert again["items"] == [] and again["next_cursor"]


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ({"cursor": "nonsense"}, 400, "cursor is invalid: pass the next_cursor"),
        ({"cursor": "a.b", "since": "2027-01-15T08:00:00Z"}, 400, "either cursor or since"),
        ({"since": "yesterday"}, 400, "since must be an ISO 8601 time"),
        ({"limit": "0"}, 400, "limit must be an integer between 1 and 1000"),
        ({"limit": "1001"}, 400, "limit must be an integer between 1 and 1000"),
        ({"bucket": "Not_A_Bucket"}, 400, "bucket must be an S3 bucket name"),
    ],
)
def test_bad_requests_say_what_is_wrong(query: dict[str, str], status: int, message: str) -> None:
    got, payload = _get(_app(MemoryIndex(), T0), **query)
    assert got == status and message in payload["message"]
    _check(got, payload)


def test_a_cursor_for_another_bucket_or_prefix_is_a_400_that_says_so() -> None:
    app = _app(MemoryIndex(), T0)
    _, page = _get(app, prefix="p/")
    status, payload = _get(app, cursor=page["next_cursor"], prefix="q/")
    assert status == 400 and payload["message"] == "cursor was issued for a different prefix"
    status, payload = _get(app, cursor=page["next_cursor"], prefix="p/", bucket="another-bucket")
    assert status == 400 and payload["message"] == "cursor was issued for a different bucket"
    status, payload = _get(app, bucket="untracked-bucket")
    assert status == 404 and "is not tracked" in payload["message"]
    _check(status, payload)


def test_an_expired_cursor_is_a_410_with_a_message() -> None:
    app = _app(MemoryIndex(), T0)
    codec = CursorCodec.for_table("files")
    old = codec.encode(time_position(T0 - 8 * 86_400_000), BUCKET, None)
    status, payload = _get(app, cursor=old)
    assert status == 410 and "since=" in payload["message"]
    _check(status, payload)
    assert json.dumps(payload).count("message") == 1


@pytest.mark.parametrize(
    ("since", "status"),
    [
        ("9999-12-31T23:59:59Z", 200),  # the future: from now
        ("0001-01-01T00:00:00Z", 410),
        ("2027-01-15T08:00:00+05:30", 200),
        ("2027-01-15", 200),
        ("2027-13-40T00:00:00Z", 400),
        ("", 400),
    ],
)
def test_any_since_is_answered_without_a_500(since: str, status: int) -> None:
    got, payload = _get(_app(MemoryIndex(), T0), since=since)
    assert got == status, payload
    _check(got, payload)


def test_rows_that_are_not_files_are_not_stamped() -> None:
    stamper = Stamper(5_000, lambda: T0 / 1000)
    system = {"pk": "#totals/b", "count": 3}
    assert stamper.stamp(system, None, 1) == system
