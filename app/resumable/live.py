"""One resumable answer in flight in this worker: the producer.

The relay's frames (app/streaming/relay.py) are read here in a task of the answer's own, so that
a reader leaving ends nothing. Each frame goes at once to the reader in this process (the request
that asked), and to the worker's writer (writer.py), which stores it with the frames of every
other answer a flush later: the live reader never waits on Redis.

The answer ends on its own, or when told: a stop (from any worker), no reader for the grace
period, the shutdown's grace running out. Then the relay is cancelled, which closes the upstream
call, and the readers get the format's closing frames.
"""

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from typing import Literal

import structlog

from app.observability.metrics import RESUME_STORE_ERRORS
from app.observability.summary import ChatSummary
from app.resumable.store import Entry, ResumeStore, StoreUnavailable
from app.resumable.writer import StoreWriter

log = structlog.get_logger(__name__)

# Why an answer was ended before its end: the summary's outcome, and the frames readers get.
Ending = Literal["stopped", "abandoned", "shutdown", "client_disconnected"]

# Frames waiting for a Redis that does not keep up; past this the answer is no longer stored.
MAX_PENDING_BYTES = 1 << 20
# How often an answer without a reader here asks whether one is attached elsewhere.
READER_CHECK_INTERVAL = 1.0


class LiveAnswer:
    def __init__(
        self,
        stream_id: str,
        frames: AsyncGenerator[bytes, None],
        store: ResumeStore,
        writer: StoreWriter,
        summary: ChatSummary,
        *,
        grace: float,
        closing_frames: Callable[[Ending], bytes],
        last_event_id: Callable[[], int],
        meta: dict[str, str],
        chat_id: str | None,
        on_done: Callable[["LiveAnswer"], None],
    ) -> None:
        self.stream_id = stream_id
        self.chat_id = chat_id
        self._frames = frames
        self._store = store
        self._writer = writer
        self._summary = summary
        self._grace = grace
        self._closing_frames = closing_frames
        self._last_event_id = last_event_id
        self._meta: dict[str, str] | None = meta  # written with the first entry
        self._on_done = on_done
        # The request's log context, for what happens later on the worker's writer task.
        self._log = log.bind(**structlog.contextvars.get_contextvars())
        loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = loop.create_future()
        summary.answer_done = self.done
        summary.resumable = True
        self._ending: Ending | None = None
        self._finished = False
        # The reader in this process
        self._local: list[bytes] = []
        self._local_waiter: asyncio.Future[None] | None = None
        self._local_attached = True
        # The store
        self.storing = True
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._end_taken = False
        self._written: asyncio.Future[None] = loop.create_future()  # the last entry, or never
        # The first entry, or storing given up: until then the reader is sent nothing, so that the
        # stream id in its first frame finds the answer wherever the reader comes back at once.
        self._first_written: asyncio.Future[None] = loop.create_future()
        self._reader_watch: asyncio.Task[None] | None = None
        self._task = asyncio.ensure_future(self._run())

    # How it ends

    def end(self, ending: Ending) -> None:
        """Ends the answer now (closing the upstream call), unless it has ended already."""
        if self._finished or self._ending is not None:
            return
        self._ending = ending
        if ending != "client_disconnected":
            self._summary.mark_cancelled_for(ending)
        self._task.cancel()

    async def _run(self) -> None:
        try:
            try:
                async for frame in self._frames:
                    self._publish(frame)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._ending is None or task is None:
                    raise  # not ours: the event loop is going away
                task.uncancel()
                if self._ending != "client_disconnected":
                    self._publish(self._closing_frames(self._ending))
        finally:
            self._finished = True
            self._wake_local()
            if self._reader_watch is not None:
                self._reader_watch.cancel()
            try:
                if self.storing:
                    self._writer.due(self, urgent=True)
                    await asyncio.wait([self._written])  # bounded by the store's time-out
            finally:
                self._on_done(self)
                if not self.done.done():
                    self.done.set_result(None)

    # The hot path: once per upstream read

    def _publish(self, frame: bytes) -> None:
        if self._local_attached:
            self._local.append(frame)
            self._wake_local()
        if self.storing:
            self._pending.append(frame)
            self._pending_bytes += len(frame)
            if self._pending_bytes > MAX_PENDING_BYTES:
                self._stop_storing("backlog", f"over {MAX_PENDING_BYTES} bytes waiting for Redis")
            elif len(self._pending) == 1:
                self._writer.due(self, urgent=self._meta is not None)

    def _wake_local(self) -> None:
        if (waiter := self._local_waiter) is not None and not waiter.done():
            waiter.set_result(None)

    # The reader in this process

    async def local_frames(self) -> AsyncGenerator[bytes, None]:
        """The frames for the request that asked, as they come; its leaving ends nothing."""
        loop = asyncio.get_running_loop()
        try:
            if not self._first_written.done():
                await self._first_written  # one Redis round trip, before the model's first token
            while True:
                if self._local:
                    frames, self._local = self._local, []
                    yield b"".join(frames)
                elif self._finished:
                    return
                else:
                    self._local_waiter = loop.create_future()
                    await self._local_waiter
        finally:
            self._local_waiter = None
            self._local_reader_left()

    def _local_reader_left(self) -> None:
        self._local_attached = False
        self._local.clear()
        if self._finished:
            return
        if not self.storing:
            self.end("client_disconnected")  # nobody can resume it: as without resumption
            return
        self._reader_watch = asyncio.ensure_future(self._end_without_readers())

    async def _end_without_readers(self) -> None:
        """Goes on while a resumed reader is attached anywhere, or for the grace period after the
        last one left; then ends the answer."""
        deadline = time.monotonic() + self._grace
        while True:
            await asyncio.sleep(max(0.0, min(READER_CHECK_INTERVAL, deadline - time.monotonic())))
            try:
                if await self._store.has_readers(self.stream_id):
                    deadline = time.monotonic() + self._grace
                    continue
            except StoreUnavailable:
                pass  # the writer finds out and says so
            if not self.storing:
                self.end("client_disconnected")
                return
            if time.monotonic() >= deadline:
                self.end("abandoned")
                return

    # The store, through the worker's writer

    def take_entry(self) -> Entry | None:
        """The frames not yet written, as one entry (the last one once the answer is over)."""
        if not self.storing or self._end_taken or (not self._pending and not self._finished):
            return None
        self._end_taken = self._finished
        frames, self._pending = self._pending, []
        self._pending_bytes = 0
        meta, self._meta = self._meta, None
        return Entry(
            self.stream_id,
            b"".join(frames),
            self._last_event_id(),
            begin=meta,
            chat_id=self.chat_id,
            end=self._finished,
        )

    def written(self, entry: Entry, resumed: int | None) -> None:
        if not self._first_written.done():
            self._first_written.set_result(None)
        if entry.end:
            self._summary.resumed_readers = resumed or 0
            self._written.set_result(None)

    def not_written(self, reason: str) -> None:
        self._stop_storing("append", reason)

    def _stop_storing(self, operation: str, reason: str) -> None:
        """Redis failed this answer: it goes on for its live reader, unresumable."""
        if not self.storing:
            return
        self.storing = False
        self._summary.resumable = False
        self._pending.clear()
        for written in (self._first_written, self._written):
            if not written.done():
                written.set_result(None)
        RESUME_STORE_ERRORS.labels(operation).inc()
        self._log.warning("resume_store_unavailable", operation=operation, error=reason, resumable=False)
        if not self._local_attached:
            self.end("client_disconnected")
