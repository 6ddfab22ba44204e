"""Concurrent PUTs of one key on the local stack's S3 (moto + `pipeline.local.moto_s3_events`).

The interleaving that made a PUT answer 500 (`ValueError: I/O operation on closed file`) and
send no notification, forced: PUT A stores its key, then waits before its notification
while PUT B replaces the key (moto closes A's value buffer); then A goes on.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import pytest
from moto.s3 import models, notifications

from pipeline.local import moto_s3_events

ACCOUNT = "123456789012"


@pytest.fixture
def backend() -> Any:
    moto_s3_events.apply()
    s3 = models.s3_backends[ACCOUNT]["aws"]
    name = "race-bucket"
    if name not in s3.buckets:
        s3.create_bucket(name, "ap-south-1")
    yield s3
    s3.reset()


def test_a_put_replaced_before_its_notification_still_notifies_with_its_etag(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setitem(
        moto_s3_events._ORIGINAL,
        "send_event",
        lambda _account, name, _bucket, view: sent.append({"name": name, "view": view}),
    )
    a_stored, b_done = threading.Event(), threading.Event()
    routed = notifications.send_event

    def gated(account: str, name: Any, bucket: Any, key: Any) -> None:
        if threading.current_thread().name == "put-a":
            a_stored.set()  # A's key is in the bucket; B replaces it now
            assert b_done.wait(10)
        routed(account, name, bucket, key)

    monkeypatch.setattr(notifications, "send_event", gated)
    errors: list[BaseException] = []
    etags: dict[str, str] = {}

    def put(label: str, body: bytes) -> None:
        try:
            key = backend.put_object("race-bucket", "same/key", body)
            etags[label] = key.etag  # what the PUT's response carries
        except BaseException as error:  # the bug: ValueError from a closed buffer
            errors.append(error)

    a = threading.Thread(target=put, args=("a", b"A" * 1000), name="put-a")
    a.start()
    assert a_stored.wait(10)
    put("b", b"B" * 2000)  # replaces A's key: moto disposes it (closes its buffer)
    b_done.set()
    a.join(10)

    assert errors == []
    assert etags == {
        "a": f'"{hashlib.md5(b"A" * 1000).hexdigest()}"',
        "b": f'"{hashlib.md5(b"B" * 2000).hexdigest()}"',
    }
    views = sorted((event["view"].size, event["view"].event_etag) for event in sent)
    assert views == [
        (1000, hashlib.md5(b"A" * 1000).hexdigest()),
        (2000, hashlib.md5(b"B" * 2000).hexdigest()),
    ]
