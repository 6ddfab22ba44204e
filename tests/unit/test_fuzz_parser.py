"""Property tests of `parse_body`: it never fails with anything but `NotificationError`,
and any valid record's key round-trips through S3's form-URL encoding."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import quote_plus

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.core.fields import MAX_OBJECT_SIZE
from pipeline.core.model import Action
from pipeline.ingest.events import Notification, NotificationError, parse_body
from tests.support.poison import mutate, poisoned_bodies, shapes
from tests.support.s3events import TEST_EVENT, notification, s3_record, sns_envelope

MAX_KEY_BYTES = 1_024
CREATE_NAMES = (
    "ObjectCreated:Put",
    "ObjectCreated:Post",
    "ObjectCreated:Copy",
    "ObjectCreated:CompleteMultipartUpload",
)
DELETE_NAMES = ("ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated")

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fit(text: str, limit: int = MAX_KEY_BYTES) -> str:
    """Cut `text` to at most `limit` UTF-8 bytes, on a character boundary."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore")


# Every valid S3 key: any Unicode text except surrogates, incl. control characters and NUL,
# 1..1,024 bytes as UTF-8. Long keys are drawn on purpose; 4-byte characters fill them fast.
key_chars = st.one_of(
    st.characters(codec="utf-8"),
    st.characters(min_codepoint=0, max_codepoint=0x1F),
    st.sampled_from(list("+%/ &=?#~\\\x7f\u00a0\u2028\ufeff😀字é")),
)
keys = st.one_of(
    st.text(key_chars, min_size=1, max_size=40),
    st.text(key_chars, min_size=200, max_size=1_024),
    st.integers(1, 4).flatmap(
        lambda width: st.just("😀字éa"[4 - width] * (MAX_KEY_BYTES // width))
    ),
).map(_fit)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.integers(0xD800, 0xDFFF).map(chr),  # lone surrogates, legal as JSON \u escapes
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(
            st.one_of(
                st.text(max_size=10),
                st.sampled_from(["Records", "s3", "object", "key", "Type", "Message", "Event"]),
            ),
            children,
            max_size=5,
        ),
    ),
    max_leaves=20,
)


def parse_or_reject(body: Any) -> Notification | None:
    """`parse_body`, with NotificationError (the only allowed failure) mapped to None."""
    try:
        return parse_body(body)
    except NotificationError as error:
        assert str(error), "a NotificationError must say why"
        return None


def check_well_formed(parsed: Notification) -> None:
    """What any accepted notification guarantees its consumers."""
    for event in parsed.events:
        assert isinstance(event.filename, str) and event.filename
        event.filename.encode("utf-8")  # never a lone surrogate
        assert isinstance(event.bucket, str) and event.bucket
        assert event.action in (Action.PUT, Action.DELETE)
        if event.action is Action.DELETE:
            assert event.size is None and event.etag is None
        else:
            assert event.size is None or (
                type(event.size) is int and 0 <= event.size <= MAX_OBJECT_SIZE
            )


@FUZZ
@given(st.text())
@example("")
@example("[" * 50_000)
@example('{"Records": [' * 10_000)
@example('{"Type": "Notification", "Message": 1}')
@example('{"Records": [{"eventName": "\\ud800"}]}')
@example("1" * 5_000)
def test_arbitrary_text_never_raises_anything_else(body: str) -> None:
    # Given any text / When parsed / Then it is rejected cleanly (or, by chance, accepted)
    parsed = parse_or_reject(body)
    if parsed is not None:
        check_well_formed(parsed)


@FUZZ
@given(json_values, st.booleans())
def test_arbitrary_json_never_raises_anything_else(value: Any, wrap: bool) -> None:
    # Given any JSON document, possibly inside an SNS envelope
    body = json.dumps(value)
    if wrap:
        body = sns_envelope(body)

    # When parsed / Then the only failure is a NotificationError
    parsed = parse_or_reject(body)
    if parsed is not None:
        check_well_formed(parsed)


@st.composite
def valid_records(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A valid S3 record and the decoded key it names."""
    key = draw(keys)
    name = draw(st.sampled_from(CREATE_NAMES + DELETE_NAMES))
    record = s3_record(
        key,
        event=name,
        size=draw(st.integers(0, MAX_OBJECT_SIZE)),
        etag=draw(st.none() | st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)),
        sequencer=draw(st.none() | st.text("0123456789ABCDEF", min_size=1, max_size=24)),
        version_id=draw(st.none() | st.text(st.characters(codec="utf-8"), min_size=1)),
        encode=False,
    )
    record["s3"]["object"]["key"] = quote_plus(key, safe=draw(st.sampled_from(["/", ""])))
    return record, key


@st.composite
def mutated_notifications(draw: st.DrawFn) -> str:
    """A valid notification or TestEvent, maybe SNS-wrapped, with random parts replaced or
    removed: inside the S3 document, or in the SNS envelope around it."""
    if draw(st.integers(0, 4)):
        records = draw(st.lists(valid_records(), min_size=1, max_size=3))
        body = notification(*(record for record, _ in records))
    else:
        body = TEST_EVENT
    if draw(st.booleans()):  # mutate the envelope
        return json.dumps(mutate(draw, json.loads(sns_envelope(body))))
    body = json.dumps(mutate(draw, json.loads(body)))
    return sns_envelope(body) if draw(st.booleans()) else body


@FUZZ
@given(mutated_notifications())
def test_mutated_notifications_never_raise_anything_else(body: str) -> None:
    # Given a valid notification with some fields removed or replaced by arbitrary JSON
    # When parsed / Then it is either accepted well-formed or rejected with NotificationError
    parsed = parse_or_reject(body)
    if parsed is not None:
        check_well_formed(parsed)


@FUZZ
@given(st.lists(valid_records(), min_size=1, max_size=5), st.booleans())
@example([(s3_record("é" * 512, encode=True), "é" * 512)], False)
@example([(s3_record("\x00\r\n\t ", encode=True), "\x00\r\n\t ")], True)
def test_valid_records_round_trip_their_keys(
    records: list[tuple[dict[str, Any], str]], wrap: bool
) -> None:
    # Given a message of valid records, keys form-URL-encoded with quote_plus
    body = notification(*(record for record, _ in records))
    if wrap:
        body = sns_envelope(body)

    # When parsed
    parsed = parse_body(body)

    # Then every record comes out, in order, named by its original key
    assert [event.filename for event in parsed.events] == [key for _, key in records]
    assert all(len(event.filename.encode("utf-8")) <= MAX_KEY_BYTES for event in parsed.events)
    for event, (record, _) in zip(parsed.events, records, strict=True):
        is_delete = record["eventName"].startswith("ObjectRemoved")
        assert event.action is (Action.DELETE if is_delete else Action.PUT)
        obj = record["s3"]["object"]
        assert event.size == (None if is_delete else obj.get("size"))
        assert event.sequencer == obj.get("sequencer")
        assert event.version_id == obj.get("versionId")
    assert parsed.skipped == 0 and parsed.test_event is False


@FUZZ
@given(st.lists(valid_records(), max_size=3), st.integers(1, 3))
def test_ignored_records_are_counted_and_test_events_recognised(
    records: list[tuple[dict[str, Any], str]], ignored: int
) -> None:
    # Given valid records mixed with ignored ones (tagging, restore)
    ignored_records = [
        s3_record(f"t{i}", event=("ObjectTagging:Put", "ObjectRestore:Completed")[i % 2])
        for i in range(ignored)
    ]
    body = notification(*ignored_records, *(record for record, _ in records))

    # When parsed / Then the ignored ones are counted, the rest kept
    parsed = parse_body(body)
    assert parsed.skipped == ignored
    assert [event.filename for event in parsed.events] == [key for _, key in records]
    # and a TestEvent is never confused with records
    assert parse_body(copy.copy(TEST_EVENT)).test_event is True


@FUZZ
@given(
    poisoned_bodies("photos/a b+c.jpg", "serverless-event4", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")
)
def test_any_json_value_in_any_field_of_any_shape_is_rejected_cleanly(body: str) -> None:
    # Given an S3 notification, its SNS envelope, or an EventBridge event, with some of its
    # fields (any depth) replaced by any JSON value or removed
    # When parsed / Then it is accepted well-formed or rejected with a NotificationError
    parsed = parse_or_reject(body)
    if parsed is not None:
        check_well_formed(parsed)


@pytest.mark.parametrize("field", ["reason", "deletion-type"])
@pytest.mark.parametrize("value", [["DeleteObject"], {"a": 1}, 7, True, ""])
def test_an_object_deleted_event_with_a_reason_of_another_type_is_rejected(
    field: str, value: Any
) -> None:
    # Given AWS's "Object Deleted" sample whose reason or deletion-type is not a string
    document = shapes("k", "b", "v1")["eventbridge-marker"]
    document["detail"][field] = value

    # When parsed / Then a NotificationError names the field (it used to be a TypeError)
    with pytest.raises(NotificationError, match=f"detail.{field} must be a non-empty string"):
        parse_body(json.dumps(document))
