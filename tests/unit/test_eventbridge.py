"""S3 events routed through EventBridge: AWS's documented samples in, `FileEvent`s out.

The samples in tests/events/eventbridge_*.json are AWS's, from the S3 user guide page
"EventBridge event message structure".
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.model import Action, FileEvent
from pipeline.ingest.eventbridge import EventBridgeError, parse_event
from pipeline.ingest.events import NotificationError, parse_body
from tests.support.s3events import notification, s3_record

EVENTS = Path(__file__).resolve().parent.parent / "events"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EVENTS / f"eventbridge_{name}.json").read_text())
    return document


def body(document: dict[str, Any]) -> str:
    """The SQS message body an EventBridge rule with an SQS target delivers: the event."""
    return json.dumps(document)


def test_object_created_sample() -> None:
    parsed = parse_body(body(load("object_created")))
    assert parsed.events == (
        FileEvent(
            filename="example-key",
            bucket="DOC-EXAMPLE-BUCKET1",
            action=Action.PUT,
            event_name="ObjectCreated:Put",
            event_time="2021-11-12T00:00:00.000Z",  # stored like S3 notifications: ms
            size=5,
            etag="b1946ac92492d2347c6235b4d2611184",
            sequencer="617F08299329D189",  # uppercase, like S3 notifications
            version_id="IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
        ),
    )
    assert parsed.skipped == 0


def test_object_deleted_sample_is_a_delete_marker() -> None:
    (event,) = parse_body(body(load("object_deleted"))).events
    assert event.action is Action.DELETE
    assert event.event_name == "ObjectRemoved:DeleteMarkerCreated"
    assert (event.size, event.etag) == (None, None)  # the empty MD5 of a marker is not kept
    assert event.sequencer == "617F0837B476E463"
    assert event.version_id == "1QW9g1Z99LUNbvaaYVpW9xDlOLU.qxgF"


def test_lifecycle_expiration_sample() -> None:
    (event,) = parse_body(body(load("lifecycle_expiration"))).events
    assert event.action is Action.DELETE
    assert event.event_name == "LifecycleExpiration:DeleteMarkerCreated"


def test_permanent_delete_of_an_unversioned_object() -> None:
    document = load("object_deleted")
    document["detail"]["deletion-type"] = "Permanently Deleted"
    del document["detail"]["object"]["version-id"]
    (event,) = parse_body(body(document)).events
    assert event.event_name == "ObjectRemoved:Delete" and event.version_id is None


def test_restore_completed_changes_nothing_and_is_skipped() -> None:
    parsed = parse_body(body(load("restore_completed")))
    assert parsed.events == () and parsed.skipped == 1


@pytest.mark.parametrize(
    ("reason", "name"),
    [
        ("PutObject", "ObjectCreated:Put"),
        ("POST Object", "ObjectCreated:Post"),
        ("CopyObject", "ObjectCreated:Copy"),
        ("CompleteMultipartUpload", "ObjectCreated:CompleteMultipartUpload"),
    ],
)
def test_created_reasons_map_to_s3_event_names(reason: str, name: str) -> None:
    document = load("object_created")
    document["detail"]["reason"] = reason
    (event,) = parse_body(body(document)).events
    assert event.event_name == name


@pytest.mark.parametrize("key", ["red flower.jpg", "a+b", "dir/%41", "файл 🙂.txt"])
def test_keys_are_taken_as_they_are(key: str) -> None:
    document = load("object_created")
    document["detail"]["object"]["key"] = key
    (event,) = parse_body(body(document)).events
    assert event.filename == key


def mutate(path: list[str], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(load("object_created"))
    target = document
    for step in path[:-1]:
        target = target[step]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["source"], "aws.ec2", "source must be aws.s3"),
        (["detail-type"], "Object Teleported", "unsupported detail-type"),
        (["detail"], "nope", "detail must be an object"),
        (["detail", "object"], KeyError, "no bucket or object"),
        (["detail", "object", "key"], "", "detail.object.key must be a non-empty string"),
        (["detail", "object", "size"], -1, "non-negative integer"),
        (["detail", "object", "size"], True, "non-negative integer"),
        (["detail", "object", "size"], 10**38, "larger than S3's maximum object size"),
        (["detail", "object", "size"], 1.5, "detail.object.size must be a non-negative integer"),
        (["detail", "object", "sequencer"], "not-hex", "sequencer"),
        (["detail", "object", "sequencer"], "A" * 65, "sequencer"),
        (["detail", "bucket", "name"], 7, "detail.bucket.name"),
        (["time"], None, "time must be"),
    ],
)
def test_malformed_events_are_rejected_with_a_clear_message(
    path: list[str], value: Any, message: str
) -> None:
    with pytest.raises(NotificationError, match=message):
        parse_body(body(mutate(path, value)))


def test_unknown_deletion_type_is_rejected() -> None:
    document = load("object_deleted")
    document["detail"]["deletion-type"] = "Vaporised"
    with pytest.raises(EventBridgeError, match="deletion-type"):
        parse_event(document)


def test_rows_from_both_shapes_store_the_same_time_and_sequencer_forms() -> None:
    # Given the same put as S3's notification and as EventBridge's event (AWS's samples: ms
    # and uppercase sequencer in the first, whole seconds and lowercase in the second)
    s3 = notification(
        s3_record("k", sequencer="617F08299329D189", event_time="2021-11-12T00:00:00.000Z")
    )
    bridge = load("object_created")

    # When parsed
    (from_s3,) = parse_body(s3).events
    (from_bridge,) = parse_body(body(bridge)).events

    # Then both rows carry the same forms
    assert from_s3.event_time == from_bridge.event_time == "2021-11-12T00:00:00.000Z"
    assert from_s3.sequencer == from_bridge.sequencer == "617F08299329D189"
