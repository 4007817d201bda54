"""The registry of the event streams open in a worker.

Keep-alive pings and the end of shutdown's grace period are the worker's business, not each
stream's: one `OpenStreams` task per worker looks for streams that sent nothing for a ping
interval, and one ends the streams still open when the grace period runs out, with a farewell
frame. Per-stream tasks for those were half of a stream's tasks and a few KiB of its memory.
"""

import asyncio
from typing import TYPE_CHECKING

from app.lifecycle import Draining

if TYPE_CHECKING:
    from app.api.sse import EventStreamResponse


class OpenStreams:
    """The event streams open in this worker."""

    def __init__(self, ping_interval: float, draining: Draining) -> None:
        self._ping_interval = ping_interval
        self._draining = draining
        self._streams: set[EventStreamResponse] = set()
        self._grace_expired = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.ensure_future(self._ping_idle_streams()),
            asyncio.ensure_future(self._end_at_grace_expiry()),
        ]

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def add(self, stream: "EventStreamResponse") -> None:
        self._streams.add(stream)
        if self._grace_expired:
            stream.end_for_shutdown()

    def discard(self, stream: "EventStreamResponse") -> None:
        self._streams.discard(stream)

    async def _ping_idle_streams(self) -> None:
        while True:
            await asyncio.sleep(self._ping_interval)
            for stream in list(self._streams):
                stream.ping_if_idle()

    async def _end_at_grace_expiry(self) -> None:
        await self._draining.grace_expired()
        self._grace_expired = True
        for stream in list(self._streams):
            stream.end_for_shutdown()
