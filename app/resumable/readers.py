"""A reader that comes back: what was stored, then the live tail, from any worker or replica.

Entries hold frames as the first reader was sent them, so a reader from the start is sent the
same bytes. One that names the last event it saw (SSE's `Last-Event-ID`) is sent the events after
it: whole entries past it, and the one it falls in cut at the next event's `id:` line. Each event
reaches a reader once, whichever worker sent it the earlier ones.
"""

import time
from collections.abc import AsyncGenerator, Callable

import structlog

from app.observability.metrics import RESUME_STORE_ERRORS
from app.resumable.store import Chunk, ResumeStore, Stored, StoreUnavailable

log = structlog.get_logger(__name__)

# How long one read waits for the next entry, and so how often the reader renews its mark (which
# keeps the answer going) and looks whether the answer is still there.
FOLLOW_BLOCK_MS = 1000
MARK_INTERVAL = 1.0

LOST = (
    "answer_lost",
    "The service instance writing this answer stopped before its end; send the request again.",
)
UNAVAILABLE = ("resume_unavailable", "The answer can no longer be followed; send the request again.")


def after_event(chunk: Chunk, last_seen: int) -> bytes:
    """The frames of `chunk` whose event ids come after `last_seen`."""
    if chunk.last_event_id <= last_seen:
        return b""
    # Ids are consecutive; an event starts with its `id:` line, and JSON data holds no raw newline.
    head = b"id: %d\n" % (last_seen + 1)
    if chunk.frames.startswith(head):
        return chunk.frames
    index = chunk.frames.find(b"\n\n" + head)
    return chunk.frames if index < 0 else chunk.frames[index + 2 :]


async def resumed_frames(
    store: ResumeStore,
    stream_id: str,
    stored: Stored,
    last_seen: int | None,
    failure: Callable[[str, str], bytes],
    on_leave: Callable[[], None],
) -> AsyncGenerator[bytes, None]:
    """The stored frames after `last_seen` (all of them if None), then the live ones, to the end.
    `on_leave` is called when the reader leaves an answer still in flight."""
    finished = False
    try:
        async for frames in _frames_to_the_end(store, stream_id, stored, last_seen, failure):
            yield frames
        finished = True
    finally:
        if stored.live and not finished:
            on_leave()


async def _frames_to_the_end(
    store: ResumeStore,
    stream_id: str,
    stored: Stored,
    last_seen: int | None,
    failure: Callable[[str, str], bytes],
) -> AsyncGenerator[bytes, None]:
    chunks = stored.chunks
    cursor = b"0-0"
    next_mark = time.monotonic() + MARK_INTERVAL  # opening the answer marked the reader
    while True:
        for chunk in chunks:
            frames = chunk.frames
            if last_seen is not None:
                frames = after_event(chunk, last_seen)
                if frames:
                    last_seen = None  # past it: every later event is new to this reader
            if frames:
                yield frames
            if chunk.end:
                return
            cursor = chunk.entry_id
        if not stored.live:
            return
        mark = time.monotonic() >= next_mark
        if mark:
            next_mark = time.monotonic() + MARK_INTERVAL
        try:
            chunks, there = await store.follow(stream_id, cursor, FOLLOW_BLOCK_MS, mark_reader=mark)
        except StoreUnavailable as exc:
            RESUME_STORE_ERRORS.labels("follow").inc()
            log.warning("resume_store_unavailable", operation="follow", error=str(exc))
            yield failure(*UNAVAILABLE)
            return
        if not chunks and not there:
            yield failure(*LOST)
            return
