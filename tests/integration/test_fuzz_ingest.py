"""Property tests of the ingest Lambda handler on moto (S3, SQS) and DynamoDB Local.

Hypothesis builds SQS batches that mix valid S3 notifications (creates and deletes of random
keys with Unicode and control characters, some for the same key, out of order, duplicated,
SNS-wrapped) with junk bodies of known kinds. The test knows from the generated structure,
not from the parser, which messages are junk; it checks that the handler never raises,
reports exactly the junk messages, and leaves exactly the expected rows in the table.

A second test puts one poison message (any JSON value in any field of any supported shape, or
any SDK error out of HeadObject) between two good ones on a versioned bucket, with the version
resolver on: the handler never raises and both neighbours are written, every time.
"""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.lambda_context import FakeLambdaContext
from tests.support.poison import poisoned_bodies, shapes
from tests.support.s3events import TEST_EVENT, notification, s3_record, sns_envelope, sqs_record
from tests.support.sdk_errors import BOTOCORE_ERRORS, OTHER_ERRORS, TRANSIENT_FAMILIES, sdk_error

pytestmark = pytest.mark.integration

MAX_KEY_BYTES = 1_024


@pytest.fixture
def handler(table_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """handlers.ingest, cold-started against this test's table (TABLE_NAME set by the fixture)."""
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "FileTrackerTest")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    import handlers.ingest

    module = importlib.reload(handlers.ingest)
    yield module
    module.runtime.close()


def _fit(text: str, limit: int = MAX_KEY_BYTES) -> str:
    """Cut `text` to at most `limit` UTF-8 bytes, on a character boundary."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


key_chars = st.one_of(
    st.characters(codec="utf-8"),
    st.characters(min_codepoint=0, max_codepoint=0x1F),
    st.sampled_from(list("+%/ &=?#\x7f\u2028\ufeff😀字é")),
)
suffixes = st.one_of(
    st.text(key_chars, min_size=1, max_size=30),
    st.text(key_chars, min_size=300, max_size=1_100),
)

# --- the generated structure ---------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One S3 event on one key (suffix index into the example's key pool)."""

    key: int
    delete: bool
    size: int


@dataclass(frozen=True)
class Valid:
    """A message S3 would send: some ops (by index), maybe ignored records, maybe SNS-wrapped."""

    ops: tuple[int, ...]
    ignored: int
    sns: bool
    test_event: bool


@dataclass(frozen=True)
class Junk:
    """A message parse_body must reject, of a known kind; `detail` drives its content."""

    kind: str
    detail: Any
    sns: bool


JUNK_KINDS = (
    "not-json",
    "non-object",
    "no-records",
    "bad-records-value",
    "bad-record",
    "sns-message-not-string",
    "sns-message-not-json",
)
BAD_RECORD_MUTATIONS = (
    "size-negative",
    "size-string",
    "size-bool",
    "size-float",
    "source-not-s3",
    "unsupported-event",
    "no-s3",
    "key-not-utf8",
    "key-empty",
    "no-event-time",
    "record-not-object",
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
junk = st.one_of(
    st.builds(Junk, st.just("not-json"), st.text(max_size=50), st.just(False)),
    st.builds(
        Junk,
        st.just("non-object"),
        json_scalars | st.lists(json_values, max_size=3),
        st.booleans(),
    ),
    st.builds(
        Junk,
        st.just("no-records"),
        st.dictionaries(
            st.text(max_size=10).filter(lambda k: k not in {"Records", "Event", "Type"}),
            json_values,
            max_size=4,
        ),
        st.booleans(),
    ),
    st.builds(
        Junk,
        st.just("bad-records-value"),
        st.sampled_from([[], {}, None, "Records", 0, {"0": {}}]),
        st.booleans(),
    ),
    st.builds(
        Junk,
        st.just("bad-record"),
        st.tuples(st.sampled_from(BAD_RECORD_MUTATIONS), st.integers(0, 2), st.integers(1, 99)),
        st.booleans(),
    ),
    st.builds(Junk, st.just("sns-message-not-string"), json_values, st.just(False)),
    st.builds(Junk, st.just("sns-message-not-json"), st.text(max_size=30), st.just(False)),
)


@dataclass(frozen=True)
class Batch:
    suffixes: tuple[str, ...]
    ops: tuple[Op, ...]
    valid: tuple[Valid, ...]
    junk: tuple[Junk, ...]
    order: tuple[int, ...]
    """Delivery order over valid + junk messages (duplicates allowed: redelivery)."""
    sequencers: bool


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    pool = tuple(draw(st.lists(suffixes, min_size=1, max_size=6, unique=True)))
    ops = tuple(
        draw(
            st.lists(
                st.builds(Op, st.integers(0, len(pool) - 1), st.booleans(), st.integers(0, 10**12)),
                min_size=1,
                max_size=12,
            )
        )
    )
    # Split the ops (in their true order) into messages of 1-3 records
    valid: list[Valid] = []
    index = 0
    while index < len(ops):
        size = draw(st.integers(1, 3))
        valid.append(
            Valid(
                ops=tuple(range(index, min(index + size, len(ops)))),
                ignored=draw(st.integers(0, 1)),
                sns=draw(st.booleans()),
                test_event=False,
            )
        )
        index += size
    if draw(st.booleans()):
        valid.append(Valid(ops=(), ignored=0, sns=draw(st.booleans()), test_event=True))
    bad = tuple(draw(st.lists(junk, max_size=6)))
    total = len(valid) + len(bad)
    order = list(draw(st.permutations(range(total))))
    order += draw(st.lists(st.integers(0, len(valid) - 1), max_size=2))  # redeliveries
    order = list(draw(st.permutations(order)))
    return Batch(pool, ops, tuple(valid), bad, tuple(order), draw(st.booleans()))


# --- rendering the structure as S3 / SNS / SQS would send it ----------------------------


def _time(index: int) -> str:
    return f"2026-11-24T10:00:{index // 1000:02d}.{index % 1000:03d}Z"


def _record_for(op_index: int, op: Op, key: str, sequencers: bool) -> dict[str, Any]:
    return s3_record(
        key,
        event="ObjectRemoved:Delete" if op.delete else "ObjectCreated:Put",
        size=op.size,
        sequencer=f"{op_index + 1:016X}" if sequencers else None,
        event_time=_time(op_index + 1),
    )


def _valid_body(message: Valid, batch: Batch, keys: list[str], prefix: str) -> str:
    if message.test_event:
        body = TEST_EVENT
    else:
        records = [
            _record_for(i, batch.ops[i], keys[batch.ops[i].key], batch.sequencers)
            for i in message.ops
        ]
        records += [
            s3_record(f"{prefix}ignored/{n}", event="ObjectTagging:Put")
            for n in range(message.ignored)
        ]
        body = notification(*records)
    return sns_envelope(body) if message.sns else body


def _bad_record(mutation: str, n: int, prefix: str) -> Any:
    record = s3_record(f"{prefix}junk/bad-{n}", size=n)
    obj = record["s3"]["object"]
    match mutation:
        case "size-negative":
            obj["size"] = -n
        case "size-string":
            obj["size"] = str(n)
        case "size-bool":
            obj["size"] = True
        case "size-float":
            obj["size"] = n + 0.5
        case "source-not-s3":
            record["eventSource"] = "aws:sqs"
        case "unsupported-event":
            record["eventName"] = f"Bogus:Event{n}"
        case "no-s3":
            del record["s3"]
        case "key-not-utf8":
            obj["key"] = f"junk%FF{n}"
        case "key-empty":
            obj["key"] = ""
        case "no-event-time":
            del record["eventTime"]
        case "record-not-object":
            return [record]
    return record


def _junk_body(message: Junk, prefix: str) -> str:
    body: str
    match message.kind:
        case "not-json":
            body = "<" + message.detail  # JSON never starts with "<"
        case "non-object":
            body = json.dumps(message.detail)
        case "no-records":
            body = json.dumps(message.detail)
        case "bad-records-value":
            body = json.dumps({"Records": message.detail})
        case "bad-record":
            mutation, position, n = message.detail
            good = [s3_record(f"{prefix}junk/good-{n}-{i}", size=i) for i in range(2)]
            good.insert(position, _bad_record(mutation, n, prefix))
            body = json.dumps({"Records": good})
        case "sns-message-not-string":
            detail = message.detail
            return json.dumps({"Type": "Notification", "Message": [detail]})
        case "sns-message-not-json":
            return json.dumps({"Type": "Notification", "Message": "<" + message.detail})
        case _:
            raise AssertionError(message.kind)
    return sns_envelope(body) if message.sns else body


def scan_prefix(dynamodb: Any, table: str, prefix: str) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            if "filename" not in item:  # a system item (a folder counter): not a file
                continue
            if item["filename"]["S"].startswith(prefix):
                rows[item["filename"]["S"]] = item
    return rows


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(batch=batches())
def test_handler_reports_exactly_the_junk_and_applies_every_valid_record(
    handler: ModuleType, dynamodb: Any, table_name: str, batch: Batch
) -> None:
    # Given a batch of valid notifications and junk bodies, all keys under a fresh prefix
    prefix = f"fz-{uuid.uuid4().hex[:12]}/"
    keys = [_fit(f"{prefix}ok/{suffix}") for suffix in batch.suffixes]
    bodies = [_valid_body(m, batch, keys, prefix) for m in batch.valid]
    bodies += [_junk_body(m, prefix) for m in batch.junk]
    records = [sqs_record(bodies[i]) for i in batch.order]
    junk_ids = [
        r["messageId"] for i, r in zip(batch.order, records, strict=True) if i >= len(batch.valid)
    ]
    # the newest op per key decides its row: ops are generated in their true order
    final: dict[str, Op] = {}
    for op in batch.ops:
        final[keys[op.key]] = op

    # When the handler runs
    response = handler.lambda_handler({"Records": records}, FakeLambdaContext())

    # Then exactly the junk messages are reported, in batch order
    reported = [failure["itemIdentifier"] for failure in response["batchItemFailures"]]
    assert reported == junk_ids
    # and the table holds exactly the valid records' effects, nothing from junk or ignored ones
    rows = scan_prefix(dynamodb, table_name, prefix)
    assert set(rows) == set(final)
    for key, op in final.items():
        row = rows[key]
        if op.delete:
            assert row.get("deleted") == {"BOOL": True}, key
            assert "expires_at" in row and "size" not in row
        else:
            assert "deleted" not in row, key
            assert row["size"] == {"N": str(op.size)}, key
        assert row["event_name"]["S"] == (
            "ObjectRemoved:Delete" if op.delete else "ObjectCreated:Put"
        )


# --- one poison message between two good ones -------------------------------------------

POISON_BUCKETS = st.one_of(
    st.just("<the bucket>"),
    st.sampled_from(["not a/valid bucket", "x" * 300, "UPPER_case", "a", "b" * 64]),
    st.text(max_size=80),
)
SDK_ERRORS = st.sampled_from(BOTOCORE_ERRORS + OTHER_ERRORS + (RuntimeError, KeyError))
FAILING_ATTEMPTS = 2
"""An injected error fails this many HeadObject calls for its key, then S3 answers."""


@pytest.fixture(scope="module")
def versioned_bucket(moto_server: Any) -> tuple[Any, str]:
    """A versioned bucket on the moto server, and an S3 client for it."""
    s3 = boto3.client(
        "s3",
        region_name="ap-south-1",
        endpoint_url=moto_server.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    name = f"poison-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "ap-south-1"})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return s3, name


def _version_delete_of_a_restored_object(s3: Any, bucket: str, key: str) -> tuple[str, int]:
    """Put two versions of `key`, delete the newest by id: the body S3 sends, and the size
    of the version that is current again (only HeadObject can tell it)."""
    s3.put_object(Bucket=bucket, Key=key, Body=b"abc")
    newest = s3.put_object(Bucket=bucket, Key=key, Body=b"abcdef")["VersionId"]
    s3.delete_object(Bucket=bucket, Key=key, VersionId=newest)
    record = s3_record(
        key, event="ObjectRemoved:Delete", bucket=bucket, version_id=newest, sequencer="0B"
    )
    return notification(record), 3


class Injector:
    """Raises an armed error from HeadObject for keys under a prefix, `FAILING_ATTEMPTS` times.

    Registered once on the handler's session before its S3 client exists (a client copies
    the session's event hooks when it is created).
    """

    def __init__(self) -> None:
        self.prefix: str | None = None
        self.error: type[BaseException] = RuntimeError
        self.calls = 0

    @classmethod
    def on(cls, handler: ModuleType) -> Injector:
        session = handler._session  # a reloaded handler module has a new one
        injector: Injector | None = getattr(session, "_test_injector", None)
        if injector is None:
            injector = session._test_injector = cls()
            session.events.register("before-parameter-build.s3.HeadObject", injector)
        return injector

    def arm(self, prefix: str | None, error: type[BaseException] = RuntimeError) -> None:
        self.prefix, self.error, self.calls = prefix, error, 0

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        key = str(params.get("Key", ""))
        if self.prefix and key.startswith(self.prefix) and self.calls < FAILING_ATTEMPTS:
            self.calls += 1
            raise sdk_error(self.error)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
def test_a_poison_message_between_two_good_ones_fails_alone(
    handler: ModuleType, dynamodb: Any, table_name: str, versioned_bucket: Any, data: Any
) -> None:
    # Given one poison message: any field of any shape replaced by any JSON value (the bucket
    # too: names the SDK refuses), or an SDK error of any family raised by HeadObject
    s3, bucket = versioned_bucket
    prefix = f"px-{uuid.uuid4().hex[:12]}/"
    error: type[BaseException] | None = None
    if data.draw(st.booleans(), label="sdk error"):
        error = data.draw(SDK_ERRORS, label="error")
        poison, _ = _version_delete_of_a_restored_object(s3, bucket, f"{prefix}poison")
    else:
        poison_bucket = data.draw(POISON_BUCKETS, label="bucket").replace("<the bucket>", bucket)
        poison = data.draw(
            poisoned_bodies(f"{prefix}poison", poison_bucket, "3HL4kqtJlcpXroDTDmJ"),
            label="poison",
        )
    # When it runs between two good ones / Then it fails alone
    check_sandwich(handler, dynamodb, table_name, versioned_bucket, prefix, poison, error)


def test_every_sdk_error_out_of_head_object_fails_only_its_own_message(
    handler: ModuleType, dynamodb: Any, table_name: str, versioned_bucket: Any
) -> None:
    # Given, in turn, every error class of botocore's family, of the HTTP layer, and bugs
    s3, bucket = versioned_bucket
    for error in (*BOTOCORE_ERRORS, *OTHER_ERRORS, RuntimeError, KeyError):
        prefix = f"sdk-{uuid.uuid4().hex[:12]}/"
        poison, _ = _version_delete_of_a_restored_object(s3, bucket, f"{prefix}poison")
        # When HeadObject raises it for the poison's key / Then only that message fails
        check_sandwich(handler, dynamodb, table_name, versioned_bucket, prefix, poison, error)


@pytest.mark.parametrize("shape", ["s3-version-delete", "eventbridge-version-delete"])
@pytest.mark.parametrize("bucket", ["not a/valid bucket", "x" * 300])
def test_a_version_delete_naming_a_bucket_the_sdk_refuses_fails_alone(
    handler: ModuleType,
    dynamodb: Any,
    table_name: str,
    versioned_bucket: Any,
    shape: str,
    bucket: str,
) -> None:
    # Given a version delete naming a bucket botocore refuses to send (ParamValidationError):
    # it used to raise out of the handler and fail the whole batch
    prefix = f"pv-{uuid.uuid4().hex[:12]}/"
    poison = json.dumps(shapes(f"{prefix}poison", bucket, "3HL4kqtJlcpXroDTDmJ")[shape])
    # When it runs between two good ones / Then it fails alone
    response = check_sandwich(handler, dynamodb, table_name, versioned_bucket, prefix, poison, None)
    assert len(response["batchItemFailures"]) == 1


def check_sandwich(
    handler: ModuleType,
    dynamodb: Any,
    table_name: str,
    versioned_bucket: Any,
    prefix: str,
    poison: str,
    error: type[BaseException] | None,
) -> dict[str, Any]:
    """Run `poison` between two good messages (a create, and a version delete that only
    HeadObject can resolve) through the real handler; `error`: raised by HeadObject for the
    poison's key. The handler must not raise and both neighbours must be written."""
    s3, bucket = versioned_bucket
    left = notification(s3_record(f"{prefix}left", bucket=bucket, size=11))
    right, restored_size = _version_delete_of_a_restored_object(s3, bucket, f"{prefix}right")
    records = [sqs_record(left), sqs_record(poison), sqs_record(right)]
    injector = Injector.on(handler)
    if error is not None:
        injector.arm(f"{prefix}poison", error)
    try:
        response = handler.lambda_handler({"Records": records}, FakeLambdaContext())
    finally:
        calls = injector.calls
        injector.arm(None)

    # only the poison message may be reported
    reported = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
    assert reported <= {records[1]["messageId"]}, error
    # and both neighbours were written
    rows = scan_prefix(dynamodb, table_name, prefix)
    assert rows[f"{prefix}left"]["size"] == {"N": "11"}
    assert "deleted" not in rows[f"{prefix}right"]
    assert rows[f"{prefix}right"]["size"] == {"N": str(restored_size)}
    if error is not None:  # transient errors were retried; the others failed the key
        transient = issubclass(error, TRANSIENT_FAMILIES)
        assert calls == (FAILING_ATTEMPTS if transient else 1), error
        assert (records[1]["messageId"] in reported) is not transient, error
    return dict(response)
