"""What every route of the read API shares: the stores, the bucket choice, metrics and checks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from aws_lambda_powertools.event_handler.api_gateway import BaseProxyEvent

from pipeline.core.model import bucket_problem
from pipeline.core.settings import Settings
from pipeline.core.tokens import TokenCodec
from pipeline.feed.service import ChangeFeed
from pipeline.read.api.schemas import BUCKET_MESSAGE, LIMIT_MESSAGE, MESSAGES, REPEATED_MESSAGE
from pipeline.read.listing import MAX_ROUNDS
from pipeline.read.ports import FileReader
from pipeline.totals.ports import TotalsReader

_LIMIT_TEXT = re.compile(r"[1-9][0-9]{0,3}")


class BadRequest(Exception):
    """A request parameter is invalid; the message is safe to show to the client."""


class FileNotFound(Exception):
    """No live file has the requested name."""


class UnknownBucket(Exception):
    """The `bucket` parameter names a bucket this API does not track (the message says so)."""


class MetricsSink(Protocol):
    """Where counters go (Powertools `Metrics` fits)."""

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        """Add `value` to the metric `name`."""
        ...


def is_text(value: str) -> bool:
    """Whether `value` is valid Unicode text (no lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeError:
        return False
    return True


def repeated_parameter(multi: dict[str, list[str]] | None) -> str | None:
    """The message for the first query parameter given more than once, if any.

    API Gateway passes every value (`multiValueQueryStringParameters`); the API takes one value
    per name and says so instead of picking one.
    """
    for name, values in sorted((multi or {}).items()):
        if len(values) > 1 and name in MESSAGES:
            return REPEATED_MESSAGE.format(name=name, count=len(values))
    return None


def check_query(event: BaseProxyEvent, *, limit: int | None = None, max_limit: int = 0) -> None:
    """Refuse a repeated parameter, and a `limit` written other than as plain digits in range.

    pydantic alone would also take "+5", " 5", "05" or "1_0".
    """
    repeated = repeated_parameter(event.multi_value_query_string_parameters)
    if repeated is not None:
        raise BadRequest(repeated)
    if limit is None:
        return
    raw_limit = (event.query_string_parameters or {}).get("limit")
    if raw_limit is not None and not _LIMIT_TEXT.fullmatch(raw_limit):
        raise BadRequest(LIMIT_MESSAGE)
    if not 1 <= limit <= max_limit:
        raise BadRequest(LIMIT_MESSAGE)


@dataclass
class ReadContext:
    """The stores and settings behind the routes, and the rules they share."""

    index: FileReader
    settings: Settings
    metrics: MetricsSink | None = None
    max_rounds: int = MAX_ROUNDS
    totals: TotalsReader | None = None
    feed: ChangeFeed | None = None
    known: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.codec = TokenCodec.for_table(self.settings.table_name, self.settings.page_token_secret)
        if self.settings.tracked_bucket:
            self.known.add(self.settings.tracked_bucket)

    def count(self, name: str, value: float = 1) -> None:
        """Add `value` to the metric `name` (when metrics are wired)."""
        if self.metrics is not None:
            self.metrics.add_metric(name=name, unit="Count", value=value)

    def choose_bucket(self, bucket: str | None) -> str:
        """The bucket a request reads: the one named (if tracked), else the default."""
        if not bucket:
            return self._default_bucket()
        if bucket_problem(bucket) is not None:
            raise BadRequest(BUCKET_MESSAGE)
        if bucket not in self.known:
            if not self.index.is_tracked(bucket):
                raise UnknownBucket(
                    f"Bucket {bucket!r} is not tracked by this API "
                    "(the bucket parameter must name a tracked bucket)"
                )
            self.known.add(bucket)  # buckets are never untracked: no need to ask again
        return bucket

    def _default_bucket(self) -> str:
        if self.settings.tracked_bucket:
            return self.settings.tracked_bucket
        tracked = self.index.tracked_buckets()
        if len(tracked) == 1:
            return tracked[0]
        if not tracked:
            raise UnknownBucket("No bucket is tracked yet: nothing to list")
        names = ", ".join(tracked[:5]) + (", ..." if len(tracked) > 5 else "")
        raise BadRequest(f"bucket is required: this API tracks {len(tracked)} buckets ({names})")
