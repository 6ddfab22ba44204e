"""The adapters' one retry loop for DynamoDB calls of many items: unprocessed items and
retryable errors are sent again with capped exponential backoff and full jitter while the
deadline allows; a ValidationException on a multi-item call is bisected until the item that
caused it stands alone. Whatever cannot be done lands in `OpStats.failures`; nothing raises."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import aiohttp
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from pipeline.adapters.dynamo.errors import (
    THROTTLE_CODES,
    error_code,
    is_transient,
    surely_not_applied,
)
from pipeline.core.retry import Backoff, Deadline, OpStats, Sleep

SPLITTABLE_CODES = frozenset({"ValidationException", "ItemCollectionSizeLimitExceededException"})
T = TypeVar("T")


def is_retryable(error: BaseException) -> bool:
    """Throttling, 5xx, and the network failing: connection refused/reset, connect and read
    timeouts (botocore's ConnectionError is not an HTTPClientError), aiohttp errors."""
    if isinstance(error, ClientError):
        return is_transient(error)
    return isinstance(
        error,
        HTTPClientError
        | BotocoreConnectionError
        | aiohttp.ClientError
        | asyncio.TimeoutError
        | ConnectionError,
    )


class RetryingCalls:
    """Runs chunked calls under a concurrency limit, retrying them (see the module)."""

    def __init__(self, slots: asyncio.Semaphore, backoff: Backoff, sleep: Sleep) -> None:
        self._slots = slots
        self._backoff = backoff
        self._sleep = sleep

    async def run(
        self,
        pending: list[T],
        call: Callable[[list[T]], Awaitable[list[T]]],
        key_of: Callable[[T], str],
        deadline: Deadline,
        stats: OpStats,
        unknown: set[str] | None = None,
    ) -> None:
        """Call until nothing is pending, retrying and isolating failures; never raises.

        `unknown` collects the keys of a call retried after an error that does not say
        whether DynamoDB applied it (writes only: a retried write may conflict with itself)."""
        attempt = 0
        while pending:
            if deadline.remaining() <= 0:
                self._fail(pending, key_of, stats, "out of time before DynamoDB accepted it")
                return
            try:
                async with self._slots:
                    stats.calls += 1
                    left = await call(pending)
            except Exception as error:
                if is_retryable(error):
                    left = pending
                    reason = _describe(error)
                    if isinstance(error, ClientError) and error_code(error) in THROTTLE_CODES:
                        stats.throttles += 1
                    if unknown is not None and not surely_not_applied(error):
                        unknown.update(key_of(entry) for entry in pending)
                elif isinstance(error, ClientError) and error_code(error) in SPLITTABLE_CODES:
                    if len(pending) == 1:
                        self._fail(pending, key_of, stats, _describe(error))
                        return
                    middle = len(pending) // 2
                    await asyncio.gather(
                        self.run(pending[:middle], call, key_of, deadline, stats, unknown),
                        self.run(pending[middle:], call, key_of, deadline, stats, unknown),
                    )
                    return
                else:
                    self._fail(pending, key_of, stats, _describe(error))
                    return
            else:
                reason = "unprocessed (throttled)"
                if left:
                    stats.throttles += 1
            if not left:
                return
            pending = left
            attempt += 1
            delay = self._backoff.delay(attempt)
            if delay >= deadline.remaining():
                self._fail(pending, key_of, stats, f"{reason}; no time left to retry")
                return
            stats.retries += 1
            await self._sleep(delay)

    @staticmethod
    def _fail(pending: Sequence[T], key_of: Callable[[T], str], stats: OpStats, why: str) -> None:
        for entry in pending:
            stats.failures[key_of(entry)] = why


def _describe(error: BaseException) -> str:
    if isinstance(error, ClientError):
        message = str(error.response.get("Error", {}).get("Message", ""))[:200]
        return f"{error_code(error)}: {message}"
    return type(error).__name__
