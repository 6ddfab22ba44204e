"""S3 event notifications as AWS sends them, for moto 5.2 (the local stack's S3).

What stock moto 5.2 sends (moto/s3/notifications.py, moto/s3/models.py), and what AWS does
(../DESIGN.md, "S3 notifications" and "Versioned buckets"; AWS's event message structure
https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html):

- Every PUT/DELETE event: moto sends no `sequencer`; AWS does (ordering per key).
- ObjectCreated:* on a versioned bucket: moto sends no `versionId`; AWS sends the new one.
- Plain DELETE on a versioned bucket: moto sends nothing; AWS sends
  ObjectRemoved:DeleteMarkerCreated with the marker's versionId, the eTag of the empty MD5
  (d41d8cd98f00b204e9800998ecf8427e) and no size.
- DELETE ?versionId= on a versioned bucket: moto notifies only when no version is left, with
  the last version's size/eTag and no versionId; AWS sends ObjectRemoved:Delete with that
  versionId and no size/eTag, for every version (object or delete marker) removed.
- DELETE on an unversioned bucket: moto adds the size and eTag; AWS sends neither.
- CompleteMultipartUpload: moto sends ObjectCreated:Put and then
  ObjectCreated:CompleteMultipartUpload; AWS only the latter.
- Lifecycle expirations: moto never runs them; `expire` performs one and sends AWS's
  LifecycleExpiration:* event.

DeleteObjects (multi-delete) goes through `delete_object` in moto, so it is covered too.
Sequencers are 18 upper-case hex digits like AWS's samples ("0055AED6DCD90281E5"), from one
process-wide counter seeded by the clock: increasing for every key, so ordering is exact.

Concurrent PUTs of one key: moto computes a key's ETag lazily from its value buffer, and a
PUT that replaces the key closes the old key's buffer (`setlist` -> `dispose`). A PUT whose
key was replaced between its store and its notification (or its response) then read a
closed file: `ValueError: I/O operation on closed file`, a 500 and no event. `dispose` now
computes the ETag first, and both hold the key's lock, so a replaced key keeps its ETag.

Not changed: a plain DELETE of a key that does not exist creates no delete marker in moto
(AWS creates one and notifies); EventBridge delivery is moto's own.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from moto.core.utils import iso_8601_datetime_with_milliseconds
from moto.s3 import models, notifications

EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
"""The eTag S3 sends for a delete marker (the MD5 of no bytes)."""
DEFAULT_ACCOUNT_ID = "123456789012"
_ORDERED_PREFIXES = ("s3:ObjectCreated:", "s3:ObjectRemoved:", "s3:LifecycleExpiration:")

_APPLIED = False
_ORIGINAL: dict[str, Any] = {}
_suppressed: ContextVar[frozenset[str]] = ContextVar("suppressed", default=frozenset())
_removal_family: ContextVar[str] = ContextVar("removal_family", default="s3:ObjectRemoved")


class _Sequencer:
    """18-hex-digit sequencers from one counter: strictly increasing across the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> str:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return f"{self._last:018X}"


_sequencer = _Sequencer()


@dataclass(frozen=True)
class Notified:
    """What one event says about its object (None: the field is not sent)."""

    name: str
    size: int | None = None
    event_etag: str | None = None
    version_id: str | None = None
    sequencer: str | None = None

    @property
    def etag(self) -> str:
        """moto's quoted form, for moto's own EventBridge message."""
        return f'"{self.event_etag or ""}"'


def _sent_version(version_id: Any) -> str | None:
    """S3 sends a versionId only for versions of a versioning-enabled bucket."""
    return None if version_id in (None, "", "null") else str(version_id)


def _view(event_name: str, key: Any) -> Notified:
    """The event's view of a moto key (creates and the other event types moto sends)."""
    if isinstance(key, Notified):
        return key
    ordered = event_name.startswith(_ORDERED_PREFIXES)
    return Notified(
        name=key.name,
        size=getattr(key, "size", None),
        event_etag=str(getattr(key, "etag", "") or "").replace('"', "") or None,
        version_id=_sent_version(getattr(key, "version_id", None)),
        sequencer=_sequencer.next() if ordered else None,
    )


def _get_s3_event(
    event_name: str, bucket: Any, key: Any, notification_id: str
) -> dict[str, list[dict[str, Any]]]:
    """AWS's record shape (event structure version 2.1) for one notification."""
    view = _view(event_name, key)
    obj: dict[str, Any] = {"key": quote_plus(view.name)}
    if view.size is not None:
        obj["size"] = view.size
    if view.event_etag is not None:
        obj["eTag"] = view.event_etag
    if view.version_id is not None:
        obj["versionId"] = view.version_id
    if view.sequencer is not None:
        obj["sequencer"] = view.sequencer
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": bucket.region_name,
                "eventTime": iso_8601_datetime_with_milliseconds(),
                "eventName": event_name.removeprefix("s3:"),
                "userIdentity": {"principalId": "AWS:AIDAIEXAMPLELOCAL"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": "LOCAL", "x-amz-id-2": "LOCAL"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": notification_id,
                    "bucket": {
                        "name": bucket.name,
                        "ownerIdentity": {"principalId": "LOCAL"},
                        "arn": bucket.arn,
                    },
                    "object": obj,
                },
            }
        ]
    }


def _send_event(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
    """moto's `send_event`, with one view (one sequencer) per event and suppression."""
    name = str(getattr(event_name, "value", event_name))
    if name in _suppressed.get():
        return
    _ORIGINAL["send_event"](account_id, name, bucket, _view(name, key))


@contextlib.contextmanager
def _suppressing(*event_names: str) -> Iterator[None]:
    token = _suppressed.set(_suppressed.get() | frozenset(event_names))
    try:
        yield
    finally:
        _suppressed.reset(token)


_MOTO_REMOVALS = ("s3:ObjectRemoved:Delete", "s3:ObjectRemoved:DeleteMarkerCreated")


def _delete_object(
    self: Any,
    bucket_name: str,
    key_name: str,
    version_id: str | None = None,
    bypass: bool = False,
) -> tuple[bool, dict[str, Any]]:
    """moto's `delete_object`, notifying every deletion the way S3 does."""
    bucket = self.get_bucket(bucket_name)
    versioned = bucket.is_versioned
    before = {str(v.version_id) for v in bucket.keys.getlist(key_name, None) or []}
    with _suppressing(*_MOTO_REMOVALS):
        deleted, meta = _ORIGINAL["delete_object"](self, bucket_name, key_name, version_id, bypass)
    family = _removal_family.get()
    if not deleted:
        return deleted, meta
    if not versioned:
        if before:
            view = Notified(key_name, sequencer=_sequencer.next())
            _send_event(self.account_id, f"{family}:Delete", bucket, view)
    elif version_id is None:
        marker = meta.get("version-id")
        if marker:
            view = Notified(
                key_name, event_etag=EMPTY_MD5, version_id=marker, sequencer=_sequencer.next()
            )
            _send_event(self.account_id, f"{family}:DeleteMarkerCreated", bucket, view)
    else:
        after = {str(v.version_id) for v in bucket.keys.getlist(key_name, None) or []}
        if str(version_id) in before and str(version_id) not in after:
            view = Notified(key_name, version_id=str(version_id), sequencer=_sequencer.next())
            _send_event(self.account_id, f"{family}:Delete", bucket, view)
    return deleted, meta


def _complete_multipart_upload(self: Any, *args: Any, **kwargs: Any) -> Any:
    """moto's version, without the extra ObjectCreated:Put it sends before the real event."""
    with _suppressing("s3:ObjectCreated:Put"):
        return _ORIGINAL["complete_multipart_upload"](self, *args, **kwargs)


class LifecycleError(ValueError):
    """S3 Lifecycle would never perform this expiration."""


def expire(
    bucket_name: str,
    key_name: str,
    *,
    version_id: str | None = None,
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> str | None:
    """Do what an S3 Lifecycle expiration does on the embedded moto, and notify like AWS.

    - No `version_id` (rule `Expiration`): on an unversioned bucket the object is deleted
      (`LifecycleExpiration:Delete`); on a versioned one a delete marker becomes current
      (`LifecycleExpiration:DeleteMarkerCreated`; nothing if a marker is current already).
    - `version_id` of a noncurrent version (`NoncurrentVersionExpiration`), or of a delete
      marker that is the key's only version (`ExpiredObjectDeleteMarker`): that version is
      removed permanently (`LifecycleExpiration:Delete` with its versionId).

    Returns the version id the event names (the new marker's, or `version_id`), else None.
    Raises `LifecycleError` for anything else (e.g. the current version by id).
    """
    backend = models.s3_backends[account_id]["aws"]
    bucket = backend.get_bucket(bucket_name)
    history = list(bucket.keys.getlist(key_name, None) or [])
    if not history:
        raise LifecycleError(f"no object {key_name!r} in {bucket_name!r} to expire")
    current = history[-1]
    is_marker = isinstance(current, models.FakeDeleteMarker)
    if version_id is None:
        if bucket.is_versioned and is_marker:
            return None  # Expiration leaves a current delete marker alone
    elif str(current.version_id) == str(version_id):
        if not (is_marker and len(history) == 1):
            raise LifecycleError(
                "Lifecycle removes a current version by id only when it is a delete marker "
                "with no other version left (ExpiredObjectDeleteMarker)"
            )
    elif str(version_id) not in {str(v.version_id) for v in history}:
        raise LifecycleError(f"{key_name!r} has no version {version_id!r}")
    token = _removal_family.set("s3:LifecycleExpiration")
    try:
        _, meta = backend.delete_object(bucket_name, key_name, version_id=version_id)
    finally:
        _removal_family.reset(token)
    if version_id is not None:
        return version_id
    return str(meta["version-id"]) if bucket.is_versioned and meta.get("version-id") else None


def _etag(self: Any) -> str:
    """moto's `FakeKey.etag`, under the key's lock (no read of a buffer being closed)."""
    with self.lock:
        return str(_ORIGINAL["etag"](self))


def _dispose(self: Any, garbage: bool = False) -> None:
    """moto's `FakeKey.dispose`, keeping the ETag: a replaced key's PUT still notifies."""
    with self.lock:
        if getattr(self, "_etag", None) is None:
            with contextlib.suppress(ValueError):  # closed already
                _ORIGINAL["etag"](self)
        _ORIGINAL["dispose"](self, garbage)


def apply() -> None:
    """Install the patch into moto (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    _ORIGINAL.update(
        send_event=notifications.send_event,
        delete_object=models.S3Backend.delete_object,
        complete_multipart_upload=models.S3Backend.complete_multipart_upload,
        etag=models.FakeKey.etag.fget,  # type: ignore[attr-defined]
        dispose=models.FakeKey.dispose,
    )
    models.FakeKey.etag = property(_etag)  # type: ignore[assignment,method-assign]
    models.FakeKey.dispose = _dispose  # type: ignore[method-assign]
    notifications._get_s3_event = _get_s3_event
    notifications.send_event = _send_event  # models.py calls it through the module
    models.S3Backend.delete_object = _delete_object  # type: ignore[method-assign]
    models.S3Backend.complete_multipart_upload = _complete_multipart_upload  # type: ignore[method-assign]
    _APPLIED = True
