"""Time budget, backoff and bookkeeping shared by the ingest service and its adapters."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Sleep = Callable[[float], Awaitable[None]]
"""How the adapters wait between retries (`asyncio.sleep`; a fake clock's in tests)."""


class Deadline:
    """A point in monotonic time after which no new attempt is started.

    `clock` is injectable so that tests can run a long outage against a fake clock.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._at = clock() + seconds

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self._at - self._clock()

    def shortened(self, seconds: float) -> Deadline:
        """A deadline `seconds` earlier than this one (on the same clock)."""
        earlier = Deadline(0, self._clock)
        earlier._at = self._at - seconds
        return earlier


async def real_sleep(seconds: float) -> None:
    """The production `Sleep`."""
    await asyncio.sleep(seconds)


@dataclass
class Backoff:
    """Capped exponential backoff with full jitter (AWS Architecture Blog)."""

    base_s: float = 0.025
    cap_s: float = 2.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """The sleep before retry number `attempt` (1-based): uniform in [0, min(cap, base*2^n)]."""
        return self.rng.uniform(0, min(self.cap_s, self.base_s * (2 ** min(attempt, 30))))


@dataclass
class OpStats:
    """What happened during one batch of calls: retries made and why keys failed."""

    retries: int = 0
    calls: int = 0
    throttles: int = 0
    """Calls DynamoDB answered with throttling (an error, or items/statements sent back):
    retried with backoff while the deadline allows, never a failure by themselves."""
    conflicts: int = 0
    """Conditional writes refused because the stored version changed since it was read."""
    failures: dict[str, str] = field(default_factory=dict)
    """Failed partition key -> short reason."""
    uncertain: set[str] = field(default_factory=set)
    """Keys whose conditional write was sent again after an attempt of unknown outcome (a
    timeout, a 5xx): that attempt may have applied, and the retry then conflicts with it."""
    confirmed_by_restamp: set[str] = field(default_factory=set)
    """Keys refused after an unanswered attempt and then found holding the version written
    (the feed's re-stamp): written, but perhaps by another invocation of the same event."""
    restamps: int = 0
    """Rows stamped again for the change feed (an answer came later than the stamping rule
    allows, or not at all: `pipeline.feed.positions`)."""
    landed_at: dict[str, float] = field(default_factory=dict)
    """Written partition key -> epoch seconds when DynamoDB acknowledged it (freshness)."""
