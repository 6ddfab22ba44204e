"""Forced interleavings: hold one invocation's writes until another invocation is done.

`Gate` wraps an async DynamoDB client (aiobotocore on moto, or `InMemoryDynamo`): every
BatchExecuteStatement or BatchWriteItem call whose request mentions `marker` (a sequencer
or an eventTime of the older event) waits at the gate until `release` is set. `reached`
says the held invocation got there (it has read the key and decided to write). Both are
`asyncio.Event`s of one loop; `ThreadGate` does the same across threads (two handler
invocations on two threads, like two Lambda containers).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class Gate:
    """Holds writes mentioning `marker` until `release` is set (one event loop)."""

    def __init__(self, inner: Any, marker: str) -> None:
        self.inner, self.marker = inner, marker
        self.reached, self.release = asyncio.Event(), asyncio.Event()
        self.held = 0

    async def _hold(self, request: Any) -> None:
        if self.marker in str(request):
            self.held += 1
            self.reached.set()
            await self.release.wait()

    async def batch_execute_statement(self, **kwargs: Any) -> Any:
        await self._hold(kwargs.get("Statements"))
        return await self.inner.batch_execute_statement(**kwargs)

    async def batch_write_item(self, **kwargs: Any) -> Any:
        await self._hold(kwargs.get("RequestItems"))
        return await self.inner.batch_write_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class ThreadGate(Gate):
    """`Gate` with `threading.Event`s: the held invocation runs on another thread."""

    def __init__(self, inner: Any, marker: str) -> None:
        super().__init__(inner, marker)
        self.reached, self.release = threading.Event(), threading.Event()  # type: ignore[assignment]

    async def _hold(self, request: Any) -> None:
        if self.marker in str(request):
            self.held += 1
            self.reached.set()
            await asyncio.to_thread(self.release.wait, 30)
