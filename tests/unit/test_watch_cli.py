"""`s3-file-tracker watch` without a network: paging, retries, errors, output."""

from __future__ import annotations

import io
import json
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from pipeline.local.api_client import ApiResponse
from pipeline.local.watch_cli import (
    Feed,
    Printer,
    RetryableError,
    Target,
    WatchError,
    pages,
)


class FakeApi:
    """Answers GET /changes from a script of (status, body) and records the queries."""

    def __init__(self, *answers: tuple[int, Any]) -> None:
        self.answers = list(answers)
        self.queries: list[dict[str, list[str]]] = []

    def __call__(self, url: str, signer: Any) -> ApiResponse:
        self.queries.append(parse_qs(urlsplit(url).query))
        status, body = self.answers.pop(0)
        return ApiResponse(status, {}, json.dumps(body).encode())


def _feed(api: FakeApi, **kwargs: Any) -> Feed:
    return Feed(Target("http://127.0.0.1:1", None), "my-bucket", "p/", 2, fetch=api, **kwargs)


def test_the_first_request_uses_since_then_each_next_cursor() -> None:
    api = FakeApi(
        (200, {"items": [{"key": "p/a"}, {"key": "p/b"}], "next_cursor": "c1"}),
        (200, {"items": [], "next_cursor": "c2"}),
    )
    feed = _feed(api, since="2026-12-04T10:00:00Z")
    assert [i["key"] for i in feed.next_page()] == ["p/a", "p/b"]
    assert feed.next_page() == [] and feed.cursor == "c2"
    first, second = api.queries
    assert first["since"] == ["2026-12-04T10:00:00Z"] and "cursor" not in first
    assert second["cursor"] == ["c1"] and "since" not in second
    assert first["bucket"] == ["my-bucket"] and first["prefix"] == ["p/"]


def test_a_4xx_is_final_with_the_apis_message_and_a_5xx_is_retryable() -> None:
    gone = _feed(FakeApi((410, {"message": "cursor is older than the feed's retention"})))
    with pytest.raises(WatchError, match="retention") as error:
        gone.next_page()
    assert error.value.status == 410
    with pytest.raises(RetryableError):
        _feed(FakeApi((503, {"message": "later"}))).next_page()


def test_pages_retry_after_errors_and_stop_when_asked() -> None:
    stop = threading.Event()
    api = FakeApi(
        (503, {"message": "later"}),
        (200, {"items": [{"key": "p/a"}, {"key": "p/b"}], "next_cursor": "c1"}),
        (200, {"items": [], "next_cursor": "c2"}),
    )
    feed = _feed(api)
    seen = []
    for items in pages(feed, stop, interval_s=0.001):
        seen.append([i["key"] for i in items])
        if len(seen) == 2:
            stop.set()
    assert seen == [["p/a", "p/b"], []] and feed.cursor == "c2"


def test_json_lines_on_a_pipe_and_an_aligned_table_on_a_terminal() -> None:
    out = io.StringIO()
    Printer(out, table=False)({"key": "a b", "kind": "created", "size": 3})
    assert json.loads(out.getvalue()) == {"key": "a b", "kind": "created", "size": 3}
    out = io.StringIO()
    printer = Printer(out, table=True)
    printer({"key": "a", "kind": "created", "size": 3, "event_time": "t"})
    printer({"key": "b", "kind": "deleted", "event_time": "u"})
    header, first, second = out.getvalue().splitlines()
    assert header.split() == ["KIND", "SIZE", "EVENT_TIME", "KEY"]
    assert first.split() == ["created", "3", "t", "a"] and second.split() == ["deleted", "u", "b"]
    assert header.rindex("KEY") == first.rindex("a") == second.rindex("b")
