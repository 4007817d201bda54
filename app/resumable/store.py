"""Where resumable answers are kept: Redis, shared by every worker and every replica.

One answer is a few keys with one hash tag, its stream id, so that a Redis Cluster keeps them on
one node and a pipeline of them is one round trip:

    chat-service:{ID}:events   a Redis Stream; each entry a run of encoded frames (`f`), the id of
                               its last event (`n`), and on the last entry `e`
    chat-service:{ID}:meta     a hash: the wire format, `live` or `done`, the request id
    chat-service:{ID}:readers  exists while a resumed reader is attached (it renews it each second)
    chat-service:{ID}:resumed  how many readers resumed the answer

and, for `/chat/ui`, `chat-service:ui:CHAT_ID` -> the stream id of that chat's latest answer.
Stops travel on one pub/sub channel that every worker listens to.

Nothing else is kept: the frames are what a reader was sent, never the request's messages.
While an answer is in flight its keys live `LIVE_EXPIRY` seconds, renewed by its worker; at its
end, the TTL. A worker that dies therefore leaves nothing behind for long, and a reader sees its
answer's `meta` vanish.

Every call is bounded: a Redis that does not answer within `timeout` raises `StoreUnavailable`.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

Format = Literal["chat", "ui"]
T = TypeVar("T")

PREFIX = "chat-service"
STOP_CHANNEL = f"{PREFIX}:stops"
# An answer in flight keeps its keys this long past its worker's last sign of life.
LIVE_EXPIRY = 30
# A resumed reader says it is there this often; the mark outlives it by a little.
READER_MARK_MS = 3000
# Each blocked reader holds a connection of its worker's pool while it waits for the next entry.
MAX_CONNECTIONS = 4096


class StoreUnavailable(Exception):
    """Redis failed, or did not answer within the store's time-out."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One stream entry: frames as a reader is sent them, the id of their last event."""

    entry_id: bytes
    frames: bytes
    last_event_id: int
    end: bool


@dataclass(frozen=True, slots=True)
class Stored:
    """What a resumed reader finds: the answer's format and state, and its entries so far."""

    format: str
    live: bool
    request_id: str | None
    chunks: list[Chunk]


@dataclass(frozen=True, slots=True)
class Entry:
    """What one answer adds in one write."""

    stream_id: str
    frames: bytes
    last_event_id: int
    begin: dict[str, str] | None = None  # the answer's first entry: its meta
    chat_id: str | None = None
    end: bool = False


@dataclass(frozen=True, slots=True)
class Keys:
    events: str
    meta: str
    readers: str
    resumed: str

    @classmethod
    def of(cls, stream_id: str) -> "Keys":
        tag = f"{PREFIX}:{{{stream_id}}}"
        return cls(f"{tag}:events", f"{tag}:meta", f"{tag}:readers", f"{tag}:resumed")


def chat_key(chat_id: str) -> str:
    return f"{PREFIX}:ui:{chat_id}"


def _chunk(entry_id: bytes, fields: dict[bytes, bytes]) -> Chunk:
    return Chunk(entry_id, fields[b"f"], int(fields[b"n"]), b"e" in fields)


class ResumeStore:
    def __init__(self, url: str, ttl: int, timeout: float = 1.0) -> None:
        self.ttl = ttl
        self.timeout = timeout
        # One quick retry takes a pooled connection that Redis closed (a restart) out of the
        # way; a Redis that is down fails within the time-out all the same.
        self._redis = Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=None,  # the blocking reads wait longer; every call has its own bound
            retry=Retry(NoBackoff(), 1),
            max_connections=MAX_CONNECTIONS,
        )

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def _bounded(self, call: Callable[[], Awaitable[T]], extra: float = 0.0) -> T:
        try:
            async with asyncio.timeout(self.timeout + extra):
                return await call()
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def _pipeline(self, build: Callable[[Pipeline], object], extra: float = 0.0) -> list[Any]:
        async def run() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                build(pipe)
                result: list[Any] = await pipe.execute()
                return result

        return await self._bounded(run, extra)

    async def ping(self) -> None:
        await self._bounded(self._redis.ping)

    # The worker's writer: the new frames of all its answers, one pipeline per flush

    async def append(self, entries: list["Entry"]) -> list[int | None]:
        """Adds one entry to each answer. An answer's first (`begin`: its meta) also writes the
        meta and the chat's pointer; its last (`end`) marks it done, starts its TTL, and reads how
        many readers resumed it. Returns that count for each entry that ends its answer."""
        resumed_at: list[int | None] = []

        def build(pipe: Pipeline) -> None:
            for entry in entries:
                keys = Keys.of(entry.stream_id)
                fields: dict[str, bytes | int] = {"f": entry.frames, "n": entry.last_event_id}
                if entry.end:
                    fields["e"] = 1
                if entry.begin is not None:
                    pipe.hset(keys.meta, mapping={**entry.begin, "state": "live"})  # type: ignore[dict-item]
                    pipe.expire(keys.meta, LIVE_EXPIRY)
                    if entry.chat_id is not None:
                        pipe.set(chat_key(entry.chat_id), entry.stream_id, ex=LIVE_EXPIRY)
                pipe.xadd(keys.events, fields)  # type: ignore[arg-type]
                if entry.begin is not None:
                    pipe.expire(keys.events, LIVE_EXPIRY)
                if entry.end:
                    pipe.hset(keys.meta, "state", "done")
                    for key in (keys.events, keys.meta, keys.resumed):
                        pipe.expire(key, self.ttl)
                    if entry.chat_id is not None:
                        pipe.expire(chat_key(entry.chat_id), self.ttl)
                    pipe.get(keys.resumed)
                resumed_at.append(len(pipe) - 1 if entry.end else None)

        results = await self._pipeline(build)
        return [None if index is None else int(results[index] or 0) for index in resumed_at]

    async def keep_alive(self, answers: Iterable[tuple[str, str | None]]) -> None:
        """Renews the keys of this worker's answers in flight: (stream id, chat id)."""

        def build(pipe: Pipeline) -> None:
            for stream_id, chat_id in answers:
                keys = Keys.of(stream_id)
                pipe.expire(keys.events, LIVE_EXPIRY)
                pipe.expire(keys.meta, LIVE_EXPIRY)
                if chat_id is not None:
                    pipe.expire(chat_key(chat_id), LIVE_EXPIRY)

        await self._pipeline(build)

    async def has_readers(self, stream_id: str) -> bool:
        return bool(await self._bounded(lambda: self._redis.exists(Keys.of(stream_id).readers)))

    # Readers (any worker, any replica)

    async def stream_of_chat(self, chat_id: str) -> str | None:
        value = await self._bounded(lambda: self._redis.get(chat_key(chat_id)))
        return value.decode() if isinstance(value, bytes) else None

    async def open(self, stream_id: str) -> Stored | None:
        """The answer as stored so far, the reader counted in; None if there is none. One round
        trip: the reader's mark and count go with the read (for an id with no answer they are
        keys that expire on their own)."""
        keys = Keys.of(stream_id)

        def build(pipe: Pipeline) -> None:
            pipe.hgetall(keys.meta)
            pipe.xrange(keys.events)
            self._mark_reader(pipe, keys, first=True)

        meta, entries, *_ = await self._pipeline(build)
        if not meta:
            return None
        request_id = meta.get(b"request_id")
        return Stored(
            format=meta.get(b"format", b"").decode(),
            live=meta.get(b"state") == b"live",
            request_id=request_id.decode() if request_id else None,
            chunks=[_chunk(entry_id, fields) for entry_id, fields in entries],
        )

    def _mark_reader(self, pipe: Pipeline, keys: Keys, *, first: bool = False) -> None:
        pipe.set(keys.readers, 1, px=READER_MARK_MS)
        if first:
            pipe.incr(keys.resumed)
            pipe.expire(keys.resumed, max(self.ttl, LIVE_EXPIRY))

    async def follow(
        self, stream_id: str, after: bytes, block_ms: int, *, mark_reader: bool
    ) -> tuple[list[Chunk], bool]:
        """The entries after `after`, waiting up to `block_ms` for one; and whether the answer
        is still there (its meta has not expired). `mark_reader` renews the reader's mark."""
        keys = Keys.of(stream_id)

        def build(pipe: Pipeline) -> None:
            if mark_reader:
                self._mark_reader(pipe, keys)
            pipe.exists(keys.meta)
            pipe.xread({keys.events: after}, block=block_ms)

        results = await self._pipeline(build, extra=block_ms / 1000)
        exists, read = results[-2], results[-1]
        chunks = [_chunk(entry_id, fields) for _, entries in read or () for entry_id, fields in entries]
        return chunks, bool(exists)

    async def leave(self, stream_id: str) -> None:
        await self._bounded(lambda: self._redis.delete(Keys.of(stream_id).readers))

    # Stops

    async def request_stop(self, stream_id: str) -> bool:
        """Tells every worker to stop the answer; False if none is in flight."""
        state = await self._bounded(lambda: self._redis.hget(Keys.of(stream_id).meta, "state"))
        if state != b"live":
            return False
        await self._bounded(lambda: self._redis.publish(STOP_CHANNEL, stream_id))
        return True

    async def stops(self, on_subscribed: Callable[[], None]) -> AsyncIterator[str]:
        """The stream ids of stops requested anywhere, for as long as the subscription holds."""
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await self._bounded(lambda: pubsub.subscribe(STOP_CHANNEL))
            on_subscribed()
            async for message in pubsub.listen():
                if message["type"] == "message":
                    yield message["data"].decode()
