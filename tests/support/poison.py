"""Poison messages: every field of every supported message shape replaced by any JSON value.

The shapes are the ones ingest accepts: S3's own notification, the same inside an SNS envelope
(S3 -> SNS -> SQS), and S3 events routed through EventBridge (AWS's samples,
tests/events/eventbridge_*.json). `poisoned_bodies` picks one shape, then one to three of its
fields (any depth, the containers and the root included; in the SNS case inside the envelope or
inside the notification it carries) and replaces or removes each.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.support.s3events import s3_record

EVENTS = Path(__file__).resolve().parent.parent / "events"

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.text(min_size=300, max_size=2_500),
    st.integers(0xD800, 0xDFFF).map(chr),  # lone surrogates, legal as JSON \u escapes
    st.sampled_from(
        ["", "not a/valid bucket", "x" * 300, "null", "DeleteObject", "Object Deleted", "0"]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=10), children, max_size=4),
    ),
    max_leaves=10,
)
"""Any JSON value (NaN and Infinity too, which Python's json reads)."""


def _eventbridge(name: str, key: str, bucket: str, version_id: str | None) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EVENTS / f"eventbridge_{name}.json").read_text())
    document["detail"]["bucket"]["name"] = bucket
    document["resources"] = [f"arn:aws:s3:::{bucket}"]
    obj = document["detail"]["object"]
    obj["key"] = key
    if version_id is None:
        obj.pop("version-id", None)
    else:
        obj["version-id"] = version_id
    return document


def shapes(key: str, bucket: str, version_id: str) -> dict[str, dict[str, Any]]:
    """One valid document per supported shape, all naming `key` in `bucket`.

    The deletes carry `version_id`: on a versioned bucket ingest asks S3 (HeadObject) about
    them, so a poisoned bucket or key reaches the SDK too.
    """
    put = s3_record(key, bucket=bucket, sequencer="0055AED6DCD90281E5")
    delete = s3_record(
        key, event="ObjectRemoved:Delete", bucket=bucket, version_id=version_id, sequencer="0A"
    )
    deleted = _eventbridge("object_deleted", key, bucket, version_id)
    deleted["detail"]["deletion-type"] = "Permanently Deleted"
    return {
        "s3-put": {"Records": [put]},
        "s3-version-delete": {"Records": [delete]},
        "sns-s3-put": {"Records": [copy.deepcopy(put)]},
        "sns-s3-version-delete": {"Records": [copy.deepcopy(delete)]},
        "eventbridge-created": _eventbridge("object_created", key, bucket, None),
        "eventbridge-version-delete": deleted,
        "eventbridge-marker": _eventbridge("object_deleted", key, bucket, version_id),
        "eventbridge-restore": _eventbridge("restore_completed", key, bucket, None),
    }


def sns(message: str) -> dict[str, Any]:
    """The SNS envelope (raw delivery off) around an S3 notification."""
    return {
        "Type": "Notification",
        "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
        "TopicArn": "arn:aws:sns:ap-south-1:123456789012:s3-events",
        "Subject": "Amazon S3 Notification",
        "Message": message,
        "Timestamp": "2026-11-24T10:00:00.000Z",
        "SignatureVersion": "1",
    }


def paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document: the root, each container, each leaf."""
    found = [path]
    if isinstance(node, dict):
        for name, child in node.items():
            found += paths(child, (*path, name))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += paths(child, (*path, index))
    return found


def mutate(draw: st.DrawFn, document: Any) -> Any:
    """Replace (with any JSON value) or remove 1-3 places of `document`."""
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(document)))
        if not path:
            document = draw(json_values)
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return document


@st.composite
def poisoned_bodies(draw: st.DrawFn, key: str, bucket: str, version_id: str) -> str:
    """An SQS body: one supported shape with some of its fields replaced or removed."""
    name = draw(st.sampled_from(sorted(shapes(key, bucket, version_id))))
    document = shapes(key, bucket, version_id)[name]
    if not name.startswith("sns-"):
        return json.dumps(mutate(draw, document))
    if draw(st.booleans()):  # inside the notification the envelope carries
        return json.dumps(sns(json.dumps(mutate(draw, document))))
    return json.dumps(mutate(draw, sns(json.dumps(document))))
