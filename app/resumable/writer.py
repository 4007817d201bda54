"""The worker's one writer to the store: every answer's new frames, a flush apart, in one
pipeline.

An answer hands its frames over and is held up once only: its reader's first frame, which
carries the stream id, waits for the answer's first entry. One XADD per event cost 1.6× the CPU
per token of no resumption in the issue's prototype; one write per answer per upstream read
still costs a round trip and a task wake-up each. Gathering every answer of the worker into one
pipeline per `FLUSH_INTERVAL` makes Redis's share of a token at most one command and a share of
one pipeline, whatever the number of streams, at the price of a resumed reader being at most
that far behind the live one. Figures: docs/performance.md, "Resumable answers (issue #18)".
"""

import asyncio
import contextlib
from typing import Protocol

import structlog

from app.resumable.store import Entry, ResumeStore, StoreUnavailable

log = structlog.get_logger(__name__)

# A resumed reader is at most this far behind the live one. A pipeline costs the worker about
# 115 µs plus 15 µs a command (redis-py with hiredis, measured): at 10 ms rather than 20 ms a
# resumed reader's first event came at p99 37 ms rather than 54 ms, for no CPU per token that
# the benchmark could tell apart from its noise.
FLUSH_INTERVAL = 0.01


class Writes(Protocol):
    """An answer, as the writer sees it."""

    def take_entry(self) -> Entry | None: ...

    def written(self, entry: Entry, resumed: int | None) -> None: ...

    def not_written(self, reason: str) -> None: ...


class StoreWriter:
    def __init__(self, store: ResumeStore) -> None:
        self._store = store
        self._due: dict[Writes, None] = {}  # insertion-ordered set
        self._wake: asyncio.Future[None] | None = None
        self._gathering = False  # waiting for more to write: only an urgent entry wakes it
        self._urgent = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def due(self, answer: Writes, *, urgent: bool = False) -> None:
        """`answer` has frames to write; `urgent`: its first or last, written without the wait."""
        self._due[answer] = None
        self._urgent = self._urgent or urgent
        if (wake := self._wake) is not None and not wake.done() and (urgent or not self._gathering):
            wake.set_result(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._due:
                self._wake = loop.create_future()
                await self._wake
                continue
            if not self._urgent:
                # What comes meanwhile joins this write. An answer's first entry cuts the wait
                # short: its reader's first frame waits for it (measured: +10 ms first-token p50).
                self._wake = loop.create_future()
                self._gathering = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake, FLUSH_INTERVAL)
                self._gathering = False
            self._urgent = False
            due, self._due = self._due, {}
            writes = [(answer, entry) for answer in due if (entry := answer.take_entry()) is not None]
            if not writes:
                continue
            try:
                resumed = await self._store.append([entry for _, entry in writes])
            except Exception as exc:  # never let a failure stop the writer: answers wait on it
                if not isinstance(exc, StoreUnavailable):
                    log.exception("resume_store_write_failed")
                for answer, _ in writes:
                    answer.not_written(str(exc))
                continue
            for (answer, entry), count in zip(writes, resumed, strict=True):
                answer.written(entry, count)
