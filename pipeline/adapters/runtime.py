"""One event loop and one aioboto3 client per Lambda container, reused while warm.

Lambda handlers stay synchronous (Powertools' advice): calling `asyncio.run` per invocation
would close the loop the pooled client belongs to ("Event loop is closed" on the next warm
invocation, aiobotocore#807). Instead each thread keeps a loop for its whole life, and the
client opened in it. In Lambda that is one loop per container; the local stack's pollers run
handlers on several threads at once, each thread behaving like its own container.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, Generic, TypeVar

import aioboto3
from botocore.config import Config

from pipeline.core.settings import Settings

T = TypeVar("T")
C = TypeVar("C")


def client_config(max_pool_connections: int) -> Config:
    """Botocore config for the ingest client.

    Retries are ours (backoff and isolation inside the writer). Client-side parameter
    validation is off: the adapter builds every request itself and checks DynamoDB's limits
    before sending, and botocore's validation was 37% of a 10,000-record invocation's CPU
    (see docs/performance.md).
    """
    return Config(
        max_pool_connections=max_pool_connections,
        parameter_validation=False,
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=10,
        tcp_keepalive=True,
    )


class _ThreadState(threading.local):
    loop: asyncio.AbstractEventLoop | None = None
    stack: AsyncExitStack | None = None
    value: Any = None


class LoopRuntime(Generic[C]):
    """Runs coroutines on a per-thread, long-lived loop with a per-thread long-lived resource.

    `factory(stack)` opens the resource (e.g. an aioboto3 client) inside the loop, entering
    its context managers on `stack`; it runs once per thread.
    """

    def __init__(self, factory: Callable[[AsyncExitStack], Awaitable[C]]) -> None:
        self._factory = factory
        self._state = _ThreadState()
        atexit.register(self.close)

    def run(self, work: Callable[[C], Awaitable[T]]) -> T:
        """Run `work(resource)` to completion on this thread's loop."""
        state = self._state
        if state.loop is None or state.loop.is_closed():
            state.loop = asyncio.new_event_loop()
            state.stack = None
            state.value = None
        loop = state.loop
        if state.stack is None:
            stack = AsyncExitStack()
            state.value = loop.run_until_complete(self._factory(stack))
            state.stack = stack
        return loop.run_until_complete(work(state.value))

    def close(self) -> None:
        """Close the resource and loop of the calling thread."""
        state = self._state
        if state.loop is not None and not state.loop.is_closed():
            if state.stack is not None:
                with contextlib.suppress(Exception):  # best effort at shutdown
                    state.loop.run_until_complete(state.stack.aclose())
            state.loop.close()
        state.loop, state.stack, state.value = None, None, None


async def open_dynamodb_client(
    stack: AsyncExitStack, settings: Settings, session: aioboto3.Session | None = None
) -> Any:
    """Open an aioboto3 DynamoDB client sized for the writer's concurrency, closed by `stack`."""
    return await stack.enter_async_context(
        (session or aioboto3.Session()).client(
            "dynamodb",
            region_name=settings.region,
            endpoint_url=settings.endpoint_url,
            config=client_config(max(10, settings.write_concurrency + 4)),
        )
    )


async def open_s3_client(
    stack: AsyncExitStack, settings: Settings, session: aioboto3.Session | None = None
) -> Any:
    """Open an aioboto3 S3 client for the ingest side's HeadObject calls, closed by `stack`."""
    return await stack.enter_async_context(
        (session or aioboto3.Session()).client(
            "s3",
            region_name=settings.region,
            endpoint_url=settings.s3_endpoint_url,
            config=client_config(max(10, settings.write_concurrency + 4)),
        )
    )
