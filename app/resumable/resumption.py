"""Resumption in one worker: its answers in flight, the stops that reach them, the readers that
come back.

One per worker, made in the lifespan when `CHAT_REDIS_URL` is set. Beside the answers it runs
three small tasks: the stop subscription (a stop may be asked of any worker, for an answer that
runs in this one), the renewal of its answers' keys, and the end of shutdown's grace period.
"""

import asyncio
import contextlib
import secrets
from collections.abc import AsyncGenerator, Callable

import structlog

from app.observability.metrics import RESUME_STORE_ERRORS
from app.observability.summary import ChatSummary
from app.resumable.errors import ResumeUnavailable, StreamNotFound
from app.resumable.live import Ending, LiveAnswer
from app.resumable.readers import resumed_frames
from app.resumable.store import LIVE_EXPIRY, Format, ResumeStore, Stored, StoreUnavailable
from app.resumable.writer import StoreWriter
from app.streaming.shutdown import Draining

log = structlog.get_logger(__name__)


def new_stream_id() -> str:
    """256 random bits, URL-safe: whoever has it can read the answer."""
    return secrets.token_urlsafe(32)


class Resumption:
    def __init__(self, store: ResumeStore, grace: float, draining: Draining) -> None:
        self.store = store
        self._grace = grace
        self._draining = draining
        self._writer = StoreWriter(store)
        self._live: dict[str, LiveAnswer] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._leaving: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._writer.start()
        self._tasks = [
            asyncio.ensure_future(self._check_store()),
            asyncio.ensure_future(self._listen_for_stops()),
            asyncio.ensure_future(self._keep_answers_alive()),
            asyncio.ensure_future(self._end_at_grace_expiry()),
        ]

    async def aclose(self) -> None:
        running = [answer.done for answer in self._live.values()]
        if running and self._draining.started.is_set():
            # Answers whose readers left go on through the shutdown's grace period, as streams
            # do: a reader may still come back for them through another worker.
            await asyncio.wait(running)  # they end by themselves, or when the grace period does
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        answers = list(self._live.values())
        for answer in answers:
            answer.end("shutdown")
        if answers:
            await asyncio.wait([answer.done for answer in answers])  # their last entries written
        await asyncio.gather(*self._leaving, return_exceptions=True)
        await self._writer.aclose()
        await self.store.aclose()

    # Answers in flight here

    def keep(
        self,
        stream_id: str,
        frames: AsyncGenerator[bytes, None],
        summary: ChatSummary,
        *,
        format: Format,
        closing_frames: Callable[[Ending], bytes],
        last_event_id: Callable[[], int],
        chat_id: str | None = None,
    ) -> LiveAnswer:
        """Runs the answer in a task of its own, kept in the store as it goes."""
        answer = LiveAnswer(
            stream_id,
            frames,
            self.store,
            self._writer,
            summary,
            grace=self._grace,
            closing_frames=closing_frames,
            last_event_id=last_event_id,
            # The request id, so that a resumed reader's log line can name the request it read.
            meta={
                "format": format,
                "request_id": structlog.contextvars.get_contextvars().get("request_id", ""),
            },
            chat_id=chat_id,
            on_done=self._forget,
        )
        self._live[stream_id] = answer
        return answer

    def _forget(self, answer: LiveAnswer) -> None:
        self._live.pop(answer.stream_id, None)

    # Stops

    async def stop(self, stream_id: str) -> None:
        """Stops the answer wherever it runs; `StreamNotFound` if none is in flight."""
        if (answer := self._live.get(stream_id)) is not None:
            answer.end("stopped")  # here: no need to go through Redis
            return
        try:
            stopped = await self.store.request_stop(stream_id)
        except StoreUnavailable as exc:
            raise self._unavailable("stop", exc) from None
        if not stopped:
            raise StreamNotFound()

    async def stop_chat(self, chat_id: str) -> None:
        await self.stop(await self.stream_of_chat(chat_id))

    async def _listen_for_stops(self) -> None:
        down = False

        def subscribed() -> None:
            nonlocal down
            if down:
                log.info("resume_store_available", operation="subscribe")
            down = False

        while True:
            try:
                async for stream_id in self.store.stops(subscribed):
                    if (answer := self._live.get(stream_id)) is not None:
                        answer.end("stopped")
            except Exception as exc:  # the subscription failed: Redis is down, or went away
                if not down:  # once per outage
                    RESUME_STORE_ERRORS.labels("subscribe").inc()
                    log.warning("resume_store_unavailable", operation="subscribe", error=str(exc))
                down = True
            await asyncio.sleep(1)

    # Readers that come back

    async def stream_of_chat(self, chat_id: str) -> str:
        try:
            stream_id = await self.store.stream_of_chat(chat_id)
        except StoreUnavailable as exc:
            raise self._unavailable("read", exc) from None
        if stream_id is None:
            raise StreamNotFound()
        return stream_id

    async def open(self, stream_id: str, format: Format) -> Stored:
        """The answer as stored so far; `StreamNotFound` if there is none in this format."""
        try:
            stored = await self.store.open(stream_id)
        except StoreUnavailable as exc:
            raise self._unavailable("read", exc) from None
        if stored is None or stored.format != format:
            raise StreamNotFound()
        return stored

    def frames(
        self, stream_id: str, stored: Stored, after_event: int | None, failure: Callable[[str, str], bytes]
    ) -> AsyncGenerator[bytes, None]:
        return resumed_frames(
            self.store,
            stream_id,
            stored,
            after_event,
            failure,
            on_leave=lambda: self._forget_reader(stream_id),
        )

    def _forget_reader(self, stream_id: str) -> None:
        """The reader's mark goes when it leaves, so the grace period starts now rather than when
        the mark would expire. Another reader still attached renews it within a second."""

        async def leave() -> None:
            with contextlib.suppress(StoreUnavailable):  # then the mark expires on its own
                await self.store.leave(stream_id)

        task = asyncio.ensure_future(leave())
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)

    @staticmethod
    def _unavailable(operation: str, exc: StoreUnavailable) -> ResumeUnavailable:
        RESUME_STORE_ERRORS.labels(operation).inc()
        log.warning("resume_store_unavailable", operation=operation, error=str(exc))
        return ResumeUnavailable()

    # The worker's housekeeping

    async def _check_store(self) -> None:
        try:
            await self.store.ping()
        except StoreUnavailable as exc:
            # Not a reason to refuse traffic: answers go on, unresumable, until Redis is back.
            RESUME_STORE_ERRORS.labels("ping").inc()
            log.warning("resume_store_unavailable", operation="ping", error=str(exc), at="start-up")

    async def _keep_answers_alive(self) -> None:
        while True:
            await asyncio.sleep(LIVE_EXPIRY / 3)
            answers = [(a.stream_id, a.chat_id) for a in self._live.values() if a.storing]
            if answers:
                # On failure each answer's writer finds out at its next write, and says so.
                with contextlib.suppress(StoreUnavailable):
                    await self.store.keep_alive(answers)

    async def _end_at_grace_expiry(self) -> None:
        await self._draining.grace_expired()
        for answer in list(self._live.values()):
            answer.end("shutdown")
