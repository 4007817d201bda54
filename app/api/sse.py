"""A lean text/event-stream response.

Frames arrive already encoded, so the per-token cost is one ASGI send. Two helpers run beside
the sender: one sends a keep-alive comment when nothing was sent for a ping interval, the other
waits for the client to leave and then cancels the sender, which closes the frame source (and
with it the upstream request) at once instead of at the next token. On shutdown, a stream still
open when the grace period ends is closed the same way and ends with a farewell frame.

sse-starlette does the same but, measured, costs a cancel scope and a lock per frame, and by
default ends every open stream as soon as the server is asked to stop, while we want streams in
flight to finish within the graceful shutdown period.
"""

import asyncio
from collections.abc import AsyncGenerator

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.lifecycle import Draining

PING_FRAME = b": ping\n\n"


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        frames: AsyncGenerator[bytes, None],
        *,
        ping_interval: float,
        draining: Draining,
        farewell: bytes,
    ) -> None:
        # No super().__init__(): it would set a Content-Length for an empty body.
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._frames = frames
        self._ping_interval = ping_interval
        self._draining = draining
        self._farewell = farewell  # sent when shutdown's grace period ends the stream
        self._sent = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        sender = asyncio.ensure_future(self._send_frames(send))
        disconnected = asyncio.ensure_future(self._wait_for_disconnect(receive))
        shutting_down = asyncio.ensure_future(self._draining.grace_expired())
        pinger = asyncio.ensure_future(self._ping(send))
        try:
            await asyncio.wait([sender, disconnected, shutting_down], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sender, disconnected, shutting_down, pinger):
                task.cancel()
            # Let the frame source run its cleanup (closing upstream) before returning.
            await asyncio.gather(sender, disconnected, shutting_down, pinger, return_exceptions=True)
        if sender.cancelled() and not shutting_down.cancelled():
            # The grace period ended it: say so, rather than let the worker's kill cut it.
            await send({"type": "http.response.body", "body": self._farewell, "more_body": False})
        if not sender.cancelled() and (error := sender.exception()) is not None:
            raise error

    async def _send_frames(self, send: Send) -> None:
        try:
            async for frame in self._frames:
                self._sent += 1
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client left while we were writing; the disconnect watcher reports it
        finally:
            await self._frames.aclose()

    async def _wait_for_disconnect(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def _ping(self, send: Send) -> None:
        seen = -1
        while True:
            await asyncio.sleep(self._ping_interval)
            if self._sent == seen:
                await send({"type": "http.response.body", "body": PING_FRAME, "more_body": True})
            seen = self._sent
