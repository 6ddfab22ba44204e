"""The batch's messages: parsed into events (a bad message fails alone), and collapsed to the
newest event per row."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.model import FileEvent, bucket_problem, compare_versions
from pipeline.ingest.events import NotificationError, parse_body

logger = logging.getLogger(__name__)


@dataclass
class Parsed:
    """The events of a batch's messages, with the messages that failed and what was skipped."""

    pairs: list[tuple[str, FileEvent]] = field(default_factory=list)
    """(messageId, event) of every event parsed, in message order."""
    failed: set[str] = field(default_factory=set)
    """Messages that are not S3 notifications of a valid bucket."""
    skipped: int = 0
    """Records that change nothing (ignored event types, S3's TestEvent)."""


def parse_messages(records: Sequence[Mapping[str, Any]]) -> Parsed:
    """Parse every SQS record's body; a malformed one is logged (never its content) and fails
    alone."""
    parsed = Parsed()
    for record in records:
        message_id = message_id_of(record)
        try:
            notification = parse_body(record.get("body"))
        except Exception as error:  # NotificationError, or a parser bug: this message alone
            reason = str(error) if isinstance(error, NotificationError) else bug(error)
            logger.warning(
                "Rejected message: %s", reason, extra={"message_id": message_id, "reason": reason}
            )
            parsed.failed.add(message_id)
            continue
        problem = next(
            (p for e in notification.events if (p := bucket_problem(e.bucket)) is not None), None
        )
        if problem is not None:  # a row's key is "<bucket>/<key>": the bucket must be a name
            logger.warning(
                "Rejected message: %s",
                problem,
                extra={"message_id": message_id, "reason": problem},
            )
            parsed.failed.add(message_id)
            continue
        parsed.skipped += notification.skipped + (1 if notification.test_event else 0)
        parsed.pairs.extend((message_id, event) for event in notification.events)
    return parsed


@dataclass
class Latest:
    event: FileEvent
    message_ids: set[str]


def _newer_in_batch(candidate: FileEvent, current: FileEvent) -> bool:
    """Within one batch, ties after sequencer and eventTime go to the later arrival."""
    order = compare_versions(
        candidate.sequencer, candidate.event_time, current.sequencer, current.event_time
    )
    return order >= 0


def collapse(events: Iterable[tuple[str, FileEvent]]) -> dict[str, Latest]:
    """Newest event per row (`FileEvent.key`: bucket and key), with every message id that
    carried an event for that row: the same key in two buckets is two rows."""
    latest: dict[str, Latest] = {}
    for message_id, event in events:
        entry = latest.get(event.key)
        if entry is None:
            latest[event.key] = Latest(event, {message_id})
            continue
        entry.message_ids.add(message_id)
        if _newer_in_batch(event, entry.event):
            entry.event = event
    return latest


def bug(error: BaseException) -> str:
    """An unexpected error, described without its message (which may quote input content)."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"internal error {type(error).__name__}{where}; SQS delivers the message again"


def message_id_of(record: Mapping[str, Any]) -> str:
    """The SQS messageId of a Lambda SQS record; without one the batch cannot be reported."""
    message_id = record.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        raise ValueError("SQS record without a messageId: not a Lambda SQS event")
    return message_id
