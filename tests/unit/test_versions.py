"""Versioned buckets: which events need S3's word, what the row becomes, and ingest end to end.

The bucket is `tests.support.s3versions.FakeVersionedBucket` (HeadObject as S3 answers it), the
table is `InMemoryDynamo` behind the real `DynamoFileStore`.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.adapters.dynamo.statements import from_attribute
from pipeline.adapters.dynamo.writer import DynamoFileStore
from pipeline.core.model import Action, FileEvent
from pipeline.core.retry import Backoff, Deadline
from pipeline.ingest.batch import ingest
from pipeline.ingest.objects import ObjectHead, ObjectLookupError
from pipeline.ingest.versions import VersionResolver, apply_head, needs_lookup
from tests.support.faults import InMemoryDynamo
from tests.support.s3events import notification, s3_record, sqs_record
from tests.support.s3versions import FakeVersionedBucket

BUCKET = "serverless-event4"
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
NO_WAIT = Backoff(base_s=0.0, cap_s=0.0)


def event(
    name: str, version_id: str | None = None, sequencer: str | None = "0A", key: str = "k.txt"
) -> FileEvent:
    action = Action.PUT if name.startswith("ObjectCreated") else Action.DELETE
    return FileEvent(
        filename=key,
        bucket=BUCKET,
        action=action,
        event_name=name,
        event_time="2026-11-24T10:00:00.000Z",
        size=5 if action is Action.PUT else None,
        etag="e" if action is Action.PUT else None,
        sequencer=sequencer,
        version_id=version_id,
    )


# --- which events need a lookup ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "version_id", "expected"),
    [
        ("ObjectRemoved:Delete", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", True),
        ("LifecycleExpiration:Delete", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", True),
        ("ObjectRemoved:Delete", None, False),  # unversioned bucket
        ("ObjectRemoved:Delete", "null", False),  # the null version of a suspended bucket
        ("LifecycleExpiration:Delete", None, False),
        ("ObjectRemoved:DeleteMarkerCreated", "m1", False),  # hidden: the event says so
        ("LifecycleExpiration:DeleteMarkerCreated", "m1", False),
        ("ObjectCreated:Put", "v1", False),  # plain creates never cost a request
        ("ObjectCreated:CompleteMultipartUpload", "v1", False),
        ("ObjectCreated:Copy", None, False),
    ],
)
def test_only_version_deletes_need_s3s_word(
    name: str, version_id: str | None, expected: bool
) -> None:
    # Given an event / When asked whether S3 must be consulted / Then only version deletes do
    assert needs_lookup(event(name, version_id)) is expected


def test_a_current_version_makes_a_live_row_ordered_like_the_event() -> None:
    # Given a version delete and S3 showing a current version
    deleted = event("ObjectRemoved:Delete", "v2", sequencer="0055AED6DCD90281E5")
    head = ObjectHead(exists=True, size=42, etag="abc", version_id="v1")

    # When the head is applied
    row_event = apply_head(deleted, head)

    # Then the row is that version, and keeps the event's ordering and name
    assert row_event.action is Action.PUT
    assert (row_event.size, row_event.etag, row_event.version_id) == (42, "abc", "v1")
    assert (row_event.sequencer, row_event.event_time) == (deleted.sequencer, deleted.event_time)
    assert row_event.event_name == "ObjectRemoved:Delete"


def test_a_current_delete_marker_makes_a_tombstone_with_the_markers_version() -> None:
    # Given a version delete and S3 answering 404 with a delete marker current
    head = ObjectHead(exists=False, delete_marker=True, version_id="m9")

    # When applied / Then a tombstone that names the marker
    row_event = apply_head(event("ObjectRemoved:Delete", "v2"), head)
    assert (row_event.action, row_event.version_id, row_event.size) == (Action.DELETE, "m9", None)


def test_no_version_left_makes_a_tombstone_without_a_version() -> None:
    # Given a version delete that removed the last version (404, no marker)
    row_event = apply_head(event("LifecycleExpiration:Delete", "v2"), ObjectHead(exists=False))

    # Then a tombstone that names no version
    assert (row_event.action, row_event.version_id) == (Action.DELETE, None)


# --- the resolver -----------------------------------------------------------------------


def test_the_resolver_asks_only_about_version_deletes_once_per_key() -> None:
    # Given a bucket with two objects and a batch's newest events for four keys
    bucket = FakeVersionedBucket()
    bucket.put("a", 1, "ea")
    v_b = bucket.put("b", 2, "eb")
    bucket.put("b", 3, "eb2")
    bucket.delete_version("b", v_b)
    events = [
        event("ObjectCreated:Put", "v", key="new"),
        event("ObjectRemoved:DeleteMarkerCreated", "m", key="gone"),
        event("ObjectRemoved:Delete", v_b, key="b"),
        event("ObjectRemoved:Delete", None, key="plain"),
    ]

    # When they are resolved
    resolution = asyncio.run(VersionResolver(bucket).resolve(events, Deadline(5)))

    # Then only "b" was asked about, once, and becomes its current version
    assert bucket.heads == ["b"]
    assert resolution.lookups == 1 and not resolution.failures
    assert resolution.events[f"{BUCKET}/b"].action is Action.PUT
    assert (resolution.events[f"{BUCKET}/b"].size, resolution.events[f"{BUCKET}/b"].etag) == (
        3,
        "eb2",
    )


def test_transient_errors_are_retried_within_the_deadline() -> None:
    # Given S3 throttling twice, then answering
    bucket = FakeVersionedBucket()
    bucket.put("k.txt", 7, "e7")
    bucket.faults["k.txt"] = [
        ObjectLookupError("SlowDown (503)", transient=True),
        ObjectLookupError("ReadTimeoutError", transient=True),
    ]

    # When resolved
    resolver = VersionResolver(bucket, backoff=NO_WAIT)
    resolution = asyncio.run(resolver.resolve([event("ObjectRemoved:Delete", "v")], Deadline(5)))

    # Then the third attempt answered and the key did not fail
    assert bucket.heads == ["k.txt"] * 3 and resolution.lookups == 3
    assert not resolution.failures and resolution.events[f"{BUCKET}/k.txt"].size == 7


def test_access_denied_fails_the_key_without_retrying() -> None:
    # Given S3 answering 403 (missing permission)
    bucket = FakeVersionedBucket()
    bucket.faults["k.txt"] = [ObjectLookupError("HeadObject was denied (403)", transient=False)]

    # When resolved
    resolver = VersionResolver(bucket, backoff=NO_WAIT)
    resolution = asyncio.run(resolver.resolve([event("ObjectRemoved:Delete", "v")], Deadline(5)))

    # Then one attempt, and the key fails with the reason
    assert bucket.heads == ["k.txt"]
    assert resolution.failures == {f"{BUCKET}/k.txt": "HeadObject was denied (403)"}
    assert not resolution.events


def test_a_key_fails_when_the_deadline_leaves_no_time_to_retry() -> None:
    # Given S3 failing transiently for longer than the budget
    bucket = FakeVersionedBucket()
    bucket.faults["k.txt"] = [ObjectLookupError("InternalError (500)", transient=True)] * 50
    resolver = VersionResolver(bucket, backoff=Backoff(base_s=0.01, cap_s=0.02))

    # When resolved with 0.1 s left
    resolution = asyncio.run(resolver.resolve([event("ObjectRemoved:Delete", "v")], Deadline(0.1)))

    # Then it gave up within the budget, failing only that key
    assert resolution.failures == {f"{BUCKET}/k.txt": "InternalError (500)"}
    assert 1 <= len(bucket.heads) < 50


def test_lookups_leave_half_of_the_budget_to_the_writes() -> None:
    # Given a clock that only moves when the resolver sleeps, and S3 failing transiently forever
    clock = [1_000.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds
        await asyncio.sleep(0)

    bucket = FakeVersionedBucket()
    bucket.faults["k.txt"] = [ObjectLookupError("SlowDown (503)", transient=True)] * 10_000
    resolver = VersionResolver(bucket, backoff=Backoff(base_s=0.5, cap_s=2.0), sleep=sleep)
    deadline = Deadline(60, clock=lambda: clock[0])

    # When the key is resolved
    resolution = asyncio.run(resolver.resolve([event("ObjectRemoved:Delete", "v")], deadline))

    # Then it failed after retrying, with at least half of the 60 s still left for the writes
    assert resolution.failures == {f"{BUCKET}/k.txt": "SlowDown (503)"} and len(bucket.heads) > 3
    assert 30 <= deadline.remaining() < 60


def test_a_hung_lookup_is_abandoned_within_its_share_of_the_budget() -> None:
    # Given S3 that never answers
    class Hung(FakeVersionedBucket):
        async def head(self, bucket: str, key: str) -> ObjectHead:
            self.heads.append(key)
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    bucket = Hung()
    resolver = VersionResolver(bucket, backoff=Backoff(base_s=1.0, cap_s=1.0))
    deadline = Deadline(1.0)

    # When resolved with 1 s left
    resolution = asyncio.run(resolver.resolve([event("ObjectRemoved:Delete", "v")], deadline))

    # Then the key fails as timed out, and the writes still have their share of the budget
    assert resolution.failures == {f"{BUCKET}/k.txt": "timed out"} and bucket.heads == ["k.txt"]
    assert deadline.remaining() > 0


def test_no_request_is_started_after_the_deadline() -> None:
    # Given no time left / When resolved / Then no call is made and the key fails
    bucket = FakeVersionedBucket()
    resolution = asyncio.run(
        VersionResolver(bucket).resolve([event("ObjectRemoved:Delete", "v")], Deadline(-1))
    )
    assert bucket.heads == [] and "no time left" in resolution.failures[f"{BUCKET}/k.txt"]


# --- ingest with a resolver ----------------------------------------------------------------


class Replay:
    """Performs S3 operations on the fake bucket and records the notifications S3 would send."""

    def __init__(self, bucket: FakeVersionedBucket) -> None:
        self.bucket = bucket
        self.messages: list[str] = []
        self._sequencer = 0x0055AED6DCD9028100

    def _send(self, key: str, name: str, version_id: str, size: int | None = None) -> None:
        self._sequencer += random.randint(1, 1000)
        record = s3_record(
            key,
            event=name,
            size=size,
            etag=EMPTY_MD5 if name.endswith("DeleteMarkerCreated") else f"etag-{size}",
            sequencer=f"{self._sequencer:018X}",
            version_id=version_id,
        )
        if name.endswith("DeleteMarkerCreated"):
            record["s3"]["object"]["eTag"] = EMPTY_MD5
        self.messages.append(notification(record))

    def put(self, key: str, size: int) -> None:
        self._send(key, "ObjectCreated:Put", self.bucket.put(key, size, f"etag-{size}"), size)

    def delete(self, key: str, lifecycle: bool = False) -> None:
        name = "LifecycleExpiration" if lifecycle else "ObjectRemoved"
        self._send(key, f"{name}:DeleteMarkerCreated", self.bucket.delete(key))

    def delete_version(self, key: str, index: int, lifecycle: bool = False) -> None:
        history = self.bucket.versions.get(key) or []
        if not history:
            return
        version_id = history[index % len(history)].version_id
        self.bucket.delete_version(key, version_id)
        name = "LifecycleExpiration" if lifecycle else "ObjectRemoved"
        self._send(key, f"{name}:Delete", version_id)


def rows(db: InMemoryDynamo) -> dict[str, dict[str, Any]]:
    """The rows of `BUCKET` by object key."""
    return {
        key.removeprefix(f"{BUCKET}/"): {name: from_attribute(v) for name, v in item.items()}
        for key, item in db.tables.get("files", {}).items()
    }


def shown(row: dict[str, Any] | None) -> ObjectHead:
    """What the table says about a key, in HeadObject's terms."""
    if row is None or row.get("deleted"):
        return ObjectHead(exists=False)
    return ObjectHead(
        exists=True, size=row["size"], etag=row.get("etag"), version_id=row.get("version_id")
    )


def visible(head: ObjectHead) -> ObjectHead:
    """HeadObject's answer without the delete-marker details a tombstone may not name."""
    return head if head.exists else ObjectHead(exists=False)


def deliver(
    messages: list[str], db: InMemoryDynamo, bucket: FakeVersionedBucket, batch: int = 3
) -> int:
    """Run ingest over `messages` in batches; returns the messages reported as failed."""
    store = DynamoFileStore(db, "files", backoff=NO_WAIT)
    resolver = VersionResolver(bucket, backoff=NO_WAIT)
    failed = 0
    for start in range(0, len(messages), batch):
        records = [sqs_record(body) for body in messages[start : start + batch]]
        result = asyncio.run(
            ingest(records, store, Deadline(30), tombstone_ttl_s=60, resolver=resolver)
        )
        failed += len(result.failed_message_ids)
    return failed


def test_every_versioned_case_ends_equal_to_head_object() -> None:
    # Given the cases of issue 10 on a versioned bucket, one key each
    bucket = FakeVersionedBucket()
    s3 = Replay(bucket)
    s3.put("noncurrent", 1)
    s3.put("noncurrent", 2)
    s3.delete_version("noncurrent", 0)  # the older version: unchanged, still 2
    s3.put("current", 10)
    s3.put("current", 20)
    s3.delete_version("current", -1)  # the current one: back to 10
    s3.put("marker", 5)
    s3.delete("marker")  # hidden
    s3.delete_version("marker", -1)  # marker removed: visible again, no ObjectCreated
    s3.put("hidden", 3)
    s3.delete("hidden")
    s3.put("back", 4)
    s3.delete("back")
    s3.put("back", 6)  # a later PUT: back
    s3.put("expired", 8)
    s3.delete("expired", lifecycle=True)  # lifecycle: current version expires -> marker
    s3.put("noncurrent-expired", 1)
    s3.put("noncurrent-expired", 9)
    s3.delete_version("noncurrent-expired", 0, lifecycle=True)
    s3.put("all-gone", 1)
    s3.delete_version("all-gone", 0)  # the only version: nothing left
    db = InMemoryDynamo()

    # When every message is delivered twice, shuffled
    messages = s3.messages * 2
    random.Random(7).shuffle(messages)
    failed = deliver(messages, db, bucket)

    # Then nothing failed and every row shows what HeadObject shows
    assert failed == 0
    table = rows(db)
    for key in bucket.versions:
        assert shown(table.get(key)) == visible(bucket.current(key)), key
    assert shown(table["current"]).size == 10 and shown(table["marker"]).size == 5
    assert table["hidden"]["deleted"] and table["hidden"]["version_id"].startswith("v")


def test_a_key_s3_cannot_answer_for_fails_its_messages_and_nothing_else() -> None:
    # Given two version deletes in one batch, S3 denying HeadObject for one of them
    bucket = FakeVersionedBucket()
    s3 = Replay(bucket)
    s3.put("ok", 1)
    s3.put("ok", 2)
    s3.delete_version("ok", 0)
    s3.put("denied", 1)
    s3.put("denied", 2)
    s3.delete_version("denied", 0)
    bucket.faults["denied"] = [ObjectLookupError("HeadObject was denied (403)", transient=False)]
    db = InMemoryDynamo()
    store = DynamoFileStore(db, "files", backoff=NO_WAIT)
    records = [sqs_record(body, message_id=f"m{i}") for i, body in enumerate(s3.messages)]

    # When they are ingested
    result = asyncio.run(
        ingest(
            records,
            store,
            Deadline(5),
            tombstone_ttl_s=60,
            resolver=VersionResolver(bucket, backoff=NO_WAIT),
        )
    )

    # Then only the denied key's messages fail (its delete, and its creates in the batch)
    assert result.failed_message_ids == ["m3", "m4", "m5"]
    assert rows(db)["ok"]["size"] == 2 and "denied" not in rows(db)
    assert result.lookups == 2


OPS = st.lists(
    st.tuples(
        st.sampled_from(["put", "delete", "delete_version", "expire", "expire_version", "ingest"]),
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 5),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, seed=st.integers(0, 2**16))
def test_any_history_delivered_twice_and_shuffled_ends_equal_to_head_object(
    ops: list[tuple[str, str, int]], seed: int
) -> None:
    # Given any sequence of versioned operations, with ingest running in between
    bucket = FakeVersionedBucket()
    s3 = Replay(bucket)
    rng = random.Random(seed)
    db = InMemoryDynamo()
    pending: list[str] = []
    failed = 0
    for op, key, number in ops:
        before = len(s3.messages)
        if op == "put":
            s3.put(key, number)
        elif op in ("delete", "expire"):
            s3.delete(key, lifecycle=op == "expire")
        elif op in ("delete_version", "expire_version"):
            s3.delete_version(key, number, lifecycle=op == "expire_version")
        else:  # deliver a random part of what is pending (each event may come twice)
            rng.shuffle(pending)
            cut = rng.randint(0, len(pending))
            failed += deliver(pending[:cut], db, bucket)
            pending = pending[cut:]
        pending.extend(s3.messages[before:] * 2)

    # When the rest arrives, shuffled
    rng.shuffle(pending)
    failed += deliver(pending, db, bucket)

    # Then nothing failed, and the table equals HeadObject for every key
    assert failed == 0
    table = rows(db)
    for key in bucket.versions:
        assert shown(table.get(key)) == visible(bucket.current(key)), (key, json.dumps(ops))
