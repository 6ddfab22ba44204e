"""The S3 notification parser: AWS's shapes in, `FileEvent`s or a `NotificationError` out."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.fields import MAX_OBJECT_SIZE, NotificationError, decode_key
from pipeline.core.model import Action, FileEvent
from pipeline.ingest.events import Notification, parse_body
from tests.support.s3events import TEST_EVENT, notification, s3_record, sns_envelope

EVENTS = Path(__file__).resolve().parent.parent / "events"


def load(name: str) -> dict[str, Any]:
    """A sample body from tests/events/, as a JSON document."""
    document: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return document


def raw(raw_key: str, **kwargs: Any) -> str:
    """A one-record notification whose key is sent exactly as `raw_key` (already encoded)."""
    return notification(s3_record(raw_key, encode=False, **kwargs))


def only_event(body: str) -> FileEvent:
    parsed = parse_body(body)
    assert len(parsed.events) == 1, parsed
    return parsed.events[0]


# --- keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_key", "expected"),
    [
        ("hello+world%2B1.txt", "hello world+1.txt"),
        ("100%25.txt", "100%.txt"),
        ("caf%C3%A9.txt", "café.txt"),
        ("%E5%AD%97/%F0%9F%99%82.txt", "字/🙂.txt"),
        ("a/b/c.txt", "a/b/c.txt"),
        ("a%2Fb%2Fc.txt", "a/b/c.txt"),
        ("red+flower.jpg", "red flower.jpg"),
        ("+leading+and+trailing+", " leading and trailing "),
        ("tab%09nul%00bell%07", "tab\tnul\x00bell\x07"),
        ("%2525", "%25"),
    ],
)
def test_keys_are_form_url_decoded(raw_key: str, expected: str) -> None:
    # Given a notification whose key is form-URL-encoded the way S3 sends it
    body = raw(raw_key)

    # When it is parsed
    event = only_event(body)

    # Then the filename is the decoded key
    assert event.filename == expected


def test_a_1024_byte_key_is_accepted_whole() -> None:
    # Given a key of exactly 1,024 bytes once decoded (S3's maximum), 2-byte characters encoded
    key = "é" * 512
    assert len(key.encode("utf-8")) == 1_024
    body = notification(s3_record(key))
    assert len(json.loads(body)["Records"][0]["s3"]["object"]["key"]) == 512 * 6

    # When it is parsed
    event = only_event(body)

    # Then the whole key survives
    assert event.filename == key


@pytest.mark.parametrize(
    "raw_key",
    ["%FF", "caf%C3.txt", "%C3%28", "%ED%A0%80", "%F4%90%80%80", "%C0%AF"],
    ids=["lone-ff", "truncated", "bad-continuation", "surrogate", "above-max", "overlong"],
)
def test_keys_decoding_to_invalid_utf8_are_rejected(raw_key: str) -> None:
    # Given a key whose percent-escapes are not UTF-8
    body = raw(raw_key)

    # When / Then it is a NotificationError naming the key
    with pytest.raises(NotificationError, match=r"s3\.object\.key"):
        parse_body(body)


@pytest.mark.parametrize("raw_key", ["", None, 42, ["a"]])
def test_empty_or_non_string_keys_are_rejected(raw_key: Any) -> None:
    # Given a record whose key is empty or not a string
    document = json.loads(notification(s3_record("x")))
    document["Records"][0]["s3"]["object"]["key"] = raw_key

    # When / Then
    with pytest.raises(NotificationError, match=r"s3\.object\.key"):
        parse_body(json.dumps(document))


def test_decode_key_is_unquote_plus_and_rejects_empty() -> None:
    # Given / When / Then: decode_key alone follows the same rules
    assert decode_key("a+b%2Bc") == "a b+c"
    with pytest.raises(NotificationError, match="empty"):
        decode_key("")


# --- event names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "ObjectCreated:Put",
        "ObjectCreated:Post",
        "ObjectCreated:Copy",
        "ObjectCreated:CompleteMultipartUpload",
    ],
)
def test_object_created_events_are_puts_with_size_and_etag(name: str) -> None:
    # Given a create notification
    body = notification(s3_record("dir/file.bin", event=name, size=4_096, etag="abc123"))

    # When it is parsed
    event = only_event(body)

    # Then it is a PUT carrying the object's size and eTag
    assert event.action is Action.PUT
    assert event.event_name == name
    assert (event.size, event.etag, event.bucket) == (4_096, "abc123", "serverless-event4")


@pytest.mark.parametrize(
    "name",
    ["ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated", "LifecycleExpiration:Delete"],
)
def test_object_removed_events_are_deletes_without_size_or_etag(name: str) -> None:
    # Given a remove notification (which carries a sequencer but no size/eTag)
    body = notification(s3_record("gone.txt", event=name, sequencer="00AB"))

    # When it is parsed
    event = only_event(body)

    # Then it is a DELETE with no size and no eTag
    assert event.action is Action.DELETE
    assert event.event_name == name
    assert event.size is None and event.etag is None
    assert event.sequencer == "00AB"


def test_a_delete_that_still_carries_size_and_etag_drops_them() -> None:
    # Given a delete record that (unusually) has size and eTag
    document = json.loads(notification(s3_record("x", event="ObjectRemoved:Delete")))
    document["Records"][0]["s3"]["object"].update({"size": 5, "eTag": "e"})

    # When it is parsed
    event = only_event(json.dumps(document))

    # Then the delete keeps neither
    assert (event.action, event.size, event.etag) == (Action.DELETE, None, None)


@pytest.mark.parametrize(
    "name", ["ObjectTagging:Put", "ObjectRestore:Completed", "ObjectAcl:Put", "Replication:A"]
)
def test_ignored_event_types_are_counted_as_skipped(name: str) -> None:
    # Given a message with one ignored record and one create
    body = notification(s3_record("tagged.txt", event=name), s3_record("new.txt"))

    # When it is parsed
    parsed = parse_body(body)

    # Then the ignored one is skipped, the create kept
    assert parsed.skipped == 1
    assert [e.filename for e in parsed.events] == ["new.txt"]
    assert parsed.test_event is False


@pytest.mark.parametrize("name", ["ObjectLocked:Put", "Bogus", "objectcreated:put", "s3:TestEvent"])
def test_unsupported_event_names_are_rejected(name: str) -> None:
    # Given a record with an event name we do not know
    body = notification(s3_record("x", event=name))

    # When / Then the error names the event
    with pytest.raises(NotificationError, match="unsupported eventName"):
        parse_body(body)


# --- message shapes ---------------------------------------------------------------------


def test_test_event_has_no_events() -> None:
    # Given S3's s3:TestEvent (sent when the notification is configured)
    for body in (TEST_EVENT, json.dumps(load("s3_test_event.json"))):
        # When it is parsed
        parsed = parse_body(body)

        # Then it is recognised as a test event with nothing to apply
        assert parsed == Notification(events=(), skipped=0, test_event=True)


def test_all_records_of_one_message_are_returned_in_order() -> None:
    # Given three records in one message
    body = notification(
        s3_record("a.txt", size=1),
        s3_record("b.txt", event="ObjectRemoved:Delete"),
        s3_record("c+d.txt", size=3),  # sent as c%2Bd.txt
    )

    # When it is parsed
    parsed = parse_body(body)

    # Then all three come out, in order
    assert [(e.filename, e.action, e.size) for e in parsed.events] == [
        ("a.txt", Action.PUT, 1),
        ("b.txt", Action.DELETE, None),
        ("c+d.txt", Action.PUT, 3),
    ]
    assert parsed.skipped == 0


def test_aws_sample_put_event() -> None:
    # Given AWS's documented example message (versioned bucket, with sequencer)
    body = json.dumps(load("s3_put_sample.json"))

    # When it is parsed
    event = only_event(body)

    # Then every field we store is taken from it
    assert event == FileEvent(
        filename="HappyFace.jpg",
        bucket="amzn-s3-demo-bucket",
        action=Action.PUT,
        event_name="ObjectCreated:Put",
        event_time="1970-01-01T00:00:00.000Z",
        size=1024,
        etag="d41d8cd98f00b204e9800998ecf8427e",
        sequencer="0055AED6DCD90281E5",
        version_id="096fKKXTRTtl3on89fVO.nfljtsv6qko",
    )


def test_aws_sample_delete_event() -> None:
    # Given the same object's delete in AWS's shape
    body = json.dumps(load("s3_delete_sample.json"))

    # When it is parsed
    event = only_event(body)

    # Then it is a delete with the later sequencer and no size
    assert event == FileEvent(
        filename="HappyFace.jpg",
        bucket="amzn-s3-demo-bucket",
        action=Action.DELETE,
        event_name="ObjectRemoved:Delete",
        event_time="1970-01-01T00:00:01.000Z",
        sequencer="0055AED6DCD90281E6",
        version_id="096fKKXTRTtl3on89fVO.nfljtsv6qko",
    )


def test_sns_envelope_is_unwrapped_to_the_same_events() -> None:
    # Given the sample put as SNS delivers it to SQS (S3 -> SNS -> SQS)
    wrapped = load("sns_wrapped_put.json")
    assert wrapped["Type"] == "Notification" and isinstance(wrapped["Message"], str)

    # When both the wrapped and the direct body are parsed
    via_sns = parse_body(json.dumps(wrapped))
    direct = parse_body(json.dumps(load("s3_put_sample.json")))

    # Then they say the same
    assert via_sns == direct
    assert via_sns.events[0].filename == "HappyFace.jpg"


def test_sns_wrapped_test_event_and_encoded_keys() -> None:
    # Given a test event and an encoded key, each wrapped in SNS
    wrapped_test = sns_envelope(TEST_EVENT)
    wrapped_put = sns_envelope(notification(s3_record("sub dir/ü+1.txt")))

    # When / Then they unwrap like the direct bodies
    assert parse_body(wrapped_test).test_event is True
    assert only_event(wrapped_put).filename == "sub dir/ü+1.txt"


# --- rejected bodies --------------------------------------------------------------------


def _mutated(mutate: Any) -> str:
    document = copy.deepcopy(load("s3_put_sample.json"))
    mutate(document)
    return json.dumps(document)


def _obj(document: dict[str, Any]) -> dict[str, Any]:
    obj: dict[str, Any] = document["Records"][0]["s3"]["object"]
    return obj


REJECTED: list[tuple[str, str]] = [
    ("not json at all", "not JSON"),
    ("", "not JSON"),
    ('{"Records": [', "not JSON"),
    ("[1, 2, 3]", "not a JSON object"),
    ('"Records"', "not a JSON object"),
    ("null", "not a JSON object"),
    ('{"hello": "world"}', "no Records"),
    ('{"Records": []}', "no Records"),
    ('{"Records": {"a": 1}}', "no Records"),
    ('{"Records": null}', "no Records"),
    ('{"Records": [1]}', "must be an object"),
    ('{"Event": "s3:TestEvent", "Records": []}', "no Records"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    (_mutated(lambda d: d["Records"][0].pop("s3")), "no s3 object"),
    (_mutated(lambda d: d["Records"][0].update(s3="x")), "no s3 object"),
    (_mutated(lambda d: d["Records"][0]["s3"].pop("object")), r"s3\.object"),
    (_mutated(lambda d: d["Records"][0]["s3"].pop("bucket")), r"s3\.bucket"),
    (_mutated(lambda d: d["Records"][0]["s3"]["bucket"].pop("name")), r"s3\.bucket\.name"),
    (_mutated(lambda d: _obj(d).update(size=-1)), "non-negative integer"),
    (_mutated(lambda d: _obj(d).update(size="1024")), "non-negative integer"),
    (_mutated(lambda d: _obj(d).update(size=True)), "non-negative integer"),
    (_mutated(lambda d: _obj(d).update(size=10.5)), "non-negative integer"),
    (_mutated(lambda d: _obj(d).update(size=1e20)), "non-negative integer, got float"),
    (_mutated(lambda d: _obj(d).update(size=[1])), "non-negative integer, got list"),
    (_mutated(lambda d: _obj(d).update(size=MAX_OBJECT_SIZE + 1)), "maximum object size"),
    (_mutated(lambda d: _obj(d).update(size=10**38)), "maximum object size"),
    (_mutated(lambda d: _obj(d).update(eTag=7)), r"s3\.object\.eTag"),
    (_mutated(lambda d: _obj(d).update(sequencer=[1])), r"s3\.object\.sequencer"),
    (_mutated(lambda d: _obj(d).update(sequencer="00XY")), r"sequencer must be a hexadecimal"),
    (_mutated(lambda d: _obj(d).update(sequencer="")), r"sequencer must be a hexadecimal"),
    (_mutated(lambda d: _obj(d).update(sequencer="F" * 65)), r"sequencer is longer than 64"),
    (_mutated(lambda d: d["Records"][0].update(eventSource="aws:sqs")), "aws:s3"),
    (_mutated(lambda d: d["Records"][0].update(eventSource=1)), "aws:s3"),
    (_mutated(lambda d: d["Records"][0].pop("eventName")), "eventName"),
    (_mutated(lambda d: d["Records"][0].update(eventName="")), "eventName"),
    (_mutated(lambda d: d["Records"][0].pop("eventTime")), "eventTime"),
    (_mutated(lambda d: d["Records"][0].update(eventName="Foo:Bar")), "unsupported"),
    ('{"Type": "Notification", "Message": "[]"}', "not a JSON object"),
    ('{"Type": "Notification", "Message": "{}"}', "no Records"),
    (_mutated(lambda d: d["Records"][0].update(eventTime="\ud800")), "eventTime.*UTF-8"),
    (_mutated(lambda d: _obj(d).update(key="\udc80.txt")), r"s3\.object\.key.*UTF-8"),
]


@pytest.mark.parametrize(
    ("body", "message"),
    REJECTED,
    ids=[f"{index:02d}-{message}" for index, (_, message) in enumerate(REJECTED)],
)
def test_bodies_that_are_not_s3_notifications_are_rejected(body: str, message: str) -> None:
    # Given a body that is not an S3 notification we can apply
    # When it is parsed
    # Then a NotificationError says why
    with pytest.raises(NotificationError, match=message):
        parse_body(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"Type": "Notification", "Message": {"Records": []}}', "SNS envelope"),
        ('{"Type": "Notification"}', "SNS envelope"),
        ('{"Type": "Notification", "Message": "{oops"}', "SNS Message is not JSON"),
    ],
)
def test_bad_sns_envelopes_are_rejected_with_their_own_reason(body: str, message: str) -> None:
    # Given a valid JSON SNS envelope whose Message is missing, not a string or not JSON
    # When it is parsed
    # Then the NotificationError says what is wrong with the envelope
    with pytest.raises(NotificationError, match=message):
        parse_body(body)


def test_bad_sns_envelopes_are_still_rejected() -> None:
    # Given the same envelopes / When parsed / Then they are NotificationErrors all the same
    for body in (
        '{"Type": "Notification", "Message": {"Records": []}}',
        '{"Type": "Notification"}',
        '{"Type": "Notification", "Message": "{oops"}',
    ):
        with pytest.raises(NotificationError):
            parse_body(body)


@pytest.mark.parametrize("body", [None, b'{"Records": []}', 42, {"Records": []}])
def test_non_string_bodies_are_rejected(body: Any) -> None:
    # Given / When / Then
    with pytest.raises(NotificationError, match="must be a string"):
        parse_body(body)


def test_one_bad_record_fails_the_whole_message() -> None:
    # Given a message with a good record and a bad one
    body = notification(s3_record("good.txt"), s3_record("bad.txt", size=-5))

    # When / Then the message as a whole is rejected (it is redelivered, then dead-lettered)
    with pytest.raises(NotificationError, match="non-negative"):
        parse_body(body)


def test_event_source_may_be_absent_and_s3_prefix_is_tolerated() -> None:
    # Given a record without eventSource and with an `s3:`-prefixed eventName
    document = json.loads(notification(s3_record("x.txt")))
    del document["Records"][0]["eventSource"]
    document["Records"][0]["eventName"] = "s3:ObjectCreated:Put"

    # When it is parsed
    event = only_event(json.dumps(document))

    # Then the prefix is stripped
    assert (event.action, event.event_name) == (Action.PUT, "ObjectCreated:Put")


# --- sizes ------------------------------------------------------------------------------


def test_s3s_maximum_object_size_is_ten_thousand_parts_of_five_gib() -> None:
    # Given S3's documented limit (UsingObjects: "50 TB"; actually 10,000 parts x 5 GiB)
    # Then the constant is exactly that many bytes: 53.7 TB, 48.8 TiB
    assert MAX_OBJECT_SIZE == 53_687_091_200_000
    assert 50 * 10**12 < MAX_OBJECT_SIZE < 49 * 2**40


@pytest.mark.parametrize("size", [0, 1, 5 * 2**40, 50 * 10**12, MAX_OBJECT_SIZE])
def test_every_size_an_s3_object_can_have_is_accepted(size: int) -> None:
    # Given a create whose size is possible (zero bytes up to the maximum, 5 TB and 50 TB)
    # When it is parsed
    event = only_event(notification(s3_record("big.bin", size=size)))

    # Then the size is kept exactly
    assert event.size == size


def test_an_impossible_size_fails_its_message_alone() -> None:
    # Given the poison message of issue 10 (a size of 10^38) next to a good one
    poison = notification(s3_record("poison.bin", size=10**38))
    good = notification(s3_record("good.bin", size=7))

    # When both are parsed
    # Then the poison one is rejected with the reason, and the good one is unaffected
    with pytest.raises(NotificationError, match="larger than S3's maximum object size"):
        parse_body(poison)
    assert only_event(good).size == 7


@settings(max_examples=200, deadline=None)
@given(size=st.integers(min_value=-(2**70), max_value=2**70))
def test_sizes_are_accepted_exactly_in_the_range_s3_allows(size: int) -> None:
    # Given any integer size
    body = notification(s3_record("k", size=size))

    # When it is parsed
    # Then it is accepted if and only if 0 <= size <= MAX_OBJECT_SIZE
    if 0 <= size <= MAX_OBJECT_SIZE:
        assert only_event(body).size == size
    else:
        with pytest.raises(NotificationError, match=r"s3\.object\.size"):
            parse_body(body)
